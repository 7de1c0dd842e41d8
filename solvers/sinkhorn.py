r"""Entropic optimal transport between samples and prototypes (Sinkhorn balancing).

Given scores ``S`` (n samples x K prototypes), find the plan ``Q`` with row sums ``a`` and
column sums ``b`` that maximises ``<Q, S> + eps H(Q)``. Its solution has the form

.. math:: Q_{ik} = \exp\big((S_{ik} + f_i + g_k) / \varepsilon\big)

with dual potentials ``f`` (rows) and ``g`` (columns), which the iterations update in
turn (Cuturi 2013; log-domain form of Peyré & Cuturi 2019, Remark 4.23):

.. math::
    g_k &\leftarrow \varepsilon \log b_k - \varepsilon \operatorname{logsumexp}_i
          \big((S_{ik} + f_i)/\varepsilon\big) \\
    f_i &\leftarrow \varepsilon \log a_i - \varepsilon \operatorname{logsumexp}_k
          \big((S_{ik} + g_k)/\varepsilon\big)

The potentials stay in log domain (float64) and every exponent is shifted by its row
maximum, so no eps underflows or overflows. One iteration is a column update followed by
a row update, the order of SwAV's ``distributed_sinkhorn``: three iterations from ``f = 0``
reproduce its codes exactly. After an iteration the rows of the plan are exact; the error
reported is the relative L-inf error of its column sums.

The functions here take validated arrays (see :mod:`clusterlab.balanced` for the public,
validating entry points). NumPy input runs the fused Numba kernels of
:mod:`._sinkhorn_kernels`; any other array-API namespace (PyTorch, CuPy,
``array_api_strict``) runs the same iteration written with that namespace's operations,
on the input's device, fetching the marginal error to the host only every few
iterations. SwAV's fixed-iteration codes there take the scaling-domain path of
:func:`scaling_codes`: one exponential pass and matrix-vector products, no host sync.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import _scaling_kernels as scaling_kernels
from . import _sinkhorn_kernels as kernels
from ._backend import (
    accumulation_dtype,
    device,
    exp_nonpositive,
    extrema,
    get_namespace,
    host_floats,
    is_numpy_namespace,
    n_threads,
    stop_gradient,
)
from ._fastexp import work_dtype

__all__ = [
    "SinkhornResult",
    "scaling_codes",
    "sinkhorn",
    "sinkhorn_codes",
    "swapped_prediction_loss",
]


@dataclass(frozen=True)
class SinkhornResult:
    """Outcome of :func:`sinkhorn`.

    Attributes
    ----------
    plan : array of shape (n, K) or None
        The transport plan, in the dtype and namespace of the scores (None when
        ``return_plan=False``). Rows sum to ``a``; columns to ``b`` within
        ``marginal_error``.
    f, g : float64 arrays of shape (n,) and (K,)
        Dual potentials, in score units: ``plan = exp((S + f[:, None] + g[None, :]) / eps)``.
        Pass ``g`` as ``init`` to warm-start a later solve.
    eps : float
        The regularisation of the final stage.
    n_iter : int
        Iterations run, over all epsilon-scaling stages.
    converged : bool
        Whether ``marginal_error <= tol``.
    marginal_error : float
        ``max_k |sum_i plan_ik / b_k - 1|`` for the returned plan.
    error_history : ndarray
        ``marginal_error`` after every iteration (all stages) for NumPy scores; for
        other namespaces after the checked iterations (1, 2, 4, 8, then every tenth,
        and the last of each stage).
    """

    plan: Any
    f: Any
    g: Any
    eps: float
    n_iter: int
    converged: bool
    marginal_error: float
    error_history: np.ndarray = field(repr=False)


# Below this many score entries one thread is faster than waking the thread pool.
_PARALLEL_MIN_SIZE = 200_000


class _NumbaPasses:
    """The two passes over ``S`` on CPU, with buffers allocated once per solve."""

    def __init__(self, S):
        n, K = S.shape
        parallel = n * K >= _PARALLEL_MIN_SIZE and n_threads() > 1
        self.row_kernel = kernels.row_pass if parallel else kernels.row_pass_serial
        self.column_kernel = (
            kernels.column_logsumexp if parallel else kernels.column_logsumexp_serial
        )
        n_chunks = max(1, min(n, 4 * n_threads())) if parallel else 1
        self.col_partial = np.empty((n_chunks, K))
        self.work = np.empty((n_chunks, K), dtype=work_dtype(S.dtype))
        self.f_scaled = np.empty(n)

    def column_lse(self, S, inv_eps):
        return self.column_kernel(S, inv_eps, self.col_partial, self.work)

    def row_pass(self, S, g_scaled, inv_eps, log_a, shift=None, plan_mass=None):
        _n, K = S.shape
        plan = np.empty((0, K), S.dtype) if plan_mass is None else np.empty_like(S)
        self.row_kernel(
            S,
            g_scaled,
            inv_eps,
            log_a,
            np.empty(0) if shift is None else shift,
            np.empty(0) if plan_mass is None else plan_mass,
            self.f_scaled,
            self.col_partial,
            plan,
            self.work,
        )
        col_sum = self.col_partial.sum(axis=0)
        return self.f_scaled.copy(), col_sum, None if plan_mass is None else plan


class _ArrayAPIPasses:
    """The same passes written with array-API operations (PyTorch, CuPy, array_api_strict).

    Exponents and sums are formed in float64 where the device has it (as in the CPU
    kernel: in float32, updates of g below the resolution of g / eps would be rounded
    away and the iteration stall); the exponentials are taken in the scores' dtype.
    """

    def __init__(self, xp, S):
        self.xp = xp
        self.acc = accumulation_dtype(xp, device(S))

    def column_lse(self, S, inv_eps):
        xp = self.xp
        arg = xp.astype(S, self.acc) * inv_eps
        col_max = xp.max(arg, axis=0)
        e = exp_nonpositive(xp, xp.astype(arg - col_max[None, :], S.dtype))
        return col_max + xp.log(xp.sum(e, axis=0, dtype=self.acc))

    def row_pass(self, S, g_scaled, inv_eps, log_a, shift=None, plan_mass=None):
        # the row maxima are cheap here: ``shift`` (a CPU-kernel optimisation) is unused
        xp = self.xp
        arg = xp.astype(S, self.acc) * inv_eps + g_scaled[None, :]
        row_max = xp.max(arg, axis=1, keepdims=True)
        e = exp_nonpositive(xp, xp.astype(arg - row_max, S.dtype))
        total = xp.sum(e, axis=1, dtype=self.acc)
        f_scaled = log_a - row_max[:, 0] - xp.log(total)
        weight = xp.astype(xp.exp(log_a) / total, S.dtype)
        col_sum = xp.sum(e * weight[:, None], axis=0, dtype=self.acc)
        plan = None
        if plan_mass is not None:
            plan = e * xp.astype(plan_mass / total, S.dtype)[:, None]
        return f_scaled, col_sum, plan


def _eps_schedule(eps, spread, factor=0.5):
    """Warm-up eps values from the score spread down towards ``eps`` (epsilon scaling)."""
    stages = []
    current = spread
    if not math.isfinite(spread):
        return stages
    while current > eps:
        stages.append(current)
        current *= factor
    return stages


# Most iterations between two host checks of the marginal error (non-NumPy namespaces).
_CHECK_EVERY = 10


def _check_points(max_iter, tol, every):
    """The iterations (1-based) after which the error is fetched: every one for NumPy
    (``every == 1``); else after 1, 2, 4, 8, ... and then every ``every`` iterations, so a
    quickly converging stage runs at most twice its iterations; the last one always, and
    only the last in fixed-iteration mode (``tol < 0``)."""
    if every == 1:
        return range(1, max_iter + 1)
    points, it = {max_iter}, 1
    while tol >= 0 and it < max_iter:
        points.add(it)
        it = min(2 * it, it + every)
    return points


class _IterationRecord:
    """The bookkeeping every Sinkhorn loop shares (in memory here, chunked in
    :mod:`.dask_sinkhorn`): iterations counted, the error history and the callback, the
    roll-back to the last finite iterate, and the assembly of the result.

    A loop adds ``run(eps, g, tol, max_iter, *extra)``: iterations at one eps that add to
    ``n_iter``, call :meth:`accept`, :meth:`roll_back` and :meth:`finish`, and return a
    tuple whose first entry is the column potentials and whose last is the marginal
    error; :meth:`solve` chains the runs of a solve.
    """

    def __init__(self, callback):
        self.callback = callback
        self.errors = []
        self.n_iter = 0
        self.n_accepted = 0  # iterations behind the last finite, checked iterate

    def accept(self, error):
        """Record the error of a finite, checked iterate (and tell the callback)."""
        self.n_accepted = self.n_iter
        self.errors.append(error)
        if self.callback is not None:
            self.callback(self.n_iter, error)

    def roll_back(self, state):
        """Back to the last finite iterate: its iterations are the ones counted."""
        if state is not None:
            self.n_iter = self.n_accepted
        warnings.warn(
            f"Sinkhorn iterate became non-finite after {self.n_iter} iterations; "
            "returning the last finite iterate.",
            RuntimeWarning,
            stacklevel=5,  # the public function's caller (through run and solve)
        )

    @staticmethod
    def finish(state, eps):
        """The state a run returns: its last finite iterate, which must exist."""
        if state is None:
            raise FloatingPointError(
                f"the first Sinkhorn pass at eps={eps:g} is not finite: eps is too small "
                "for the range of the scores"
            )
        return state

    def solve(self, eps, init, *, tol, max_iter, n_iter, eps_scaling, spread, fixed=()):
        """The runs of a solve; returns the final run's state.

        Tolerance mode (``n_iter`` None): without ``init`` and with ``eps_scaling``, loose
        runs (to ``max(tol, 1e-3)``) for eps halving from ``spread()`` (the score spread,
        measured only then) down to ``eps``, each warm-starting the next, then the run at
        ``eps`` to ``tol`` with what is left of ``max_iter``. Fixed mode: ``n_iter`` runs
        at ``eps`` (tolerance -1, never met), ``fixed`` passed on to that run.
        """
        g = init
        if n_iter is not None:
            return self.run(eps, g, -1.0, n_iter, *fixed)
        if eps_scaling and init is None:
            for stage_eps in _eps_schedule(eps, spread()):
                if self.n_iter >= max_iter - 1:
                    break
                g = self.run(stage_eps, g, max(tol, 1e-3), max_iter - 1 - self.n_iter)[0]
        return self.run(eps, g, tol, max_iter - self.n_iter)

    def result(self, *, plan, f, g, eps, error, tol):
        """The :class:`SinkhornResult` of a solve."""
        return SinkhornResult(
            plan=plan,
            f=f,
            g=g,
            eps=eps,
            n_iter=self.n_iter,
            converged=error <= tol,
            marginal_error=error,
            error_history=np.asarray(self.errors),
        )


def column_update(xp, g, eps, log_b, col_sum):
    """``g + eps (log b - log colsum)``: the column potentials that give the plan of row
    potentials ``f`` the column sums ``b`` (the sums floored at the dtype's tiniest)."""
    return g + eps * (log_b - xp.log(xp.maximum(col_sum, _tiny(xp, col_sum))))


class _SinkhornLoop(_IterationRecord):
    """Iterations at one eps, sharing buffers and the error history across stages.

    The NumPy kernels measure the error for free in every pass; on other namespaces the
    error is brought to the host (one sync) at the iterations of :func:`_check_points`,
    so the history holds the checked iterations only.
    """

    def __init__(self, scores, a, b, callback):
        self.xp = get_namespace(scores)
        self.scores = scores
        n, K = scores.shape
        self.log_a = _log_marginal(self.xp, a, n, device(scores))
        self.log_b = _log_marginal(self.xp, b, K, device(scores))
        self.b = self.xp.exp(self.log_b)
        numpy = is_numpy_namespace(self.xp)
        self.passes = _NumbaPasses(scores) if numpy else _ArrayAPIPasses(self.xp, scores)
        self.check_every = 1 if numpy else _CHECK_EVERY
        super().__init__(callback)

    def initial_g(self, eps):
        """Column update from ``f = 0``: SwAV's first normalisation."""
        return eps * (self.log_b - self.passes.column_lse(self.scores, 1.0 / eps))

    def plan(self, g, f_scaled, eps, plan_mass):
        """The plan of potentials ``(f, g)``; ``f`` gives each row's exact log-sum-exp."""
        shift = self.log_a - f_scaled
        return self.passes.row_pass(self.scores, g / eps, 1.0 / eps, self.log_a, shift, plan_mass)[
            2
        ]

    def run(self, eps, g, tol, max_iter, plan_mass=None):
        """Up to ``max_iter`` iterations, stopping at ``tol``.

        ``plan_mass`` writes the plan during the last allowed iteration. Returns
        ``(g, f_scaled, plan, error)``: the row potentials, the plan and the error all
        belong to the column potentials ``g`` returned. If an iterate turns non-finite,
        the last finite (checked) one is returned with a ``RuntimeWarning``.
        """
        xp = self.xp
        inv_eps = 1.0 / eps
        if g is None:
            g = self.initial_g(eps)
        shift = None  # the first pass at a new eps finds each row's maximum
        state = None
        checks = _check_points(max_iter, tol, self.check_every)
        for it in range(max_iter):
            last = it == max_iter - 1
            f_scaled, col_sum, plan = self.passes.row_pass(
                self.scores,
                g * inv_eps,
                inv_eps,
                self.log_a,
                shift,
                plan_mass if last else None,
            )
            self.n_iter += 1
            if it + 1 in checks:
                error = self._error(f_scaled, col_sum)
                if error is None:
                    self.roll_back(state)
                    break
                state = (g, f_scaled, plan, error)
                self.accept(error)
                if error <= tol or last:
                    break
            g_new = column_update(xp, g, eps, self.log_b, col_sum)
            if self.check_every == 1:
                if not _all_finite(xp, g_new):
                    self.roll_back(state)
                    break
                # logsumexp_k((S_ik + g_k) / eps) grows by at most max_k(dg_k) / eps: a
                # safe shift for the next pass that needs no row maximum
                shift = (self.log_a - f_scaled) + float(xp.max(g_new - g)) * inv_eps
            g = g_new
        return self.finish(state, eps)

    def _error(self, f_scaled, col_sum):
        """The relative column-marginal error, or None if the iterate is not finite."""
        xp = self.xp
        error = xp.max(xp.abs(col_sum / self.b - 1.0))
        if self.check_every == 1:  # NumPy: checks on the host cost no transfer
            finite = _all_finite(xp, f_scaled) and _all_finite(xp, col_sum)
            return float(error) if finite else None
        # NaN or inf in the column sums show in the error: one transfer checks both
        error, finite = host_floats(xp, error, xp.all(xp.isfinite(f_scaled)))
        return error if finite and math.isfinite(error) else None


def _tiny(xp, x):
    return xp.asarray(1e-300 if x.dtype == xp.float64 else 1e-38, dtype=x.dtype, device=device(x))


def _all_finite(xp, x):
    return bool(xp.all(xp.isfinite(x)))


def sinkhorn(
    scores,
    eps,
    a=None,
    b=None,
    *,
    tol=1e-6,
    max_iter=1000,
    n_iter=None,
    init=None,
    eps_scaling=True,
    return_plan=True,
    plan_mass=None,
    callback=None,
):
    """Solve the entropic transport problem between samples and prototypes.

    Maximise ``<Q, scores> + eps H(Q)`` subject to ``Q 1 = a``, ``Q^T 1 = b``. Inputs must
    be validated (see :func:`clusterlab.sinkhorn` for the checking entry point).

    Parameters
    ----------
    scores : array of shape (n, K), float32 or float64, C-contiguous
    eps : float > 0
    a, b : arrays of shape (n,) and (K,), or None for uniform marginals (each summing to 1)
    tol : float
        Stop once the relative L-inf error of the column marginal is at most ``tol``.
    max_iter : int
        Cap on the iterations, all stages together.
    n_iter : int or None
        Run exactly this many iterations at ``eps`` (SwAV's fixed-iteration mode).
    init : float64 array of shape (K,) or None
        Column potentials ``g`` of an earlier solve (warm start).
    eps_scaling : bool
        In tolerance mode and without ``init``, first solve loosely for eps halving from
        the spread of the scores down to ``eps``, each stage warm-starting the next. The
        log-domain iteration is stable without it, but near-hard plans (scores spread
        over many eps) converge far faster with it; on easy problems it costs up to
        twice the iterations (21 against 10 on the eps = 0.05 benchmark).
    return_plan : bool
        Form the plan (one more pass over the scores in tolerance mode).
    plan_mass : array of shape (n,) or None
        Row sums of the returned plan, ``a`` by default (ones give per-sample codes).
    callback : callable or None
        Called as ``callback(n_iter, marginal_error)`` after every iteration.

    Returns
    -------
    SinkhornResult
    """
    loop = _SinkhornLoop(scores, a, b, callback)
    xp = loop.xp
    if plan_mass is None:
        plan_mass = xp.exp(loop.log_a)
    g, f_scaled, plan, error = loop.solve(
        eps,
        init,
        tol=tol,
        max_iter=max_iter,
        n_iter=n_iter,
        eps_scaling=eps_scaling,
        spread=lambda: _spread(xp, scores),
        fixed=(plan_mass if return_plan else None,),  # the plan written by the last pass
    )
    if return_plan and plan is None:
        plan = loop.plan(g, f_scaled, eps, plan_mass)
    return loop.result(
        plan=plan if return_plan else None, f=eps * f_scaled, g=g, eps=eps, error=error, tol=tol
    )


def _spread(xp, scores):
    high, low = host_floats(xp, *extrema(xp, scores))
    return high - low


def _log_marginal(xp, weights, size, where):
    dtype = accumulation_dtype(xp, where)
    if weights is None:
        return xp.full(size, -math.log(size), dtype=dtype, device=where)
    return xp.log(xp.astype(weights, dtype))


def sinkhorn_codes(
    scores,
    eps=0.05,
    n_iter=3,
    *,
    hard=False,
    tol=1e-6,
    max_iter=1000,
    score_range=None,
    check_range=None,
):
    """Balanced soft assignments of samples to prototypes (SwAV, SIGMA, SeLa).

    Equal prototype loads, uniform sample weights; every sample's codes sum to one
    (``codes = n * plan``). With ``n_iter`` set this is SwAV's ``distributed_sinkhorn``
    exactly; with ``n_iter=None`` it iterates to ``tol`` (SeLa's full-dataset labels).
    ``hard=True`` returns the one-hot codes of each row's largest entry (SIGMA, SeLa).
    ``score_range`` is ``(min, max)`` of the scores, or bounds of them, when the caller
    knows it (it picks the path of non-NumPy arrays; measured here otherwise, one host
    sync).

    NumPy scores with ``n_iter`` set and no ``score_range`` need no pass of their own for
    the range: the first pass of :func:`_numba_scaling_codes_and_range` measures it
    while it forms the exponentials. ``check_range``, if given, is then called as
    ``check_range(low, high)`` with what it found (NaN for both where the scores hold
    NaN or an infinity; the iterations have not run then), so that the caller's input
    check costs no pass over the scores; it raises to reject them.

    Returns ``(codes, result)``; ``result`` is None when the scaling domain ran (fixed
    iterations within its range), which measures no potentials.
    """
    xp = get_namespace(scores)
    codes = result = None
    if n_iter is not None:
        if score_range is None and is_numpy_namespace(xp):
            codes, measured = _numba_scaling_codes_and_range(scores, eps, n_iter)
            if check_range is not None:
                check_range(*measured)
        else:
            if score_range is None:
                high, low = host_floats(xp, *extrema(xp, scores))
                score_range = (low, high)
            codes = scaling_codes(scores, eps, n_iter, score_range=score_range)
    if codes is None:
        ones = xp.ones(
            scores.shape[0], dtype=accumulation_dtype(xp, device(scores)), device=device(scores)
        )
        result = sinkhorn(
            stop_gradient(xp, scores),
            eps,
            tol=tol,
            max_iter=max_iter,
            n_iter=n_iter,
            eps_scaling=False,
            plan_mass=ones,
        )
        codes = result.plan
    if hard:
        codes = one_hot(xp, xp.argmax(codes, axis=1), scores.shape[1], scores.dtype)
    return codes, result


# Largest spread of the log-kernel, in units of eps, that the scaling domain takes: its
# entries stay normal numbers and the scalings finite (log of the largest float32 and
# float64: 88.7 and 709.8).
_SCALING_RANGE = {4: 80.0, 8: 650.0}


def scaling_codes(scores, eps, n_iter, *, score_range=None):
    """SwAV's fixed-iteration codes in the scaling domain; None where it is unsafe.

    ``E = exp((S - max S) / eps)`` is formed once (the global shift is exact: it cancels
    in the first normalisation), and the iterations are matrix-vector products with
    column and row scalings: one exponential pass in all and no host sync. The
    constant marginals ``1/n`` and ``1/K`` cancel in the row-normalised codes.
    ``score_range`` is ``(low, high)``, bounds of the scores; with
    ``spread = high - low`` the entries of ``E`` lie in ``[exp(-spread / eps), 1]`` and
    the scalings within ``n K exp(spread / eps)`` of one, so this runs only where
    ``spread / eps + log n + log K`` stays below ``_SCALING_RANGE`` for the dtype
    (entries normal numbers, scalings finite); it returns None otherwise, and the
    caller takes the log-domain path.

    NumPy scores run :func:`_numba_scaling_codes`; ``score_range`` may be None there
    (the first pass then finds the range); other namespaces need it.
    """
    xp = get_namespace(scores)
    n, K = scores.shape
    itemsize = 4 if scores.dtype == xp.float32 else 8
    if score_range is not None:
        low, high = score_range
        if not _scaling_safe(high - low, eps, n, K, itemsize):
            return None
    if is_numpy_namespace(xp):
        return _numba_scaling_codes(
            scores, eps, n_iter, None if score_range is None else score_range[1]
        )
    if score_range is None:
        high, low = host_floats(xp, *extrema(xp, scores))
        if not _scaling_safe(high - low, eps, n, K, itemsize):
            return None
    S = stop_gradient(xp, scores)
    E = S * (1.0 / eps)  # a new array: updated in place below
    E -= xp.max(E)
    E = xp.exp(E)
    row_sums = None  # the first row update follows a column update from unit scalings
    v = 1.0 / xp.sum(E, axis=0)
    for it in range(n_iter):
        if it:
            v = 1.0 / ((1.0 / row_sums) @ E)  # column update (prototype loads)
        row_sums = E @ v  # the row update divides by these
    E *= v[None, :]
    E /= row_sums[:, None]
    return E


def _scaling_safe(spread, eps, n, K, itemsize):
    """Whether scores spread over ``spread`` fit the scaling domain (:func:`scaling_codes`)."""
    return spread / eps + math.log(n) + math.log(K) <= _SCALING_RANGE[itemsize]


def _numba_scaling_codes(S, eps, n_iter, high=None):
    """:func:`scaling_codes` on NumPy (:func:`_numba_scaling_codes_and_range` without the
    range): the codes, or None where the scaling domain does not apply."""
    return _numba_scaling_codes_and_range(S, eps, n_iter, high)[0]


def _numba_scaling_codes_and_range(S, eps, n_iter, high=None):
    """:func:`scaling_codes` on NumPy: four passes over the n x K matrix in all.

    The passes SwAV's ``n_iter`` iterations need at the least: each column update needs
    the row scalings of every row, so each iteration reads the whole matrix once, and
    the first column sums need every entry of ``E``.

    1. Read the scores, write ``E`` (a fresh array: the output) and the first column
       sums. With ``high`` (an upper bound of the scores, known from the caller) every
       entry is shifted by it (:func:`._scaling_kernels.exp_column_sums`). Without it
       each row is shifted by its own maximum, and the pass measures the range of the
       scores and whether they are finite while each row is in cache
       (:func:`._scaling_kernels.exp_rows_column_sums`; a per-row shift is exact once
       the first column sums carry the weights ``exp((m_i - max S) / eps)``, since
       every row update normalises its row), so the caller's range check needs no pass.
    2. One read of ``E`` per iteration but the last (row scalings, then the next
       column sums while the row is in cache).
    3. The last iteration reads ``E`` and writes the codes over it: its row
       normalisation is the codes' own (SwAV's codes are per-sample normalised), so
       ``E_ik v_k / sum_j E_ij v_j`` needs only the last column scalings ``v``
       (:func:`._scaling_kernels.row_scaling_pass`).

    Returns ``(codes, (low, high))``: the codes over ``E``, or None where the range is
    too wide for the scaling domain or not finite (then right after the first pass);
    the range measured (NaN for both where the scores hold NaN or an infinity), or
    None when ``high`` was given.
    """
    n, K = S.shape
    parallel = n * K >= _PARALLEL_MIN_SIZE and n_threads() > 1
    n_chunks = max(1, min(n, 4 * n_threads())) if parallel else 1
    row_pass = (
        scaling_kernels.row_scaling_pass if parallel else scaling_kernels.row_scaling_pass_serial
    )
    col_partial = np.empty((n_chunks, K))
    work = np.empty((n_chunks, K), dtype=work_dtype(S.dtype))
    E = np.empty_like(S)
    inv_eps = 1.0 / eps
    if high is not None:
        shifted = (
            scaling_kernels.exp_column_sums if parallel else scaling_kernels.exp_column_sums_serial
        )
        shifted(S, inv_eps, high * inv_eps, E, col_partial, work)
        return _iterate_scalings(E, col_partial.sum(axis=0), col_partial, n_iter, row_pass), None
    exp_pass = (
        scaling_kernels.exp_rows_column_sums
        if parallel
        else scaling_kernels.exp_rows_column_sums_serial
    )
    stats = np.empty((n_chunks, 3))
    exp_pass(
        S,
        S.view(work.dtype),
        scaling_kernels.key_mask(S.dtype),
        inv_eps,
        E,
        col_partial,
        stats,
        work,
    )
    if stats[:, 2].any():
        return None, (math.nan, math.nan)
    high, low = float(stats[:, 0].max()), float(stats[:, 1].min())
    itemsize = 4 if S.dtype == np.float32 else 8
    if not _scaling_safe(high - low, eps, n, K, itemsize):
        return None, (low, high)
    # blocks' sums to the global maximum (an empty block has maximum -inf: weight 0)
    block_weight = np.exp((stats[:, 0] - high) * inv_eps)
    codes = _iterate_scalings(E, block_weight @ col_partial, col_partial, n_iter, row_pass)
    return codes, (low, high)


def _iterate_scalings(E, col_sums, col_partial, n_iter, row_pass):
    """The iterations from the first column sums of ``E``; codes written over ``E``."""
    for it in range(n_iter):
        v = 1.0 / col_sums  # column update (prototype loads)
        row_pass(E, v, col_partial, it == n_iter - 1)  # row update; codes on the last
        col_sums = col_partial.sum(axis=0)
    return E


def one_hot(xp, labels, n_columns, dtype):
    """Rows of the identity picked by ``labels``."""
    columns = xp.arange(n_columns, device=device(labels))
    return xp.astype(labels[:, None] == columns[None, :], dtype)


def log_softmax(xp, z):
    """Row-wise ``log softmax``, stable."""
    shifted = z - xp.max(z, axis=1, keepdims=True)
    return shifted - xp.log(xp.sum(xp.exp(shifted), axis=1, keepdims=True))


def swapped_prediction_loss(scores_a, scores_b, codes_a, codes_b, tau):
    r"""SwAV's swapped prediction loss for two views and its gradient.

    .. math::
        L = -\frac{1}{2n} \sum_i \Big[\sum_k q^b_{ik} \log p^a_{ik}
            + \sum_k q^a_{ik} \log p^b_{ik}\Big],
        \qquad p^v = \operatorname{softmax}(S^v / \tau)

    The codes ``q`` are targets (no gradient flows through them, as in SwAV), so
    ``dL/dS^a = (p^a \cdot \operatorname{rowsum}(q^b) - q^b) / (2 n \tau)``.
    Returns ``(loss, grad_a, grad_b)``: ``loss`` a float for NumPy input, else a 0-d
    array of the input's namespace (on PyTorch carrying the autograd graph of the
    scores); the gradients hold no graph.
    """
    xp = get_namespace(scores_a, scores_b)
    n = scores_a.shape[0]
    codes_a, codes_b = stop_gradient(xp, codes_a), stop_gradient(xp, codes_b)
    log_p_a = log_softmax(xp, scores_a / tau)
    log_p_b = log_softmax(xp, scores_b / tau)
    loss = -(xp.sum(codes_b * log_p_a) + xp.sum(codes_a * log_p_b)) / (2 * n)
    scale = 1.0 / (2 * n * tau)
    p_a, p_b = xp.exp(stop_gradient(xp, log_p_a)), xp.exp(stop_gradient(xp, log_p_b))
    grad_a = (p_a * xp.sum(codes_b, axis=1, keepdims=True) - codes_b) * scale
    grad_b = (p_b * xp.sum(codes_a, axis=1, keepdims=True) - codes_a) * scale
    return (float(loss) if is_numpy_namespace(xp) else loss), grad_a, grad_b
