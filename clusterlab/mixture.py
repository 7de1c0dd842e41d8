"""Generalized category discovery: semi-supervised clustering with an unknown number of classes.

Some samples carry labels from known ("old") classes; the unlabeled rest come from old
and new classes. :class:`SemiSupervisedKMeans` is the k-means baseline of Vaze et al.
(2022); :class:`SemiSupervisedGMM` is a Gaussian mixture whose labeled samples are clamped
to their class's component and whose split/merge moves estimate the number of components
(Zhao, Wen & Han, 2023), built on :mod:`clusterlab.solvers.gmm`. :func:`estimate_n_clusters`
is the baseline estimate of the number of classes.

Labels follow scikit-learn's semi-supervised convention (:mod:`clusterlab._labels`):
``y = -1`` marks unlabeled samples, and class labels may be integers, strings or other
values of one kind, kept in ``classes_``. In the output, samples of a labeled class keep
its label; new clusters get new labels, counting up from one past the largest labeled
class for integers, ``"new_0"``, ``"new_1"``, ... for strings. A fully labeled ``y`` fits
one cluster per class, and more labeled classes than clusters grow the model.

``fit`` runs on NumPy (and Numba): arrays of other libraries are copied to the host. A
fitted model predicts and scores arrays of any array-API library (PyTorch on CPU or
CUDA, CuPy, ...) on their own device: its parameters are moved there once, and the
result is an array of the input's library on the input's device (see "Backends" in
DESIGN.md). ``predict`` and ``predict_proba`` of a row-chunked Dask array return a Dask
array: every chunk is computed by the NumPy path on the worker that holds it, the fitted
model (small NumPy arrays) sent once to each worker.
"""

from __future__ import annotations

import warnings
from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, ClusterMixin, DensityMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from clusterlab._labels import partial_labels
from clusterlab._n_clusters import estimate_n_clusters
from clusterlab._progress import progress_printer
from clusterlab._scaling import normalise_scale
from clusterlab._sklearn_compat import Interval, StrOptions, _fit_context, validate_data
from clusterlab._validation import check_float_matrix, check_n_clusters
from clusterlab.solvers._backend import (
    accumulation_dtype,
    device,
    get_namespace,
    has_float64,
    host_floats,
    is_other_array,
    logsumexp,
    nearest_centers,
    to_numpy,
)
from clusterlab.solvers._dask_map import is_dask_array, map_method
from clusterlab.solvers.gaussian import (
    fix_far_rows,
    log_gaussian,
    log_gaussian_array,
    mixture_on,
)
from clusterlab.solvers.gmm import fit_mixture
from clusterlab.solvers.niw import COVARIANCE_TYPES, NIWPrior
from clusterlab.solvers.projection import (
    ProjectedFrame,
    Projection,
    auto_dimension,
    principal_basis,
)
from clusterlab.solvers.seeded_kmeans import seeded_kmeans
from clusterlab.solvers.split_merge import ACCEPTANCE_RULES, MoveConfig

__all__ = ["SemiSupervisedGMM", "SemiSupervisedKMeans", "estimate_n_clusters"]

# Ridge added to the prior covariance, relative to its mean variance (constant features).
_PRIOR_RIDGE = 1e-3


def _array_namespace(X):
    """The namespace of ``X`` if it is an array of a library other than NumPy, else None.

    NumPy arrays and NumPy-compatible input (lists, DataFrames, ...) get None: they take
    the NumPy path through scikit-learn's validation.
    """
    return get_namespace(X) if is_other_array(X) else None


def _prepare_fit(estimator, X, y, requested):
    """What both estimators' ``fit`` starts from: ``X`` checked, on the host (an array of
    another library is copied there) and in its normalised frame (stored as
    ``estimator._frame``); ``X``'s float dtype; the partial labels; the number of clusters
    to fit for ``requested`` (``PartialLabels.n_clusters``); the random generator."""
    if _array_namespace(X) is not None:
        X = to_numpy(X)
    X = validate_data(estimator, X, dtype=[np.float64, np.float32], order="C")
    check_n_clusters(requested, X.shape[0])
    partial = partial_labels(y, X.shape[0])
    n_clusters = partial.n_clusters(requested)
    rng = np.random.default_rng(check_random_state(estimator.random_state).randint(2**31))
    dtype = X.dtype
    X, estimator._frame = normalise_scale(X)  # see "Scale" in the class docstrings
    return X, dtype, partial, n_clusters, rng


# Fitted attributes of one value per training sample: not sent to Dask workers.
_PER_SAMPLE = ("labels_", "responsibilities_")


def _float_dtype(dtype):
    """float32 stays float32, anything else computes in float64 (as ``validate_data``)."""
    return np.dtype(np.float32) if dtype == np.float32 else np.dtype(np.float64)


def _labels_on(xp, labels, where):
    """Integer ``labels`` as an int64 array of ``xp`` on ``where``; None for other labels
    (strings), which predictions return as NumPy arrays."""
    if labels.dtype.kind not in "iu":
        return None
    return xp.asarray(labels, dtype=xp.int64, device=where)


def _check_array_input(estimator, X):
    """``X`` of another library validated on its device: a finite float matrix with the
    fitted number of features (float32 stays float32, other dtypes become float64)."""
    X = check_float_matrix(X, "X")
    if X.shape[1] != estimator.n_features_in_:
        raise ValueError(
            f"X has {X.shape[1]} features, but {type(estimator).__name__} is expecting "
            f"{estimator.n_features_in_} features as input."
        )
    return X


class SemiSupervisedKMeans(ClusterMixin, BaseEstimator):
    """k-means whose labeled samples stay with their class: the GCD baseline.

    The centres of the labeled classes start at their labeled means and the others are
    drawn by k-means++ from the unlabeled samples; during the Lloyd iterations labeled
    samples never leave their class's cluster (Vaze et al., "Generalized Category
    Discovery", CVPR 2022). The run with the lowest inertia of ``n_init`` is kept.

    Scale: the fit runs on ``X`` centred and divided by a power of two (an exact
    operation; :func:`clusterlab._scaling.normalise_scale`), so ``X * s`` gives the
    partition of ``X`` for any ``s`` from 1e-200 to 1e200. ``cluster_centers_`` and
    ``inertia_`` are mapped back to ``X``'s units (``inertia_`` times ``scale**2``: ``inf``
    beyond the float range). Predictions map new samples into the same frame.

    Labels (:mod:`clusterlab._labels`): ``y`` holds class labels of any one kind
    (integers, strings, ...), -1 for unlabeled samples. Labeled classes keep their
    labels (sorted in ``classes_``); the other clusters get new labels, integers counting
    up from one past the largest class, or ``"new_0"``, ``"new_1"``, ... for string
    classes. More labeled classes than ``n_clusters`` give one cluster per class; with
    every sample labeled there is nothing to discover and the model has one cluster per
    class (a nearest-class-mean classifier).

    Parameters
    ----------
    n_clusters : int, default=8
        Number of clusters; more when ``y`` labels more classes (see "Labels").
    n_init : int, default=10
        Runs with different k-means++ draws.
    max_iter : int, default=300
        Lloyd iterations per run.
    tol : float, default=1e-4
        Stop when the centres move less than ``tol`` times the mean feature variance.
    random_state : int, RandomState instance or None, default=None

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        The classes labeled in ``y``, sorted (empty without labels).
    labels_ : ndarray of shape (n_samples,)
        Labeled classes keep their labels; new clusters get new labels (see "Labels":
        from 0 without labels). int64 for integer classes, else the classes' dtype.
    cluster_centers_ : ndarray of shape (n_clusters_fitted, n_features)
        ``n_clusters_fitted = max(n_clusters, n_classes)``, or ``n_classes`` when every
        sample is labeled.
    cluster_labels_ : ndarray of shape (n_clusters_fitted,)
        The label of each centre: ``classes_`` first, then the new labels.
    inertia_ : float
        Sum of squared distances to the assigned centres.
    n_iter_ : int
        Number of sweeps (``n_sweeps``).
    converged_ : bool

    Examples
    --------
    >>> import numpy as np
    >>> from clusterlab.mixture import SemiSupervisedKMeans
    >>> rng = np.random.default_rng(0)
    >>> X = np.vstack([rng.normal(c, 0.2, (20, 2)) for c in (0, 3, 6)])
    >>> y = np.full(60, -1); y[:5] = 4  # five samples of class 4
    >>> model = SemiSupervisedKMeans(n_clusters=3, random_state=0).fit(X, y)
    >>> np.unique(model.labels_[:20]).tolist(), np.unique(model.labels_[20:]).tolist()
    ([4], [5, 6])
    """

    _parameter_constraints: dict = {  # noqa: RUF012 - scikit-learn's convention
        "n_clusters": [Interval(Integral, 1, None, closed="left")],
        "n_init": [Interval(Integral, 1, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "random_state": ["random_state"],
    }

    def __init__(self, n_clusters=8, *, n_init=10, max_iter=300, tol=1e-4, random_state=None):
        self.n_clusters = n_clusters
        self.n_init = n_init
        self.max_iter = max_iter
        self.tol = tol
        self.random_state = random_state

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Cluster ``X``; ``y`` holds class labels of labeled samples, -1 elsewhere.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            The fit runs on the CPU: arrays of other libraries (PyTorch tensors, CuPy
            arrays, ...) are copied to the host, and the fitted attributes are NumPy
            arrays. :meth:`predict` labels such arrays on their device.
        y : array-like of shape (n_samples,) or None
            Class labels (integers, strings, ...), -1 for unlabeled samples; None: all
            unlabeled (see "Labels" in the class docstring).

        Returns
        -------
        self
        """
        X, dtype, partial, n_clusters, rng = _prepare_fit(self, X, y, self.n_clusters)
        result = seeded_kmeans(
            X,
            partial.codes,
            n_clusters,
            rng=rng,
            n_init=self.n_init,
            max_iter=self.max_iter,
            tol=self.tol,
        )
        component_class = partial.cluster_classes(n_clusters)
        self.classes_ = partial.classes
        self.cluster_labels_ = partial.output_labels(component_class)
        self._centers = np.asarray(result.centers, dtype=np.float64)  # in the frame
        self.cluster_centers_ = self._frame.points(self._centers).astype(dtype)
        self.labels_ = self.cluster_labels_[result.labels]
        self.inertia_ = self._frame.lengths(float(result.inertia), 2)
        self.n_iter_ = result.n_iter
        self.converged_ = result.converged
        if not self.converged_:
            warnings.warn(
                f"SemiSupervisedKMeans did not converge in max_iter={self.max_iter} "
                "iterations; increase max_iter.",
                ConvergenceWarning,
                stacklevel=3,
            )
        return self

    def predict(self, X):
        """Label of the nearest centre of each sample.

        Parameters
        ----------
        X : array of shape (n_samples, n_features)
            NumPy-compatible input, or an array of any array-API library (a PyTorch
            tensor on CPU or CUDA, a CuPy array, ...), which is labeled on its device.

        Returns
        -------
        labels : array of shape (n_samples,)
            Values of ``cluster_labels_``, int64 for integer classes: a NumPy array for
            NumPy-compatible input, else an array of ``X``'s library on ``X``'s device
            (string classes: a NumPy array of them). Distances are computed in float64
            (where the device has it) whatever the dtype of ``X``.
            A Dask array (rows in chunks) gives a Dask array chunked along the rows as
            ``X``, each chunk labeled by the NumPy path where it is computed: the number
            of features is checked now, the values then.
        """
        check_is_fitted(self)
        if is_dask_array(X):  # row chunks labeled on the workers, lazily
            return map_method(
                self, "predict", X, dtype=self.cluster_labels_.dtype, drop=_PER_SAMPLE
            )
        xp = _array_namespace(X)
        if xp is None:
            X = validate_data(self, X, dtype=[np.float64, np.float32], order="C", reset=False)
            X = self._frame.to_frame(X)
            return self.cluster_labels_[nearest_centers(get_namespace(X), X, self._centers)]
        X = self._frame.to_frame(_check_array_input(self, X))
        centres, labels = self._centres_on(xp, device(X))  # moved on each call: no state
        nearest = nearest_centers(xp, xp.astype(X, centres.dtype, copy=False), centres)
        if labels is None:  # string classes cannot live on a device
            return self.cluster_labels_[to_numpy(nearest)]
        return xp.take(labels, nearest, axis=0)

    def _centres_on(self, xp, where):
        acc = accumulation_dtype(xp, where)
        acc_np = np.float64 if has_float64(xp, where) else np.float32
        centres = xp.asarray(self._centers.astype(acc_np), dtype=acc, device=where)
        return centres, _labels_on(xp, self.cluster_labels_, where)


class SemiSupervisedGMM(DensityMixin, ClusterMixin, BaseEstimator):
    """Gaussian mixture with clamped labeled samples and split/merge moves over K.

    Labeled samples belong to their class's component in every E-step; unlabeled samples
    get soft responsibilities (or hard ones with ``assignment="hard"``). The M-step is the
    MAP estimate under a normal-inverse-Wishart prior. With ``split_merge=True`` the
    number of components is estimated: after ``burn_in`` sweeps, every sweep ends with one
    move step, split and merge in turn (split first). A split step proposes to split each
    component along two sub-clusters of its members, a merge step to merge each component
    with a near neighbour; proposals are accepted by the Hastings ratio of NIW marginal
    likelihoods under a Dirichlet-process prior (:mod:`clusterlab.solvers.split_merge`).
    A component holding a labeled class can split off its unlabeled part (a new class),
    and two labeled classes never merge.

    The prior is calibrated on the labeled classes by default: the prior covariance is
    their pooled within-class covariance (what a class looks like), and the
    ``concentration`` (the Dirichlet-process ``alpha``) is chosen so that, on the labeled
    samples alone, no class would split and no two classes would merge (the midpoint of
    the two bounds this sets on ``log alpha``), capped at ``alpha = 1``, where the
    partition prior alone never favours a split. When the bounds contradict each other
    a UserWarning says so.

    Scale: the fit runs on ``X`` centred and divided by a power of two ``scale`` (an exact
    operation; :func:`clusterlab._scaling.normalise_scale`), so ``X * s`` gives the
    partition of ``X`` for any ``s`` from 1e-200 to 1e200. ``covariance_prior`` is given
    in ``X``'s units (divided by ``scale**2`` for the fit); ``tol`` applies to the
    objective in the frame. The fitted parameters are mapped back: ``means_``,
    ``covariances_`` times ``scale**2`` (``inf`` or 0 where that leaves the float range,
    e.g. data at 1e200), ``precisions_cholesky_`` divided by ``scale``, and the
    histories shifted by the log-Jacobian (see the attributes). Predictions and scores
    run in the frame, whatever the range of the mapped-back arrays. float32 ``X`` gives
    float32 arrays, probabilities and log densities (the solver works in float64).

    Projection: on embeddings of hundreds of dimensions a full covariance is slow to fit,
    and the normal-inverse-Wishart evidence that drives the moves charges each component
    for its ``d (d + 3) / 2`` parameters, so distinct classes merge (issue 15: 5
    components found for 10 topics in 256 dimensions). By default the mixture is
    therefore fitted on the leading principal components of ``X``, at most 64 and at
    most half the mean size of the starting components, where exported embeddings keep
    their class structure (``docs/user_guide/gcd.rst``, "Embeddings exported by
    pretrained models"). ``projection_`` holds the principal directions; ``means_`` are
    mapped back to ``X``'s coordinates (they lie on the principal subspace through the
    data mean), while ``covariances_`` and ``precisions_cholesky_`` live in the projected
    coordinates ``X @ projection_.T``; predictions, ``score_samples`` and ``score``
    project new samples first, so densities are those of the projected samples.

    Parameters
    ----------
    n_components : int, default=10
        Number of components, or the starting number when ``split_merge`` is on; more
        labeled classes in ``y`` start one component per class (see :meth:`fit`).
    covariance_type : {"full", "diag", "spherical"}, default="full"
    projection : "auto", int or None, default="auto"
        Fit in the leading principal components of ``X`` (fitted on all samples, no
        labels used; see "Projection"). "auto": ``min(n_features, 64, max(8, n_samples
        // (2 n_components)))`` components, i.e. no projection for data of at most 8
        features, or of at most 64 features with enough samples per starting component;
        an int: that many components (at most ``n_features``); None: all features.
    split_merge : bool, default=True
        Estimate the number of components with split/merge moves.
    concentration : float or "labeled", default="labeled"
        Dirichlet-process concentration of the moves; "labeled" calibrates it on the
        labeled classes (the midpoint of the bounds they set), at most 1 (``alpha = 1``
        without labels;
        :func:`clusterlab.solvers.split_merge.calibrated_log_alpha`).
    assignment : {"soft", "hard"}, default="soft"
        Soft EM or hard (classification) EM for the unlabeled samples.
    covariance_prior : float, array-like or None, default=None
        Expected component covariance under the prior: a (d, d) matrix, a (d,) diagonal
        or a float times the identity. None: the pooled within-class covariance of the
        labeled samples, or without labels the pooled within-cluster covariance of the
        initial k-means partition (plus a ridge of 1e-3 times its mean variance).
    covariance_prior_strength : float, default=100.0
        Pseudo-samples behind ``covariance_prior``: the inverse-Wishart has
        ``nu = strength + d + 1`` degrees of freedom ("full"; ``strength + 2`` per
        variance otherwise) and scale ``strength * covariance_prior``, so its mean is
        ``covariance_prior``.
    mean_precision_prior : float or None, default=None
        Pseudo-samples ``kappa`` behind the prior mean (the data mean): under the prior a
        component mean lies within ``covariance / kappa`` of it. None (default) sets
        ``kappa = tr(expected covariance) / tr(covariance of X)``, at most 1, so that this
        spread is the data's own: with a fixed ``kappa = 1`` tight clusters far apart
        (relative to their width) are merged, every mean being improbably far from the
        data mean.
    acceptance : {"threshold", "mh"}, default="threshold"
        Accept a move when its Hastings ratio exceeds 1, or with probability
        ``min(1, ratio)`` (Metropolis-Hastings).
    random_accept : float, default=0.0
        Probability of accepting any proposal regardless of its ratio (the released GPC
        code used 0.1).
    n_merge_neighbors : int, default=3
        Nearest components each component is proposed to merge with.
    burn_in : int, default=5
        EM sweeps before the first move.
    n_init : int, default=1
        Runs of the semi-supervised k-means that initialises the mixture.
    max_iter : int, default=200
        Maximum number of EM sweeps.
    tol : float, default=1e-05
        Convergence threshold on the relative change of the MAP objective (in the
        normalised frame, see "Scale"); with
        split/merge, K must also have stayed put for the last 4 move steps.
    random_state : int, RandomState instance or None, default=None
    verbose : int, default=0
        Print K and the objective every ``verbose`` sweeps (0: silent).

    Attributes
    ----------
    n_components_ : int
        Number of components found, ``K`` below.
    classes_ : ndarray of shape (n_classes,)
        The classes labeled in ``y``, sorted (empty without labels).
    component_labels_ : ndarray of shape (K,)
        The label of each component: labeled classes keep theirs, new components get new
        labels (int64 for integer classes, else the classes' dtype).
    weights_ : ndarray of shape (K,)
    means_ : ndarray of shape (K, n_features)
    covariances_ : ndarray
        (K, p, p) for "full", (K, p) for "diag", (K,) for "spherical", with ``p`` the
        number of projected features (``n_features`` without projection).
    projection_ : ndarray of shape (p, n_features) or None
        Orthonormal principal directions the mixture is fitted in (see "Projection");
        None when it is fitted in all features.
    precisions_cholesky_ : ndarray
        Cholesky factors of the precisions, as in scikit-learn's ``GaussianMixture``.
    labels_ : ndarray of shape (n_samples,)
        Label of each training sample (the component of highest responsibility).
    responsibilities_ : ndarray of shape (n_samples, K)
        Soft memberships of the training samples after the last sweep.
    log_likelihood_history_ : ndarray of shape (n_sweeps,)
        Log-likelihood of the data at every sweep (labeled samples count their own
        component), in ``X``'s units: the frame's minus ``n d log(scale)``.
    objective_history_ : ndarray of shape (n_sweeps,)
        Log-likelihood plus log prior at every sweep's E-step. EM sweeps never decrease
        it, but an accepted split or merge can move it either way (an accepted move
        raises the marginal likelihood with its DP prior, not this objective), so the
        history is not monotone across moves, and values at different K are not
        comparable. In ``X``'s units: the frame's minus ``(n d + K m) log(scale)``, the
        log-Jacobian of the data and of each component's mean and covariance
        (``m = d + d (d + 1)`` full, ``3 d`` diag, ``d + 2`` spherical).
    n_components_history_ : ndarray of shape (n_sweeps,)
        K during every sweep.
    concentration_ : float or None
        Concentration used by the moves (None without split/merge); may be tiny when
        calibrated, hence also ``log_concentration_``.
    log_concentration_ : float or None
    n_splits_, n_merges_ : int
        Accepted moves.
    n_iter_ : int
        Number of sweeps (``n_sweeps``).
    converged_ : bool

    Examples
    --------
    >>> import numpy as np
    >>> from clusterlab.mixture import SemiSupervisedGMM
    >>> rng = np.random.default_rng(0)
    >>> X = np.vstack([rng.normal(c, 0.3, (60, 2)) for c in ([0, 0], [4, 0], [0, 4], [4, 4])])
    >>> y = np.full(240, -1); y[:30] = 0; y[60:90] = 1  # two known classes, half labeled
    >>> model = SemiSupervisedGMM(n_components=2, random_state=0).fit(X, y)
    >>> model.n_components_, sorted(model.component_labels_.tolist())
    (4, [0, 1, 2, 3])
    """

    _parameter_constraints: dict = {  # noqa: RUF012 - scikit-learn's convention
        "n_components": [Interval(Integral, 1, None, closed="left")],
        "covariance_type": [StrOptions(set(COVARIANCE_TYPES))],
        "projection": [StrOptions({"auto"}), Interval(Integral, 1, None, closed="left"), None],
        "split_merge": ["boolean"],
        "concentration": [Interval(Real, 0, None, closed="neither"), StrOptions({"labeled"})],
        "assignment": [StrOptions({"soft", "hard"})],
        "covariance_prior": [None, Interval(Real, 0, None, closed="neither"), "array-like"],
        "covariance_prior_strength": [Interval(Real, 0, None, closed="neither")],
        "mean_precision_prior": [None, Interval(Real, 0, None, closed="neither")],
        "acceptance": [StrOptions(set(ACCEPTANCE_RULES))],
        "random_accept": [Interval(Real, 0, 1, closed="both")],
        "n_merge_neighbors": [Interval(Integral, 1, None, closed="left")],
        "burn_in": [Interval(Integral, 0, None, closed="left")],
        "n_init": [Interval(Integral, 1, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    def __init__(
        self,
        n_components=10,
        *,
        covariance_type="full",
        projection="auto",
        split_merge=True,
        concentration="labeled",
        assignment="soft",
        covariance_prior=None,
        covariance_prior_strength=100.0,
        mean_precision_prior=None,
        acceptance="threshold",
        random_accept=0.0,
        n_merge_neighbors=3,
        burn_in=5,
        n_init=1,
        max_iter=200,
        tol=1e-5,
        random_state=None,
        verbose=0,
    ):
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.projection = projection
        self.split_merge = split_merge
        self.concentration = concentration
        self.assignment = assignment
        self.covariance_prior = covariance_prior
        self.covariance_prior_strength = covariance_prior_strength
        self.mean_precision_prior = mean_precision_prior
        self.acceptance = acceptance
        self.random_accept = random_accept
        self.n_merge_neighbors = n_merge_neighbors
        self.burn_in = burn_in
        self.n_init = n_init
        self.max_iter = max_iter
        self.tol = tol
        self.random_state = random_state
        self.verbose = verbose

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Fit the mixture; ``y`` holds class labels of labeled samples, -1 elsewhere.

        Without labels (``y=None`` or all -1) this is an unsupervised mixture.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            The fit runs on NumPy and Numba: arrays of other libraries (PyTorch tensors,
            CuPy arrays, ...) are copied to the host, and the fitted attributes are NumPy
            arrays. :meth:`predict`, :meth:`predict_proba`, :meth:`score_samples` and
            :meth:`score` compute on such arrays' device.
        y : array-like of shape (n_samples,) or None
            Class labels (integers, strings, ...), -1 for unlabeled samples; None: all
            unlabeled. Labeled classes keep their labels (sorted in ``classes_``), new
            components get new labels; more labeled classes than ``n_components`` start
            one component per class, and a fully labeled ``y`` fits one component per
            class, without split/merge moves (``concentration_`` is None): no unlabeled sample is
            left to form a new component (see "Labels" in :class:`SemiSupervisedKMeans`).

        Returns
        -------
        self
        """
        X, dtype, partial, n_components, rng = _prepare_fit(self, X, y, self.n_components)
        self._n_fit_samples = X.shape[0]
        X = self._project(X, n_components)  # see "Projection" in the class docstring
        init = seeded_kmeans(X, partial.codes, n_components, rng=rng, n_init=self.n_init)
        prior = self._prior(X, partial.codes if partial.n_classes else init.labels)
        init_class = partial.cluster_classes(n_components)
        moves = None
        if self.split_merge and not partial.all_labeled:  # else nothing can split off
            moves = MoveConfig(
                alpha=self.concentration,
                acceptance=self.acceptance,
                random_accept=self.random_accept,
                n_merge_neighbors=self.n_merge_neighbors,
                burn_in=self.burn_in,
            )
        result = fit_mixture(
            X,
            partial.codes,
            init.labels,
            init_class,
            prior,
            moves=moves,
            hard=self.assignment == "hard",
            max_iter=self.max_iter,
            tol=self.tol,
            rng=rng,
            callback=self._progress(),
        )
        self._store(result, partial, X.shape, dtype)
        if not self.converged_:
            warnings.warn(
                f"SemiSupervisedGMM did not converge in max_iter={self.max_iter} sweeps "
                f"(K={self.n_components_}, last relative change of the objective "
                f"{self._last_change():.2e}, tol={self.tol}); increase max_iter.",
                ConvergenceWarning,
                stacklevel=3,
            )
        return self

    def _prior(self, X, groups):
        """NIW prior whose inverse-Wishart mean is the expected covariance (class docstring)."""
        d = X.shape[1]
        expected = self._expected_covariance(X, groups)
        strength = float(self.covariance_prior_strength)
        if self.covariance_type == "full":
            nu, psi = strength + d + 1, strength * expected
        elif self.covariance_type == "diag":
            nu, psi = strength + 2, strength * np.diag(expected)
        else:
            nu, psi = strength + 2, strength * np.trace(expected) / d
        return NIWPrior(
            mean=X.mean(axis=0, dtype=np.float64),
            kappa=self._mean_precision(X, expected),
            nu=nu,
            psi=psi,
            covariance_type=self.covariance_type,
        )

    def _mean_precision(self, X, expected):
        """``kappa``: given, or the expected over the total variance (at most 1)."""
        if self.mean_precision_prior is not None:
            return float(self.mean_precision_prior)
        expected_variance = np.trace(np.atleast_2d(expected)) / X.shape[1]
        total_variance = float(np.var(X, axis=0, dtype=np.float64).mean())
        if not total_variance > 0:
            return 1.0
        return float(min(1.0, expected_variance / total_variance))

    def _project(self, X, n_components):
        """``X`` (in the frame) on its leading principal components, or ``X`` itself;
        sets ``self._frame`` to the projected frame when it projects."""
        n, d = X.shape
        if self.projection is None:
            p = d
        elif self.projection == "auto":
            p = auto_dimension(n, d, n_components)
        else:
            p = min(int(self.projection), d)
        self._n_model_features = p
        if p >= d:
            return X
        mean, basis = principal_basis(X, p)
        self._frame = ProjectedFrame(self._frame, Projection(mean, basis.T))
        return self._frame.projection(X)

    def _given_covariance(self, d):
        """``covariance_prior`` as a (d, d) matrix in the frame's units (``d`` features
        of ``X``)."""
        given = np.asarray(self.covariance_prior, dtype=np.float64)
        if given.ndim == 0:
            given = float(given) * np.eye(d)
        if given.shape == (d,):
            given = np.diag(given)
        if given.shape != (d, d):
            raise ValueError(
                f"covariance_prior must be a float, a ({d},) vector or a ({d}, {d}) "
                f"matrix, got shape {given.shape}."
            )
        if not np.all(np.isfinite(given)) or np.any(np.linalg.eigvalsh(given) <= 0):
            raise ValueError("covariance_prior must be finite and positive definite.")
        framed = self._frame.lengths(given, -2)  # X's units -> the frame's
        if not np.all(np.isfinite(framed)) or np.any(np.linalg.eigvalsh(framed) <= 0):
            raise ValueError(
                "covariance_prior is out of the floating-point range once divided by "
                f"scale**2 = 2**{2 * self._frame.exponent} (X's spread); give it in "
                "X's units, comparable to X's covariance."
            )
        return framed

    def _expected_covariance(self, X, groups):
        d = X.shape[1]
        if self.covariance_prior is not None:
            framed = self._given_covariance(self.n_features_in_)
            projection = getattr(self._frame, "projection", None)
            if projection is None:
                return framed
            return projection.components @ framed @ projection.components.T
        member = groups >= 0
        Xg, g = X[member].astype(np.float64), groups[member]
        sums = np.zeros((g.max() + 1, d))
        np.add.at(sums, g, Xg)
        counts = np.bincount(g)
        residual = Xg - (sums / np.maximum(counts, 1)[:, None])[g]
        dof = max(residual.shape[0] - np.count_nonzero(counts), 1)
        pooled = residual.T @ residual / dof
        scale = np.trace(pooled) / d
        if not scale > 0:  # every group is a single point or constant: use the data spread
            pooled = np.cov(X, rowvar=False, dtype=np.float64).reshape(d, d)
            scale = np.trace(pooled) / d
        if not scale > 0:
            raise ValueError(
                f"X is constant (n_samples={X.shape[0]}): a Gaussian mixture needs some spread."
            )
        return pooled + _PRIOR_RIDGE * scale * np.eye(d)

    def _progress(self):
        report = progress_printer(
            self.verbose, "SemiSupervisedGMM", [("K", "d"), ("objective", ".6g")], unit="sweep"
        )
        if report is None:
            return None

        def in_units_of_x(sweep, n_components, objective):
            objective -= self._log_jacobian(self._n_fit_samples, n_components)
            report(sweep, n_components, objective)

        return in_units_of_x

    def _log_jacobian(self, n_samples, n_components):
        """What the frame adds to a log-likelihood of ``n_samples`` plus the log prior of
        ``n_components`` components: ``(n d + K m) log(scale)``, ``m`` the scaled
        parameters of a component (``d`` for the mean, ``d (d + 1)`` for a full
        covariance's ``d (d + 1) / 2`` entries each scaled by ``scale**2``, ``2 d``
        diagonal, 2 spherical)."""
        d = self._n_model_features
        m = d + {"full": d * (d + 1), "diag": 2 * d, "spherical": 2}[self.covariance_type]
        return (n_samples * d + np.asarray(n_components) * m) * self._frame.log_scale

    def _store(self, result, partial, shape, dtype):
        params = result.params
        frame = self._frame
        self._frame_params = params  # predictions run in the frame
        self.n_components_ = params.n_components
        self.classes_ = partial.classes
        self.component_labels_ = partial.output_labels(result.component_class)
        self.weights_ = params.weights.astype(dtype)
        self.means_ = frame.points(params.means).astype(dtype)
        projection = getattr(frame, "projection", None)
        self.projection_ = None if projection is None else projection.components.astype(dtype)
        self.covariances_ = frame.lengths(params.covariances, 2).astype(dtype)
        self.precisions_cholesky_ = frame.lengths(params.precisions_cholesky, -1).astype(dtype)
        self.responsibilities_ = result.resp.astype(dtype)
        self.labels_ = self.component_labels_[np.argmax(result.resp, axis=1)]
        n = shape[0]
        self._frame_objective_history = result.objective_history
        self.log_likelihood_history_ = result.loglik_history - self._log_jacobian(n, 0)
        self.objective_history_ = result.objective_history - self._log_jacobian(
            n, result.n_components_history
        )
        self.n_components_history_ = result.n_components_history
        self.log_concentration_ = result.log_alpha
        self.concentration_ = None if result.log_alpha is None else float(np.exp(result.log_alpha))
        self.n_splits_ = result.n_splits
        self.n_merges_ = result.n_merges
        self.n_iter_ = result.n_iter
        self.converged_ = result.converged

    def _last_change(self):
        history = self._frame_objective_history  # what tol is compared with
        if history.shape[0] < 2:
            return float("nan")
        return abs(history[-1] - history[-2]) / max(abs(history[-1]), 1e-300)

    def _log_joint(self, X):
        """``log pi_k + log N(z_i | k)`` of the samples in the frame, shape (n, K); the
        namespace of ``X`` (None for NumPy-compatible input), the float dtype of the
        checked ``X``, the component labels in that namespace (None on NumPy) and the
        rows whose log density lies below the float range (None: no such row).

        NumPy-compatible input: a float64 ndarray. Arrays of other libraries: an array of
        their namespace on their device, in its accumulation dtype. Rows far from every
        component (every squared distance overflows, e.g. a sample at 1e200) are redone
        relative to their nearest component (:func:`~clusterlab.solvers.gaussian.fix_far_rows`),
        so that their posteriors are finite; on a device, looking for them costs one host
        synchronisation, and such rows are redone on the host.
        """
        check_is_fitted(self)
        xp = _array_namespace(X)
        params = self._frame_params
        with np.errstate(divide="ignore"):
            log_weights = np.log(params.weights)
        if xp is None:
            X = validate_data(self, X, dtype=[np.float64, np.float32], order="C", reset=False)
            Z = self._frame.to_frame(X)
            with np.errstate(over="ignore", invalid="ignore"):
                log_joint = log_gaussian(Z, params, log_weights)
            below = fix_far_rows(Z, params, log_joint, log_weights)
            return log_joint, None, X.dtype, None, below
        X = _check_array_input(self, X)
        Z = self._frame.to_frame(X)
        mixture, labels = self._mixture_on(xp, device(Z), Z.dtype)  # no state written
        with np.errstate(over="ignore", invalid="ignore"):  # NumPy-backed namespaces
            log_joint = log_gaussian_array(xp, Z, mixture)
        below = None
        if not bool(xp.all(xp.isfinite(xp.max(log_joint, axis=1)))):
            host = np.array(to_numpy(log_joint), dtype=np.float64)
            below = fix_far_rows(to_numpy(Z), params, host, log_weights)
            where = device(log_joint)
            log_joint = xp.asarray(host, dtype=log_joint.dtype, device=where)
            below = xp.asarray(below, device=where)
        return log_joint, xp, X.dtype, labels, below

    def _mixture_on(self, xp, where, dtype):
        params = self._frame_params
        with np.errstate(divide="ignore"):
            log_weights = np.log(params.weights)
        mixture = mixture_on(params, log_weights, xp, where, dtype)
        return mixture, _labels_on(xp, self.component_labels_, where)

    def predict(self, X):
        """Label of the most probable component of each sample (no clamping).

        Parameters
        ----------
        X : array of shape (n_samples, n_features)
            NumPy-compatible input, or an array of any array-API library (a PyTorch
            tensor on CPU or CUDA, a CuPy array, ...), which is scored on its device.

        Returns
        -------
        labels : array of shape (n_samples,)
            Values of ``component_labels_`` (int64 for integer classes): a NumPy array for
            NumPy-compatible input, else an array of ``X``'s library on ``X``'s device
            (string classes: a NumPy array of them).
            A Dask array (rows in chunks) gives a Dask array chunked along the rows as
            ``X``, each chunk labeled by the NumPy path where it is computed: the number
            of features is checked now, the values then.
        """
        if is_dask_array(X):  # row chunks labeled on the workers, lazily
            check_is_fitted(self)
            return map_method(
                self, "predict", X, dtype=self.component_labels_.dtype, drop=_PER_SAMPLE
            )
        log_joint, xp, _, labels, _ = self._log_joint(X)
        if xp is None:
            return self.component_labels_[np.argmax(log_joint, axis=1)]
        if labels is None:  # string classes cannot live on a device
            return self.component_labels_[to_numpy(xp.argmax(log_joint, axis=1))]
        return xp.take(labels, xp.argmax(log_joint, axis=1), axis=0)

    def predict_proba(self, X):
        """Posterior probability of every component; columns follow ``component_labels_``.

        Parameters
        ----------
        X : array of shape (n_samples, n_features)
            NumPy-compatible input, or an array of any array-API library (a PyTorch
            tensor on CPU or CUDA, a CuPy array, ...), which is scored on its device.

        Returns
        -------
        proba : array of shape (n_samples, n_components)
            In ``X``'s float dtype (float32 stays float32; computed in float64 where the
            device has it): a NumPy array for NumPy-compatible input, else an array of
            ``X``'s library on ``X``'s device. Finite and summing to one for any finite
            ``X``, however far from the components (see :meth:`score_samples`).
            A Dask array (rows in chunks) gives a Dask array chunked along the rows as
            ``X``, each chunk scored by the NumPy path where it is computed: the number
            of features is checked now, the values then.
        """
        if is_dask_array(X):  # row chunks scored on the workers, lazily
            check_is_fitted(self)
            return map_method(
                self,
                "predict_proba",
                X,
                dtype=_float_dtype(X.dtype),
                n_columns=self.component_labels_.shape[0],
                drop=_PER_SAMPLE,
            )
        log_joint, xp, dtype, _, _ = self._log_joint(X)
        xp = xp or get_namespace(log_joint)
        proba = xp.exp(log_joint - logsumexp(xp, log_joint, axis=1, keepdims=True))
        return xp.astype(proba, dtype, copy=False)

    def score_samples(self, X):
        """Log density ``log sum_k pi_k N(x | mu_k, Sigma_k)`` of each sample.

        Parameters
        ----------
        X : array of shape (n_samples, n_features)
            NumPy-compatible input, or an array of any array-API library (a PyTorch
            tensor on CPU or CUDA, a CuPy array, ...), which is scored on its device.

        Returns
        -------
        log_density : array of shape (n_samples,)
            In ``X``'s float dtype: a NumPy array for NumPy-compatible input, else an
            array of ``X``'s library on ``X``'s device. A sample so far from every
            component that its log density is below about -1e308 gets ``-inf``. Rows
            whose every squared distance overflows are redone relative to their nearest
            component (on a device this costs one host synchronisation per call to look
            for them).
        """
        log_density, dtype = self._log_density(X)
        return get_namespace(log_density).astype(log_density, dtype, copy=False)

    def score(self, X, y=None):
        """Mean log density of the samples (``y`` is ignored).

        Parameters
        ----------
        X : array of shape (n_samples, n_features)
            NumPy-compatible input, or an array of any array-API library, scored on its
            device; only the mean comes to the host.
        y : ignored

        Returns
        -------
        float
        """
        log_density, _ = self._log_density(X)
        xp = get_namespace(log_density)
        (mean,) = host_floats(xp, xp.mean(log_density))
        return mean

    def _log_density(self, X):
        """Log densities in ``X``'s units (the frame's minus ``d log scale``), in the
        accumulation dtype, and the dtype to return them in."""
        log_joint, xp, dtype, _, below = self._log_joint(X)
        xp = xp or get_namespace(log_joint)
        log_density = logsumexp(xp, log_joint, axis=1) - (
            self._n_model_features * self._frame.log_scale
        )
        if below is not None:
            log_density = xp.where(below, xp.full_like(log_density, -xp.inf), log_density)
        return log_density, dtype
