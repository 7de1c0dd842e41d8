r"""DEPICT's clustering head on fixed features: soft targets and a softmax regression.

DEPICT (Dizaji et al., ICCV 2017) puts a softmax layer ``p_i = softmax(W z_i + b)`` on
an encoder and trains it against soft targets ``Q`` derived from its own predictions
``P``. The targets minimise, for fixed ``P``,

.. math::

    L(Q) = \frac{1}{N} \sum_{i,k} q_{ik} \log\frac{q_{ik}}{p_{ik}}
           + \sum_k f_k \log\frac{f_k}{u_k}, \qquad f_k = \frac{1}{N} \sum_i q_{ik},

with ``u`` the uniform prior ``1/K``: the predictions are followed, except that clusters
holding more than their share of the mass are penalised (the frequency prior).

Targets (:func:`targets`)
-------------------------
``"exact"``
    The minimiser of ``L``. ``L`` is convex in ``Q`` and its stationary point is
    ``q_ik ∝ p_ik u_k / f_k(Q)``, a fixed point in ``Q``. It is computed as the
    scaling algorithm of unbalanced optimal transport (Chizat et al. 2018): rows of
    ``Q`` are normalised exactly and the column term is a KL penalty of weight 1, so the
    exact maximisation of the dual over the column potential ``h`` is
    ``h <- (h + log u - log f(h)) / 2``, with ``q_i = softmax(log p_i + h)``. This is
    block-coordinate ascent on a smooth concave dual: it converges from any start,
    locally at least halving the residual per step. (The undamped fixed-point map
    ``h <- log u - log f(h)`` can oscillate when ``P`` is soft.) The iteration stops
    when the spread ``max_k r_k - min_k r_k`` of ``r = log u - log f - h`` is at most
    ``tol``; then ``|q_ik - q'_ik| <= q_ik (exp(spread) - 1)`` for
    ``q' = normalise(p u / f(q))``.
``"sqrt"``
    The paper's closed form ``q_ik ∝ p_ik / (sum_i' p_i'k)^(1/2)``: the first step of
    the iteration above from ``h = 0``.
``"dec"``
    The released code's target, DEC's ``q_ik ∝ p_ik^2 / sum_i' p_i'k`` (the ``sqrt``
    line is commented out there). It sharpens ``P`` and does not minimise ``L``.

Alternating fit (:func:`fit_depict`)
------------------------------------
On fixed features ``z`` the network is the softmax regression itself. The loop
decreases

.. math::

    J(W, b, Q) = L(Q; P_{W,b}) + \frac{\alpha}{2} \|W\|_F^2
               = \frac{1}{N}\sum_{ik} q_{ik}\log q_{ik}
                 - \frac{1}{N}\sum_{ik} q_{ik}\log p_{ik}
                 + \sum_k f_k\log\frac{f_k}{u_k} + \frac{\alpha}{2}\|W\|_F^2

in turn over ``(W, b)`` (cross-entropy with soft targets plus the L2 term, by L-BFGS
from the previous solution; the result is kept only if it does not raise ``J``) and over
``Q`` (the target step). With ``"exact"`` targets both steps minimise ``J`` over their
block, so the recorded ``J`` never increases. ``"sqrt"`` and ``"dec"`` do not minimise
``J`` over ``Q``; their history is recorded with the same ``J`` for comparison.

``J >= 0``, and ``J = 0`` at ``W = 0, b = 0`` (uniform ``P``, ``Q = P``, ``f = u``): the
uninformative head is the global minimum, so with ``alpha > 0`` a long run drifts
towards it. With ``alpha = 0`` and exact targets ``Q = softmax(W z + b + h)``, the
regression's minimiser is ``(W, b + h)``: the alternation shifts the biases until the
predicted cluster masses are uniform (``J = 0``).

The target functions take any array-API array (NumPy, PyTorch, CuPy,
``array_api_strict``) and return one of its namespace, on its device, in its dtype,
computed in float64 where the device has it. The exact target's convergence test brings
one scalar to the host every few iterations. The softmax regression and the alternating
loop run on the host in float64 NumPy (:func:`scipy.optimize.minimize`, L-BFGS-B).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import minimize

from ._backend import (
    accumulation_dtype,
    device,
    get_namespace,
    host_floats,
    is_numpy_namespace,
    logsumexp,
    stop_gradient,
)

__all__ = [
    "TARGET_KINDS",
    "DEPICTResult",
    "TargetResult",
    "dec_targets",
    "exact_targets",
    "fit_depict",
    "fit_softmax",
    "initial_head",
    "softmax_proba",
    "sqrt_targets",
    "target_objective",
    "targets",
]

TARGET_KINDS = ("exact", "sqrt", "dec")


@dataclass(frozen=True)
class TargetResult:
    """Outcome of :func:`targets`.

    Attributes
    ----------
    targets : array of shape (n_samples, n_clusters)
        ``Q``, rows summing to 1, in the namespace, device and dtype of ``P``.
    n_iter : int
        Iterations of the exact target (0 for the closed forms).
    converged : bool
        Whether the exact target reached ``tol`` (True for the closed forms).
    residual : float
        The final spread of ``log u - log f - h`` (0.0 for the closed forms).
    """

    targets: Any
    n_iter: int
    converged: bool
    residual: float


@dataclass(frozen=True)
class DEPICTResult:
    """Outcome of :func:`fit_depict` (NumPy float64 arrays).

    Attributes
    ----------
    coef : ndarray of shape (n_clusters, n_features)
        ``W`` of the softmax regression, in the space of ``Z``.
    intercept : ndarray of shape (n_clusters,)
        ``b``.
    proba : ndarray of shape (n_samples, n_clusters)
        ``P = softmax(Z W^T + b)`` of the final head.
    targets : ndarray of shape (n_samples, n_clusters)
        The targets ``Q`` computed from ``proba``.
    objective_history : ndarray
        ``J(W, b, Q)`` after the first target step and after every iteration.
    n_iter : int
        Iterations (softmax fits) run.
    converged : bool
        Whether the mean squared change of ``Q`` fell below ``tol``.
    change_history : ndarray
        The mean squared change of ``Q`` at every iteration.
    targets_converged : bool
        Whether every exact target step reached its tolerance.
    """

    coef: np.ndarray
    intercept: np.ndarray
    proba: np.ndarray
    targets: np.ndarray
    objective_history: np.ndarray = field(repr=False)
    n_iter: int = 0
    converged: bool = False
    change_history: np.ndarray = field(default_factory=lambda: np.empty(0), repr=False)
    targets_converged: bool = True


# -- targets -------------------------------------------------------------------------


def _logsumexp(xp, x, axis, keepdims=False):
    """``log sum exp`` along ``axis``; on NumPy a plain shifted sum (several times faster
    than SciPy's general one on these small matrices), elsewhere :func:`._backend.logsumexp`."""
    if not is_numpy_namespace(xp):
        return logsumexp(xp, x, axis=axis, keepdims=keepdims)
    top = np.max(x, axis=axis, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    out = np.log(np.sum(np.exp(x - top), axis=axis, keepdims=True)) + top
    return out if keepdims else np.squeeze(out, axis=axis)


def _log_nonnegative(xp, P):
    """``log P`` with ``-inf`` where ``P == 0`` (no division warning)."""
    positive = P > 0
    safe = xp.where(positive, P, xp.ones_like(P))
    return xp.where(positive, xp.log(safe), xp.full_like(P, -math.inf))


def _column_log_means(xp, log_q):
    """``log f_k = log mean_i q_ik`` from ``log q``."""
    return _logsumexp(xp, log_q, axis=0) - math.log(log_q.shape[0])


def exact_targets(P, *, max_iter=1000, tol=1e-9):
    """The minimiser of ``L(Q)``: the fixed point ``q_ik ∝ p_ik u_k / f_k(Q)``.

    Parameters
    ----------
    P : array of shape (n_samples, n_clusters)
        Nonnegative rows summing to 1; every column has a positive entry.
    max_iter : int
        Iterations of the dual ascent ``h <- (h + log u - log f(h)) / 2``.
    tol : float
        Stop when the spread of ``log u - log f - h`` is at most ``tol``.

    Returns
    -------
    TargetResult
    """
    xp = get_namespace(P)
    where = device(P)
    acc = accumulation_dtype(xp, where)
    K = P.shape[1]
    log_p = _log_nonnegative(xp, xp.astype(stop_gradient(xp, P), acc))
    log_u = -math.log(K)
    h = xp.zeros(K, dtype=acc, device=where)
    check_every = 1 if is_numpy_namespace(xp) else 4
    residual, converged, n_iter = math.inf, False, 0
    while True:
        log_q = log_p + h[None, :]
        log_q = log_q - _logsumexp(xp, log_q, axis=1, keepdims=True)
        r = log_u - _column_log_means(xp, log_q) - h
        if n_iter % check_every == 0 or n_iter == max_iter:
            (residual,) = host_floats(xp, xp.max(r) - xp.min(r))
            if residual <= tol:
                converged = True
                break
        if n_iter == max_iter:
            break
        h = h + 0.5 * r
        h = h - xp.max(h)  # a shift of h leaves Q unchanged: keep it bounded
        n_iter += 1
    Q = xp.astype(xp.exp(log_q), P.dtype)
    return TargetResult(Q, n_iter, converged, residual)


def sqrt_targets(P):
    """The paper's closed form ``q_ik ∝ p_ik / (sum_i' p_i'k)^(1/2)``."""
    xp = get_namespace(P)
    acc = accumulation_dtype(xp, device(P))
    Pa = xp.astype(stop_gradient(xp, P), acc)
    weighted = Pa / xp.sqrt(xp.sum(Pa, axis=0))[None, :]
    return xp.astype(weighted / xp.sum(weighted, axis=1, keepdims=True), P.dtype)


def dec_targets(P):
    """DEC's target, used by DEPICT's released code: ``q_ik ∝ p_ik^2 / sum_i' p_i'k``."""
    xp = get_namespace(P)
    acc = accumulation_dtype(xp, device(P))
    Pa = xp.astype(stop_gradient(xp, P), acc)
    weighted = Pa * Pa / xp.sum(Pa, axis=0)[None, :]
    return xp.astype(weighted / xp.sum(weighted, axis=1, keepdims=True), P.dtype)


def targets(P, kind="exact", *, max_iter=1000, tol=1e-9):
    """Targets of the given kind (``"exact"``, ``"sqrt"`` or ``"dec"``) as a
    :class:`TargetResult`; ``max_iter`` and ``tol`` apply to ``"exact"`` only."""
    if kind == "exact":
        return exact_targets(P, max_iter=max_iter, tol=tol)
    if kind == "sqrt":
        return TargetResult(sqrt_targets(P), 0, True, 0.0)
    if kind == "dec":
        return TargetResult(dec_targets(P), 0, True, 0.0)
    raise ValueError(f"Unknown target kind {kind!r}; choose one of {TARGET_KINDS}.")


def target_objective(Q, P):
    """``L(Q) = mean_i KL(q_i || p_i) + KL(f || u)``, ``0 log 0 = 0``, as a 0-d array
    (in the accumulation dtype of the inputs' device; differentiable on PyTorch)."""
    xp = get_namespace(Q, P)
    acc = accumulation_dtype(xp, device(Q))
    Q = xp.astype(Q, acc)
    P = xp.astype(P, acc)
    n, K = Q.shape
    positive = Q > 0
    ones = xp.ones_like(Q)
    # where q = 0 the term is 0 (both logs are taken of 1 there); q > 0 = p gives +inf
    log_ratio = _log_nonnegative(xp, xp.where(positive, Q, ones)) - _log_nonnegative(
        xp, xp.where(positive, P, ones)
    )
    terms = Q * log_ratio
    f = xp.sum(Q, axis=0) / n
    f_positive = f > 0
    f_terms = xp.where(
        f_positive, f * xp.log(xp.where(f_positive, f * K, xp.ones_like(f))), xp.zeros_like(f)
    )
    return xp.sum(terms) / n + xp.sum(f_terms)


# -- softmax regression (host) -------------------------------------------------------


def softmax_proba(Z, coef, intercept):
    """``softmax(Z W^T + b)`` and its log (NumPy)."""
    scores = Z @ coef.T + intercept[None, :]
    log_p = scores - _logsumexp(np, scores, axis=1, keepdims=True)
    return np.exp(log_p), log_p


def initial_head(Z, labels, n_clusters):
    """DEPICT's start: ``W`` = the L2-normalised centroids of ``labels`` (a zero row for
    an empty or zero-norm centroid), ``b = 0``."""
    d = Z.shape[1]
    sums = np.zeros((n_clusters, d))
    np.add.at(sums, labels, Z)
    counts = np.bincount(labels, minlength=n_clusters).astype(np.float64)
    centroids = sums / np.maximum(counts, 1.0)[:, None]
    norms = np.linalg.norm(centroids, axis=1, keepdims=True)
    coef = np.where(norms > 0, centroids / np.where(norms > 0, norms, 1.0), 0.0)
    return coef, np.zeros(n_clusters)


def _softmax_loss(Z, Q, alpha):
    n, d = Z.shape
    K = Q.shape[1]

    def loss(x):
        coef = x[: K * d].reshape(K, d)
        intercept = x[K * d :]
        P, log_p = softmax_proba(Z, coef, intercept)
        value = -np.sum(Q * log_p) / n + 0.5 * alpha * np.sum(coef * coef)
        G = (P - Q) / n
        grad = np.concatenate([(G.T @ Z + alpha * coef).ravel(), G.sum(axis=0)])
        return value, grad

    return loss


def fit_softmax(Z, Q, coef, intercept, alpha, *, max_iter=100):
    """Softmax regression on soft labels: minimise
    ``-(1/N) sum_ik q_ik log p_ik + (alpha/2) ||W||^2`` over ``(W, b)`` by L-BFGS-B,
    from ``(coef, intercept)``; the gradient is ``(Z^T (P - Q) / N + alpha W, 1^T (P - Q)
    / N)``. The start is returned if the run ends higher (it never does when the line
    search succeeds).

    Returns
    -------
    coef, intercept, value
    """
    K, d = coef.shape
    loss = _softmax_loss(Z, Q, alpha)
    x0 = np.concatenate([coef.ravel(), intercept])
    value0, _ = loss(x0)
    run = minimize(
        loss,
        x0,
        jac=True,
        method="L-BFGS-B",
        options={"maxiter": max_iter, "ftol": 1e-10, "gtol": 1e-6},
    )
    x, value = (run.x, float(run.fun)) if run.fun <= value0 else (x0, value0)
    return x[: K * d].reshape(K, d).copy(), x[K * d :].copy(), value


# -- the alternating loop (host) -----------------------------------------------------


def _objective(Q, P, coef, alpha):
    return float(target_objective(Q, P)) + 0.5 * alpha * float(np.sum(coef * coef))


def fit_depict(
    Z,
    coef,
    intercept,
    *,
    target="exact",
    alpha=0.0,
    max_iter=100,
    tol=1e-7,
    target_max_iter=1000,
    target_tol=1e-9,
    softmax_max_iter=100,
    callback: Callable[[int, float, float], None] | None = None,
):
    """DEPICT's alternation from the head ``(coef, intercept)``.

    Each iteration fits the softmax regression to the current targets
    (:func:`fit_softmax`, warm-started), then recomputes the targets from its
    predictions. Stops when the mean squared change of the targets,
    ``mean_ik (q_new - q_old)^2``, is below ``tol`` (DEPICT's code), or after
    ``max_iter`` iterations.

    Parameters
    ----------
    Z : ndarray of shape (n_samples, n_features), float64
    coef, intercept : ndarrays of shapes (n_clusters, n_features) and (n_clusters,)
        The starting head (:func:`initial_head`, usually fitted to hard labels first).
    target : {"exact", "sqrt", "dec"} or callable
        The target step; a callable maps ``P`` to ``Q`` (NumPy), e.g. ``lambda P: P``
        for self-training without the frequency prior.
    alpha : float >= 0
        L2 strength on ``W`` (the intercept is not penalised).
    callback : callable or None
        Called as ``callback(n_iter, objective, change)`` after every iteration.

    Returns
    -------
    DEPICTResult
    """

    def step(P):
        if callable(target):
            return np.asarray(target(P), dtype=np.float64), True
        result = targets(P, target, max_iter=target_max_iter, tol=target_tol)
        return result.targets, result.converged

    P, _ = softmax_proba(Z, coef, intercept)
    Q, targets_converged = step(P)
    history = [_objective(Q, P, coef, alpha)]
    changes = []
    converged, n_iter = False, 0
    for n_iter in range(1, max_iter + 1):
        coef, intercept, _ = fit_softmax(Z, Q, coef, intercept, alpha, max_iter=softmax_max_iter)
        P, _ = softmax_proba(Z, coef, intercept)
        Q_new, ok = step(P)
        targets_converged = targets_converged and ok
        change = float(np.mean((Q_new - Q) ** 2))
        Q = Q_new
        history.append(_objective(Q, P, coef, alpha))
        changes.append(change)
        if callback is not None:
            callback(n_iter, history[-1], change)
        if change < tol:
            converged = True
            break
    return DEPICTResult(
        coef=coef,
        intercept=intercept,
        proba=P,
        targets=Q,
        objective_history=np.asarray(history),
        n_iter=n_iter,
        converged=converged,
        change_history=np.asarray(changes),
        targets_converged=targets_converged,
    )
