"""Input checks shared by every public entry point (see "Bad input" in DESIGN.md).

Each check raises a ``ValueError`` that names the argument and the problem. The checks
are written against the array-API namespace of the input, so CuPy arrays are checked on
their device; nothing is modified in place.
"""

from __future__ import annotations

import numbers
import warnings

import numpy as np
from scipy import sparse
from scipy.sparse import issparse

from clusterlab.solvers._backend import (
    extrema,
    float_dtype,
    get_namespace,
    host_floats,
    is_array,
    to_numpy,
)


def check_float_matrix(X, name="X", *, min_rows=1, min_cols=1, finite=True):
    """A C-contiguous float32/float64 2-D array with finite entries (a copy only if needed).

    NumPy-compatible inputs (lists, ndarrays) come back as NumPy arrays; other array-API
    arrays (PyTorch tensors, CuPy arrays) keep their namespace and device, and a tensor
    that is already float32/float64 comes back as it is, autograd graph included.
    ``finite=False`` leaves the NaN/inf check to the caller (one device sync fewer when
    the caller's own check finds them, as :func:`check_score_range` does).
    """
    if issparse(X):
        raise ValueError(
            f"{name} is a SciPy sparse matrix; this function needs a dense array "
            f"({name}.toarray())."
        )
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
    if finite:
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
        raise ValueError(f"{name} has zero entries: drop those rows or columns before balancing.")
    return weights / total


def check_score_range(scores, eps, name="scores"):
    """Finite scores whose spread, and spread over eps, are finite floating-point numbers.

    One device sync (the maximum and minimum fetched together; NaN and inf show in them).
    Returns ``(min, max)`` as Python floats.
    """
    xp = get_namespace(scores)
    high, low = host_floats(xp, *extrema(xp, scores))
    return check_range_values(low, high, eps, float(xp.finfo(scores.dtype).max), name)


def check_range_values(low, high, eps, largest, name="scores"):
    """:func:`check_score_range` on a range measured elsewhere (by a solver's first pass):
    ``largest`` is the dtype's largest float. Returns ``(low, high)``."""
    if not (np.isfinite(high) and np.isfinite(low)):
        raise ValueError(f"{name} contains NaN or infinity.")
    spread = high - low  # Python floats: no overflow
    if spread > largest:
        raise ValueError(
            f"{name} span more than the floating-point range (max - min overflows): rescale them."
        )
    if not np.isfinite(spread / eps):
        raise ValueError(f"eps={eps:g} is too small for {name} spanning {spread:g}.")
    return low, high


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


def count_runs(init, n_init):
    """Runs to make: ``n_init``, or one (with a warning) when ``init`` gives the starting
    centres, since every run would then be the same."""
    if isinstance(init, str) or n_init == 1:
        return n_init
    warnings.warn(
        "init gives the starting centres: one run replaces the n_init runs, which would "
        "all be identical.",
        RuntimeWarning,
        stacklevel=4,
    )
    return 1


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
        raise ValueError(f"{name} must be a 1-D array of length {n_samples}, got shape {y.shape}.")
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


def check_class_labels(y, shape, name="y_support"):
    """Integer class labels (any values; whole-number floats accepted) of the given shape.

    Every support sample is labeled, so -1 is an ordinary class here. ``y`` may be any
    array (a device array is copied to the host: labels are small); the result is a NumPy
    int64 array.
    """
    if _is_foreign_array(y):
        from clusterlab.solvers._backend import to_numpy

        y = to_numpy(y)
    y = np.asarray(y)
    if y.dtype.kind == "f" and np.all(np.isfinite(y)) and np.all(y == np.round(y)):
        y = y.astype(np.int64)
    if y.shape != shape or y.dtype.kind not in "iu":
        raise ValueError(
            f"{name} must hold integer class labels of shape {shape}, got {y.dtype} {y.shape}."
        )
    return y.astype(np.int64, copy=False)


def _is_foreign_array(x):
    """An array of a namespace other than NumPy (a PyTorch tensor, a CuPy array...)."""
    return is_array(x) and not isinstance(x, np.ndarray)


def check_fewshot_tasks(X_support, y_support, X_query):
    """Stacked few-shot tasks: features of shape (n_tasks, n_samples, n_features).

    NumPy-compatible inputs (lists, ndarrays) come back as NumPy float arrays. When either
    feature array is an array of another namespace (PyTorch on any device, CuPy,
    ``array_api_strict``), both must be arrays of that namespace on one device; they are
    checked there (one host sync per array for the finiteness test) and come back in it.
    Both feature arrays take the float dtype of ``X_support`` (float32 stays float32,
    anything else becomes float64). The labels come back as a NumPy int64 array of shape
    (n_tasks, n_support), whatever their kind.

    Returns
    -------
    support, labels, queries
    """
    if _is_foreign_array(X_support) or _is_foreign_array(X_query):
        support, queries, xp = _check_task_arrays_in_namespace(X_support, X_query)
    else:
        support, queries, xp = np.asarray(X_support), np.asarray(X_query), None
        for name, array in (("X_support", support), ("X_query", queries)):
            if array.ndim != 3:
                raise ValueError(
                    f"{name} must have shape (n_tasks, n_samples, n_features), got {array.shape}."
                )
            if not np.issubdtype(array.dtype, np.number) or not np.all(np.isfinite(array)):
                raise ValueError(f"{name} must hold finite real numbers.")
    if support.shape[0] != queries.shape[0] or support.shape[2] != queries.shape[2]:
        raise ValueError(
            f"X_support {tuple(support.shape)} and X_query {tuple(queries.shape)} disagree "
            "on the number of tasks or features."
        )
    if min(support.shape[:2]) == 0 or min(queries.shape[1:]) == 0:
        raise ValueError(
            f"X_support {tuple(support.shape)} and X_query {tuple(queries.shape)} must hold "
            "at least one task, with support samples, queries and features."
        )
    labels = check_class_labels(y_support, tuple(support.shape[:2]))
    if xp is None:
        dtype = np.float32 if support.dtype == np.float32 else np.float64
        return support.astype(dtype, copy=False), labels, queries.astype(dtype, copy=False)
    dtype = float_dtype(xp, support.dtype)
    if support.dtype != dtype:
        support = xp.astype(support, dtype)
    if queries.dtype != dtype:
        queries = xp.astype(queries, dtype)
    return support, labels, queries


def _check_task_arrays_in_namespace(X_support, X_query):
    from clusterlab.solvers._backend import device

    try:
        xp = get_namespace(X_support, X_query)
    except TypeError as error:
        raise ValueError(
            "X_support and X_query must be arrays of the same library (both NumPy, both "
            f"PyTorch tensors, ...), got {type(X_support).__name__} and "
            f"{type(X_query).__name__}."
        ) from error
    if device(X_support) != device(X_query):
        raise ValueError(
            f"X_support and X_query must be on the same device, got {device(X_support)} "
            f"and {device(X_query)}."
        )
    for name, array in (("X_support", X_support), ("X_query", X_query)):
        if array.ndim != 3:
            raise ValueError(
                f"{name} must have shape (n_tasks, n_samples, n_features), "
                f"got {tuple(array.shape)}."
            )
        numeric = xp.isdtype(array.dtype, ("real floating", "signed integer", "unsigned integer"))
        if not numeric or not bool(xp.all(xp.isfinite(array))):
            raise ValueError(f"{name} must hold finite real numbers.")
    return X_support, X_query, xp


def encode_task_labels(support_y):
    """Per-task class codes 0..n_way-1 and the classes, for NumPy labels of shape (T, s).

    Returns
    -------
    codes : ndarray of shape (T, s)
        Index of each support sample's class among its task's sorted classes.
    classes : ndarray of shape (T, n_way)
        Each task's classes, sorted.
    """
    order = np.argsort(support_y, axis=1, kind="stable")
    ordered = np.take_along_axis(support_y, order, axis=1)
    new_class = np.diff(ordered, axis=1, prepend=ordered[:, :1] - 1) != 0
    n_way = new_class.sum(axis=1)
    if np.any(n_way != n_way[0]):
        raise ValueError("Every task must have the same number of classes in its support set.")
    codes = np.empty_like(support_y)
    np.put_along_axis(codes, order, np.cumsum(new_class, axis=1) - 1, axis=1)
    classes = ordered[new_class].reshape(support_y.shape[0], n_way[0])
    return codes, classes


def check_adjacency(adjacency, n_samples, name="adjacency"):
    """A square, symmetric, nonnegative, finite adjacency as a CSR float64 matrix.

    ``adjacency`` is a SciPy sparse matrix or array, or a dense array-like (a NumPy
    array, a PyTorch tensor or another array-API array, copied to the host). The
    diagonal (self-loops) is kept here; the functions that use the graph say what they
    do with it.
    """
    if issparse(adjacency):
        A = sparse.csr_matrix(adjacency, dtype=np.float64, copy=True)
    else:
        if is_array(adjacency) and not isinstance(adjacency, np.ndarray):
            adjacency = to_numpy(adjacency)
        dense = np.asarray(adjacency)
        if dense.dtype == object or not (
            np.issubdtype(dense.dtype, np.number) or dense.dtype == bool
        ):
            raise ValueError(f"{name} must hold real numbers, got dtype {dense.dtype}.")
        if dense.ndim != 2:
            raise ValueError(f"{name} must be 2-dimensional, got shape {dense.shape}.")
        A = sparse.csr_matrix(dense.astype(np.float64))
    if A.shape != (n_samples, n_samples):
        raise ValueError(
            f"{name} has shape {A.shape}; expected ({n_samples}, {n_samples}), one row and "
            "one column per sample."
        )
    if not np.all(np.isfinite(A.data)):
        raise ValueError(f"{name} contains NaN or infinity.")
    if np.any(A.data < 0):
        raise ValueError(f"{name} has negative weights.")
    A.eliminate_zeros()
    asymmetry = abs(A - A.T)
    largest = float(A.data.max()) if A.nnz else 0.0
    if asymmetry.nnz and float(asymmetry.max()) > 1e-10 * max(largest, 1.0):
        raise ValueError(
            f"{name} must be symmetric (an undirected graph); symmetrise it first, e.g. "
            "with (A + A.T) / 2."
        )
    A.sort_indices()
    return A


def check_dask_features(estimator, X, *, reset):
    """A row-chunked Dask ``X`` checked lazily (shape, dtype) and its number of features:
    stored as ``n_features_in_`` when ``reset`` (``fit``), compared with it otherwise."""
    from clusterlab.solvers._dask import check_dask_matrix

    X = check_dask_matrix(X, "X")
    if reset:
        estimator.n_features_in_ = X.shape[1]
        if hasattr(estimator, "feature_names_in_"):
            del estimator.feature_names_in_
    elif X.shape[1] != estimator.n_features_in_:
        raise ValueError(
            f"X has {X.shape[1]} features, but {type(estimator).__name__} is expecting "
            f"{estimator.n_features_in_} features as input."
        )
    return X
