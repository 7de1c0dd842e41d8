"""Dask helpers: row-chunked arrays in, per-chunk NumPy work, small reductions out.

The heads scale past one machine on row-chunked Dask arrays: each chunk of rows is a
NumPy array on a worker, per-chunk work runs the NumPy/Numba code there, and only small
results travel (K-length or K x d partial sums, tree-reduced; per-row outputs stay
chunked like the input). This module holds the plumbing every Dask path shares:

- :func:`is_dask_array` recognises a Dask array without importing Dask (Dask is an
  optional dependency, the ``[dask]`` extra);
- :func:`row_chunked` and :func:`check_dask_matrix` bring an input to the one layout the
  kernels take: rows split into chunks, every other axis in one chunk;
- :func:`map_row_blocks` maps a NumPy function over the row chunks (a Dask array with the
  input's row chunks comes back, lazily);
- :func:`reduce_row_blocks` tree-reduces per-chunk partial results (a ``Delayed``, so
  several reductions can be computed in one :func:`dask.compute` call);
- :func:`tree_reduce` combines a list of ``Delayed`` partial results in a tree;
- :func:`shared` makes one graph key of a small NumPy array (centres, potentials) that
  every chunk's task reads, rather than a copy embedded in each task.

Nothing here computes: every helper builds graph. Callers decide when to compute.
"""

from __future__ import annotations

import sys

import numpy as np

__all__ = [
    "check_dask_matrix",
    "is_dask_array",
    "map_row_blocks",
    "reduce_row_blocks",
    "row_chunked",
    "shared",
    "tree_reduce",
]

#: Partial results combined per task of a tree reduction (the fan-in of the tree).
SPLIT_EVERY = 8


def is_dask_array(x) -> bool:
    """Whether ``x`` is a ``dask.array.Array``; never imports Dask (False when Dask has
    not been imported, since no Dask array can exist then)."""
    if "dask.array" not in sys.modules:
        return False
    import dask.array as da

    return isinstance(x, da.Array)


def row_chunked(X, name="X"):
    """``X`` with every axis but the first in one chunk (rows may be split at will).

    A matrix chunked along its columns is rechunked (lazily: the columns of each row
    chunk are joined on a worker, a chunk of rows x all columns at a time); a
    row-chunked one is returned as is. Unknown chunk sizes (after boolean indexing, say)
    are a ``ValueError`` asking for ``X.compute_chunk_sizes()``.
    """
    if any(np.isnan(size) for sizes in X.chunks for size in sizes):
        raise ValueError(
            f"{name} has unknown chunk sizes; call {name}.compute_chunk_sizes() first."
        )
    if all(len(sizes) == 1 for sizes in X.chunks[1:]):
        return X
    return X.rechunk({axis: -1 for axis in range(1, X.ndim)})


def check_dask_matrix(X, name="X", *, dtypes=(np.float64, np.float32), min_rows=1):
    """A 2-D, row-chunked, floating Dask array, checked without computing anything.

    Checks the number of dimensions and the shape (at least ``min_rows`` rows and one
    column); integer and boolean arrays are cast (lazily) to ``dtypes[0]``, other
    non-float dtypes are a ``ValueError``. Values (NaN, inf) are not checked here: that
    takes a pass over the data, which the caller fuses with its first one.
    """
    if X.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array, got {X.ndim} dimension(s).")
    X = row_chunked(X, name)
    n, d = X.shape
    if n < min_rows or d < 1:
        raise ValueError(
            f"{name} must have at least {min_rows} row(s) and one column, got shape {X.shape}."
        )
    dtype = np.dtype(X.dtype)
    if dtype not in [np.dtype(t) for t in dtypes]:
        if dtype.kind not in "biu":
            raise ValueError(f"{name} must hold real numbers, got dtype {dtype}.")
        X = X.astype(dtypes[0])
    return X


def shared(value):
    """``value`` as one graph key (a ``Delayed``) for :func:`map_row_blocks` and
    :func:`reduce_row_blocks` to pass to every chunk: on a ``distributed`` cluster it
    travels once to each worker that needs it, not once per task."""
    import dask

    return dask.delayed(value, pure=True)


def map_row_blocks(func, X, *args, dtype, n_columns=None, name=None, **kwargs):
    """``func(block, *args, **kwargs)`` on each row chunk of ``X``, lazily.

    Parameters
    ----------
    func : callable
        Takes a NumPy chunk of ``m`` rows (all columns) and returns an array of shape
        ``(m,)`` (``n_columns=None``) or ``(m, n_columns)``.
    X : Dask array of shape (n, d), row-chunked (see :func:`row_chunked`)
    *args, **kwargs
        Passed to every call; wrap NumPy arrays in :func:`shared`.
    dtype : dtype of the output
    n_columns : int or None
    name : str or None
        Prefix of the tasks' keys (shows in the dashboard).

    Returns
    -------
    Dask array of shape (n,) or (n, n_columns), chunked along rows like ``X``.
    """
    import dask.array as da

    X = row_chunked(X)
    extra = {"token": name} if name is not None else {}
    if n_columns is None:
        return da.map_blocks(
            func,
            X,
            *args,
            dtype=dtype,
            drop_axis=1,
            chunks=(X.chunks[0],),
            meta=np.empty((0,), dtype=dtype),
            **extra,
            **kwargs,
        )
    return da.map_blocks(
        func,
        X,
        *args,
        dtype=dtype,
        chunks=(X.chunks[0], (int(n_columns),)),
        meta=np.empty((0, 0), dtype=dtype),
        **extra,
        **kwargs,
    )


def _add(parts):
    """Elementwise sum of partial results: arrays, numbers, or tuples of them."""
    first = parts[0]
    if isinstance(first, tuple):
        return tuple(_add([p[i] for p in parts]) for i in range(len(first)))
    total = first.copy() if isinstance(first, np.ndarray) else first
    for part in parts[1:]:
        total = total + part
    return total


def reduce_row_blocks(func, X, *args, combine=None, split_every=SPLIT_EVERY, name=None, **kwargs):
    """Tree reduction of ``func(block, *args, **kwargs)`` over the row chunks of ``X``.

    Parameters
    ----------
    func : callable
        Takes a NumPy chunk of rows (all columns) and returns its partial result: an
        array, a number, or a tuple of them (e.g. K x d sums and K counts).
    X : Dask array, row-chunked (see :func:`row_chunked`)
    *args, **kwargs
        Passed to every call; wrap NumPy arrays in :func:`shared`.
    combine : callable or None
        Takes a list of partial results and returns one; it must be associative. None
        adds them elementwise (tuples item by item).
    split_every : int
        Partials combined per task: the tree has depth ``log(n_chunks) / log(split_every)``.
    name : str or None
        Prefix of the tasks' keys.

    Returns
    -------
    dask.delayed.Delayed
        The combined result; ``dask.compute(a, b)`` computes several in one pass.
        Only partial results travel between tasks, never a chunk of ``X``.
    """
    import dask

    X = row_chunked(X)
    blocks = X.to_delayed(optimize_graph=False).reshape(-1).tolist()
    call = dask.delayed(func, pure=True, name=name)
    return tree_reduce(
        [call(block, *args, **kwargs) for block in blocks], combine, split_every=split_every
    )


def tree_reduce(parts, combine=None, *, split_every=SPLIT_EVERY):
    """One ``Delayed`` combining the ``Delayed`` partial results ``parts`` in a tree.

    ``combine`` takes a list of partial results and returns one (associative); None adds
    them elementwise (tuples item by item). Each task combines at most ``split_every``
    partials, so no task receives more than ``split_every`` of them (SwAV's all-reduce,
    as a reduction tree whose root is the client's result).
    """
    import dask

    merge = dask.delayed(_add if combine is None else combine, pure=True)
    fan_in = max(2, int(split_every))
    level = list(parts)
    if not level:
        raise ValueError("nothing to reduce: no chunks.")
    if len(level) == 1:
        return merge(level)
    while len(level) > 1:
        level = [merge(level[i : i + fan_in]) for i in range(0, len(level), fan_in)]
    return level[0]
