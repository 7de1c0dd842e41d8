"""Numba kernel for exact nearest neighbours within many small point sets."""

from __future__ import annotations

import numpy as np
from numba import njit, prange

# "reassoc" lets the dot products vectorise; distances are clipped at zero anyway.
_FASTMATH = {"reassoc", "contract", "nsz", "arcp"}


@njit(parallel=True, cache=True, fastmath=_FASTMATH)
def batched_nearest(X, neighbors, sq_dist):
    """The ``k`` nearest other points of every point, within each set.

    Sets run in parallel; within a set, each pair's squared distance is computed once.

    IN: X (n_sets, n, d) float64, C-contiguous.
    OUT: neighbors (n_sets, n, k) int64, global indices ``t * n + q`` sorted by distance;
        sq_dist (n_sets, n, k), the squared distances.
    """
    n_sets, n, n_features = X.shape
    k = neighbors.shape[2]
    for t in prange(n_sets):
        points = X[t]
        d2 = np.empty((n, n))
        for p in range(n):
            d2[p, p] = np.inf
            for q in range(p + 1, n):
                total = 0.0
                for j in range(n_features):
                    diff = points[p, j] - points[q, j]
                    total += diff * diff
                d2[p, q] = total
                d2[q, p] = total
        for p in range(n):
            best_d = sq_dist[t, p]
            best_i = neighbors[t, p]
            best_d[:] = np.inf
            best_i[:] = -1
            for q in range(n):
                d = d2[p, q]
                if d < best_d[k - 1]:
                    # Insertion into the sorted list of the k best so far.
                    j = k - 1
                    while j > 0 and best_d[j - 1] > d:
                        best_d[j] = best_d[j - 1]
                        best_i[j] = best_i[j - 1]
                        j -= 1
                    best_d[j] = d
                    best_i[j] = t * n + q
