r"""Lloyd iterations on row-chunked Dask arrays (the Dask backend of the k-means heads).

A Lloyd step is a map over the row chunks followed by a small reduction: each chunk's
task (on a ``distributed`` cluster, on a worker holding the chunk) assigns its rows with
the NumPy/Numba code of :mod:`.spherical_kmeans` and returns the K x d float64 sums of
its rows per cluster, the K counts and its share of the objective; the partials are
added in a tree (:func:`._dask.tree_reduce`), and the client, holding the K x d centres,
forms the new centres and sends them (one shared key) to the next pass. Per iteration
``2 K d`` float64 numbers travel per chunk (partials up, centres down), whatever the
number of rows; per-row results (labels, similarities, codes) stay chunked on the
workers and come back as lazy Dask arrays.

:func:`spherical_lloyd` is :func:`.spherical_kmeans.lloyd` in this form (the same loop,
:func:`.spherical_kmeans.run_lloyd`), re-seeding empty clusters the same way
(:func:`.spherical_kmeans.reseed_empty`): each chunk also returns its ``n_candidates``
rows farthest from their centres, and the client moves the farthest of them overall.
:func:`balanced_run` is :func:`.balanced_kmeans.single_run` (the same loop,
:func:`.balanced_kmeans.run_updates`) with the transport of :mod:`.dask_sinkhorn`.

The functions take validated, row-chunked Dask arrays whose rows are unit vectors (for
the spherical heads) and NumPy centres, and check nothing. Tasks run single-threaded
kernels and BLAS: the parallelism is one task per chunk.
"""

from __future__ import annotations

import math

import numpy as np

from . import _spherical_kernels as kernels
from . import dask_sinkhorn as _dsk
from ._backend import single_threaded_blas
from ._dask import map_row_blocks, row_chunked, shared, tree_reduce
from .balanced_kmeans import renormalised, run_updates
from .spherical_kmeans import (
    assign,
    default_chunk_size,
    normalized_centers,
    reseed_empty,
    run_lloyd,
)

__all__ = [
    "assign_rows",
    "balanced_labels",
    "balanced_run",
    "norm_range",
    "sample_rows",
    "spherical_lloyd",
    "unit_rows",
]

#: Farthest rows each chunk offers for re-seeding empty clusters (at most this many
#: clusters are re-seeded per iteration; the others keep their centre, as a cluster
#: whose samples sum to zero does).
N_CANDIDATES = 64


# -- small passes ---------------------------------------------------------------------


def _norm_stats(X):
    X64 = X.astype(np.float64)
    norms = np.sqrt(np.einsum("ij,ij->i", X64, X64))
    finite = bool(np.all(np.isfinite(X)))
    if X.shape[0] == 0:
        return np.inf, 0.0, finite
    return float(norms.min()), float(np.max(np.abs(norms - 1.0))), finite


def _stats_combine(parts):
    return (min(p[0] for p in parts), max(p[1] for p in parts), all(p[2] for p in parts))


def norm_range(X):
    """``(smallest row norm, largest |norm - 1|, all entries finite)`` in one pass."""
    return _reduce(_norm_stats, X, combine=_stats_combine)


def _unit_block(block):
    norms = np.sqrt(np.einsum("ij,ij->i", block, block))
    return np.ascontiguousarray(block / norms[:, None])


def unit_rows(X):
    """The rows of ``X`` scaled to unit norm, lazily (no row may be zero)."""
    X = row_chunked(X)
    return X.map_blocks(_unit_block, dtype=X.dtype)


def sample_rows(X, index):
    """The rows ``index`` of ``X`` (any order) as a NumPy array: one small compute."""
    index = np.asarray(index, dtype=np.int64)
    order = np.argsort(index, kind="stable")
    rows = X[index[order]].compute()
    out = np.empty_like(rows)
    out[order] = rows
    return np.ascontiguousarray(out)


def _reduce(func, X, *args, combine=None):
    """``tree_reduce`` of ``func(block, *args)`` over the non-empty row chunks."""
    import dask

    call = dask.delayed(func, pure=True)
    blocks = X.to_delayed(optimize_graph=False).reshape(-1).tolist()
    parts = [call(b, *args) for b, m in zip(blocks, X.chunks[0], strict=True) if m > 0]
    return tree_reduce(parts, combine).compute()


# -- spherical k-means ----------------------------------------------------------------


def _chunk_assign(X, centers, chunk_size):
    X = np.ascontiguousarray(X)
    return assign(X, centers, chunk_size, n_workers=1)


def _labels_block(X, centers, chunk_size):
    return _chunk_assign(X, centers, chunk_size)[0]


def _similarity_block(X, centers, chunk_size):
    return _chunk_assign(X, centers, chunk_size)[1]


def assign_rows(X, centers, chunk_size=None):
    """Lazy ``(labels, similarities)``: each row's centre of largest inner product
    (int64) and that inner product (X's dtype), chunked like the rows of ``X``."""
    if chunk_size is None:
        chunk_size = default_chunk_size(centers.shape[0], X.dtype.itemsize, n_workers=1)
    key = shared(np.ascontiguousarray(centers, dtype=X.dtype))
    labels = map_row_blocks(_labels_block, X, key, chunk_size, dtype=np.int64)
    best = map_row_blocks(_similarity_block, X, key, chunk_size, dtype=X.dtype)
    return labels, best


def _lloyd_partials(X, offset, centers, chunk_size, n_candidates):
    """One chunk's share of a Lloyd step: ``(sums, counts, inertia, candidates)``.

    ``candidates`` = ``(similarities, global indices, labels, rows)`` of the chunk's
    ``n_candidates`` rows of lowest similarity (farthest first, ties by index).
    """
    X = np.ascontiguousarray(X)
    K = centers.shape[0]
    labels, best = _chunk_assign(X, centers, chunk_size)
    order = np.empty(labels.shape[0], dtype=np.int64)
    starts = np.empty(K + 1, dtype=np.int64)
    kernels.group_by_label(labels, K, order, starts)
    sums = np.empty((K, X.shape[1]))
    kernels.cluster_sums_serial(X, order, starts, sums)
    inertia = X.shape[0] - float(np.sum(best, dtype=np.float64))
    far = np.argsort(best, kind="stable")[:n_candidates]
    candidates = (best[far].astype(np.float64), offset + far, labels[far], X[far])
    return sums, np.diff(starts), inertia, candidates


def _lloyd_combine(parts):
    sums = parts[0][0].copy()
    counts = parts[0][1].copy()
    inertia = 0.0
    for p in parts[1:]:
        sums += p[0]
        counts += p[1]
    for p in parts:
        inertia += p[2]
    sims = np.concatenate([p[3][0] for p in parts])
    index = np.concatenate([p[3][1] for p in parts])
    order = np.lexsort((index, sims))[:N_CANDIDATES]
    candidates = tuple(np.concatenate([p[3][j] for p in parts])[order] for j in range(4))
    return sums, counts, inertia, candidates


def _reseed(sums, counts, candidates):
    """:func:`.spherical_kmeans.reseed_empty` on the gathered candidates (farthest
    first); returns how many clusters were re-seeded."""
    _sims, _index, labels, rows = candidates
    moved, _ = reseed_empty(rows, labels, range(labels.shape[0]), sums, counts)
    return moved.size


def spherical_lloyd(X, centers, *, max_iter, tol, chunk_size=None, callback=None):
    """:func:`.spherical_kmeans.lloyd` on a row-chunked Dask array of unit rows.

    One pass over ``X`` per iteration (assignment, cluster sums, inertia and re-seeding
    candidates together), and one for the final inertia. An iteration whose new centres
    equal the old ones is the in-memory "no label changed" stop and is not counted.

    Returns
    -------
    SphericalKMeansResult
        ``centers`` and ``objective_history`` NumPy; ``labels`` and ``similarities`` lazy
        Dask arrays chunked like the rows of ``X``.
    """
    X = row_chunked(X)
    K = centers.shape[0]
    if chunk_size is None:
        chunk_size = default_chunk_size(K, X.dtype.itemsize, n_workers=1)
    offsets = np.concatenate([[0], np.cumsum(X.chunks[0])[:-1]]).astype(np.int64)
    centers = np.ascontiguousarray(centers, dtype=X.dtype)

    def partials(current):
        import dask

        key = shared(current)
        call = dask.delayed(_lloyd_partials, pure=True)
        blocks = X.to_delayed(optimize_graph=False).reshape(-1).tolist()
        parts = [
            call(b, int(o), key, chunk_size, N_CANDIDATES)
            for b, o, m in zip(blocks, offsets, X.chunks[0], strict=True)
            if m > 0
        ]
        return tree_reduce(parts, _lloyd_combine).compute()

    def step(current):
        sums, counts, inertia, candidates = partials(current)
        reseeded = _reseed(sums, counts, candidates) if np.any(counts == 0) else 0
        new_centers = normalized_centers(sums, current)
        if reseeded == 0 and np.array_equal(new_centers, current):
            return inertia, None, 0, 0.0  # no label changed: the centres stay
        diff = new_centers.astype(np.float64) - current
        return inertia, new_centers, reseeded, float(np.einsum("kd,kd->", diff, diff)) / K

    def finish(current, fixed_point):
        inertia = None if fixed_point else _reduce(_inertia_block, X, shared(current), chunk_size)
        labels, best = assign_rows(X, current, chunk_size)
        return labels, best, inertia

    return run_lloyd(step, finish, centers, max_iter=max_iter, tol=tol, callback=callback)


def _inertia_block(X, centers, chunk_size):
    best = _chunk_assign(X, centers, chunk_size)[1]
    return X.shape[0] - float(np.sum(best, dtype=np.float64))


# -- balanced (Sinkhorn) k-means --------------------------------------------------------


def _squared_distances(X, centers):
    """As :func:`._backend.squared_distances`, in the dtype of ``X`` and ``centers``."""
    d = (
        np.einsum("ij,ij->i", X, X)[:, None]
        - 2.0 * (X @ centers.T)
        + np.einsum("kj,kj->k", centers, centers)[None, :]
    )
    return np.maximum(d, 0, out=d)


def _score_block(X, centers, spherical, scale):
    """The chunk's scores, computed as the in-memory path does (same dtype)."""
    X = np.ascontiguousarray(X)
    with single_threaded_blas():
        if spherical:
            return np.ascontiguousarray(X @ centers.T)
        return np.ascontiguousarray((-0.5 / scale) * _squared_distances(X, centers))


def scores(X, centers, *, spherical, scale):
    """Lazy scores of the rows of ``X`` against ``centers`` (chunked like ``X``):
    cosines, or ``-||x - c||^2 / (2 scale)``."""
    key = shared(np.ascontiguousarray(centers, dtype=X.dtype))
    return map_row_blocks(
        _score_block, X, key, spherical, float(scale), dtype=X.dtype, n_columns=centers.shape[0]
    )


def _plan_update(X, centers, g_scaled, inv_eps, log_a, spherical, scale):
    """The chunk's plan ``Q`` (rows summing to ``1 / n``) for ``g``: ``(Q^T X, mass)``."""
    S = _score_block(X, centers, spherical, scale)
    plan = _dsk._row_pass(S, log_a, g_scaled, inv_eps, "a")[2]
    with single_threaded_blas():
        weighted = plan.T.astype(np.float64) @ np.asarray(X, dtype=np.float64)
    return weighted, plan.sum(axis=0, dtype=np.float64)


def _objective_block(X, centers, new_centers, g_scaled, inv_eps, log_a, spherical, scale):
    """The chunk's ``<Q, D>`` and ``H(Q)``: ``Q`` at ``centers``, ``D`` at ``new_centers``."""
    S = _score_block(X, centers, spherical, scale)
    plan = _dsk._row_pass(S, log_a, g_scaled, inv_eps, "a")[2]
    with single_threaded_blas():
        D = _squared_distances(np.ascontiguousarray(X), new_centers)
    safe = np.where(plan > 0, plan, 1)
    return (
        float(np.sum(plan * D, dtype=np.float64)),
        float(-np.sum(plan * np.log(safe), dtype=np.float64)),
    )


def balanced_run(
    X,
    centers,
    proportions,
    *,
    spherical,
    scale,
    eps,
    max_iter,
    tol,
    sinkhorn_tol,
    sinkhorn_max_iter,
    callback=None,
    on_transport=None,
):
    """:func:`.balanced_kmeans.single_run` on a row-chunked Dask array.

    Each centroid update: the transport (:func:`.dask_sinkhorn.sinkhorn` on the lazy
    scores, warm-started), one pass for ``Q^T X`` and the column masses, one pass for the
    objective at the new centres. ``on_transport(result)`` sees every transport result
    (the caller warns on non-convergence). Centres and potentials are NumPy.
    """
    X = row_chunked(X)
    n = X.shape[0]
    log_a = -math.log(n)
    centers = np.ascontiguousarray(centers, dtype=X.dtype)

    def step(centers, g):
        S = scores(X, centers, spherical=spherical, scale=scale)
        result = _dsk.sinkhorn(
            S,
            eps,
            None,
            proportions,
            tol=sinkhorn_tol,
            max_iter=sinkhorn_max_iter,
            init=g,
            return_plan=False,
        )
        if on_transport is not None:
            on_transport(result)
        g = result.g
        args = (shared(centers), shared(g / eps), 1.0 / eps, log_a, spherical, scale)
        weighted, mass = _reduce(_plan_update, X, *args)
        new_centers = (weighted / mass[:, None]).astype(X.dtype)
        if spherical:
            new_centers = renormalised(np, new_centers, centers)
        new_centers = np.ascontiguousarray(new_centers)
        shift = float(np.sum((new_centers - centers) ** 2))
        cost, entropy = _reduce(_objective_block, X, args[0], shared(new_centers), *args[1:])
        return new_centers, g, shift, cost, entropy

    return run_updates(
        step,
        centers,
        n=n,
        scale=scale,
        eps=eps,
        max_iter=max_iter,
        tol=tol,
        callback=callback,
    )


def _quota_rows(chunk_rows, sizes):
    """Integer cluster sizes per chunk: rows sum to the chunk sizes, columns to ``sizes``,
    each within one of proportional (chunks filled in order, largest remainders)."""
    remaining = np.asarray(sizes, dtype=np.int64).copy()
    quotas = np.zeros((len(chunk_rows), remaining.shape[0]), dtype=np.int64)
    left = int(remaining.sum())
    for c, m in enumerate(chunk_rows):
        if m == 0:
            continue
        ideal = m * remaining / left
        q = np.floor(ideal).astype(np.int64)
        extra = m - int(q.sum())
        if extra:
            q[np.argsort(-(ideal - q), kind="stable")[:extra]] += 1
        quotas[c] = q
        remaining -= q
        left -= m
    return quotas


def _rounded_block(X, quotas, centers, g_scaled, inv_eps, log_a, spherical, scale, block_id=None):
    from .assignment import round_to_sizes

    S = _score_block(X, centers, spherical, scale)
    plan = _dsk._row_pass(S, log_a, g_scaled, inv_eps, "a")[2]
    return round_to_sizes(plan, quotas[block_id[0]]).astype(np.int64)


def balanced_labels(X, centers, g, sizes, *, spherical, scale, eps):
    """Lazy labels with cluster ``k`` holding exactly ``sizes[k]`` rows: each chunk
    rounds its own plan (:func:`.assignment.round_to_sizes`) to a quota of every cluster
    proportional to its rows (:func:`_quota_rows`), so the sizes add up exactly."""
    import dask.array as da

    X = row_chunked(X)
    quotas = _quota_rows(X.chunks[0], sizes)
    args = (
        shared(quotas),
        shared(np.ascontiguousarray(centers, dtype=X.dtype)),
        shared(g / eps),
        1.0 / eps,
        -math.log(X.shape[0]),
        spherical,
        float(scale),
    )
    return da.map_blocks(
        _rounded_block,
        X,
        *args,
        dtype=np.int64,
        drop_axis=1,
        chunks=(X.chunks[0],),
        meta=np.empty((0,), dtype=np.int64),
    )
