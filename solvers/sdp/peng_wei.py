r"""The Peng–Wei SDP relaxation of K-means, its two solvers, rounding and sketch-and-lift.

.. math::
    \max_Z\ \langle X X^T, Z \rangle \quad \text{s.t.}\quad Z \succeq 0,\ Z \ge 0,\
    Z \mathbf 1 = \mathbf 1,\ \operatorname{tr} Z = K

(Peng & Wei, SIAM J. Optim. 18(1), 2007). For a partition, ``Z = sum_k 1_k 1_k^T / n_k``
and ``||X||_F^2 - <X X^T, Z>`` is its K-means cost, so that is the objective reported. The
problem does not change when ``X`` is shifted (``Z 1 = 1``) or scaled, so it is solved on
``X`` centred and scaled to unit mean squared row norm.

Labels are read off a factor ``F`` of ``Z`` (``Z = F F^T``) by k-means on the rows of
``F``: rows of one cluster coincide when ``Z`` is the partition matrix, and
``||f_i - f_j||^2 = Z_ii + Z_jj - 2 Z_ij`` depends on ``Z`` alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._backend import get_namespace, nearest_centers
from ..seeded_kmeans import seeded_kmeans
from .certificate import MAX_SAMPLES, peng_wei_lower_bound, slack_bound
from .exact import solve_exact
from .lowrank import BlockCost, solve_lowrank
from .signed import negative_mass, solve_signed

__all__ = [
    "PengWeiResult",
    "cluster_means",
    "factor_of",
    "labels_from_factor",
    "nearest_centre",
    "peng_wei",
    "sketch_and_lift",
]

# k-means++ restarts of the warm start and of the rounding (the best inertia is kept).
_KMEANS_INITS = 10
# Relative weight of the random part of a k-means warm start for the low-rank factor.
_START_NOISE = 0.1
# The signed escalation forms Z (O(n^2 r) per iteration, thousands of iterations): up to
# this many samples. At n = 150 below the threshold it took 9-11 s of a 20,000-iteration
# budget on a loaded two-core machine; at n = 1,000 the same budget would take minutes.
SIGNED_MAX_SAMPLES = 500


@dataclass
class PengWeiResult:
    """Outcome of :func:`peng_wei`.

    Attributes
    ----------
    labels : ndarray of shape (n,), int64
        Rounded partition.
    factor : ndarray of shape (n, r)
        ``Z ~ factor @ factor.T`` (the low-rank solution, or the eigen-factor of cvxpy's Z).
    objective : float
        ``||X_c||_F^2 - <X_c X_c^T, Z>`` for the centred data ``X_c``: the K-means cost of
        ``Z``. The SDP optimum is a lower bound on the cost of any partition; the
        low-rank ``Z`` is feasible, so its objective is at or above that optimum.
    lower_bound : float
        A certified lower bound on the SDP optimum in the same units (:mod:`.certificate`),
        or NaN when not computed (more than ``certificate.MAX_SAMPLES`` samples, or
        ``certify=False``). ``objective - lower_bound`` bounds how far ``Z`` is from
        optimal (for the low-rank ``Z``; for cvxpy's, up to its feasibility tolerance).
    primal_infeasibility : float
        ``||Z 1 - 1||_2``.
    n_iter : int or None
        Solver iterations (summed over the ranks tried).
    converged : bool
        The last solve met its tolerances (not the gap: see ``gap_converged``).
    status : str
        ``"optimal"``/``"optimal_inaccurate"`` (cvxpy) or ``"converged"``/``"max_iter"``.
    rank : int or None
        Columns of the low-rank factor of the last solve (None for cvxpy).
    gap_converged : bool
        Whether ``objective - lower_bound <= gap_tol * |objective|`` (False when no bound).
    rank_tried : int or None
        The highest rank solved at (the signed escalation's; None for cvxpy).
    """

    labels: np.ndarray
    factor: np.ndarray
    objective: float
    primal_infeasibility: float
    n_iter: int | None
    converged: bool
    status: str
    lower_bound: float = np.nan
    rank: int | None = None
    gap_converged: bool = False
    rank_tried: int | None = None


def _normalised(X):
    Xc = X - X.mean(axis=0)
    total = float(np.sum(Xc * Xc))
    scale = np.sqrt(total / X.shape[0]) if total > 0 else 1.0
    return Xc, Xc / scale, total


def peng_wei(
    X,
    n_clusters,
    *,
    rng,
    solver="lowrank",
    rank=None,
    max_rank=None,
    gap_tol=1e-3,
    certify=True,
    penalty=10.0,
    tol=1e-6,
    max_iter=20000,
    cvxpy_solver=None,
    solver_options=None,
):
    """Solve the Peng–Wei SDP and round it to ``n_clusters`` labels.

    Parameters
    ----------
    X : ndarray of shape (n, p), float64
    n_clusters : int
    rng : numpy.random.Generator
        For the k-means warm start of the low-rank factor, the padding columns of a rank
        increase, and the rounding.
    solver : {"lowrank", "cvxpy"}
    rank : int or None
        Columns of the first low-rank factor (default ``2 * n_clusters``, at most n).
    max_rank : int or None
        Rank escalation: while the certified gap ``objective - lower_bound`` exceeds
        ``gap_tol * |objective|``, the problem is solved again on signed factors
        (:mod:`.signed`) with ``n_clusters`` more columns at a time, from the last factor
        padded with small random columns and its multipliers, up to this many (default
        ``4 * n_clusters``, at most n). It stops when a rank increase narrowed the gap
        by less than ``gap_tol`` relative. ``max_rank <= rank``: no escalation.
    gap_tol : float
        Relative certified gap that ends the escalation.
    certify : bool
        Compute ``lower_bound`` (up to ``certificate.MAX_SAMPLES`` samples).
    penalty, tol, max_iter
        Passed to :func:`.lowrank.solve_lowrank` (``max_iter`` over all ranks).
    cvxpy_solver, solver_options
        Passed to :func:`.exact.solve_exact` as ``solver`` and ``solver_options``.
    """
    n = X.shape[0]
    Xc, W, total = _normalised(np.asarray(X, dtype=np.float64))
    unit = total / n  # the objective is total + unit * <C, Z> with C = -W W^T
    certify = certify and n <= MAX_SAMPLES
    if solver == "cvxpy":
        result = solve_exact(
            [-(W @ W.T)],
            [n_clusters],
            solver=cvxpy_solver,
            solver_options=solver_options,
            duals=True,
        )
        Z = result.blocks[0]
        factor = factor_of(Z)
        labels = labels_from_factor(factor, n_clusters, rng)
        objective = total - float(np.sum((Xc @ Xc.T) * Z))
        lower_bound = np.nan
        if certify:
            # any y gives a valid bound (certificate eq. 2): try cvxpy's dual in both
            # sign conventions and keep the better
            candidates = [sign * y for y in result.row_duals for sign in (1.0, -1.0)]
            certificate = peng_wei_lower_bound(-(W @ W.T), n_clusters, labels, candidates)
            lower_bound = total + unit * certificate.lower_bound
        return PengWeiResult(
            labels=labels,
            factor=factor,
            objective=objective,
            primal_infeasibility=float(np.linalg.norm(Z.sum(axis=1) - 1.0)),
            n_iter=result.n_iter,
            converged=result.converged,
            status=result.status,
            lower_bound=lower_bound,
            gap_converged=_gap_closed(objective, lower_bound, gap_tol),
        )
    rank = min(n, rank or 2 * n_clusters)
    max_rank = min(n, 4 * n_clusters if max_rank is None else max_rank)
    factor = _kmeans_start(W, n_clusters, rank, rng)
    cost = BlockCost(W)
    result = solve_lowrank(
        [cost], [n_clusters], [factor], penalty=penalty, tol=tol, max_iter=max_iter
    )
    n_iter = result.n_iter
    factor = result.factors[0]
    labels = labels_from_factor(factor, n_clusters, rng)
    XtU = Xc.T @ factor
    objective = total - float(np.sum(XtU * XtU))
    lower_bound = np.nan
    if certify:
        C = -(W @ W.T)
        certificate = peng_wei_lower_bound(C, n_clusters, labels, result.row_multipliers)
        lower_bound = total + unit * certificate.lower_bound
    closed = _gap_closed(objective, lower_bound, gap_tol)
    converged, infeasibility = result.converged, result.primal_infeasibility
    rank_tried = rank
    escalate = certify and n <= SIGNED_MAX_SAMPLES and rank < max_rank and n_iter < max_iter
    if escalate and not closed:
        # escalate on signed factors (module .signed): nonnegative columns only reach
        # completely positive matrices, and an optimum below the recovery threshold
        # is in general not one, at any rank
        signed = _escalate_signed(
            W,
            total,
            n_clusters,
            factor,
            result,
            rank,
            max_rank,
            gap_tol,
            lower_bound,
            rng=rng,
            penalty=penalty,
            tol=tol,
            max_iter=max_iter - n_iter,
        )
        n_iter += signed.n_iter
        lower_bound, rank_tried = signed.lower_bound, signed.rank_tried
        if signed.factor is not None:  # a feasible (to tol) signed solution, better
            factor, rank, objective = signed.factor, signed.rank, signed.objective
            infeasibility, converged = signed.primal_infeasibility, True
            labels = labels_from_factor(factor, n_clusters, rng)
        closed = _gap_closed(objective, lower_bound, gap_tol)
    return PengWeiResult(
        labels=labels,
        factor=factor,
        objective=objective,
        primal_infeasibility=infeasibility,
        n_iter=n_iter,
        converged=converged,
        status="converged" if converged else "max_iter",
        lower_bound=lower_bound,
        rank=rank,
        gap_converged=closed,
        rank_tried=rank_tried,
    )


@dataclass
class _Escalation:
    factor: np.ndarray | None
    rank: int
    objective: float
    primal_infeasibility: float
    lower_bound: float
    n_iter: int
    rank_tried: int


def _escalate_signed(
    W,
    total,
    n_clusters,
    factor,
    result,
    rank,
    max_rank,
    gap_tol,
    lower_bound,
    *,
    rng,
    penalty,
    tol,
    max_iter,
):
    """Signed factors of ``n_clusters`` more columns at a time (up to ``max_rank``) from
    the nonnegative solution and its multipliers, until the certified gap closes.

    Every round's multipliers give a valid bound (certificate eq. 2): the best is kept.
    A signed solution replaces the nonnegative one only when it is feasible to ``tol``
    (row sums, and the negative mass of :func:`.signed.negative_mass`) and lower; the
    solve at a rank stops when the gap closes, and the escalation when a rank increase
    narrowed the certified gap (a lower objective or a higher bound) by less than
    ``gap_tol`` relative.
    """
    n = W.shape[0]
    unit = total / n
    C = -(W @ W.T)
    best = {"bound": lower_bound, "factor": None, "objective": np.inf, "rows": np.nan}
    reference = total + unit * result.objective  # the nonnegative (feasible) objective

    def stop(row_multipliers, entry_multipliers, U):
        bound = (
            total
            + unit * slack_bound(C, n_clusters, row_multipliers, entry_multipliers).lower_bound
        )
        best["bound"] = max(best["bound"], bound)
        Z = U @ U.T
        rows = float(np.linalg.norm(Z.sum(axis=1) - 1.0))
        feasible = rows / np.sqrt(n) <= tol and negative_mass(Z) <= tol
        WU = W.T @ U
        objective = total - unit * float(np.sum(WU * WU))
        if feasible and objective < min(best["objective"], reference):
            best.update(factor=U, objective=objective, rows=rows)
        current = min(best["objective"], reference)
        return _gap_closed(current, best["bound"], gap_tol)

    y, N, beta = -result.row_multipliers, None, penalty
    n_iter, previous = 0, reference - lower_bound
    while rank < max_rank and n_iter < max_iter:
        new_rank = min(max_rank, rank + n_clusters)
        padding = _START_NOISE * rng.standard_normal((n, new_rank - rank)) / np.sqrt(n)
        factor = np.hstack([factor, padding])
        factor *= np.sqrt(n_clusters / np.sum(factor * factor))
        rank = new_rank
        run = solve_signed(
            W,
            n_clusters,
            factor,
            y,
            N,
            penalty=beta,
            tol=tol,
            max_iter=max_iter - n_iter,
            stop=stop,
        )
        n_iter += run.n_iter
        current = min(best["objective"], reference)
        gap = current - best["bound"]
        if run.stopped_early or previous - gap <= gap_tol * abs(current):
            break
        factor, y, N, beta, previous = run.factor, run.y, run.N, run.beta, gap
    return _Escalation(
        factor=best["factor"],
        rank=rank if best["factor"] is None else best["factor"].shape[1],
        objective=best["objective"],
        primal_infeasibility=best["rows"],
        lower_bound=best["bound"],
        n_iter=n_iter,
        rank_tried=rank,
    )


def _gap_closed(objective, lower_bound, gap_tol):
    if gap_tol == np.inf:  # any gap accepted (inf * 0 would be NaN at a zero objective)
        return True
    return bool(objective - lower_bound <= gap_tol * abs(objective))


def _kmeans_start(W, n_clusters, rank, rng):
    """The partition factor of the best of several k-means++ runs, plus a small positive
    random part.

    Random starts alone sometimes end at a spurious local minimum of the nonconvex
    factorised problem; starting next to a K-means partition avoided that in our tests.
    The random part moves the start off the saddle point that the padding columns (zero
    for a partition, with zero gradient) would make; at a tenth of this weight the solve
    stayed near that saddle (15 times the iterations at n = 300). One k-means++ run can
    land in a poor partition (30 % of a 20,000-point, 5-cluster mixture misplaced, at 1.2
    times the recovery threshold), from which the solver needed 1,800 iterations to move
    whole clusters; the restarts avoid that.
    """
    n = W.shape[0]
    labels = seeded_kmeans(W, np.full(n, -1), n_clusters, rng=rng, n_init=_KMEANS_INITS).labels
    counts = np.bincount(labels, minlength=n_clusters)
    U = _START_NOISE * np.abs(rng.standard_normal((n, rank))) / np.sqrt(n)
    U[np.arange(n), labels] += 1.0 / np.sqrt(counts[labels])
    return U * np.sqrt(n_clusters / np.sum(U * U))


def factor_of(Z, rtol=1e-8):
    """``F`` with ``Z ~ F F^T`` from the eigenvalues of ``Z`` above ``rtol`` times the largest."""
    values, vectors = np.linalg.eigh(Z)
    keep = values > rtol * max(values[-1], 0.0)
    return np.ascontiguousarray(vectors[:, keep][:, ::-1] * np.sqrt(values[keep][::-1]))


def labels_from_factor(factor, n_clusters, rng):
    """K-means (best of 10 k-means++ starts) on the rows of the factor."""
    n = factor.shape[0]
    return seeded_kmeans(factor, np.full(n, -1), n_clusters, rng=rng, n_init=_KMEANS_INITS).labels


def sketch_and_lift(X, n_clusters, sketch_size, *, rng, **solve_options):
    """Solve on ``sketch_size`` random samples, then give every sample its nearest centre.

    The centres are the means of the sketch's clusters (Zhuang, Chen & Yang, AISTATS 2022).
    Returns ``(labels, centres, result_on_the_sketch, sketch_indices)``.
    """
    sketch = np.sort(rng.choice(X.shape[0], size=sketch_size, replace=False))
    result = peng_wei(X[sketch], n_clusters, rng=rng, **solve_options)
    centres = cluster_means(X[sketch], result.labels, n_clusters)
    return nearest_centre(X, centres), centres, result, sketch


def cluster_means(X, labels, n_clusters):
    counts = np.bincount(labels, minlength=n_clusters)
    sums = np.zeros((n_clusters, X.shape[1]))
    np.add.at(sums, labels, X)
    return sums / np.maximum(counts, 1)[:, None]


def nearest_centre(X, centres):
    """Index (int64) of the nearest of ``centres`` for every row of ``X``, NumPy arrays."""
    return nearest_centers(get_namespace(X), X, centres).astype(np.int64, copy=False)
