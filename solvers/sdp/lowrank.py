r"""Nonnegative low-rank (Burer–Monteiro) solver for clustering SDPs.

Every SDP in this package has the form

.. math::
    \min_{Z_1..Z_B} \sum_b \langle C_b, Z_b \rangle \quad \text{s.t.}\quad
    Z_b \succeq 0,\ Z_b \ge 0,\ \operatorname{tr} Z_b = t_b,\ \sum_b Z_b \mathbf 1 = \mathbf 1

(Peng–Wei: one block with ``t = K``; LA-SDP: ``K`` blocks with ``t = 1``). Writing
``Z_b = U_b U_b^T`` with ``U_b >= 0`` of a few columns keeps ``Z_b`` PSD and nonnegative
for free (Zhuang, Chen, Yang & Zhang, ICLR 2024), and no ``n x n`` matrix is formed: each
cost ``<C_b, U_b U_b^T>`` is evaluated through ``X^T U_b`` in ``O(n p r)``.

The trace holds exactly through ``U_b = sqrt(t_b) V_b / ||V_b||_F`` (the scaling the
paper's projection applies); the row sums go into an augmented Lagrangian,

.. math::
    L_\beta(V; y) = \sum_b \langle C_b, U_b U_b^T \rangle + y^T \rho
        + \tfrac\beta2 \|\rho\|^2, \qquad \rho = \sum_b U_b U_b^T \mathbf 1 - \mathbf 1,

minimised over ``V >= 0`` by L-BFGS-B, followed by the multiplier step
``y += beta rho``; ``beta`` doubles after a round that cut the constraint violation by
less than a factor of four (Nocedal & Wright, Algorithm 17.4). ``y`` starts at the
least-squares solution of the stationarity condition at the starting factors. The inner
tolerance (on the projected gradient, relative to its scale ``sqrt(n / sum_b t_b)``)
tightens geometrically to ``tol``; the solve stops when the row sums hold to
``tol`` (root mean square) at that tolerance.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize
from scipy.sparse.linalg import LinearOperator, lsqr

from .._backend import single_threaded_blas

__all__ = ["BlockCost", "LowRankResult", "Multipliers", "solve_lowrank"]

_FIRST_INNER_TOL = 1e-2
_INNER_TOL_FACTOR = 0.3
_MAX_OUTER = 200
# The penalty doubles when a round cut the constraint violation by less than 4x.
_SLOW_PROGRESS = 0.25
_PENALTY_GROWTH = 2.0
# LSQR iterations for the starting multipliers.
_MULTIPLIER_ITER = 200
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
    """Augmented-Lagrangian state: the row-sum multipliers ``y`` and the penalty ``beta``."""

    y: np.ndarray
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
    n_iter : int
        L-BFGS-B iterations, summed over the augmented-Lagrangian rounds.
    n_outer : int
        Rounds of the augmented Lagrangian.
    converged : bool
    multipliers : Multipliers
        The final ``y`` and ``beta``; ``y`` warm-starts a similar problem.
    row_multipliers : ndarray of shape (n,)
        ``-(y + beta rho)`` at the returned factors: the multipliers of the row-sum
        constraints in the sign of the Lagrangian ``<C, Z> - y^T (Z 1 - 1)`` (the
        augmented Lagrangian is stationary where ``C_b + sym(y + beta rho)`` is), for the
        dual bound of :mod:`.certificate`.
    """

    factors: list
    objective: float
    primal_infeasibility: float
    n_iter: int
    n_outer: int
    converged: bool
    multipliers: Multipliers
    row_multipliers: np.ndarray


def solve_lowrank(
    costs, traces, factors0, *, penalty=10.0, tol=1e-6, max_iter=20000, multipliers=None, ftol=0.0
):
    """Minimise ``sum_b <C_b, U_b U_b^T>`` over nonnegative factors (see module text).

    Parameters
    ----------
    costs : list of BlockCost
        Costs scaled so that a point's share of the objective is of order one;
        ``penalty`` is relative to that scale.
    traces : sequence of float
        ``t_b``, the trace of each block.
    factors0 : list of ndarray of shape (n, r_b)
        Starting factors (nonnegative); their column counts fix the ranks.
    penalty : float
        Initial penalty weight ``beta`` of the augmented Lagrangian.
    tol : float
        Root-mean-square constraint violation, and inner projected-gradient tolerance
        relative to the gradient's scale ``sqrt(n / sum_b t_b)``.
    max_iter : int
        Cap on L-BFGS-B iterations over all rounds.
    multipliers : Multipliers or None
        Warm start for ``y`` from a similar problem (``beta`` restarts at ``beta``: a
        penalty grown for the last problem made the next one stiff).
    ftol : float
        Each round's L-BFGS-B also stops when the augmented Lagrangian changes by less
        than ``ftol`` relative between iterations (scipy's ``ftol``); 0: on the projected
        gradient alone. On degenerate problems (rank-deficient optima, as LA-SDP's blocks)
        the projected-gradient test can take thousands of iterations after the objective
        has settled, with counts that swing tenfold with rounding; iLA-SDP passes 1e-10.
    """
    problem = _AugmentedLagrangian(costs, traces, factors0, penalty, multipliers)
    work = problem.u0.size * max(cost.W.shape[1] for cost in costs)  # n * r * p
    with single_threaded_blas() if work < _THREADED_WORK else contextlib.nullcontext():
        u, n_iter, n_outer, converged = problem.solve(tol, max_iter, ftol)
    blocks = [np.ascontiguousarray(U) for U in problem.unpack(u)]
    row = problem.row_residual(blocks)
    objective = sum(cost.value_and_gradient(U)[0] for cost, U in zip(costs, blocks, strict=True))
    return LowRankResult(
        factors=blocks,
        objective=float(objective),
        primal_infeasibility=float(np.linalg.norm(row)),
        n_iter=n_iter,
        n_outer=n_outer,
        converged=converged,
        multipliers=Multipliers(problem.y, problem.beta),
        row_multipliers=-(problem.y_at_exit + problem.beta_at_exit * row),
    )


class _AugmentedLagrangian:
    """``L_beta(V; y)`` with its gradient, and the rounds of multiplier updates."""

    def __init__(self, costs, traces, factors0, beta, multipliers):
        self.costs = costs
        self.roots = np.sqrt(np.asarray(traces, dtype=np.float64))
        self.n = factors0[0].shape[0]
        self.splits = np.cumsum([U.shape[1] for U in factors0])[:-1]
        self.u0 = np.hstack(factors0).ravel().astype(np.float64)
        self.beta = float(beta)
        if multipliers is None:
            self.y = self._estimate_multipliers(self.unpack(self.u0))
        else:
            self.y = multipliers.y.copy()
        self.y_at_exit, self.beta_at_exit = self.y.copy(), self.beta

    def _estimate_multipliers(self, factors):
        """Least-squares ``y`` for the stationarity condition at the starting factors.

        On each row's dominant entries (where ``U`` is at least half the row's largest
        entry: the entries that stay positive) the gradient in ``U``,
        ``G_b + y s_b^T + 1 (U_b^T y)^T``, should be a multiple ``-2 mu_b U_b`` of ``U_b``
        (the trace constraint's share). Starting from this ``y`` rather than from zero cut
        the iterations twentyfold on separated data.
        """
        sums = [U.sum(axis=0) for U in factors]
        peak = np.max(np.hstack(factors), axis=1, keepdims=True)
        masks = [0.5 * peak <= U for U in factors]
        grads = [cost.value_and_gradient(U)[1] for cost, U in zip(self.costs, factors, strict=True)]
        n, n_blocks = self.n, len(factors)

        def forward(x):
            y, mu = x[:n], x[n:]
            parts = [
                ((np.outer(y, s) + y @ U + 2.0 * m * U) * mask).ravel()
                for U, s, m, mask in zip(factors, sums, mu, masks, strict=True)
            ]
            return np.concatenate(parts)

        def adjoint(r):
            y, mu = np.zeros(n), np.zeros(n_blocks)
            start = 0
            for b, (U, s, mask) in enumerate(zip(factors, sums, masks, strict=True)):
                R = r[start : start + U.size].reshape(U.shape) * mask
                start += U.size
                y += R @ s + U @ R.sum(axis=0)
                mu[b] = 2.0 * np.sum(R * U)
            return np.concatenate([y, mu])

        size = sum(U.size for U in factors)
        operator = LinearOperator((size, n + n_blocks), matvec=forward, rmatvec=adjoint)
        target = -np.concatenate([(G * M).ravel() for G, M in zip(grads, masks, strict=True)])
        return lsqr(operator, target, atol=1e-10, btol=1e-10, iter_lim=_MULTIPLIER_ITER)[0][:n]

    def unpack(self, v):
        """The factors ``U_b = sqrt(t_b) V_b / ||V_b||`` of the variables ``v``."""
        blocks = np.split(v.reshape(self.n, -1), self.splits, axis=1)
        return [root * V / np.linalg.norm(V) for root, V in zip(self.roots, blocks, strict=True)]

    def row_residual(self, factors):
        return sum(U @ U.sum(axis=0) for U in factors) - 1.0

    def value_and_gradient(self, v):
        variables = np.split(v.reshape(self.n, -1), self.splits, axis=1)
        factors = self.unpack(v)
        row = self.row_residual(factors)
        weights = self.y + self.beta * row
        value = self.y @ row + 0.5 * self.beta * (row @ row)
        grads = []
        for V, U, cost, root in zip(variables, factors, self.costs, self.roots, strict=True):
            f, G = cost.value_and_gradient(U)
            value += f
            # d/dU of w^T U U^T 1 is w (U^T 1)^T + 1 (U^T w)^T
            G += np.outer(weights, U.sum(axis=0))
            G += weights @ U
            # chain rule through U = root * V / ||V||: drop the radial part, rescale
            norm = np.linalg.norm(V)
            G -= (np.sum(G * U) / root**2) * U
            grads.append(G * (root / norm))
        return value, np.hstack(grads).ravel()

    def solve(self, tol, max_iter, ftol=0.0):
        v = self.u0
        inner_tol = max(_FIRST_INNER_TOL, tol)
        # Entries of U are O(sqrt(t / n)) and those of the gradient O(sqrt(n / t)): the
        # projected-gradient test is made relative to that scale, so it means the same
        # at every n.
        gradient_scale = np.sqrt(self.n / np.sum(self.roots**2))
        previous = np.inf
        n_iter = n_outer = 0
        while n_outer < _MAX_OUTER and n_iter < max_iter:
            n_outer += 1
            v, nit = _lbfgsb(
                self.value_and_gradient, v, inner_tol * gradient_scale, max_iter - n_iter, ftol
            )
            n_iter += nit
            row = self.row_residual(self.unpack(v))
            infeasible = np.linalg.norm(row) / np.sqrt(self.n)
            # the state v was minimised for: its stationary multipliers are y + beta rho
            self.y_at_exit, self.beta_at_exit = self.y.copy(), self.beta
            if infeasible <= tol and inner_tol <= tol:
                return v, n_iter, n_outer, True
            self.y += self.beta * row
            if infeasible > _SLOW_PROGRESS * previous:
                self.beta *= _PENALTY_GROWTH
            previous = infeasible
            inner_tol = max(inner_tol * _INNER_TOL_FACTOR, tol)
        return v, n_iter, n_outer, False


def _lbfgsb(fun, x, gtol, max_iter, ftol=0.0):
    """Minimise ``fun`` over ``x >= 0`` to a projected-gradient max norm of ``gtol`` (or a
    relative change of ``fun`` below ``ftol``)."""
    options = {"maxiter": max_iter, "gtol": gtol, "ftol": ftol, "maxcor": 10}
    bounds = [(0.0, None)] * x.size
    run = minimize(fun, x, jac=True, method="L-BFGS-B", bounds=bounds, options=options)
    return run.x, run.nit
