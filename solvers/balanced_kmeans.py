r"""Balanced k-means by entropic transport: one run from given centres, and k-means++.

A run alternates (1) the entropic transport of the samples onto the centres, with column
marginals ``proportions`` (:func:`clusterlab.solvers.sinkhorn.sinkhorn`), and (2) the
centroid update ``c_k = sum_i Q_ik x_i / sum_i Q_ik``. Both steps decrease the entropic
k-means objective

.. math:: n \sum_{ik} Q_{ik} \|x_i - c_k\|^2 - 2 v \varepsilon\, n H(Q)

(:func:`objective`), where the scores are ``-||x - c||^2 / (2 v)``, or cosines of unit
vectors (``spherical``, ``v = 1``).

The functions take validated arrays in the space the scores use (centred, or unit-norm;
see :class:`clusterlab.SinkhornKMeans`) and check nothing. NumPy arrays run the Numba
Sinkhorn kernels; any other array-API array (PyTorch on CPU or CUDA, CuPy,
``array_api_strict``) runs on its own device, and the results are arrays of its
namespace. A centroid update brings three scalars to the host in one transfer (the
centre shift for the convergence test and the two terms of the objective); the
k-means++ draws come from a NumPy ``RandomState`` and travel to the device.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from . import sinkhorn as _sk
from ._backend import (
    accumulation_dtype,
    device,
    get_namespace,
    host_floats,
    squared_distances,
)

__all__ = [
    "BalancedKMeansResult",
    "kmeans_plusplus",
    "objective",
    "renormalised",
    "run_updates",
    "scores",
    "single_run",
    "transport",
]


@dataclass(frozen=True)
class BalancedKMeansResult:
    """Outcome of :func:`single_run`.

    Attributes
    ----------
    centers : array of shape (n_clusters, n_features)
        Final centres, in the namespace, device and dtype of ``X`` (in the space of the
        scores: centred, or unit-norm).
    objective_history : ndarray of float64
        The objective after every centroid update.
    n_iter : int
        Centroid updates run.
    converged : bool
        Whether the squared centre shift reached ``tol * scale``.
    potentials : array of shape (n_clusters,)
        Column potentials of the last transport: a warm start for the final assignment.
    """

    centers: object
    objective_history: np.ndarray
    n_iter: int
    converged: bool
    potentials: object = None

    @property
    def objective(self) -> float:
        """The last value of ``objective_history``."""
        return float(self.objective_history[-1])


def scores(X, centers, *, spherical, scale, distances=None):
    """Scores of the samples against the centres: cosines, or ``-||x - c||^2 / (2 scale)``.

    ``distances`` are the squared distances of ``X`` to ``centers`` when already formed
    (Euclidean scores only).
    """
    if spherical:
        out = X @ centers.T
        return np.ascontiguousarray(out) if isinstance(out, np.ndarray) else out
    if distances is None:
        distances = squared_distances(get_namespace(X, centers), X, centers)
    return (-0.5 / scale) * distances


def transport(
    X,
    centers,
    proportions,
    *,
    spherical,
    scale,
    eps,
    tol,
    max_iter,
    init=None,
    plan_mass=None,
    distances=None,
):
    """The entropic transport of the samples (uniform weights) onto the centres.

    ``proportions`` are the column marginals (float64, in ``X``'s namespace and device);
    ``init`` the column potentials of an earlier solve; ``plan_mass`` the row sums of the
    returned plan (``1 / n`` by default). Returns the
    :class:`~clusterlab.solvers.sinkhorn.SinkhornResult`; no warning is issued.
    """
    S = scores(X, centers, spherical=spherical, scale=scale, distances=distances)
    return _sk.sinkhorn(
        S,
        eps,
        None,
        proportions,
        tol=tol,
        max_iter=max_iter,
        init=init,
        plan_mass=plan_mass,
    )


def renormalised(xp, centers, previous):
    """Unit-norm centres; a centre whose weighted mean vanished keeps its previous value."""
    norms = xp.linalg.vector_norm(centers, axis=1, keepdims=True)
    nonzero = norms > 0
    return xp.where(nonzero, centers / xp.where(nonzero, norms, xp.ones_like(norms)), previous)


def _objective_terms(xp, plan, distances):
    """``<Q, D>`` and ``H(Q) = -sum Q log Q`` as 0-d arrays (``0 log 0 = 0``)."""
    cost = xp.sum(plan * distances)
    # log of 1 where the plan underflowed to 0: no -inf, no 0 * -inf
    safe = xp.where(plan > 0, plan, xp.ones_like(plan))
    entropy = -xp.sum(plan * xp.log(safe))
    return cost, entropy


def objective(X, plan, centers, *, scale, eps):
    """``n <Q, D> - 2 scale eps n H(Q)``, ``D`` the squared distances: what the transport
    (over Q, at fixed centres) and the centroid update (over C, at fixed Q) both
    decrease (the scores are ``-D / (2 scale)``, or ``1 - D / 2`` for cosines)."""
    xp = get_namespace(X, plan, centers)
    cost, entropy = host_floats(xp, *_objective_terms(xp, plan, squared_distances(xp, X, centers)))
    return X.shape[0] * (cost - 2.0 * scale * eps * entropy)


def single_run(
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
):
    """One balanced k-means run from ``centers`` (the analogue of scikit-learn's
    ``_kmeans_single_lloyd``).

    Parameters
    ----------
    X : array of shape (n, d), float32 or float64
        Samples in the space of the scores (centred, or unit rows when ``spherical``).
    centers : array of shape (K, d)
        Initial centres, same namespace, device and dtype as ``X``.
    proportions : float64 array of shape (K,)
        Cluster proportions (column marginals), in ``X``'s namespace and device.
    spherical : bool
        Cosine scores; the centres are renormalised after every update.
    scale : float
        ``v``, the unit of the squared distances in the Euclidean scores.
    eps : float
        Entropic regularisation.
    max_iter : int
        Centroid updates at most.
    tol : float
        Stop once the squared centre shift is at most ``tol * scale``.
    sinkhorn_tol, sinkhorn_max_iter : float, int
        Of each transport solve (each warm-starts from the previous one's potentials).
    callback : callable or None
        Called as ``callback(n_iter, objective)`` after every centroid update.

    Returns
    -------
    BalancedKMeansResult
    """
    xp = get_namespace(X, centers)
    distances = None

    def step(centers, g):
        nonlocal distances
        # inner solves only steer the centroids: the caller checks the final assignment
        result = transport(
            X,
            centers,
            proportions,
            spherical=spherical,
            scale=scale,
            eps=eps,
            tol=sinkhorn_tol,
            max_iter=sinkhorn_max_iter,
            init=g,
            distances=distances,
        )
        plan = result.plan
        mass = xp.sum(plan, axis=0)
        new_centers = xp.astype((plan.T @ X) / mass[:, None], X.dtype, copy=False)
        if spherical:
            new_centers = renormalised(xp, new_centers, centers)
        shift = xp.sum((new_centers - centers) ** 2)
        # the distances at the new centres serve the objective and the next scores
        distances = squared_distances(xp, X, new_centers)
        cost, entropy = _objective_terms(xp, plan, distances)
        shift, cost, entropy = host_floats(xp, shift, cost, entropy)  # one sync
        return new_centers, result.g, shift, cost, entropy

    return run_updates(
        step,
        centers,
        n=X.shape[0],
        scale=scale,
        eps=eps,
        max_iter=max_iter,
        tol=tol,
        callback=callback,
    )


def run_updates(step, centers, *, n, scale, eps, max_iter, tol, callback=None):
    """The centroid-update loop of a balanced k-means run, whatever computes the updates.

    :func:`single_run` (in-memory arrays) and :func:`.dask_lloyd.balanced_run` (row-chunked
    Dask arrays) differ only in ``step``: ``step(centers, g)`` runs one transport from
    ``centers``, warm-started at the column potentials ``g`` of the previous one (None at
    first), and one centroid update; it returns ``(new_centers, g, shift, cost, entropy)``,
    the last three as Python floats: the squared centre shift, ``<Q, D>`` at the new
    centres and ``H(Q)``. The loop records the objective ``n (cost - 2 scale eps
    entropy)``, calls ``callback(n_iter, objective)`` and stops once ``shift <= tol *
    scale`` or after ``max_iter`` updates.

    Returns
    -------
    BalancedKMeansResult
    """
    history, g = [], None
    converged, n_iter = False, max_iter
    for it in range(1, max_iter + 1):
        centers, g, shift, cost, entropy = step(centers, g)
        value = n * (cost - 2.0 * scale * eps * entropy)
        history.append(value)
        if callback is not None:
            callback(it, value)
        if shift <= tol * scale:
            converged, n_iter = True, it
            break
    return BalancedKMeansResult(
        centers=centers,
        objective_history=np.asarray(history, dtype=np.float64),
        n_iter=n_iter,
        converged=converged,
        potentials=g,
    )


def kmeans_plusplus(X, n_clusters, rng, *, n_local_trials=None):
    """Greedy k-means++ centres (D^2 sampling) of ``X``, on ``X``'s device.

    As :func:`sklearn.cluster.kmeans_plusplus`: the first centre is a uniformly drawn
    sample; each next one is the best, by the potential it leaves, of
    ``n_local_trials`` (``2 + log K``) samples drawn with probability proportional to
    their squared distance to the nearest centre so far. The uniform draws come from
    ``rng`` (a NumPy ``RandomState``) on the host; the sampling itself (cumulative sums
    and a sorted search) runs on the device, without a host synchronisation.

    Returns an array of shape (n_clusters, n_features) of ``X``'s namespace and dtype.
    """
    xp = get_namespace(X)
    where = device(X)
    acc = accumulation_dtype(xp, where)
    n = X.shape[0]
    if n_local_trials is None:
        n_local_trials = 2 + int(math.log(n_clusters))
    first = int(rng.randint(n))
    chosen = [X[first : first + 1, :]]
    closest = xp.astype(squared_distances(xp, X, chosen[0])[:, 0], acc)
    for _ in range(1, n_clusters):
        draws = xp.asarray(rng.uniform(size=n_local_trials), dtype=acc, device=where)
        cumulative = xp.cumulative_sum(closest)
        # draws < 1, so every target is at most the total: indices stay below n
        candidate_ids = xp.searchsorted(cumulative, draws * cumulative[-1])
        candidates = xp.take(X, candidate_ids, axis=0)
        trial = xp.minimum(closest[:, None], xp.astype(squared_distances(xp, X, candidates), acc))
        best = xp.reshape(xp.argmin(xp.sum(trial, axis=0)), (1,))
        closest = xp.take(trial, best, axis=1)[:, 0]
        chosen.append(xp.take(candidates, best, axis=0))
    return xp.concat(chosen, axis=0)
