"""Semi-supervised k-means: the generalized-category-discovery baseline (Vaze et al., 2022).

Labeled samples stay with their class's cluster through every Lloyd iteration. The
centres of the ``n_classes`` labeled classes start at their labeled means; the remaining
centres are drawn by k-means++ (D^2 sampling) from the unlabeled samples, given the class
centres already placed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

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
    """
    X64 = np.asarray(X, dtype=np.float64)
    n_classes = int(clamp.max()) + 1 if clamp.size and clamp.max() >= 0 else 0
    labeled = clamp >= 0
    class_centres = _class_means(X64[labeled], clamp[labeled], n_classes)
    threshold = tol * X64.var(axis=0).mean()
    best = None
    for _ in range(n_init):
        centres = _plus_plus(X64[~labeled], class_centres, n_clusters, rng)
        run = _lloyd(X64, clamp, centres, max_iter, threshold)
        if best is None or run.inertia < best.inertia:
            best = run
    return best


def _class_means(X, classes, n_classes):
    sums = np.zeros((n_classes, X.shape[1]))
    np.add.at(sums, classes, X)
    return sums / np.bincount(classes, minlength=n_classes)[:, None]


def _plus_plus(free, centres, n_clusters, rng):
    """Extend ``centres`` to ``n_clusters`` rows by D^2 sampling among ``free`` samples."""
    chosen = list(centres)
    if not chosen:
        chosen.append(free[rng.integers(free.shape[0])])
    d2 = np.min([((free - c) ** 2).sum(axis=1) for c in chosen], axis=0)
    while len(chosen) < n_clusters:
        total = d2.sum()
        pick = rng.choice(free.shape[0], p=d2 / total) if total > 0 else rng.integers(free.shape[0])
        chosen.append(free[pick])
        d2 = np.minimum(d2, ((free - free[pick]) ** 2).sum(axis=1))
    return np.array(chosen)


def _assign(X, centres, clamp, sq_norms):
    # Not ._backend.squared_distances: that one recomputes the squared norms of the rows
    # on every call and clips the whole (n, K) matrix, which made seeded_kmeans 1.2-1.6x
    # slower on low-dimensional data (n = 2,000-20,000, d = 2, K = 5). Same arithmetic
    # otherwise: keep the two in step.
    d2 = sq_norms[:, None] - 2.0 * X @ centres.T + (centres**2).sum(axis=1)
    labels = np.where(clamp >= 0, clamp, np.argmin(d2, axis=1))
    return labels, np.maximum(d2[np.arange(X.shape[0]), labels], 0.0)


def _lloyd(X, clamp, centres, max_iter, threshold):
    n, K = X.shape[0], centres.shape[0]
    sq_norms = (X**2).sum(axis=1)
    labels, dist = _assign(X, centres, clamp, sq_norms)
    converged = False
    n_iter = 0
    while n_iter < max_iter:
        n_iter += 1
        onehot = sp.csr_matrix((np.ones(n), (labels, np.arange(n))), shape=(K, n))
        counts = np.bincount(labels, minlength=K)
        new = np.asarray(onehot @ X) / np.maximum(counts, 1)[:, None]
        for k in np.flatnonzero(counts == 0):  # an empty cluster takes the worst free sample
            free_dist = np.where(clamp >= 0, -1.0, dist)
            far = int(np.argmax(free_dist))
            new[k] = X[far]
            dist[far] = 0.0
        shift = ((new - centres) ** 2).sum()
        centres = new
        new_labels, dist = _assign(X, centres, clamp, sq_norms)
        unchanged = np.array_equal(new_labels, labels)
        labels = new_labels
        if unchanged or shift <= threshold:
            converged = True
            break
    return SeededKMeansResult(labels, centres, float(dist.sum()), n_iter, converged)
