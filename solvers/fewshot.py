"""Transductive few-shot inference of many tasks at once (Ziko et al., 2020; 2021).

Each task's support samples are clamped to their classes, its queries are assigned by the
Laplacian bound optimizer on a kNN graph over support and queries together, and the class
prototypes are re-estimated from hard labels. The tasks are stacked and solved as one
batched problem, on one of two paths chosen by the input arrays:

- NumPy arrays: Numba kernels on a sparse block-diagonal graph (:mod:`.graph`,
  :func:`.bound.fit_prototypes`), the fast CPU path;
- arrays of any other array-API namespace (PyTorch on CPU or CUDA, CuPy,
  ``array_api_strict``): dense batched arrays of shape (T, n, n) in that namespace, on the
  input's device (:mod:`.dense_bound`), no Python loop over the tasks.

Both paths solve the same problem with the same definitions and stopping rules; the
inputs are validated arrays (see :func:`clusterlab._validation.check_fewshot_tasks`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from ._backend import (
    accumulation_dtype,
    device,
    get_namespace,
    is_array,
    is_numpy_namespace,
    single_threaded_blas,
    to_numpy,
)
from ._feature_kernels import stack_tasks
from .bound import PrototypeResult, fit_prototypes
from .dense_bound import dense_fit_prototypes, dense_knn_affinity
from .graph import batched_knn_affinity

__all__ = ["FewShotSettings", "FewShotSolution", "infer_tasks", "preprocess_tasks"]


@dataclass(frozen=True)
class FewShotSettings:
    """Parameters of :func:`infer_tasks`; see :class:`clusterlab.TransductiveFewShot`.

    ``base_mean`` may be any array of shape (n_features,) or None.
    """

    lam: float = 0.7
    n_neighbors: int = 3
    weights: str = "binary"
    prototypes: str = "means"
    preprocessing: str | None = "cl2n"
    base_mean: object = None
    shift_queries: bool = True
    max_iter: int = 100
    tol: float = 1e-6
    max_bound_iter: int = 1000


@dataclass
class FewShotSolution:
    """Output of :func:`infer_tasks`.

    Attributes
    ----------
    proba : array of shape (n_tasks, n_query, n_way)
        Soft assignments of the queries. NumPy input: float64. Other namespaces: the
        input's dtype, namespace and device.
    result : PrototypeResult
        The solver's per-task output over support and queries (in the input's namespace).
    """

    proba: object
    result: PrototypeResult


def _base_mean(base_mean, n_features, dtype, xp=None, where=None):
    """``base_mean`` as an array of shape (n_features,) (NumPy, or ``xp`` on ``where``)."""
    if (
        is_array(base_mean)
        and not isinstance(base_mean, np.ndarray)
        and (xp is None or get_namespace(base_mean) is not xp)
    ):
        base_mean = to_numpy(base_mean)
    if xp is None:
        center = np.asarray(base_mean, dtype=dtype)
    else:
        center = xp.asarray(base_mean, device=where)
        center = xp.astype(center, dtype)
    if tuple(center.shape) != (n_features,):
        raise ValueError(f"base_mean must have shape ({n_features},), got {tuple(center.shape)}.")
    finite = np.isfinite(center).all() if xp is None else xp.all(xp.isfinite(center))
    if not bool(finite):
        raise ValueError("base_mean holds NaN or infinite values.")
    return center


def preprocess_tasks(support, queries, settings):
    """Support and queries of each task, preprocessed and stacked: (T, s + q, D).

    "cl2n" subtracts ``base_mean`` (each task's mean when None) and scales every sample to
    unit norm, "l2n" only scales, None does neither; ``shift_queries`` then adds
    ``mean(support) - mean(queries)`` to the queries. The result has the input's dtype,
    namespace and device.
    """
    if not is_numpy_namespace(get_namespace(support, queries)):
        return _preprocess_array_api(support, queries, settings)
    n_tasks, _, n_features = support.shape
    if settings.preprocessing != "cl2n":
        center = np.zeros((n_tasks, n_features), dtype=support.dtype)
    elif settings.base_mean is None:
        center = np.concatenate([support, queries], axis=1).mean(axis=1)
    else:
        center = _base_mean(settings.base_mean, n_features, support.dtype)
        center = np.broadcast_to(center, (n_tasks, n_features))
    points = np.empty(
        (n_tasks, support.shape[1] + queries.shape[1], n_features), dtype=support.dtype
    )
    stack_tasks(
        support,
        queries,
        np.ascontiguousarray(center, dtype=support.dtype),
        settings.preprocessing is not None,
        settings.shift_queries,
        points,
    )
    return points


def _preprocess_array_api(support, queries, settings):
    """:func:`preprocess_tasks` in the arrays' namespace, rounded as the Numba kernel
    rounds: the centred features in the input's dtype, norms and shifts computed in the
    accumulation dtype."""
    xp = get_namespace(support, queries)
    n_support, n_features = support.shape[1], support.shape[2]
    dtype, where = support.dtype, device(support)
    work = accumulation_dtype(xp, where)
    points = xp.concat([support, queries], axis=1)
    if settings.preprocessing == "cl2n":
        if settings.base_mean is None:
            center = xp.mean(points, axis=1, keepdims=True)
        else:
            center = _base_mean(settings.base_mean, n_features, dtype, xp, where)
        points = points - center
    if settings.preprocessing is not None:
        wide = xp.astype(points, work)
        norm = xp.sqrt(xp.sum(wide * wide, axis=2, keepdims=True))
        positive = norm > 0
        points = xp.astype(
            xp.where(positive, wide / xp.where(positive, norm, xp.ones_like(norm)), wide), dtype
        )
    if settings.shift_queries:
        wide = xp.astype(points, work)
        offset = xp.mean(wide[:, :n_support, :], axis=1, keepdims=True) - xp.mean(
            wide[:, n_support:, :], axis=1, keepdims=True
        )
        points = xp.concat(
            [points[:, :n_support, :], xp.astype(wide[:, n_support:, :] + offset, dtype)], axis=1
        )
    return points


def _no_edges(n_points):
    return sp.csr_matrix((n_points, n_points))


def infer_tasks(support, codes, queries, n_way, settings):
    """Solve stacked few-shot tasks as one batched problem.

    Parameters
    ----------
    support : array of shape (n_tasks, n_support, n_features)
        float32 or float64; NumPy runs the Numba path, any other array-API namespace the
        dense path on its device.
    codes : integer array of shape (n_tasks, n_support)
        Each support sample's class index in ``[0, n_way)`` (NumPy, or the features'
        namespace); every class has at least one support sample.
    queries : array of shape (n_tasks, n_query, n_features)
        Same namespace, device and dtype as ``support``.
    n_way : int
    settings : FewShotSettings

    Returns
    -------
    FewShotSolution
    """
    if not is_numpy_namespace(get_namespace(support, queries)):
        return _infer_array_api(support, codes, queries, n_way, settings)
    points = preprocess_tasks(support, queries, settings)
    n_support = support.shape[1]
    support = points[:, :n_support, :]
    n_tasks, n_points, _ = points.shape
    clamp = np.concatenate([codes, np.full((n_tasks, queries.shape[1]), -1)], axis=1)
    if settings.lam > 0 or settings.prototypes in ("modes", "members"):
        graph = batched_knn_affinity(points, settings.n_neighbors, weights=settings.weights)
        affinity, sigma2 = graph.affinity, graph.sigma2
    else:  # no pairwise term and no kernel bandwidth: the graph is not needed
        affinity = _no_edges(n_tasks * n_points)
        sigma2 = np.ones(n_tasks)
    one_hot = codes[:, None, :] == np.arange(n_way)[None, :, None]
    with single_threaded_blas():  # many tiny products
        means = (one_hot @ support) / one_hot.sum(axis=2, keepdims=True)
    result = fit_prototypes(
        points,
        affinity,
        settings.lam,
        means,
        clamp=clamp,
        kind=settings.prototypes,
        sigma2=np.where(sigma2 > 0, sigma2, 1.0),
        max_iter=settings.max_iter,
        tol=settings.tol,
        max_bound_iter=settings.max_bound_iter,
    )
    return FewShotSolution(result.assignments[:, n_support:, :], result)


def _infer_array_api(support, codes, queries, n_way, settings):
    """:func:`infer_tasks` as dense batched arrays in the features' namespace."""
    xp = get_namespace(support, queries)
    where = device(support)
    work = accumulation_dtype(xp, where)
    points = preprocess_tasks(support, queries, settings)
    n_tasks, n_support = support.shape[0], support.shape[1]
    if isinstance(codes, np.ndarray):
        codes = xp.asarray(codes, device=where)
    codes = xp.astype(codes, xp.int64)
    free = xp.full((n_tasks, queries.shape[1]), -1, dtype=xp.int64, device=where)
    clamp = xp.concat([codes, free], axis=1)
    if settings.lam > 0 or settings.prototypes in ("modes", "members"):
        graph = dense_knn_affinity(points, settings.n_neighbors, weights=settings.weights)
        affinity = graph.affinity if settings.lam > 0 else None
        sigma2 = graph.sigma2
    else:  # no pairwise term and no kernel bandwidth: the graph is not needed
        affinity = None
        sigma2 = xp.ones((n_tasks,), dtype=work, device=where)
    classes = xp.arange(n_way, dtype=xp.int64, device=where)
    one_hot = xp.astype(codes[:, None, :] == classes[None, :, None], work)
    means = (one_hot @ xp.astype(points[:, :n_support, :], work)) / xp.sum(
        one_hot, axis=2, keepdims=True
    )
    result = dense_fit_prototypes(
        points,
        affinity,
        settings.lam,
        xp.astype(means, points.dtype),
        clamp=clamp,
        kind=settings.prototypes,
        sigma2=xp.where(sigma2 > 0, sigma2, xp.ones_like(sigma2)),
        max_iter=settings.max_iter,
        tol=settings.tol,
        max_bound_iter=settings.max_bound_iter,
    )
    return FewShotSolution(xp.astype(result.assignments[:, n_support:, :], points.dtype), result)
