r"""Spherical k-means for large K: chunked assignments, per-cluster sums, re-seeding.

Samples and centres are unit vectors; a sample belongs to the centre of largest cosine,
and a centre is the normalised sum of its samples. Each Lloyd iteration decreases

.. math:: \sum_i \left(1 - x_i^\top c_{l_i}\right)

(the *inertia* here; on the unit sphere ``||x - c||^2 = 2 (1 - x^T c)``, so this is half
the Euclidean k-means inertia of the normalised data).

The assignment is one matrix product per chunk of rows (BLAS through NumPy ``@``;
float32 stays float32) followed by a row argmax (:mod:`._spherical_kernels`), so the
n x K similarity matrix is never formed: memory is O(threads x chunk x K) beyond the data
and the centres. The chunks are shared out among worker threads, each running
single-threaded BLAS and then the argmax on its own block while that block is still in
cache (:func:`map_blocks`); on a loaded machine this also avoids multithreaded BLAS
waiting on its slowest thread. The blocks of all threads take at most
:data:`CHUNK_BYTES` together.

The centre update groups the samples by label (a counting sort) and sums each cluster
in float64 on one thread per cluster (race-free, no per-thread K x d buffers). A cluster
left empty is re-seeded with the sample farthest from its own centre (lowest cosine),
taken from a cluster that keeps at least one sample; that sample is moved, so the
objective still does not increase. A cluster whose samples sum to zero keeps its centre.

The functions take validated, C-contiguous arrays whose rows are unit vectors and check
nothing. :func:`assign` and :func:`lloyd` are the NumPy (Numba) path;
:func:`assign_namespace` is the same chunked assignment written against the array API,
for PyTorch, CuPy and other arrays on their device.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from . import _spherical_kernels as _kernels
from ._backend import n_threads, single_threaded_blas

__all__ = [
    "CHUNK_BYTES",
    "SphericalKMeansResult",
    "assign",
    "assign_namespace",
    "cluster_sums",
    "default_chunk_size",
    "kmeans_plusplus",
    "lloyd",
    "map_blocks",
    "normalized_centers",
    "reseed_empty",
    "run_lloyd",
]

#: Bytes of similarity blocks the assignment holds at a time, all worker threads together.
CHUNK_BYTES = 64 * 2**20
#: Below this many multiply-adds (n x K x d) the assignment and the sums run on one
#: thread: waking worker threads would cost more than the work.
PARALLEL_MIN_WORK = 2**25
#: Most rows per block by default: a block this size (x K) stays in cache between the
#: matrix product that writes it and the argmax that reads it, for K in the thousands.
MAX_CHUNK_ROWS = 1024


@dataclass(frozen=True)
class SphericalKMeansResult:
    """Outcome of :func:`lloyd`.

    Attributes
    ----------
    centers : ndarray of shape (n_clusters, n_features)
        Unit-norm centres, in the dtype of ``X``.
    labels : ndarray of shape (n_samples,), int64
        Index of each sample's centre of largest cosine (for the final ``centers``).
    similarities : ndarray of shape (n_samples,)
        That cosine, in the dtype of ``X``.
    objective_history : ndarray of float64
        The inertia ``sum_i (1 - cos_i)`` at every assignment, the final one included.
    n_iter : int
        Centre updates run.
    converged : bool
        Whether the labels stopped changing or the mean squared centre shift reached
        ``tol``.
    n_reseeded : int
        Empty clusters re-seeded over the run.
    """

    centers: np.ndarray
    labels: np.ndarray
    similarities: np.ndarray
    objective_history: np.ndarray
    n_iter: int
    converged: bool
    n_reseeded: int

    @property
    def inertia(self) -> float:
        """``sum_i (1 - cos_i)`` for the final centres."""
        return float(self.objective_history[-1])


def default_chunk_size(n_clusters, itemsize, n_workers=None, budget=CHUNK_BYTES):
    """Rows per block: the ``n_workers`` blocks of ``n_clusters`` similarities take at
    most ``budget`` bytes together, and a block has at most :data:`MAX_CHUNK_ROWS` rows
    (at least one)."""
    workers = n_threads() if n_workers is None else int(n_workers)
    rows = int(budget) // (workers * int(n_clusters) * int(itemsize))
    return max(1, min(MAX_CHUNK_ROWS, rows))


def map_blocks(X, centers, chunk_size, work, *, n_workers=None):
    """Call ``work(S, start)`` on every block ``S = X[start:start + m] @ centers.T``.

    The blocks are shared out among ``n_workers`` threads (default: Numba's thread
    count, or one below :data:`PARALLEL_MIN_WORK` multiply-adds); each thread computes
    its own blocks with single-threaded BLAS (always: multithreaded BLAS on small
    products costs far more than it saves on a busy machine) into a buffer of its own
    (chunk_size x K, X's dtype) and hands each to ``work`` while it is still in cache.
    ``work`` must release the GIL to run in parallel (Numba ``nogil`` kernels, NumPy
    sorts) and may write only the rows ``start:start + m`` of shared outputs.
    Memory: ``n_workers x chunk_size x K`` similarities.
    """
    n = X.shape[0]
    K = centers.shape[0]
    chunk = min(int(chunk_size), n)
    starts = list(range(0, n, chunk))
    if n_workers is None:
        n_workers = n_threads() if n * K * X.shape[1] >= PARALLEL_MIN_WORK else 1
    workers = max(1, min(int(n_workers), len(starts)))
    centers_t = centers.T

    def run(first):
        block = np.empty((chunk, K), dtype=X.dtype)
        for start in starts[first::workers]:
            m = min(chunk, n - start)
            S = block[:m]
            np.matmul(X[start : start + m], centers_t, out=S)
            work(S, start)

    with single_threaded_blas():
        if workers == 1:
            run(0)
            return
        with ThreadPoolExecutor(workers) as pool:
            for future in [pool.submit(run, first) for first in range(workers)]:
                future.result()


def assign(X, centers, chunk_size, *, out=None, n_workers=None):
    """Each row's centre of largest inner product, and that inner product (NumPy).

    Parameters
    ----------
    X : ndarray of shape (n, d), C-contiguous float32 or float64
    centers : ndarray of shape (K, d), same dtype
    chunk_size : int
        Rows per matrix product; each worker thread holds one chunk_size x K block.
    out : tuple (labels, similarities) or None
        Preallocated int64 (n,) and X.dtype (n,) arrays to fill.
    n_workers : int or None
        Threads, see :func:`map_blocks`.

    Returns
    -------
    labels : ndarray (n,) int64
    similarities : ndarray (n,), X's dtype
    """
    n = X.shape[0]
    if out is None:
        labels = np.empty(n, dtype=np.int64)
        best = np.empty(n, dtype=X.dtype)
    else:
        labels, best = out
    map_blocks(
        X,
        centers,
        chunk_size,
        lambda S, start: _kernels.row_argmax(S, labels, best, start),
        n_workers=n_workers,
    )
    return labels, best


def assign_namespace(xp, X, centers, chunk_size):
    """:func:`assign` for any array-API array, on its device (labels int64)."""
    n = X.shape[0]
    chunk = min(int(chunk_size), n)
    centers_t = centers.T
    labels, best = [], []
    for start in range(0, n, chunk):
        S = X[start : min(start + chunk, n), ...] @ centers_t
        labels.append(xp.argmax(S, axis=1))
        best.append(xp.max(S, axis=1))
    if len(labels) == 1:
        return xp.astype(labels[0], xp.int64), best[0]
    return xp.astype(xp.concat(labels), xp.int64), xp.concat(best)


def cluster_sums(X, labels, n_clusters):
    """Per-cluster sums (float64, K x d) and sizes (int64, K) of the samples."""
    order = np.empty(labels.shape[0], dtype=np.int64)
    starts = np.empty(n_clusters + 1, dtype=np.int64)
    _kernels.group_by_label(labels, n_clusters, order, starts)
    sums = np.empty((n_clusters, X.shape[1]), dtype=np.float64)
    if X.size >= PARALLEL_MIN_WORK // 2:  # a parallel launch costs ms on a busy machine
        _kernels.cluster_sums(X, order, starts, sums)
    else:
        _kernels.cluster_sums_serial(X, order, starts, sums)
    return sums, np.diff(starts)


def normalized_centers(sums, previous):
    """The rows of ``sums`` scaled to unit norm, in ``previous``'s dtype; a zero row keeps
    its ``previous`` centre. ``sums`` (float64) is scaled in place."""
    norms = np.sqrt(np.einsum("kd,kd->k", sums, sums))
    zero = norms == 0
    sums /= np.where(zero, 1.0, norms)[:, None]
    centers = sums.astype(previous.dtype)
    if zero.any():
        centers[zero] = previous[zero]
    return centers


def kmeans_plusplus(X, n_clusters, rng, n_local_trials=None):
    """Greedy k-means++ seeding by cosine distance on unit rows (NumPy).

    Each new centre is the best of ``n_local_trials`` samples drawn with probability
    proportional to ``1 - max_c cos(x, c)`` over the centres chosen so far (on unit
    vectors ``||x - c||^2 = 2 (1 - cos)``: the D² sampling of k-means++), the best being
    the one that most lowers the total distance. The small products run on
    single-threaded BLAS. Cost: ``n_clusters x n_local_trials`` passes of n x d.

    Parameters
    ----------
    X : ndarray of shape (n, d), unit rows, float32 or float64
    n_clusters : int
    rng : numpy.random.RandomState
    n_local_trials : int or None
        Candidates per centre; None: ``2 + int(log(n_clusters))`` (as scikit-learn).

    Returns
    -------
    centers : ndarray of shape (n_clusters, d), rows of ``X`` (a copy)
    """
    n = X.shape[0]
    trials = 2 + int(np.log(n_clusters)) if n_local_trials is None else int(n_local_trials)
    chosen = np.empty(n_clusters, dtype=np.int64)
    chosen[0] = rng.randint(n)
    with single_threaded_blas():
        closest = np.maximum(1.0 - (X @ X[chosen[0]]).astype(np.float64), 0.0)
        potential = closest.sum()
        for c in range(1, n_clusters):
            if potential <= 0:  # every sample sits on a centre: any distinct sample will do
                rest = np.setdiff1d(np.arange(n), chosen[:c])
                chosen[c:] = rng.choice(rest, n_clusters - c, replace=False)
                break
            draws = rng.uniform(size=trials) * potential
            candidates = np.minimum(np.searchsorted(np.cumsum(closest), draws), n - 1)
            distances = np.maximum(1.0 - (X @ X[candidates].T).astype(np.float64), 0.0)
            np.minimum(distances, closest[:, None], out=distances)
            potentials = distances.sum(axis=0)
            best = int(np.argmin(potentials))
            chosen[c] = candidates[best]
            closest = distances[:, best]
            potential = potentials[best]
    return X[chosen]


def reseed_empty(X, labels, order, sums, counts):
    """Give each empty cluster one sample, taken in ``order``; returns which and where.

    The samples are tried in ``order`` (indices into ``X`` and ``labels``, the farthest
    from their centre first); a sample moves only if its cluster ``labels[i]`` keeps at
    least one sample, so the objective does not increase. ``sums`` (float64, K x d) and
    ``counts`` (K) are updated in place. Returns ``(moved, clusters)``: the indices of the
    samples moved (int64) and the clusters they now seed, in order. The caller updates
    whatever else follows the samples (labels, similarities).
    """
    empty = np.flatnonzero(counts == 0)
    moved = []
    for i in order:
        if len(moved) == empty.size:
            break
        old = labels[i]
        if counts[old] <= 1:
            continue
        new = empty[len(moved)]
        sums[old] -= X[i]
        counts[old] -= 1
        sums[new] = X[i]
        counts[new] = 1
        moved.append(i)
    return np.asarray(moved, dtype=np.int64), empty[: len(moved)]


def _reseed_empty(X, labels, similarities, sums, counts):
    """:func:`reseed_empty` with every sample a candidate; returns how many moved.

    Updates ``labels``, ``similarities``, ``sums`` and ``counts`` in place.
    """
    if not np.any(counts == 0):
        return 0
    farthest_first = np.argsort(similarities, kind="stable")
    moved, clusters = reseed_empty(X, labels, farthest_first, sums, counts)
    labels[moved] = clusters
    similarities[moved] = 1.0
    return moved.size


def lloyd(X, centers, *, max_iter, tol, chunk_size, callback=None):
    """Spherical Lloyd iterations from ``centers`` (NumPy arrays of unit rows).

    Each iteration assigns every sample to its centre of largest cosine, stops if no
    label changed, else replaces the centres by the normalised cluster sums (empty
    clusters re-seeded) and stops when the mean squared centre shift is at most
    ``tol``. A final assignment makes ``labels`` those of the returned centres.

    Parameters
    ----------
    X : ndarray of shape (n, d), unit rows, C-contiguous float32 or float64
    centers : ndarray of shape (K, d), unit rows, same dtype (not modified)
    max_iter : int
        Centre updates at most.
    tol : float
        Threshold on ``mean_k ||c_k^new - c_k^old||^2``.
    chunk_size : int
        Rows per matrix product of the assignment.
    callback : callable or None
        ``callback(n_iter, inertia, shift)`` after every centre update.

    Returns
    -------
    SphericalKMeansResult
    """
    n = X.shape[0]
    K = centers.shape[0]
    labels = np.empty(n, dtype=np.int64)
    best = np.empty(n, dtype=X.dtype)
    previous = np.full(n, -1, dtype=np.int64)

    def inertia():
        return n - float(np.sum(best, dtype=np.float64))

    def step(current):
        nonlocal labels, previous
        assign(X, current, chunk_size, out=(labels, best))
        value = inertia()  # of the assignment, before any re-seeding moves a sample
        if np.array_equal(labels, previous):  # a fixed point: the centres would not move
            return value, None, 0, 0.0
        sums, counts = cluster_sums(X, labels, K)
        reseeded = _reseed_empty(X, labels, best, sums, counts)
        new_centers = normalized_centers(sums, current)
        del sums
        diff = new_centers - current
        shift = float(np.einsum("kd,kd->", diff, diff, dtype=np.float64)) / K
        previous, labels = labels, previous
        return value, new_centers, reseeded, shift

    def finish(current, fixed_point):
        if fixed_point:  # the stopping assignment is that of the final centres
            return labels, best, None
        assign(X, current, chunk_size, out=(labels, best))
        return labels, best, inertia()

    centers = np.ascontiguousarray(centers, dtype=X.dtype)
    return run_lloyd(step, finish, centers, max_iter=max_iter, tol=tol, callback=callback)


def run_lloyd(step, finish, centers, *, max_iter, tol, callback=None):
    """The loop of :func:`lloyd`, whatever computes its steps.

    :func:`lloyd` (NumPy) and :func:`.dask_lloyd.spherical_lloyd` (row-chunked Dask
    arrays) differ only in ``step`` and ``finish``. ``step(centers)`` assigns the samples
    to ``centers`` and returns ``(inertia, new_centers, n_reseeded, shift)``: the inertia
    of that assignment, the next centres (None when no label changed: a fixed point, and
    the centres stay), the empty clusters it re-seeded and the mean squared centre shift.
    The loop records the inertias, calls ``callback(n_iter, inertia, shift)`` after every
    centre update, and stops at a fixed point, once ``shift <= tol`` or after ``max_iter``
    updates. ``finish(centers, fixed_point)`` returns the final ``(labels, similarities,
    inertia)``; its inertia is ignored (None will do) at a fixed point, where the last
    assignment's already stands in the history.

    Returns
    -------
    SphericalKMeansResult
    """
    history, n_reseeded, n_iter, converged = [], 0, 0, False
    fixed_point = False
    for _ in range(max_iter):
        inertia, new_centers, reseeded, shift = step(centers)
        history.append(inertia)
        if new_centers is None:
            converged = fixed_point = True
            break
        n_reseeded += reseeded
        centers = new_centers
        n_iter += 1
        if callback is not None:
            callback(n_iter, inertia, shift)
        if shift <= tol:
            converged = True
            break
    labels, similarities, inertia = finish(centers, fixed_point)
    if not fixed_point:
        history.append(inertia)
    return SphericalKMeansResult(
        centers=centers,
        labels=labels,
        similarities=similarities,
        objective_history=np.asarray(history, dtype=np.float64),
        n_iter=n_iter,
        converged=converged,
        n_reseeded=n_reseeded,
    )
