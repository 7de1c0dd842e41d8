"""MGCA's cross-modal prototype head: clustering paired views with swapped balanced codes.

MGCA (Wang et al., NeurIPS 2022) aligns image and report embeddings with, among other
terms, a prototype loss: both modalities are scored against ``K = 500`` shared unit
prototypes, each modality's balanced Sinkhorn codes (SwAV's procedure, eps = 0.05,
3 iterations, computed per batch and detached) are the targets of the *other* modality's
predictions ``softmax(scores / 0.2)``. :class:`CrossModalPrototypeClustering` is that head
on fixed embeddings: one set of prototypes per view, each updated from the other view's
codes. The training loss itself is :func:`clusterlab.swapped_prediction_loss`.

MGCA's prototype loss in a PyTorch training step
-------------------------------------------------
Pass the two modalities' scores against the prototypes with MGCA's settings: ``eps=0.05``,
``n_iter=3``, ``tau=0.2``; the codes are detached inside (no gradient flows through them),
and MGCA renormalises the prototypes before every step. (The doctest below skips where
PyTorch is not installed.)

>>> import pytest
>>> torch = pytest.importorskip("torch")
>>> from torch.nn.functional import normalize
>>> from clusterlab import swapped_prediction_loss
>>> _ = torch.manual_seed(0)
>>> prototypes = torch.nn.Linear(128, 500, bias=False)  # K = 500 prototypes, as in MGCA
>>> image = torch.randn(32, 128, requires_grad=True)  # stand-ins for the encoders' output
>>> report = torch.randn(32, 128, requires_grad=True)
>>> with torch.no_grad():
...     _ = prototypes.weight.copy_(normalize(prototypes.weight, dim=1))
>>> loss, _, _ = swapped_prediction_loss(
...     prototypes(normalize(image, dim=1)), prototypes(normalize(report, dim=1)),
...     eps=0.05, tau=0.2, n_iter=3)
>>> loss.backward()  # gradients reach both encoders and the prototypes
>>> image.grad.shape, prototypes.weight.grad.shape
(torch.Size([32, 128]), torch.Size([500, 128]))
"""

from __future__ import annotations

import warnings
from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, ClusterMixin, TransformerMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_array, check_random_state
from sklearn.utils.validation import check_is_fitted

from clusterlab._progress import progress_printer
from clusterlab._sklearn_compat import Interval, StrOptions, _fit_context, validate_data
from clusterlab._validation import check_float_matrix, check_n_clusters, count_runs
from clusterlab.solvers import balanced_kmeans as _bk
from clusterlab.solvers import crossmodal as _cm
from clusterlab.solvers._backend import (
    device,
    get_namespace,
    host_floats,
    is_array,
    is_numpy_namespace,
    is_other_array,
    stop_gradient,
    to_namespace,
    to_numpy,
    unit_rows,
)
from clusterlab.solvers.assignment import round_to_proportions

__all__ = ["CrossModalPrototypeClustering"]

# The transport behind the balanced labels: its plan is rounded to exact sizes, so a
# loose tolerance, or a capped run, is ample (as SinkhornKMeans' sinkhorn_tol).
_LABEL_TOL = 1e-4
_LABEL_MAX_ITER = 1000


class CrossModalPrototypeClustering(ClusterMixin, TransformerMixin, BaseEstimator):
    """Clustering of paired views by MGCA's swapped balanced prototype assignment.

    ``fit(X, y)`` takes two views of the same samples, row ``i`` of ``X`` paired with
    row ``i`` of ``y`` (as :class:`sklearn.cross_decomposition.CCA` takes them); the
    dimensions may differ. Each view's rows are L2-normalised and the view gets
    ``n_clusters`` unit prototypes. Every iteration (Gauss-Seidel, see
    :mod:`clusterlab.solvers.crossmodal`)

    1. computes a view's balanced codes ``Q`` (:func:`clusterlab.sinkhorn_codes` of its
       cosine scores: eps = ``eps``, ``n_sinkhorn_iter`` iterations, uniform marginals),
    2. sets the *other* view's prototypes to ``rownormalise(Q^T V)``: prototype ``k`` of a
       view points along that view's samples which the other view places in ``k``;

    in the order ``Q_y -> C_x -> Q_x -> C_y``, until the squared prototype shift is at
    most ``tol``. The swapped assignment ties both views' prototypes to the same cluster
    index, so that either view alone predicts a cluster of the joint model.

    **Combined evidence.** A pair's score against cluster ``k`` is the sum of its two
    cosines, ``S_ik = <x_i, c^x_k> + <y_i, c^y_k>``: the log of the product of the two
    views' Gibbs kernels (``exp(S^x / t) exp(S^y / t)``), and twice the cosine of the
    concatenated rows ``[x_i, y_i]`` against ``cluster_centers_``. An all-zero row has
    no direction and scores 0 against every prototype: in a pair the other view decides
    alone (a missing view can be passed as zeros); alone, it is a tie (``predict`` gives
    the lowest index, ``labels_`` leave it to the balance). ``labels_`` are the
    balanced labels of ``S``: its entropic transport with uniform marginals (``eps``,
    solved to a relative marginal error of 1e-4 or 1000 iterations, whichever comes
    first) rounded so that every cluster holds ``n / n_clusters`` samples, to within
    one. (The plan only orders the samples for the rounding: the sizes are exact even
    where a sample torn between two clusters slows the transport down.) :meth:`predict`
    scores new pairs, or one view alone, against the same prototypes.

    **One view.** ``y=None`` -- or a 1-D ``y``, scikit-learn's target that pipelines and
    model-selection tools pass to every ``fit`` and that an unsupervised estimator
    ignores (as :class:`sklearn.cluster.KMeans` does) -- fits ``X`` alone: its codes
    update its own prototypes, i.e. balanced spherical k-means with SwAV's codes. (CCA
    reads a 1-D ``y`` as a one-feature view; here such a view, normalised row by row,
    would keep only each entry's sign: pass it as a column ``(n, 1)`` if it is meant.)

    **Backends.** ``fit``, ``predict``, ``transform`` and ``fit_predict`` take NumPy
    arrays (and anything scikit-learn's ``validate_data`` takes), PyTorch tensors on
    the CPU or a GPU, CuPy arrays and other array-API arrays. ``fit`` runs on the
    namespace and device of ``X`` (``y`` is brought to them and to ``X``'s dtype), with
    one host synchronisation per iteration; the fitted prototypes are arrays of that
    kind (detached). The rounding of ``labels_`` to exact sizes runs on the host (the
    final plan is copied there once; the labels are copied back). A fitted model
    predicts on, and transforms, arrays of any of these kinds: the prototypes are
    copied to the input's namespace and device, and the input is computed in the
    fitted dtype.

    Parameters
    ----------
    n_clusters : int, default=8
        Prototypes per view, ``K`` (MGCA trains 500 for pretraining; for clustering, the
        number of clusters).
    eps : float, default=0.05
        Entropic regularisation of the codes and of the final transport, in cosine
        units (MGCA, SwAV: 0.05).
    n_sinkhorn_iter : int, default=3
        Sinkhorn iterations of each view's codes (MGCA, SwAV: 3). Three iterations
        balance the codes only roughly, and on less separable data some starts then
        never settle (MNIST-5k halves: 5 of 10 starts unconverged after 300 iterations); with 10
        every start converged there, at the same quality (see the user guide).
    tau : float, default=0.2
        Temperature of the predictions ``softmax(S / tau)`` that :meth:`transform`
        returns (MGCA: 0.2). The fit does not depend on it.
    max_iter : int, default=100
        Iterations (both views' prototype updates) per run.
    tol : float, default=1e-4
        Converged when ``||C_x - C_x'||_F^2 + ||C_y - C_y'||_F^2 <= tol`` over one
        iteration (unit prototypes: unit-free).
    init : {"k-means++", "random"}, array or pair of arrays, default="k-means++"
        ``"k-means++"`` seeds on the concatenated unit rows ``[x, y]`` and takes both
        views of the chosen samples as the initial prototypes (so their indices agree
        from the start); ``"random"`` takes ``n_clusters`` random pairs. An array of
        shape ``(n_clusters, n_features_x)`` for a one-view fit, or a pair
        ``(centers_x, centers_y)`` for a two-view fit (normalised here).
    n_init : int, default=1
        Runs from different initial prototypes; the one with the lowest final
        ``objective_`` wins.
    random_state : int, RandomState instance or None, default=None
        Seeds the k-means++ start.
    verbose : int, default=0
        Print the objective every ``verbose`` iterations (0: silent).

    Attributes
    ----------
    labels_ : array of shape (n_samples,), int64
        Balanced labels of the combined evidence (see above), in the namespace and on
        the device of ``X``.
    cluster_centers_x_ : array of shape (n_clusters, n_features_x)
        Unit prototypes of the ``X`` view.
    cluster_centers_y_ : array of shape (n_clusters, n_features_y) or None
        Unit prototypes of the ``y`` view; None after a one-view fit.
    cluster_centers_ : array of shape (n_clusters, n_features_x + n_features_y)
        ``[cluster_centers_x_, cluster_centers_y_]`` side by side, the prototypes of
        the concatenated views (``cluster_centers_x_`` after a one-view fit): a pair's
        combined score is ``[x, y] @ cluster_centers_.T`` for unit ``x`` and ``y``.
    code_agreement_ : float or None
        Share of the training pairs whose two views' codes have the same largest entry
        (None after a one-view fit).
    objective_history_ : ndarray
        The negative swapped alignment after every iteration of the best run,
        ``-1/(2n) sum_ik [Q^y_ik <x_i, c^x_k> + Q^x_ik <y_i, c^y_k>]`` (cosine units;
        ``-1/n sum_ik Q^x_ik <x_i, c^x_k>`` for one view): what the prototype step
        minimises for the codes at hand. It nearly always decreases, but the codes come
        from each view's own scores, so that is not guaranteed. (MGCA's training loss,
        :func:`clusterlab.swapped_prediction_loss`, picked worse runs among ``n_init``
        on digits halves; see :mod:`clusterlab.solvers.crossmodal`.)
    objective_ : float
        Its last value, used to pick the best of ``n_init`` runs.
    n_iter_ : int
        Iterations of the best run.
    converged_ : bool
    n_views_ : int
        2 for a two-view fit, 1 for a fit on ``X`` alone.
    n_features_in_ : int
        Features of ``X``.
    n_features_y_in_ : int or None
        Features of ``y`` (None after a one-view fit).

    See Also
    --------
    clusterlab.SinkhornKMeans : balanced k-means on one view, transport solved to a
        tolerance.
    clusterlab.swapped_prediction_loss : the training loss (MGCA's settings in the
        module docstring).
    sklearn.cross_decomposition.CCA : the two-view convention of ``fit(X, y)``.

    References
    ----------
    Wang, Zhou, Yu and Yu, "Multi-Granularity Cross-modal Alignment for Generalized
    Medical Visual Representation Learning", NeurIPS 2022 (code: HKU-MedAI/MGCA).
    Caron et al., "Unsupervised Learning of Visual Features by Contrasting Cluster
    Assignments", NeurIPS 2020.

    Examples
    --------
    >>> import numpy as np
    >>> from clusterlab import CrossModalPrototypeClustering
    >>> rng = np.random.default_rng(0)
    >>> truth = np.repeat(np.arange(3), 20)
    >>> X = np.eye(3)[truth] + 0.3 * rng.normal(size=(60, 3))  # view one: 3 features
    >>> y = np.eye(5)[truth] + 0.3 * rng.normal(size=(60, 5))  # view two: 5 features
    >>> model = CrossModalPrototypeClustering(n_clusters=3, random_state=0).fit(X, y)
    >>> np.bincount(model.labels_).tolist()
    [20, 20, 20]
    >>> bool(np.all(model.predict(X) == model.predict(None, y)))  # either view alone
    True
    >>> model.cluster_centers_x_.shape, model.cluster_centers_y_.shape
    ((3, 3), (3, 5))
    """

    _parameter_constraints: dict = {  # noqa: RUF012 - scikit-learn's convention
        "n_clusters": [Interval(Integral, 1, None, closed="left")],
        "eps": [Interval(Real, 0, None, closed="neither")],
        "n_sinkhorn_iter": [Interval(Integral, 1, None, closed="left")],
        "tau": [Interval(Real, 0, None, closed="neither")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "init": [StrOptions({"k-means++", "random"}), "array-like", tuple],
        "n_init": [Interval(Integral, 1, None, closed="left")],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    def __init__(
        self,
        n_clusters=8,
        *,
        eps=0.05,
        n_sinkhorn_iter=3,
        tau=0.2,
        max_iter=100,
        tol=1e-4,
        init="k-means++",
        n_init=1,
        random_state=None,
        verbose=0,
    ):
        self.n_clusters = n_clusters
        self.eps = eps
        self.n_sinkhorn_iter = n_sinkhorn_iter
        self.tau = tau
        self.max_iter = max_iter
        self.tol = tol
        self.init = init
        self.n_init = n_init
        self.random_state = random_state
        self.verbose = verbose

    # -- fitting ---------------------------------------------------------------------

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Fit prototypes to the paired views ``X`` and ``y`` (or to ``X`` alone).

        Parameters
        ----------
        X : array of shape (n_samples, n_features_x)
            The first view. NumPy (or array-like), PyTorch, CuPy or another array-API
            array; the fitted arrays are of its kind, on its device, in its dtype.
        y : array of shape (n_samples, n_features_y), 1-D array or None
            The second view, row ``i`` paired with row ``i`` of ``X``. None or a 1-D
            array (scikit-learn's ignored target ``y``) fits ``X`` alone.

        Returns
        -------
        self
        """
        X, y = self._validate_fit_views(X, y)
        xp = get_namespace(X)
        check_n_clusters(self.n_clusters, X.shape[0])
        X = unit_rows(xp, X)
        y = None if y is None else unit_rows(xp, y)
        rng = check_random_state(self.random_state)
        n_init = count_runs(self.init, self.n_init)
        callback = progress_printer(
            self.verbose, "CrossModalPrototypeClustering", [("objective", ".6g")]
        )
        best = None
        for _ in range(n_init):
            centers_x, centers_y = self._initial_centers(xp, X, y, rng)
            run = _cm.single_run(
                X,
                y,
                centers_x,
                centers_y,
                eps=self.eps,
                n_sinkhorn_iter=self.n_sinkhorn_iter,
                max_iter=self.max_iter,
                tol=self.tol,
                callback=callback,
            )
            if best is None or run.objective < best.objective:
                best = run
        if not best.converged:
            warnings.warn(
                f"CrossModalPrototypeClustering stopped after {best.n_iter} iterations "
                f"without reaching tol={self.tol:g}; raise max_iter.",
                ConvergenceWarning,
                stacklevel=3,
            )
        self.n_views_ = 1 if y is None else 2
        self.cluster_centers_x_ = best.centers_x
        self.cluster_centers_y_ = best.centers_y
        self.cluster_centers_ = (
            best.centers_x if y is None else xp.concat([best.centers_x, best.centers_y], axis=1)
        )
        self.objective_history_ = best.objective_history
        self.objective_ = best.objective
        self.n_iter_ = best.n_iter
        self.converged_ = best.converged
        self.code_agreement_ = None
        if y is not None:
            same = xp.argmax(best.codes_x, axis=1) == xp.argmax(best.codes_y, axis=1)
            (self.code_agreement_,) = host_floats(xp, xp.mean(xp.astype(same, X.dtype)))
        scores = _cm.combined_scores(X, y, best.centers_x, best.centers_y)
        self.labels_ = self._balanced_labels(xp, scores)
        return self

    def _validate_fit_views(self, X, y):
        """``X`` and ``y`` validated, ``y`` in the namespace, device and dtype of ``X``
        (None for a one-view fit); sets ``n_features_in_`` and ``n_features_y_in_``."""
        if not is_other_array(X):
            X = validate_data(self, X, dtype=[np.float64, np.float32], order="C", copy=False)
        else:
            X = stop_gradient(get_namespace(X), check_float_matrix(X, "X"))
            self.n_features_in_ = X.shape[1]
            if hasattr(self, "feature_names_in_"):  # from an earlier fit on a DataFrame
                del self.feature_names_in_
        self.n_features_y_in_ = None
        if y is None or _ndim(y) == 1:  # the target y of scikit-learn's convention
            return X, None
        y = self._check_view(y, X, "y")
        self.n_features_y_in_ = y.shape[1]
        return X, y

    @staticmethod
    def _check_view(V, X, name):
        """``V`` as a finite float matrix paired with ``X``: same rows, namespace,
        device and dtype."""
        if _ndim(V) != 2:
            raise ValueError(
                f"{name} must be a 2-D array (n_samples, n_features) paired with X, "
                f"got {_ndim(V)} dimension(s)."
            )
        xp = get_namespace(X)
        if is_other_array(V):
            V = stop_gradient(get_namespace(V), check_float_matrix(V, name))
        else:
            V = check_array(V, dtype=[np.float64, np.float32], order="C", input_name=name)
        V = xp.astype(to_namespace(xp, V, device(X)), X.dtype, copy=False)
        if V.shape[0] != X.shape[0]:
            raise ValueError(
                f"X and {name} must be paired row by row: X has {X.shape[0]} samples, "
                f"{name} has {V.shape[0]}."
            )
        return V

    def _initial_centers(self, xp, X, y, rng):
        """Unit prototypes of both views (``centers_y`` None for one view)."""
        K = self.n_clusters
        if not isinstance(self.init, str):
            return self._user_centers(xp, X, y)
        if self.init == "random":
            index = rng.choice(X.shape[0], K, replace=False)
        else:
            joint = X if y is None else xp.concat([X, y], axis=1)
            centers = _bk.kmeans_plusplus(joint, K, rng)  # rows of ``joint``
            split = X.shape[1]
            return centers[:, :split], None if y is None else centers[:, split:]
        if is_numpy_namespace(xp):
            return X[index].copy(), None if y is None else y[index].copy()
        index = xp.asarray(index, device=device(X))
        return xp.take(X, index, axis=0), None if y is None else xp.take(y, index, axis=0)

    def _user_centers(self, xp, X, y):
        init = self.init
        pair = (
            isinstance(init, (tuple, list))
            and len(init) == 2
            and all(_ndim(part) == 2 for part in init)
        )
        if (y is None) == pair:
            expected = (
                "a pair (centers_x, centers_y)"
                if y is not None
                else f"one array of shape ({self.n_clusters}, {X.shape[1]})"
            )
            raise ValueError(f"init must be {expected} for a fit on {1 + (y is not None)} view(s).")
        parts = init if pair else (init,)
        centers = []
        for part, V, name in zip(
            parts, (X, y), ("init[0]" if pair else "init", "init[1]"), strict=False
        ):
            C = check_float_matrix(part, name)
            if tuple(C.shape) != (self.n_clusters, V.shape[1]):
                raise ValueError(
                    f"{name} has shape {tuple(C.shape)}; expected "
                    f"({self.n_clusters}, {V.shape[1]})."
                )
            C = xp.astype(to_namespace(xp, C, device(V)), V.dtype)  # a copy
            centers.append(unit_rows(xp, C))
        return centers[0], centers[1] if pair else None

    def _balanced_labels(self, xp, scores):
        """Rounded labels of the balanced transport of ``scores``: computed on the host
        (the plan is copied there once), returned as int64 in the scores' namespace."""
        # no warning when it stops short of _LABEL_TOL: the plan only orders the samples
        # for the rounding, which makes the sizes exact whatever its marginal error
        result = _cm.transport(scores, self.eps, tol=_LABEL_TOL, max_iter=_LABEL_MAX_ITER)
        uniform = np.full(self.n_clusters, 1.0 / self.n_clusters)
        labels = round_to_proportions(to_numpy(result.plan), uniform)
        if is_numpy_namespace(xp):
            return labels
        return xp.asarray(labels, device=device(scores))

    # -- inference -------------------------------------------------------------------

    def _check_new(self, X, y):
        """The combined scores of the views given, in the namespace and on the device of
        the first view given, computed in the fitted dtype."""
        check_is_fitted(self)
        if X is None and y is None:
            raise ValueError("Pass at least one view: X, y or both.")
        if y is not None and self.n_views_ == 1:
            raise ValueError("The model was fitted on X alone: y cannot be scored.")
        first = X if X is not None else y
        if is_other_array(first):
            xp, where = get_namespace(first), device(first)
        else:
            xp, where = get_namespace(np.empty(0)), None
        centers_x = to_namespace(xp, self.cluster_centers_x_, where)
        if X is not None:
            X = self._new_view(xp, where, X, centers_x, "X")
        centers_y = None
        if y is not None:
            centers_y = to_namespace(xp, self.cluster_centers_y_, where)
            y = self._new_view(xp, where, y, centers_y, "y")
        if X is not None and y is not None and X.shape[0] != y.shape[0]:
            raise ValueError(
                f"X and y must be paired row by row: X has {X.shape[0]} samples, "
                f"y has {y.shape[0]}."
            )
        return xp, _cm.combined_scores(X, y, centers_x, centers_y)

    def _new_view(self, xp, where, V, centers, name):
        expected = self.n_features_in_ if name == "X" else self.n_features_y_in_
        if name == "X" and not is_other_array(V):
            V = validate_data(self, V, dtype=[np.float64, np.float32], order="C", reset=False)
        elif is_other_array(V):
            V = stop_gradient(get_namespace(V), check_float_matrix(V, name))
        else:
            if _ndim(V) != 2:
                raise ValueError(f"{name} must be a 2-D array, got {_ndim(V)} dimension(s).")
            V = check_array(V, dtype=[np.float64, np.float32], order="C", input_name=name)
        if V.shape[1] != expected:
            raise ValueError(
                f"{name} has {V.shape[1]} features, but {type(self).__name__} is "
                f"expecting {expected} features as input."
            )
        V = xp.astype(to_namespace(xp, V, where), centers.dtype, copy=False)
        return unit_rows(xp, V)

    def predict(self, X, y=None, *, balanced=False):
        """Cluster labels of new samples from one view or both.

        Parameters
        ----------
        X : array of shape (n_samples, n_features_x) or None
        y : array of shape (n_samples, n_features_y) or None
            Either view alone, or both (paired): the scores against each view's
            prototypes are summed (the combined evidence of the class description).
        balanced : bool, default=False
            False: each sample's best cluster (``argmax`` of its scores, so
            ``predict(X, y) == transform(X, y).argmax(axis=1)``). True: the batch is
            assigned as a whole with equal sizes, as ``labels_`` are on the training
            pairs (a sample's label then depends on the rest of the batch).

        Returns
        -------
        labels : array of shape (n_samples,), int64
            Of the namespace and on the device of the first view given.
        """
        xp, scores = self._check_new(X, y)
        if balanced:
            return self._balanced_labels(xp, scores)
        return xp.argmax(scores, axis=1)

    def transform(self, X, y=None):
        """MGCA's predictions ``softmax(S / tau)`` of new samples, ``S`` their scores.

        Per sample (independent of the rest of the batch), rows summing to one; ``S``
        sums both views' cosines when both are given. These are the predictions of
        MGCA's swapped loss, not its Sinkhorn codes: codes are balanced over a batch,
        :func:`clusterlab.sinkhorn_codes` computes them from ``S`` where wanted.

        Returns
        -------
        predictions : array of shape (n_samples, n_clusters)
            Of the namespace and on the device of the first view given, in the fitted
            dtype.
        """
        _, scores = self._check_new(X, y)
        return _cm.predictions(scores, self.tau)

    def fit_predict(self, X, y=None):
        """``fit(X, y).labels_``."""
        return self.fit(X, y).labels_

    def fit_transform(self, X, y=None):
        """``fit(X, y).transform(X, y)`` (``transform(X)`` after a one-view fit)."""
        self.fit(X, y)
        return self.transform(X, y if self.n_views_ == 2 else None)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags


def _ndim(V):
    """Dimensions of an array or array-like (nested lists, DataFrames)."""
    if is_array(V) or hasattr(V, "shape"):
        return len(V.shape)
    return np.asarray(V).ndim
