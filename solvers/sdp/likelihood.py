r"""Likelihood-adjusted SDP (LA-SDP) and its iteration iLA-SDP (Zhuang, Chen & Yang, ICML 2023).

Labels are parameters. With the centres profiled out, the negative log-likelihood of a
partition ``G`` and covariances ``Sigma`` is, up to ``n p log(2 pi) / 2``,

.. math::
    F(G, \Sigma) = \tfrac12 \sum_k \Big[\operatorname{tr}\big(\Sigma_k^{-1} S_k\big)
                   + n_k \log\det\Sigma_k\Big],\qquad
    S_k = X^T \big(\operatorname{diag}(Z_k \mathbf 1) - Z_k\big) X,\quad
    n_k = \mathbf 1^T Z_k \mathbf 1,

where ``Z_k = 1_{G_k} 1_{G_k}^T / n_k`` makes ``S_k`` the within-cluster scatter. Relaxing
each ``Z_k`` to the SDP cone gives the LA-SDP step (covariances fixed)

.. math::
    \min \sum_k \langle C_k, Z_k\rangle,\quad
    C_k = \tfrac12 D_k + \log\det\Sigma_k\, \mathbf 1\mathbf 1^T,\quad
    D_k(i, j) = \|x_i - x_j\|^2_{\Sigma_k^{-1}},

over ``Z_k >= 0, Z_k PSD, tr Z_k = 1, sum_k Z_k 1 = 1``; on a partition
``sum_k <C_k, Z_k> = 2 F``. Shrinkage adds ``lambda tr(Sigma_k^{-1}) / 2`` to ``F``, whose
minimiser over ``Sigma_k`` is then ``(S_k + lambda I) / n_k`` (diagonal and spherical
versions below). iLA-SDP alternates the two exact minimisations, so the relaxed ``F``
never increases; a step that would increase it (a low-rank solve that stopped short) is
discarded and the iteration stops.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.linalg import solve_triangular

from .exact import solve_exact
from .lowrank import BlockCost, solve_lowrank

__all__ = ["ILASDPResult", "MembershipBlocks", "ila_sdp", "negative_log_likelihood"]

# Rank of each low-rank membership block, and the random part of a start from labels.
_BLOCK_RANK = 2
_START_NOISE = 0.05


@dataclass
class MembershipBlocks:
    """What ``F`` needs from the membership matrices ``Z_1..Z_K``.

    Attributes
    ----------
    weights : ndarray of shape (n, K)
        Soft memberships ``w_ik = (Z_k 1)_i``; rows sum to one on the feasible set.
    moments : ndarray of shape (K, p, p)
        ``X^T Z_k X`` for the centred data.
    factors : list of ndarray or None
        Low-rank factors ``U_k`` (``Z_k = U_k U_k^T``), kept to warm-start the next step.
    """

    weights: np.ndarray
    moments: np.ndarray
    factors: list | None = None

    @property
    def counts(self):
        return self.weights.sum(axis=0)

    def scatters(self, X):
        """``S_k = X^T diag(w_k) X - X^T Z_k X``."""
        return np.einsum("ik,ia,ib->kab", self.weights, X, X, optimize=True) - self.moments

    @classmethod
    def from_labels(cls, X, labels, n_clusters, rng):
        n = X.shape[0]
        counts = np.bincount(labels, minlength=n_clusters).astype(np.float64)
        weights = np.zeros((n, n_clusters))
        weights[np.arange(n), labels] = 1.0
        sums = weights.T @ X
        moments = np.einsum("ka,kb->kab", sums, sums) / counts[:, None, None]
        factors = []
        for k in range(n_clusters):
            U = _START_NOISE * np.abs(rng.standard_normal((n, _BLOCK_RANK))) / np.sqrt(n)
            U[:, 0] += weights[:, k] / np.sqrt(counts[k])
            factors.append(U / np.linalg.norm(U))
        return cls(weights, moments, factors)

    @classmethod
    def from_factors(cls, X, factors):
        weights = np.column_stack([U @ U.sum(axis=0) for U in factors])
        projected = [X.T @ U for U in factors]
        moments = np.stack([P @ P.T for P in projected])
        return cls(weights, moments, factors)

    @classmethod
    def from_matrices(cls, X, matrices):
        weights = np.column_stack([Z.sum(axis=1) for Z in matrices])
        moments = np.stack([X.T @ (Z @ X) for Z in matrices])
        return cls(weights, moments)


def update_covariances(scatters, counts, covariance_type, ridge):
    """The minimiser of the shrunk ``F`` over ``Sigma`` given the memberships."""
    p = scatters.shape[1]
    if covariance_type == "full":
        return (scatters + ridge * np.eye(p)) / counts[:, None, None]
    diagonal = np.diagonal(scatters, axis1=1, axis2=2)
    if covariance_type == "diag":
        return (diagonal + ridge) / counts[:, None]
    return (diagonal.sum(axis=1) + p * ridge) / (p * counts)


def _as_full(covariances, covariance_type, p):
    if covariance_type == "full":
        return covariances
    if covariance_type == "diag":
        return np.stack([np.diag(v) for v in covariances])
    return covariances[:, None, None] * np.eye(p)


def negative_log_likelihood(scatters, counts, covariances, covariance_type, ridge):
    """``F`` with shrinkage.

    ``1/2 sum_k [tr(Sigma_k^-1 (S_k + ridge I)) + n_k log det Sigma_k]``.
    """
    p = scatters.shape[1]
    full = _as_full(covariances, covariance_type, p)
    chol = np.linalg.cholesky(full)
    log_det = 2.0 * np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(axis=1)
    shrunk = scatters + ridge * np.eye(p)
    trace = np.array([np.trace(np.linalg.solve(S, T)) for S, T in zip(full, shrunk, strict=True)])
    return 0.5 * float(np.sum(trace + counts * log_det))


def _costs(X, blocks, covariances, covariance_type):
    """The LA-SDP cost of each block in :class:`.lowrank.BlockCost` form, and their scale.

    ``D_k`` is translation invariant, so block k is whitened around its current mean.
    """
    p = X.shape[1]
    means = (blocks.weights.T @ X) / blocks.counts[:, None]
    full = _as_full(covariances, covariance_type, p)
    costs, log_dets = [], []
    for mean, Sigma in zip(means, full, strict=True):
        chol = np.linalg.cholesky(Sigma)
        W = solve_triangular(chol, (X - mean).T, lower=True).T
        log_dets.append(2.0 * np.log(np.diag(chol)).sum())
        costs.append((W, log_dets[-1]))
    # a point's share of 2F is about p + log det Sigma at a good fit
    scale = p + np.mean(np.abs(log_dets))
    root = np.sqrt(scale)
    return [BlockCost(W / root, np.sum(W * W, axis=1) / scale, c / scale) for W, c in costs], scale


@dataclass
class ILASDPResult:
    """Outcome of :func:`ila_sdp`.

    Attributes
    ----------
    labels : ndarray of shape (n,)
        ``argmax_k w_ik``.
    weights : ndarray of shape (n, K)
        Soft memberships of the last accepted step.
    means : ndarray of shape (K, p)
        ``sum_i w_ik x_i / n_k``.
    covariances : ndarray
        ``(K, p, p)``, ``(K, p)`` or ``(K,)`` by covariance type.
    objective_history : list of float
        ``F`` (with shrinkage) at the start and after every accepted step; never increases.
    n_iter : int
        Accepted LA-SDP steps.
    converged : bool
        Whether the relative change of ``F`` fell below ``tol``.
    stopped_on_increase : bool
        Whether the iteration stopped because a step would have increased ``F`` (that
        step is discarded).
    solver_statuses : list of str
    """

    labels: np.ndarray
    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray
    objective_history: list
    n_iter: int
    converged: bool
    stopped_on_increase: bool = False
    solver_statuses: list = field(default_factory=list)


def ila_sdp(
    X,
    init_labels,
    n_clusters,
    *,
    covariance_type="full",
    ridge=0.0,
    solver="lowrank",
    max_iter=50,
    tol=1e-4,
    rng,
    lowrank_options=None,
    exact_options=None,
    callback=None,
    warm_start=True,
):
    """Iterative likelihood-adjusted SDP from a starting partition.

    Parameters
    ----------
    X : ndarray of shape (n, p), float64
    init_labels : ndarray of shape (n,)
        Starting partition with every cluster non-empty.
    n_clusters : int
    covariance_type : {"full", "diag", "spherical"}
    ridge : float
        ``lambda`` of the shrinkage term (in squared units of X).
    solver : {"lowrank", "cvxpy"}
    max_iter : int
        LA-SDP steps at most.
    tol : float
        Stop when ``F`` decreases by less than ``tol * |F|``.
    rng : numpy.random.Generator
        For the random part of the low-rank starting factors.
    lowrank_options, exact_options : dict or None
        Passed to :func:`.lowrank.solve_lowrank` / :func:`.exact.solve_exact`.
    callback : callable or None
        ``callback(n_iter, F)`` after every accepted step.
    warm_start : bool
        Start every LA-SDP step after the first from the previous one: the low-rank
        factors and multipliers, or SCS's iterates (a low-rank step that raised ``F`` is
        redone once from the same factors with multipliers fitted to its own costs,
        before it is discarded). False (for comparisons): each
        low-rank step starts from the partition of the current memberships with fresh
        multipliers, and each cvxpy solve cold.
    """
    center = X.mean(axis=0)
    Xc = X - center
    blocks = MembershipBlocks.from_labels(Xc, init_labels, n_clusters, rng)
    covariances = update_covariances(blocks.scatters(Xc), blocks.counts, covariance_type, ridge)
    history = [
        negative_log_likelihood(
            blocks.scatters(Xc), blocks.counts, covariances, covariance_type, ridge
        )
    ]
    statuses = []
    multipliers = None
    converged = stopped_on_increase = False
    n_iter = 0
    while n_iter < max_iter:
        costs, _ = _costs(Xc, blocks, covariances, covariance_type)
        if not warm_start and n_iter > 0:
            labels = np.argmax(blocks.weights, axis=1)
            if np.all(np.bincount(labels, minlength=n_clusters) > 0):
                start = MembershipBlocks.from_labels(Xc, labels, n_clusters, rng)
                blocks = MembershipBlocks(blocks.weights, blocks.moments, start.factors)
            multipliers = None
        trial, status, multipliers = _la_step(
            Xc,
            costs,
            blocks,
            solver,
            multipliers,
            lowrank_options,
            exact_options,
            warm_start and n_iter > 0,
        )
        statuses.append(status)
        value, trial_cov = _evaluate(Xc, trial, covariance_type, ridge)
        previous = history[-1]
        if value > previous and solver == "lowrank" and warm_start and n_iter > 0:
            # The carried multipliers belong to the previous step's costs: from them the
            # augmented Lagrangian can leave the (feasible) warm start and settle in a
            # worse local solution of the nonconvex factorised problem (sdp.md's K = 2
            # setting, seeds 12 and 17: F up by 2e-2 relative). Redo the step from the
            # same factors with multipliers fitted to the new costs.
            trial, status, multipliers = _la_step(
                Xc, costs, blocks, solver, None, lowrank_options, exact_options, True
            )
            statuses[-1] = status
            value, trial_cov = _evaluate(Xc, trial, covariance_type, ridge)
        if value > previous:
            # at the solver's precision a step can no longer improve F: that is convergence
            stopped_on_increase = True
            converged = value - previous <= tol * abs(previous)
            break
        blocks, covariances = trial, trial_cov
        history.append(value)
        n_iter += 1
        if callback is not None:
            callback(n_iter, value)
        if previous - value <= tol * abs(previous):
            converged = True
            break
    weights = blocks.weights
    means = (weights.T @ Xc) / blocks.counts[:, None] + center
    return ILASDPResult(
        labels=np.argmax(weights, axis=1).astype(np.int64),
        weights=weights,
        means=means,
        covariances=covariances,
        objective_history=history,
        n_iter=n_iter,
        converged=converged,
        stopped_on_increase=stopped_on_increase,
        solver_statuses=statuses,
    )


def _evaluate(Xc, blocks, covariance_type, ridge):
    """``F`` after the covariance update at the memberships of ``blocks``, and those
    covariances."""
    scatters = blocks.scatters(Xc)
    covariances = update_covariances(scatters, blocks.counts, covariance_type, ridge)
    value = negative_log_likelihood(scatters, blocks.counts, covariances, covariance_type, ridge)
    return value, covariances


def _la_step(X, costs, blocks, solver, multipliers, lowrank_options, exact_options, warm):
    """One LA-SDP solve; the low-rank path starts from ``blocks.factors`` and ``multipliers``."""
    ones = [1.0] * len(costs)
    if solver == "cvxpy":
        result = solve_exact(
            [c.dense() for c in costs], ones, warm_start=warm, **(exact_options or {})
        )
        return MembershipBlocks.from_matrices(X, result.blocks), result.status, None
    result = solve_lowrank(
        costs, ones, blocks.factors, multipliers=multipliers, **(lowrank_options or {})
    )
    status = "converged" if result.converged else "max_iter"
    return MembershipBlocks.from_factors(X, result.factors), status, result.multipliers
