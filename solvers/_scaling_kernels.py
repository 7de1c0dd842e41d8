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

import numpy as np
from numba import njit, prange

from ._fastexp import exp_nonpositive
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


exp_column_sums_serial = serial_twin(exp_column_sums, "exp_column_sums_serial")
row_scaling_pass_serial = serial_twin(row_scaling_pass, "row_scaling_pass_serial")
