"""Numba kernel of the Laplacian bound iteration (CPU backend of :mod:`.bound`).

Rows are processed in independent blocks (a block never spans two problems), in
parallel. One sweep reads each row's neighbours once and produces the next iterate with
the two parts of the relaxed energy that are cheap to get on the way.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

# No "nnan"/"ninf": non-finite values must propagate to the driver.
_FASTMATH = {"reassoc", "contract", "nsz", "arcp"}


@njit(parallel=True, cache=True, fastmath=_FASTMATH)
def bound_sweep(
    indptr,
    indices,
    weights,
    unary,
    Z,
    clamp,
    lam,
    seg_start,
    block_seg,
    seg_active,
    Z_next,
    seg_pairwise,
    seg_unary,
):
    """``Z_next = rowsoftmax(-A + lam W Z)``, clamped rows one-hot, with energy parts.

    Every row's update depends on the current iterate only, so rows are independent.
    The relaxed energy ``E(Z) = sum_p a_p.z_p + z_p.log z_p - lam / 2 z_p.(W Z)_p`` is
    split in two: the pairwise part of ``Z`` (which needs ``W Z``, computed here) and
    the unary-plus-entropy part of ``Z_next`` (one log per row, since
    ``log z_next_pk = s_pk - log sum_l exp(s_pl)`` for the shifted logits ``s``).

    Rows are cut into segments (a segment never spans two problems) and segments into
    blocks, run in parallel: many small problems share a block, a large one spans several.

    IN: indptr, indices, weights: CSR arrays of the affinity W (n x n);
        unary (n, L) float64, the costs A; Z (n, L) float64, the current iterate;
        clamp (n,) int64, label or -1; lam float64;
        seg_start (n_seg + 1,) int64 row boundaries of the segments;
        block_seg (n_blocks + 1,) int64 segment boundaries of the blocks;
        seg_active (n_seg,) bool.
    OUT, for active segments only: Z_next (n, L);
        seg_pairwise (n_seg,), ``sum_p z_p.(W Z)_p`` over the segment's rows;
        seg_unary (n_seg,), ``sum_p a_p.z_p + z_p.log z_p`` of ``Z_next``.
    """
    n_labels = unary.shape[1]
    for b in prange(block_seg.shape[0] - 1):
        wz = np.empty(n_labels)
        arg = np.empty(n_labels)
        expd = np.empty(n_labels)
        for s in range(block_seg[b], block_seg[b + 1]):
            if not seg_active[s]:
                continue
            pairwise = 0.0
            unary_entropy = 0.0
            for p in range(seg_start[s], seg_start[s + 1]):
                label = clamp[p]
                if label >= 0:
                    # A clamped row is one-hot: its pairwise term needs (W Z)_p at its label.
                    for j in range(indptr[p], indptr[p + 1]):
                        pairwise += weights[j] * Z[indices[j], label]
                    Z_next[p, :] = 0.0
                    Z_next[p, label] = 1.0
                    unary_entropy += unary[p, label]
                    continue
                wz[:] = 0.0
                for j in range(indptr[p], indptr[p + 1]):
                    w = weights[j]
                    q = indices[j]
                    for k in range(n_labels):
                        wz[k] += w * Z[q, k]
                for k in range(n_labels):
                    pairwise += Z[p, k] * wz[k]
                top = -np.inf
                for k in range(n_labels):
                    arg[k] = lam * wz[k] - unary[p, k]
                    top = max(top, arg[k])
                for k in range(n_labels):
                    arg[k] -= top
                total = 0.0
                for k in range(n_labels):
                    expd[k] = math.exp(arg[k])
                    total += expd[k]
                log_total = math.log(total)
                inv_total = 1.0 / total
                for k in range(n_labels):
                    z = expd[k] * inv_total
                    Z_next[p, k] = z
                    unary_entropy += z * (unary[p, k] + arg[k] - log_total)
            seg_pairwise[s] = pairwise
            seg_unary[s] = unary_entropy
