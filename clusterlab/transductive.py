"""Laplacian-regularised clustering and transductive few-shot inference.

Both estimators minimise, over soft assignments ``Z`` and prototypes ``M``,

    sum_p sum_l z_pl f(x_p, m_l) - lam / 2 sum_{p,q} w_pq z_p.z_q + sum_p z_p.log z_p

with ``W`` a symmetric kNN affinity and labeled points clamped to their label (Ziko et al.,
"Scalable Laplacian K-modes", 2018; "Laplacian regularized few-shot learning", 2020;
"Transductive few-shot learning: clustering is all you need?", 2021). The solver is the
bound optimizer of :mod:`clusterlab.solvers.bound`: every point's assignment is updated in
parallel, then the prototypes are recomputed from the hard labels.

- :class:`LaplacianKMeans` clusters one feature matrix, optionally with some labels.
- :class:`TransductiveFewShot` classifies the query set of a few-shot task jointly, from a
  labeled support set; :meth:`TransductiveFewShot.predict_tasks` runs thousands of tasks
  as one batched problem.
"""

from __future__ import annotations

import warnings
from numbers import Integral, Real

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, ClassifierMixin, ClusterMixin
from sklearn.cluster import KMeans, kmeans_plusplus
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from clusterlab._sklearn_compat import Interval, StrOptions, _fit_context, validate_data
from clusterlab._validation import check_n_clusters, check_partial_labels
from clusterlab.solvers._backend import single_threaded_blas
from clusterlab.solvers._feature_kernels import stack_tasks
from clusterlab.solvers.bound import fit_prototypes
from clusterlab.solvers.graph import WEIGHTS, batched_knn_affinity, check_neighbors, knn_affinity
from clusterlab.solvers.prototypes import PROTOTYPES, squared_distances

__all__ = ["LaplacianKMeans", "TransductiveFewShot"]

_COMMON_CONSTRAINTS = {
    "lam": [Interval(Real, 0, None, closed="left")],
    "n_neighbors": [Interval(Integral, 1, None, closed="left")],
    "weights": [StrOptions(set(WEIGHTS))],
    "max_iter": [Interval(Integral, 1, None, closed="left")],
    "tol": [Interval(Real, 0, None, closed="left")],
    "max_bound_iter": [Interval(Integral, 1, None, closed="left")],
}


def _nearest(X, centers):
    """Index of the nearest centre of each row."""
    return squared_distances(X[None], centers[None])[0].argmin(axis=1)


class LaplacianKMeans(ClusterMixin, BaseEstimator):
    """K-means (or K-modes) with Laplacian regularisation over a kNN graph.

    Neighbouring points are pulled towards the same cluster: the objective adds
    ``-lam / 2 sum_pq w_pq z_p.z_q`` to the soft K-means cost, and the bound optimizer
    updates every point's assignment in parallel (Ziko et al., 2018). Points labeled in
    ``y`` are clamped to their cluster, so the same estimator does semi-supervised
    clustering.

    The squared distances are divided by ``sigma^2``, the mean squared distance between
    neighbours, so ``lam`` and the softness of the assignments do not depend on the scale
    of ``X``.

    Parameters
    ----------
    n_clusters : int, default=8
    lam : float, default=1.0
        Weight of the Laplacian term; 0 gives soft K-means with hard-label prototype updates.
    n_neighbors : int, default=10
        Neighbours per point in the affinity (the point itself not counted).
    weights : {"binary", "gaussian"}, default="binary"
        Affinity weights; Gaussian ones use ``sigma^2`` as the bandwidth.
    prototypes : {"means", "modes", "members"}, default="means"
        "means": K-means costs ``||x - m||^2``. "modes": K-modes costs
        ``-exp(-||x - m||^2 / (2 sigma^2))`` with mean-shift modes. "members": the same
        costs, each prototype the member with the largest assignment.
    init : {"kmeans", "k-means++"} or array-like of shape (n_clusters, n_features), \
default="kmeans"
        Initial prototypes: the centres of one scikit-learn :class:`~sklearn.cluster.KMeans`
        run (k-means++ seeding), or the k-means++ seeds alone. With labels, a labeled
        cluster starts at its labeled points' mean and only the others are initialised
        this way, from the unlabeled points.
    max_iter : int, default=100
        Most rounds of (bound iterations, prototype update).
    tol : float, default=1e-6
        Relative energy change that ends the bound iterations of a round.
    max_bound_iter : int, default=1000
        Most bound iterations per round.
    random_state : int, RandomState instance or None, default=None

    Attributes
    ----------
    labels_ : ndarray of shape (n_samples,)
    cluster_centers_ : ndarray of shape (n_clusters, n_features)
    assignments_ : ndarray of shape (n_samples, n_clusters)
        Soft assignments ``Z`` of the last round.
    energy_history_ : ndarray of shape (n_rounds,)
        Relaxed energy at the end of each round's bound iterations, one value per round
        (``n_iter_`` values).
    n_iter_ : int
        Rounds run.
    converged_ : bool
        Whether the hard labels stopped changing.

    Examples
    --------
    >>> import numpy as np
    >>> from clusterlab.transductive import LaplacianKMeans
    >>> rng = np.random.default_rng(0)
    >>> X = np.vstack([rng.normal(0, 0.3, (20, 2)), rng.normal(3, 0.3, (20, 2))])
    >>> model = LaplacianKMeans(n_clusters=2, random_state=0).fit(X)
    >>> np.bincount(model.labels_).tolist()
    [20, 20]
    """

    _parameter_constraints: dict = {  # noqa: RUF012 - scikit-learn's convention
        "n_clusters": [Interval(Integral, 1, None, closed="left")],
        **_COMMON_CONSTRAINTS,
        "prototypes": [StrOptions({"means", "modes", "members"})],
        "init": [StrOptions({"kmeans", "k-means++"}), "array-like"],
        "random_state": ["random_state"],
    }

    def __init__(self, n_clusters=8, *, lam=1.0, n_neighbors=10, weights="binary",
                 prototypes="means", init="kmeans", max_iter=100, tol=1e-6,
                 max_bound_iter=1000, random_state=None):
        self.n_clusters = n_clusters
        self.lam = lam
        self.n_neighbors = n_neighbors
        self.weights = weights
        self.prototypes = prototypes
        self.init = init
        self.max_iter = max_iter
        self.tol = tol
        self.max_bound_iter = max_bound_iter
        self.random_state = random_state

    def _initial_prototypes(self, X, clamp, rng):
        if not isinstance(self.init, str):
            init = np.asarray(self.init, dtype=X.dtype)
            if init.shape != (self.n_clusters, X.shape[1]):
                raise ValueError(
                    f"init must have shape ({self.n_clusters}, {X.shape[1]}), "
                    f"got {init.shape}."
                )
            return init
        centers = np.empty((self.n_clusters, X.shape[1]), dtype=X.dtype)
        seeded = np.zeros(self.n_clusters, dtype=bool)
        for label in np.unique(clamp[clamp >= 0]):
            centers[label] = X[clamp == label].mean(axis=0)
            seeded[label] = True
        missing = np.flatnonzero(~seeded)
        if missing.size:
            pool = X[clamp < 0]
            if pool.shape[0] < missing.size:
                raise ValueError(
                    f"{missing.size} clusters have no labeled points but only "
                    f"{pool.shape[0]} samples are unlabeled."
                )
            seed = rng.randint(np.iinfo(np.int32).max)
            if self.init == "kmeans":
                kmeans = KMeans(missing.size, n_init=1, random_state=seed).fit(pool)
                centers[missing] = kmeans.cluster_centers_
            else:
                centers[missing], _ = kmeans_plusplus(pool, missing.size, random_state=seed)
        return centers

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Cluster ``X``; ``y`` may give labels in ``[0, n_clusters)``, -1 for unlabeled.

        Returns
        -------
        self
        """
        X = validate_data(self, X, dtype=[np.float64, np.float32], order="C")
        n_samples = X.shape[0]
        check_n_clusters(self.n_clusters, n_samples)
        check_neighbors(self.n_neighbors, n_samples)  # before the labels: a clearer error
        clamp = check_partial_labels(y, n_samples, n_classes=self.n_clusters)
        rng = check_random_state(self.random_state)

        graph = knn_affinity(X, self.n_neighbors, weights=self.weights)
        sigma2 = graph.sigma2
        scale = np.where(sigma2 > 0, sigma2, 1.0)
        centers = self._initial_prototypes(X, clamp, rng)
        result = fit_prototypes(
            X[None], graph.affinity, self.lam, centers[None], clamp=clamp[None],
            kind=self.prototypes, sigma2=scale, cost_scale=scale if self.prototypes == "means"
            else None, max_iter=self.max_iter, tol=self.tol, max_bound_iter=self.max_bound_iter,
        )
        self.labels_ = result.labels[0]
        self.cluster_centers_ = result.prototypes[0]
        self.assignments_ = result.assignments[0]
        self.n_iter_ = int(result.n_iter[0])
        self.energy_history_ = result.energy_history[:self.n_iter_, 0]
        self.converged_ = bool(result.converged[0])
        if result.empty_cluster[0]:
            warnings.warn(
                f"A cluster lost all its points in round {self.n_iter_ + 1}; LaplacianKMeans "
                "stopped with the labels of the previous round. Try a smaller lam or "
                "fewer clusters.",
                ConvergenceWarning,
                stacklevel=3,
            )
        elif not self.converged_:
            warnings.warn(
                f"LaplacianKMeans' labels were still changing after max_iter={self.max_iter} "
                "rounds; increase max_iter.",
                ConvergenceWarning,
                stacklevel=3,
            )
        if not result.bound_converged[0] and not result.empty_cluster[0]:
            warnings.warn(
                f"The last bound iterations stopped at max_bound_iter={self.max_bound_iter} "
                f"before the relative energy change fell below tol={self.tol}; a smaller "
                "lam converges faster.",
                ConvergenceWarning,
                stacklevel=3,
            )
        return self

    def predict(self, X):
        """Nearest prototype of each sample (the unary term alone: new samples have no
        neighbours in the fitted graph)."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=[np.float64, np.float32], order="C", reset=False)
        return _nearest(X, self.cluster_centers_.astype(X.dtype, copy=False))


def _encode_task_labels(support_y):
    """Per-task class codes 0..n_way-1 and the classes, for labels of shape (T, s)."""
    order = np.argsort(support_y, axis=1, kind="stable")
    ordered = np.take_along_axis(support_y, order, axis=1)
    new_class = np.diff(ordered, axis=1, prepend=ordered[:, :1] - 1) != 0
    n_way = new_class.sum(axis=1)
    if np.any(n_way != n_way[0]):
        raise ValueError("Every task must have the same number of classes in its support set.")
    codes = np.empty_like(support_y)
    np.put_along_axis(codes, order, np.cumsum(new_class, axis=1) - 1, axis=1)
    classes = ordered[new_class].reshape(support_y.shape[0], n_way[0])
    return codes, classes


class TransductiveFewShot(ClassifierMixin, BaseEstimator):
    """Few-shot classification that infers all queries of a task jointly.

    The support samples are clamped to their classes, the queries are assigned by the
    bound optimizer on a kNN graph over support and queries together, and the class
    prototypes are re-estimated from the hard labels (Ziko et al., 2020; 2021). The
    baselines of the literature are parameter settings of the same estimator:

    ======================  =====================  =======
    method                  ``prototypes``         ``lam``
    ======================  =====================  =======
    SimpleShot              ``"fixed"``            0
    LaplacianShot           ``"fixed"``            > 0
    K-means, clamped        ``"means"``            0
    Laplacian K-means       ``"means"``            > 0
    Laplacian K-modes       ``"modes"``            > 0
    ======================  =====================  =======

    Parameters
    ----------
    lam : float, default=0.7
        Weight of the Laplacian term (the costs are not rescaled: squared distances of
        the preprocessed features, as in the papers).
    n_neighbors : int, default=3
        Neighbours per point in each task's affinity (the point itself not counted).
    weights : {"binary", "gaussian"}, default="binary"
    prototypes : {"means", "modes", "members", "fixed"}, default="means"
        "fixed" keeps the support means (SimpleShot, LaplacianShot).
    preprocessing : {"cl2n", "l2n"} or None, default="cl2n"
        "cl2n": subtract ``base_mean`` then scale every sample to unit norm; "l2n": unit
        norm only.
    base_mean : array-like of shape (n_features,) or None, default=None
        Mean feature of the base (training) classes, for "cl2n". None uses the mean of
        each task's support and query samples.
    shift_queries : bool, default=True
        Add ``mean(support) - mean(queries)`` to the queries after preprocessing.
    max_iter, tol, max_bound_iter
        As in :class:`LaplacianKMeans`.

    Attributes
    ----------
    classes_ : ndarray of shape (n_way,)
    support_ : ndarray of shape (n_support, n_features)
    n_iter_ : int
        Rounds run by the last single-task prediction.

    Examples
    --------
    >>> import numpy as np
    >>> from clusterlab.transductive import TransductiveFewShot
    >>> rng = np.random.default_rng(0)
    >>> centers = np.eye(3) * 4
    >>> support = centers + rng.normal(0, 0.5, (3, 3))
    >>> queries = np.repeat(centers, 5, axis=0) + rng.normal(0, 0.5, (15, 3))
    >>> model = TransductiveFewShot(preprocessing=None).fit(support, [7, 8, 9])
    >>> model.predict(queries).tolist() == [7] * 5 + [8] * 5 + [9] * 5
    True
    """

    _parameter_constraints: dict = {  # noqa: RUF012 - scikit-learn's convention
        **_COMMON_CONSTRAINTS,
        "prototypes": [StrOptions(set(PROTOTYPES))],
        "preprocessing": [StrOptions({"cl2n", "l2n"}), None],
        "base_mean": ["array-like", None],
        "shift_queries": ["boolean"],
    }

    def __init__(self, *, lam=0.7, n_neighbors=3, weights="binary", prototypes="means",
                 preprocessing="cl2n", base_mean=None, shift_queries=True, max_iter=100,
                 tol=1e-6, max_bound_iter=1000):
        self.lam = lam
        self.n_neighbors = n_neighbors
        self.weights = weights
        self.prototypes = prototypes
        self.preprocessing = preprocessing
        self.base_mean = base_mean
        self.shift_queries = shift_queries
        self.max_iter = max_iter
        self.tol = tol
        self.max_bound_iter = max_bound_iter

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y):
        """Store the support set ``X`` with its class labels ``y`` (integers; every support
        sample is labeled, so -1 is an ordinary class)."""
        X = validate_data(self, X, dtype=[np.float64, np.float32], order="C")
        y = _check_class_labels(y, (X.shape[0],))
        self.classes_, codes = np.unique(y, return_inverse=True)
        self.support_ = X
        self._support_codes = codes
        return self

    def _preprocess(self, support, queries):
        """Support and queries of each task, preprocessed and stacked: (T, s + q, D)."""
        n_tasks, _, n_features = support.shape
        if self.preprocessing != "cl2n":
            center = np.zeros((n_tasks, n_features), dtype=support.dtype)
        elif self.base_mean is None:
            center = np.concatenate([support, queries], axis=1).mean(axis=1)
        else:
            center = np.asarray(self.base_mean, dtype=support.dtype)
            if center.shape != (n_features,):
                raise ValueError(
                    f"base_mean must have shape ({n_features},), got {center.shape}."
                )
            center = np.broadcast_to(center, (n_tasks, n_features))
        points = np.empty((n_tasks, support.shape[1] + queries.shape[1], n_features),
                          dtype=support.dtype)
        stack_tasks(support, queries, np.ascontiguousarray(center, dtype=support.dtype),
                    self.preprocessing is not None, self.shift_queries, points)
        return points

    def _infer(self, support, codes, queries, n_way):
        """Soft assignments (T, n_query, n_way) and the solver result for stacked tasks."""
        points = self._preprocess(support, queries)
        n_support = support.shape[1]
        support = points[:, :n_support]
        n_tasks, n_points, _ = points.shape
        clamp = np.concatenate([codes, np.full((n_tasks, queries.shape[1]), -1)], axis=1)
        if self.lam > 0 or self.prototypes in ("modes", "members"):
            graph = batched_knn_affinity(points, self.n_neighbors, weights=self.weights)
            affinity, sigma2 = graph.affinity, graph.sigma2
        else:  # no pairwise term and no kernel bandwidth: the graph is not needed
            affinity = _no_edges(n_tasks * n_points)
            sigma2 = np.ones(n_tasks)
        one_hot = codes[:, None, :] == np.arange(n_way)[None, :, None]
        with single_threaded_blas():  # many tiny products
            means = (one_hot @ support) / one_hot.sum(axis=2, keepdims=True)
        result = fit_prototypes(
            points, affinity, self.lam, means, clamp=clamp, kind=self.prototypes,
            sigma2=np.where(sigma2 > 0, sigma2, 1.0), max_iter=self.max_iter, tol=self.tol,
            max_bound_iter=self.max_bound_iter,
        )
        return result.assignments[:, n_support:], result

    def _warn_unsettled(self, results):
        n_tasks = sum(result.converged.shape[0] for result in results)
        unsettled = sum(np.count_nonzero(~result.converged) for result in results)
        capped = sum(np.count_nonzero(~result.bound_converged) for result in results)
        if unsettled or capped:
            warnings.warn(
                f"Of {n_tasks} tasks, {unsettled} stopped before their labels settled "
                f"(max_iter={self.max_iter}, or a class lost all its points) and {capped} "
                f"ended their last bound iterations at max_bound_iter={self.max_bound_iter}.",
                ConvergenceWarning,
                stacklevel=3,
            )

    def predict_proba(self, X):
        """Soft class assignments of the queries ``X``, inferred jointly."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=[np.float64, np.float32], order="C", reset=False)
        X = X.astype(self.support_.dtype, copy=False)  # one dtype for the stacked task
        proba, result = self._infer(self.support_[None], self._support_codes[None], X[None],
                                    self.classes_.shape[0])
        self._warn_unsettled([result])
        self.n_iter_ = int(result.n_iter[0])
        return proba[0]

    def predict(self, X):
        """Classes of the queries ``X``, inferred jointly."""
        return self.classes_[self.predict_proba(X).argmax(axis=1)]

    def predict_proba_tasks(self, X_support, y_support, X_query):
        """Soft assignments for many tasks at once, as one batched problem.

        Parameters
        ----------
        X_support : array-like of shape (n_tasks, n_support, n_features)
        y_support : array-like of shape (n_tasks, n_support)
            Class labels; every task has the same number of classes.
        X_query : array-like of shape (n_tasks, n_query, n_features)

        Returns
        -------
        proba : ndarray of shape (n_tasks, n_query, n_way)
            Column ``j`` of task ``t`` is class ``classes[t, j]``.
        classes : ndarray of shape (n_tasks, n_way)
            Each task's classes, sorted.
        """
        self._validate_params()
        support, y_support, queries = _check_tasks(X_support, y_support, X_query)
        codes, classes = _encode_task_labels(y_support)
        # Tasks are independent: solving them in chunks keeps the working set in cache.
        chunks = [
            self._infer(support[part], codes[part], queries[part], classes.shape[1])
            for part in _chunks(support.shape[0], support.shape[1] + queries.shape[1])
        ]
        self._warn_unsettled([result for _, result in chunks])
        return np.concatenate([proba for proba, _ in chunks]), classes

    def predict_tasks(self, X_support, y_support, X_query):
        """Predicted classes of shape (n_tasks, n_query) for many tasks at once.

        Equal to calling ``fit(X_support[t], y_support[t]).predict(X_query[t])`` for each
        task ``t``, computed as one batched problem.
        """
        proba, classes = self.predict_proba_tasks(X_support, y_support, X_query)
        return np.take_along_axis(classes, proba.argmax(axis=2), axis=1)


# Points (support + queries) per chunk of tasks solved as one batched problem.
_CHUNK_POINTS = 50_000


def _chunks(n_tasks, points_per_task):
    size = max(1, _CHUNK_POINTS // points_per_task)
    return [slice(start, start + size) for start in range(0, n_tasks, size)]


def _no_edges(n_points):
    return sp.csr_matrix((n_points, n_points))


def _check_tasks(X_support, y_support, X_query):
    support = np.asarray(X_support)
    queries = np.asarray(X_query)
    y_support = np.asarray(y_support)
    for name, array in (("X_support", support), ("X_query", queries)):
        if array.ndim != 3:
            raise ValueError(
                f"{name} must have shape (n_tasks, n_samples, n_features), got {array.shape}."
            )
        if not np.issubdtype(array.dtype, np.number) or not np.all(np.isfinite(array)):
            raise ValueError(f"{name} must hold finite real numbers.")
    if support.shape[0] != queries.shape[0] or support.shape[2] != queries.shape[2]:
        raise ValueError(
            f"X_support {support.shape} and X_query {queries.shape} disagree on the number "
            "of tasks or features."
        )
    y_support = _check_class_labels(y_support, support.shape[:2])
    dtype = np.float32 if support.dtype == np.float32 else np.float64
    return support.astype(dtype, copy=False), y_support, queries.astype(dtype, copy=False)


def _check_class_labels(y, shape):
    """Integer class labels (any values; whole-number floats accepted) of the given shape.

    Every support sample is labeled, so -1 is an ordinary class here.
    """
    y = np.asarray(y)
    if y.dtype.kind == "f" and np.all(np.isfinite(y)) and np.all(y == np.round(y)):
        y = y.astype(np.int64)
    if y.shape != shape or y.dtype.kind not in "iu":
        raise ValueError(
            f"y_support must hold integer class labels of shape {shape}, got "
            f"{y.dtype} {y.shape}."
        )
    return y.astype(np.int64, copy=False)
