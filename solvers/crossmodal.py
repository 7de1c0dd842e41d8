r"""MGCA's cross-modal prototype head on fixed embeddings: swapped balanced codes.

Two paired views ``X`` (n x d_x) and ``Y`` (n x d_y) with unit rows each have ``K`` unit
prototypes, ``C_x`` and ``C_y``. A view's codes are SwAV's balanced Sinkhorn codes of its
cosine scores (:func:`clusterlab.solvers.sinkhorn.sinkhorn_codes`, fixed iterations, every
prototype the same load, every sample's codes summing to one). The prototypes of a view
are updated from the *other* view's codes (MGCA's swapped assignment)::

    C_x <- rownormalise(Q_y^T X),        C_y <- rownormalise(Q_x^T Y)

the unit prototypes that maximise ``sum_ik Q^y_ik <x_i, c^x_k>`` (and the same with the
views exchanged): prototype ``k`` of view x is the direction of the x-samples that view y
places in ``k``, so that both views index the clusters alike.

One iteration is Gauss-Seidel: ``Q_y -> C_x -> Q_x -> C_y -> Q_y``. Updating both
prototypes from the codes of the previous iterate (Jacobi) splits the iteration into two
chains that never meet (``C_x`` at even steps depends only on ``C_y`` at odd steps and
back): measured on digits halves from two starts, it ends in a 2-cycle whose two states
differ by a squared prototype shift of 7.8 (13.7 for the other start) at every step.

The objective recorded after every iteration is the negative swapped alignment, in
cosine units::

    A = -1/(2n) sum_ik [ Q^y_ik <x_i, c^x_k> + Q^x_ik <y_i, c^y_k> ]

which the prototype step minimises for the codes at hand. The codes come from each view's
own scores, not from ``A``, so ``A`` nearly always decreases but is not guaranteed to;
it ranks the runs of different starts. (MGCA's training loss, the swapped prediction
loss with temperature ``tau``, ranks them worse on digits halves: of 30 runs, its lowest
had an ARI of 0.565, the lowest ``A`` one of 0.66.) With one view (``Y is None``) the
codes of ``X`` update its own prototypes: balanced spherical k-means with SwAV's codes,
and ``A = -1/n sum_ik Q^x_ik <x_i, c^x_k>``.

The functions take validated arrays (unit rows, one namespace, device and dtype) and
check nothing. NumPy runs the Numba Sinkhorn kernels (and BLAS on one thread for small
products); PyTorch, CuPy and other array-API arrays run on their device, one host
synchronisation per iteration (the prototype shift and the objective, fetched together).
"""

from __future__ import annotations

import functools
import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import sinkhorn as _sk
from ._backend import get_namespace, host_floats, is_numpy_namespace, single_threaded_blas
from .balanced_kmeans import renormalised

__all__ = [
    "CrossModalResult",
    "alignment",
    "codes",
    "combined_scores",
    "predictions",
    "prototype_update",
    "single_run",
    "swapped_iteration",
    "transport",
]

# Cosines of unit vectors lie in [-1, 1]: the score range the codes' path choice needs,
# known without a device sync.
_COSINE_RANGE = (-1.0, 1.0)

# Below this many multiply-adds per score matrix (n x (d_x + d_y) x K) the NumPy path
# runs BLAS on one thread: on small products its threads cost more than they save.
_THREADED_BLAS_MIN = 20_000_000


@dataclass(frozen=True)
class CrossModalResult:
    """Outcome of :func:`single_run`.

    Attributes
    ----------
    centers_x, centers_y : arrays of shape (K, d_x) and (K, d_y)
        Unit prototypes of each view (``centers_y`` is None for one view), in the
        namespace, device and dtype of ``X``.
    codes_x, codes_y : arrays of shape (n, K)
        The balanced codes of the final prototypes (``codes_y`` is ``codes_x`` for one
        view).
    objective_history : ndarray of float64
        The negative swapped alignment after every iteration.
    n_iter : int
        Iterations run.
    converged : bool
        Whether the squared prototype shift reached ``tol``.
    """

    centers_x: Any
    centers_y: Any
    codes_x: Any
    codes_y: Any
    objective_history: np.ndarray
    n_iter: int
    converged: bool

    @property
    def objective(self) -> float:
        """The last value of ``objective_history`` (inf when no iterate was finite)."""
        return float(self.objective_history[-1]) if self.objective_history.size else math.inf


def codes(V, centers, eps, n_sinkhorn_iter):
    """SwAV's balanced codes of the unit rows ``V`` against unit ``centers`` (n x K),
    rows summing to one, detached from any autograd graph."""
    scores = V @ centers.T
    return _sk.sinkhorn_codes(scores, eps, n_sinkhorn_iter, score_range=_COSINE_RANGE)[0]


def prototype_update(V, codes_other, previous):
    """``rownormalise(codes_other^T V)``: the unit prototypes of the view ``V`` placed by
    the other view's codes; a prototype with no mass keeps its ``previous`` value."""
    xp = get_namespace(V, codes_other, previous)
    return renormalised(xp, xp.astype(codes_other.T @ V, V.dtype, copy=False), previous)


def swapped_iteration(X, Y, centers_x, centers_y, codes_y, *, eps, n_sinkhorn_iter):
    """One Gauss-Seidel iteration ``Q_y -> C_x -> Q_x -> C_y -> Q_y``.

    ``codes_y`` are the codes of ``Y`` against ``centers_y``. With ``Y`` None (one view)
    the codes of ``X`` update its own prototypes (pass ``codes_y`` = codes of ``X``).
    Returns ``(centers_x, codes_x, centers_y, codes_y)``, the codes belonging to the
    returned prototypes.
    """
    centers_x = prototype_update(X, codes_y, centers_x)
    codes_x = codes(X, centers_x, eps, n_sinkhorn_iter)
    if Y is None:
        return centers_x, codes_x, None, codes_x
    centers_y = prototype_update(Y, codes_x, centers_y)
    codes_y = codes(Y, centers_y, eps, n_sinkhorn_iter)
    return centers_x, codes_x, centers_y, codes_y


def alignment(X, Y, centers_x, centers_y, codes_x, codes_y):
    """The negative swapped alignment ``-1/(2n) sum [Q_y . X C_x^T + Q_x . Y C_y^T]``, a
    0-d array of the namespace (no host sync); one view: ``-1/n sum Q_x . X C_x^T``."""
    xp = get_namespace(X, centers_x)
    total = xp.sum(codes_y * (X @ centers_x.T))
    if Y is None:
        return -total / X.shape[0]
    return -(total + xp.sum(codes_x * (Y @ centers_y.T))) / (2 * X.shape[0])


def single_run(
    X,
    Y,
    centers_x,
    centers_y,
    *,
    eps,
    n_sinkhorn_iter,
    max_iter,
    tol,
    callback=None,
):
    """Swapped-prototype iterations from the given prototypes.

    Parameters
    ----------
    X : array of shape (n, d_x), unit rows
    Y : array of shape (n, d_y), unit rows, or None for one view
        Same namespace, device and dtype as ``X``.
    centers_x, centers_y : arrays of shape (K, d_x) and (K, d_y), unit rows
        Initial prototypes (``centers_y`` None for one view).
    eps, n_sinkhorn_iter : float, int
        Of the codes (MGCA: 0.05 and 3).
    max_iter : int
        Iterations at most.
    tol : float
        Stop once ``||C_x - C_x'||^2 + ||C_y - C_y'||^2 <= tol`` (squared Frobenius
        shift over one iteration).
    callback : callable or None
        Called as ``callback(n_iter, objective)`` after every iteration.

    Returns
    -------
    CrossModalResult
    """
    xp = get_namespace(X, centers_x)
    run = functools.partial(
        _iterate,
        xp,
        X,
        Y,
        centers_x,
        centers_y,
        eps=eps,
        n_sinkhorn_iter=n_sinkhorn_iter,
        max_iter=max_iter,
        tol=tol,
        callback=callback,
    )
    width = X.shape[1] + (0 if Y is None else Y.shape[1])
    if is_numpy_namespace(xp) and X.shape[0] * width * centers_x.shape[0] < _THREADED_BLAS_MIN:
        with single_threaded_blas():  # BLAS threads cost more than such small products
            return run()
    return run()


def _iterate(xp, X, Y, centers_x, centers_y, *, eps, n_sinkhorn_iter, max_iter, tol, callback):
    codes_x = codes(X, centers_x, eps, n_sinkhorn_iter)
    codes_y = codes_x if Y is None else codes(Y, centers_y, eps, n_sinkhorn_iter)
    history, converged, n_iter = [], False, max_iter
    for it in range(1, max_iter + 1):
        new_x, code_x, new_y, code_y = swapped_iteration(
            X, Y, centers_x, centers_y, codes_y, eps=eps, n_sinkhorn_iter=n_sinkhorn_iter
        )
        shift = xp.sum((new_x - centers_x) ** 2)
        if Y is not None:
            shift = shift + xp.sum((new_y - centers_y) ** 2)
        value = alignment(X, Y, new_x, new_y, code_x, code_y)
        shift, value = host_floats(xp, shift, value)  # one sync per iteration
        if not (math.isfinite(shift) and math.isfinite(value)):
            n_iter = it - 1
            warnings.warn(
                f"the swapped-prototype iterate became non-finite at iteration {it}; "
                "returning the last finite iterate.",
                RuntimeWarning,
                stacklevel=3,
            )
            break
        centers_x, centers_y, codes_x, codes_y = new_x, new_y, code_x, code_y
        history.append(value)
        if callback is not None:
            callback(it, value)
        if shift <= tol:
            converged, n_iter = True, it
            break
    return CrossModalResult(
        centers_x=centers_x,
        centers_y=centers_y,
        codes_x=codes_x,
        codes_y=codes_y,
        objective_history=np.asarray(history, dtype=np.float64),
        n_iter=n_iter,
        converged=converged,
    )


def combined_scores(X, Y, centers_x, centers_y):
    """The evidence of the given views: ``X C_x^T``, ``Y C_y^T`` or their sum.

    The sum is the log of the product of the two views' Gibbs kernels,
    ``exp(S_x / t) exp(S_y / t) = exp((S_x + S_y) / t)``, and equals the cosine score of the
    concatenated rows ``[x, y]`` against ``[c_x, c_y]``, times two. ``X`` or ``Y`` may be
    None (not both).
    """
    if Y is None:
        return X @ centers_x.T
    if X is None:
        return Y @ centers_y.T
    return X @ centers_x.T + Y @ centers_y.T


def predictions(S, tau):
    """MGCA's predictions ``softmax(S / tau)``, row by row."""
    xp = get_namespace(S)
    return xp.exp(_sk.log_softmax(xp, S / tau))


def transport(S, eps, *, tol, max_iter):
    """The balanced transport (uniform marginals) of the rows of ``S`` onto its columns,
    to ``tol``: the plan whose rounding gives equal-sized labels. Returns the
    :class:`~clusterlab.solvers.sinkhorn.SinkhornResult`; no warning is issued."""
    return _sk.sinkhorn(S, eps, tol=tol, max_iter=max_iter)
