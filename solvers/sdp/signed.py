r"""Signed Burer–Monteiro factors for the Peng–Wei SDP: the doubly nonnegative optimum.

The nonnegative factors of :mod:`.lowrank` (``Z = U U^T`` with ``U >= 0``) only reach
*completely positive* matrices of cp-rank at most ``r``. Above the recovery threshold the
SDP optimum is a partition matrix, which is one; below it the optimum is a doubly
nonnegative matrix (PSD and entrywise nonnegative) that in general is not, and no number
of nonnegative columns reaches it (on the issue's 120-point case the nonnegative factor
stops 3e-3 above the optimum at every rank from 6 to 24). Here ``U`` has free signs and
``Z >= 0`` becomes a constraint on the entries of ``U U^T``:

.. math::
    \min_U\ \langle C, U U^T\rangle \quad\text{s.t.}\quad
    \|U\|_F^2 = t,\ U U^T \mathbf 1 = \mathbf 1,\ (U U^T)_{ij} \ge 0\ (i \ne j),

with ``C = -W W^T``. The trace holds exactly through ``U = sqrt(t) V / ||V||_F``; the row
sums and the entries go into an augmented Lagrangian (Nocedal & Wright, eq. 17.65 for the
inequalities),

.. math::
    L_\beta(V; y, N) = \langle C, Z\rangle + y^T\rho + \tfrac\beta2\|\rho\|^2
      + \tfrac1{2\beta}\sum_{i\ne j}\big(\max(0, N_{ij} - \beta Z_{ij})^2 - N_{ij}^2\big),
    \qquad Z = U U^T,\ \rho = Z\mathbf 1 - \mathbf 1,

minimised over ``V`` by L-BFGS, followed by ``y += beta rho`` and
``N = max(0, N - beta Z)``. Its gradient in ``U`` is ``2 (C + sym(w) - M) U`` with
``w = y + beta rho`` and ``M = max(0, N - beta Z)`` (zero diagonal), projected on the
tangent of the sphere. At a stationary point ``(C - sym(-w) - M - mu I) U = 0``: the dual
point ``y_cert = -w``, ``N_cert = M >= 0`` of the certificate's eq. (2)
(:mod:`.certificate`), which becomes tight as the augmented Lagrangian converges. Each
round costs ``O(n^2 r)`` (``Z`` is formed), so this runs only where the certificate does
(up to ``certificate.MAX_SAMPLES`` samples).

``beta`` doubles after a round that cut the violation (row sums, and negative entries) by
less than a factor of four, up to :data:`_MAX_PENALTY` times its start: beyond that the
inner problems became so stiff that L-BFGS took its whole budget per round without moving
the multipliers (measured on the 120-point case).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize

from .._backend import single_threaded_blas

__all__ = ["SignedResult", "negative_mass", "solve_signed"]

_FIRST_INNER_TOL = 1e-3
_INNER_TOL_FACTOR = 0.3
_SLOW_PROGRESS = 0.25
_PENALTY_GROWTH = 2.0
_MAX_PENALTY = 100.0  # times the starting penalty
_MAX_OUTER = 500
# L-BFGS iterations per round at most: a round that has not converged by then still moves
# the multipliers, which is what the next round needs.
_ROUND_ITER = 3000


@dataclass
class SignedResult:
    """Outcome of :func:`solve_signed`.

    Attributes
    ----------
    factor : ndarray of shape (n, r)
        ``U`` (signs free) with ``Z = U U^T``.
    objective : float
        ``<C, U U^T>`` (``-||W^T U||^2``).
    primal_infeasibility : float
        ``||Z 1 - 1||_2``.
    negative_mass : float
        ``sum_ij max(0, -Z_ij) / n``: how far ``Z`` is from nonnegative, relative to its
        total mass ``1^T Z 1 = n``.
    n_iter : int
        L-BFGS iterations over all rounds.
    n_outer : int
    converged : bool
        The violations are below ``tol`` at the final inner tolerance.
    stopped_early : bool
        ``stop`` returned True (the caller's certified gap closed).
    row_multipliers : ndarray of shape (n,)
        ``y_cert = -(y + beta rho)``, in the sign of the certificate's eq. (2).
    entry_multipliers : ndarray of shape (n, n)
        ``N_cert = max(0, N - beta Z)``, symmetric, nonnegative, zero diagonal.
    y, N, beta
        The augmented-Lagrangian state, to warm-start a solve at a higher rank.
    """

    factor: np.ndarray
    objective: float
    primal_infeasibility: float
    negative_mass: float
    n_iter: int
    n_outer: int
    converged: bool
    stopped_early: bool
    row_multipliers: np.ndarray
    entry_multipliers: np.ndarray
    y: np.ndarray
    N: np.ndarray
    beta: float


def solve_signed(
    W, trace, factor0, y0, N0=None, *, penalty=10.0, tol=1e-6, max_iter=20000, stop=None
):
    """Minimise ``<-W W^T, U U^T>`` over signed ``U`` with ``U U^T`` feasible (module text).

    Parameters
    ----------
    W : ndarray of shape (n, p)
        The cost is ``C = -W W^T`` (scaled so a point's share is of order one).
    trace : float
    factor0 : ndarray of shape (n, r)
        Starting factor; its column count is the rank.
    y0 : ndarray of shape (n,)
        Starting row multipliers in the augmented Lagrangian's sign (``y`` in
        ``<C, Z> + y^T rho``).
    N0 : ndarray of shape (n, n) or None
        Starting entry multipliers (None: zero).
    penalty : float
        Starting ``beta``.
    tol : float
        Root-mean-square row-sum violation, relative negative mass of ``Z`` (a bound on
        each entry would not do: ``n^2`` entries each ``tol`` below zero moved the
        objective by ``1e-4`` relative at n = 40), and inner
        gradient tolerance (relative to its scale ``sqrt(n / t)``).
    max_iter : int
        L-BFGS iterations over all rounds.
    stop : callable or None
        ``stop(row_multipliers, entry_multipliers, factor)`` after every round: True
        ends the solve (the caller's certificate is tight enough).
    """
    # n <= certificate.MAX_SAMPLES: BLAS threads cost more than they save at these sizes
    with single_threaded_blas():
        return _solve(W, trace, factor0, y0, N0, penalty, tol, max_iter, stop)


def _solve(W, trace, factor0, y0, N0, penalty, tol, max_iter, stop):
    problem = _SignedLagrangian(W, trace, factor0, y0, N0, penalty)
    v = problem.v0
    inner_tol = max(_FIRST_INNER_TOL, tol)
    gradient_scale = np.sqrt(problem.n / trace)
    beta_cap = _MAX_PENALTY * penalty
    previous = np.inf
    n_iter = n_outer = 0
    converged = stopped = False
    while n_outer < _MAX_OUTER and n_iter < max_iter:
        n_outer += 1
        options = {
            "maxiter": min(max_iter - n_iter, _ROUND_ITER),
            "gtol": inner_tol * gradient_scale,
            "ftol": 0.0,
        }
        run = minimize(problem.value_and_gradient, v, jac=True, method="L-BFGS-B", options=options)
        v, n_iter = run.x, n_iter + run.nit
        U, Z, rho, M = problem.state(v)
        negative = negative_mass(Z)
        violation = max(np.linalg.norm(rho) / np.sqrt(problem.n), negative)
        row_cert = -(problem.y + problem.beta * rho)
        if stop is not None and stop(row_cert, M, U):
            stopped = True
            break
        if violation <= tol and inner_tol <= tol:
            converged = True
            break
        problem.y = problem.y + problem.beta * rho
        problem.N = M
        if violation > _SLOW_PROGRESS * previous:
            problem.beta = min(problem.beta * _PENALTY_GROWTH, beta_cap)
        previous = violation
        inner_tol = max(inner_tol * _INNER_TOL_FACTOR, tol)
    WU = W.T @ U
    return SignedResult(
        factor=U,
        objective=-float(np.sum(WU * WU)),
        primal_infeasibility=float(np.linalg.norm(rho)),
        negative_mass=negative,
        n_iter=n_iter,
        n_outer=n_outer,
        converged=converged,
        stopped_early=stopped,
        row_multipliers=row_cert,
        entry_multipliers=M,
        y=problem.y,
        N=problem.N,
        beta=problem.beta,
    )


def negative_mass(Z):
    """``sum_ij max(0, -Z_ij) / n`` (the diagonal of ``U U^T`` is never negative)."""
    return float(-np.sum(np.minimum(Z, 0.0))) / Z.shape[0]


class _SignedLagrangian:
    def __init__(self, W, trace, factor0, y0, N0, beta):
        self.W = W
        self.n, self.r = factor0.shape
        self.trace = float(trace)
        self.root = np.sqrt(self.trace)
        self.v0 = np.asarray(factor0, dtype=np.float64).ravel().copy()
        self.y = np.asarray(y0, dtype=np.float64).copy()
        self.N = np.zeros((self.n, self.n)) if N0 is None else N0.copy()
        self.beta = float(beta)
        self.off = ~np.eye(self.n, dtype=bool)

    def _factor(self, v):
        V = v.reshape(self.n, self.r)
        norm = np.linalg.norm(V)
        return self.root * V / norm, norm

    def state(self, v):
        U, _ = self._factor(v)
        Z = U @ U.T
        rho = Z.sum(axis=1) - 1.0
        M = np.maximum(0.0, self.N - self.beta * Z)
        np.fill_diagonal(M, 0.0)
        return U, Z, rho, M

    def value_and_gradient(self, v):
        U, norm = self._factor(v)
        Z = U @ U.T
        rho = Z.sum(axis=1) - 1.0
        M = np.maximum(0.0, self.N - self.beta * Z)
        np.fill_diagonal(M, 0.0)
        WU = self.W.T @ U
        w = self.y + self.beta * rho
        value = (
            -np.sum(WU * WU)
            + self.y @ rho
            + 0.5 * self.beta * (rho @ rho)
            + (np.sum(M * M) - np.sum(self.N * self.N)) / (2.0 * self.beta)
        )
        # 2 (C + sym(w) - M) U with C = -W W^T and sym(w) U = (w s^T + 1 (U^T w)^T) / 2
        G = -2.0 * (self.W @ WU) + np.outer(w, U.sum(axis=0)) + np.outer(np.ones(self.n), w @ U)
        G -= 2.0 * (M @ U)
        G -= (np.sum(G * U) / self.trace) * U  # tangent of the sphere, then the chain rule
        return value, (G * (self.root / norm)).ravel()
