r"""Nonnegative low-rank (Burer–Monteiro) solver for clustering SDPs.

Every SDP in this package has the form

.. math::
    \min_{Z_1..Z_B} \sum_b \langle C_b, Z_b \rangle \quad \text{s.t.}\quad
    Z_b \succeq 0,\ Z_b \ge 0,\ \operatorname{tr} Z_b = t_b,\ \sum_b Z_b \mathbf 1 = \mathbf 1

(Peng–Wei: one block with ``t = K``; LA-SDP: ``K`` blocks with ``t = 1``). Writing
``Z_b = U_b U_b^T`` with ``U_b >= 0`` of a few columns keeps ``Z_b`` PSD and nonnegative
for free (Zhuang, Chen, Yang & Zhang, ICLR 2024), and no ``n x n`` matrix is formed: each
cost ``<C_b, U_b U_b^T>`` is evaluated through ``X^T U_b`` in ``O(n p r)``.

The two equality constraints go into an augmented Lagrangian,

.. math::
    L_\beta(U; y, \mu) = \sum_b \langle C_b, U_b U_b^T \rangle + y^T \rho
        + \tfrac\beta2 \|\rho\|^2 + \sum_b \big(\mu_b \tau_b + \tfrac\beta2 \tau_b^2\big),
    \quad \rho = \sum_b U_b U_b^T \mathbf 1 - \mathbf 1,\ \tau_b = \|U_b\|_F^2 - t_b,

minimised over ``U >= 0`` by L-BFGS-B, followed by the multiplier steps
``y += beta rho``, ``mu_b += beta tau_b``; ``beta`` doubles after a round that cut the
constraint violation by less than a factor of four (Nocedal & Wright, Algorithm 17.4).
The inner tolerance tightens geometrically to ``tol``; the solve stops when the
constraints hold to ``tol`` (root mean square) at that tolerance.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize

from .._backend import single_threaded_blas

__all__ = ["BlockCost", "LowRankResult", "Multipliers", "solve_lowrank"]

_FIRST_INNER_TOL = 1e-2
_INNER_TOL_FACTOR = 0.3
_MAX_OUTER = 200
# The penalty doubles when a round cut the constraint violation by less than 4x.
_SLOW_PROGRESS = 0.25
_PENALTY_GROWTH = 2.0
# Below this many flops per product BLAS threads cost more than they save.
_THREADED_WORK = 1 << 21


@dataclass(frozen=True)
class BlockCost:
    r"""One block's cost ``<C, U U^T>`` with ``C = diag-free part + rank-one parts``.

    ``C = 1/2 D + c 1 1^T`` where ``D_ij = ||w_i - w_j||^2`` for the rows ``w_i`` of ``W``
    (so ``1/2 <D, U U^T> = q^T U s - ||W^T U||^2`` with ``q_i = ||w_i||^2`` and
    ``s = U^T 1``). Peng–Wei's ``-<W W^T, Z>`` is the case ``q = 0, c = 0``, which differs
    from ``1/2 D`` by a constant over its feasible set.

    Attributes
    ----------
    W : ndarray of shape (n, p), float64
    q : ndarray of shape (n,) or None
        Squared row norms of ``W`` (None: the Peng–Wei form).
    c : float
        Weight of ``1 1^T`` (LA-SDP: ``log det Sigma``).
    """

    W: np.ndarray
    q: np.ndarray | None = None
    c: float = 0.0

    def value_and_gradient(self, U):
        s = U.sum(axis=0)
        WU = self.W.T @ U
        value = -np.sum(WU * WU) + self.c * (s @ s)
        grad = -2.0 * (self.W @ WU)
        grad += (2.0 * self.c) * s
        if self.q is not None:
            Uq = self.q @ U
            value += Uq @ s
            grad += np.outer(self.q, s)
            grad += Uq
        return value, grad

    def dense(self):
        """The ``n x n`` cost matrix (for the cvxpy form and for tests)."""
        C = -(self.W @ self.W.T)
        if self.q is not None:
            C += 0.5 * (self.q[:, None] + self.q[None, :])
        return C + self.c


@dataclass(frozen=True)
class Multipliers:
    """Augmented-Lagrangian state: row-sum multipliers ``y``, trace multipliers ``mu``, ``beta``."""

    y: np.ndarray
    mu: np.ndarray
    beta: float


@dataclass
class LowRankResult:
    """Outcome of :func:`solve_lowrank`.

    Attributes
    ----------
    factors : list of ndarray of shape (n, r_b)
        Nonnegative ``U_b`` with ``Z_b = U_b U_b^T``.
    objective : float
        ``sum_b <C_b, U_b U_b^T>``.
    primal_infeasibility : float
        ``||sum_b U_b U_b^T 1 - 1||_2``.
    trace_infeasibility : float
        ``max_b |tr Z_b - t_b|``.
    n_iter : int
        L-BFGS-B iterations, summed over the augmented-Lagrangian rounds.
    n_outer : int
        Rounds of the augmented Lagrangian.
    converged : bool
    multipliers : Multipliers
        The final ``y``, ``mu`` and ``beta``; ``y`` and ``mu`` warm-start a similar problem.
    """

    factors: list
    objective: float
    primal_infeasibility: float
    trace_infeasibility: float
    n_iter: int
    n_outer: int
    converged: bool
    multipliers: Multipliers


def solve_lowrank(
    costs, traces, factors0, *, beta=10.0, tol=1e-6, max_iter=20000, multipliers=None
):
    """Minimise ``sum_b <C_b, U_b U_b^T>`` over nonnegative factors (see module text).

    Parameters
    ----------
    costs : list of BlockCost
        Costs scaled so that a point's share of the objective is of order one; ``beta``
        is relative to that scale.
    traces : sequence of float
        ``t_b``, the trace of each block.
    factors0 : list of ndarray of shape (n, r_b)
        Starting factors (nonnegative); their column counts fix the ranks.
    beta : float
        Initial penalty weight of the augmented Lagrangian.
    tol : float
        Root-mean-square constraint violation and inner projected-gradient tolerance.
    max_iter : int
        Cap on L-BFGS-B iterations over all rounds.
    multipliers : Multipliers or None
        Warm start for ``y`` and ``mu`` from a similar problem (``beta`` restarts at
        ``beta``: a penalty grown for the last problem made the next one stiff).
    """
    problem = _AugmentedLagrangian(costs, traces, factors0, beta, multipliers)
    work = problem.u0.size * max(cost.W.shape[1] for cost in costs)  # n * r * p
    with single_threaded_blas() if work < _THREADED_WORK else contextlib.nullcontext():
        u, n_iter, n_outer, converged = problem.solve(tol, max_iter)
    blocks = [np.ascontiguousarray(U) for U in problem.unpack(u)]
    row, trace = problem.residuals(blocks)
    objective = sum(cost.value_and_gradient(U)[0] for cost, U in zip(costs, blocks, strict=True))
    return LowRankResult(
        factors=blocks,
        objective=float(objective),
        primal_infeasibility=float(np.linalg.norm(row)),
        trace_infeasibility=float(np.max(np.abs(trace))),
        n_iter=n_iter,
        n_outer=n_outer,
        converged=converged,
        multipliers=Multipliers(problem.y, problem.mu, problem.beta),
    )


class _AugmentedLagrangian:
    """``L_beta(U; y, mu)`` with its gradient, and the rounds of multiplier updates."""

    def __init__(self, costs, traces, factors0, beta, multipliers):
        self.costs = costs
        self.traces = np.asarray(traces, dtype=np.float64)
        self.n = factors0[0].shape[0]
        self.splits = np.cumsum([U.shape[1] for U in factors0])[:-1]
        self.u0 = np.hstack(factors0).ravel().astype(np.float64)
        if multipliers is None:
            self.y, self.mu, self.beta = np.zeros(self.n), np.zeros(len(costs)), float(beta)
        else:
            self.y, self.mu, self.beta = multipliers.y.copy(), multipliers.mu.copy(), float(beta)

    def unpack(self, u):
        return np.split(u.reshape(self.n, -1), self.splits, axis=1)

    def residuals(self, blocks):
        row = sum(U @ U.sum(axis=0) for U in blocks) - 1.0
        trace = np.array([np.sum(U * U) for U in blocks]) - self.traces
        return row, trace

    def value_and_gradient(self, u):
        blocks = self.unpack(u)
        row, trace = self.residuals(blocks)
        y, mu, beta = self.y, self.mu, self.beta
        v = y + beta * row
        m = mu + beta * trace
        value = y @ row + 0.5 * beta * (row @ row) + mu @ trace + 0.5 * beta * (trace @ trace)
        grads = []
        for U, cost, m_b in zip(blocks, self.costs, m, strict=True):
            f, G = cost.value_and_gradient(U)
            value += f
            # d/dU of v^T U U^T 1 is v (U^T 1)^T + 1 (U^T v)^T
            G += np.outer(v, U.sum(axis=0))
            G += v @ U
            G += (2.0 * m_b) * U
            grads.append(G)
        return value, np.hstack(grads).ravel()

    def solve(self, tol, max_iter):
        u = self.u0
        bounds = [(0.0, None)] * u.size
        inner_tol = max(_FIRST_INNER_TOL, tol)
        previous = np.inf
        n_iter = n_outer = 0
        while n_outer < _MAX_OUTER and n_iter < max_iter:
            n_outer += 1
            run = minimize(
                self.value_and_gradient,
                u,
                jac=True,
                method="L-BFGS-B",
                bounds=bounds,
                options={
                    "maxiter": max_iter - n_iter,
                    "gtol": inner_tol,
                    "ftol": 0.0,
                    "maxcor": 20,
                },
            )
            u = run.x
            n_iter += run.nit
            row, trace = self.residuals(self.unpack(u))
            infeasible = max(
                np.linalg.norm(row) / np.sqrt(self.n), np.max(np.abs(trace / self.traces))
            )
            if infeasible <= tol and inner_tol <= tol:
                return u, n_iter, n_outer, True
            self.y += self.beta * row
            self.mu += self.beta * trace
            if infeasible > _SLOW_PROGRESS * previous:
                self.beta *= _PENALTY_GROWTH
            previous = infeasible
            inner_tol = max(inner_tol * _INNER_TOL_FACTOR, tol)
        return u, n_iter, n_outer, False
