"""Numba kernels for the per-sample work of Gaussian mixtures (CPU backend of :mod:`.gmm`).

The products with the precision Cholesky factors of full covariances go through BLAS
(:func:`.gaussian.log_gaussian`); these kernels do what is left per sample: squared
norms, the normalisation of each row with labeled rows clamped, and weighted scatters.
All accumulate in float64 whatever the input dtype. Diagonal and spherical densities and
scatters of float64 data are BLAS products of the squared samples (:mod:`.gaussian`,
:func:`.gmm.component_stats`); the per-sample diagonal kernels here serve float32 data.

The per-component densities keep one running sum per component in the innermost loop
(components contiguous, features outer), so LLVM vectorises across components without
``fastmath``; each sum still adds the features in order.

Small calls run the parallel kernels on one thread (:func:`threads_for`): the drivers
alternate them with multithreaded BLAS products, and each switch between Numba's OpenMP
workers and the BLAS threads, which both spin a while after their work, costs about a
millisecond or more on a machine with few cores, far more than a small kernel's work.
"""

from __future__ import annotations

from contextlib import contextmanager

import numba
import numpy as np
from numba import njit, prange

from ._fastexp import exp_nonpositive

# Inner-loop terms (one multiply-add each) below which a kernel runs on one thread.
PARALLEL_MIN_WORK = 1 << 22
# Rows per block of normalize_clamped, whose exponentials run over a block at once.
_NORMALIZE_BLOCK_ROWS = 256
# Shifted exponentials below this are set to zero (exact zeros, never denormals).
_TINY_SCALED = 1e-300


@contextmanager
def threads_for(work):
    """Numba threads limited to one while a kernel of ``work`` terms runs, if it is small."""
    if work >= PARALLEL_MIN_WORK:
        yield
        return
    previous = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        yield
    finally:
        numba.set_num_threads(previous)


@njit(cache=True)
def projected_log_density(Y, shift, log_norm, out, row0):
    """``out[row0 + i, k] = log_norm[k] - sum_j (Y[i, j K + k] - shift[j, k])^2 / 2``.

    Serial on purpose: it alternates with the multithreaded BLAS product that makes each
    block, and Numba's OpenMP workers, which spin a while after every parallel region,
    would slow that product down (with 2 cores, 50,000 x 64 and 20 components, the
    parallel version made :func:`.gaussian.log_gaussian` 5x slower).

    IN: Y (rows, d K): a block of samples times the stacked precision factors, column
        ``j K + k`` for feature ``j`` of component ``k``; shift (d, K): each mean times
        its factor; log_norm (K,).
    OUT: out (n_samples, K) float64, rows ``row0 .. row0 + rows``.
    """
    rows = Y.shape[0]
    d, n_components = shift.shape
    for i in range(rows):
        r = row0 + i
        for k in range(n_components):
            out[r, k] = 0.0
        for j in range(d):
            base = j * n_components
            for k in range(n_components):
                diff = float(Y[i, base + k]) - shift[j, k]
                out[r, k] += diff * diff
        for k in range(n_components):
            out[r, k] = log_norm[k] - 0.5 * out[r, k]


@njit(parallel=True, cache=True)
def diagonal_log_density(X, means, precisions, log_norm, out):
    """``out[i, k] = log_norm[k] - sum_j precisions[j, k] (X[i, j] - means[j, k])^2 / 2``.

    IN: X (n, d); means, precisions (d, K) float64 (transposed); log_norm (K,).
    OUT: out (n, K) float64.
    """
    n, d = X.shape
    n_components = means.shape[1]
    for i in prange(n):
        for k in range(n_components):
            out[i, k] = 0.0
        for j in range(d):
            x = float(X[i, j])
            for k in range(n_components):
                diff = x - means[j, k]
                out[i, k] += precisions[j, k] * diff * diff
        for k in range(n_components):
            out[i, k] = log_norm[k] - 0.5 * out[i, k]


@njit(parallel=True, cache=True)
def normalize_clamped(log_joint, clamp, hard, resp, row_loglik):
    """Responsibilities from ``log pi_k + log N(x_i | k)``, labeled rows clamped.

    A row with ``clamp[i] >= 0`` gets a one-hot responsibility on that component and
    contributes ``log_joint[i, clamp[i]]``; a free row gets the softmax of its log-joint
    (its argmax one-hot when ``hard``) and contributes its log-sum-exp (its maximum when
    ``hard``: the classification likelihood).

    The exponentials of a block of rows run at once through the vectorised
    :func:`._fastexp.exp_nonpositive`; a term below ``_TINY_SCALED`` times its row's
    largest is set to exactly zero (the full scatters skip zero responsibilities, and no
    float64 denormals reach the products that follow).

    IN: log_joint (n, K) float64, C-contiguous, overwritten (each row minus its maximum)
        unless ``hard``; clamp (n,) int64; hard bool.
    OUT: resp (n, K) in the data dtype; row_loglik (n,) float64.
    """
    n, n_components = log_joint.shape
    if hard:
        for i in prange(n):
            best = clamp[i]
            if best < 0:
                best = 0
                for k in range(1, n_components):
                    if log_joint[i, k] > log_joint[i, best]:
                        best = k
            for k in range(n_components):
                resp[i, k] = 0.0
            resp[i, best] = 1.0
            row_loglik[i] = log_joint[i, best]
    else:
        flat = log_joint.reshape(n * n_components)
        n_blocks = (n + _NORMALIZE_BLOCK_ROWS - 1) // _NORMALIZE_BLOCK_ROWS
        for b in prange(n_blocks):
            start = b * _NORMALIZE_BLOCK_ROWS
            stop = min(n, start + _NORMALIZE_BLOCK_ROWS)
            size = (stop - start) * n_components
            tops = np.empty(stop - start)
            scaled = np.empty(size)  # not in place: aliasing would stop the vectorisation
            work = np.empty(size, dtype=np.int64)
            for i in range(start, stop):
                if clamp[i] >= 0:
                    row_loglik[i] = log_joint[i, clamp[i]]
                top = log_joint[i, 0]
                for k in range(1, n_components):
                    top = max(top, log_joint[i, k])
                tops[i - start] = top
                for k in range(n_components):
                    log_joint[i, k] -= top
            exp_nonpositive(flat[start * n_components : stop * n_components], scaled, work)
            for i in range(start, stop):
                c = clamp[i]
                if c >= 0:
                    for k in range(n_components):
                        resp[i, k] = 0.0
                    resp[i, c] = 1.0
                    continue
                row = (i - start) * n_components
                total = 0.0
                for k in range(n_components):
                    term = scaled[row + k]
                    term = term if term >= _TINY_SCALED else 0.0
                    scaled[row + k] = term
                    total += term
                inverse = 1.0 / total
                for k in range(n_components):
                    resp[i, k] = scaled[row + k] * inverse
                row_loglik[i] = tops[i - start] + np.log(total)


@njit(parallel=True, cache=True)
def weighted_centred_rows(X, rows, weights, mean, out):
    """``out[t] = sqrt(weights[rows[t]]) (X[rows[t]] - mean)``: ``out^T out`` is the scatter.

    IN: X (n, d); rows (m,) int64; weights (n,); mean (d,) float64.
    OUT: out (>= m, d) in the data dtype; rows ``0 .. m``.
    """
    d = X.shape[1]
    for t in prange(rows.shape[0]):
        i = rows[t]
        root = np.sqrt(float(weights[i]))
        for j in range(d):
            out[t, j] = root * (float(X[i, j]) - mean[j])


@njit(parallel=True, cache=True)
def diagonal_scatter(X, resp, means, block_rows, partial):
    """Per-block ``sum_i resp[i, k] (X[i, j] - means[k, j])^2``; sum ``partial`` over axis 0.

    IN: X (n, d); resp (n, K); means (K, d) float64; block_rows int.
    OUT: partial (n_blocks, K, d) float64, zeroed here.
    """
    n, d = X.shape
    n_components = means.shape[0]
    n_blocks = partial.shape[0]
    for b in prange(n_blocks):
        partial[b, :, :] = 0.0
        for i in range(b * block_rows, min(n, (b + 1) * block_rows)):
            for k in range(n_components):
                r = float(resp[i, k])
                if r == 0.0:
                    continue
                for j in range(d):
                    diff = float(X[i, j]) - means[k, j]
                    partial[b, k, j] += r * diff * diff
