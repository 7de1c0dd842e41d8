"""k-nearest-neighbour affinities for Laplacian regularisation (sparse CSR matrices).

Two builders share one assembly step:

- :func:`knn_affinity` for one point set, with exact neighbours from scikit-learn's
  :class:`~sklearn.neighbors.NearestNeighbors`;
- :func:`batched_knn_affinity` for many small point sets of equal size (the tasks of a
  few-shot run), with exact neighbours from every set's pairwise distances, sets in
  parallel. It returns one block-diagonal matrix, so the bound optimizer treats all tasks
  as a single sparse problem.

A point is never its own neighbour. Weights are binary or Gaussian,
``w_pq = exp(-||x_p - x_q||^2 / (2 sigma^2))`` with ``sigma^2`` the mean squared distance
to the neighbours (per point set). Symmetrising with ``(W + W^T) / 2`` makes the
Laplacian term a quadratic form whose bound the optimizer minimises exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from sklearn.neighbors import NearestNeighbors

from ._graph_kernels import batched_nearest

__all__ = ["KnnGraph", "batched_knn_affinity", "knn_affinity"]

WEIGHTS = ("binary", "gaussian")


@dataclass(frozen=True)
class KnnGraph:
    """A kNN affinity and the kernel bandwidth measured on it.

    Attributes
    ----------
    affinity : scipy.sparse.csr_matrix of shape (n_points, n_points)
        Block-diagonal when built for several point sets.
    sigma2 : ndarray of shape (n_sets,)
        Mean squared distance from a point to its neighbours, per point set.
    """

    affinity: sp.csr_matrix
    sigma2: np.ndarray


def check_neighbors(n_neighbors, n_points):
    """A point is not its own neighbour: each set needs more points than n_neighbors."""
    if n_neighbors >= n_points:
        raise ValueError(
            f"n_neighbors={n_neighbors} must be smaller than the number of points in a "
            f"set, n_samples={n_points}: a point is not its own neighbour."
        )


def _check_distance_range(X):
    """Squared distances, at most 4 max ||x||^2, must stay within the float64 range."""
    with np.errstate(over="ignore"):
        largest = 4.0 * np.max(np.einsum("...d,...d->...", X, X, dtype=np.float64))
    if not np.isfinite(largest):
        raise ValueError(
            "Squared distances between points may overflow the floating-point range: "
            "rescale the features."
        )


def _assemble(neighbors, sq_dist, *, weights, symmetrize):
    """CSR affinity from neighbour indices and squared distances of shape (n_sets, n, k).

    ``neighbors`` holds global row indices (set offset included).
    """
    if weights not in WEIGHTS:
        raise ValueError(f"weights must be one of {WEIGHTS}, got {weights!r}.")
    n_sets, n, k = neighbors.shape
    sigma2 = sq_dist.reshape(n_sets, -1).mean(axis=1)
    if weights == "binary":
        values = np.ones(neighbors.size)
    else:
        # Identical points give sigma2 = 0: their weights are 1, like binary ones.
        scale = np.where(sigma2 > 0, 2.0 * sigma2, 1.0)
        values = np.exp(-sq_dist / scale[:, None, None]).ravel()
    n_points = n_sets * n
    indptr = np.arange(0, n_points * k + 1, k)
    W = sp.csr_matrix((values, neighbors.ravel(), indptr), shape=(n_points, n_points))
    if symmetrize:
        W = ((W + W.T) * 0.5).tocsr()
    W.sort_indices()
    return KnnGraph(affinity=W, sigma2=sigma2)


def knn_affinity(X, n_neighbors, *, weights="binary", symmetrize=True):
    """kNN affinity of one point set, neighbours found exactly.

    Parameters
    ----------
    X : ndarray of shape (n_points, n_features)
    n_neighbors : int
        Neighbours per point, the point itself not counted.
    weights : {"binary", "gaussian"}
    symmetrize : bool
        Return ``(W + W^T) / 2``.

    Returns
    -------
    KnnGraph

    Examples
    --------
    >>> import numpy as np
    >>> from clusterlab.solvers.graph import knn_affinity
    >>> X = np.array([[0.0], [1.0], [3.0]])
    >>> knn_affinity(X, 1, symmetrize=False).affinity.toarray()
    array([[0., 1., 0.],
           [1., 0., 0.],
           [0., 1., 0.]])
    """
    X = np.asarray(X)
    n_points = X.shape[0]
    check_neighbors(n_neighbors, n_points)
    _check_distance_range(X)
    dist, neighbors = NearestNeighbors(n_neighbors=n_neighbors).fit(X).kneighbors()
    sq_dist = np.square(dist, dtype=np.float64)
    return _assemble(neighbors[None], sq_dist[None], weights=weights, symmetrize=symmetrize)


def batched_knn_affinity(X, n_neighbors, *, weights="binary", symmetrize=True):
    """Block-diagonal kNN affinity of many point sets of equal size.

    Parameters
    ----------
    X : ndarray of shape (n_sets, n_points, n_features)
        Set ``t`` occupies rows ``t * n_points`` to ``(t + 1) * n_points - 1`` of the result.
    n_neighbors, weights, symmetrize
        As in :func:`knn_affinity`, applied to each set separately.

    Returns
    -------
    KnnGraph
        ``affinity`` has shape (n_sets * n_points, n_sets * n_points).
    """
    X = np.ascontiguousarray(X, dtype=np.float64)
    n_sets, n, _ = X.shape
    check_neighbors(n_neighbors, n)
    _check_distance_range(X)
    neighbors = np.empty((n_sets, n, n_neighbors), dtype=np.int64)
    sq_dist = np.empty((n_sets, n, n_neighbors))
    batched_nearest(X, neighbors, sq_dist)
    return _assemble(neighbors, sq_dist, weights=weights, symmetrize=symmetrize)
