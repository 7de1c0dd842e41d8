"""A vectorisable ``exp`` for Numba kernels.

``math.exp`` compiles to a scalar libm call that LLVM cannot vectorise, and it
dominates the cost of a Sinkhorn pass. :func:`exp_nonpositive` evaluates
``exp(x)`` for ``x <= 0`` as ``2**n * p(r)`` with ``x = n log 2 + r``,
``|r| <= log(2) / 2`` and ``p`` the Taylor polynomial of ``exp`` on that interval;
``2**n`` is built from its IEEE-754 bit pattern. Both loops vectorise.

Accuracy (relative): about 6e-8 in float32 (degree 7) and 2e-16 in float64
(degree 12). Arguments are clamped to ``[lowest, 0]``: below the smallest normal exponent
the result stays at ``exp(-87)`` (float32) or ``exp(-708)`` (float64), never denormal, and
a positive argument (rounding in the caller) gives 1, never an overflowed exponent.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from numba.extending import overload

_LOG2E = 1.4426950408889634
# log(2) split so that n * _LN2_HI is exact for |n| < 2**10 (Cody-Waite reduction)
_LN2_HI = 0.693145751953125
_LN2_LO = 1.4286068203094173e-06


def _make_exp(float_t, int_t, degree, clamp, exponent_bias, mantissa_bits, coefficients=None):
    """Build the kernel for one floating type (the constants differ, the algorithm not).

    ``coefficients``: of the polynomial on the reduced interval, highest degree first
    (default: the Taylor polynomial of ``degree``).
    """
    if coefficients is None:
        coefficients = [1.0 / math.factorial(j) for j in range(degree, -1, -1)]
    coefficients = tuple(float_t(c) for c in coefficients)
    log2e, ln2_hi, ln2_lo = float_t(_LOG2E), float_t(_LN2_HI), float_t(_LN2_LO)
    lower, half, zero = float_t(clamp), float_t(0.5), float_t(0.0)
    bias, shift = int_t(exponent_bias), int_t(mantissa_bits)

    @numba.njit(fastmath={"contract"}, inline="always")
    def exp_kernel(x, out, work):  # pragma: no cover - compiled
        # IN: x, x <= 0 (clamped to [lower, 0]).  OUT: out = exp(x).
        # work: integer buffer, same length.
        for k in range(x.shape[0]):
            v = min(max(x[k], lower), zero)
            n = np.floor(v * log2e + half)
            r = (v - n * ln2_hi) - n * ln2_lo
            p = coefficients[0]
            for c in coefficients[1:]:
                p = p * r + c
            out[k] = p
            work[k] = (int_t(n) + bias) << shift
        scale = work.view(float_t)
        for k in range(x.shape[0]):
            out[k] *= scale[k]

    return exp_kernel


_exp_float32 = _make_exp(np.float32, np.int32, 7, -87.0, 127, 23)
_exp_float64 = _make_exp(np.float64, np.int64, 12, -708.0, 1023, 52)

# Degree 6, fitted to exp on [-log(2)/2, log(2)/2] for the least maximum relative error
# (Lawson's iteratively reweighted least squares, in float64): 1.9e-9 in exact arithmetic,
# below float32's rounding, so the float32 result is as accurate as degree-7 Taylor's
# (both about 1.7e-7 measured, from rounding) with one multiply-add fewer per entry.
_MINIMAX_FLOAT32 = (
    0.0013836845964958502,
    0.008374815907884667,
    0.04166822557623518,
    0.16666420168624319,
    0.49999992079758393,
    1.0000000363234665,
    1.0000000005541732,
)
_exp_float32_minimax = _make_exp(np.float32, np.int32, 6, -87.0, 127, 23, _MINIMAX_FLOAT32)


def exp_nonpositive(x, out, work):
    """``out[:] = exp(x)`` for ``x <= 0``; ``work`` is an integer buffer of the same size.

    Use :func:`work_dtype` for the type of ``work``. Callable from Numba code only.
    """
    raise NotImplementedError("exp_nonpositive is callable from Numba-compiled code only")


@overload(exp_nonpositive)
def _exp_nonpositive_overload(x, out, work):
    if x.dtype == numba.float32:
        return lambda x, out, work: _exp_float32(x, out, work)
    if x.dtype == numba.float64:
        return lambda x, out, work: _exp_float64(x, out, work)
    return None


def exp_nonpositive_minimax(x, out, work):
    """:func:`exp_nonpositive` with a degree-6 minimax polynomial for float32 (float64 as
    :func:`exp_nonpositive`): the same accuracy, less arithmetic. Numba code only."""
    raise NotImplementedError("exp_nonpositive_minimax is callable from Numba-compiled code only")


@overload(exp_nonpositive_minimax)
def _exp_nonpositive_minimax_overload(x, out, work):
    if x.dtype == numba.float32:
        return lambda x, out, work: _exp_float32_minimax(x, out, work)
    if x.dtype == numba.float64:
        return lambda x, out, work: _exp_float64(x, out, work)
    return None


def work_dtype(float_dtype) -> np.dtype:
    """The integer dtype of the ``work`` buffer for arrays of ``float_dtype``."""
    return np.dtype(np.int32) if np.dtype(float_dtype) == np.float32 else np.dtype(np.int64)
