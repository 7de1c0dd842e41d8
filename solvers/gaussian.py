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

Arrays of other libraries (PyTorch on CPU or CUDA, CuPy, ``array_api_strict``) go through
:func:`log_gaussian_array`, written against the array-API standard: the terms of a fitted
mixture are moved to the input's namespace and device once (:func:`mixture_on`), and the
same products run there. For full covariances: one matrix product of a block of samples
with the stacked factors, minus the shifted means and squared in the data dtype, summed
in the accumulation dtype (float64 where the device has it). In float32 this adds about
the rounding error the float32 product already has (the Numba pass subtracts and squares
in float64), and makes no float64 copy of the projected block. For diagonal and spherical
covariances: the expansion above, on samples centred on the mean of the means, in the
accumulation dtype.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import _gmm_kernels as kernels
from ._backend import accumulation_dtype, has_float64

__all__ = [
    "ArrayMixture",
    "MixtureParams",
    "fix_far_rows",
    "log_gaussian",
    "log_gaussian_array",
    "mixture_on",
    "relative_log_joint",
]

_LOG_2PI = np.log(2.0 * np.pi)
# About 8 MiB of projected samples per BLAS block.
_BLOCK_BYTES = 1 << 23
# Projected entries (rows x d K) per block of log_gaussian_array. On a CPU, blocks of
# 4 MiB of float32 stay in cache (200,000 x 64 float32 samples, 20 components, PyTorch on
# 2 shared cores, best of 7: 0.46-0.57 s at 2^20, 0.62-0.85 s at 2^22, 2.0 s at 2^24). On
# an accelerator, larger blocks keep the kernel launches (a few per block) from dominating.
_ARRAY_BLOCK_ENTRIES = {"cpu": 1 << 20, "accelerator": 1 << 24}


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


@dataclass(frozen=True)
class ArrayMixture:
    """The terms of :func:`log_gaussian` for a mixture, as arrays of one namespace.

    Made by :func:`mixture_on`; ``acc`` below is the accumulation dtype of the device
    (:func:`._backend.accumulation_dtype`).

    Attributes
    ----------
    covariance_type : {"full", "diag", "spherical"}
    log_norm : array of shape (K,), acc
        ``log det P_k - d/2 log(2 pi)`` plus the log weights (and, for diagonal and
        spherical covariances, minus ``sum_j p_kj (mu_kj - c_j)^2 / 2``).
    stacked : array of shape (d, d K), the data dtype, or None
        "full": column ``j K + k`` is column ``j`` of ``P_k``.
    shift : array of shape (d, K), the data dtype, or None
        "full": ``shift[j, k] = (mu_k^T P_k)_j``.
    centre : array of shape (d,), acc, or None
        Diagonal and spherical: the mean of the means ``c``, subtracted from the samples.
    weighted : array of shape (d, K), acc, or None
        ``(mu_kj - c_j) p_kj``, transposed.
    neg_half_precisions : array of shape (d, K), acc, or None
        ``-p_kj / 2``, transposed.
    block_rows : int
        Rows of samples per product ("full").
    """

    covariance_type: str
    log_norm: object
    stacked: object = None
    shift: object = None
    centre: object = None
    weighted: object = None
    neg_half_precisions: object = None
    block_rows: int = 0


def mixture_on(params, log_weights, xp, where, dtype):
    """The terms of ``params`` as arrays of namespace ``xp`` on device ``where``.

    They are computed in NumPy float64 and moved once: the factors of full covariances and
    their products with the means in ``dtype`` (the data dtype, for the products and the
    differences), everything else in the accumulation dtype of ``where``.

    Parameters
    ----------
    params : MixtureParams
    log_weights : ndarray of shape (K,) or None
        Added to every log density (``log pi_k`` for log joints).
    xp : array namespace
    where : device
    dtype : float dtype of ``xp``, float32 or float64

    Returns
    -------
    ArrayMixture
    """
    K, d = params.means.shape
    acc = accumulation_dtype(xp, where)
    acc_np = np.float64 if has_float64(xp, where) else np.float32
    data_np = np.float32 if dtype == xp.float32 else np.float64

    def move(a, np_dtype, xp_dtype):
        return xp.asarray(np.ascontiguousarray(a, dtype=np_dtype), dtype=xp_dtype, device=where)

    log_norm = params.log_det_precisions_cholesky - 0.5 * d * _LOG_2PI
    if log_weights is not None:
        log_norm = log_norm + log_weights
    if params.covariance_type == "full":
        factors = params.precisions_cholesky
        return ArrayMixture(
            covariance_type="full",
            log_norm=move(log_norm, acc_np, acc),
            stacked=move(np.transpose(factors, (1, 2, 0)).reshape(d, d * K), data_np, dtype),
            shift=move(np.einsum("ka,kaj->jk", params.means, factors), data_np, dtype),
            block_rows=max(64, _ARRAY_BLOCK_ENTRIES[_device_kind(where)] // (d * K)),
        )
    precisions = params.precisions_cholesky**2
    if params.covariance_type == "spherical":
        precisions = np.repeat(precisions[:, None], d, axis=1)
    centre = params.means.mean(axis=0)
    means = params.means - centre
    weighted = means * precisions
    return ArrayMixture(
        covariance_type=params.covariance_type,
        log_norm=move(log_norm - 0.5 * (weighted * means).sum(axis=1), acc_np, acc),
        centre=move(centre, acc_np, acc),
        weighted=move(weighted.T, acc_np, acc),
        neg_half_precisions=move(-0.5 * precisions.T, acc_np, acc),
    )


def _device_kind(where):
    """The kind of ``where``: "cpu" (PyTorch's CPU, array_api_strict) or "accelerator"."""
    return "cpu" if "cpu" in str(where).lower() else "accelerator"


def log_gaussian_array(xp, X, mixture):
    """``log N(x_i | mu_k, Sigma_k)`` plus the log weights of ``mixture``, shape (n, K).

    The array-API counterpart of :func:`log_gaussian`, for arrays of any namespace.

    Parameters
    ----------
    xp : array namespace of ``X``
    X : array of shape (n, d), float32 or float64
    mixture : ArrayMixture
        From :func:`mixture_on` with the namespace, device and dtype of ``X``.

    Returns
    -------
    array of shape (n, K), in the accumulation dtype of ``X``'s device, on that device.
    """
    acc = mixture.log_norm.dtype
    if mixture.covariance_type == "full":
        d, K = mixture.shift.shape
        n = X.shape[0]
        parts = []
        for start in range(0, n, mixture.block_rows):
            Y = X[start : min(start + mixture.block_rows, n), :] @ mixture.stacked
            diff = xp.reshape(Y, (Y.shape[0], d, K)) - mixture.shift
            parts.append(mixture.log_norm - 0.5 * xp.sum(diff * diff, axis=1, dtype=acc))
        return parts[0] if len(parts) == 1 else xp.concat(parts, axis=0)
    Xc = xp.astype(X, acc, copy=False) - mixture.centre
    return Xc @ mixture.weighted + (Xc * Xc) @ mixture.neg_half_precisions + mixture.log_norm


def relative_log_joint(X, params, log_weights=None):
    """Log joints of rows far from every component, relative to each row's best one.

    For a sample so far from every mean that all its squared Mahalanobis distances
    ``q_k`` overflow, :func:`log_gaussian` gives ``-inf`` in every column and the
    posterior ``0 / 0``. Here ``log q_k`` is computed on the sample and means scaled by
    a power of two (exact), and with ``j`` the component of smallest ``q`` (among those
    of nonzero weight) the log joints are returned relative to component ``j``::

        r_k = c_k - c_j - (q_k - q_j) / 2,    c_k = log pi_k + log det P_k - d/2 log 2 pi

    with ``q_k - q_j`` taken as ``inf`` when ``q_j`` overflows and ``q_k > q_j`` (the
    difference then exceeds any float: component ``k``'s posterior is 0), 0 when they
    are equal. ``exp(r - logsumexp(r))`` is the posterior, finite and summing to one.

    Parameters
    ----------
    X : ndarray of shape (m, d), finite
    params : MixtureParams
    log_weights : ndarray of shape (K,) or None

    Returns
    -------
    relative : ndarray of shape (m, K), float64
        ``r``; column ``j`` of each row is 0.
    reference : ndarray of shape (m,)
        ``c_j - q_j / 2`` (``-inf`` when ``q_j`` overflows), so that the log density
        of a row is ``reference + logsumexp(relative)``.
    """
    X = np.asarray(X, dtype=np.float64)
    d = X.shape[1]
    c = params.log_det_precisions_cholesky - 0.5 * d * _LOG_2PI
    if log_weights is not None:
        c = c + log_weights
    means = np.asarray(params.means, dtype=np.float64)
    # each row and the means scaled by the power of two of the row's largest magnitude
    top = np.maximum(np.abs(X).max(axis=1), np.abs(means).max())
    exponent = np.frexp(np.where(top > 0, top, 1.0))[1]
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        gaps = np.ldexp(X, -exponent[:, None])[:, None, :] - np.ldexp(
            means[None, :, :], -exponent[:, None, None]
        )  # (m, K, d)
        factors = params.precisions_cholesky
        if params.covariance_type == "full":
            projected = np.einsum("mka,kaj->mkj", gaps, factors)
        elif params.covariance_type == "diag":
            projected = gaps * factors[None, :, :]
        else:
            projected = gaps * factors[None, :, None]
        with np.errstate(divide="ignore"):
            log_q = (
                np.log(np.sum(projected * projected, axis=2))
                + 2.0 * np.log(2.0) * exponent[:, None]
            )
        usable = np.isfinite(c)[None, :] & ~np.isnan(log_q)
        best = np.argmin(np.where(usable, log_q, np.inf), axis=1)
        rows = np.arange(X.shape[0])
        log_q_best = log_q[rows, best][:, None]
        q_best = np.exp(log_q_best)
        q = np.exp(log_q)
        gap = np.where(
            np.isfinite(q_best),
            q - q_best,
            np.where(log_q > log_q_best, np.inf, 0.0),
        )
        relative = (c[None, :] - c[best][:, None]) - 0.5 * gap
    relative[rows, best] = 0.0
    reference = c[best] - 0.5 * q_best[:, 0]
    return relative, reference


def fix_far_rows(X, params, log_joint, log_weights=None):
    """Replace, in place, the rows of ``log_joint`` whose every entry underflowed.

    ``log_joint`` is :func:`log_gaussian`'s output for ``X`` (NumPy, float64). A row
    whose largest entry is not finite (every squared distance overflowed) is replaced by
    :func:`relative_log_joint`'s row, plus its reference where that is finite: the
    posterior of the row is then finite and exact to rounding. Returns the mask of rows
    whose log density lies below the float range (their reference is ``-inf``), or None
    when no row needed replacing.
    """
    with np.errstate(invalid="ignore"):
        far = ~np.isfinite(np.max(log_joint, axis=1))
    if not far.any():
        return None
    relative, reference = relative_log_joint(X[far], params, log_weights)
    finite = np.isfinite(reference)
    log_joint[far] = relative + np.where(finite, reference, 0.0)[:, None]
    below = np.zeros(log_joint.shape[0], dtype=bool)
    below[np.flatnonzero(far)[~finite]] = True
    return below
