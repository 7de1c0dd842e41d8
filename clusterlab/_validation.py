"""Input checks shared by every public entry point (see "Bad input" in DESIGN.md).

Each check raises a ``ValueError`` that names the argument and the problem. The checks
are written against the array-API namespace of the input, so CuPy arrays are checked on
their device; nothing is modified in place.
"""

from __future__ import annotations

import numbers

import numpy as np

from clusterlab.solvers._backend import float_dtype, get_namespace, is_array


def check_float_matrix(X, name="X", *, min_rows=1, min_cols=1):
    """A C-contiguous float32/float64 2-D array with finite entries (a copy only if needed).

    NumPy-compatible inputs (lists, ndarrays) come back as NumPy arrays; other array-API
    arrays (PyTorch tensors, CuPy arrays) keep their namespace and device, and a tensor
    that is already float32/float64 comes back as it is, autograd graph included.
    """
    if not is_array(X) or isinstance(X, np.ndarray):
        X = np.asarray(X)
        if X.dtype == object or not np.issubdtype(X.dtype, np.number):
            raise ValueError(f"{name} must hold real numbers, got dtype {X.dtype}.")
    xp = get_namespace(X)
    if not xp.isdtype(X.dtype, ("real floating", "signed integer", "unsigned integer")):
        raise ValueError(f"{name} must hold real numbers, got dtype {X.dtype}.")
    if X.ndim != 2:
        raise ValueError(f"{name} must be 2-dimensional, got an array of shape {X.shape}.")
    if X.shape[0] < min_rows or X.shape[1] < min_cols:
        raise ValueError(
            f"{name} has shape {X.shape}: at least {min_rows} row(s) and {min_cols} "
            "column(s) are needed."
        )
    if X.dtype != float_dtype(xp, X.dtype):
        X = xp.astype(X, float_dtype(xp, X.dtype))
    if isinstance(X, np.ndarray):
        X = np.ascontiguousarray(X)
    _check_finite(xp, X, name)
    return X


def check_marginal(weights, size, name, xp, *, rtol=1e-6):
    """Nonnegative weights of length ``size`` summing to 1 (within ``rtol``), as float64.

    They are returned divided by their sum, so that tight solver tolerances stay
    reachable. None stays None.
    """
    if weights is None:
        return None
    weights = xp.asarray(weights, dtype=xp.float64)
    if weights.ndim != 1 or weights.shape[0] != size:
        raise ValueError(
            f"{name} must be a 1-D array of length {size}, got shape {tuple(weights.shape)}."
        )
    _check_finite(xp, weights, name)
    if bool(xp.any(weights < 0)):
        raise ValueError(f"{name} has negative entries.")
    total = float(xp.sum(weights))
    if abs(total - 1.0) > rtol:
        raise ValueError(f"{name} must sum to 1, got {total:.10g}.")
    if bool(xp.any(weights == 0)):
        raise ValueError(
            f"{name} has zero entries: drop those rows or columns before balancing."
        )
    return weights / total


def check_score_range(scores, eps):
    """The scores' spread, and the spread over eps, must be finite floating-point numbers."""
    xp = get_namespace(scores)
    spread = float(xp.max(scores)) - float(xp.min(scores))  # Python floats: no overflow
    if spread > float(xp.finfo(scores.dtype).max):
        raise ValueError(
            "scores span more than the floating-point range (max - min overflows): rescale them."
        )
    if not np.isfinite(spread / eps):
        raise ValueError(f"eps={eps:g} is too small for scores spanning {spread:g}.")


def check_positive(value, name):
    if not isinstance(value, numbers.Real) or isinstance(value, bool) or not value > 0:
        raise ValueError(f"{name} must be a positive number, got {value!r}.")
    if not np.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}.")
    return float(value)


def check_count(value, name, *, minimum=1, allow_none=False):
    if value is None and allow_none:
        return None
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}.")
    return int(value)


def check_n_clusters(n_clusters, n_samples):
    check_count(n_clusters, "n_clusters")
    if n_clusters > n_samples:
        raise ValueError(f"n_samples={n_samples} should be >= n_clusters={n_clusters}.")


def _check_finite(xp, X, name):
    if not bool(xp.all(xp.isfinite(X))):
        raise ValueError(f"{name} contains NaN or infinity.")


def check_partial_labels(y, n_samples, *, n_classes=None, name="y"):
    """Integer labels with -1 for unlabeled samples, as an int64 array (None: all -1).

    With ``n_classes``, labels must lie in ``[0, n_classes)``.
    """
    if y is None:
        return np.full(n_samples, -1, dtype=np.int64)
    y = np.asarray(y)
    if y.ndim != 1 or y.shape[0] != n_samples:
        raise ValueError(
            f"{name} must be a 1-D array of length {n_samples}, got shape {y.shape}."
        )
    if y.dtype.kind == "f" and np.all(np.isfinite(y)) and np.all(y == np.round(y)):
        y = y.astype(np.int64)
    if y.dtype.kind not in "iu":
        raise ValueError(
            f"{name} must hold integer labels (-1 for unlabeled), got dtype {y.dtype}."
        )
    y = y.astype(np.int64)
    if np.any(y < -1):
        raise ValueError(f"{name} has labels below -1; use -1 for unlabeled samples.")
    if n_classes is not None and np.any(y >= n_classes):
        raise ValueError(
            f"{name} has labels >= n_clusters={n_classes}; labels must lie in "
            f"[0, {n_classes}) or be -1."
        )
    return y
