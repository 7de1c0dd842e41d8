"""Numba kernels for prototype costs and updates (CPU backend of :mod:`.prototypes`).

Problems hold few points each (few-shot tasks) or many (one clustering problem), so the
distance kernel runs in parallel over all points and the label sums over problems.
"""

from __future__ import annotations

from numba import njit, prange

_FASTMATH = {"reassoc", "contract", "nsz", "arcp"}


@njit(parallel=True, cache=True, fastmath=_FASTMATH)
def squared_distances(X, M, out):
    """``out[t, p, l] = ||X[t, p] - M[t, l]||^2`` in float64.

    IN: X (n_problems, n_points, d); M (n_problems, n_labels, d).
    OUT: out (n_problems, n_points, n_labels) float64.
    """
    n_problems, n_points, n_features = X.shape
    n_labels = M.shape[1]
    for item in prange(n_problems * n_points):
        t = item // n_points
        p = item % n_points
        for k in range(n_labels):
            total = 0.0
            for j in range(n_features):
                diff = float(X[t, p, j]) - float(M[t, k, j])
                total += diff * diff
            out[t, p, k] = total


@njit(parallel=True, cache=True)
def label_sums(X, labels, point_weights, sums, totals):
    """Weighted sums of the points of each label, per problem.

    IN: X (n_problems, n_points, d); labels (n_problems, n_points) int64;
        point_weights (n_problems, n_points) float64.
    OUT: sums (n_problems, n_labels, d) float64 and totals (n_problems, n_labels) float64,
        zeroed here.
    """
    n_problems, n_points, n_features = X.shape
    for t in prange(n_problems):
        sums[t, :, :] = 0.0
        totals[t, :] = 0.0
        for p in range(n_points):
            k = labels[t, p]
            w = point_weights[t, p]
            totals[t, k] += w
            for j in range(n_features):
                sums[t, k, j] += w * X[t, p, j]
