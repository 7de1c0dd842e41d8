"""DEPICT's clustering head on fixed embeddings: soft targets with a frequency prior.

:func:`depict_targets` computes DEPICT's targets from a matrix of cluster probabilities
on any array library; :class:`DEPICTClustering` fits the head (a softmax regression) to
features by alternating its fit with the target step. The numerical cores are in
:mod:`clusterlab.solvers.depict`.
"""

from __future__ import annotations

import math
import warnings
from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, ClusterMixin
from sklearn.cluster import KMeans
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from clusterlab._progress import progress_printer
from clusterlab._sklearn_compat import Interval, StrOptions, _fit_context, validate_data
from clusterlab._validation import (
    check_count,
    check_float_matrix,
    check_n_clusters,
    check_positive,
)
from clusterlab.solvers import depict as _dp
from clusterlab.solvers._backend import (
    accumulation_dtype,
    device,
    get_namespace,
    host_floats,
    is_other_array,
    logsumexp,
    single_threaded_blas,
    to_namespace,
    to_numpy,
)

__all__ = ["DEPICTClustering", "depict_targets"]

_ROW_SUM_RTOL = 1e-3


def _check_probabilities(P):
    """Nonnegative finite rows summing to 1 (to 1e-3), every column used somewhere; one
    host sync for all the checks. Returns ``P`` (float32 or float64)."""
    P = check_float_matrix(P, "P", finite=False)
    xp = get_namespace(P)
    acc = xp.astype(P, accumulation_dtype(xp, device(P)))
    lowest, row_error, column_top = host_floats(
        xp,
        xp.min(acc),
        xp.max(xp.abs(xp.sum(acc, axis=1) - 1.0)),
        xp.min(xp.max(acc, axis=0)),
    )
    if not all(math.isfinite(v) for v in (lowest, row_error, column_top)):
        raise ValueError("P contains NaN or infinity.")
    if lowest < 0:
        raise ValueError(f"P must be nonnegative, got an entry {lowest:g}.")
    if row_error > _ROW_SUM_RTOL:
        raise ValueError(
            f"The rows of P must sum to 1 (cluster probabilities); a row is off by {row_error:.3g}."
        )
    if column_top <= 0:
        raise ValueError(
            "A column of P is zero for every sample: no target gives that cluster mass; drop it."
        )
    return P


def depict_targets(P, kind="exact", *, max_iter=1000, tol=1e-9):
    """DEPICT's soft targets ``Q`` for cluster probabilities ``P``.

    The targets trade closeness to ``P`` against balanced cluster sizes: DEPICT's
    objective is ``L(Q) = mean_i KL(q_i || p_i) + KL(f || u)``, with
    ``f_k = mean_i q_ik`` the cluster frequencies and ``u`` the uniform prior.

    ========  ==========================================================================
    "exact"   the minimiser of ``L``: the fixed point ``q_ik ∝ p_ik u_k / f_k(Q)``,
              computed by a convergent scaling iteration (unbalanced transport)
    "sqrt"    the paper's closed form ``q_ik ∝ p_ik / (sum_i p_ik)^(1/2)`` (one step of
              that iteration)
    "dec"     the released code's target, DEC's ``q_ik ∝ p_ik^2 / sum_i p_ik``: it
              sharpens ``P`` and does *not* minimise the paper's objective
    ========  ==========================================================================

    ``L(exact) <= L(sqrt)`` and ``L(exact) <= L(dec)`` always hold (``L`` is convex
    and "exact" is its minimiser); see :mod:`clusterlab.solvers.depict`.

    Parameters
    ----------
    P : array of shape (n_samples, n_clusters)
        Cluster probabilities: nonnegative, rows summing to 1 (to 1e-3), every column
        positive somewhere. A NumPy array, PyTorch tensor (CPU or CUDA), CuPy array or
        other array-API array.
    kind : {"exact", "sqrt", "dec"}, default="exact"
    max_iter : int, default=1000
        Iterations of the exact target.
    tol : float, default=1e-9
        The exact target stops when the spread of its log residual
        ``log u - log f - h`` (``h`` its column potentials) is below ``tol``; the
        fixed-point equation then holds to a relative ``~tol`` in every entry.

    Returns
    -------
    Q : array of shape (n_samples, n_clusters)
        Rows summing to 1, of the namespace, device and dtype of ``P`` (computed in
        float64 where the device has it). The targets are constants of DEPICT's
        training step, as SwAV's codes are: on PyTorch they come back detached from
        the autograd graph. A ``ConvergenceWarning`` says when "exact" stops at
        ``max_iter``.

    Examples
    --------
    >>> import numpy as np
    >>> from clusterlab import depict_targets
    >>> P = np.array([[0.9, 0.1], [0.8, 0.2], [0.7, 0.3], [0.2, 0.8]])
    >>> Q = depict_targets(P)
    >>> Q.mean(axis=0).round(3).tolist()  # the frequencies move towards uniform
    [0.591, 0.409]
    >>> f = Q.mean(axis=0)
    >>> bool(np.allclose(Q, P / f / (P / f).sum(axis=1, keepdims=True)))  # fixed point
    True
    """
    P = _check_probabilities(P)
    if kind not in _dp.TARGET_KINDS:
        raise ValueError(f"kind must be one of {_dp.TARGET_KINDS}, got {kind!r}.")
    max_iter = check_count(max_iter, "max_iter")
    tol = check_positive(tol, "tol")
    result = _dp.targets(P, kind, max_iter=max_iter, tol=tol)
    if not result.converged:
        warnings.warn(
            f"depict_targets: the exact target stopped after max_iter={max_iter} "
            f"iterations at residual {result.residual:.3e} > tol={tol:g}; raise max_iter.",
            ConvergenceWarning,
            stacklevel=2,
        )
    return result.targets


class DEPICTClustering(ClusterMixin, BaseEstimator):
    """DEPICT's clustering head (a softmax regression) on fixed features.

    DEPICT (Dizaji et al., 2017) trains ``p_i = softmax(W z_i + b)`` against soft
    targets ``Q`` computed from its own predictions with a uniform frequency prior
    (:func:`depict_targets`). Here the features are fixed (embeddings exported from a
    model) and the head is fitted by alternating

    1. the target step ``Q = target(P)``, and
    2. the softmax regression on the soft labels ``Q`` by L-BFGS,
       ``min_{W,b} -(1/N) sum_ik q_ik log p_ik + (alpha/2) ||W||_F^2``,

    from DEPICT's start: k-means labels, ``W`` the L2-normalised centroids, ``b = 0``,
    then a first fit to the hard k-means labels (L2 strength ``init_alpha``). Features
    are centred and scaled to a
    unit root-mean-square norm first (``alpha`` is then unit-free). It stops when the
    mean squared change of ``Q`` falls below ``tol`` (DEPICT's code).

    **The objective.** ``objective_history_`` records, after the first target step and
    after every iteration,

    ``J(W, b, Q) = mean_i KL(q_i || p_i) + KL(f || u) + (alpha/2) ||W||_F^2``,

    with ``f = mean_i q_i``, ``u = 1/K`` and ``p_i = softmax(W z_i + b)``. With
    ``target="exact"`` the target step is the exact minimiser of ``J`` over ``Q`` and
    the regression step does not increase it (L-BFGS from the previous head; the result
    is kept only if ``J`` does not rise), so ``J`` never increases. Its global minimum
    is the uninformative head ``W = 0`` (uniform ``p``, ``J = 0``): nothing in DEPICT's
    objective rewards confident predictions, so with ``alpha > 0`` a long run softens
    ``P`` towards uniform; with ``alpha = 0`` the exact target only shifts the biases
    until the predicted clusters are balanced. The clusters come from the k-means start
    and the balancing; see the user guide for measurements. ``"sqrt"`` and ``"dec"``
    do not minimise ``J`` over ``Q`` (their history is the same ``J``, which may rise);
    ``"dec"`` (the released code's choice) sharpens the predictions instead.

    ``fit`` runs on the host (L-BFGS, k-means): PyTorch tensors, CuPy arrays and other
    array-API arrays are copied there, and the fitted attributes are NumPy.
    ``predict`` and ``predict_proba`` take arrays of any of these kinds and compute on
    their device; ``predict_proba`` keeps PyTorch's autograd graph of ``X`` (the fitted
    head then works as a frozen layer on top of an encoder).

    Parameters
    ----------
    n_clusters : int, default=8
    target : {"exact", "sqrt", "dec", "none"}, default="exact"
        The target step (:func:`depict_targets`); ``"none"`` uses ``Q = P``
        (self-training without the frequency prior, for comparison).
    alpha : float >= 0, default=0.0
        L2 strength on ``W`` in the regression of the alternation (relative to the
        mean cross-entropy, on the standardised features; the intercept is not
        penalised). Any ``alpha > 0`` makes the uniform head the global minimum of
        ``J``, and a long run drifts towards it (see above): 0 by default.
    init_alpha : float > 0 or None, default=None
        L2 strength of the first fit to the hard start labels (separable hard labels
        have no finite unregularised fit); it sets how confident the start is. None
        means ``1 / n_samples``, scikit-learn's ``LogisticRegression(C=1.0)`` on the
        mean loss.
    init : "k-means" or array-like of shape (n_samples,), default="k-means"
        Initial hard labels (integers in ``[0, n_clusters)``), or k-means on the
        standardised features.
    max_iter : int, default=100
        Alternations (regression fits).
    tol : float, default=1e-7
        Stop when ``mean_ik (q_new - q_old)^2 < tol``.
    n_init : int, default=10
        k-means runs of the start (scikit-learn's ``KMeans``).
    random_state : int, RandomState instance or None, default=None
        Seeds the k-means start.
    verbose : int, default=0
        Print the objective and the change of ``Q`` every ``verbose`` iterations.

    Attributes
    ----------
    labels_ : ndarray of shape (n_samples,), int64
        ``argmax_k p_ik`` of the fitted head (equal to ``predict(X)``).
    coef_ : ndarray of shape (n_clusters, n_features)
    intercept_ : ndarray of shape (n_clusters,)
        The head in the input space: ``p = softmax(X @ coef_.T + intercept_)``.
    objective_history_ : ndarray
        ``J`` after the first target step and after every iteration.
    n_iter_ : int
    converged_ : bool
    n_features_in_ : int

    References
    ----------
    Dizaji, Herandi, Deng, Cai, Huang, "Deep Clustering via Joint Convolutional
    Autoencoder Embedding and Relative Entropy Minimization", ICCV 2017.

    Examples
    --------
    >>> import numpy as np
    >>> from clusterlab import DEPICTClustering
    >>> rng = np.random.default_rng(0)
    >>> X = np.concatenate([rng.normal(0, 1, (40, 2)), rng.normal(6, 1, (40, 2))])
    >>> model = DEPICTClustering(n_clusters=2, random_state=0).fit(X)
    >>> np.bincount(model.labels_).tolist()
    [40, 40]
    >>> bool(np.all(np.diff(model.objective_history_) <= 1e-12))
    True
    """

    _parameter_constraints: dict = {  # noqa: RUF012 - scikit-learn's convention
        "n_clusters": [Interval(Integral, 1, None, closed="left")],
        "target": [StrOptions({"exact", "sqrt", "dec", "none"})],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "init_alpha": [Interval(Real, 0, None, closed="neither"), None],
        "init": [StrOptions({"k-means"}), "array-like"],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "n_init": [Interval(Integral, 1, None, closed="left")],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    def __init__(
        self,
        n_clusters=8,
        *,
        target="exact",
        alpha=0.0,
        init_alpha=None,
        init="k-means",
        max_iter=100,
        tol=1e-7,
        n_init=10,
        random_state=None,
        verbose=0,
    ):
        self.n_clusters = n_clusters
        self.target = target
        self.alpha = alpha
        self.init_alpha = init_alpha
        self.init = init
        self.max_iter = max_iter
        self.tol = tol
        self.n_init = n_init
        self.random_state = random_state
        self.verbose = verbose

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Fit the head to ``X`` (``y`` is ignored); arrays of other libraries are
        copied to the host."""
        if is_other_array(X):
            X = to_numpy(X)
            if hasattr(self, "feature_names_in_"):
                del self.feature_names_in_
        X = validate_data(self, X, dtype=[np.float64, np.float32], order="C")
        n, K = X.shape[0], self.n_clusters
        check_n_clusters(K, n)
        Z = np.asarray(X, dtype=np.float64)
        self._mean = Z.mean(axis=0)
        Z = Z - self._mean
        scale = math.sqrt(float(np.mean(np.sum(Z * Z, axis=1))))
        self._scale = scale if scale > 0 and math.isfinite(scale) else 1.0
        Z = Z / self._scale
        labels = self._initial_labels(Z)
        target = (lambda P: P) if self.target == "none" else self.target
        with single_threaded_blas():  # many small products: one thread is fastest
            coef, intercept = _dp.initial_head(Z, labels, K)
            init_alpha = 1.0 / n if self.init_alpha is None else self.init_alpha
            coef, intercept, _ = _dp.fit_softmax(Z, np.eye(K)[labels], coef, intercept, init_alpha)
            result = _dp.fit_depict(
                Z,
                coef,
                intercept,
                target=target,
                alpha=self.alpha,
                max_iter=self.max_iter,
                tol=self.tol,
                callback=progress_printer(
                    self.verbose, "DEPICTClustering", [("objective", ".6e"), ("change of Q", ".3e")]
                ),
            )
        if not result.converged:
            last = result.change_history[-1] if result.change_history.size else math.nan
            warnings.warn(
                f"DEPICTClustering stopped after max_iter={self.max_iter} iterations with "
                f"a mean squared change of Q of {last:.3e} > tol={self.tol:g}; raise "
                "max_iter or tol.",
                ConvergenceWarning,
                stacklevel=2,
            )
        if not result.targets_converged:
            warnings.warn(
                "DEPICTClustering: an exact target step stopped at its iteration cap.",
                ConvergenceWarning,
                stacklevel=2,
            )
        self._coef, self._intercept = result.coef, result.intercept
        self.coef_ = result.coef / self._scale
        self.intercept_ = result.intercept - self.coef_ @ self._mean
        self.labels_ = np.argmax(result.proba, axis=1).astype(np.int64)
        self.objective_history_ = result.objective_history
        self.n_iter_ = result.n_iter
        self.converged_ = result.converged
        return self

    def _initial_labels(self, Z):
        n, K = Z.shape[0], self.n_clusters
        if isinstance(self.init, str):
            rng = check_random_state(self.random_state)
            with warnings.catch_warnings():
                # duplicated samples: fewer distinct centres than clusters is fine here
                warnings.simplefilter("ignore", ConvergenceWarning)
                kmeans = KMeans(K, n_init=self.n_init, random_state=rng).fit(Z)
            return kmeans.labels_.astype(np.int64)
        labels = np.asarray(to_numpy(self.init) if is_other_array(self.init) else self.init)
        if labels.shape != (n,) or labels.dtype.kind not in "iu":
            raise ValueError(
                f"init must be 'k-means' or integer labels of shape ({n},), got "
                f"{labels.dtype} {labels.shape}."
            )
        if labels.min() < 0 or labels.max() >= K:
            raise ValueError(f"init labels must lie in [0, {K}).")
        return labels.astype(np.int64)

    # -- inference -----------------------------------------------------------------

    def _logits(self, X):
        """Logits of ``X`` and its namespace (None for NumPy-compatible input)."""
        check_is_fitted(self)
        if not is_other_array(X):
            X = validate_data(self, X, dtype=[np.float64, np.float32], order="C", reset=False)
            Z = (np.asarray(X, dtype=np.float64) - self._mean) / self._scale
            return Z @ self._coef.T + self._intercept, None, X.dtype
        X = check_float_matrix(X, "X")
        if X.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {X.shape[1]} features, but {type(self).__name__} is expecting "
                f"{self.n_features_in_} features as input."
            )
        xp, where = get_namespace(X), device(X)
        coef, intercept, mean = (
            xp.astype(to_namespace(xp, a, where), X.dtype)
            for a in (self._coef, self._intercept, self._mean)
        )
        Z = (X - mean) / self._scale
        return Z @ coef.T + intercept, xp, X.dtype

    def predict_proba(self, X):
        """Cluster probabilities ``softmax(W z + b)`` of new samples.

        Parameters
        ----------
        X : array of shape (n_samples, n_features)
            NumPy-compatible input, or an array of any array-API library (a PyTorch
            tensor on CPU or CUDA, a CuPy array, ...), computed on its device.

        Returns
        -------
        proba : array of shape (n_samples, n_clusters)
            Of the namespace, device and float dtype of ``X`` (float32 stays float32).
            On PyTorch the autograd graph of ``X`` is kept.
        """
        logits, xp, dtype = self._logits(X)
        if xp is None:
            from scipy.special import softmax

            return softmax(logits, axis=1).astype(dtype, copy=False)
        return xp.exp(logits - logsumexp(xp, logits, axis=1, keepdims=True))

    def predict(self, X):
        """Most probable cluster of each sample (int64, of the namespace and on the
        device of ``X``)."""
        logits, xp, _ = self._logits(X)
        if xp is None:
            return np.argmax(logits, axis=1).astype(np.int64)
        return xp.astype(xp.argmax(logits, axis=1), xp.int64)

    def fit_predict(self, X, y=None):
        """``fit(X).labels_``."""
        return self.fit(X).labels_
