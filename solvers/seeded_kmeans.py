"""Semi-supervised k-means: the generalized-category-discovery baseline (Vaze et al., 2022).

Labeled samples stay with their class's cluster through every Lloyd iteration. The
centres of the ``n_classes`` labeled classes start at their labeled means; the remaining
centres are drawn by greedy k-means++ (D^2 sampling with local trials) from the unlabeled
samples, given the class centres already placed. A Lloyd iteration is one parallel Numba
pass over the samples (nearest centre and the sums of the next centres together).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit, prange

from ._backend import n_threads
from ._sinkhorn_kernels import serial_twin

__all__ = ["SeededKMeansResult", "seeded_kmeans"]


@dataclass
class SeededKMeansResult:
    """Best of ``n_init`` runs of :func:`seeded_kmeans`.

    Attributes
    ----------
    labels : ndarray of shape (n,)
        Cluster of every sample; labeled samples are in their class's cluster.
    centers : ndarray of shape (K, d), float64
    inertia : float
        Sum of squared distances of the samples to their centres.
    n_iter : int
        Lloyd iterations of the returned run.
    converged : bool
        Whether that run stopped on an unchanged partition.
    """

    labels: np.ndarray
    centers: np.ndarray
    inertia: float
    n_iter: int
    converged: bool


def seeded_kmeans(X, clamp, n_clusters, *, rng, n_init=1, max_iter=300, tol=1e-4):
    """Lloyd iterations with labeled samples held in their clusters; the best of ``n_init``.

    Parameters
    ----------
    X : ndarray of shape (n, d), float32 or float64
    clamp : ndarray of shape (n,), int64
        Cluster of each labeled sample, in ``[0, n_classes)``, and -1 for the others. Each
        of ``0 .. n_classes - 1`` must occur.
    n_clusters : int
        Total number of clusters, at least ``n_classes``.
    rng : numpy.random.Generator
    n_init : int
        Runs with different k-means++ draws; the lowest inertia wins.
    max_iter : int
    tol : float
        Also stop when the centres move less than ``tol`` times the mean feature variance
        (squared, summed over centres), as scikit-learn's KMeans does.

    Notes
    -----
    The free centres are drawn by greedy k-means++ (Arthur & Vassilvitskii 2007, with
    the local trials of scikit-learn's implementation): each step draws
    ``2 + int(log n_clusters)`` candidates by D^2 sampling and keeps the one that lowers
    the potential most, all candidates' distances in one matrix product. Every Lloyd
    iteration is one parallel pass over the samples (:func:`_bounded_pass`): nearest
    centre and the per-cluster sums of the next centres together, with Hamerly's (2010)
    distance bounds skipping the samples whose centre cannot have changed. The
    partitions are those of plain Lloyd iterations.
    """
    X64 = np.ascontiguousarray(X, dtype=np.float64)
    clamp = np.ascontiguousarray(clamp, dtype=np.int64)
    n_classes = int(clamp.max()) + 1 if clamp.size and clamp.max() >= 0 else 0
    labeled = clamp >= 0
    class_centres = _class_means(X64[labeled], clamp[labeled], n_classes)
    threshold = tol * X64.var(axis=0).mean()
    sq_norms = np.einsum("ij,ij->i", X64, X64)
    free = np.flatnonzero(~labeled)
    n_trials = 2 + int(np.log(max(n_clusters, 1)))
    best = None
    for _ in range(n_init):
        centres = _plus_plus(X64, sq_norms, free, class_centres, n_clusters, rng, n_trials)
        run = _lloyd(X64, clamp, centres, max_iter, threshold, sq_norms)
        if best is None or run.inertia < best.inertia:
            best = run
    return best


def _class_means(X, classes, n_classes):
    sums = np.zeros((n_classes, X.shape[1]))
    np.add.at(sums, classes, X)
    return sums / np.bincount(classes, minlength=n_classes)[:, None]


def _squared_distances(X, sq_norms, rows, centres):
    """``|X[rows] - c|^2`` for every centre ``c``, shape (len(centres), len(rows)), >= 0."""
    c_sq = np.einsum("ij,ij->i", centres, centres)
    d2 = centres @ X[rows].T
    d2 *= -2.0
    d2 += c_sq[:, None]
    d2 += sq_norms[rows][None, :]
    return np.maximum(d2, 0.0, out=d2)


def _plus_plus(X, sq_norms, free, centres, n_clusters, rng, n_trials):
    """Extend ``centres`` to ``n_clusters`` rows by greedy D^2 sampling among ``X[free]``."""
    chosen = list(centres)
    if len(chosen) >= n_clusters:
        return np.array(chosen).reshape(len(chosen), X.shape[1])
    if not chosen:
        chosen.append(X[free[rng.integers(free.shape[0])]])
    d2 = _squared_distances(X, sq_norms, free, np.array(chosen)).min(axis=0)
    while len(chosen) < n_clusters:
        total = d2.sum()
        if total > 0:
            cumulative = np.cumsum(d2)
            draws = rng.uniform(size=n_trials) * cumulative[-1]
            candidates = np.minimum(np.searchsorted(cumulative, draws), free.shape[0] - 1)
        else:  # every free sample sits on a centre
            candidates = rng.integers(free.shape[0], size=n_trials)
        trial = _squared_distances(X, sq_norms, free, X[free[candidates]])
        np.minimum(trial, d2[None, :], out=trial)
        pick = int(np.argmin(trial.sum(axis=1)))
        chosen.append(X[free[candidates[pick]]])
        d2 = trial[pick]
    return np.array(chosen)


def _lloyd(X, clamp, centres, max_iter, threshold, sq_norms):
    """Lloyd's iterations from ``centres``, with Hamerly's bounds to skip distances.

    Every pass (:func:`_bounded_pass`) gives each free sample its nearest centre, exactly
    as a full search would, but computes all K distances only for the samples whose
    bounds no longer prove their assignment; the per-cluster sums of the next centres
    come from the same pass.
    """
    n, d = X.shape
    K = centres.shape[0]
    parallel = n * K * d >= _PARALLEL_MIN_WORK and n_threads() > 1
    n_chunks = max(1, min(n, 4 * n_threads())) if parallel else 1
    kernel = _bounded_pass if parallel else _bounded_pass_serial
    labels = np.empty(n, dtype=np.int64)
    upper = np.empty(n)
    lower = np.empty(n)
    sums = np.empty((n_chunks, K, d))
    counts = np.empty((n_chunks, K))
    changed = np.empty(n_chunks, dtype=np.int64)
    centres = np.ascontiguousarray(centres, dtype=np.float64)
    moved = np.zeros(K)
    kernel(X, sq_norms, centres, clamp, labels, upper, lower, moved, True, sums, counts, changed)
    converged = False
    n_iter = 0
    while n_iter < max_iter:
        n_iter += 1
        total = counts.sum(axis=0)
        new = sums.sum(axis=0) / np.maximum(total, 1.0)[:, None]
        empty = np.flatnonzero(total == 0)
        if empty.size:  # an empty cluster takes the worst free sample
            dist = _exact_distances(X, sq_norms, centres, labels)
            for k in empty:
                free_dist = np.where(clamp >= 0, -1.0, dist)
                far = int(np.argmax(free_dist))
                new[k] = X[far]
                dist[far] = 0.0
        step = new - centres
        shift = (step**2).sum()
        moved = np.sqrt((step**2).sum(axis=1))
        centres = new
        kernel(
            X, sq_norms, centres, clamp, labels, upper, lower, moved, False, sums, counts, changed
        )
        if not changed.any() or shift <= threshold:
            converged = True
            break
    dist = _exact_distances(X, sq_norms, centres, labels)
    return SeededKMeansResult(labels, centres, float(dist.sum()), n_iter, converged)


def _exact_distances(X, sq_norms, centres, labels):
    """Squared distance of every sample to its centre, in the form the passes use."""
    c_sq = np.einsum("ij,ij->i", centres, centres)
    dots = np.einsum("ij,ij->i", X, centres[labels])
    return np.maximum(sq_norms + c_sq[labels] - 2.0 * dots, 0.0)


# Multiply-adds of a Lloyd pass (n K d) below which one thread is faster.
_PARALLEL_MIN_WORK = 1 << 20


# Relative slack of the distance bounds, far above the rounding of the distances.
_BOUND_SLACK = 1e-9


@njit(parallel=True, cache=True, fastmath={"reassoc", "contract", "nsz", "arcp"})
def _bounded_pass(
    X, sq_norms, centres, clamp, labels, upper, lower, moved, first, sums, counts, changed
):
    """One Lloyd assignment with Hamerly's bounds, and the per-cluster sums.

    Squared distances are ``|x|^2 - 2 x.c + |c|^2`` (clipped at zero); ``upper[i]``
    bounds the distance of sample ``i`` to its centre from above, ``lower[i]`` that to
    every other centre from below (both with a relative slack of ``_BOUND_SLACK``, so
    rounding cannot make them wrong). A free sample keeps its centre without any distance
    computed when ``upper <= max(lower, half the gap to its centre's nearest other
    centre)``; otherwise its own distance is recomputed, and if that does not settle it,
    all K. Labeled samples keep their class's cluster (no bounds).

    IN: X (n, d) float64; sq_norms (n,); centres (K, d); clamp (n,) int64;
        moved (K,): how far each centre moved since the last pass; first: no bounds yet
        (full search for every free sample).
    IN/OUT: labels (n,) int64; upper, lower (n,) float64.
    OUT: sums (n_chunks, K, d), counts (n_chunks, K): per-block cluster sums and sizes;
        changed (n_chunks,): labels changed per block.
    """
    n, d = X.shape
    K = centres.shape[0]
    n_chunks = sums.shape[0]
    c_sq = np.empty(K)
    for k in range(K):
        total = 0.0
        for j in range(d):
            total += centres[k, j] * centres[k, j]
        c_sq[k] = total
    half_gap = np.full(K, np.inf)  # half the distance to the nearest other centre
    for k in range(K):
        for m in range(k + 1, K):
            gap = 0.0
            for j in range(d):
                diff = centres[k, j] - centres[m, j]
                gap += diff * diff
            gap = 0.5 * np.sqrt(gap) * (1.0 - _BOUND_SLACK)
            half_gap[k] = min(half_gap[k], gap)
            half_gap[m] = min(half_gap[m], gap)
    top = 0.0  # the largest move, and the largest but the owner's own
    second = 0.0
    for k in range(K):
        if moved[k] > top:
            second = top
            top = moved[k]
        elif moved[k] > second:
            second = moved[k]
    for b in prange(n_chunks):
        block_sums = sums[b]
        block_counts = counts[b]
        block_sums[:, :] = 0.0
        block_counts[:] = 0.0
        n_changed = 0
        for i in range(b * n // n_chunks, (b + 1) * n // n_chunks):
            x = X[i]
            best = clamp[i]
            if best < 0:
                search = first
                if not first:
                    best = labels[i]
                    upper[i] += moved[best]
                    lower[i] -= second if moved[best] == top else top
                    bound = max(lower[i], half_gap[best])
                    if upper[i] > bound:
                        dot = 0.0
                        for j in range(d):
                            dot += x[j] * centres[best, j]
                        upper[i] = np.sqrt(max(sq_norms[i] + c_sq[best] - 2.0 * dot, 0.0))
                        upper[i] *= 1.0 + _BOUND_SLACK
                        search = upper[i] > bound
                if search:
                    previous = labels[i]
                    best = 0
                    best_d = np.inf
                    next_d = np.inf
                    for k in range(K):
                        dot = 0.0
                        for j in range(d):
                            dot += x[j] * centres[k, j]
                        value = c_sq[k] - 2.0 * dot
                        if value < best_d:
                            next_d = best_d
                            best_d = value
                            best = k
                        elif value < next_d:
                            next_d = value
                    upper[i] = np.sqrt(max(sq_norms[i] + best_d, 0.0)) * (1.0 + _BOUND_SLACK)
                    lower[i] = np.sqrt(max(sq_norms[i] + next_d, 0.0)) * (1.0 - _BOUND_SLACK)
                    if first or best != previous:
                        n_changed += 1
                labels[i] = best
            else:
                if first or labels[i] != best:
                    n_changed += 1
                labels[i] = best
            block_counts[best] += 1.0
            row = block_sums[best]
            for j in range(d):
                row[j] += x[j]
        changed[b] = n_changed


_bounded_pass_serial = serial_twin(_bounded_pass, "_bounded_pass_serial")
