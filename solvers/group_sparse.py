r"""Group-sparse community readout (DAG, Liu et al., KDD 2024) on fixed node features.

The communities of an attributed graph are read out of the propagated features
``H = Â X`` (``Â = D⁻¹(A + I)``, the row-normalised adjacency with self-loops) by a
linear map ``W`` of shape ``(d, K_max)`` and a ReLU,

.. math:: C = \operatorname{ReLU}(H W),

trained with a BPR edge loss and an :math:`\ell_{2,1}` penalty on the columns of ``W``:

.. math::

   F(W) = \underbrace{\frac{1}{\sum_e w_e} \sum_{e = (i, j, u)} w_e
          \log\!\big(1 + e^{-(C_i \cdot C_j - C_i \cdot C_u)}\big)}_{L(W)}
          + \alpha \lVert W \rVert_F^2 + \beta \sum_k \lVert W_{:,k} \rVert_2 ,

with one non-neighbour ``u`` of ``i`` per directed edge ``(i, j)``, drawn once
(:func:`edge_samples`) so that ``F`` is a fixed function and its decrease can be checked.
A column of ``W`` that reaches zero is a community switched off; the number of
communities is what remains in use.

:func:`proximal_gradient` minimises ``F`` by proximal gradient with a backtracking step:
a gradient step on the smooth part ``L + α‖W‖²`` (:func:`smooth_objective`, analytic
gradient) followed by the group soft-threshold (:func:`group_soft_threshold`)

.. math:: W_{:,k} \leftarrow \max\!\big(0, 1 - \eta\beta / \lVert W_{:,k} \rVert\big) W_{:,k},

which sets whole columns exactly to zero. Each accepted step satisfies the sufficient
decrease condition of the proximal gradient method, so ``F`` never increases.

The functions take validated NumPy float64 arrays and SciPy sparse matrices and check
nothing; :class:`clusterlab.GroupSparseCommunity` is the checked entry point.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numba
import numpy as np
import scipy.sparse as sp

__all__ = [
    "EdgeSamples",
    "GroupSparseResult",
    "community_labels",
    "edge_samples",
    "fit_readout",
    "group_l21",
    "group_soft_threshold",
    "initial_weights",
    "objective",
    "propagation_matrix",
    "proximal_gradient",
    "readout",
    "smooth_objective",
]


@dataclass(frozen=True)
class EdgeSamples:
    """The triples of the BPR loss: directed edge ``(heads[e], tails[e])`` and a sampled
    non-neighbour ``negatives[e]`` of ``heads[e]``, with the edge's weight."""

    heads: np.ndarray
    tails: np.ndarray
    negatives: np.ndarray
    weights: np.ndarray

    @property
    def n_edges(self) -> int:
        return int(self.heads.shape[0])


@dataclass(frozen=True)
class GroupSparseResult:
    """Outcome of :func:`proximal_gradient`.

    Attributes
    ----------
    weights : ndarray of shape (n_features, k_max)
        ``W``; switched-off communities are exactly-zero columns.
    objective_history : ndarray of float64
        ``F(W)`` at the start and after every iteration (non-increasing).
    n_iter : int
        Proximal gradient iterations run.
    converged : bool
        Whether the relative decrease of ``F`` fell to ``tol``.
    step : float
        The last accepted step size.
    """

    weights: np.ndarray
    objective_history: np.ndarray
    n_iter: int
    converged: bool
    step: float

    @property
    def objective(self) -> float:
        return float(self.objective_history[-1])

    @property
    def active(self) -> np.ndarray:
        """Indices of the columns of ``W`` that are not zero."""
        return np.flatnonzero(np.any(self.weights != 0, axis=0))


def propagation_matrix(adjacency):
    """``Â = D⁻¹(A + I)`` as CSR: the adjacency with unit self-loops, rows summing to 1.

    ``adjacency`` is a SciPy sparse matrix with nonnegative weights and no stored
    diagonal that matters (the diagonal is replaced by the unit self-loop).
    """
    A = sp.csr_matrix(adjacency, dtype=np.float64, copy=True)
    A.setdiag(0.0)
    A.eliminate_zeros()
    A = (A + sp.identity(A.shape[0], format="csr")).tocsr()
    degree = np.asarray(A.sum(axis=1)).ravel()
    return sp.csr_matrix(sp.diags(1.0 / degree) @ A)


def edge_samples(adjacency, rng, *, max_rounds=64):
    """Every stored off-diagonal entry ``(i, j)`` of ``adjacency`` as a BPR triple, with
    a non-neighbour ``u`` of ``i`` (``u != i``, ``A_iu = 0``) drawn uniformly with
    ``rng`` (a NumPy Generator or RandomState).

    Draws are rejected and redrawn up to ``max_rounds`` times; the edges of a node that
    is adjacent to (nearly) every other node and found no non-neighbour are dropped.
    The weights are the entries of ``adjacency``.
    """
    A = sp.csr_matrix(adjacency, dtype=np.float64, copy=True)
    A.setdiag(0.0)
    A.eliminate_zeros()
    A.sort_indices()
    n = A.shape[0]
    heads = np.repeat(np.arange(n), np.diff(A.indptr))
    tails = A.indices.astype(np.int64)
    weights = A.data.copy()
    negatives = _integers(rng, n, heads.shape[0])
    for _ in range(max_rounds):
        bad = _is_neighbor(A, heads, negatives) | (negatives == heads)
        if not bad.any():
            break
        negatives[bad] = _integers(rng, n, int(bad.sum()))
    bad = _is_neighbor(A, heads, negatives) | (negatives == heads)
    keep = ~bad
    return EdgeSamples(heads[keep], tails[keep], negatives[keep].astype(np.int64), weights[keep])


def _integers(rng, high, size):
    """Uniform integers in ``[0, high)`` from a NumPy Generator or RandomState."""
    if isinstance(rng, np.random.Generator):
        return rng.integers(0, high, size=size)
    return rng.randint(0, high, size=size).astype(np.int64)


def _is_neighbor(A, rows, cols):
    """Whether ``A[rows[e], cols[e]]`` is stored, for CSR ``A`` with sorted indices."""
    out = np.zeros(rows.shape[0], dtype=bool)
    if rows.shape[0] == 0 or A.nnz == 0:
        return out
    # one binary search over the row-major keys row * n + col of the stored entries
    n = A.shape[1]
    keys = np.repeat(np.arange(A.shape[0], dtype=np.int64), np.diff(A.indptr)) * n + A.indices
    query = rows.astype(np.int64) * n + cols
    position = np.searchsorted(keys, query)
    inside = position < keys.shape[0]
    out[inside] = keys[position[inside]] == query[inside]
    return out


def readout(H, W):
    """``(Z, C)``: the pre-activations ``Z = H W`` and the memberships ``C = ReLU(Z)``."""
    Z = H @ W
    return Z, np.maximum(Z, 0.0)


@numba.njit(cache=True)
def _bpr_kernel(C, heads, tails, negatives, weights, grad_C, with_gradient):
    """Sum over triples of ``w_e softplus(-s_e)``, ``s_e = C_i · (C_j - C_u)``; with
    ``with_gradient``, adds its gradient in ``C`` to ``grad_C`` (IN/OUT, zeroed by the
    caller). A serial loop: the scatter to ``C_j`` and ``C_u`` would race in parallel."""
    K = C.shape[1]
    total = 0.0
    for e in range(heads.shape[0]):
        i, j, u = heads[e], tails[e], negatives[e]
        s = 0.0
        for k in range(K):
            s += C[i, k] * (C[j, k] - C[u, k])
        # softplus(-s) = log(1 + exp(-s)), and its derivative in s, -sigma(-s)
        if s > 0:
            t = math.exp(-s)
            total += weights[e] * math.log1p(t)
            g = -weights[e] * t / (1.0 + t)
        else:
            t = math.exp(s)
            total += weights[e] * (math.log1p(t) - s)
            g = -weights[e] / (1.0 + t)
        if with_gradient:
            for k in range(K):
                cik = C[i, k]
                grad_C[i, k] += g * (C[j, k] - C[u, k])
                grad_C[j, k] += g * cik
                grad_C[u, k] -= g * cik
    return total


def group_l21(W):
    """``Σ_k ‖W_{:,k}‖₂``."""
    return float(np.sum(np.sqrt(np.einsum("dk,dk->k", W, W))))


def smooth_objective(H, W, edges, alpha, *, gradient=True):
    """The smooth part ``L(W) + α‖W‖²_F`` and, with ``gradient``, its gradient in ``W``.

    The loss's derivative in the margin is ``-σ(-s_e)``; it flows back to ``C_i``
    (times ``C_j - C_u``), to ``C_j`` (times ``C_i``) and to ``C_u`` (times ``-C_i``),
    then through the ReLU (zero where ``Z <= 0``) to ``W = Hᵀ (dL/dZ)``.
    """
    Z, C = readout(H, W)
    value = alpha * float(np.vdot(W, W))
    grad_C = np.zeros_like(C)
    if edges.n_edges:
        weights = edges.weights / edges.weights.sum()
        value += _bpr_kernel(
            C, edges.heads, edges.tails, edges.negatives, weights, grad_C, gradient
        )
    if not gradient:
        return value
    grad_Z = np.where(Z > 0, grad_C, 0.0)
    return value, H.T @ grad_Z + 2.0 * alpha * W


def objective(H, W, edges, alpha, beta):
    """``F(W) = L(W) + α‖W‖²_F + β Σ_k ‖W_{:,k}‖₂``."""
    return smooth_objective(H, W, edges, alpha, gradient=False) + beta * group_l21(W)


def group_soft_threshold(W, threshold):
    """The proximal map of ``threshold · Σ_k ‖W_{:,k}‖₂``: each column shrunk by
    ``max(0, 1 - threshold / ‖W_{:,k}‖)``, a column of norm at most ``threshold`` set to
    exactly zero. Returns a new array."""
    norms = np.sqrt(np.einsum("dk,dk->k", W, W))
    safe = np.where(norms > 0, norms, 1.0)
    scale = np.where(norms > threshold, 1.0 - threshold / safe, 0.0)
    return W * scale[None, :]


def proximal_gradient(
    H,
    W,
    edges,
    *,
    alpha,
    beta,
    learning_rate,
    max_iter,
    tol,
    callback=None,
    max_backtracks=50,
):
    """Minimise ``F`` from ``W`` by proximal gradient with a backtracking step.

    Each iteration tries the step ``η`` (starting at ``learning_rate``, doubled after
    every accepted step, at most ``learning_rate * 1e3``) and halves it until the
    sufficient decrease condition holds,

    ``f(W⁺) <= f(W) + <∇f(W), W⁺ - W> + ‖W⁺ - W‖² / (2η)``,  ``f = L + α‖W‖²``,

    which guarantees ``F(W⁺) <= F(W)``. It stops when the relative decrease
    ``(F(W) - F(W⁺)) / max(|F(W)|, 1e-12)`` is at most ``tol`` (converged), after
    ``max_iter`` iterations, or when no step of the backtracking decreases ``F``
    (converged: a stationary point to working precision).

    Parameters
    ----------
    H : ndarray of shape (n, d), float64
        Propagated features ``Â X``.
    W : ndarray of shape (d, k_max), float64
        Initial weights (not modified).
    edges : EdgeSamples
    alpha, beta : float >= 0
    learning_rate : float > 0
        The first step tried.
    max_iter : int
    tol : float >= 0
    callback : callable or None
        ``callback(n_iter, objective, n_active)`` after every iteration.

    Returns
    -------
    GroupSparseResult
    """
    W = np.array(W, dtype=np.float64, copy=True)
    step = float(learning_rate)
    largest = 1e3 * step
    f, grad = smooth_objective(H, W, edges, alpha)
    F = f + beta * group_l21(W)
    history = [F]
    converged = False
    n_iter = 0
    for n_iter in range(1, max_iter + 1):
        accepted = False
        for _ in range(max_backtracks):
            candidate = group_soft_threshold(W - step * grad, step * beta)
            delta = candidate - W
            f_new = smooth_objective(H, candidate, edges, alpha, gradient=False)
            bound = f + float(np.vdot(grad, delta)) + float(np.vdot(delta, delta)) / (2 * step)
            if math.isfinite(f_new) and f_new <= bound + 1e-12 * abs(f):
                accepted = True
                break
            step *= 0.5
        if not accepted:
            converged = True  # no step decreases F: stationary to working precision
            history.append(F)
            break
        W = candidate
        f, grad = smooth_objective(H, W, edges, alpha)
        F_new = f + beta * group_l21(W)
        decrease = history[-1] - F_new
        history.append(F_new)
        F = F_new
        if callback is not None:
            callback(n_iter, F, int(np.count_nonzero(np.any(W != 0, axis=0))))
        if decrease <= tol * max(abs(history[-2]), 1e-12):
            converged = True
            break
        step = min(2.0 * step, largest)
    return GroupSparseResult(W, np.asarray(history), n_iter, converged, step)


def initial_weights(H, k_max, rng, *, membership_norm2=4.0):
    """Gaussian ``W`` scaled so that the mean squared norm of ``C_i = ReLU(H_i W)`` is
    ``membership_norm2``: margins of order one, away from ``W = 0`` (always a local
    minimum of ``F``: the loss's gradient vanishes there, the penalty's subgradient
    ball does not)."""
    W = rng.standard_normal((H.shape[1], k_max))
    C = np.maximum(H @ W, 0.0)
    mean = float(np.mean(np.einsum("nk,nk->n", C, C)))
    return W * math.sqrt(membership_norm2 / mean) if mean > 0 else W


def fit_readout(
    H,
    edges,
    W,
    *,
    alpha,
    beta,
    learning_rate,
    max_iter,
    tol,
    warmup_iter=100,
    callback=None,
):
    """The whole fit: ``warmup_iter`` iterations without the group penalty (``beta = 0``,
    stopping early at ``tol``), then :func:`proximal_gradient` with it.

    From a random ``W`` the penalty alone would switch off every column in the first
    steps (the random memberships explain the edges worse than none at all); the
    warm-up first lets the loss organise the columns into communities, and the penalty
    then switches off those that do not pay for themselves. The returned result is the
    penalised phase's (its ``objective_history`` starts at the warm-up's end).
    """
    if warmup_iter > 0:
        W = proximal_gradient(
            H,
            W,
            edges,
            alpha=alpha,
            beta=0.0,
            learning_rate=learning_rate,
            max_iter=warmup_iter,
            tol=tol,
        ).weights
    return proximal_gradient(
        H,
        W,
        edges,
        alpha=alpha,
        beta=beta,
        learning_rate=learning_rate,
        max_iter=max_iter,
        tol=tol,
        callback=callback,
    )


def community_labels(C, Z, adjacency, active):
    """Hard labels: ``argmax_k C_ik``, with a defined label for all-zero rows of ``C``.

    A node whose memberships are all zero (its pre-activations ``Z_i`` are all <= 0)
    takes the label most common among its graph neighbours, weighted by the edge weights
    (ties to the smallest label), propagated until no such node changes: a zero node next
    to labelled nodes joins their community, and zero nodes further away receive it
    through the graph. Zero nodes with no labelled node in their connected component take
    ``argmax_k Z_ik`` over the active columns (the community they are closest to
    entering). With no active column at all, every node gets column 0.

    Returns the column index of ``C`` of every node (int64).
    """
    n = C.shape[0]
    if active.shape[0] == 0:
        return np.zeros(n, dtype=np.int64)
    labels = np.argmax(C, axis=1).astype(np.int64)
    zero = ~np.any(C > 0, axis=1)
    if not zero.any():
        return labels
    labels[zero] = -1
    A = sp.csr_matrix(adjacency, dtype=np.float64, copy=True)
    A.setdiag(0.0)
    A.eliminate_zeros()
    A = abs(A)
    n_columns = C.shape[1]
    while True:
        pending = np.flatnonzero(labels < 0)
        if pending.shape[0] == 0:
            break
        sub = A[pending].tocoo()  # edges from pending nodes
        neighbor_labels = labels[sub.col]
        known = neighbor_labels >= 0
        if not known.any():
            break
        votes = sp.csr_matrix(
            (sub.data[known], (sub.row[known], neighbor_labels[known])),
            shape=(pending.shape[0], n_columns),
        ).toarray()
        has_vote = votes.max(axis=1) > 0
        if not has_vote.any():
            break
        labels[pending[has_vote]] = np.argmax(votes[has_vote], axis=1)
    left = labels < 0
    if left.any():
        labels[left] = active[np.argmax(Z[np.ix_(left, active)], axis=1)]
    return labels
