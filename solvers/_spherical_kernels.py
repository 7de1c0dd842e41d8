"""Numba kernels of spherical k-means (CPU backend of :mod:`.spherical_kmeans`).

The assignment's matrix product runs in BLAS (NumPy ``@``); these kernels read its
chunk x K block (row argmax, one call per worker thread) and form the per-cluster sums.
The sums are race-free without per-thread copies of the K x d buffer: the samples are
grouped by label first (a counting sort), then each thread sums whole clusters.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

_LANES = 16  # independent running maxima: the compiler turns them into SIMD registers


@njit(nogil=True, cache=True)
def row_argmax(S, labels, best, offset):
    """Largest entry of each row of a block of similarities, and where it is.

    Serial and free of the GIL: the assignment runs one call per worker thread, on the
    block that thread's matrix product has just written (still in its cache). Each row
    is read twice: its maximum over :data:`_LANES` running maxima (vectorised), then the
    first column holding it.

    IN: S (m, K) float32/float64, finite; offset, the index of the block's first row.
    OUT: labels[offset:offset + m] (int64) and best[offset:offset + m] (S's dtype).
    Ties go to the lowest column.
    """
    m, K = S.shape
    n_full = K // _LANES
    lanes = np.empty(_LANES, dtype=S.dtype)
    for i in range(m):
        row = S[i]
        top = row[0]
        if n_full > 0:
            for j in range(_LANES):
                lanes[j] = row[j]
            for b in range(1, n_full):
                base = b * _LANES
                for j in range(_LANES):
                    v = row[base + j]
                    lanes[j] = v if v > lanes[j] else lanes[j]
            top = lanes[0]
            for j in range(1, _LANES):
                if lanes[j] > top:
                    top = lanes[j]
        for k in range(n_full * _LANES, K):
            if row[k] > top:
                top = row[k]
        where = 0
        for k in range(K):
            if row[k] == top:
                where = k
                break
        labels[offset + i] = where
        best[offset + i] = top


@njit(cache=True)
def group_by_label(labels, n_clusters, order, starts):
    """Counting sort of the samples by label.

    IN: labels (n,) int64 in [0, n_clusters).
    OUT: order (n,) int64, the samples of cluster k at ``order[starts[k]:starts[k + 1]]``
        in increasing index; starts (n_clusters + 1,) int64.
    """
    starts[:] = 0
    for i in range(labels.shape[0]):
        starts[labels[i] + 1] += 1
    for k in range(n_clusters):
        starts[k + 1] += starts[k]
    fill = starts[:-1].copy()
    for i in range(labels.shape[0]):
        k = labels[i]
        order[fill[k]] = i
        fill[k] += 1


def _cluster_sums(X, order, starts, sums):
    """Sum of the samples of each cluster, accumulated in float64.

    IN: X (n, d); order, starts from :func:`group_by_label`.
    OUT: sums (K, d) float64 (every row written). Each thread owns whole clusters.
    """
    n_clusters = starts.shape[0] - 1
    d = X.shape[1]
    for k in prange(n_clusters):
        acc = np.zeros(d)
        for p in range(starts[k], starts[k + 1]):
            row = X[order[p]]
            for j in range(d):
                acc[j] += row[j]
        for j in range(d):
            sums[k, j] = acc[j]


#: :func:`_cluster_sums` over Numba's threads, and on one thread (for small problems,
#: where waking the threads costs more than the sums).
cluster_sums = njit(parallel=True, cache=True)(_cluster_sums)
cluster_sums_serial = njit(cache=True)(_cluster_sums)
