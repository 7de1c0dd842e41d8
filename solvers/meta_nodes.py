"""PamC's meta-node contrastive loss and the dense neighbourhood-contrastive loss it replaces.

Notation (Kulatilleke et al., 2022, "Efficient block contrastive learning via
parameter-free meta-node approximation"; released code gayanku/PAMC):

- ``A`` the symmetric, unnormalised adjacency of a kNN graph, ``Â = D⁻¹(A + I)`` with
  ``D`` the row sums of ``A + I``, and ``W = Σ_{t=1..r} Â^t`` (cumulative powers) or
  ``W = Â^r`` (``cumulative=False``);
- ``cos_ij`` the cosine of embeddings ``z_i`` and ``z_j``, with the self cosine set to 0;
- ``pos_i = Σ_j W_ij exp(τ cos_ij)`` over the nonzeros of ``W`` (the self pair adds
  ``W_ii · exp(0)``);
- hard meta-nodes ``c_k = Σ_{i: label_i = k} z_i`` and
  ``neg_k = Σ_l exp(τ cos(c_k, c_l))`` over the non-empty clusters, self cosine 0;
- ``L = -mean_i log pos_i + mean_k log neg_k`` (the mean over non-empty clusters).

The dense neighbourhood-contrastive loss (Graph-MLP's ``Ncontrast``, which PamC's
meta-nodes replace) has the same numerator and the ``O(N²)`` denominator
``den_i = Σ_j exp(τ cos_ij)`` over every ``j``, the self term ``exp(0) = 1`` included:
``L = -mean_i log(pos_i / den_i)``.

Every function here takes validated arrays: ``U`` rows of unit norm (or zero), labels in
``[0, n_clusters)``. NumPy runs Numba kernels; any other array-API namespace runs the
same sums as gathers over the edge list of ``W`` plus a segment sum
(:func:`clusterlab.solvers._backend.segment_sum`), in edge chunks so that no gather holds
more than :data:`GATHER_ELEMENTS` values at once (autograd still keeps the gathered
chunks of a PyTorch graph for its backward pass, O(nnz(W) · d) in all).

Every sum of exponentials is taken as ``τ + log Σ w exp(τ (cos − 1))``: cosines are at
most 1, so no term overflows whatever ``τ``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numba
import numpy as np
import scipy.sparse as sp

from ._backend import (
    device,
    is_numpy_namespace,
    logsumexp,
    segment_sum,
    stop_gradient,
    unit_rows,
)

__all__ = [
    "GATHER_ELEMENTS",
    "PropagationGraph",
    "log_dense_sums",
    "log_negative_sums",
    "log_positive_sums",
    "meta_node_sums",
    "ncontrast_loss",
    "pamc_loss",
    "propagation_graph",
]

GATHER_ELEMENTS = 1 << 22  # values per gathered edge chunk (or dense block) off NumPy


@dataclass(frozen=True)
class PropagationGraph:
    """``W`` split into its diagonal and its off-diagonal nonzeros (CSR, on the host).

    Attributes
    ----------
    indptr, indices : ndarray of int64
        CSR structure of the off-diagonal nonzeros of ``W``.
    weights : ndarray of float64
        Their values ``W_ij``.
    self_weights : ndarray of float64, shape (n_points,)
        The diagonal ``W_ii`` (positive: ``Â`` has the self loops of ``A + I``).
    """

    indptr: np.ndarray
    indices: np.ndarray
    weights: np.ndarray
    self_weights: np.ndarray

    @property
    def n_points(self) -> int:
        return self.self_weights.shape[0]

    @property
    def n_edges(self) -> int:
        """Off-diagonal nonzeros of ``W``: the pairs whose cosine the loss evaluates."""
        return self.indices.shape[0]

    def rows(self) -> np.ndarray:
        """The row of every off-diagonal nonzero (COO rows, sorted)."""
        return np.repeat(np.arange(self.n_points, dtype=np.int64), np.diff(self.indptr))


def propagation_graph(adjacency, order, *, cumulative=True) -> PropagationGraph:
    """``W = Σ_{t=1..order} Â^t`` (or ``Â^order``) with ``Â = D⁻¹(A + I)``, by sparse
    products on the host, once.

    ``adjacency`` is a SciPy sparse matrix or array with non-negative entries. The
    number of nonzeros grows about like ``N · degree^order``: linear in ``N`` for a
    fixed order and a kNN graph.
    """
    A = sp.csr_array(adjacency, dtype=np.float64)
    n = A.shape[0]
    A_hat = (A + sp.eye_array(n, format="csr")).tocsr()  # a new matrix: scaled in place
    degree = np.asarray(A_hat.sum(axis=1)).ravel()
    A_hat.data /= np.repeat(degree, np.diff(A_hat.indptr))  # D⁻¹(A + I), row by row
    power = total = A_hat
    for _ in range(order - 1):
        power = (power @ A_hat).tocsr()
        total = (total + power).tocsr() if cumulative else power
    # Sums and products of CSR matrices hold no duplicate entries (their indices may be
    # unsorted, which nothing below needs): no sort here.
    W = sp.csr_array(total)
    # Split off the diagonal without leaving CSR (no COO round trip, no global sort).
    rows = np.repeat(np.arange(n, dtype=np.int64), np.diff(W.indptr))
    diagonal = W.indices == rows
    self_weights = np.zeros(n)
    self_weights[rows[diagonal]] = W.data[diagonal]
    off = ~diagonal & (W.data != 0)
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows[off], minlength=n), out=indptr[1:])
    return PropagationGraph(
        indptr=indptr,
        indices=W.indices[off].astype(np.int64),
        weights=W.data[off].astype(np.float64),
        self_weights=self_weights,
    )


@numba.njit(parallel=True, cache=True)
def _log_positive_sums_kernel(
    U,
    indptr,
    indices,
    weights,
    self_weights,
    tau,  # pragma: no cover
    out,
):
    # IN: U (n, d) unit rows; CSR of the off-diagonal W; its diagonal; OUT: out (n,)
    n, d = U.shape
    for i in numba.prange(n):
        total = self_weights[i] * math.exp(-tau)  # self cosine 0: exp(tau * (0 - 1))
        for e in range(indptr[i], indptr[i + 1]):
            j = indices[e]
            dot = 0.0
            for f in range(d):
                dot += U[i, f] * U[j, f]
            total += weights[e] * math.exp(tau * (dot - 1.0))
        out[i] = tau + math.log(total)


@numba.njit(parallel=True, cache=True)
def _log_row_exp_sums_kernel(G, start, tau, out):  # pragma: no cover
    # IN: G (b, n) cosines of rows start..start+b-1 against all; OUT: out (b,)
    b, n = G.shape
    for r in numba.prange(b):
        total = 0.0
        for j in range(n):
            c = 0.0 if j == start + r else G[r, j]  # self cosine 0
            total += math.exp(tau * (c - 1.0))
        out[r] = tau + math.log(total)


def log_positive_sums(xp, U, graph, tau):
    """``log pos_i`` of shape (n,) for unit rows ``U`` (float64 on NumPy, else U's dtype)."""
    if is_numpy_namespace(xp):
        out = np.empty(graph.n_points)
        _log_positive_sums_kernel(
            np.ascontiguousarray(U),
            graph.indptr,
            graph.indices,
            graph.weights,
            graph.self_weights,
            float(tau),
            out,
        )
        return out
    where = device(U)
    n, d = U.shape
    total = xp.asarray(graph.self_weights, dtype=U.dtype, device=where) * math.exp(-tau)
    rows = graph.rows()
    step = max(1, GATHER_ELEMENTS // max(d, 1))
    for begin in range(0, graph.n_edges, step):
        stop = min(begin + step, graph.n_edges)
        r = xp.asarray(rows[begin:stop], device=where)
        c = xp.asarray(graph.indices[begin:stop], device=where)
        w = xp.asarray(graph.weights[begin:stop], dtype=U.dtype, device=where)
        cos = xp.sum(xp.take(U, r, axis=0) * xp.take(U, c, axis=0), axis=1)
        total = total + segment_sum(xp, w * xp.exp(tau * (cos - 1.0)), r, n)
    return tau + xp.log(total)


def meta_node_sums(xp, Z, labels, n_clusters):
    """``c_k = Σ_{i: labels_i = k} z_i`` of shape (n_clusters, d), and which ``k`` are
    non-empty (bool, shape (n_clusters,)). Differentiable in ``Z`` on PyTorch."""
    where = device(Z)
    if is_numpy_namespace(xp):
        counts = np.bincount(labels, minlength=n_clusters)
        sums = np.zeros((n_clusters, Z.shape[1]), dtype=np.float64)
        _label_sums_kernel(Z, labels, sums)
        return sums.astype(Z.dtype, copy=False), counts > 0
    ones = xp.ones(Z.shape[0], dtype=Z.dtype, device=where)
    counts = segment_sum(xp, ones, labels, n_clusters)
    return segment_sum(xp, Z, labels, n_clusters), counts > 0


@numba.njit(cache=True)
def _label_sums_kernel(Z, labels, sums):  # pragma: no cover
    # IN: Z (n, d), labels (n,); OUT: sums (K, d), zeroed by the caller
    n, d = Z.shape
    for i in range(n):
        k = labels[i]
        for f in range(d):
            sums[k, f] += Z[i, f]


def log_negative_sums(xp, C, nonempty, tau):
    """``log neg_k`` over the non-empty meta-nodes (0 for an empty ``k``), shape (K,).

    ``C`` holds the meta-node sums; empty ones are left out of every sum (their cosine
    would be 0/0), and ``neg_k`` of an empty ``k`` is reported as 1 (log 0)."""
    where = device(C)
    K = C.shape[0]
    V = unit_rows(xp, C)
    cos = V @ V.T
    index = xp.arange(K, device=where)
    self_pair = index[:, None] == index[None, :]
    logits = tau * xp.where(self_pair, xp.zeros_like(cos), cos)
    logits = xp.where(nonempty[None, :], logits, xp.full_like(logits, -math.inf))
    lse = logsumexp(xp, logits, axis=1)
    return xp.where(nonempty, lse, xp.zeros_like(lse))


def pamc_loss(xp, Z, graph, labels, n_clusters, tau, *, detach_meta_nodes=False):
    """PamC's loss as a 0-d array of Z's namespace and dtype (see the module docstring).

    ``labels`` are integer labels on Z's device. On PyTorch the gradient flows into ``Z``
    through the positive term and through the meta-node sums (as in the released code,
    where only the argmax assignment is detached); ``detach_meta_nodes=True`` detaches
    the meta-nodes as well.
    """
    U = unit_rows(xp, Z)
    log_pos = log_positive_sums(xp, U, graph, tau)
    C, nonempty = meta_node_sums(xp, Z, labels, n_clusters)
    if detach_meta_nodes:
        C = stop_gradient(xp, C)
    log_neg = log_negative_sums(xp, C, nonempty, tau)
    if is_numpy_namespace(xp):
        value = -np.mean(log_pos) + np.sum(log_neg) / np.count_nonzero(nonempty)
        return np.asarray(value, dtype=Z.dtype)
    n_nonempty = xp.sum(xp.astype(nonempty, Z.dtype))
    return -xp.mean(log_pos) + xp.sum(log_neg) / n_nonempty


def log_dense_sums(xp, U, tau):
    """``log den_i = log Σ_j exp(τ cos_ij)`` over all ``j`` (self cosine 0): O(N² d),
    in row blocks so that O(block · N) values are held at a time."""
    n = U.shape[0]
    block = max(1, min(n, GATHER_ELEMENTS // max(n, 1)))
    if is_numpy_namespace(xp):
        out = np.empty(n)
        U64 = np.asarray(U, dtype=np.float64)
        for start in range(0, n, block):
            G = U64[start : start + block] @ U64.T
            _log_row_exp_sums_kernel(G, start, float(tau), out[start : start + block])
        return out
    where = device(U)
    columns = xp.arange(n, device=where)
    parts = []
    for start in range(0, n, block):
        stop = min(start + block, n)
        cos = U[start:stop, :] @ U.T
        self_pair = xp.arange(start, stop, device=where)[:, None] == columns[None, :]
        parts.append(logsumexp(xp, tau * xp.where(self_pair, xp.zeros_like(cos), cos), axis=1))
    return xp.concat(parts)


def ncontrast_loss(xp, Z, graph, tau):
    """``-mean_i log(pos_i / den_i)``: the dense neighbourhood-contrastive loss."""
    U = unit_rows(xp, Z)
    log_pos = log_positive_sums(xp, U, graph, tau)
    log_den = log_dense_sums(xp, U, tau)
    if is_numpy_namespace(xp):
        return np.asarray(np.mean(log_den - log_pos), dtype=Z.dtype)
    return xp.mean(log_den - log_pos)
