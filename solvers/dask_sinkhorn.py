r"""Sinkhorn balancing on row-chunked Dask arrays (the Dask backend of :mod:`.sinkhorn`).

The log-domain iteration of :mod:`.sinkhorn`, split by rows. A chunk of the scores (a
block of rows, all K columns; on a ``distributed`` cluster, on a worker) is all a task
sees:

- the **row update** of a chunk needs only its own rows and the K column potentials
  ``g``: each chunk's task runs the NumPy kernel :func:`._sinkhorn_kernels.row_pass`
  on its rows (the row potentials ``f`` are computed and used there, and never leave);
- the **column update** needs the column sums of the plan over all rows: each task
  returns the K partial sums of its rows, and the partials are added in a tree
  (:func:`._dask.tree_reduce`), the Dask form of SwAV's ``all_reduce``. The client
  receives the K sums, updates ``g`` (K numbers) and sends it to the next pass.

So one iteration moves ``2 K`` float64 numbers per chunk (partials up, ``g`` down):
about ``16 K P`` bytes for ``P`` workers, whatever the number of rows. The first column
update (from ``f = 0``) is a tree of K-length log-sum-exps in the same way.

The plan (or the codes) is returned **lazily**: a Dask array, chunked like the scores,
whose chunks are computed from the scores' chunks and the final potentials when the
caller computes them (or stores, reduces, persists them). The n x K plan is therefore
never formed in one piece, nor held at all unless the caller asks; each materialisation
costs one more pass over the scores. The row potentials ``f`` are returned lazily too.
Scores given as a lazy product ``Z @ C.T`` of a Dask ``Z`` (n x d) and NumPy ``C``
(K x d) are recomputed chunk by chunk in every pass (``m x K`` per task at a time);
persist them first (``scores.persist()``) to trade memory for the products.

SwAV's fixed-iteration codes take ``n_iter + 1`` passes in all: the input check's
pass also forms the first column update (:func:`range_and_column_lse`), and the last
row update is the lazy codes pass itself.

Every pass computes each row's exact maximum (no bound carried over from the previous
pass, which would have to be stored per row), and the tasks run the single-threaded
kernels: the parallelism is one task per chunk. The functions take validated Dask arrays
(see :mod:`clusterlab.balanced`) and check nothing.
"""

from __future__ import annotations

import math

import numpy as np

from . import _sinkhorn_kernels as kernels
from ._dask import row_chunked, shared, tree_reduce
from ._fastexp import work_dtype
from .sinkhorn import _IterationRecord, column_update

__all__ = ["extrema", "range_and_column_lse", "sinkhorn", "sinkhorn_codes"]


def extrema(scores):
    """``(min, max)`` of a Dask array as Python floats, in one pass over it."""
    import dask

    # unoptimised, as the passes' graphs: the chunks' keys keep one definition
    low, high = dask.compute(scores.min(), scores.max(), optimize_graph=False)
    return float(low), float(high)


def range_and_column_lse(scores, eps):
    """``(min, max, lse)`` in one pass: the range of the scores (NaN where they hold NaN)
    and ``lse_k = log sum_i exp(S_ik / eps)``, the first column update of SwAV's
    iteration (meaningful only for finite scores)."""
    import dask

    scores = row_chunked(scores, "scores")
    call = dask.delayed(_range_lse, pure=True)
    blocks = scores.to_delayed(optimize_graph=False).reshape(-1).tolist()
    parts = [call(b, 1.0 / eps) for b, m in zip(blocks, scores.chunks[0], strict=True) if m]
    return tree_reduce(parts, _range_lse_combine).compute()


# -- per-chunk tasks (module level: workers import them by name) -----------------------


def _range_lse(S, inv_eps):
    low, high = float(np.min(S)), float(np.max(S))
    if not (math.isfinite(low) and math.isfinite(high)):
        return low, high, np.full(S.shape[1], np.nan)
    return low, high, _column_lse(S, inv_eps)


def _range_lse_combine(parts):
    lows = np.array([p[0] for p in parts])
    highs = np.array([p[1] for p in parts])
    return float(np.min(lows)), float(np.max(highs)), _lse_combine([p[2] for p in parts])


def _as_kernel_input(S):
    if S.dtype not in (np.float32, np.float64):
        S = S.astype(np.float64)
    return np.ascontiguousarray(S)


def _column_lse(S, inv_eps):
    """``log sum_i exp(S_ik / eps)`` over the chunk's rows (K float64)."""
    S = _as_kernel_input(S)
    K = S.shape[1]
    return kernels.column_logsumexp_serial(
        S, inv_eps, np.empty((1, K)), np.empty((1, K), dtype=work_dtype(S.dtype))
    )


def _lse_combine(parts):
    """Log-sum-exp of K-length log-sum-exps (a chunk of no rows gives -inf)."""
    stacked = np.stack(parts)
    top = stacked.max(axis=0)
    safe = np.where(np.isfinite(top), top, 0.0)
    with np.errstate(divide="ignore"):
        return safe + np.log(np.exp(stacked - safe).sum(axis=0))


def _log_rows(log_a, m):
    """The chunk's log row marginals: a float (uniform) or an array of its rows."""
    if np.ndim(log_a) == 0:
        return np.full(m, float(log_a))
    return np.ascontiguousarray(log_a, dtype=np.float64)


def _row_pass(S, log_a, g_scaled, inv_eps, mass=None):
    """One row update of the chunk: ``(f_scaled, col_sum, plan)``.

    ``mass``: None (no plan), ``"a"`` (rows of the plan sum to ``a``) or ``"ones"``.
    """
    S = _as_kernel_input(S)
    m, K = S.shape
    log_a = _log_rows(log_a, m)
    f_scaled = np.empty(m)
    col_partial = np.empty((1, K))
    if mass is None:
        plan_mass, plan = np.empty(0), np.empty((0, K), dtype=S.dtype)
    else:
        plan_mass = np.exp(log_a) if mass == "a" else np.ones(m)
        plan = np.empty_like(S)
    kernels.row_pass_serial(
        S,
        g_scaled,
        inv_eps,
        log_a,
        np.empty(0),
        plan_mass,
        f_scaled,
        col_partial,
        plan,
        np.empty((1, K), dtype=work_dtype(S.dtype)),
    )
    return f_scaled, col_partial[0], plan


def _column_sums(S, log_a, g_scaled, inv_eps):
    """The chunk's partial column sums of the updated plan, and its non-finite rows."""
    f_scaled, col_sum, _ = _row_pass(S, log_a, g_scaled, inv_eps)
    return col_sum, int(np.count_nonzero(~np.isfinite(f_scaled)))


def _plan_chunk(S, log_a, g_scaled, inv_eps, mass):
    return _row_pass(S, log_a, g_scaled, inv_eps, mass)[2]


def _potential_chunk(S, log_a, g_scaled, inv_eps, eps):
    return eps * _row_pass(S, log_a, g_scaled, inv_eps)[0]


def _one_hot_argmax(block, n_columns):
    out = np.zeros((block.shape[0], n_columns), dtype=block.dtype)
    out[np.arange(block.shape[0]), np.argmax(block, axis=1)] = 1
    return out


# -- the driver -------------------------------------------------------------------------


class _DaskLoop(_IterationRecord):
    """Passes over the chunks of ``scores`` (and of ``a``) with the current potentials."""

    def __init__(self, scores, a, b, callback):
        import dask.array as da

        self.scores = row_chunked(scores, "scores")
        n, K = self.scores.shape
        if a is None:
            self.log_a = -math.log(n)  # a float: each chunk makes its own rows
            self.a_blocks = None
        else:
            log_a = da.log(da.asarray(a).astype(np.float64)).rechunk((self.scores.chunks[0],))
            self.log_a = log_a
            self.a_blocks = log_a.to_delayed(optimize_graph=False).reshape(-1).tolist()
        self.log_b = (
            np.full(K, -math.log(K)) if b is None else np.log(np.asarray(b, dtype=np.float64))
        )
        self.b = np.exp(self.log_b)
        blocks = self.scores.to_delayed(optimize_graph=False).reshape(-1).tolist()
        self.blocks = [
            (block, None if self.a_blocks is None else self.a_blocks[i])
            for i, block in enumerate(blocks)
            if self.scores.chunks[0][i] > 0
        ]
        super().__init__(callback)

    def _reduce(self, func, *args, combine=None):
        import dask

        call = dask.delayed(func, pure=True)
        parts = [
            call(block, self.log_a if a_block is None else a_block, *args)
            for block, a_block in self.blocks
        ]
        return tree_reduce(parts, combine).compute()

    def initial_g(self, eps):
        """Column update from ``f = 0`` (SwAV's first normalisation): a tree of
        K-length log-sum-exps."""
        import dask

        call = dask.delayed(_column_lse, pure=True)
        lse = tree_reduce(
            [call(block, 1.0 / eps) for block, _ in self.blocks], _lse_combine
        ).compute()
        return eps * (self.log_b - lse)

    def run(self, eps, g, tol, max_iter):
        """Up to ``max_iter`` iterations at ``eps`` (fewer once the error is at most
        ``tol``); returns ``(g, error)`` of the last finite pass."""
        inv_eps = 1.0 / eps
        if g is None:
            g = self.initial_g(eps)
        state = None
        for it in range(max_iter):
            col_sum, n_bad = self._reduce(_column_sums, shared(g * inv_eps), inv_eps)
            self.n_iter += 1
            if n_bad or not np.all(np.isfinite(col_sum)):
                self.roll_back(state)
                break
            error = float(np.max(np.abs(col_sum / self.b - 1.0)))
            state = (g, error)
            self.accept(error)
            if error <= tol or it == max_iter - 1:
                break
            g_new = column_update(np, g, eps, self.log_b, col_sum)
            if not np.all(np.isfinite(g_new)):
                self.roll_back(state)
                break
            g = g_new
        return self.finish(state, eps)

    def lazy_rows(self, func, g, eps, *extra, n_columns=None, dtype):
        """A Dask array of ``func(chunk, log_a, g / eps, 1 / eps, *extra)`` per chunk."""
        import dask.array as da

        args = (shared(g / eps), 1.0 / eps, *extra)
        out_chunks = (
            (self.scores.chunks[0],) if n_columns is None else (self.scores.chunks[0], (n_columns,))
        )
        drop = {} if n_columns is not None else {"drop_axis": 1}
        meta = np.empty((0,) * len(out_chunks), dtype=dtype)
        if self.a_blocks is None:
            return da.map_blocks(
                func,
                self.scores,
                self.log_a,
                *args,
                dtype=dtype,
                chunks=out_chunks,
                meta=meta,
                **drop,
            )
        log_a = self.log_a[:, None]
        return da.map_blocks(
            lambda S, la, *rest: func(S, la[:, 0], *rest),
            self.scores,
            log_a,
            *args,
            dtype=dtype,
            chunks=out_chunks,
            meta=meta,
            **drop,
        )


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
    plan_mass="a",
    score_range=None,
    callback=None,
):
    """:func:`.sinkhorn.sinkhorn` on a row-chunked Dask array of scores.

    Parameters as there, except: ``a`` is None, or an (n,) array (NumPy or Dask) rechunked
    like the rows of ``scores``; ``b`` and ``init`` are NumPy; ``plan_mass`` is ``"a"`` or
    ``"ones"`` (per-sample codes); ``score_range`` is ``(min, max)`` of the scores when
    known (epsilon scaling needs it; measured here otherwise, one pass).

    Returns
    -------
    SinkhornResult
        ``plan`` a lazy Dask array (n, K) chunked like ``scores`` (None without
        ``return_plan``); ``f`` a lazy Dask array (n,); ``g`` (K,) float64 NumPy. The
        iterations themselves have run (``n_iter``, ``marginal_error``, ``converged`` and
        ``error_history`` are final).
    """
    loop = _DaskLoop(scores, a, b, callback)
    g, error = loop.solve(
        eps,
        None if init is None else np.asarray(init, dtype=np.float64),
        tol=tol,
        max_iter=max_iter,
        n_iter=n_iter,
        eps_scaling=eps_scaling,
        spread=lambda: _spread(loop.scores, score_range),
    )
    plan = None
    if return_plan:
        plan = loop.lazy_rows(
            _plan_chunk,
            g,
            eps,
            plan_mass,
            n_columns=loop.scores.shape[1],
            dtype=np.dtype(loop.scores.dtype),
        )
    f = loop.lazy_rows(_potential_chunk, g, eps, eps, dtype=np.float64)
    return loop.result(plan=plan, f=f, g=g, eps=eps, error=error, tol=tol)


def _spread(scores, score_range):
    low, high = extrema(scores) if score_range is None else score_range
    return high - low


def sinkhorn_codes(
    scores, eps=0.05, n_iter=3, *, hard=False, tol=1e-6, max_iter=1000, column_lse=None
):
    """:func:`.sinkhorn.sinkhorn_codes` on a row-chunked Dask array: ``(codes, result)``.

    ``codes`` is a lazy Dask array chunked like ``scores`` (rows summing to one; one-hot
    rows with ``hard``), ``result`` the :class:`SinkhornResult` of the iterations. Always
    the log-domain iteration (the in-memory scaling-domain shortcut gives the same codes
    to rounding).

    With ``n_iter`` set, the last row update is the lazy codes pass itself, so the
    iterations take ``n_iter - 1`` passes, plus one for the first column update unless
    ``column_lse`` (from :func:`range_and_column_lse`, which the input check runs
    anyway) is given; ``result.marginal_error`` is then NaN (the codes' column loads are
    not measured) and ``result.converged`` False.
    """
    if n_iter is None:
        result = sinkhorn(
            scores, eps, tol=tol, max_iter=max_iter, eps_scaling=False, plan_mass="ones"
        )
        codes = result.plan
    else:
        codes, result = _fixed_codes(scores, eps, n_iter, column_lse)
    if hard:
        K = codes.shape[1]
        codes = codes.map_blocks(_one_hot_argmax, K, dtype=codes.dtype)
    return codes, result


def _fixed_codes(scores, eps, n_iter, column_lse):
    loop = _DaskLoop(scores, None, None, None)
    inv_eps = 1.0 / eps
    if column_lse is None:
        g = loop.initial_g(eps)
    else:
        g = eps * (loop.log_b - np.asarray(column_lse, dtype=np.float64))
    for _ in range(n_iter - 1):
        col_sum, n_bad = loop._reduce(_column_sums, shared(g * inv_eps), inv_eps)
        g_new = column_update(np, g, eps, loop.log_b, col_sum)
        if n_bad or not np.all(np.isfinite(g_new)):
            loop.roll_back(None)
            break
        loop.n_iter += 1
        loop.accept(float(np.max(np.abs(col_sum / loop.b - 1.0))))
        g = g_new
    else:
        loop.n_iter += 1  # the codes pass
    codes = loop.lazy_rows(
        _plan_chunk,
        g,
        eps,
        "ones",
        n_columns=loop.scores.shape[1],
        dtype=np.dtype(loop.scores.dtype),
    )
    # the codes' column loads are not measured: no error, not converged
    result = loop.result(
        plan=codes,
        f=loop.lazy_rows(_potential_chunk, g, eps, eps, dtype=np.float64),
        g=g,
        eps=eps,
        error=math.nan,
        tol=-math.inf,
    )
    return codes, result
