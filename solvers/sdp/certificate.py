r"""A certified lower bound on the Peng–Wei SDP from a (low-rank) solution.

The low-rank solver of :mod:`.lowrank` returns a feasible ``Z = U U^T`` (``U >= 0``), so
its objective is an upper bound on the SDP optimum; it may sit above it (a local
solution of the factorised problem, or a rank too small for the optimum). A dual bound
measures how far above it can be. For the problem

.. math::
    p^\star = \min_Z \langle C, Z\rangle \quad\text{s.t.}\quad Z \succeq 0,\ Z \ge 0,\
    Z\mathbf 1 = \mathbf 1,\ \operatorname{tr} Z = t,

take any ``y`` in ``R^n`` and any symmetric ``N >= 0`` and write
``sym(y) = (y 1^T + 1 y^T) / 2``. For every feasible ``Z``:

.. math::
    \langle C, Z\rangle
    = \langle C - \mathrm{sym}(y) - N, Z\rangle + y^T Z \mathbf 1 + \langle N, Z\rangle
    \;\ge\; \lambda_{\min}\big(C - \mathrm{sym}(y) - N\big)\, t + \mathbf 1^T y + 0,
    \tag{1}

using (i) ``<A, Z> >= lambda_min(A) tr Z`` for symmetric ``A`` and ``Z`` PSD, with
``tr Z = t``; (ii) ``<sym(y), Z> = y^T Z 1 = 1^T y`` by the row sums; (iii)
``<N, Z> >= 0`` as both are entrywise nonnegative. So

.. math::
    \mathrm{LB}(y, N) = \mathbf 1^T y + t\,\lambda_{\min}\big(C - \mathrm{sym}(y) - N\big)
    \le p^\star
    \tag{2}

for *every* ``(y, N >= 0)``: a wrong guess of the multipliers gives a weaker bound,
never an invalid one. (2) is the dual objective ``1^T y + t mu`` of a dual point with
slack ``S = C - sym(y) - mu I - N``, corrected by ``t lambda_min(S)`` when ``S`` is not
PSD: the "trace bound times the most negative eigenvalue" correction, with
``tr Z = t`` exact.

Two families of ``(y, N)`` are tried and the best bound kept:

- **the solver's multipliers**: the augmented Lagrangian of :mod:`.lowrank` is
  stationary where ``C + sym(w) - mu I`` annihilates ``U`` (``w = y_AL + beta rho``), so
  ``y = -w``, with ``N`` built from that ``y`` as below;
- **the partition certificate** (Iguchi, Mixon, Peterson & Villar, Math. Program. 2017,
  adapted): for the rounded partition ``G_1..G_K``, complementary slackness with
  ``Z = sum_k 1_k 1_k^T / n_k`` fixes ``y`` up to the trace multiplier ``mu``
  (eq. 3 below) and asks ``N`` to vanish inside the clusters and to cancel the row sums
  of ``C - sym(y)`` across them, which the rank-one blocks
  ``N_kl = a_kl a_lk^T / s_kl`` (``a_kl = (C - sym(y))_{kl} 1``, clipped at 0) do. The
  bound is then maximised over the scalar ``mu``. When the SDP optimum is that
  partition matrix, the bound reaches its objective (the gap closes); when the optimum
  is not a partition matrix (clusters below the recovery threshold) it can stay loose:
  the gap is then an upper bound on the suboptimality, not its value.

A third dual point comes from the signed escalation (:mod:`.signed`): the multipliers of
its row sums *and* of ``Z >= 0`` (the ``N`` the first family lacks), evaluated by
:func:`slack_bound`. Below the recovery threshold they are what makes the bound tight.

Each evaluation costs one symmetric eigenvalue problem of size ``n`` (dense, ``O(n^3)``),
so the certificate is computed up to :data:`MAX_SAMPLES` samples.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np
from scipy.linalg import eigh
from scipy.optimize import minimize_scalar

from .._backend import single_threaded_blas

__all__ = ["MAX_SAMPLES", "Certificate", "peng_wei_lower_bound", "slack_bound"]

# Above this many samples the dense eigenvalue problems of the certificate (a few tens of
# them) cost more than the low-rank solve: no bound is computed.
MAX_SAMPLES = 1000
# Brent's method on mu: evaluations at most.
_MU_EVALUATIONS = 40
# Below this size the eigenvalue problems run on one BLAS thread: at n = 500 on a busy
# two-core machine the certificate took 12-15 s threaded, 0.8 s on one thread.
_THREADED_SIZE = 2 * MAX_SAMPLES


@dataclass
class Certificate:
    """A lower bound on the SDP optimum and the dual point that gives it.

    Attributes
    ----------
    lower_bound : float
        ``LB(y, N)`` of eq. (2), in the units of ``C``.
    y : ndarray of shape (n,)
    min_eigenvalue : float
        ``lambda_min(C - sym(y) - N)``.
    source : str
        ``"multipliers"``, ``"partition"`` or ``"signed multipliers"``: the dual point
        that gave the bound.
    """

    lower_bound: float
    y: np.ndarray
    min_eigenvalue: float
    source: str


def _sym(y):
    return 0.5 * (y[:, None] + y[None, :])


def _lowest_eigenvalue(A):
    return float(eigh(A, eigvals_only=True, subset_by_index=[0, 0], check_finite=False)[0])


def _cross_cluster_n(M, masks):
    """``N >= 0``, zero inside clusters, cancelling the row sums of ``M`` across them.

    Block ``(k, l)``: ``N_kl = a b^T / s`` with ``a = (M_kl 1)_+``, ``b = (M_lk 1)_+`` and
    ``s = max(1^T a, 1^T b)``, so ``N_kl 1 = a (1^T b) / s <= a``; with no clipping and
    ``1^T a = 1^T b = 1^T M_kl 1`` it is exactly ``a``. Any ``s > 0`` keeps ``N >= 0``,
    which is all that eq. (2) needs.
    """
    N = np.zeros_like(M)
    for first, rows in enumerate(masks):
        for second, cols in enumerate(masks):
            if second <= first:
                continue
            block = M[np.ix_(rows, cols)]
            a = np.maximum(block.sum(axis=1), 0.0)
            b = np.maximum(block.sum(axis=0), 0.0)
            s = max(a.sum(), b.sum())
            if s > 0:
                part = np.outer(a, b) / s
                N[np.ix_(rows, cols)] = part
                N[np.ix_(cols, rows)] = part.T
    return N


def slack_bound(C, trace, y, N):
    """Eq. (2) at a given dual point ``(y, N)`` (``N`` symmetric, nonnegative): the bound
    of the signed solver's multipliers (:mod:`.signed`)."""
    small = C.shape[0] < _THREADED_SIZE
    with single_threaded_blas() if small else contextlib.nullcontext():
        # symmetrised and clipped: the bound is valid for any input
        lowest = _lowest_eigenvalue(C - _sym(y) - np.maximum(0.5 * (N + N.T), 0.0))
    return Certificate(float(np.sum(y)) + trace * lowest, y, lowest, "signed multipliers")


def _bound(C, t, y, masks):
    M = C - _sym(y)
    lowest = _lowest_eigenvalue(M - _cross_cluster_n(M, masks))
    return float(np.sum(y)) + t * lowest, lowest  # eq. (2)


def peng_wei_lower_bound(C, trace, labels, multipliers=None):
    """The best bound (2) over the two families of the module text.

    Parameters
    ----------
    C : ndarray of shape (n, n)
        Symmetric cost (``-W W^T`` for Peng–Wei on normalised data).
    trace : float
        ``t`` (the number of clusters).
    labels : ndarray of shape (n,)
        A partition (the rounding of the solution); empty clusters are ignored.
    multipliers : ndarray of shape (n,), list of them, or None
        Row-sum multipliers ``y`` (candidates) for the first family; any sign convention
        gives a valid bound, the one of eq. (2) a good one.
    """
    small = C.shape[0] < _THREADED_SIZE
    with single_threaded_blas() if small else contextlib.nullcontext():
        return _lower_bound(C, trace, labels, multipliers)


def _lower_bound(C, trace, labels, multipliers):
    n = C.shape[0]
    masks = [labels == k for k in np.unique(labels)]
    candidates = []
    if multipliers is None:
        multipliers = []
    elif not isinstance(multipliers, list | tuple):
        multipliers = [multipliers]
    for y in multipliers:
        value, lowest = _bound(C, trace, y, masks)
        candidates.append(Certificate(value, y, lowest, "multipliers"))

    # Partition family. Complementary slackness with Z = sum_k 1_k 1_k^T / n_k asks
    # (C - sym(y) - mu I) 1_k = 0 on each cluster's rows: for i in G_k, with
    # c_i = (C 1_k)_i and n = n_k, c_i - (n y_i + 1_k^T y) / 2 - mu = 0, whose sum over
    # G_k gives 1_k^T y = 1_k^T C 1_k / n - mu, hence
    #     y_i(mu) = (2 c_i - 1_k^T C 1_k / n) / n - mu / n          (3)
    # and 1^T y(mu) = <C, Z_partition> - K mu.
    base = np.zeros(n)
    per_point = np.zeros(n)
    for rows in masks:
        size = rows.sum()
        within = C[:, rows][rows].sum(axis=1)
        base[rows] = (2.0 * within - within.sum() / size) / size
        per_point[rows] = 1.0 / size

    def negative_bound(mu):
        return -_bound(C, trace, base - mu * per_point, masks)[0]

    # mu is the trace multiplier: at the optimum, lambda_min of C - sym(y), of the order
    # of the entries of C; bracket it by C's spectrum
    scale = max(float(np.max(np.abs(C))), 1e-300)
    guess = _lowest_eigenvalue(C)
    run = minimize_scalar(
        negative_bound,
        bounds=(guess - 2.0 * scale * n / trace, guess + 2.0 * scale * n / trace),
        method="bounded",
        options={"xatol": 1e-12 * scale, "maxiter": _MU_EVALUATIONS},
    )
    y = base - run.x * per_point
    value, lowest = _bound(C, trace, y, masks)
    candidates.append(Certificate(value, y, lowest, "partition"))
    return max(candidates, key=lambda c: c.lower_bound)
