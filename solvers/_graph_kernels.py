"""Numba kernel for exact nearest neighbours within many small point sets."""

from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(parallel=True, cache=True)
def nearest_from_gram(gram, sq_norm, offset, neighbors, sq_dist):
    """The ``k`` nearest other points of every point, from the sets' Gram matrices.

    IN: gram (n_sets, n, n), inner products within each set; sq_norm (n_sets, n);
        offset int64, global index of the first point of set 0.
    OUT: neighbors (n_sets, n, k) int64, global indices sorted by distance;
        sq_dist (n_sets, n, k), the squared distances, clipped at zero.
    """
    n_sets, n, _ = gram.shape
    k = neighbors.shape[2]
    for item in prange(n_sets * n):
        t = item // n
        p = item % n
        best_d = sq_dist[t, p]
        best_i = neighbors[t, p]
        best_d[:] = np.inf
        best_i[:] = -1
        for q in range(n):
            if q == p:
                continue
            d = max(sq_norm[t, p] + sq_norm[t, q] - 2.0 * gram[t, p, q], 0.0)
            if d < best_d[k - 1]:
                # Insertion into the sorted list of the k best so far.
                j = k - 1
                while j > 0 and best_d[j - 1] > d:
                    best_d[j] = best_d[j - 1]
                    best_i[j] = best_i[j - 1]
                    j -= 1
                best_d[j] = d
                best_i[j] = offset + t * n + q
