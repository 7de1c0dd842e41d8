"""The clustering SDPs as cvxpy problems: the exact (interior/conic) reference path.

Each problem is built once per shape with its cost matrices as cvxpy Parameters, so it is
DPP and re-solving with new costs (across iLA-SDP iterations, or across fits of the same
size) skips the compilation. A cost enters as ``c @ vec(Z)`` with ``c`` a parameter
vector: written as ``sum(multiply(C, Z))`` cvxpy would build an ``n^2 x n^2`` parameter
tensor.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from functools import lru_cache

import cvxpy as cp
import numpy as np

__all__ = ["ExactResult", "SDPStatusError", "exact_memory_estimate", "solve_exact"]

# Peak memory of cvxpy + SCS per entry of an n x n block (Z, Z >= 0 and the PSD cone), the
# most seen: SDPKMeans on 100-400 samples peaked at 32-410 MB, 2,600-3,400 bytes per entry
# (measured 2026-12-03; n = 1,000 was reported at 2.8 GB).
BYTES_PER_ENTRY = 3400


def exact_memory_estimate(n, n_blocks=1):
    """Estimated peak memory, in bytes, of :func:`solve_exact` on ``n_blocks`` n x n blocks."""
    return BYTES_PER_ENTRY * n_blocks * n * n


DEFAULT_SOLVER = "SCS"
DEFAULT_OPTIONS = {"SCS": {"eps_abs": 1e-5, "eps_rel": 1e-5}}


class SDPStatusError(RuntimeError):
    """The conic solver ended without a usable solution; ``status`` says how."""

    def __init__(self, status, solver):
        super().__init__(
            f"the SDP solve with {solver} ended with status {status!r}; try another "
            "solver, looser tolerances or solver='lowrank'"
        )
        self.status = status


@dataclass
class ExactResult:
    """Outcome of :func:`solve_exact`.

    Attributes
    ----------
    blocks : list of ndarray of shape (n, n)
        The membership matrices ``Z_b``.
    objective : float
        ``sum_b <C_b, Z_b>`` at the returned matrices.
    status : str
        cvxpy's status: ``"optimal"`` or ``"optimal_inaccurate"``.
    converged : bool
        Whether the status is ``"optimal"``.
    n_iter : int or None
        The conic solver's iteration count when it reports one.
    row_duals : list of ndarray
        The dual values of the row-sum constraints (one array, or none when the solver
        gives none), in cvxpy's sign convention.
    """

    blocks: list
    objective: float
    status: str
    converged: bool
    n_iter: int | None
    row_duals: list = field(default_factory=list)


@lru_cache(maxsize=4)
def _program(n, traces):
    """``min sum_b c_b . vec(Z_b)`` s.t. ``Z_b`` PSD, ``>= 0``, ``tr Z_b = t_b``, rows sum to 1."""
    blocks = [cp.Variable((n, n), PSD=True) for _ in traces]
    costs = [cp.Parameter(n * n) for _ in traces]
    objective = sum(c @ cp.vec(Z, order="C") for c, Z in zip(costs, blocks, strict=True))
    constraints = [sum(cp.sum(Z, axis=1) for Z in blocks) == 1]
    for Z, t in zip(blocks, traces, strict=True):
        constraints += [Z >= 0, cp.trace(Z) == t]
    return cp.Problem(cp.Minimize(objective), constraints), costs, blocks


def solve_exact(
    cost_matrices, traces, *, solver=None, solver_options=None, warm_start=False, duals=False
):
    """Solve the block SDP of :mod:`.lowrank` exactly with a cvxpy conic solver.

    Parameters
    ----------
    cost_matrices : list of ndarray of shape (n, n)
        Symmetric ``C_b``.
    traces : sequence of float
        ``t_b``.
    solver : str or None
        A cvxpy solver name (default SCS).
    solver_options : dict or None
        Passed to ``Problem.solve``, on top of the defaults (for SCS:
        ``eps_abs = eps_rel = 1e-5``; pass other values to override them).
    warm_start : bool
        Start from the previous solution of a problem of the same shape (SCS takes the
        previous primal and dual iterates through cvxpy's ``warm_start``).
    duals : bool
        Return the row-sum constraint's dual values in ``row_duals``.

    Raises
    ------
    SDPStatusError
        When the status is neither optimal nor optimal_inaccurate, or cvxpy's solver fails.
    """
    n = cost_matrices[0].shape[0]
    solver = solver or DEFAULT_SOLVER
    options = {**DEFAULT_OPTIONS.get(solver, {}), **(solver_options or {})}
    problem, costs, blocks = _program(n, tuple(float(t) for t in traces))
    for parameter, C in zip(costs, cost_matrices, strict=True):
        parameter.value = np.ascontiguousarray(C, dtype=np.float64).ravel()
    try:
        with warnings.catch_warnings():
            # cvxpy's own "may be inaccurate" warning: the status is returned instead
            warnings.filterwarnings("ignore", "Solution may be inaccurate", UserWarning)
            problem.solve(solver=solver, warm_start=warm_start, **options)
    except cp.error.SolverError as exc:
        raise SDPStatusError("solver_error", solver) from exc
    if problem.status not in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE):
        raise SDPStatusError(problem.status, solver)
    matrices = [0.5 * (Z.value + Z.value.T) for Z in blocks]
    objective = sum(float(np.sum(C * Z)) for C, Z in zip(cost_matrices, matrices, strict=True))
    row_duals = []
    if duals and problem.constraints[0].dual_value is not None:
        row_duals.append(np.asarray(problem.constraints[0].dual_value, dtype=np.float64).ravel())
    return ExactResult(
        blocks=matrices,
        objective=objective,
        status=problem.status,
        converged=problem.status == cp.OPTIMAL,
        n_iter=problem.solver_stats.num_iters,
        row_duals=row_duals,
    )
