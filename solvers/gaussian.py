"""Gaussian components through Cholesky factors of their precisions.

``log N(x | mu_k, Sigma_k) = log det P_k - d/2 log(2 pi) - ||(x - mu_k)^T P_k||^2 / 2`` with
``Sigma_k^{-1} = P_k P_k^T``. For full covariances the products with ``P_k`` are one BLAS
product of a block of samples with all the factors side by side, and a Numba pass takes
the squared norms.

Diagonal and spherical covariances (precisions ``p_kj = 1 / sigma_kj^2``) in float64 expand
the square into two BLAS products::

    sum_j p_kj (x_ij - mu_kj)^2 = (X^2) p^T - 2 X (mu p)^T + sum_j p_kj mu_kj^2

The expansion loses about ``eps * x^2 / sigma^2`` to cancellation, negligible in float64
for data centred near the means: without precomputed squares the samples are centred on
the mean of the component means first; :func:`.gmm.fit_mixture` centres the data once
per fit and passes their squares. float32 data keep the exact per-sample Numba pass,
which accumulates in float64.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import _gmm_kernels as kernels

__all__ = ["MixtureParams", "log_gaussian"]

_LOG_2PI = np.log(2.0 * np.pi)
# About 8 MiB of projected samples per BLAS block.
_BLOCK_BYTES = 1 << 23


@dataclass
class MixtureParams:
    """Weights, means and covariances of a mixture, with their precision factors.

    Attributes
    ----------
    weights : ndarray of shape (K,)
    means : ndarray of shape (K, d)
    covariances : ndarray of shape (K, d, d), (K, d) or (K,)
    covariance_type : {"full", "diag", "spherical"}
    precisions_cholesky : ndarray, same shape as ``covariances``
        Upper-triangular ``P_k`` with ``Sigma_k^{-1} = P_k P_k^T`` ("full"), or
        ``1 / sqrt(variance)`` ("diag", "spherical").
    log_det_precisions_cholesky : ndarray of shape (K,)
        ``log det P_k = -log det Sigma_k / 2``.
    """

    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray
    covariance_type: str
    precisions_cholesky: np.ndarray = field(init=False)
    log_det_precisions_cholesky: np.ndarray = field(init=False)

    def __post_init__(self):
        d = self.means.shape[1]
        if self.covariance_type == "full":
            try:
                chol = np.linalg.cholesky(self.covariances)
            except np.linalg.LinAlgError as exc:
                raise np.linalg.LinAlgError(
                    "a component covariance is not positive definite; raise the prior "
                    "scale (psi) or check the data for NaN/huge values"
                ) from exc
            eye = np.broadcast_to(np.eye(d), chol.shape)
            self.precisions_cholesky = np.swapaxes(np.linalg.solve(chol, eye), 1, 2)
            self.log_det_precisions_cholesky = -np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(
                axis=1
            )
        else:
            self.precisions_cholesky = 1.0 / np.sqrt(self.covariances)
            logs = np.log(self.precisions_cholesky)
            self.log_det_precisions_cholesky = (
                logs.sum(axis=1) if self.covariance_type == "diag" else d * logs
            )

    @property
    def n_components(self):
        return self.weights.shape[0]

    def take(self, index):
        return MixtureParams(
            self.weights[index], self.means[index], self.covariances[index], self.covariance_type
        )


def log_gaussian(X, params, log_weights=None, *, squares=None):
    """``log N(x_i | mu_k, Sigma_k)`` (plus ``log_weights[k]`` if given), float64 (n, K).

    ``squares``: ``X * X``, used for diagonal and spherical covariances of float64 data
    (module docstring), which a caller with several passes over the same, centred ``X``
    computes once. When it is not given, the samples are centred on the mean of the
    component means and squared here.
    """
    n, d = X.shape
    K = params.n_components
    log_norm = params.log_det_precisions_cholesky - 0.5 * d * _LOG_2PI
    if log_weights is not None:
        log_norm = log_norm + log_weights
    out = np.empty((n, K), dtype=np.float64)
    if params.covariance_type == "full":
        factors = params.precisions_cholesky
        # column j K + k of the stacked factors is column j of P_k
        stacked = np.ascontiguousarray(np.transpose(factors, (1, 2, 0)).reshape(d, d * K), X.dtype)
        shift = np.einsum("ka,kaj->jk", params.means, factors)
        block = max(64, _BLOCK_BYTES // (K * d * X.itemsize))
        for start in range(0, n, block):
            Y = X[start : start + block] @ stacked
            kernels.projected_log_density(Y, shift, log_norm, out, start)
        return out
    precisions = params.precisions_cholesky**2
    if params.covariance_type == "spherical":
        precisions = np.repeat(precisions[:, None], d, axis=1)
    if X.dtype == np.float64:
        means = params.means
        if squares is None:
            centre = means.mean(axis=0)
            X = X - centre
            squares = X * X
            means = means - centre
        return _expanded_log_density(X, squares, means, precisions, log_norm, out)
    means_t = np.ascontiguousarray(params.means.T)
    with kernels.threads_for(n * K * d):
        kernels.diagonal_log_density(X, means_t, np.ascontiguousarray(precisions.T), log_norm, out)
    return out


def _expanded_log_density(X, squares, means, precisions, log_norm, out):
    """Diagonal log densities as ``const + X (mu p)^T - (X^2) p^T / 2`` (module docstring).

    NumPy's matmul, not SciPy's BLAS wrappers with ``beta = 1``: the two link different
    OpenBLAS builds, and alternating between their thread pools (each spins a while after
    its work) made a sweep about 3x slower on 2 cores.
    """
    weighted = means * precisions
    np.matmul(X, weighted.T, out=out)
    out += squares @ (-0.5 * precisions.T)
    out += log_norm - 0.5 * (weighted * means).sum(axis=1)
    return out
