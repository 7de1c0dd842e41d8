"""Peer implementations that ``clusterlab``'s solvers are compared with.

Sinkhorn:

* :func:`swav_sinkhorn_numpy`: SwAV's ``distributed_sinkhorn`` procedure (Caron et al.,
  2020) transcribed to plain NumPy for a single process.
* :func:`pot_plan`: POT's ``ot.sinkhorn`` (method ``"sinkhorn"``: scaling vectors, or
  ``"sinkhorn_log"``: log domain, i.e. ``ot.bregman.sinkhorn_log``) on similarity scores.

In these three procedures one iteration is one column (prototype) scaling followed by one
row (sample) scaling, starting from uniform scalings, as in ``clusterlab``.

Laplacian-regularised bound optimizer (Ziko et al., 2018; 2020; 2021), written plainly with
NumPy, SciPy sparse matrices and scikit-learn's ``NearestNeighbors``, one problem at a
time, as the authors' released code runs:

* :func:`knn_graph_numpy`: binary kNN affinity ``(W + W^T) / 2``;
* :func:`bound_iterations_numpy`: ``Z <- rowsoftmax(-A + lam W Z)`` to a relative energy
  change of ``tol``;
* :func:`laplacian_kmeans_numpy`: rounds of bound iterations and K-means prototype updates
  from hard labels (Laplacian K-means, optionally with clamped labels);
* :func:`fewshot_task_numpy`: one transductive few-shot task (CL2N features, shifted
  queries, support clamped, Laplacian K-means).

POT is imported lazily, inside :func:`pot_plan`, so this module (used by the tests)
imports without it.
"""

from __future__ import annotations

import warnings

import numpy as np
import scipy.sparse as sp
from scipy.special import xlogy
from sklearn.neighbors import NearestNeighbors

__all__ = [
    "bound_iterations_numpy",
    "fewshot_task_numpy",
    "knn_graph_numpy",
    "laplacian_energy_numpy",
    "laplacian_kmeans_numpy",
    "pot_plan",
    "swav_sinkhorn_numpy",
]


def swav_sinkhorn_numpy(scores, eps, n_iter):
    """SwAV's Sinkhorn-Knopp codes in plain NumPy, in the dtype of ``scores``.

    ``Q = exp(S / eps)^T`` (prototypes x samples) is normalised to unit mass, then each
    iteration gives every prototype mass ``1 / K`` and every sample mass ``1 / B``.
    Returns the codes ``B * Q^T`` (samples x prototypes), rows summing to one. No
    log-domain safeguard: as in SwAV, ``exp(S / eps)`` must not overflow.
    """
    scores = np.asarray(scores)
    Q = np.exp(scores / scores.dtype.type(eps)).T
    K, B = Q.shape
    Q /= Q.sum()
    for _ in range(n_iter):
        Q /= Q.sum(axis=1, keepdims=True)  # prototype loads
        Q /= K
        Q /= Q.sum(axis=0, keepdims=True)  # sample masses
        Q /= B
    return (Q * B).T


def swav_sinkhorn_torch(scores, eps, n_iter):
    """SwAV's ``distributed_sinkhorn`` (one process) in PyTorch, as its algorithm reads.

    The same steps as :func:`swav_sinkhorn_numpy` on a tensor, under ``no_grad``, with
    in-place divisions: the peer for the PyTorch path of ``clusterlab.sinkhorn_codes``.
    """
    import torch

    with torch.no_grad():
        Q = torch.exp(scores / eps).t()
        K, B = Q.shape
        Q /= torch.sum(Q)
        for _ in range(n_iter):
            Q /= torch.sum(Q, dim=1, keepdim=True)  # prototype loads
            Q /= K
            Q /= torch.sum(Q, dim=0, keepdim=True)  # sample masses
            Q /= B
        Q *= B
        return Q.t()


def pot_plan(scores, eps, a=None, b=None, method="sinkhorn", **kw):
    """POT's entropic plan for similarity ``scores`` (cost ``M = -scores``, ``reg = eps``).

    ``method`` is ``"sinkhorn"`` (scaling vectors, ``ot.bregman.sinkhorn_knopp``) or
    ``"sinkhorn_log"`` (``ot.bregman.sinkhorn_log``), both run through ``ot.sinkhorn``;
    extra keywords (``numItermax``, ``stopThr``, ...) go to POT.
    Uniform marginals in the dtype of ``scores`` by default. POT's warnings are caught,
    not shown.

    Returns ``(plan, n_iter, messages)``: the plan, the iterations POT ran and the text of
    the warnings it issued.
    """
    import ot

    if method not in ("sinkhorn", "sinkhorn_log"):
        raise ValueError(f"method must be 'sinkhorn' or 'sinkhorn_log', got {method!r}.")
    scores = np.asarray(scores)
    n, K = scores.shape
    dtype = scores.dtype
    a = np.full(n, 1.0 / n, dtype) if a is None else np.asarray(a, dtype)
    b = np.full(K, 1.0 / K, dtype) if b is None else np.asarray(b, dtype)
    with warnings.catch_warnings(record=True) as caught, np.errstate(all="ignore"):
        warnings.simplefilter("always")
        plan, log = ot.sinkhorn(a, b, -scores, eps, method=method, log=True, **kw)
    messages = sorted({str(w.message) for w in caught})
    return plan, int(log["niter"]) + 1, messages


# -- Laplacian-regularised bound optimizer ---------------------------------------------------


def knn_graph_numpy(X, n_neighbors):
    """Binary kNN affinity of the rows of ``X``, symmetrised, and ``sigma^2``.

    ``w_pq = 1`` when ``q`` is among the ``n_neighbors`` nearest points of ``p`` (a point is
    not its own neighbour), then ``W <- (W + W^T) / 2``. ``sigma^2`` is the mean squared
    distance from a point to its neighbours.

    Returns ``(W, sigma2)``: a CSR matrix of shape (n, n) and a float.
    """
    dist, neighbors = NearestNeighbors(n_neighbors=n_neighbors).fit(X).kneighbors()
    n = X.shape[0]
    rows = np.repeat(np.arange(n), n_neighbors)
    W = sp.csr_matrix((np.ones(n * n_neighbors), (rows, neighbors.ravel())), shape=(n, n))
    W = ((W + W.T) / 2).tocsr()
    return W, float(np.mean(dist**2))


def _squared_distances(X, M):
    """``D[p, l] = ||x_p - m_l||^2``, one prototype at a time (memory O(n d))."""
    return np.stack([np.sum((X - m) ** 2, axis=1) for m in M], axis=1)


def _softmax_rows(logits):
    """Row-wise softmax, shifted by the row maximum."""
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def laplacian_energy_numpy(A, Z, W, lam):
    """Relaxed energy ``sum(A Z) + sum(Z log Z) - lam / 2 sum(Z * (W Z))``."""
    return np.sum(A * Z) + np.sum(xlogy(Z, Z)) - 0.5 * lam * np.sum(Z * (W @ Z))


def bound_iterations_numpy(A, W, lam, clamp, *, tol=1e-6, max_iter=1000):
    """Bound iterations for unary costs ``A`` (n, L) and affinity ``W`` (n, n).

    Start from ``Z = rowsoftmax(-A)``; then ``Z <- rowsoftmax(-A + lam W Z)``. Rows with
    ``clamp >= 0`` are one-hot at their label in every iterate. Iterate ``i`` is returned
    as soon as ``|E_i - E_{i-1}| <= tol |E_{i-1}|`` (``i > 0``) or ``i == max_iter``.

    Returns ``(Z, energies)``: the last iterate and the energy of every iterate, the
    initial one first (``len(energies) - 1`` iterations were run).
    """
    labeled = clamp >= 0
    one_hot = np.eye(A.shape[1])[clamp[labeled]]

    def clamped_softmax(logits):
        Z = _softmax_rows(logits)
        Z[labeled] = one_hot
        return Z

    Z = clamped_softmax(-A)
    energies = [laplacian_energy_numpy(A, Z, W, lam)]
    for _ in range(max_iter):
        Z = clamped_softmax(-A + lam * (W @ Z))
        energies.append(laplacian_energy_numpy(A, Z, W, lam))
        if abs(energies[-1] - energies[-2]) <= tol * abs(energies[-2]):
            break
    return Z, np.array(energies)


def laplacian_kmeans_numpy(
    X,
    W,
    lam,
    init_centers,
    *,
    clamp=None,
    cost_scale=1.0,
    tol=1e-6,
    max_iter=100,
    max_bound_iter=1000,
):
    """Laplacian K-means on one problem, by bound iterations and prototype means.

    Unary costs ``A = ||x_p - m_l||^2 / cost_scale``. Each round runs
    :func:`bound_iterations_numpy`, takes the hard labels ``argmax Z``, and moves every
    prototype to the mean of its points. The loop stops (at most ``max_iter`` rounds)

    * when a label gets no point: the previous labels and prototypes are kept (before the
      first round, the previous labels are the nearest prototypes', clamped rows at their
      label);
    * when, after the first round, the labels equal the previous round's.

    Parameters
    ----------
    X : ndarray of shape (n, d)
    W : sparse matrix of shape (n, n), symmetric
    lam : float
    init_centers : ndarray of shape (L, d)
    clamp : ndarray of shape (n,) of int, optional
        Label of each clamped point, -1 for free points.
    cost_scale : float
    tol, max_bound_iter
        Passed to :func:`bound_iterations_numpy`.

    Returns
    -------
    labels : ndarray of shape (n,)
    centers : ndarray of shape (L, d)
    """
    n, n_labels = X.shape[0], init_centers.shape[0]
    clamp = np.full(n, -1) if clamp is None else np.asarray(clamp)
    centers = np.array(init_centers, dtype=np.float64)
    A = _squared_distances(X, centers) / cost_scale
    labels = np.where(clamp >= 0, clamp, A.argmin(axis=1))
    for round_ in range(max_iter):
        Z, _ = bound_iterations_numpy(A, W, lam, clamp, tol=tol, max_iter=max_bound_iter)
        new_labels = Z.argmax(axis=1)
        if np.bincount(new_labels, minlength=n_labels).min() == 0:
            break
        if round_ > 0 and np.array_equal(new_labels, labels):
            break
        labels = new_labels
        centers = np.stack([X[labels == label].mean(axis=0) for label in range(n_labels)])
        A = _squared_distances(X, centers) / cost_scale
    return labels, centers


def fewshot_task_numpy(
    Xs, ys, Xq, *, base_mean, lam, n_neighbors, tol=1e-6, max_iter=100, max_bound_iter=1000
):
    """Transductive few-shot inference of one task (Laplacian K-means, support clamped).

    Features are "CL2N" (``base_mean`` subtracted, rows scaled to unit norm), then the
    queries are shifted by ``mean(support) - mean(queries)``. The points (support, then
    queries) get a binary kNN graph (:func:`knn_graph_numpy`); the prototypes start at the
    support class means and the support points are clamped to their class
    (:func:`laplacian_kmeans_numpy`, costs not rescaled).

    Parameters
    ----------
    Xs : ndarray of shape (s, d)
    ys : ndarray of shape (s,)
    Xq : ndarray of shape (q, d)
    base_mean : ndarray of shape (d,)

    Returns
    -------
    ndarray of shape (q,): the predicted class of every query.
    """
    classes, codes = np.unique(ys, return_inverse=True)

    def cl2n(F):
        F = F - base_mean
        norms = np.linalg.norm(F, axis=1, keepdims=True)
        return F / np.where(norms > 0, norms, 1.0)

    support, queries = cl2n(Xs), cl2n(Xq)
    queries = queries + (support.mean(axis=0) - queries.mean(axis=0))
    points = np.vstack([support, queries])
    W, _ = knn_graph_numpy(points, n_neighbors)
    means = np.stack([support[codes == c].mean(axis=0) for c in range(classes.size)])
    clamp = np.concatenate([codes, np.full(queries.shape[0], -1)])
    labels, _ = laplacian_kmeans_numpy(
        points,
        W,
        lam,
        means,
        clamp=clamp,
        tol=tol,
        max_iter=max_iter,
        max_bound_iter=max_bound_iter,
    )
    return classes[labels[support.shape[0] :]]
