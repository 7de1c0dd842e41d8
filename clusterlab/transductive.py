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
  as one batched problem, on NumPy arrays (Numba kernels, sparse graphs) or on arrays of
  any array-API namespace and device (dense batched arrays, :mod:`.solvers.dense_bound`).
"""

from __future__ import annotations

import warnings
from dataclasses import replace
from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, ClusterMixin
from sklearn.cluster import KMeans, kmeans_plusplus
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from clusterlab._labels import class_labels, partial_labels
from clusterlab._scaling import common_scale, normalise_scale
from clusterlab._sklearn_compat import Interval, StrOptions, _fit_context, validate_data
from clusterlab._validation import (
    check_count,
    check_fewshot_tasks,
    check_float_matrix,
    check_n_clusters,
    encode_task_labels,
)
from clusterlab.solvers._backend import (
    accumulation_dtype,
    device,
    get_namespace,
    host_floats,
    is_array,
    is_other_array,
    nearest_centers,
    to_namespace,
    to_numpy,
)
from clusterlab.solvers._dask_map import is_dask_array, map_tasks
from clusterlab.solvers.bound import fit_prototypes
from clusterlab.solvers.fewshot import FewShotSettings, infer_tasks
from clusterlab.solvers.fewshot_calibration import SIMPLESHOT, episode_scores
from clusterlab.solvers.graph import WEIGHTS, check_neighbors, knn_affinity
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

    Scale: the fit runs on ``X`` centred and divided by a power of two (an exact
    operation; :func:`clusterlab._scaling.normalise_scale`), so ``X * s`` gives the
    partition of ``X`` for any ``s`` from 1e-200 to 1e200. ``cluster_centers_`` (and an
    array ``init``) are in ``X``'s units. Predictions map new samples into the same frame.

    Labels (:mod:`clusterlab._labels`): ``y`` holds class labels of any one kind
    (integers, strings, ...), -1 for unlabeled samples. Labeled classes keep their
    labels (sorted in ``classes_``); the other clusters get new labels, integers counting
    up from one past the largest class (0, 1, ... without labels), or ``"new_0"``,
    ``"new_1"``, ... for string classes. More labeled classes than ``n_clusters`` give
    one cluster per class; with every sample labeled there is nothing to discover and
    the model has one cluster per class.

    Parameters
    ----------
    n_clusters : int, default=8
        Number of clusters; more when ``y`` labels more classes (see "Labels").
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
        this way, from the unlabeled points. An array gives one row per fitted cluster,
        in the order of ``cluster_labels_`` (the labeled classes, sorted, first).
    max_iter : int, default=100
        Most rounds of (bound iterations, prototype update).
    tol : float, default=1e-6
        Relative energy change that ends the bound iterations of a round.
    max_bound_iter : int, default=1000
        Most bound iterations per round.
    random_state : int, RandomState instance or None, default=None

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        The classes labeled in ``y``, sorted (empty without labels).
    cluster_labels_ : ndarray of shape (n_clusters_fitted,)
        The label of each cluster: ``classes_`` first, then the new labels ("Labels").
        ``n_clusters_fitted = max(n_clusters, n_classes)``, or ``n_classes`` when every
        sample is labeled.
    labels_ : array of shape (n_samples,)
        Values of ``cluster_labels_`` (int64 for integer classes); in the namespace and
        on the device of the ``X`` given to :meth:`fit` (NumPy for array-likes and for
        string labels), as are ``cluster_centers_`` and ``assignments_``.
    cluster_centers_ : array of shape (n_clusters_fitted, n_features)
        Row ``k`` is the centre of the cluster labeled ``cluster_labels_[k]``.
    assignments_ : array of shape (n_samples, n_clusters_fitted)
        Soft assignments ``Z`` of the last round; columns follow ``cluster_labels_``.
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

    def __init__(
        self,
        n_clusters=8,
        *,
        lam=1.0,
        n_neighbors=10,
        weights="binary",
        prototypes="means",
        init="kmeans",
        max_iter=100,
        tol=1e-6,
        max_bound_iter=1000,
        random_state=None,
    ):
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

    def _initial_prototypes(self, X, clamp, n_clusters, rng):
        if not isinstance(self.init, str):
            init = np.asarray(
                to_numpy(self.init) if is_array(self.init) else self.init, dtype=X.dtype
            )
            if init.shape != (n_clusters, X.shape[1]):
                grown = (
                    ""
                    if n_clusters == self.n_clusters
                    else (f" (one row per cluster: y labels {n_clusters} classes)")
                )
                raise ValueError(
                    f"init must have shape ({n_clusters}, {X.shape[1]}){grown}, got {init.shape}."
                )
            if not np.all(np.isfinite(init)):
                raise ValueError("init holds NaN or infinite values.")
            return self._frame.to_frame(init)  # given in X's units
        centers = np.empty((n_clusters, X.shape[1]), dtype=X.dtype)
        seeded = np.zeros(n_clusters, dtype=bool)
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
        """Cluster ``X``; ``y`` may give class labels, -1 for unlabeled samples.

        The fit runs on the CPU (a sparse kNN graph from scikit-learn and the Numba
        kernels). ``X`` may be an array of any array-API namespace (a PyTorch tensor on
        any device, a CuPy array...): it is copied to the host once, fitted, and
        ``labels_``, ``cluster_centers_`` and ``assignments_`` come back in its namespace
        and on its device (``energy_history_`` stays a NumPy array).

        Parameters
        ----------
        X : array of shape (n_samples, n_features)
            Array-like, or an array of any array-API namespace.
        y : array of shape (n_samples,) or None, default=None
            Partial labels of any one kind (integers, strings, ...), -1 for unlabeled
            samples (NumPy-compatible or any array); see "Labels" in the class docstring.

        Returns
        -------
        self
        """
        namespace = None
        if is_other_array(X):
            namespace = (get_namespace(X), device(X))
            X = to_numpy(X)
        X = validate_data(self, X, dtype=[np.float64, np.float32], order="C")
        n_samples = X.shape[0]
        check_n_clusters(self.n_clusters, n_samples)
        check_neighbors(self.n_neighbors, n_samples)  # before the labels: a clearer error
        partial = partial_labels(y, n_samples)
        n_clusters = partial.n_clusters(self.n_clusters)
        clamp = partial.codes  # class i is cluster i; the new clusters follow
        rng = check_random_state(self.random_state)
        # fit in X's normalised frame (clusterlab._scaling): centred and divided by a
        # power of two, so X * 1e-200 or X * 1e200 gives X's partition
        dtype = X.dtype
        X, self._frame = normalise_scale(X)

        graph = knn_affinity(X, self.n_neighbors, weights=self.weights)
        sigma2 = graph.sigma2
        scale = np.where(sigma2 > 0, sigma2, 1.0)
        centers = self._initial_prototypes(X, clamp, n_clusters, rng)
        result = fit_prototypes(
            X[None],
            graph.affinity,
            self.lam,
            centers[None],
            clamp=clamp[None],
            kind=self.prototypes,
            sigma2=scale,
            cost_scale=scale if self.prototypes == "means" else None,
            max_iter=self.max_iter,
            tol=self.tol,
            max_bound_iter=self.max_bound_iter,
        )
        self.classes_ = partial.classes
        self.cluster_labels_ = partial.output_labels(partial.cluster_classes(n_clusters))
        self.labels_ = self.cluster_labels_[result.labels[0]]
        self._centers = result.prototypes[0]  # in the frame, for predict
        self.cluster_centers_ = self._frame.points(self._centers).astype(dtype, copy=False)
        self.assignments_ = result.assignments[0]
        self.n_iter_ = int(result.n_iter[0])
        self.energy_history_ = result.energy_history[: self.n_iter_, 0]
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
        if namespace is not None:
            xp, where = namespace
            work = accumulation_dtype(xp, where)
            if self.labels_.dtype.kind in "iu":  # string labels stay NumPy
                self.labels_ = xp.asarray(self.labels_, device=where)
            self.cluster_centers_ = xp.asarray(self.cluster_centers_, device=where)
            self.assignments_ = xp.asarray(
                self.assignments_.astype(np.float32 if work == xp.float32 else np.float64),
                device=where,
            )
        return self

    def predict(self, X):
        """Nearest prototype of each sample (the unary term alone: new samples have no
        neighbours in the fitted graph).

        Parameters
        ----------
        X : array of shape (n_samples, n_features)
            Array-like (computed with NumPy), or an array of any array-API namespace:
            computed there, on its device, with the fitted centres moved to it.

        Returns
        -------
        labels : array of shape (n_samples,)
            Values of ``cluster_labels_``: NumPy for NumPy-compatible input, else int64
            in ``X``'s namespace and on its device (string labels: a NumPy array).
        """
        check_is_fitted(self)
        if is_other_array(X):
            X = check_float_matrix(X)
            if X.shape[1] != self.n_features_in_:
                raise ValueError(
                    f"X has {X.shape[1]} features, but LaplacianKMeans is expecting "
                    f"{self.n_features_in_} features as input."
                )
            xp = get_namespace(X)
            centers = xp.asarray(self._centers, device=device(X))
            nearest = nearest_centers(xp, self._frame.to_frame(X), xp.astype(centers, X.dtype))
            if self.cluster_labels_.dtype.kind not in "iu":  # strings cannot live on a device
                return self.cluster_labels_[to_numpy(nearest)]
            labels = xp.asarray(self.cluster_labels_, dtype=xp.int64, device=device(X))
            return xp.take(labels, nearest, axis=0)
        X = validate_data(self, X, dtype=[np.float64, np.float32], order="C", reset=False)
        nearest = _nearest(self._frame.to_frame(X), self._centers.astype(X.dtype, copy=False))
        return self.cluster_labels_[nearest]


# Values of lam that TransductiveFewShot.calibrate tries by default; 0 is kept (with the
# estimator's prototypes: K-means with clamped support for "means").
CALIBRATION_LAMS = (0.0, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0, 1.5)


def _check_candidates(candidates):
    """Sorted distinct candidate values of lam, each finite and >= 0."""
    try:
        values = np.asarray(candidates, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"candidates must be a sequence of numbers, got {candidates!r}.") from None
    if values.ndim != 1 or values.size == 0:
        raise ValueError(f"candidates must be a non-empty 1-D sequence, got {candidates!r}.")
    if not np.all(np.isfinite(values)) or np.any(values < 0):
        raise ValueError(f"candidates must be finite and >= 0, got {candidates!r}.")
    return np.unique(values)


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

    Arrays: :meth:`fit`, :meth:`predict` and :meth:`predict_proba` (one task) take
    NumPy-compatible arrays. :meth:`predict_tasks` and :meth:`predict_proba_tasks` (many
    tasks) also take PyTorch tensors (CPU or CUDA), CuPy arrays and other array-API
    arrays: every task is then solved as dense batched arrays in that namespace, on that
    device (:mod:`clusterlab.solvers.fewshot`), every prototype kind included, with the
    same result as the NumPy path up to rounding. On a CPU the NumPy path (sparse graphs,
    Numba kernels) is the faster one; the dense path is for data already on a GPU.

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
        norm only. With either, the result does not depend on the unit of the features:
        the support, queries and ``base_mean`` are divided by one power of two (exact)
        before the norms are taken, so features at 1e-200 or 1e200 classify as at 1.
        With None the costs are raw squared distances (``lam`` in their units), and
        features whose squared distances leave the float range are refused
        (``ValueError``).
    base_mean : array of shape (n_features,) or None, default=None
        Mean feature of the base (training) classes, for "cl2n" (any array: it is moved
        to the features' namespace and device). None uses the mean of each task's
        support and query samples.
    shift_queries : bool, default=True
        Add ``mean(support) - mean(queries)`` to the queries after preprocessing.
    max_iter, tol, max_bound_iter
        As in :class:`LaplacianKMeans`.

    Attributes
    ----------
    classes_ : ndarray of shape (n_way,)
        The classes of the support set, sorted: int64 for integer labels, else in the
        labels' dtype (strings, objects); predictions are values of ``classes_``.
    support_ : ndarray of shape (n_support, n_features)
    lam_, prototypes_, shift_queries_ : float, str, bool
        Set by :meth:`calibrate`: the setting kept (SimpleShot is ``"fixed"``, 0,
        False); predictions then use them in place of the parameters.
    base_mean_ : ndarray of shape (n_features,) or None
        Set by :meth:`calibrate`: the centring mean for "cl2n" (the ``base_mean``
        parameter, or the mean of the base samples when it is None); None for other
        preprocessing.
    calibration_results_ : dict of ndarrays
        Set by :meth:`calibrate`, one entry per setting scored (SimpleShot first, then
        the candidate ``lam`` values, sorted): ``"lam"``, ``"prototypes"``,
        ``"shift_queries"``, ``"mean_accuracy"`` (mean query accuracy over the
        episodes), ``"ci95"`` (its 95% half-width ``1.96 std / sqrt(n_tasks)``),
        ``"n_unsettled"`` (episodes whose labels had not settled when the solver
        stopped) and ``"selected"`` (True for the setting kept).

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

    def __init__(
        self,
        *,
        lam=0.7,
        n_neighbors=3,
        weights="binary",
        prototypes="means",
        preprocessing="cl2n",
        base_mean=None,
        shift_queries=True,
        max_iter=100,
        tol=1e-6,
        max_bound_iter=1000,
    ):
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
        """Store the support set of one task.

        Parameters
        ----------
        X : array-like of shape (n_support, n_features)
            NumPy-compatible, or an array of another library (a PyTorch tensor on the CPU
            or a GPU, a CuPy array...), kept as it is: the queries are then classified on
            its device.
        y : array-like of shape (n_support,)
            Class labels of any one kind (integers, strings, ...; every support sample is
            labeled, so -1 is an ordinary class here); whole-number floats are read as
            integers, other floats are refused ("Unknown label type"). An array of any
            library is copied to the host.

        Returns
        -------
        self
        """
        if is_other_array(X):
            X = check_float_matrix(X, "X", min_rows=1)
            self.n_features_in_ = X.shape[1]
        else:
            X = validate_data(self, X, dtype=[np.float64, np.float32], order="C")
        self.classes_, codes = class_labels(y, X.shape[0])
        self.support_ = X
        self._support_codes = codes
        return self

    @_fit_context(prefer_skip_nested_validation=True)
    def calibrate(
        self,
        X_base,
        y_base,
        *,
        n_way,
        n_shot,
        n_query=15,
        n_tasks=1000,
        candidates=CALIBRATION_LAMS,
        random_state=None,
    ):
        """Choose ``lam`` (and the centring mean) on few-shot episodes of base classes.

        Draws ``n_tasks`` episodes (``n_way`` classes, ``n_shot`` support and ``n_query``
        query samples per class) from ``X_base, y_base`` with
        :func:`clusterlab.datasets.fewshot_tasks`, and scores on the same episodes, by
        mean query accuracy:

        - every ``lam`` in ``candidates``, with this estimator's other parameters
          (``prototypes``, ``shift_queries``, ``n_neighbors``...);
        - SimpleShot: the nearest support mean, i.e. ``prototypes="fixed"``, ``lam=0``,
          ``shift_queries=False``.

        The best one (ties: SimpleShot, then the smaller ``lam``) is kept in ``lam_``,
        ``prototypes_`` and ``shift_queries_``; so the calibrated setting is never worse
        than SimpleShot on these episodes. With ``preprocessing="cl2n"``, ``base_mean_``
        is the ``base_mean`` parameter, or, when it is None, the mean of ``X_base``: the
        episodes are centred on it, and so are the tasks predicted afterwards.

        From then on, :meth:`predict`, :meth:`predict_proba`, :meth:`predict_tasks` and
        :meth:`predict_proba_tasks` use ``lam_``, ``prototypes_``, ``shift_queries_`` and
        ``base_mean_`` in place of the parameters ``lam``, ``prototypes``,
        ``shift_queries`` and ``base_mean`` (later changes to those four parameters are
        ignored until the next ``calibrate``; the other parameters still apply).
        :meth:`fit` keeps the calibration, and :func:`sklearn.base.clone` drops it, as it
        drops every fitted attribute.

        Calibrate on classes that do not appear in the tasks to be predicted: the base
        classes the features were learned on, or held-out validation classes. The
        episodes of all candidates are solved together, chunk by chunk, with the
        preprocessing and kNN graphs shared (:mod:`clusterlab.solvers.fewshot_calibration`),
        on the CPU: an ``X_base`` of another library (a PyTorch tensor on a GPU...) is
        copied to the host once; ``base_mean_`` is a NumPy array, moved to the features'
        device at prediction time.

        Parameters
        ----------
        X_base : array of shape (n_samples, n_features)
            Features of the base samples.
        y_base : array-like of shape (n_samples,)
            Their classes, read as :meth:`fit` reads labels (integers, strings...); at
            least ``n_way`` classes must have ``n_shot + n_query`` samples or more.
        n_way : int
            Classes per episode, at least 2; that of the tasks to be predicted.
        n_shot : int
            Support samples per class; that of the tasks to be predicted.
        n_query : int, default=15
            Query samples per class in each episode.
        n_tasks : int, default=1000
            Episodes drawn.
        candidates : sequence of float, default=(0, 0.1, 0.2, 0.3, 0.5, 0.7, 1, 1.5)
            Values of ``lam`` tried (finite, >= 0; duplicates are scored once).
        random_state : int, RandomState instance or None, default=None
            Seeds the episode draw.

        Returns
        -------
        self

        Examples
        --------
        >>> from clusterlab.datasets import fewshot_tasks, load_dataset
        >>> from clusterlab.metrics import evaluate_fewshot
        >>> from clusterlab.transductive import TransductiveFewShot
        >>> X, y = load_dataset("digits")
        >>> base, novel = y < 5, y >= 5
        >>> model = TransductiveFewShot().calibrate(
        ...     X[base], y[base], n_way=5, n_shot=1, n_tasks=100, candidates=[0.3, 0.7, 1.0],
        ...     random_state=0)
        >>> model.prototypes_, model.lam_
        ('means', 0.7)
        >>> tasks = fewshot_tasks(X[novel], y[novel], n_way=5, n_shot=1, n_tasks=100,
        ...                       random_state=1)
        >>> pred = model.predict_tasks(tasks.X_support, tasks.y_support, tasks.X_query)
        >>> evaluate_fewshot(tasks.y_query, pred).accuracy > 0.75
        True
        """
        from clusterlab.datasets import fewshot_tasks

        X = check_float_matrix(
            to_numpy(X_base) if is_other_array(X_base) else X_base, "X_base", min_rows=2
        )
        _, y = class_labels(y_base, X.shape[0], name="y_base")  # codes 0..n-1
        n_way = check_count(n_way, "n_way", minimum=2)
        n_shot = check_count(n_shot, "n_shot")
        n_query = check_count(n_query, "n_query")
        n_tasks = check_count(n_tasks, "n_tasks")
        lams = _check_candidates(candidates)
        base_mean = None
        if self.preprocessing == "cl2n":
            given = self.base_mean
            base_mean = (
                X.mean(axis=0, dtype=np.float64)
                if given is None
                else np.asarray(to_numpy(given) if is_array(given) else given)
            )
            if (
                base_mean.shape != (X.shape[1],)
                or base_mean.dtype.kind not in "iuf"
                or not np.all(np.isfinite(base_mean))
            ):
                raise ValueError(
                    f"base_mean must hold {X.shape[1]} finite numbers (one per feature of "
                    f"X_base), got {base_mean.dtype} {base_mean.shape}."
                )
            base_mean = base_mean.astype(np.float64)
        rows = np.arange(X.shape[0]).reshape(-1, 1)
        episodes = fewshot_tasks(
            rows,
            y,
            n_way=n_way,
            n_shot=n_shot,
            n_query=n_query,
            n_tasks=n_tasks,
            random_state=random_state,
        )
        support_rows, query_rows = episodes.X_support[..., 0], episodes.X_query[..., 0]
        support_codes, classes = encode_task_labels(episodes.y_support)
        query_codes = np.stack(
            [
                np.searchsorted(task_classes, task_y)
                for task_classes, task_y in zip(classes, episodes.y_query, strict=True)
            ]
        )
        settings = self._settings(calibrated=False)
        if self.preprocessing is not None:
            # divide by one power of two (exact), as predictions do: far-from-1 units
            # neither overflow nor underflow the norms
            frame = common_scale(X, base_mean)
            X = frame.to_frame(X)
            if base_mean is not None:
                settings = replace(settings, base_mean=frame.to_frame(base_mean))
        scores = episode_scores(
            X, support_rows, support_codes, query_rows, query_codes, n_way, lams, settings
        )
        correct = np.vstack([scores.simpleshot, scores.correct])
        best = int(np.argmax(correct.sum(axis=1)))  # first of the ties: the simplest
        accuracy = correct / scores.n_query
        n_settings = correct.shape[0]
        prototypes = np.array([SIMPLESHOT["prototypes"]] + [self.prototypes] * lams.size)
        shift = np.array([SIMPLESHOT["shift_queries"]] + [self.shift_queries] * lams.size)
        self.calibration_results_ = {
            "lam": np.concatenate([[SIMPLESHOT["lam"]], lams]),
            "prototypes": prototypes,
            "shift_queries": shift,
            "mean_accuracy": accuracy.mean(axis=1),
            "ci95": 1.96 * accuracy.std(axis=1) / np.sqrt(n_tasks),
            "n_unsettled": np.concatenate([[0], scores.unsettled]),
            "selected": np.arange(n_settings) == best,
        }
        self.lam_ = float(self.calibration_results_["lam"][best])
        self.prototypes_ = str(prototypes[best])
        self.shift_queries_ = bool(shift[best])
        self.base_mean_ = base_mean
        if best > 0 and (scores.unsettled[best - 1] or scores.capped[best - 1]):
            warnings.warn(
                f"With the lam={self.lam_:g} kept by calibrate, {scores.unsettled[best - 1]}"
                f" of {n_tasks} base episodes stopped before their labels settled "
                f"(max_iter={self.max_iter}, or a class lost all its points) and "
                f"{scores.capped[best - 1]} ended their last bound iterations at "
                f"max_bound_iter={self.max_bound_iter}.",
                ConvergenceWarning,
                stacklevel=3,
            )
        return self

    def _settings(self, calibrated=True):
        """The solver's settings: the calibrated ones after :meth:`calibrate` (unless
        ``calibrated=False``), else the parameters."""
        if calibrated and hasattr(self, "lam_"):
            lam, prototypes = self.lam_, self.prototypes_
            base_mean, shift_queries = self.base_mean_, self.shift_queries_
        else:
            lam, prototypes = self.lam, self.prototypes
            base_mean, shift_queries = self.base_mean, self.shift_queries
        return FewShotSettings(
            lam=lam,
            n_neighbors=self.n_neighbors,
            weights=self.weights,
            prototypes=prototypes,
            preprocessing=self.preprocessing,
            base_mean=base_mean,
            shift_queries=shift_queries,
            max_iter=self.max_iter,
            tol=self.tol,
            max_bound_iter=self.max_bound_iter,
        )

    def _warn_unsettled(self, results, stacklevel):
        counts = [_unsettled_counts(result) for result in results]
        n_tasks, unsettled, capped = (sum(column) for column in zip(*counts, strict=True))
        if unsettled or capped:
            warnings.warn(
                f"Of {n_tasks} tasks, {unsettled} stopped before their labels settled "
                f"(max_iter={self.max_iter}, or a class lost all its points) and {capped} "
                f"ended their last bound iterations at max_bound_iter={self.max_bound_iter}.",
                ConvergenceWarning,
                stacklevel=stacklevel,
            )

    def predict_proba(self, X):
        """Soft class assignments of the queries ``X`` of the fitted task, inferred jointly.

        Parameters
        ----------
        X : array-like of shape (n_query, n_features)
            NumPy-compatible, or an array of another library. When either the queries or
            the fitted support are such an array, the task is solved on that array's
            device (the queries' if both are), the other one copied there; the queries
            are computed in the support's dtype.

        Returns
        -------
        proba : array of shape (n_query, n_way)
            Column ``j`` is class ``classes_[j]``. An ndarray of the support's float
            dtype on NumPy (float32 stays float32; the solver works in float64); else in
            the namespace and on the device where the task was solved.
        """
        check_is_fitted(self, "support_")  # calibrate alone does not fit a task
        support, codes = self.support_, self._support_codes
        if not (is_other_array(X) or is_other_array(support)):
            X = validate_data(self, X, dtype=[np.float64, np.float32], order="C", reset=False)
            X = X.astype(support.dtype, copy=False)  # one dtype for the stacked task
        else:
            where_from = X if is_other_array(X) else support
            xp, where = get_namespace(where_from), device(where_from)
            X = check_float_matrix(X if is_array(X) else np.asarray(X), "X")
            if X.shape[1] != self.n_features_in_:
                raise ValueError(
                    f"X has {X.shape[1]} features, but TransductiveFewShot is expecting "
                    f"{self.n_features_in_} features as input."
                )
            support = to_namespace(xp, support, where)
            X = xp.astype(to_namespace(xp, X, where), support.dtype)
            codes = xp.asarray(codes, device=where)
        support, X, settings = self._scaled_tasks(support[None, ...], X[None, ...])
        solution = infer_tasks(support, codes[None, ...], X, self.classes_.shape[0], settings)
        self._warn_unsettled([solution.result], stacklevel=3)
        proba = solution.proba[0, ...]
        # float32 features give float32 probabilities (the solver works in float64)
        return proba.astype(support.dtype, copy=False) if isinstance(proba, np.ndarray) else proba

    def predict(self, X):
        """Classes of the queries ``X`` of the fitted task, inferred jointly.

        Parameters
        ----------
        X : array-like of shape (n_query, n_features)
            As in :meth:`predict_proba`.

        Returns
        -------
        labels : array of shape (n_query,)
            Values of ``classes_``: a NumPy array, or, when the task was solved on
            another library's device and the classes are integers, an int64 array there.
        """
        proba = self.predict_proba(X)
        if isinstance(proba, np.ndarray):
            return self.classes_[proba.argmax(axis=1)]
        xp = get_namespace(proba)
        if self.classes_.dtype.kind not in "iu":  # strings cannot live on a device
            return self.classes_[to_numpy(xp.argmax(proba, axis=1))]
        classes = xp.asarray(self.classes_, dtype=xp.int64, device=device(proba))
        return xp.take(classes, xp.argmax(proba, axis=1), axis=0)

    def _solve_tasks(self, X_support, y_support, X_query):
        """Validated tasks solved chunk by chunk: the solutions, the classes (NumPy), and
        whether the classes go back in the features' namespace."""
        self._validate_params()
        y_support, names = _task_label_codes(y_support)
        support, labels, queries = check_fewshot_tasks(X_support, y_support, X_query)
        codes, classes = encode_task_labels(labels)
        if names is not None:  # string labels: the codes' classes by name
            classes = names[classes]
        n_tasks, n_points = support.shape[0], support.shape[1] + queries.shape[1]
        support, queries, settings = self._scaled_tasks(support, queries)
        if isinstance(support, np.ndarray):
            # Tasks are independent: solving them in chunks keeps the working set in cache.
            parts = _chunks(n_tasks, n_points)
            labels_on_device = False
        else:
            # Dense (T, n, n) affinities: chunks bounded by memory.
            on_cpu = "cpu" in str(device(support)).lower()
            parts = _device_chunks(n_tasks, n_points, on_cpu=on_cpu)
            xp = get_namespace(support)
            codes = xp.asarray(codes, device=device(support))
            labels_on_device = is_other_array(y_support)
        solutions = [
            infer_tasks(
                support[part, ...], codes[part, ...], queries[part, ...], classes.shape[1], settings
            )
            for part in parts
        ]
        self._warn_unsettled([solution.result for solution in solutions], stacklevel=4)
        return solutions, classes, labels_on_device, support.shape[1], support.dtype

    def _scaled_tasks(self, support, queries):
        """Validated stacked tasks and the settings, divided by one power of two.

        With ``preprocessing`` ("cl2n", "l2n") every sample is scaled to unit norm, so
        the result does not depend on the unit of the features; dividing the support,
        the queries and ``base_mean`` by the power of two that brings their largest
        magnitude into [1/2, 1) (an exact operation) keeps the norms from overflowing
        (features at 1e200) or underflowing (1e-200) on the way. Without preprocessing
        the costs are the raw squared distances (``lam`` is in their units): nothing is
        rescaled, and features whose squared distances overflow are refused.
        """
        settings = self._settings()
        base_mean = settings.base_mean
        if self.preprocessing != "cl2n" or base_mean is None:
            base_mean = None
        else:
            base_mean = np.asarray(to_numpy(base_mean) if is_array(base_mean) else base_mean)
            if base_mean.dtype.kind not in "iuf" or not np.all(np.isfinite(base_mean)):
                return support, queries, settings  # the solver's check names the problem
            base_mean = base_mean.astype(np.float64)
        frame = common_scale(support, queries, base_mean)
        if self.preprocessing is None:
            # the largest magnitude lies in [2**(outer - 1), 2**outer)
            finfo = np.finfo(
                np.float32 if support.dtype == get_namespace(support).float32 else np.float64
            )
            high = float(np.ldexp(1.0, frame.outer))
            low = 0.5 * high
            overflow = not 4.0 * high * high * support.shape[2] < float(finfo.max)
            if overflow or low * low < float(finfo.smallest_normal):
                raise ValueError(
                    f"features of magnitude about {low:.3g} give squared distances that "
                    f"{'overflow' if overflow else 'underflow'} {finfo.dtype} with "
                    f"preprocessing=None (the costs are raw squared distances, lam={self.lam}"
                    " is in their units); rescale the features, or use preprocessing='l2n' "
                    "or 'cl2n', which make the result independent of their scale."
                )
            return support, queries, settings
        if frame.outer == 0:
            return support, queries, settings
        if base_mean is not None:
            settings = replace(settings, base_mean=frame.to_frame(base_mean))
        return frame.to_frame(support), frame.to_frame(queries), settings

    def predict_proba_tasks(self, X_support, y_support, X_query):
        """Soft assignments for many tasks at once, as one batched problem.

        NumPy input runs the Numba kernels on sparse graphs. PyTorch tensors (CPU or
        CUDA), CuPy arrays and other array-API arrays run every task as dense batched
        arrays in their namespace and on their device (graphs of shape (T, n, n), no
        loop over the tasks), with the same definitions and per-task stopping, so both
        give the same assignments up to rounding.

        Parameters
        ----------
        X_support : array of shape (n_tasks, n_support, n_features)
            NumPy-compatible (array-like), or an array of another array-API namespace.
        y_support : array-like of shape (n_tasks, n_support)
            Class labels (integers, or strings and other values of one kind, as in
            :meth:`fit`); every task has the same number of classes. NumPy, a list, or
            an array of any namespace (copied to the host: labels are small).
        X_query : array of shape (n_tasks, n_query, n_features)
            Same library and device as ``X_support``; converted to ``X_support``'s float
            dtype.

        Returns
        -------
        proba : array of shape (n_tasks, n_query, n_way)
            Column ``j`` of task ``t`` is class ``classes[t, j]``. NumPy input: an ndarray
            of ``X_support``'s float dtype. Other namespaces: the features' namespace,
            device and float dtype (the solver itself computes in float64 where the device
            has it).
        classes : array of shape (n_tasks, n_way)
            Each task's classes, sorted: int64 for integer labels (a NumPy array, unless
            ``y_support`` is a non-NumPy array and the features are too: then in the
            features' namespace and on their device), else a NumPy array of the labels.
        """
        solutions, classes, labels_on_device, _, dtype = self._solve_tasks(
            X_support, y_support, X_query
        )
        if len(solutions) and isinstance(solutions[0].proba, np.ndarray):
            proba = np.concatenate([solution.proba for solution in solutions])
            return proba.astype(dtype, copy=False), classes
        xp = get_namespace(solutions[0].proba)
        proba = xp.concat([solution.proba for solution in solutions])
        if labels_on_device:
            classes = xp.asarray(classes, device=device(proba))
        return proba, classes

    def predict_tasks(self, X_support, y_support, X_query):
        """Predicted classes of shape (n_tasks, n_query) for many tasks at once.

        Equal to calling ``fit(X_support[t], y_support[t]).predict(X_query[t])`` for each
        task ``t``, computed as one batched problem; takes the arrays
        :meth:`predict_proba_tasks` takes (NumPy, or any array-API namespace on any
        device).

        Returns
        -------
        labels : array of shape (n_tasks, n_query)
            Values of ``y_support``: int64 for integer labels, else a NumPy array of the
            labels. NumPy when ``y_support`` is NumPy-compatible (a list, an ndarray); in the
            features' namespace and on their device when ``y_support`` and the features
            are non-NumPy arrays. The argmax is taken on the solver's float64
            assignments, as on the NumPy path. A Dask array when ``X_support`` or
            ``X_query`` is one (chunked along the tasks; each chunk of tasks is solved by
            the NumPy path on a worker, and its ``ConvergenceWarning`` is raised there).
        """
        if is_dask_array(X_support) or is_dask_array(X_query):
            self._validate_params()
            return map_tasks(
                self.predict_tasks,
                X_support,
                y_support,
                X_query,
                dtype=np.int64,
                name="fewshot-predict-tasks",
            )
        solutions, classes, labels_on_device, n_support, _ = self._solve_tasks(
            X_support, y_support, X_query
        )
        assignments = [solution.result.assignments[:, n_support:, :] for solution in solutions]
        if isinstance(assignments[0], np.ndarray):
            return np.take_along_axis(classes, np.concatenate(assignments).argmax(axis=2), axis=1)
        xp = get_namespace(assignments[0])
        best = xp.concat([xp.argmax(part, axis=2) for part in assignments])
        if not labels_on_device:
            return np.take_along_axis(classes, to_numpy(best), axis=1)
        classes = xp.asarray(classes, device=device(best))
        return xp.take_along_axis(classes, best, axis=1)


def _task_label_codes(y_support):
    """NumPy-compatible stacked task labels, read as :meth:`TransductiveFewShot.fit`
    reads labels: integer codes into their sorted values, and those values. Arrays of
    other libraries (numbers) are left to ``check_fewshot_tasks`` (values None)."""
    if is_array(y_support) and not isinstance(y_support, np.ndarray):
        return y_support, None
    y = np.asarray(y_support)
    names, codes = class_labels(y.reshape(-1), y.size, name="y_support")
    return codes.reshape(y.shape), names


def _unsettled_counts(result):
    """Tasks, tasks whose labels did not settle, tasks whose last bound solve was capped."""
    converged, bound_converged = result.converged, result.bound_converged
    if isinstance(converged, np.ndarray):
        return (
            converged.shape[0],
            int(np.count_nonzero(~converged)),
            int(np.count_nonzero(~bound_converged)),
        )
    xp = get_namespace(converged)
    unsettled, capped = host_floats(
        xp, xp.sum(xp.astype(~converged, xp.int64)), xp.sum(xp.astype(~bound_converged, xp.int64))
    )
    return converged.shape[0], int(unsettled), int(capped)


# Points (support + queries) per chunk of tasks solved as one batched problem.
_CHUNK_POINTS = 50_000


def _chunks(n_tasks, points_per_task):
    size = max(1, _CHUNK_POINTS // points_per_task)
    return [slice(start, start + size) for start in range(0, n_tasks, size)]


# Entries of the dense (T, n, n) affinity per chunk of tasks on the array-API path: on a
# CPU, chunks whose arrays stay near the cache; on an accelerator, large batches bounded
# by memory (a few arrays of this many float64 entries live at once: about 1.5 GB).
_DEVICE_CHUNK_ENTRIES = 1 << 25
_CPU_CHUNK_ENTRIES = 1 << 21


def _device_chunks(n_tasks, points_per_task, *, on_cpu=False):
    entries = _CPU_CHUNK_ENTRIES if on_cpu else _DEVICE_CHUNK_ENTRIES
    size = max(1, entries // points_per_task**2)
    return [slice(start, min(start + size, n_tasks)) for start in range(0, n_tasks, size)]
