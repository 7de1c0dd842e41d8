"""Numba kernels for SwAV's fixed-iteration codes in the scaling domain (CPU backend of
:func:`clusterlab.solvers.sinkhorn.scaling_codes`).

With ``E = exp(S / eps - max(S) / eps)``, column scalings ``v`` and row scalings ``u``, an
iteration is ``v_k = 1 / sum_i E_ik u_i`` then ``u_i = 1 / sum_k E_ik v_k``. One pass over
``E`` does both halves: each row's sum is complete once the row has been read, so the
row's contribution ``E_ik u_i`` to the next column sums is added while the row is still
in cache. ``E`` is therefore read once per iteration, and exponentials are taken once in
all. Rows are split into contiguous blocks processed in parallel, each block writing only
its own row of the ``(n_chunks, K)`` partial buffer; sums accumulate in float64.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from ._fastexp import exp_nonpositive, exp_nonpositive_minimax, work_dtype
from ._sinkhorn_kernels import _FASTMATH, serial_twin


@njit(parallel=True, cache=True, fastmath=_FASTMATH)
def exp_column_sums(S, inv_eps, shift, E, col_partial, work):
    """``E = exp(S * inv_eps - shift)`` and the per-block column sums of ``E``.

    IN: S (n, K); inv_eps, shift floats with ``shift >= max(S) * inv_eps`` (every exponent
        is then nonpositive).
    OUT: E (n, K), the dtype of S; col_partial (n_chunks, K) float64.
    SCRATCH: work (n_chunks, K), integer type of :func:`._fastexp.work_dtype`.
    """
    n, K = S.shape
    n_chunks = col_partial.shape[0]
    for c in prange(n_chunks):
        arg = np.empty_like(S[0])
        bits = work[c]
        acc = col_partial[c]
        acc[:] = 0.0
        for i in range(c * n // n_chunks, (c + 1) * n // n_chunks):
            for k in range(K):
                arg[k] = S[i, k] * inv_eps - shift
            row = E[i]
            exp_nonpositive(arg, row, bits)
            for k in range(K):
                acc[k] += row[k]


@njit(parallel=True, cache=True, fastmath=_FASTMATH)
def row_scaling_pass(E, v, col_partial, write_codes):
    """Row scalings ``u_i = 1 / sum_k E_ik v_k``, then either the column sums of
    ``E_ik u_i`` (the next column update) or, on the last iteration, the codes
    ``E_ik v_k u_i`` written over ``E`` (each row then sums to one).

    IN: E (n, K); v (K,) float64; write_codes bool.
    OUT: col_partial (n_chunks, K) float64 (left at zero when ``write_codes``); E.
    """
    n, K = E.shape
    n_chunks = col_partial.shape[0]
    for c in prange(n_chunks):
        acc = col_partial[c]
        acc[:] = 0.0
        for i in range(c * n // n_chunks, (c + 1) * n // n_chunks):
            row = E[i]
            total = 0.0
            for k in range(K):
                total += row[k] * v[k]
            u = 1.0 / total
            if write_codes:
                for k in range(K):
                    row[k] = row[k] * (v[k] * u)
            else:
                for k in range(K):
                    acc[k] += row[k] * u


@njit(cache=True, fastmath=_FASTMATH, inline="always")
def _row_key_range(bits, mask):
    """Largest and smallest order-preserving integer keys of a row of floats.

    ``bits`` is the row's IEEE-754 bit patterns (a signed-integer view); the key of a
    pattern ``b`` is ``b`` for a positive float and ``b ^ mask`` (mask: all bits but the
    sign) for a negative one, so keys order as the floats do, and a NaN's key lies beyond
    those of the infinities. Integer comparisons vectorise where floating-point ``max``
    (with its NaN rules) does not: this costs about as much as a sum of the row.
    """
    first = bits[0]
    high = first ^ mask if first < 0 else first
    low = high
    for k in range(1, bits.shape[0]):
        b = bits[k]
        key = b ^ mask if b < 0 else b
        high = max(high, key)
        low = min(low, key)
    return high, low


@njit(parallel=True, cache=True, fastmath=_FASTMATH)
def exp_rows_column_sums(S, patterns, mask, inv_eps, E, col_partial, chunk_stats, work):
    """The first pass without a known maximum: each row shifted by its own maximum.

    ``E_ik = exp((S_ik - m_i) / eps)`` with ``m_i = max_k S_ik`` (every row of ``E`` holds
    a one), and the column sums of ``E`` weighted by ``w_i = exp((m_i - M_c) / eps)``,
    ``M_c`` the largest score of the block. The weights make the column sums those of
    ``exp((S - M_c) / eps)``: the first column update (from unit row scalings) is then
    exact, and the row updates that follow normalise every row whatever its shift, so the
    codes equal those of a global shift. Each block keeps a running ``M_c`` and rescales
    its sums when a row raises it (online log-sum-exp). The row is read from memory once;
    its maximum and minimum (and the finiteness check) are taken while it is in cache,
    so no separate pass over the scores is needed to find their range.

    IN: S (n, K); patterns: ``S.view(int32)`` (float32) or ``S.view(int64)`` (float64);
        mask: all bits but the sign, of the patterns' type (:func:`key_mask`);
        inv_eps float64.
    OUT: E (n, K), the dtype of S; col_partial (n_chunks, K) float64, block ``c``'s column
        sums relative to ``M_c``; chunk_stats (n_chunks, 3) float64: ``M_c``, the block's
        smallest score, and 1.0 if the block holds NaN or an infinity (else 0.0; the
        other entries of ``E`` and ``col_partial`` are then meaningless).
    SCRATCH: work (n_chunks, K), integer type of :func:`._fastexp.work_dtype`.
    """
    n, K = S.shape
    n_chunks = col_partial.shape[0]
    for c in prange(n_chunks):
        arg = np.empty_like(S[0])
        pair = np.empty(2, dtype=patterns.dtype)
        pair_float = pair.view(S.dtype)
        bits = work[c]
        acc = col_partial[c]
        acc[:] = 0.0
        top = -np.inf
        bottom = np.inf
        bad = 0.0
        for i in range(c * n // n_chunks, (c + 1) * n // n_chunks):
            src = S[i]
            key_high, key_low = _row_key_range(patterns[i], mask)
            pair[0] = key_high ^ mask if key_high < 0 else key_high  # keys back to floats
            pair[1] = key_low ^ mask if key_low < 0 else key_low
            high = pair_float[0]
            high64 = float(high)
            low64 = float(pair_float[1])
            if not (np.isfinite(high64) and np.isfinite(low64)):
                bad = 1.0  # NaN or an infinity in the row (NaN's keys lie beyond inf's)
                continue
            for k in range(K):
                arg[k] = (src[k] - high) * inv_eps
            row = E[i]
            exp_nonpositive_minimax(arg, row, bits)
            if high64 > top:  # rescale the block's sums to the new maximum
                if top > -np.inf:
                    factor = math.exp((top - high64) * inv_eps)
                    for k in range(K):
                        acc[k] *= factor
                top = high64
            bottom = min(bottom, low64)
            weight = math.exp((high64 - top) * inv_eps)
            for k in range(K):
                acc[k] += weight * row[k]
        chunk_stats[c, 0] = top
        chunk_stats[c, 1] = bottom
        chunk_stats[c, 2] = bad


@njit(parallel=True, cache=True, fastmath=_FASTMATH)
def _key_extrema(patterns, mask, out):
    """Per-block largest and smallest keys (:func:`_row_key_range`) of all rows."""
    n = patterns.shape[0]
    n_chunks = out.shape[0]
    for c in prange(n_chunks):
        high = patterns[0, 0] ^ mask if patterns[0, 0] < 0 else patterns[0, 0]
        low = high
        for i in range(c * n // n_chunks, (c + 1) * n // n_chunks):
            row_high, row_low = _row_key_range(patterns[i], mask)
            high = max(high, row_high)
            low = min(low, row_low)
        out[c, 0] = high
        out[c, 1] = low


def score_extrema(S, n_chunks):
    """``(max(S), min(S))`` of a C-contiguous float32/float64 array in one parallel pass
    (NumPy's ``max`` and ``min`` read it twice, on one thread). A NaN anywhere makes one
    of them NaN (its key lies beyond the infinities'), so a finiteness check of the two
    covers the whole array."""
    patterns = S.reshape(S.shape[0], -1).view(work_dtype(S.dtype))
    mask = key_mask(S.dtype)
    out = np.empty((max(1, min(n_chunks, patterns.shape[0])), 2), dtype=patterns.dtype)
    _key_extrema(patterns, mask, out)
    keys = np.array([out[:, 0].max(), out[:, 1].min()], dtype=patterns.dtype)
    bits = np.where(keys < 0, keys ^ mask, keys).astype(patterns.dtype)
    high, low = bits.view(S.dtype)
    return float(high), float(low)


def key_mask(dtype):
    """The ``mask`` of :func:`exp_rows_column_sums` for scores of ``dtype``."""
    if np.dtype(dtype) == np.float32:
        return np.int32(0x7FFFFFFF)
    return np.int64(0x7FFFFFFFFFFFFFFF)


exp_column_sums_serial = serial_twin(exp_column_sums, "exp_column_sums_serial")
exp_rows_column_sums_serial = serial_twin(exp_rows_column_sums, "exp_rows_column_sums_serial")
row_scaling_pass_serial = serial_twin(row_scaling_pass, "row_scaling_pass_serial")
