"""Gaussian mixtures with clamped labeled samples: E-step, NIW-MAP M-step, EM sweeps.

Labeled samples belong to their class's component in every E-step (responsibility 1);
free samples get ``r_ik ∝ pi_k N(x_i | mu_k, Sigma_k)``, or its argmax with
``hard=True``. The M-step is the MAP estimate under the prior of :mod:`.niw`, so each
sweep increases ::

    F = sum_free log sum_k pi_k N(x_i | k) + sum_labeled log pi_c N(x_i | c)
        + sum_k log p(mu_k, Sigma_k)

(for ``hard=True`` the free samples count their best component only); densities come from
:mod:`.gaussian`. :func:`fit_mixture` runs the sweeps and the split/merge moves of
:mod:`.split_merge`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
from scipy.linalg.blas import dsyrk, ssyrk

from . import _gmm_kernels as kernels
from .gaussian import MixtureParams, log_gaussian
from .niw import NIWPrior, SetStats
from .split_merge import MoveConfig, SubClusters, merge_step, resolve_log_alpha, split_step

__all__ = [
    "MixtureResult",
    "component_stats",
    "e_step",
    "fit_mixture",
    "m_step",
    "params_from_labels",
    "squares_for",
]

_SCATTER_BLOCK_ROWS = 2048
# Multiply-adds per (vectorised) exponential in the work estimate of normalize_clamped.
# It undercounts the kernel's cost on purpose: the switch from Numba's threads to the BLAS
# ones that follow costs more than the kernel saves at 50,000 x 20 on 2 cores (one thread:
# 21 ms per diagonal sweep, two: 29 ms), not at 200,000 x 20 (two threads ~10 % faster).
_EXP_WORK = 4


def squares_for(X, covariance_type):
    """``X * X`` where :func:`e_step` and :func:`component_stats` use it, else None.

    Diagonal and spherical covariances of float64 data go through BLAS products with the
    squared samples (:mod:`.gaussian`); a driver computes them once, from data centred
    near the means (as :func:`fit_mixture` does), and passes them on.
    """
    if covariance_type == "full" or X.dtype != np.float64:
        return None
    return X * X


def e_step(X, params, clamp, *, hard=False, squares=None):
    """Responsibilities (in X's dtype, shape (n, K)) and the data log-likelihood.

    ``clamp[i]`` is the component of labeled sample ``i`` and -1 for free samples;
    ``squares`` is :func:`squares_for`'s ``X * X`` (computed here when needed and not given).
    """
    with np.errstate(divide="ignore"):  # a zero weight is a log weight of -inf
        log_weights = np.log(params.weights)
    log_joint = log_gaussian(X, params, log_weights, squares=squares)
    resp = np.empty(log_joint.shape, dtype=X.dtype)
    row_loglik = np.empty(X.shape[0], dtype=np.float64)
    with kernels.threads_for(_EXP_WORK * log_joint.size):
        kernels.normalize_clamped(log_joint, clamp, hard, resp, row_loglik)
    return resp, float(row_loglik.sum())


def component_stats(X, resp, covariance_type, *, buffer=None, squares=None):
    """Soft counts, means and scatters of every component (:class:`.niw.SetStats`).

    Rows whose responsibility is exactly zero are skipped for full scatters. Diagonal
    scatters of float64 data are ``resp^T (X * X) - N_k mean_k^2`` (BLAS), clamped at
    zero against rounding: accurate to about ``eps mean_k^2 / variance``, so ``squares``
    (as in :func:`e_step`) must be those of data centred near the means, as
    :func:`fit_mixture`'s are; without it the samples are centred on their mean and
    squared here. float32 data keep the exact Numba pass about each mean.
    """
    counts = resp.sum(axis=0, dtype=np.float64)
    safe = np.where(counts > 0, counts, 1.0)
    sums = (resp.T @ X).astype(np.float64)
    means = sums / safe[:, None]
    n, d = X.shape
    K = resp.shape[1]
    if covariance_type == "full":
        syrk = ssyrk if X.dtype == np.float32 else dsyrk
        if buffer is None:
            buffer = np.empty_like(X)
        scatter = np.empty((K, d, d))
        for k in range(K):
            weights = np.ascontiguousarray(resp[:, k])
            rows = np.flatnonzero(weights)
            if rows.shape[0] == 0:
                scatter[k] = 0.0
                continue
            with kernels.threads_for(rows.shape[0] * d):
                kernels.weighted_centred_rows(X, rows, weights, means[k], buffer)
            # B^T B as (B^T)(B^T)^T: B^T is Fortran-ordered, so f2py passes it without the
            # copy that syrk(B, trans=1) makes of the C-ordered block (half the time).
            upper = syrk(1.0, buffer[: rows.shape[0]].T, trans=0)
            scatter[k] = np.triu(upper) + np.triu(upper, 1).T
    elif X.dtype == np.float64:
        centre = np.zeros(d)
        if squares is None:
            centre = sums.sum(axis=0) / max(counts.sum(), 1e-300)  # responsibilities sum to 1
            squares = X - centre
            squares *= squares
        scatter = resp.T @ squares
        gap = means - centre
        scatter -= counts[:, None] * gap * gap
        np.maximum(scatter, 0.0, out=scatter)
    else:
        n_blocks = -(-n // _SCATTER_BLOCK_ROWS)
        partial = np.empty((n_blocks, K, d))
        with kernels.threads_for(n * K * d):
            kernels.diagonal_scatter(X, resp, means, _SCATTER_BLOCK_ROWS, partial)
        scatter = partial.sum(axis=0)
    return SetStats(counts, means, scatter)


def m_step(stats, prior, n_samples):
    """MAP parameters from component statistics; weights are the counts over ``n``."""
    means, covariances = prior.map_estimate(stats)
    return MixtureParams(stats.count / n_samples, means, covariances, prior.covariance_type)


def params_from_labels(X, labels, n_components, prior):
    """MAP parameters of the hard partition ``labels`` (one M-step from one-hot labels)."""
    resp = np.zeros((X.shape[0], n_components), dtype=X.dtype)
    resp[np.arange(X.shape[0]), labels] = 1.0
    return m_step(component_stats(X, resp, prior.covariance_type), prior, X.shape[0])


@dataclass
class MixtureResult:
    """Output of :func:`fit_mixture`.

    Attributes
    ----------
    params : MixtureParams
    component_class : ndarray of shape (K,)
        Class index held by each component (its labeled samples' class), -1 for none.
    resp : ndarray of shape (n, K)
        Responsibilities of the last E-step.
    objective_history : ndarray of shape (n_sweeps,)
        ``F`` (module docstring) at every E-step. EM sweeps never decrease it; an
        accepted split or merge can change it in either direction.
    loglik_history : ndarray of shape (n_sweeps,)
        Its data log-likelihood part.
    n_components_history : ndarray of shape (n_sweeps,)
        K during every sweep.
    n_iter : int
    converged : bool
    n_splits, n_merges : int
        Accepted moves.
    log_alpha : float or None
        Log concentration the moves used (None without moves).
    """

    params: MixtureParams
    component_class: np.ndarray
    resp: np.ndarray
    objective_history: np.ndarray
    loglik_history: np.ndarray
    n_components_history: np.ndarray
    n_iter: int
    converged: bool
    n_splits: int
    n_merges: int
    log_alpha: float | None


def fit_mixture(
    X,
    sample_class,
    init_labels,
    init_class,
    prior: NIWPrior,
    *,
    moves: MoveConfig | None,
    hard=False,
    max_iter=100,
    tol=1e-5,
    rng=None,
    callback: Callable[[int, int, float], None] | None = None,
):
    """EM sweeps from a hard initial partition, with split/merge moves when ``moves`` is set.

    Parameters
    ----------
    X : ndarray of shape (n, d), float32 or float64, C-contiguous
    sample_class : ndarray of shape (n,), int64
        Class index of each labeled sample, -1 for free samples.
    init_labels : ndarray of shape (n,), int64
        Initial component of every sample (labeled samples in their class's component).
    init_class : ndarray of shape (K0,), int64
        Class index held by each initial component, -1 for none.
    prior : NIWPrior
    moves : MoveConfig or None
        Split/merge settings; None keeps K fixed. After ``moves.burn_in`` sweeps, every
        sweep ends with one move step after its M-step: a split step and a merge step in
        turn, split first.
    hard : bool
        Hard (classification) E-steps.
    max_iter : int
        Maximum number of sweeps.
    tol : float
        Stop when the relative change of ``F`` falls below ``tol`` (and, with moves, when
        no move step has changed the components in the last ``moves.patience`` sweeps).
    rng : numpy.random.Generator
    callback : callable(sweep, K, F), optional
        Called after every E-step (progress reporting).

    Notes
    -----
    The sweeps run on a copy of ``X`` centred on the prior mean (with the prior moved
    along), which changes nothing in the model but keeps the expanded products of
    :mod:`.gaussian` and :func:`component_stats` accurate for data far from the origin;
    the returned means are moved back.
    """
    n = X.shape[0]
    centre = np.asarray(prior.mean, dtype=X.dtype)
    X = X - centre
    centre = centre.astype(np.float64)
    prior = replace(prior, mean=prior.mean - centre)
    squares = squares_for(X, prior.covariance_type)
    component_class = np.asarray(init_class, dtype=np.int64).copy()
    params = params_from_labels(X, init_labels, component_class.shape[0], prior)
    subclusters = SubClusters.empty(component_class.shape[0], X.shape[1])
    buffer = np.empty_like(X) if prior.covariance_type == "full" else None
    objectives, logliks, sizes = [], [], []
    converged = False
    n_splits = n_merges = 0
    last_change = 0
    log_alpha = None
    if moves is not None:
        log_alpha = resolve_log_alpha(X, _clamp(sample_class, component_class), prior, moves, rng)
    for sweep in range(1, max_iter + 1):
        clamp = _clamp(sample_class, component_class)
        resp, loglik = e_step(X, params, clamp, hard=hard, squares=squares)
        objective = loglik + float(prior.log_density(params.means, params.covariances).sum())
        objectives.append(objective)
        logliks.append(loglik)
        sizes.append(params.n_components)
        if callback is not None:
            callback(sweep, params.n_components, objective)
        stats = component_stats(X, resp, prior.covariance_type, buffer=buffer, squares=squares)
        params = m_step(stats, prior, n)
        if moves is not None and sweep > moves.burn_in:
            labels = np.argmax(resp, axis=1)
            step = split_step if (sweep - moves.burn_in) % 2 == 1 else merge_step
            outcome = step(
                X, labels, clamp, params, component_class, subclusters, prior, moves, log_alpha, rng
            )
            params, component_class, subclusters = (
                outcome.params,
                outcome.component_class,
                outcome.subclusters,
            )
            n_splits += outcome.n_splits
            n_merges += outcome.n_merges
            if outcome.changed:
                last_change = sweep
        settled = moves is None or sweep - max(last_change, moves.burn_in) >= moves.patience
        if len(objectives) > 1 and settled:
            change = abs(objectives[-1] - objectives[-2]) / max(abs(objectives[-1]), 1e-300)
            if change < tol:
                converged = True
                break
    clamp = _clamp(sample_class, component_class)
    resp, _ = e_step(X, params, clamp, hard=hard, squares=squares)
    params = MixtureParams(
        params.weights, params.means + centre, params.covariances, params.covariance_type
    )
    return MixtureResult(
        params=params,
        component_class=component_class,
        resp=resp,
        objective_history=np.asarray(objectives),
        loglik_history=np.asarray(logliks),
        n_components_history=np.asarray(sizes, dtype=np.int64),
        n_iter=sweep,
        converged=converged,
        n_splits=n_splits,
        n_merges=n_merges,
        log_alpha=log_alpha,
    )


def _clamp(sample_class, component_class):
    """Component index of every labeled sample, -1 for free samples."""
    lookup = np.full(max(int(sample_class.max()) + 1, 1), -1, dtype=np.int64)
    held = component_class >= 0
    lookup[component_class[held]] = np.flatnonzero(held)
    clamp = np.where(sample_class >= 0, lookup[np.maximum(sample_class, 0)], -1)
    return np.ascontiguousarray(clamp, dtype=np.int64)
