"""Dense batched Laplacian bound optimizer for the array-API backends (GPU path).

The NumPy path (:mod:`.graph`, :mod:`.bound`, :mod:`.prototypes`) runs Numba kernels on a
sparse block-diagonal affinity. This module solves the same problems - many small ones of
equal size, the tasks of a few-shot run - as dense batched arrays of any array-API
namespace (PyTorch on CPU or CUDA, CuPy, ``array_api_strict``), on the input's device,
with no Python loop over the problems:

- :func:`dense_knn_affinity`: each set's kNN affinity as a dense (T, n, n) array;
- :func:`dense_bound_update`: the bound iterations ``Z <- rowsoftmax(-A + lam W Z)``, each
  problem stopping on its own relative energy change;
- :func:`dense_fit_prototypes`: bound iterations alternated with prototype updates from
  hard labels, each problem stopping on its own when its labels settle.

The definitions are those of the NumPy path, so both give the same numbers up to
rounding: a point is not its own neighbour and ties go to the lower index; weights are
binary or ``exp(-d^2 / (2 sigma^2))`` with ``sigma^2`` the set's mean squared neighbour
distance; ``W`` is symmetrised as ``(W + W^T) / 2``; clamped rows stay one-hot; a problem
stops when ``|E_i - E_{i-1}| <= tol |E_{i-1}|`` and keeps the iterate whose energy was
measured; prototypes and empty-label rule as in :func:`.bound.fit_prototypes`.

Distances, costs, assignments and energies are computed in
:func:`._backend.accumulation_dtype` (float64 where the device has it), as the NumPy path
computes them in float64; points and prototypes keep the input's dtype (their rounding is
that of the NumPy path too). Distances come from matrix products of points centred per
set, so they stay exact to rounding.

Each iteration makes one host synchronisation, to learn how many problems are still
active. When at most half of the problems being iterated are still active, the finished
ones leave the working set (a gather; their results are kept), so problems that need many
iterations do not make the others pay for them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ._backend import (
    accumulation_dtype,
    device,
    get_namespace,
    host_floats,
    topk,
)
from .bound import PrototypeResult
from .graph import WEIGHTS, check_neighbors
from .prototypes import _MEANSHIFT_MAX_ITER, _MEANSHIFT_TOL, PROTOTYPES

__all__ = [
    "DenseBoundResult",
    "DenseGraph",
    "dense_bound_update",
    "dense_fit_prototypes",
    "dense_knn_affinity",
]

# The working set is compacted only when it holds more problems than this.
_MIN_COMPACT = 8


@dataclass(frozen=True)
class DenseGraph:
    """Dense kNN affinities of many point sets.

    Attributes
    ----------
    affinity : array of shape (n_sets, n_points, n_points)
        Symmetric, in the accumulation dtype.
    sigma2 : array of shape (n_sets,)
        Mean squared distance from a point to its neighbours, per set.
    """

    affinity: object
    sigma2: object


@dataclass
class DenseBoundResult:
    """Output of :func:`dense_bound_update`, arrays in the input's namespace.

    Attributes
    ----------
    assignments : array of shape (n_problems, n_points, n_labels)
    energy : array of shape (n_problems,)
        Relaxed energy of the returned assignments.
    n_iter : array of shape (n_problems,)
        Bound iterations applied to each problem.
    converged : array of shape (n_problems,)
        Whether the relative energy change fell below ``tol``.
    """

    assignments: object
    energy: object
    n_iter: object
    converged: object


class _Points:
    """Points in the accumulation dtype (``raw``), centred per set (``X``), with the
    squared norms of the centred points (``sq``): distances by matrix products, exact to
    rounding even far from the origin."""

    def __init__(self, xp, X, work):
        self.xp = xp
        self.raw = xp.astype(X, work, copy=False)
        # A whole-number centre keeps whole-number features whole, so their distances and
        # ties are exact as in the NumPy kernel; it still removes any large offset.
        self.center = xp.round(xp.mean(self.raw, axis=1, keepdims=True))
        self.X = self.raw - self.center
        self.sq = xp.sum(self.X * self.X, axis=2)

    def subset(self, rows):
        out = _Points.__new__(_Points)
        out.xp = self.xp
        out.raw, out.center, out.X, out.sq = (
            _take(self.xp, a, rows) for a in (self.raw, self.center, self.X, self.sq)
        )
        return out

    def _clipped(self, d2):
        return self.xp.maximum(d2, self.xp.zeros((), dtype=d2.dtype, device=device(d2)))

    def distances(self, M):
        """``||x_p - m_l||^2`` of shape (T, n, L) for ``M`` of shape (T, L, d)."""
        xp = self.xp
        Mc = xp.astype(M, self.X.dtype) - self.center
        return self._clipped(
            self.sq[:, :, None]
            - 2.0 * (self.X @ xp.matrix_transpose(Mc))
            + xp.sum(Mc * Mc, axis=2)[:, None, :]
        )

    def pairwise(self):
        """``||x_p - x_q||^2`` of shape (T, n, n)."""
        xp = self.xp
        return self._clipped(
            self.sq[:, :, None] - 2.0 * (self.X @ xp.matrix_transpose(self.X)) + self.sq[:, None, :]
        )


def _take(xp, a, rows):
    """Rows ``rows`` of ``a`` along axis 0 (all of them when ``rows`` is None)."""
    return a if rows is None else xp.take(a, rows, axis=0)


def _put(xp, full, rows, values):
    """``full`` with ``full[rows] = values`` (``rows`` sorted, unique; None: all rows).

    Written with standard calls only (searchsorted, take, where): a new array, nothing
    is updated in place.
    """
    if rows is None:
        return values
    n = full.shape[0]
    positions = xp.arange(n, dtype=rows.dtype, device=device(full))
    slot = xp.clip(xp.searchsorted(rows, positions), 0, rows.shape[0] - 1)
    member = xp.take(rows, slot) == positions
    member = xp.reshape(member, (n,) + (1,) * (full.ndim - 1))
    return xp.where(member, xp.take(values, slot, axis=0), full)


def _rows(xp, mask):
    """Indices of the true entries of a 1-D mask (data-dependent shape: one host sync)."""
    return xp.nonzero(mask)[0]


def _count(xp, *masks):
    """Number of true entries of each mask, in one host transfer."""
    return tuple(int(v) for v in host_floats(xp, *(xp.sum(xp.astype(m, xp.int64)) for m in masks)))


def dense_knn_affinity(X, n_neighbors, *, weights="binary"):
    """Symmetric kNN affinities of many point sets of equal size, as dense arrays.

    The same graph as :func:`.graph.batched_knn_affinity` (a point is not its own
    neighbour, ties between equally distant points go to the lower index), as one dense
    block per set.

    Parameters
    ----------
    X : array of shape (n_sets, n_points, n_features)
        Any array-API namespace; the result is in it, on the same device.
    n_neighbors : int
    weights : {"binary", "gaussian"}

    Returns
    -------
    DenseGraph
    """
    if weights not in WEIGHTS:
        raise ValueError(f"weights must be one of {WEIGHTS}, got {weights!r}.")
    xp = get_namespace(X)
    n = X.shape[1]
    check_neighbors(n_neighbors, n)
    points = _Points(xp, X, accumulation_dtype(xp, device(X)))
    (largest,) = host_floats(xp, 4.0 * xp.max(points.sq))
    if not math.isfinite(largest):
        raise ValueError(
            "Squared distances between points may overflow the floating-point range: "
            "rescale the features."
        )
    d2 = points.pairwise()
    where = device(d2)
    d2 = xp.where(xp.eye(n, dtype=xp.bool, device=where), xp.inf, d2)
    # One more than k: a tie at the k-th distance shows as an equal (k+1)-th one.
    extra = 1 if n_neighbors + 1 < n else 0
    values, _ = topk(xp, -d2, n_neighbors + extra, axis=-1)
    kth = -values[:, :, n_neighbors - 1 : n_neighbors]
    sigma2 = -xp.sum(values[:, :, :n_neighbors], axis=(1, 2)) / (n * n_neighbors)
    neighbours = d2 <= kth
    if extra:
        (ties,) = host_floats(
            xp,
            xp.sum(xp.astype(values[:, :, n_neighbors] == values[:, :, n_neighbors - 1], xp.int32)),
        )
    else:
        ties = 0.0
    if ties:
        # Every point closer than the k-th distance, then the tied ones by index.
        closer = d2 < kth
        tied = d2 == kth
        missing = n_neighbors - xp.sum(xp.astype(closer, xp.int32), axis=2, keepdims=True)
        rank = xp.cumulative_sum(xp.astype(tied, xp.int32), axis=2)
        neighbours = closer | (tied & (rank <= missing))
    if weights == "binary":
        directed = xp.astype(neighbours, d2.dtype)
    else:
        # Identical points give sigma2 = 0: their weights are 1, like binary ones.
        scale = xp.where(sigma2 > 0, 2.0 * sigma2, xp.ones_like(sigma2))
        directed = xp.astype(neighbours, d2.dtype) * xp.exp(-d2 / scale[:, None, None])
    return DenseGraph((directed + xp.matrix_transpose(directed)) * 0.5, sigma2)


class _Clamp:
    """Clamped rows of a batch of problems, as arrays that cost one product to apply:
    ``free`` is 1 on free rows (shape (T, n, 1)), ``one_hot`` the label of clamped rows
    (0 on free rows), ``energy`` each problem's unary cost of its clamped rows (they carry
    no entropy)."""

    def __init__(self, xp, clamp, unary):
        n_labels = unary.shape[2]
        labels = xp.arange(n_labels, dtype=clamp.dtype, device=device(clamp))
        self.free = xp.astype(clamp < 0, unary.dtype)[:, :, None]
        self.one_hot = xp.astype(clamp[:, :, None] == labels, unary.dtype)
        self.energy = xp.sum(self.one_hot * unary, axis=(1, 2))

    def take(self, xp, rows):
        out = _Clamp.__new__(_Clamp)
        out.free, out.one_hot, out.energy = (
            xp.take(a, rows, axis=0) for a in (self.free, self.one_hot, self.energy)
        )
        return out


def _softmax_rows(xp, logits, unary, clamp):
    """``rowsoftmax(logits)`` on free rows, one-hot clamped rows, and the
    unary-plus-entropy energy ``sum_p a_p.z_p + z_p.log z_p`` of each problem.

    As in the Numba kernel, one exponential per entry and one log per row:
    ``log z_pl = s_pl - log sum_k exp(s_pk)`` for the shifted logits ``s``, and
    ``sum_l z_pl (a_pl + log z_pl) = sum_l z_pl (a_pl + s_pl) - log sum_k exp(s_pk)``.
    """
    shifted = logits - xp.max(logits, axis=2, keepdims=True)
    expd = xp.exp(shifted)
    total = xp.sum(expd, axis=2, keepdims=True)
    soft = expd / total
    Z = soft * clamp.free + clamp.one_hot
    rows = xp.sum(soft * (unary + shifted), axis=2, keepdims=True) - xp.log(total)
    return Z, xp.sum(rows * clamp.free, axis=(1, 2)) + clamp.energy


def dense_bound_update(unary, affinity, lam, clamp, *, tol=1e-6, max_iter=1000):
    """Minimise the relaxed Laplacian energy of many problems by bound iterations.

    The dense counterpart of :func:`.bound.bound_update`: the iterates, the energies and
    each problem's stopping iteration are the same.

    Parameters
    ----------
    unary : array of shape (n_problems, n_points, n_labels)
        Costs ``A``, floating point (the iterations run in its dtype).
    affinity : array of shape (n_problems, n_points, n_points) or None
        Symmetric nonnegative affinities; None (or ``lam = 0``) for no pairwise term.
    lam : float
    clamp : integer array of shape (n_problems, n_points)
        Label of each clamped point, -1 for free points.
    tol : float
        Stop a problem when ``|E_i - E_{i-1}| <= tol * |E_{i-1}|``.
    max_iter : int
        Most bound iterations per problem.

    Returns
    -------
    DenseBoundResult
        Starting from ``rowsoftmax(-A)`` with clamped rows one-hot.
    """
    xp = get_namespace(unary)
    n_problems = unary.shape[0]
    where = device(unary)
    pairwise_on = lam > 0 and affinity is not None
    clamped = _Clamp(xp, clamp, unary)
    Z, unary_part = _softmax_rows(xp, -unary, unary, clamped)
    W = affinity if pairwise_on else None
    energy = xp.full((n_problems,), xp.nan, dtype=unary.dtype, device=where)
    n_iter = xp.zeros((n_problems,), dtype=xp.int64, device=where)
    converged = xp.zeros((n_problems,), dtype=xp.bool, device=where)
    active = xp.ones((n_problems,), dtype=xp.bool, device=where)
    rows = None  # the problems of the working set (None: all of them)
    results = None  # (Z, energy, n_iter, converged) of every problem, once compacted
    zero = xp.zeros((), dtype=unary.dtype, device=where)
    for it in range(max_iter + 1):
        if W is not None:
            WZ = W @ Z
            pairwise = xp.sum(Z * WZ, axis=(1, 2))
            logits = lam * WZ - unary
        else:
            pairwise = zero
            logits = -unary
        current = unary_part - 0.5 * lam * pairwise
        if it > 0:
            converged = converged | (active & (xp.abs(current - energy) <= tol * xp.abs(energy)))
        stopping = active & (converged | (it == max_iter))
        energy = xp.where(active, current, energy)
        n_iter = xp.where(active, xp.asarray(it, dtype=xp.int64, device=where), n_iter)
        still = active & ~stopping
        n_still, n_bad = _count(xp, still, active & ~xp.isfinite(current))
        if n_bad:
            raise FloatingPointError(
                f"The relaxed energy became non-finite at bound iteration {it}: lam={lam:g} "
                "is too large for the floating-point range of lam * W Z."
            )
        active = still
        if n_still == 0:
            break
        Z_next, next_part = _softmax_rows(xp, logits, unary, clamped)
        size = active.shape[0]
        if n_still == size:
            Z, unary_part = Z_next, next_part
        else:  # a stopping problem keeps the iterate whose energy was just measured
            Z = xp.where(active[:, None, None], Z_next, Z)
            unary_part = xp.where(active, next_part, unary_part)
        if size > _MIN_COMPACT and 2 * n_still <= size:
            state = (Z, energy, n_iter, converged)
            results = (
                state
                if results is None
                else tuple(
                    _put(xp, full, rows, part) for full, part in zip(results, state, strict=True)
                )
            )
            keep = _rows(xp, active)
            rows = keep if rows is None else xp.take(rows, keep)
            Z, energy, n_iter, converged, active, unary_part, unary = (
                xp.take(a, keep, axis=0)
                for a in (Z, energy, n_iter, converged, active, unary_part, unary)
            )
            clamped = clamped.take(xp, keep)
            if W is not None:
                W = xp.take(W, keep, axis=0)
    state = (Z, energy, n_iter, converged)
    if results is not None:
        state = tuple(_put(xp, full, rows, part) for full, part in zip(results, state, strict=True))
    return DenseBoundResult(*state)


def _label_means(xp, X, labels, point_weights, previous):
    """Weighted mean of each label's points; a label with zero weight keeps ``previous``.

    ``X`` (T, n, d) and ``previous`` (T, L, d) in the accumulation dtype.
    """
    n_labels = previous.shape[1]
    members = xp.astype(
        labels[:, :, None] == xp.arange(n_labels, dtype=labels.dtype, device=device(X)), X.dtype
    )
    if point_weights is not None:
        members = members * point_weights[:, :, None]
    sums = xp.matrix_transpose(members) @ X
    totals = xp.sum(members, axis=1)[:, :, None]
    empty = totals == 0.0
    return xp.where(empty, previous, sums / xp.where(empty, xp.ones_like(totals), totals))


def _kernel(xp, d2, sigma2):
    return xp.exp(-d2 / (2.0 * xp.reshape(sigma2, (-1,) + (1,) * (d2.ndim - 1))))


def _unary_costs(xp, points, M, kind, sigma2):
    d2 = points.distances(M)
    return d2 if kind in ("means", "fixed") else -_kernel(xp, d2, sigma2)


def _mean_shift(xp, X, points, labels, previous, sigma2):
    """Mode of each label's kernel density by mean-shift from its mean, each problem
    stopping on its own (as :func:`.prototypes._mean_shift`)."""
    Xw = points.raw
    M = _label_means(xp, Xw, labels, None, xp.astype(previous, Xw.dtype))
    scale = xp.max(xp.abs(M), axis=(1, 2))
    running = xp.ones((M.shape[0],), dtype=xp.bool, device=device(M))
    for _ in range(_MEANSHIFT_MAX_ITER):
        # The NumPy kernel measures distances to prototypes rounded to the points' dtype.
        d2 = points.distances(xp.astype(M, X.dtype))
        own = xp.take_along_axis(d2, labels[:, :, None], axis=2)[:, :, 0]
        shifted = _label_means(xp, Xw, labels, _kernel(xp, own, sigma2), M)
        step = xp.max(xp.abs(shifted - M), axis=(1, 2))
        M = xp.where(running[:, None, None], shifted, M)
        running = running & (step > _MEANSHIFT_TOL * scale)
        if _count(xp, running)[0] == 0:
            break
    return M


def _update_prototypes(xp, X, points, labels, assignments, previous, kind, sigma2, clamp):
    """New prototypes (in ``X``'s dtype) from hard labels, as
    :func:`.prototypes.update_prototypes`."""
    if kind == "fixed":
        return previous
    if kind == "means":
        Xw = points.raw
        updated = _label_means(xp, Xw, labels, None, xp.astype(previous, Xw.dtype))
    elif kind == "modes":
        updated = _mean_shift(xp, X, points, labels, previous, sigma2)
    else:
        scores = xp.where((clamp >= 0)[:, :, None], -1.0, assignments)
        best = xp.argmax(scores, axis=1)
        found = xp.max(scores, axis=1) >= 0
        n_problems, n_labels = best.shape
        index = xp.broadcast_to(best[:, :, None], (n_problems, n_labels, X.shape[2]))
        members = xp.take_along_axis(X, index, axis=1)
        updated = xp.where(found[:, :, None], members, previous)
    return xp.astype(updated, X.dtype)


def dense_fit_prototypes(
    X,
    affinity,
    lam,
    prototypes,
    *,
    clamp=None,
    kind="means",
    sigma2=None,
    cost_scale=None,
    max_iter=100,
    tol=1e-6,
    max_bound_iter=1000,
):
    """Laplacian-regularised prototype clustering of many problems, as dense arrays.

    The dense counterpart of :func:`.bound.fit_prototypes` (same rounds, same per-problem
    stopping, same empty-label rule). Only the problems still running take part in a
    round.

    Parameters
    ----------
    X : array of shape (n_problems, n_points, n_features)
        Any array-API namespace; every result is in it, on the same device.
    affinity : array of shape (n_problems, n_points, n_points) or None
        Dense affinities (:func:`dense_knn_affinity`); None when ``lam = 0``.
    lam : float
    prototypes : array of shape (n_problems, n_labels, n_features)
        Initial prototypes.
    clamp : integer array of shape (n_problems, n_points), optional
        Labels of clamped points, -1 elsewhere.
    kind : {"means", "modes", "members", "fixed"}
    sigma2 : array of shape (n_problems,), optional
        Kernel bandwidths for "modes" and "members" (positive).
    cost_scale : array of shape (n_problems,), optional
        The unary costs are divided by it (1 by default).
    max_iter : int
        Most rounds.
    tol, max_bound_iter
        Passed to :func:`dense_bound_update`.

    Returns
    -------
    PrototypeResult
        Arrays in ``X``'s namespace: prototypes in ``X``'s dtype, assignments and
        energies in the accumulation dtype, labels and counts int64.
    """
    if kind not in PROTOTYPES:
        raise ValueError(f"kind must be one of {PROTOTYPES}, got {kind!r}.")
    xp = get_namespace(X)
    where = device(X)
    n_problems, n_points, _ = X.shape
    n_labels = prototypes.shape[1]
    work = accumulation_dtype(xp, where)
    if clamp is None:
        clamp = xp.full((n_problems, n_points), -1, dtype=xp.int64, device=where)
    sigma2 = (
        xp.ones((n_problems,), dtype=work, device=where)
        if sigma2 is None
        else xp.astype(sigma2, work)
    )
    inv_scale = (
        xp.ones((n_problems,), dtype=work, device=where)
        if cost_scale is None
        else 1.0 / xp.astype(cost_scale, work)
    )[:, None, None]
    points = _Points(xp, X, work)
    M = xp.astype(prototypes, X.dtype)
    unary = _unary_costs(xp, points, M, kind, sigma2) * inv_scale
    labels = xp.where(clamp >= 0, clamp, xp.argmin(unary, axis=2))
    assignments, _ = _softmax_rows(xp, -unary, unary, _Clamp(xp, clamp, unary))
    converged = xp.zeros((n_problems,), dtype=xp.bool, device=where)
    empty_cluster = xp.zeros_like(converged)
    bound_converged = xp.zeros_like(converged)
    n_iter = xp.zeros((n_problems,), dtype=xp.int64, device=where)
    no_energy = xp.full((n_problems,), xp.nan, dtype=work, device=where)
    label_range = xp.arange(n_labels, dtype=labels.dtype, device=where)
    history = []
    rows = None  # the problems still running (None: all of them)
    for round_ in range(max_iter):
        run_clamp = _take(xp, clamp, rows)
        result = dense_bound_update(
            _take(xp, unary, rows),
            None if affinity is None else _take(xp, affinity, rows),
            lam,
            run_clamp,
            tol=tol,
            max_iter=max_bound_iter,
        )
        Z = result.assignments
        new_labels = xp.argmax(Z, axis=2)
        counts = xp.sum(xp.astype(new_labels[:, :, None] == label_range, xp.int64), axis=1)
        accept = ~xp.any(counts == 0, axis=1)
        old_labels = _take(xp, labels, rows)
        # The first round compares with nearest-prototype labels, not with a bound solve.
        settled = accept & xp.all(new_labels == old_labels, axis=1) & (round_ > 0)
        empty_cluster = _put(xp, empty_cluster, rows, ~accept)
        n_iter = _put(xp, n_iter, rows, _take(xp, n_iter, rows) + xp.astype(accept, xp.int64))
        history.append(_put(xp, no_energy, rows, xp.where(accept, result.energy, xp.nan)))
        assignments = _put(
            xp, assignments, rows, xp.where(accept[:, None, None], Z, _take(xp, assignments, rows))
        )
        bound_converged = _put(
            xp,
            bound_converged,
            rows,
            xp.where(accept, result.converged, _take(xp, bound_converged, rows)),
        )
        labels = _put(xp, labels, rows, xp.where(accept[:, None], new_labels, old_labels))
        running = accept & ~settled
        if kind == "fixed":
            settled = settled | running
            running = xp.zeros_like(running)
        converged = _put(xp, converged, rows, settled)
        n_running = _count(xp, running)[0]
        if n_running == 0:
            break
        keep = _rows(xp, running)
        rows = keep if rows is None else xp.take(rows, keep)
        points_run = points.subset(rows)
        sigma2_run = xp.take(sigma2, rows)
        M_run = _update_prototypes(
            xp,
            xp.take(X, rows, axis=0),
            points_run,
            xp.take(labels, rows, axis=0),
            xp.take(assignments, rows, axis=0),
            xp.take(M, rows, axis=0),
            kind,
            sigma2_run,
            xp.take(clamp, rows, axis=0),
        )
        M = _put(xp, M, rows, M_run)
        unary = _put(
            xp,
            unary,
            rows,
            _unary_costs(xp, points_run, M_run, kind, sigma2_run)
            * xp.take(inv_scale, rows, axis=0),
        )
    history = xp.stack(history) if history else xp.zeros((0, n_problems), dtype=work, device=where)
    return PrototypeResult(
        assignments, labels, M, history, n_iter, converged, empty_cluster, bound_converged
    )
