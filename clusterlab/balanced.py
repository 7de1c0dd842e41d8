"""Balanced assignments: Sinkhorn transport, SwAV/SIGMA/SeLa codes, balanced k-means.

The functions here check their input and call :mod:`clusterlab.solvers.sinkhorn`.
``sinkhorn``, ``sinkhorn_codes`` and ``swapped_prediction_loss`` accept any array-API
array (NumPy, CuPy on a GPU) and return arrays of the same kind; ``SinkhornKMeans``
works on NumPy arrays.
"""

from __future__ import annotations

import warnings
from numbers import Integral, Real

import numpy as np
from scipy.special import xlogy
from sklearn.base import BaseEstimator, ClusterMixin, TransformerMixin
from sklearn.cluster import kmeans_plusplus
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from clusterlab._sklearn_compat import Interval, StrOptions, _fit_context, validate_data
from clusterlab._validation import (
    check_count,
    check_float_matrix,
    check_marginal,
    check_n_clusters,
    check_positive,
    check_score_range,
)
from clusterlab.solvers import sinkhorn as _sk
from clusterlab.solvers._backend import get_namespace
from clusterlab.solvers.assignment import round_to_proportions

__all__ = ["SinkhornKMeans", "sinkhorn", "sinkhorn_codes", "swapped_prediction_loss"]

SinkhornResult = _sk.SinkhornResult


def _progress_printer(verbose, label):
    if not verbose:
        return None
    every = max(1, int(verbose))

    def report(n_iter, error):
        if n_iter % every == 0:
            print(f"[{label}] iteration {n_iter}: marginal error {error:.3e}", flush=True)

    return report


def _check_solver_arguments(scores, eps, tol, max_iter, n_iter):
    """The checks every Sinkhorn entry point shares; returns them validated."""
    scores = check_float_matrix(scores, "scores")
    eps = check_positive(eps, "eps")
    check_score_range(scores, eps)
    return (
        scores,
        eps,
        check_positive(tol, "tol"),
        check_count(max_iter, "max_iter"),
        check_count(n_iter, "n_iter", allow_none=True),
    )


def _warn_not_converged(result, tol, what="sinkhorn"):
    warnings.warn(
        f"{what} did not reach tol={tol:g} in {result.n_iter} iterations "
        f"(relative marginal error {result.marginal_error:.3e}); raise max_iter or eps.",
        ConvergenceWarning,
        stacklevel=3,
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
    verbose=0,
):
    """Balanced assignment of samples to prototypes by entropic optimal transport.

    Finds the plan ``Q`` (n x K) maximising ``<Q, scores> + eps H(Q)`` with row sums ``a``
    and column sums ``b``: ``Q_ik = exp((scores_ik + f_i + g_k) / eps)``.

    Parameters
    ----------
    scores : array of shape (n_samples, n_prototypes)
        Similarities (higher is better), e.g. cosines between embeddings and prototypes.
        float32 stays float32; NumPy, CuPy and other array-API arrays are accepted.
    eps : float > 0
        Entropic regularisation, in score units. Stable down to 1e-3 and below.
    a, b : arrays or None
        Row (sample) and column (prototype) marginals, nonnegative and summing to 1;
        uniform by default (equal-sized clusters).
    tol : float
        Stop when ``max_k |colsum_k / b_k - 1| <= tol`` (ignored when ``n_iter`` is set).
    max_iter : int
        Iteration cap in tolerance mode, epsilon-scaling stages included.
    n_iter : int or None
        Run exactly ``n_iter`` iterations (SwAV's fixed-iteration mode, no epsilon scaling).
    init : array of shape (n_prototypes,) or None
        Column potentials ``result.g`` of an earlier solve, to warm-start.
    eps_scaling : bool, default=True
        In tolerance mode, solve first for larger eps (halving from the spread of the
        scores), each stage warm-starting the next. Not needed for stability (the
        iteration is in log domain), but near-hard plans converge far faster with it;
        on easy problems it can double the iterations: pass False there.
    return_plan : bool
        Form the plan (one more pass over ``scores`` in tolerance mode).
    verbose : int
        Print the marginal error every ``verbose`` iterations (0: silent).

    Returns
    -------
    SinkhornResult
        ``plan``, potentials ``f`` and ``g``, ``n_iter``, ``converged``,
        ``marginal_error`` (relative L-inf error of the column sums) and ``error_history``.
        A ``ConvergenceWarning`` is issued when tolerance mode stops short of ``tol``.

    Examples
    --------
    >>> import numpy as np
    >>> from clusterlab import sinkhorn
    >>> rng = np.random.default_rng(0)
    >>> scores = rng.uniform(-1, 1, size=(6, 3))
    >>> result = sinkhorn(scores, eps=0.05)
    >>> bool(result.converged)
    True
    >>> bool(np.allclose(result.plan.sum(axis=0), 1 / 3, rtol=1e-6))  # equal loads
    True
    """
    scores, eps, tol, max_iter, n_iter = _check_solver_arguments(
        scores, eps, tol, max_iter, n_iter
    )
    xp = get_namespace(scores)
    n, K = scores.shape
    a = check_marginal(a, n, "a", xp)
    b = check_marginal(b, K, "b", xp)
    if init is not None:
        init = xp.asarray(init, dtype=xp.float64)
        if init.shape != (K,) or not bool(xp.all(xp.isfinite(init))):
            raise ValueError(f"init must be {K} finite column potentials (result.g).")
    result = _sk.sinkhorn(
        scores, eps, a, b, tol=tol, max_iter=max_iter, n_iter=n_iter, init=init,
        eps_scaling=eps_scaling, return_plan=return_plan,
        callback=_progress_printer(verbose, "sinkhorn"),
    )
    if n_iter is None and not result.converged:
        _warn_not_converged(result, tol)
    return result


def sinkhorn_codes(scores, eps=0.05, n_iter=3, *, hard=False, tol=1e-6, max_iter=1000):
    """Balanced codes of a batch: SwAV's Sinkhorn-Knopp procedure and its relatives.

    Every prototype receives the same total mass and every sample's codes sum to one.
    Starting from ``exp(scores / eps)``, each iteration normalises the prototype loads,
    then the samples, as SwAV's ``distributed_sinkhorn`` does (computed in log domain,
    which gives the same numbers without overflow).

    ======  ===============================================================
    SwAV    ``sinkhorn_codes(S, eps=0.05, n_iter=3)``
    SIGMA   ``sinkhorn_codes(S, eps=0.05, n_iter=10, hard=True)`` (or eps=0.03)
    SeLa    ``sinkhorn_codes(S, eps=1 / lam, n_iter=None, tol=..., hard=True)`` on the
            whole dataset, ``S = log P`` (SeLa stops on the change of its scaling
            vectors; here the stop is the prototype-load error ``tol``)
    MGCA    ``sinkhorn_codes(S, eps=0.05, n_iter=3)`` for each modality
    ======  ===============================================================

    Parameters
    ----------
    scores : array of shape (batch, n_prototypes)
        Scores ``z C^T`` of L2-normalised features against L2-normalised prototypes.
    eps : float > 0
        Regularisation (SwAV's ``epsilon``).
    n_iter : int or None
        Fixed number of iterations; None iterates to ``tol``.
    hard : bool
        Return one-hot codes of each sample's largest code (same shape and dtype).
    tol, max_iter : float, int
        Tolerance mode only (``n_iter=None``).

    Returns
    -------
    codes : array of shape (batch, n_prototypes), rows summing to 1

    Examples
    --------
    >>> import numpy as np
    >>> from clusterlab import sinkhorn_codes
    >>> rng = np.random.default_rng(0)
    >>> z = rng.normal(size=(8, 4)); z /= np.linalg.norm(z, axis=1, keepdims=True)
    >>> prototypes = np.eye(4)
    >>> codes = sinkhorn_codes(z @ prototypes.T, eps=0.05, n_iter=3)
    >>> np.allclose(codes.sum(axis=1), 1.0)
    True
    """
    scores, eps, tol, max_iter, n_iter = _check_solver_arguments(
        scores, eps, tol, max_iter, n_iter
    )
    codes, result = _sk.sinkhorn_codes(
        scores, eps, n_iter, hard=hard, tol=tol, max_iter=max_iter
    )
    if n_iter is None and not result.converged:
        _warn_not_converged(result, tol, "sinkhorn_codes")
    return codes


def swapped_prediction_loss(
    scores_a, scores_b, eps=0.05, tau=0.1, n_iter=3, *, codes_a=None, codes_b=None
):
    """SwAV's swapped prediction loss for two views, with its gradient.

    Each view's codes (:func:`sinkhorn_codes`) are the targets for the other view's
    predictions ``p = softmax(scores / tau)``::

        L = -1/(2n) sum_i [ q_b[i] . log p_a[i] + q_a[i] . log p_b[i] ]

    With ``tau=0.2`` (and one view per modality) this is MGCA's cross-modal prototype
    loss. As in SwAV the codes are constants: no gradient flows through them.

    Parameters
    ----------
    scores_a, scores_b : arrays of shape (batch, n_prototypes)
        Scores of the two views against the same prototypes.
    eps, n_iter : float, int
        Passed to :func:`sinkhorn_codes`.
    tau : float > 0
        Softmax temperature of the predictions.
    codes_a, codes_b : arrays or None
        Precomputed codes (e.g. from a queue-extended batch); computed when None.

    Returns
    -------
    loss : float
    grad_a, grad_b : arrays like ``scores_a`` and ``scores_b``
        ``dL/dscores`` with the codes held fixed.

    Examples
    --------
    >>> import numpy as np
    >>> from clusterlab import swapped_prediction_loss
    >>> rng = np.random.default_rng(0)
    >>> s = rng.uniform(-1, 1, size=(16, 5))
    >>> loss, grad_a, grad_b = swapped_prediction_loss(s, s + 0.01)
    >>> grad_a.shape
    (16, 5)
    """
    scores_a = check_float_matrix(scores_a, "scores_a")
    scores_b = check_float_matrix(scores_b, "scores_b")
    if scores_a.shape != scores_b.shape:
        raise ValueError(
            f"scores_a and scores_b must have the same shape, got {scores_a.shape} "
            f"and {scores_b.shape}."
        )
    tau = check_positive(tau, "tau")
    if codes_a is None:
        codes_a = sinkhorn_codes(scores_a, eps, n_iter)
    if codes_b is None:
        codes_b = sinkhorn_codes(scores_b, eps, n_iter)
    xp = get_namespace(scores_a)
    codes_a = xp.astype(check_float_matrix(codes_a, "codes_a"), scores_a.dtype)
    codes_b = xp.astype(check_float_matrix(codes_b, "codes_b"), scores_a.dtype)
    if codes_a.shape != scores_a.shape or codes_b.shape != scores_a.shape:
        raise ValueError("codes_a and codes_b must have the shape of the scores.")
    return _sk.swapped_prediction_loss(scores_a, scores_b, codes_a, codes_b, tau)


class SinkhornKMeans(ClusterMixin, TransformerMixin, BaseEstimator):
    """Balanced k-means: Sinkhorn assignments with prescribed cluster proportions.

    Alternates (1) an entropic transport of the samples onto the centroids with column
    marginals ``proportions`` (equal by default) and (2) the centroid update
    ``c_k = sum_i Q_ik x_i / sum_i Q_ik``, which minimises the transport cost for the
    plan ``Q``. With ``spherical=True`` samples and centroids are L2-normalised and the
    scores are cosines (for embeddings). Hard labels round the final plan so that
    cluster ``k`` holds ``n * proportions[k]`` samples, to within one.

    Parameters
    ----------
    n_clusters : int, default=8
    proportions : array-like of shape (n_clusters,) or None
        Cluster proportions (positive, summing to 1); None for equal sizes.
    spherical : bool, default=False
        Cosine scores on L2-normalised samples and centroids.
    eps : float, default=0.05
        Entropic regularisation. Scores are cosines (spherical) or
        ``-||x - c||^2 / (2 v)`` with ``v`` the mean squared distance of the samples to
        their mean, so ``eps`` is unit-free in both cases.
    init : {"k-means++", "random"} or array of shape (n_clusters, n_features)
    n_init : int, default=1
        Runs from different initial centroids; the one with the lowest objective wins.
    max_iter : int, default=100
        Centroid updates per run.
    tol : float, default=1e-4
        Converged when the squared centroid shift is at most ``tol * v``.
    sinkhorn_tol : float, default=1e-4
        Relative marginal tolerance of each transport solve. The plan steers the
        centroids and is rounded to exact sizes, so 1e-4 is ample; on well-separated
        data near-hard plans converge slowly at small ``eps``, and a tighter tolerance
        mostly costs iterations.
    sinkhorn_max_iter : int, default=1000
    random_state : int, RandomState instance or None
    verbose : int, default=0
        Print the transport cost after every centroid update.

    Attributes
    ----------
    labels_ : ndarray of shape (n_samples,)
        Rounded balanced labels.
    cluster_centers_ : ndarray of shape (n_clusters, n_features)
    objective_history_ : ndarray
        The entropic k-means objective ``n sum_ik Q_ik ||x_i - c_k||^2 - 2 v eps n H(Q)``
        after every centroid update; it does not increase (up to the transport tolerance).
    objective_ : float
        Its last value, used to pick the best of ``n_init`` runs.
    n_iter_ : int
        Centroid updates of the best run.
    converged_ : bool
    proportions_ : ndarray of shape (n_clusters,)
    n_features_in_ : int

    See Also
    --------
    sklearn.cluster.KMeans : unconstrained k-means.

    References
    ----------
    Cuturi, "Sinkhorn Distances", NeurIPS 2013. Caron et al., "Unsupervised Learning of
    Visual Features by Contrasting Cluster Assignments", NeurIPS 2020.

    Examples
    --------
    >>> import numpy as np
    >>> from clusterlab import SinkhornKMeans
    >>> rng = np.random.default_rng(0)
    >>> X = np.concatenate([rng.normal(0, 1, (30, 2)), rng.normal(6, 1, (30, 2))])
    >>> model = SinkhornKMeans(n_clusters=3, random_state=0).fit(X)
    >>> np.bincount(model.labels_).tolist()
    [20, 20, 20]
    """

    _parameter_constraints: dict = {  # noqa: RUF012 - scikit-learn's convention
        "n_clusters": [Interval(Integral, 1, None, closed="left")],
        "proportions": ["array-like", None],
        "spherical": ["boolean"],
        "eps": [Interval(Real, 0, None, closed="neither")],
        "init": [StrOptions({"k-means++", "random"}), "array-like"],
        "n_init": [Interval(Integral, 1, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "sinkhorn_tol": [Interval(Real, 0, None, closed="neither")],
        "sinkhorn_max_iter": [Interval(Integral, 1, None, closed="left")],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    def __init__(
        self,
        n_clusters=8,
        *,
        proportions=None,
        spherical=False,
        eps=0.05,
        init="k-means++",
        n_init=1,
        max_iter=100,
        tol=1e-4,
        sinkhorn_tol=1e-4,
        sinkhorn_max_iter=1000,
        random_state=None,
        verbose=0,
    ):
        self.n_clusters = n_clusters
        self.proportions = proportions
        self.spherical = spherical
        self.eps = eps
        self.init = init
        self.n_init = n_init
        self.max_iter = max_iter
        self.tol = tol
        self.sinkhorn_tol = sinkhorn_tol
        self.sinkhorn_max_iter = sinkhorn_max_iter
        self.random_state = random_state
        self.verbose = verbose

    # -- fitting ---------------------------------------------------------------------

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Fit balanced clusters to ``X`` (``y`` is ignored)."""
        X = validate_data(self, X, dtype=[np.float64, np.float32], order="C", copy=False)
        check_n_clusters(self.n_clusters, X.shape[0])
        self.proportions_ = self._check_proportions()
        # Euclidean scores are translation-invariant: centring X keeps the expanded
        # squared distances free of cancellation (a float32 offset of 1e4 would swamp them)
        self._offset = None if self.spherical else X.mean(axis=0, dtype=np.float64)
        X = self._to_model_space(X)
        rng = check_random_state(self.random_state)
        self._scale = self._score_scale(X)
        n_init = self.n_init
        if not isinstance(self.init, str) and n_init > 1:
            warnings.warn(
                "init is an array of centres: one run replaces the n_init runs, which "
                "would all be identical.",
                RuntimeWarning,
                stacklevel=3,
            )
            n_init = 1
        best = None
        for _ in range(n_init):
            run = self._single_run(X, self._initial_centers(X, rng))
            if best is None or run[1][-1] < best[1][-1]:
                best = run
        centers, history, n_iter, converged = best
        if not converged:
            warnings.warn(
                f"SinkhornKMeans stopped after max_iter={self.max_iter} centroid updates "
                f"without reaching tol={self.tol:g}; raise max_iter.",
                ConvergenceWarning,
                stacklevel=3,
            )
        self._centers = centers  # in the centred (or normalised) space the scores use
        self.cluster_centers_ = self._from_model_space(centers)
        self.objective_history_ = np.asarray(history)
        self.objective_ = float(history[-1])
        self.n_iter_ = n_iter
        self.converged_ = converged
        self.labels_ = self._balanced_labels(X)
        return self

    def _check_proportions(self):
        if self.proportions is None:
            return np.full(self.n_clusters, 1.0 / self.n_clusters)
        return check_marginal(self.proportions, self.n_clusters, "proportions", np)

    def _to_model_space(self, X):
        """Samples (or user centres) as the scores see them: centred, or unit-norm."""
        if not self.spherical:
            return (X - self._offset).astype(X.dtype, copy=False)
        norms = np.linalg.norm(X, axis=1, keepdims=True)
        if np.any(norms == 0):
            raise ValueError("spherical=True needs nonzero samples: X has an all-zero row.")
        return X / norms

    def _from_model_space(self, centers):
        if self.spherical:
            return centers
        return (centers + self._offset).astype(centers.dtype, copy=False)

    def _score_scale(self, X):
        """``v``: mean squared distance to the mean (1 for spherical cosine scores)."""
        if self.spherical:
            return 1.0
        v = float(np.mean(np.sum(X.astype(np.float64) ** 2, axis=1)))
        # squared distances are formed in X's dtype: they must fit there
        if not np.isfinite(v) or 4 * float(np.max(np.abs(X))) ** 2 > float(np.finfo(X.dtype).max):
            raise ValueError(
                f"X is too large for {X.dtype}: squared distances overflow; rescale X."
            )
        if v < np.finfo(X.dtype).tiny:
            return 1.0  # (numerically) identical samples: any balanced split is optimal
        return v

    def _initial_centers(self, X, rng):
        if isinstance(self.init, str) and self.init == "k-means++":
            centers, _ = kmeans_plusplus(X, self.n_clusters, random_state=rng)
        elif isinstance(self.init, str):
            centers = X[rng.choice(X.shape[0], self.n_clusters, replace=False)]
        else:
            centers = check_float_matrix(self.init, "init")
            if centers.shape != (self.n_clusters, X.shape[1]):
                raise ValueError(
                    f"init has shape {centers.shape}; expected ({self.n_clusters}, {X.shape[1]})."
                )
            return self._to_model_space(np.array(centers, dtype=X.dtype))
        return np.array(centers, dtype=X.dtype)

    def _scores(self, X, centers):
        if self.spherical:
            return np.ascontiguousarray(X @ centers.T)
        return (-0.5 / self._scale) * _squared_distances(X, centers)

    def _transport(self, X, centers, init=None, plan_mass=None, warn=True):
        result = _sk.sinkhorn(
            self._scores(X, centers), self.eps, None, self.proportions_,
            tol=self.sinkhorn_tol, max_iter=self.sinkhorn_max_iter, init=init,
            plan_mass=plan_mass,
        )
        if warn and not result.converged:
            _warn_not_converged(result, self.sinkhorn_tol, "SinkhornKMeans' transport")
        return result

    def _single_run(self, X, centers):
        history, g = [], None
        for n_iter in range(1, self.max_iter + 1):
            # inner solves only steer the centroids: the final assignment is checked
            result = self._transport(X, centers, init=g, warn=False)
            plan, g = result.plan, result.g
            mass = plan.sum(axis=0)
            new_centers = ((plan.T @ X) / mass[:, None]).astype(X.dtype, copy=False)
            if self.spherical:
                new_centers = _renormalised(new_centers, centers)
            shift = float(np.sum((new_centers - centers) ** 2))
            centers = new_centers
            objective = self._objective(X, plan, centers)
            history.append(objective)
            if self.verbose:
                print(f"[SinkhornKMeans] iteration {n_iter}: objective {objective:.6g}")
            if shift <= self.tol * self._scale:
                return centers, history, n_iter, True
        return centers, history, self.max_iter, False

    def _objective(self, X, plan, centers):
        """``n <Q, D> - 2 v eps n H(Q)``: what the transport (over Q, at fixed centroids)
        and the centroid update (over C, at fixed Q) both decrease, ``D`` holding the
        squared distances (the scores are ``-D / (2 v)``, or ``1 - D / 2`` for cosines)."""
        n = X.shape[0]
        cost = float(np.sum(plan * _squared_distances(X, centers)))
        entropy = -float(np.sum(xlogy(plan, plan)))
        return n * (cost - 2.0 * self._scale * self.eps * entropy)

    def _balanced_labels(self, X):
        plan = self._transport(X, self._centers).plan
        return round_to_proportions(plan, self.proportions_)

    # -- inference -------------------------------------------------------------------

    def _check_new(self, X):
        check_is_fitted(self)
        X = validate_data(self, X, dtype=[np.float64, np.float32], order="C", reset=False)
        return self._to_model_space(X.astype(self._centers.dtype, copy=False))

    def predict(self, X, balanced=True):
        """Cluster labels of new samples.

        ``balanced=True`` assigns the batch ``X`` as a whole with the fitted proportions
        (so a sample's label depends on the rest of the batch, and each cluster receives
        ``n * proportions[k]`` samples to within one); ``balanced=False`` gives each
        sample its nearest centroid. For batches smaller than ``n_clusters`` balance
        carries no information (one sample's transport plan is ``proportions`` itself):
        use ``balanced=False`` there.
        """
        X = self._check_new(X)
        if not balanced:
            return np.argmax(self._scores(X, self._centers), axis=1)
        return self._balanced_labels(X)

    def transform(self, X):
        """Soft balanced codes of the batch ``X``: rows sum to 1, column loads follow
        ``proportions``."""
        X = self._check_new(X)
        ones = np.ones(X.shape[0])
        return self._transport(X, self._centers, plan_mass=ones).plan

    def fit_predict(self, X, y=None):
        """``fit(X).labels_``."""
        return self.fit(X).labels_

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags


def _renormalised(centers, previous):
    """Unit-norm centres; a centre whose weighted mean vanished keeps its previous value."""
    norms = np.linalg.norm(centers, axis=1, keepdims=True)
    return np.where(norms > 0, centers / np.where(norms > 0, norms, 1), previous)


def _squared_distances(X, centers):
    """``||x_i - c_k||^2``, clipped at 0 against rounding."""
    d = (
        np.sum(X * X, axis=1)[:, None]
        - 2.0 * (X @ centers.T)
        + np.sum(centers * centers, axis=1)[None, :]
    )
    return np.ascontiguousarray(np.maximum(d, 0.0, out=d))
