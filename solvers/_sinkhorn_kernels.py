"""Numba kernels for the log-domain Sinkhorn passes (CPU backend of :mod:`.sinkhorn`).

Notation: scores ``S`` (n x K), potentials in units of ``eps`` (``f / eps``, ``g / eps``),
plan ``Q_ik = exp(S_ik / eps + f_i / eps + g_k / eps)``. :func:`row_pass`, the kernel of
every iteration, reads ``S`` once from memory. Rows are split into ``n_chunks`` contiguous
blocks processed in parallel, each block writing only its own row of the
``(n_chunks, K)`` partial buffers, which the caller reduces. Sums accumulate in float64
whatever the dtype of ``S``.
"""

from __future__ import annotations

import math
import types

import numpy as np
from numba import njit, prange

from ._fastexp import exp_nonpositive

# No "nnan"/"ninf": the driver checks potentials for non-finite values.
_FASTMATH = {"reassoc", "contract", "nsz", "arcp"}


# A row whose shifted exponentials sum below this is recomputed with its exact maximum.
_TINY_TOTAL = 1e-20


# Helpers are inlined: a call that passes arrays costs more than a short row's work.
@njit(cache=True, fastmath=_FASTMATH, inline="always")
def _row_max(row, g_scaled, inv_eps, lanes):
    """``max_k row_k / eps + g_k / eps``; 16 independent lanes break the dependency chain.

    ``lanes``: scratch of 16 float64, allocated once per block by the caller.
    """
    K = row.shape[0]
    lanes[:] = -np.inf
    K16 = K - K % 16
    for k0 in range(0, K16, 16):
        for j in range(16):
            v = row[k0 + j] * inv_eps + g_scaled[k0 + j]
            lanes[j] = v if v > lanes[j] else lanes[j]
    best = lanes.max()
    for k in range(K16, K):
        best = max(best, row[k] * inv_eps + g_scaled[k])
    return best


@njit(cache=True, fastmath=_FASTMATH, inline="always")
def _shifted_exp(row, g_scaled, inv_eps, shift, arg, e, work):
    """``e_k = exp(row_k / eps + g_k / eps - shift)``, the argument formed in float64.

    Forming it in float64 keeps small changes of ``g`` (below the float32 resolution of
    ``g / eps``) visible, so float32 input still converges to tight tolerances.
    Returns ``sum_k e_k`` in float64.
    """
    for k in range(row.shape[0]):
        arg[k] = row[k] * inv_eps + (g_scaled[k] - shift)
    exp_nonpositive(arg, e, work)
    total = 0.0
    for k in range(row.shape[0]):
        total += e[k]
    return total


@njit(parallel=True, cache=True, fastmath=_FASTMATH)
def row_pass(S, g_scaled, inv_eps, log_a, shift, plan_mass, f_scaled, col_partial, plan, work):
    """Update the row potentials and accumulate the column sums of the updated plan.

    After this pass every row ``i`` of the plan sums exactly to ``a_i``; the column sums it
    returns are the column marginal of that plan, so the marginal error comes for free.

    IN: S (n, K); g_scaled (K,) float64 = g / eps; inv_eps float64; log_a (n,) float64;
        shift (n,) float64, upper bounds of ``max_k (S_ik + g_k) / eps`` (the driver
        derives them from the previous pass), or (0,) to compute each row's maximum;
        plan_mass (n,) float64, row sums of the plan to write (``a`` for the transport
        plan, ones for per-sample codes).
    OUT: f_scaled (n,) float64 = f / eps; col_partial (n_chunks, K) float64, per-block column
        sums of the plan; plan (n, K) or (0, K): written only when it has n rows.
    SCRATCH: work (n_chunks, K), integer type of :func:`work_dtype`.
    """
    n, K = S.shape
    n_chunks = col_partial.shape[0]
    write_plan = plan.shape[0] == n
    have_shift = shift.shape[0] == n
    for c in prange(n_chunks):
        arg = np.empty_like(S[0])
        e = np.empty_like(S[0])
        lanes = np.empty(16)
        bits = work[c]
        acc = col_partial[c]
        acc[:] = 0.0
        for i in range(c * n // n_chunks, (c + 1) * n // n_chunks):
            row = S[i]
            row_shift = shift[i] if have_shift else _row_max(row, g_scaled, inv_eps, lanes)
            total = _shifted_exp(row, g_scaled, inv_eps, row_shift, arg, e, bits)
            if total < _TINY_TOTAL:  # the bound was too loose: use the exact maximum
                row_shift = _row_max(row, g_scaled, inv_eps, lanes)
                total = _shifted_exp(row, g_scaled, inv_eps, row_shift, arg, e, bits)
            # f_i = eps log a_i - eps logsumexp_k((S_ik + g_k) / eps)
            f_scaled[i] = log_a[i] - row_shift - math.log(total)
            weight = math.exp(log_a[i]) / total
            for k in range(K):
                acc[k] += weight * e[k]
            if write_plan:
                scale = plan_mass[i] / total
                for k in range(K):
                    plan[i, k] = e[k] * scale


@njit(parallel=True, cache=True, fastmath=_FASTMATH)
def column_logsumexp(S, inv_eps, col_partial, work):
    """``lse_k = log sum_i exp(S_ik / eps)``, stable for any eps.

    Two reads of ``S``: the per-column maxima, then the shifted sums, with the exponent
    formed in float64 as in :func:`row_pass`. Used once per solve, to start from the
    column update (SwAV's order) when no column potentials are given.

    IN: S (n, K); inv_eps float64.
    SCRATCH: col_partial (n_chunks, K) float64; work (n_chunks, K) integer.
    Returns lse (K,) float64.
    """
    n, K = S.shape
    n_chunks = col_partial.shape[0]
    for c in prange(n_chunks):
        acc = col_partial[c]
        acc[:] = -np.inf
        for i in range(c * n // n_chunks, (c + 1) * n // n_chunks):
            for k in range(K):
                acc[k] = max(acc[k], S[i, k])
    col_max = col_partial[0].copy()
    for c in range(1, n_chunks):
        for k in range(K):
            col_max[k] = max(col_max[k], col_partial[c, k])
    col_max *= inv_eps  # eps > 0: the maximum of S / eps is the maximum of S, scaled
    for c in prange(n_chunks):
        arg = np.empty_like(S[0])
        e = np.empty_like(S[0])
        bits = work[c]
        acc = col_partial[c]
        acc[:] = 0.0
        for i in range(c * n // n_chunks, (c + 1) * n // n_chunks):
            for k in range(K):
                arg[k] = S[i, k] * inv_eps - col_max[k]
            exp_nonpositive(arg, e, bits)
            for k in range(K):
                acc[k] += e[k]
    return col_max + np.log(col_partial.sum(axis=0))


def serial_twin(kernel, name):
    """``kernel`` compiled without threads, under its own name.

    Numba's on-disk cache is keyed by the function's qualified name and line, not by
    ``parallel``: compiling the same Python function twice would make the two variants
    overwrite each other's cache entry (and a threaded kernel load the serial code).
    """
    func = kernel.py_func
    twin = types.FunctionType(func.__code__, func.__globals__, name, func.__defaults__)
    twin.__qualname__ = name
    return njit(cache=True, fastmath=_FASTMATH)(twin)


# For small matrices waking the thread pool costs more than the pass itself.
row_pass_serial = serial_twin(row_pass, "row_pass_serial")
column_logsumexp_serial = serial_twin(column_logsumexp, "column_logsumexp_serial")
