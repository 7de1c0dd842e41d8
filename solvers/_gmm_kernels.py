"""Numba kernels for the per-sample work of Gaussian mixtures (CPU backend of :mod:`.gmm`).

The products with the precision Cholesky factors of full covariances go through BLAS
(:func:`.gmm._log_gaussian_full`); these kernels do what is left per sample: squared
norms, the normalisation of each row with labeled rows clamped, and weighted scatters.
All accumulate in float64 whatever the input dtype.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(parallel=True, cache=True)
def projected_log_density(Y, shift, log_norm, out, row0):
    """``out[row0 + i, k] = log_norm[k] - ||Y[i, k d:(k+1) d] - shift[k]||^2 / 2``.

    IN: Y (rows, K d): a block of samples times the stacked precision factors;
        shift (K, d): each mean times its factor; log_norm (K,).
    OUT: out (n_samples, K) float64, rows ``row0 .. row0 + rows``.
    """
    rows = Y.shape[0]
    n_components, d = shift.shape
    for i in prange(rows):
        for k in range(n_components):
            total = 0.0
            base = k * d
            for j in range(d):
                diff = float(Y[i, base + j]) - shift[k, j]
                total += diff * diff
            out[row0 + i, k] = log_norm[k] - 0.5 * total


@njit(parallel=True, cache=True)
def diagonal_log_density(X, means, precisions, log_norm, out):
    """``out[i, k] = log_norm[k] - sum_j precisions[k, j] (X[i, j] - means[k, j])^2 / 2``.

    IN: X (n, d); means, precisions (K, d) float64; log_norm (K,).
    OUT: out (n, K) float64.
    """
    n, d = X.shape
    n_components = means.shape[0]
    for i in prange(n):
        for k in range(n_components):
            total = 0.0
            for j in range(d):
                diff = float(X[i, j]) - means[k, j]
                total += precisions[k, j] * diff * diff
            out[i, k] = log_norm[k] - 0.5 * total


@njit(parallel=True, cache=True)
def normalize_clamped(log_joint, clamp, hard, resp, row_loglik):
    """Responsibilities from ``log pi_k + log N(x_i | k)``, labeled rows clamped.

    A row with ``clamp[i] >= 0`` gets a one-hot responsibility on that component and
    contributes ``log_joint[i, clamp[i]]``; a free row gets the softmax of its log-joint
    (its argmax one-hot when ``hard``) and contributes its log-sum-exp (its maximum when
    ``hard``: the classification likelihood).

    IN: log_joint (n, K) float64; clamp (n,) int64; hard bool.
    OUT: resp (n, K) in the data dtype; row_loglik (n,) float64.
    """
    n, n_components = log_joint.shape
    for i in prange(n):
        c = clamp[i]
        if c >= 0:
            for k in range(n_components):
                resp[i, k] = 0.0
            resp[i, c] = 1.0
            row_loglik[i] = log_joint[i, c]
            continue
        best = 0
        for k in range(1, n_components):
            if log_joint[i, k] > log_joint[i, best]:
                best = k
        top = log_joint[i, best]
        if hard:
            for k in range(n_components):
                resp[i, k] = 0.0
            resp[i, best] = 1.0
            row_loglik[i] = top
            continue
        total = 0.0
        for k in range(n_components):
            total += np.exp(log_joint[i, k] - top)
        log_total = np.log(total)
        for k in range(n_components):
            resp[i, k] = np.exp(log_joint[i, k] - top - log_total)
        row_loglik[i] = top + log_total


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
