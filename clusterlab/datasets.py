"""Real datasets that ship inside installed packages, returned as ``(X, y)``.

Nothing is downloaded: every loader reads data bundled with a dependency.
"""

from __future__ import annotations

import numpy as np
from sklearn import datasets as _sk

__all__ = ["DATASETS", "load_dataset"]

_LOADERS = {
    "digits": _sk.load_digits,  # 1797 8x8 handwritten digits, 10 classes (UCI)
    "iris": _sk.load_iris,  # 150 flowers, 4 measurements, 3 species
    "wine": _sk.load_wine,  # 178 wines, 13 chemical measurements, 3 cultivars
    "breast_cancer": _sk.load_breast_cancer,  # 569 tumours, 30 features, 2 classes
}
DATASETS = tuple(_LOADERS)


def load_dataset(name, *, preprocessing=None, dtype=np.float64):
    """Features and labels of a bundled dataset.

    Parameters
    ----------
    name : {"digits", "iris", "wine", "breast_cancer"}
        The scikit-learn bundled datasets.
    preprocessing : {None, "standardize", "l2"}
        ``"standardize"``: zero mean, unit variance per feature (constant features are
        left at zero). ``"l2"``: centre, then scale every sample to unit norm, as one
        prepares embeddings for cosine scores.
    dtype : numpy dtype
        dtype of ``X``.

    Returns
    -------
    X : ndarray of shape (n_samples, n_features)
    y : ndarray of shape (n_samples,), int

    Examples
    --------
    >>> from clusterlab.datasets import load_dataset
    >>> X, y = load_dataset("iris")
    >>> X.shape, sorted(set(y.tolist()))
    ((150, 4), [0, 1, 2])
    """
    if name not in _LOADERS:
        raise ValueError(f"Unknown dataset {name!r}; choose one of {', '.join(DATASETS)}.")
    X, y = _LOADERS[name](return_X_y=True)
    X = X.astype(np.float64)
    if preprocessing == "standardize":
        scale = X.std(axis=0)
        X = (X - X.mean(axis=0)) / np.where(scale > 0, scale, 1.0)
    elif preprocessing == "l2":
        X = X - X.mean(axis=0)
        X /= np.linalg.norm(X, axis=1, keepdims=True)
    elif preprocessing is not None:
        raise ValueError(
            f"preprocessing must be None, 'standardize' or 'l2', got {preprocessing!r}."
        )
    return np.ascontiguousarray(X, dtype=dtype), y.astype(np.int64)
