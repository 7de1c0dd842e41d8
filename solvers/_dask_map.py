"""Per-sample work mapped over the chunks of Dask arrays (predict paths, assignments).

A prediction that treats every row (or every few-shot task) on its own needs no
communication at all: each chunk goes through the NumPy/Numba code on the worker that
holds it, and the result is a Dask array chunked like the input. The fitted model (small
NumPy arrays) travels as one graph key (:func:`clusterlab.solvers._dask.shared`), once
to each worker that needs it, not once per task.

- :func:`map_rows` maps a function of a row chunk with one or several outputs;
- :func:`map_method` is the hook of an estimator's ``predict``/``predict_proba``: the
  estimator's own NumPy method on every chunk, after the checks that need no data;
- :func:`map_tasks` maps a function of stacked few-shot tasks over chunks of tasks.

Nothing here computes, and Dask is imported only when a Dask array is given. Checks that
need the values (NaN, inf, an all-zero row) run in each chunk's task and raise when the
result is computed; warnings raised by a chunk's task (a ``ConvergenceWarning``) go
where that task runs: the calling process with the synchronous or threaded scheduler,
the worker's log on a ``distributed`` cluster.
"""

from __future__ import annotations

import copy
import operator

import numpy as np

from ._dask import is_dask_array, row_chunked, shared

__all__ = ["check_rows", "is_dask_array", "map_method", "map_rows", "map_tasks", "shared"]


def _tail(n_columns):
    return () if n_columns is None else (int(n_columns),)


def check_rows(X, name, n_features, owner):
    """The checks that need no data: a 2-D array of numbers with ``n_features`` columns,
    rows in chunks, columns in one."""
    if X.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array, got {X.ndim} dimension(s).")
    if np.dtype(X.dtype).kind not in "biuf":
        raise ValueError(f"{name} must hold real numbers, got dtype {X.dtype}.")
    if n_features is not None and X.shape[1] != n_features:
        raise ValueError(
            f"{name} has {X.shape[1]} features, but {owner} is expecting {n_features} "
            "features as input."
        )
    return row_chunked(X, name)


def map_rows(func, X, *args, outputs, name=None):
    """``func(block, *args)`` on every row chunk of the Dask array ``X``, lazily.

    Parameters
    ----------
    func : callable
        Takes a NumPy chunk of ``m`` rows (all columns) and returns an array of shape
        ``(m,)`` or ``(m, c)``, or, with several ``outputs``, a tuple of such arrays.
    X : Dask array of shape (n, d)
        Row-chunked; a matrix chunked along its columns is rechunked first.
    *args
        Passed to every call: small values, or :func:`~clusterlab.solvers._dask.shared`
        keys (one transfer per worker).
    outputs : list of (dtype, n_columns or None)
        The dtype and column count of each output (None: one value per row).
    name : str or None
        Prefix of the tasks' keys.

    Returns
    -------
    Dask array, or a tuple of them with several outputs
        Each chunked along the rows as ``X``.
    """
    import dask.array as da

    X = row_chunked(X)
    token = {"token": name} if name is not None else {}

    def block_map(function, source, dtype, n_columns, args=(), **options):
        tail = _tail(n_columns)
        if source.ndim == 2:
            layout = {} if tail else {"drop_axis": 1}
        else:  # a chunk's item of the per-chunk tuples
            layout = {"new_axis": 1} if tail else {}
        return da.map_blocks(
            function,
            source,
            *args,
            dtype=dtype,
            chunks=(X.chunks[0], *((c,) for c in tail)),
            meta=np.empty((0,) * (1 + len(tail)), dtype=dtype),
            **layout,
            **options,
        )

    if len(outputs) == 1:
        ((dtype, n_columns),) = outputs
        return block_map(func, X, dtype, n_columns, args=args, **token)
    # One task per chunk computes every output (a tuple); one light task per output and
    # chunk picks its item. Computing the outputs together runs ``func`` once per chunk.
    pairs = da.map_blocks(
        func,
        X,
        *args,
        dtype=object,
        drop_axis=1,
        chunks=(X.chunks[0],),
        meta=np.empty((0,), dtype=object),
        **token,
    )
    return tuple(
        block_map(operator.itemgetter(i), pairs, dtype, n_columns)
        for i, (dtype, n_columns) in enumerate(outputs)
    )


def _call(block, model, method):
    return getattr(model, method)(block)


def map_method(estimator, method, X, *, dtype, n_columns=None, drop=()):
    """``estimator.<method>`` on every row chunk of the Dask array ``X``.

    The hook of a fitted estimator's per-sample method: ``X``'s dimensions, dtype kind
    and number of features are checked now; the estimator itself (its fitted attributes
    are small NumPy arrays) becomes one graph key, and its NumPy method runs on every
    chunk, which validates the values there. The result equals the method on the
    computed ``X``, chunk for chunk.

    Parameters
    ----------
    estimator : fitted estimator with ``n_features_in_``
    method : str
        The name of a method taking a NumPy matrix of rows and returning one value per
        row (``n_columns=None``) or ``n_columns`` values per row.
    X : Dask array of shape (n, n_features_in_)
    dtype : dtype of the result
    n_columns : int or None
    drop : tuple of str
        Fitted attributes the method does not need and that grow with the training set
        (``labels_``, ``responsibilities_``): left out of the copy sent to the workers.

    Returns
    -------
    Dask array of shape (n,) or (n, n_columns), chunked along the rows as ``X``.
    """
    X = check_rows(X, "X", getattr(estimator, "n_features_in_", None), type(estimator).__name__)
    if drop:
        estimator = copy.copy(estimator)  # shallow: the fitted arrays are shared
        for name in drop:
            estimator.__dict__.pop(name, None)
    return map_rows(
        _call,
        X,
        shared(estimator),
        method,
        outputs=[(dtype, n_columns)],
        name=f"{type(estimator).__name__.lower()}-{method}",
    )


def _task_array(array, name, ndim):
    """``array`` (Dask, else as a NumPy array) with ``ndim`` dimensions and known chunks."""
    if not is_dask_array(array):
        array = np.asarray(array)
    if array.ndim != ndim:
        shape = "(n_tasks, n_support)" if ndim == 2 else "(n_tasks, n_samples, n_features)"
        raise ValueError(f"{name} must have shape {shape}, got {tuple(array.shape)}.")
    if is_dask_array(array):
        row_chunked(array, name)  # refuses unknown chunk sizes
    return array


def _in_task_chunks(array, task_chunks):
    """``array`` as a Dask array with the given task chunks, its other axes whole."""
    import dask.array as da

    chunks = (task_chunks, *((size,) for size in array.shape[1:]))
    if is_dask_array(array):
        return array.rechunk(chunks)
    return da.from_array(array, chunks=chunks)


def map_tasks(func, X_support, y_support, X_query, *, dtype, name=None):
    """``func(support, labels, queries)`` on chunks of stacked few-shot tasks, lazily.

    The task axis is chunked as ``X_support`` (or ``X_query`` if only it is a Dask
    array); the other arrays, Dask or NumPy-compatible, are brought to the same task
    chunks with their other axes whole. ``func`` returns an array of shape
    ``(t, n_query)`` for a chunk of ``t`` tasks. Shapes are checked now, values when a
    chunk is computed.

    Returns
    -------
    Dask array of shape (n_tasks, n_query), chunked along the tasks.
    """
    import dask.array as da

    support = _task_array(X_support, "X_support", 3)
    queries = _task_array(X_query, "X_query", 3)
    labels = _task_array(y_support, "y_support", 2)
    if support.shape[0] != queries.shape[0] or support.shape[2] != queries.shape[2]:
        raise ValueError(
            f"X_support {tuple(support.shape)} and X_query {tuple(queries.shape)} disagree "
            "on the number of tasks or features."
        )
    if labels.shape != support.shape[:2]:
        raise ValueError(
            f"y_support has shape {tuple(labels.shape)}; X_support {tuple(support.shape)} "
            f"needs {tuple(support.shape[:2])}."
        )
    task_chunks = (support if is_dask_array(support) else queries).chunks[0]
    support, labels, queries = (
        _in_task_chunks(array, task_chunks) for array in (support, labels, queries)
    )
    token = {"token": name} if name is not None else {}
    return da.blockwise(
        func,
        "tq",
        support,
        "tsd",
        labels,
        "ts",
        queries,
        "tqd",
        dtype=dtype,
        concatenate=True,
        meta=np.empty((0, 0), dtype=dtype),
        **token,
    )
