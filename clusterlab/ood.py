"""Out-of-distribution detection with inlier prototypes: MaxQuery scores.

Yuan et al. ("Devil is in the Queries", CVPR 2023) observe that the queries of a mask
transformer act as cluster centres of the inlier data, and score a pixel as
out-of-distribution by the negative of its largest affinity to any query,
``-max_n a(x, q_n)``. On fixed embeddings the queries become a few spherical k-means
prototypes per inlier class (:class:`PrototypeOODDetector`), and the score is the largest
cosine to any of them (:func:`max_query_score`).

Both follow scikit-learn's convention for outlier detectors: scores are
*in-distribution* scores, higher for more typical samples (the paper's OOD score with its
sign flipped). :func:`clusterlab.metrics.evaluate_ood` measures them.

``max_query_score`` and the detector's ``score_samples``, ``decision_function`` and
``predict`` take NumPy arrays, PyTorch tensors (CPU or CUDA), CuPy arrays and other
array-API arrays and return the same kind on the same device.
"""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, OutlierMixin
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, column_or_1d

from clusterlab._sklearn_compat import Interval, StrOptions, _fit_context, validate_data
from clusterlab._validation import check_float_matrix, check_positive
from clusterlab.solvers import prototype_ood as _po
from clusterlab.solvers._backend import (
    device,
    get_namespace,
    is_array,
    is_other_array,
    stop_gradient,
    to_namespace,
    to_numpy,
    unit_rows,
)
from clusterlab.spherical import SphericalKMeans

__all__ = ["PrototypeOODDetector", "max_query_score"]

_AFFINITIES = ("cosine", "dot")
_NORMALIZATIONS = ("none", "softmax")


def _check_choice(value, name, choices):
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}.")
    return value


def _same_namespace(xp, array, X):
    """``array`` in the namespace, on the device and in the dtype of ``X``."""
    if (
        is_array(array)
        and not isinstance(array, np.ndarray)
        and get_namespace(array) is xp
        and device(array) == device(X)
    ):
        moved = array
    else:
        moved = to_namespace(xp, to_numpy(array) if is_array(array) else array, device(X))
    return xp.astype(moved, X.dtype, copy=False)


def max_query_score(X, centers, *, affinity="cosine", normalize="none", temperature=1.0):
    """In-distribution score of each sample: its largest affinity to any prototype.

    MaxQuery's OOD score is ``-max_n a(x, q_n)``; this returns ``max_n a(x, q_n)``, so
    that higher means more in-distribution (scikit-learn's ``score_samples``
    convention)::

        normalize="none":     s(x) = max_n a(x, c_n)
        normalize="softmax":  s(x) = max_n exp(a(x, c_n) / T) / sum_m exp(a(x, c_m) / T)

    with ``a`` the cosine (``affinity="cosine"``) or the inner product (``"dot"``).

    Parameters
    ----------
    X : array of shape (n_samples, n_features)
        Embeddings. NumPy arrays (and array-likes), PyTorch tensors, CuPy arrays and
        other array-API arrays; float32 stays float32.
    centers : array of shape (n_prototypes, n_features)
        Prototypes (e.g. ``PrototypeOODDetector().fit(...).cluster_centers_``, or a mask
        transformer's queries). Copied to the namespace, device and dtype of ``X`` where
        they differ.
    affinity : {"cosine", "dot"}, default="cosine"
        Cosine of sample and prototype, or their inner product (the prototypes and
        samples as given). With ``"cosine"`` an all-zero sample has affinity 0 to every
        prototype; an all-zero prototype is an error.
    normalize : {"none", "softmax"}, default="none"
        The raw largest affinity, or the largest softmax assignment over the prototypes.
        The paper does not settle which one MaxQuery uses; both are offered (the user
        guide compares them).
    temperature : float > 0, default=1.0
        ``T`` of the softmax (ignored by ``normalize="none"``). On cosines, small
        temperatures split a class's mass over its prototypes and rank poorly; at 1 the
        ranking is close to the raw maximum's (see the user guide).

    Returns
    -------
    scores : array of shape (n_samples,)
        In the namespace, on the device and in the dtype of ``X``. On PyTorch the scores
        keep the autograd graph of ``X`` and ``centers`` (all operations are
        differentiable), so they can serve in a training loss.

    Examples
    --------
    >>> import numpy as np
    >>> from clusterlab.ood import max_query_score
    >>> centers = np.eye(3)
    >>> X = np.array([[2.0, 0.0, 0.0], [1.0, 1.0, 1.0]])
    >>> max_query_score(X, centers).round(3).tolist()        # cosines 1 and 1/sqrt(3)
    [1.0, 0.577]
    >>> max_query_score(X, centers, normalize="softmax").round(3).tolist()
    [0.576, 0.333]
    """
    X = check_float_matrix(X, "X")
    xp = get_namespace(X)
    if is_other_array(centers):
        centers = check_float_matrix(centers, "centers")
    else:
        centers = check_float_matrix(to_numpy(centers) if is_array(centers) else centers, "centers")
    if centers.shape[1] != X.shape[1]:
        raise ValueError(f"centers have {centers.shape[1]} features but X has {X.shape[1]}.")
    centers = _same_namespace(xp, centers, X)
    affinity = _check_choice(affinity, "affinity", _AFFINITIES)
    normalize = _check_choice(normalize, "normalize", _NORMALIZATIONS)
    temperature = check_positive(temperature, "temperature")
    if affinity == "cosine":
        if bool(xp.any(xp.linalg.vector_norm(centers, axis=1) == 0)):
            raise ValueError("centers has an all-zero row: its cosines are undefined.")
        centers = unit_rows(xp, centers)
    return _po.max_query(
        X, centers, affinity=affinity, normalize=normalize, temperature=temperature
    )


class PrototypeOODDetector(OutlierMixin, BaseEstimator):
    """Novelty detection by the largest affinity to a few prototypes per inlier class.

    ``fit`` places ``n_prototypes`` spherical k-means prototypes
    (:class:`~clusterlab.spherical.SphericalKMeans`) in every class of the inlier
    training data; a class with no more distinct (normalised) samples than
    ``n_prototypes`` keeps those samples as its prototypes. ``score_samples`` is
    :func:`max_query_score` against all prototypes: the MaxQuery score of Yuan et al.
    with the mask transformer's queries replaced by per-class prototypes, sign flipped so
    that higher means more in-distribution.

    The estimator follows scikit-learn's novelty-detection convention (as
    :class:`~sklearn.neighbors.LocalOutlierFactor` with ``novelty=True`` and
    :class:`~sklearn.svm.OneClassSVM`): ``decision_function = score_samples - offset_``,
    negative for outliers, and ``predict`` returns +1 for inliers and -1 for outliers.
    ``offset_`` is the ``contamination`` quantile of the training scores, so that a
    fraction ``contamination`` of the training samples is predicted -1. Training samples
    lie close to the prototypes fitted on them: on new inliers the fraction predicted -1
    is larger.

    ``fit`` copies device arrays to the host (spherical k-means runs there) and the
    fitted attributes are NumPy arrays. ``score_samples``, ``decision_function`` and
    ``predict`` take NumPy arrays, PyTorch tensors (CPU or CUDA), CuPy arrays and other
    array-API arrays: the prototypes are copied to the input's namespace and device, and
    the result is of the input's kind (scores in the fitted dtype, ``predict`` int64;
    tensors are detached).

    Parameters
    ----------
    n_prototypes : int, default=10
        Prototypes per class (chosen among 1, 3, 5 and 10 on scikit-learn's digits; see
        the user guide).
    affinity : {"cosine", "dot"}, default="cosine"
        Affinity of a sample to a prototype (the prototypes have unit norm in both
        cases; ``"dot"`` lets the sample's norm count).
    normalize : {"none", "softmax"}, default="none"
        Raw largest affinity, or largest softmax assignment over all prototypes.
    temperature : float > 0, default=1.0
        Softmax temperature (``normalize="softmax"`` only; chosen between 0.1 and 1 on
        digits).
    contamination : float in (0, 0.5], default=0.05
        Fraction of the training samples predicted as outliers; it sets ``offset_``.
        The default 0.05 puts the threshold where 95 % of the training inliers are
        accepted, the operating point of FPR95.
    n_init : int, default=1
        Seedings of every class's :class:`~clusterlab.spherical.SphericalKMeans`.
    max_iter : int, default=100
        Lloyd iterations cap of every class's spherical k-means.
    tol : float, default=1e-4
        Centre-shift tolerance of every class's spherical k-means (see
        :class:`~clusterlab.spherical.SphericalKMeans`).
    random_state : int, RandomState instance or None, default=None
        Seeds the spherical k-means runs (one generator, drawn from class by class).

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        The inlier classes (any label type); ``[0]`` when ``fit`` got no ``y``.
    cluster_centers_ : ndarray of shape (n_total_prototypes, n_features)
        All prototypes, unit rows, grouped by class in the order of ``classes_``.
    prototype_classes_ : ndarray of shape (n_total_prototypes,)
        The class of every prototype (values of ``classes_``).
    n_prototypes_ : ndarray of shape (n_classes,)
        Prototypes per class (``n_prototypes``, or fewer for a class with fewer distinct
        samples).
    offset_ : float
        Threshold of ``decision_function``.
    n_iter_ : ndarray of shape (n_classes,)
        Spherical k-means iterations per class (0 for a class whose samples are its
        prototypes).
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Only when ``X`` has feature names.

    See Also
    --------
    max_query_score : the score, on any prototypes.
    clusterlab.metrics.evaluate_ood : AUROC, AUPR and FPR95 of a score.

    References
    ----------
    Yuan et al., "Devil is in the Queries: Advancing Mask Transformers for Real-world
    Medical Image Segmentation and Out-of-Distribution Localization", CVPR 2023.

    Examples
    --------
    >>> import numpy as np
    >>> from clusterlab.ood import PrototypeOODDetector
    >>> rng = np.random.default_rng(0)
    >>> X = np.concatenate([rng.normal([5, 0, 0], 1, (50, 3)), rng.normal([0, 5, 0], 1, (50, 3))])
    >>> y = np.repeat(["cat", "dog"], 50)
    >>> detector = PrototypeOODDetector(n_prototypes=2, random_state=0).fit(X, y)
    >>> detector.cluster_centers_.shape, detector.prototype_classes_.tolist()
    ((4, 3), ['cat', 'cat', 'dog', 'dog'])
    >>> detector.predict([[6.0, 0.5, 0.0], [0.0, 0.0, 5.0]]).tolist()
    [1, -1]
    """

    _parameter_constraints: dict = {  # noqa: RUF012 - scikit-learn's convention
        "n_prototypes": [Interval(Integral, 1, None, closed="left")],
        "affinity": [StrOptions(set(_AFFINITIES))],
        "normalize": [StrOptions(set(_NORMALIZATIONS))],
        "temperature": [Interval(Real, 0, None, closed="neither")],
        "contamination": [Interval(Real, 0, 0.5, closed="right")],
        "n_init": [Interval(Integral, 1, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        n_prototypes=10,
        *,
        affinity="cosine",
        normalize="none",
        temperature=1.0,
        contamination=0.05,
        n_init=1,
        max_iter=100,
        tol=1e-4,
        random_state=None,
    ):
        self.n_prototypes = n_prototypes
        self.affinity = affinity
        self.normalize = normalize
        self.temperature = temperature
        self.contamination = contamination
        self.n_init = n_init
        self.max_iter = max_iter
        self.tol = tol
        self.random_state = random_state

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Fit prototypes to inlier embeddings ``X`` with their classes ``y``.

        ``y`` holds class labels of any type (integers, strings...; -1 is an ordinary
        class); None treats all samples as one class. Every sample must have a nonzero
        row (the prototypes are fitted to the normalised samples).
        """
        if is_other_array(X):
            X = to_numpy(stop_gradient(get_namespace(X), X))
        X = validate_data(self, X, dtype=[np.float64, np.float32], order="C")
        norms = np.linalg.norm(X, axis=1)
        if np.any(norms == 0):
            raise ValueError(
                "X has an all-zero row: prototypes are fitted to normalised samples, "
                "which needs nonzero rows."
            )
        self.classes_, class_index = self._check_classes(y, X.shape[0])
        rng = check_random_state(self.random_state)
        unit = X / norms[:, None]
        centers, counts, n_iter = [], [], []
        for k in range(self.classes_.shape[0]):
            class_centers, class_iter = self._class_prototypes(unit[class_index == k], rng)
            centers.append(class_centers)
            counts.append(class_centers.shape[0])
            n_iter.append(class_iter)
        self.cluster_centers_ = np.ascontiguousarray(np.concatenate(centers), dtype=X.dtype)
        self.n_prototypes_ = np.asarray(counts, dtype=np.int64)
        self.prototype_classes_ = np.repeat(self.classes_, self.n_prototypes_)
        self.n_iter_ = np.asarray(n_iter, dtype=np.int64)
        scores = _po.max_query(
            X,
            self.cluster_centers_,
            affinity=self.affinity,
            normalize=self.normalize,
            temperature=self.temperature,
        )
        self.offset_ = float(np.percentile(scores, 100.0 * self.contamination))
        return self

    @staticmethod
    def _check_classes(y, n_samples):
        if y is None:
            return np.zeros(1, dtype=np.int64), np.zeros(n_samples, dtype=np.int64)
        if is_array(y) and not isinstance(y, np.ndarray):
            y = to_numpy(y)
        y = column_or_1d(y, warn=True)
        if y.shape[0] != n_samples:
            raise ValueError(f"y has {y.shape[0]} labels but X has {n_samples} samples.")
        if y.dtype.kind == "f" and not np.isfinite(y).all():
            raise ValueError("y contains NaN or infinite labels.")
        check_classification_targets(y)
        return np.unique(y, return_inverse=True)

    def _class_prototypes(self, unit, rng):
        """Unit-norm prototypes of one class's normalised samples, and the k-means
        iterations run (0 when the samples are the prototypes)."""
        distinct = np.unique(unit, axis=0)
        if distinct.shape[0] <= self.n_prototypes:
            return distinct, 0
        model = SphericalKMeans(
            n_clusters=self.n_prototypes,
            n_init=self.n_init,
            max_iter=self.max_iter,
            tol=self.tol,
            random_state=rng,
        ).fit(unit)
        return np.asarray(model.cluster_centers_, dtype=unit.dtype), int(model.n_iter_)

    # -- inference -------------------------------------------------------------------

    def _check_new(self, X):
        """``X`` validated, with the prototypes in its namespace, device and dtype."""
        check_is_fitted(self)
        if not is_other_array(X):
            X = validate_data(self, X, dtype=[np.float64, np.float32], order="C", reset=False)
            X = X.astype(self.cluster_centers_.dtype, copy=False)
            return X, self.cluster_centers_
        X = check_float_matrix(X, "X")
        xp = get_namespace(X)
        X = stop_gradient(xp, X)
        if X.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {X.shape[1]} features, but {type(self).__name__} is expecting "
                f"{self.n_features_in_} features as input."
            )
        centers = to_namespace(xp, self.cluster_centers_, device(X))
        return xp.astype(X, centers.dtype, copy=False), centers

    def score_samples(self, X):
        """In-distribution score (higher = more typical): :func:`max_query_score` of
        ``X`` against the prototypes. Of the namespace and on the device of ``X``."""
        X, centers = self._check_new(X)
        return _po.max_query(
            X,
            centers,
            affinity=self.affinity,
            normalize=self.normalize,
            temperature=self.temperature,
        )

    def decision_function(self, X):
        """``score_samples(X) - offset_``: negative for predicted outliers."""
        return self.score_samples(X) - self.offset_

    def predict(self, X):
        """+1 for inliers (``decision_function >= 0``), -1 for outliers; int64, of the
        namespace and on the device of ``X``."""
        decision = self.decision_function(X)
        xp = get_namespace(decision)
        where = device(decision)
        one = xp.ones(decision.shape, dtype=xp.int64, device=where)
        return xp.where(decision >= 0, one, -one)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = False  # y (the classes) is optional
        return tags
