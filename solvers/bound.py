"""Bound optimizer for Laplacian-regularised assignment (Ziko et al., 2018; 2020; 2021).

Relaxed energy of soft assignments ``Z`` (rows on the simplex over ``L`` labels) for unary
costs ``A`` and a symmetric affinity ``W``::

    E(Z) = <A, Z> - lam / 2 tr(Z^T W Z) + <Z, log Z>

Linearising the concave Laplacian term at the current iterate gives an upper bound that is
separable over points; its minimiser, for every point independently, is::

    Z <- rowsoftmax(-A + lam W Z)

Labeled rows stay clamped to their label at every iteration. Iterating decreases ``E``
whenever ``lam * lambda_min(W) >= -1`` (the entropy is 1-strongly convex, so the bound's
decrease covers the curvature of the linearised term); on kNN graphs the energy is
monotone far beyond that, and the tests check it.

Several problems of equal size can be solved at once (the tasks of a few-shot run): their
rows are stacked, ``W`` is block-diagonal, and each problem stops on its own when the
relative change of its energy falls below ``tol``, so the result equals solving each
problem alone.

:func:`fit_prototypes` alternates the bound iterations with prototype updates from hard
labels (:mod:`.prototypes`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy import special

from ._bound_kernels import bound_sweep
from .prototypes import PROTOTYPES, unary_costs, update_prototypes

__all__ = ["BoundResult", "PrototypeResult", "bound_update", "fit_prototypes", "softmax_init"]

# Rows per parallel block when a problem is large enough to split.
_BLOCK_ROWS = 512


@dataclass
class BoundResult:
    """Output of :func:`bound_update`; per-problem arrays have length ``n_problems``.

    Attributes
    ----------
    assignments : ndarray of shape (n_samples, n_labels)
        Soft assignments; only the rows of the active problems are meaningful.
    energy : ndarray of shape (n_problems,)
        Relaxed energy of the returned assignments.
    energy_history : ndarray of shape (n_sweeps, n_problems)
        Energy of every iterate, the initial one first; NaN once a problem has stopped.
    n_iter : ndarray of shape (n_problems,)
        Bound iterations applied to each problem.
    converged : ndarray of shape (n_problems,)
        Whether the relative energy change fell below ``tol``.
    """

    assignments: np.ndarray
    energy: np.ndarray
    energy_history: np.ndarray
    n_iter: np.ndarray
    converged: np.ndarray


def softmax_init(unary, clamp):
    """``rowsoftmax(-A)`` with the clamped rows set to their one-hot labels."""
    return _softmax_init(unary, clamp, np.ones(1, dtype=bool))[0]


def _softmax_init(unary, clamp, active):
    """:func:`softmax_init` of the active problems, and their unary-plus-entropy energy."""
    n_problems = active.shape[0]
    unary = np.ascontiguousarray(unary, dtype=np.float64)
    clamp = np.ascontiguousarray(clamp, dtype=np.int64)
    n_samples = unary.shape[0]
    part = _Partition.build(n_problems, n_samples // n_problems)
    # A sweep with lam = 0 over a graph without edges is the softmax of -A.
    no_edges = (np.zeros(n_samples + 1, dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros(0))
    Z = np.zeros_like(unary)  # rows of inactive problems stay zero
    _, unary_part = _sweep(no_edges, unary, np.zeros_like(unary), clamp, 0.0, part, active, Z)
    return Z, unary_part


def _unary_entropy(unary, Z, n_problems):
    """``sum_p a_p.z_p + z_p.log z_p`` per problem."""
    terms = unary * Z + special.xlogy(Z, Z)
    return terms.reshape(n_problems, -1).sum(axis=1)


@dataclass(frozen=True)
class _Partition:
    """Rows cut into segments (within one problem) grouped into parallel blocks."""

    seg_start: np.ndarray
    seg_problem: np.ndarray
    block_seg: np.ndarray

    @classmethod
    def build(cls, n_problems, rows_per_problem):
        if rows_per_problem <= _BLOCK_ROWS:
            # Whole problems, several to a block.
            seg_start = np.arange(n_problems + 1, dtype=np.int64) * rows_per_problem
            seg_problem = np.arange(n_problems)
            per_block = _BLOCK_ROWS // rows_per_problem
            block_seg = np.append(np.arange(0, n_problems, per_block), n_problems)
        else:
            pieces = -(-rows_per_problem // _BLOCK_ROWS)
            cuts = np.linspace(0, rows_per_problem, pieces + 1).astype(np.int64)
            firsts = np.arange(n_problems, dtype=np.int64)[:, None] * rows_per_problem
            seg_start = np.append((firsts + cuts[None, :-1]).ravel(), n_problems * rows_per_problem)
            seg_problem = np.repeat(np.arange(n_problems), pieces)
            block_seg = np.arange(seg_problem.shape[0] + 1)
        return cls(seg_start, seg_problem, block_seg.astype(np.int64))

    def per_problem(self, seg_values, n_problems):
        """Sum segment values over each problem."""
        return np.bincount(self.seg_problem, weights=seg_values, minlength=n_problems)


def _sweep(csr, unary, Z, clamp, lam, part, active, Z_next):
    """One bound sweep; returns the pairwise energy of Z and the unary energy of Z_next."""
    n_problems = active.shape[0]
    n_seg = part.seg_problem.shape[0]
    seg_pairwise = np.zeros(n_seg)
    seg_unary = np.zeros(n_seg)
    bound_sweep(
        *csr,
        unary,
        Z,
        clamp,
        float(lam),
        part.seg_start,
        part.block_seg,
        active[part.seg_problem],
        Z_next,
        seg_pairwise,
        seg_unary,
    )
    return part.per_problem(seg_pairwise, n_problems), part.per_problem(seg_unary, n_problems)


def _csr_arrays(affinity):
    """CSR index and weight arrays in the kernel's types (copies only if needed)."""
    W = sp.csr_matrix(affinity)
    return (
        W.indptr.astype(np.int64, copy=False),
        W.indices.astype(np.int64, copy=False),
        W.data.astype(np.float64, copy=False),
    )


def bound_update(
    unary,
    affinity,
    lam,
    *,
    clamp=None,
    init=None,
    n_problems=1,
    active=None,
    tol=1e-6,
    max_iter=1000,
):
    """Minimise the relaxed Laplacian energy by bound iterations.

    Parameters
    ----------
    unary : ndarray of shape (n_samples, n_labels)
        Costs ``A``; ``n_samples`` is a multiple of ``n_problems``.
    affinity : scipy.sparse matrix of shape (n_samples, n_samples), or its CSR arrays
        Symmetric, nonnegative; block-diagonal over the problems. A tuple
        ``(indptr, indices, weights)`` is used as given.
    lam : float
        Weight of the Laplacian term.
    clamp : ndarray of shape (n_samples,), optional
        Label of each clamped row, -1 for free rows.
    init : ndarray of shape (n_samples, n_labels), optional
        Starting assignments; ``softmax_init(unary, clamp)`` by default.
    n_problems : int
        Number of independent problems, stacked in equal contiguous row ranges.
    active : ndarray of shape (n_problems,) of bool, optional
        Problems to solve; the rows of the others are returned as given.
    tol : float
        Stop a problem when ``|E_i - E_{i-1}| <= tol * |E_{i-1}|``.
    max_iter : int
        Most bound iterations per problem.

    Returns
    -------
    BoundResult
    """
    unary = np.ascontiguousarray(unary, dtype=np.float64)
    n_samples, _ = unary.shape
    if n_samples % n_problems:
        raise ValueError(
            f"{n_samples} rows cannot be split into n_problems={n_problems} equal problems."
        )
    rows = n_samples // n_problems
    clamp = (
        np.full(n_samples, -1, dtype=np.int64)
        if clamp is None
        else np.ascontiguousarray(clamp, dtype=np.int64)
    )
    if clamp.shape != (n_samples,) or clamp.min() < -1 or clamp.max() >= unary.shape[1]:
        raise ValueError(
            f"clamp must hold one label in [0, {unary.shape[1]}) or -1 per row of unary."
        )
    active = np.ones(n_problems, dtype=bool) if active is None else np.array(active, dtype=bool)
    if init is None:
        Z, unary_part = _softmax_init(unary, clamp, active)
    else:
        Z = np.array(init, dtype=np.float64)
        unary_part = _unary_entropy(unary, Z, n_problems)
    Z_next = Z.copy()
    csr = affinity if isinstance(affinity, tuple) else _csr_arrays(affinity)
    part = _Partition.build(n_problems, rows)

    energy = np.full(n_problems, np.nan)
    n_iter = np.zeros(n_problems, dtype=np.int64)
    converged = np.zeros(n_problems, dtype=bool)
    history = []
    for it in range(max_iter + 1):
        pairwise, next_unary_part = _sweep(csr, unary, Z, clamp, lam, part, active, Z_next)
        with np.errstate(over="ignore", invalid="ignore"):  # checked on the next line
            current = np.where(active, unary_part - 0.5 * lam * pairwise, np.nan)
        if not np.isfinite(current[active]).all():
            raise FloatingPointError(
                f"The relaxed energy became non-finite at bound iteration {it}: lam={lam:g} "
                "is too large for the floating-point range of lam * W Z."
            )
        history.append(current)
        if it > 0:
            converged |= active & (np.abs(current - energy) <= tol * np.abs(energy))
        stopping = active & (converged | (it == max_iter))
        energy[active] = current[active]
        n_iter[active] = it
        if stopping.any():
            # A stopping problem keeps the iterate whose energy was just measured.
            view, view_next = Z.reshape(n_problems, rows, -1), Z_next.reshape(n_problems, rows, -1)
            view_next[stopping] = view[stopping]
            active = active & ~stopping
        unary_part = next_unary_part
        Z, Z_next = Z_next, Z
        if not active.any():
            break
    return BoundResult(Z, energy, np.array(history), n_iter, converged)


@dataclass
class PrototypeResult:
    """Output of :func:`fit_prototypes`, per problem (axis 0 indexes the problems).

    Attributes
    ----------
    assignments : ndarray of shape (n_problems, n_points, n_labels)
    labels : ndarray of shape (n_problems, n_points)
    prototypes : ndarray of shape (n_problems, n_labels, n_features)
    energy_history : ndarray of shape (n_rounds, n_problems)
        Relaxed energy after each accepted round's bound iterations; NaN once a problem has
        stopped.
    n_iter : ndarray of shape (n_problems,)
        Rounds (bound solve + prototype update) accepted; a round that would empty a label
        is not counted.
    converged : ndarray of shape (n_problems,)
        Whether the hard labels stopped changing.
    empty_cluster : ndarray of shape (n_problems,)
        Problems stopped because a label lost all its points (the previous labels are kept).
    bound_converged : ndarray of shape (n_problems,)
        Whether the last bound solve reached its tolerance.
    """

    assignments: np.ndarray
    labels: np.ndarray
    prototypes: np.ndarray
    energy_history: np.ndarray
    n_iter: np.ndarray
    converged: np.ndarray
    empty_cluster: np.ndarray
    bound_converged: np.ndarray


def fit_prototypes(
    X,
    affinity,
    lam,
    prototypes,
    *,
    clamp=None,
    kind="means",
    sigma2=None,
    cost_scale=None,
    max_iter=100,
    tol=1e-6,
    max_bound_iter=1000,
):
    """Laplacian-regularised prototype clustering of one or many problems.

    Each round runs the bound iterations for the current prototypes, takes hard labels
    (argmax of the assignments), and updates the prototypes from them. A problem stops
    when its hard labels no longer change, or, if a label would lose all its points, with
    the previous labels and prototypes.

    Parameters
    ----------
    X : ndarray of shape (n_problems, n_points, n_features)
    affinity : scipy.sparse matrix of shape (n_problems * n_points,) * 2
        Block-diagonal kNN affinity (:mod:`.graph`).
    lam : float
    prototypes : ndarray of shape (n_problems, n_labels, n_features)
        Initial prototypes.
    clamp : ndarray of shape (n_problems, n_points), optional
        Labels of clamped points, -1 elsewhere.
    kind : {"means", "modes", "members", "fixed"}
        Prototype update, see :mod:`.prototypes`.
    sigma2 : ndarray of shape (n_problems,), optional
        Kernel bandwidths for "modes" and "members".
    cost_scale : ndarray of shape (n_problems,), optional
        The unary costs are divided by it (1 by default).
    max_iter : int
        Most rounds.
    tol, max_bound_iter
        Passed to :func:`bound_update`.

    Returns
    -------
    PrototypeResult
    """
    if kind not in PROTOTYPES:
        raise ValueError(f"kind must be one of {PROTOTYPES}, got {kind!r}.")
    n_problems, n_points, _ = X.shape
    n_labels = prototypes.shape[1]
    clamp = (
        np.full((n_problems, n_points), -1, dtype=np.int64)
        if clamp is None
        else np.asarray(clamp, dtype=np.int64)
    )
    sigma2 = np.ones(n_problems) if sigma2 is None else np.asarray(sigma2, dtype=np.float64)
    M = np.array(prototypes, dtype=X.dtype)
    csr = _csr_arrays(affinity)
    inv_scale = 1.0 / (np.ones(n_problems) if cost_scale is None else np.asarray(cost_scale))
    inv_scale = inv_scale[:, None, None]

    unary = unary_costs(X, M, kind, sigma2) * inv_scale
    labels = np.where(clamp >= 0, clamp, unary.argmin(axis=2))
    assignments = softmax_init(unary.reshape(-1, n_labels), clamp.ravel())
    assignments = assignments.reshape(n_problems, n_points, n_labels)
    active = np.ones(n_problems, dtype=bool)
    converged = np.zeros(n_problems, dtype=bool)
    empty_cluster = np.zeros(n_problems, dtype=bool)
    bound_converged = np.zeros(n_problems, dtype=bool)
    n_iter = np.zeros(n_problems, dtype=np.int64)
    history = []
    for round_ in range(max_iter):
        result = bound_update(
            unary.reshape(-1, n_labels),
            csr,
            lam,
            clamp=clamp.ravel(),
            n_problems=n_problems,
            active=active,
            tol=tol,
            max_iter=max_bound_iter,
        )
        Z = result.assignments.reshape(n_problems, n_points, n_labels)
        new_labels = Z.argmax(axis=2)
        offsets = (np.arange(n_problems) * n_labels)[:, None]
        counts = np.bincount((new_labels + offsets).ravel(), minlength=n_problems * n_labels)
        counts = counts.reshape(n_problems, n_labels)
        emptied = active & (counts == 0).any(axis=1)
        empty_cluster |= emptied
        accept = active & ~emptied
        n_iter[accept] += 1
        history.append(np.where(accept, result.energy, np.nan))
        assignments[accept] = Z[accept]
        bound_converged[accept] = result.converged[accept]
        # The first round compares with nearest-prototype labels, not with a bound solve.
        settled = accept & (new_labels == labels).all(axis=1) & (round_ > 0)
        converged |= settled
        labels[accept] = new_labels[accept]
        active = accept & ~settled
        if kind == "fixed":
            converged |= active
            active[:] = False
        if not active.any():
            break
        # Index only the problems still running (a view while all of them are).
        rows = slice(None) if active.all() else np.flatnonzero(active)
        X_run = X[rows]
        M[rows] = update_prototypes(
            X_run, labels[rows], assignments[rows], M[rows], kind, sigma2[rows], clamp=clamp[rows]
        )
        unary[rows] = unary_costs(X_run, M[rows], kind, sigma2[rows]) * inv_scale[rows]
    return PrototypeResult(
        assignments, labels, M, np.array(history), n_iter, converged, empty_cluster, bound_converged
    )
