"""Clustering by semidefinite programming: the Peng–Wei K-means SDP and iLA-SDP.

:class:`SDPKMeans` solves the SDP relaxation of K-means (Peng & Wei, 2007), which
recovers the partition exactly when the clusters are separated beyond a sharp threshold
(:func:`clusterlab.experiments.exact_recovery_threshold`). :class:`ILASDP` is the
iterative likelihood-adjusted SDP of Zhuang, Chen & Yang (ICML 2023) for clusters with
different covariances. Both run on one of two solvers from :mod:`clusterlab.solvers.sdp`:

- ``"cvxpy"``: the exact conic solve (SCS by default), ``O(n^2)`` memory and roughly
  cubic time: n = 100 takes seconds, n = 400 most of a minute;
- ``"lowrank"``: nonnegative Burer–Monteiro factors, ``O(n r)`` memory and ``O(n p r)``
  per iteration, for tens of thousands of samples.

``solver="auto"`` takes cvxpy up to 100 samples (:class:`ILASDP`: 50) and the low-rank
solver beyond. :class:`SDPKMeans` certifies its low-rank solution with a dual lower bound
(``lower_bound_``, :mod:`clusterlab.solvers.sdp.certificate`) and, while the certified
gap stays open, escalates to signed factors of higher rank
(:mod:`clusterlab.solvers.sdp.signed`).
"""

from __future__ import annotations

import warnings
from numbers import Integral, Real

import numpy as np
from scipy.special import logsumexp
from sklearn.base import BaseEstimator, ClusterMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from clusterlab._progress import progress_printer
from clusterlab._scaling import normalise_scale
from clusterlab._sklearn_compat import Interval, StrOptions, _fit_context, validate_data
from clusterlab._validation import check_n_clusters
from clusterlab.solvers.gaussian import MixtureParams, fix_far_rows, log_gaussian
from clusterlab.solvers.sdp.exact import SDPStatusError, exact_memory_estimate
from clusterlab.solvers.sdp.likelihood import ila_sdp
from clusterlab.solvers.sdp.peng_wei import (
    cluster_means,
    nearest_centre,
    peng_wei,
    sketch_and_lift,
)
from clusterlab.solvers.seeded_kmeans import seeded_kmeans

__all__ = ["ILASDP", "SDPKMeans", "SDPStatusError"]

# solver="auto" solves exactly up to this many samples (SDPKMeans, ILASDP): a matter of
# time, cvxpy's being roughly cubic in n; memory is far from the limit below at these sizes.
_EXACT_MAX_SAMPLES = 100
_EXACT_MAX_SAMPLES_ILA = 50
# solver="cvxpy" is refused when its estimated peak memory is above this.
_EXACT_MAX_BYTES = 4 * 2**30
_SOLVERS = {"auto", "cvxpy", "lowrank"}
# iLA-SDP's low-rank steps stop a round when the augmented Lagrangian changes by less than
# this, relative, between L-BFGS-B iterations (solve_lowrank's ftol): on the rank-deficient
# LA-SDP blocks the projected-gradient test alone took 1,300-19,000 iterations on
# standardised wine with F equal to 1e-4 relative (benchmarks/sdp.py --ila-warm).
_ILA_FTOL = 1e-10


def _resolve_solver(solver, n_samples, exact_max_samples, n_blocks=1):
    if solver == "auto":
        return "cvxpy" if n_samples <= exact_max_samples else "lowrank"
    if solver == "cvxpy":
        needed = exact_memory_estimate(n_samples, n_blocks)
        if needed > _EXACT_MAX_BYTES:
            raise ValueError(
                f'solver="cvxpy" on {n_samples} samples ({n_blocks} block(s) of '
                f"{n_samples} x {n_samples}) would need about {needed / 2**30:.1f} GiB "
                f'(limit {_EXACT_MAX_BYTES / 2**30:.0f} GiB) and hours: use solver="lowrank".'
            )
    return solver


def _generator(random_state):
    return np.random.default_rng(check_random_state(random_state).randint(2**31))


class SDPKMeans(ClusterMixin, BaseEstimator):
    """K-means through its SDP relaxation (Peng & Wei, 2007).

    Solves ``max <X X^T, Z>`` over ``Z`` PSD, nonnegative, with unit row sums and trace
    ``n_clusters``, then rounds ``Z`` to labels by k-means on the rows of a factor of
    ``Z``. Unlike Lloyd's algorithm the relaxation has no local optima: above the exact
    recovery threshold its solution is the true partition matrix.

    Scale: the SDP is solved on ``X`` centred and divided by a power of two (an exact
    operation; :func:`clusterlab._scaling.normalise_scale`), so ``X * s`` gives the
    partition of ``X`` for any ``s`` from 1e-200 to 1e200; ``cluster_centers_``,
    ``objective_`` and ``inertia_`` are mapped back to ``X``'s units (the last two times
    ``scale**2``: ``inf`` beyond the float range). float32 ``X`` gives float32
    ``cluster_centers_`` and ``membership_factor_`` (the solvers work in float64).

    Parameters
    ----------
    n_clusters : int, default=8
    solver : {"auto", "cvxpy", "lowrank"}, default="auto"
        ``"auto"``: cvxpy up to 100 samples, the low-rank solver beyond.
    rank : int or None, default=None
        Columns of the low-rank factor to start with (None: ``2 * n_clusters``).
    max_rank : int or None, default=None
        Rank escalation of the low-rank solver: while the certified gap
        ``objective_ - lower_bound_`` exceeds ``gap_tol * |objective_|``, solve again on
        *signed* factors with ``n_clusters`` more columns (``Z = U U^T`` with
        ``Z >= 0`` as a constraint: nonnegative columns only reach completely positive
        matrices, and an optimum below the recovery threshold is in general not one),
        warm-started from the last factor and its multipliers, up to ``max_rank``
        columns (None: ``4 * n_clusters``; at most the number of samples). Escalation
        stops when the gap closes, when ``max_iter`` is spent, or when a rank increase
        lowered ``objective_`` by less than ``gap_tol`` relative. It runs on up to 500
        samples solved (each signed iteration forms the ``n x n`` ``Z``) and shares
        ``max_iter`` with the first solve. Set it to ``rank`` to turn escalation off.
    gap_tol : float, default=1e-3
        Relative certified gap below which the low-rank solution is accepted (see
        ``lower_bound_``; about the precision of a first-order solution); above it
        after escalation, a ``ConvergenceWarning`` gives the gap. ``np.inf``: no
        escalation and no warning (the bound is still computed).
    sketch_size : int, float or None, default=None
        Solve on this many random samples (a float in (0, 1]: this fraction of them; an
        int is always a count) and give every sample its nearest sketch centre
        (sketch-and-lift). None: solve on all samples.
    penalty : float, default=10.0
        Initial augmented-Lagrangian penalty of the low-rank solver (on data scaled to unit
        mean squared norm); it grows when the constraints converge slowly.
    tol : float, default=1e-6
        Low-rank solver: constraint violation (root mean square) and projected-gradient
        tolerance.
    max_iter : int, default=20000
        Low-rank solver: L-BFGS-B iterations in all (over every rank tried).
    cvxpy_solver : str, default="SCS"
        The conic solver cvxpy calls (``solver="cvxpy"``).
    solver_options : dict or None, default=None
        Keyword arguments for ``cvxpy.Problem.solve``, added to the defaults (for SCS:
        ``eps_abs = eps_rel = 1e-5``, which given values override).
    random_state : int, RandomState instance or None, default=None
        Seeds the k-means start of the low-rank factor, its padding when the rank grows,
        the rounding and the sketch.

    Attributes
    ----------
    labels_ : ndarray of shape (n_samples,)
    cluster_centers_ : ndarray of shape (n_clusters, n_features)
        Means of the clusters (of the sketch's clusters with ``sketch_size``).
    objective_ : float
        K-means cost of the SDP solution, ``||X_c||^2 - <X_c X_c^T, Z>`` on centred data (on
        the sketch with ``sketch_size``). With ``solver="cvxpy"`` at optimality (to the
        solver's tolerance) it is a lower bound on the cost of every partition, equal to
        it when ``Z`` is a partition matrix. The low-rank ``Z`` is feasible, so its
        objective is at or above the SDP optimum; ``lower_bound_`` says by how much at
        most.
    lower_bound_ : float
        A certified lower bound on the SDP optimum (so on the K-means cost of every
        partition), from dual points built from the solution
        (:mod:`clusterlab.solvers.sdp.certificate`; the best of them):
        ``objective_ - lower_bound_`` is the certified gap, an upper bound on how far
        ``objective_`` is above the SDP optimum. Above the recovery threshold it closes
        to about ``tol`` at once; below it the multipliers of the signed escalation
        tighten it (see the SDP guide's certified-gap section). NaN with more than 1,000
        samples solved (the bound needs dense eigenvalue problems of that size), and
        then there is no rank escalation.
    rank_ : int or None
        Columns of ``membership_factor_`` (the nonnegative factor, or a signed one from
        the escalation when it was feasible to ``tol`` and lower); None with cvxpy.
    inertia_ : float
        K-means cost of ``labels_`` (squared distances to ``cluster_centers_``).
    membership_factor_ : ndarray of shape (n_solved, r)
        ``Z ~ membership_factor_ @ membership_factor_.T``: the low-rank factor
        (nonnegative, or with signed entries when it comes from the escalation), or the
        eigen-factor of cvxpy's ``Z``.
    primal_infeasibility_ : float
        ``||Z 1 - 1||_2``.
    solver_ : str
        The solver used.
    status_ : str
        ``"optimal"``/``"optimal_inaccurate"`` (cvxpy) or ``"converged"``/``"max_iter"``.
    sketch_indices_ : ndarray or None
        Samples the SDP was solved on with ``sketch_size``.
    n_iter_ : int or None
        Solver iterations (None when cvxpy's solver does not report them).
    converged_ : bool

    Examples
    --------
    >>> import numpy as np
    >>> from clusterlab.sdp import SDPKMeans
    >>> rng = np.random.default_rng(0)
    >>> X = np.vstack([rng.normal(c, 0.5, (30, 2)) for c in ([0, 0], [5, 0], [0, 5])])
    >>> model = SDPKMeans(n_clusters=3, solver="lowrank", random_state=0).fit(X)
    >>> np.bincount(model.labels_).tolist()
    [30, 30, 30]
    >>> bool(abs(model.objective_ - model.inertia_) < 1e-3 * model.inertia_)  # Z is integral
    True
    """

    _parameter_constraints: dict = {  # noqa: RUF012 - scikit-learn's convention
        "n_clusters": [Interval(Integral, 1, None, closed="left")],
        "solver": [StrOptions(_SOLVERS)],
        "rank": [None, Interval(Integral, 1, None, closed="left")],
        "max_rank": [None, Interval(Integral, 1, None, closed="left")],
        "gap_tol": [Interval(Real, 0, None, closed="both")],  # inf: accept any gap
        "sketch_size": [
            None,
            Interval(Integral, 1, None, closed="left"),
            Interval(Real, 0, 1, closed="right"),
        ],
        "penalty": [Interval(Real, 0, None, closed="neither")],
        "tol": [Interval(Real, 0, None, closed="neither")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "cvxpy_solver": [str],
        "solver_options": [None, dict],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        n_clusters=8,
        *,
        solver="auto",
        rank=None,
        max_rank=None,
        gap_tol=1e-3,
        sketch_size=None,
        penalty=10.0,
        tol=1e-6,
        max_iter=20000,
        cvxpy_solver="SCS",
        solver_options=None,
        random_state=None,
    ):
        self.n_clusters = n_clusters
        self.solver = solver
        self.rank = rank
        self.max_rank = max_rank
        self.gap_tol = gap_tol
        self.sketch_size = sketch_size
        self.penalty = penalty
        self.tol = tol
        self.max_iter = max_iter
        self.cvxpy_solver = cvxpy_solver
        self.solver_options = solver_options
        self.random_state = random_state

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Solve the SDP on ``X`` and round it; ``y`` is ignored.

        Returns
        -------
        self

        Raises
        ------
        SDPStatusError
            When cvxpy's solver ends without a usable solution (the status is attached).
        """
        X = validate_data(self, X, dtype=[np.float64, np.float32], order="C")
        n = X.shape[0]
        check_n_clusters(self.n_clusters, n)
        # the solve runs in X's normalised frame (clusterlab._scaling): see "Scale" above
        X64, self._frame = normalise_scale(np.asarray(X, dtype=np.float64))
        if self.rank is not None and self.rank < self.n_clusters:
            raise ValueError(
                f"rank={self.rank} is below n_clusters={self.n_clusters}: the membership "
                "matrix of a partition into K clusters has rank K, so its factor needs at "
                "least K columns (None: 2 * n_clusters)."
            )
        rng = _generator(self.random_state)
        n_solved = self._sketch_count(n)
        self.solver_ = _resolve_solver(self.solver, n_solved, _EXACT_MAX_SAMPLES)
        options = {
            "solver": self.solver_,
            "rank": self.rank,
            "max_rank": self.max_rank,
            "gap_tol": self.gap_tol,
            "penalty": self.penalty,
            "tol": self.tol,
            "max_iter": self.max_iter,
            "cvxpy_solver": self.cvxpy_solver,
            "solver_options": self.solver_options,
        }
        if n_solved < n:
            labels, centres, result, sketch = sketch_and_lift(
                X64, self.n_clusters, n_solved, rng=rng, **options
            )
            self.sketch_indices_ = sketch
        else:
            result = peng_wei(X64, self.n_clusters, rng=rng, **options)
            labels = result.labels
            centres = cluster_means(X64, labels, self.n_clusters)
            self.sketch_indices_ = None
        frame = self._frame
        self.labels_ = labels
        self._centers = centres  # in the frame, for predict
        self.cluster_centers_ = frame.points(centres).astype(X.dtype)
        self.inertia_ = frame.lengths(float(np.sum((X64 - centres[labels]) ** 2)), 2)
        self.objective_ = frame.lengths(float(result.objective), 2)
        self.lower_bound_ = frame.lengths(float(result.lower_bound), 2)
        self.rank_ = result.rank
        self.membership_factor_ = np.asarray(result.factor).astype(X.dtype)
        self.primal_infeasibility_ = result.primal_infeasibility
        self.status_ = result.status
        self.n_iter_ = result.n_iter
        self.converged_ = result.converged
        if not result.converged:
            warnings.warn(
                f"SDPKMeans ({self.solver_}) stopped with status {result.status!r} after "
                f"{result.n_iter} iterations; ||Z 1 - 1|| = {result.primal_infeasibility:.2e}. "
                "Raise max_iter or loosen tol (lowrank), or the solver tolerances (cvxpy).",
                ConvergenceWarning,
                stacklevel=3,
            )
        elif (
            self.solver_ == "lowrank"
            and np.isfinite(result.lower_bound)
            and not (result.gap_converged)
        ):
            relative = (result.objective - result.lower_bound) / max(
                abs(result.objective), np.finfo(float).tiny
            )
            warnings.warn(
                f"SDPKMeans (lowrank) stopped at rank {result.rank} (escalation up to rank "
                f"{result.rank_tried}) with a certified gap "
                f"of {self.objective_ - self.lower_bound_:.4g} ({relative:.2e} relative, "
                f"gap_tol={self.gap_tol:g}): objective_ {self.objective_:.8g}, "
                f"lower_bound_ {self.lower_bound_:.8g}. The signed escalation ran out of "
                "iterations or columns before the bound met objective_ (raise max_iter or "
                'max_rank), or the gap is what it says; solver="cvxpy" gives the optimum '
                "on up to a few hundred samples.",
                ConvergenceWarning,
                stacklevel=3,
            )
        return self

    def _sketch_count(self, n):
        size = self.sketch_size
        if size is None:
            return n
        # scikit-learn's convention (IsolationForest's max_samples): an int is a count, a
        # float a fraction, so sketch_size=1 asks for one sample, not all of them
        count = int(size) if isinstance(size, Integral) else int(np.ceil(size * n))
        if count < self.n_clusters:
            raise ValueError(
                f"sketch_size gives {count} samples, fewer than n_clusters={self.n_clusters}."
            )
        return min(count, n)

    def predict(self, X):
        """Nearest cluster centre of each sample."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=[np.float64, np.float32], order="C", reset=False)
        return nearest_centre(self._frame.to_frame(np.asarray(X, dtype=np.float64)), self._centers)


class ILASDP(ClusterMixin, BaseEstimator):
    """Iterative likelihood-adjusted SDP for clusters with different covariances.

    Labels are parameters of the Gaussian likelihood; each cluster gets its own membership
    matrix ``Z_k`` and, with the covariances fixed, the negative log-likelihood ``F``
    relaxes to an SDP over ``Z_1..Z_K`` (LA-SDP). iLA-SDP alternates that SDP with the
    closed-form covariance update, so ``F`` never increases (``objective_history_``). No
    centroid is estimated along the way. See :mod:`clusterlab.solvers.sdp.likelihood`.

    Scale: the fit runs on ``X`` centred and divided by a power of two (an exact
    operation; :func:`clusterlab._scaling.normalise_scale`), so ``X * s`` gives the
    partition of ``X`` for any ``s`` from 1e-200 to 1e200; ``means_``, ``covariances_``
    (times ``scale**2``: ``inf`` or 0 beyond the float range) and ``objective_history_``
    are mapped back to ``X``'s units, and ``tol`` applies to ``F`` in the frame. float32
    ``X`` gives float32 arrays and probabilities (cvxpy and the low-rank solver work in
    float64).

    Parameters
    ----------
    n_clusters : int, default=8
    covariance_type : {"full", "diag", "spherical"}, default="full"
    shrinkage : float, default=0.1
        Pseudo-samples of isotropic variance equal to the mean feature variance of ``X``
        added to every cluster's scatter: ``Sigma_k = (S_k + lambda I) / n_k`` with
        ``lambda = shrinkage * mean variance``. Keeps covariances of small clusters
        invertible; it enters ``F`` as ``lambda tr(Sigma_k^-1) / 2``.
    init : {"sdp", "k-means++"} or array-like of shape (n_samples,), default="sdp"
        The starting partition: the Peng–Wei SDP (on the same solver), the best of 10
        k-means++ runs, or given labels in ``[0, n_clusters)``.
    solver : {"auto", "cvxpy", "lowrank"}, default="auto"
        ``"auto"``: cvxpy up to 50 samples, the low-rank solver beyond (every step
        solves an SDP with ``n_clusters`` blocks, so cvxpy's cost grows fastest here; the
        docs' SDP guide has the measurements).
    max_iter : int, default=50
        LA-SDP steps at most.
    tol : float, default=1e-4
        Stop when ``F`` decreases by less than ``tol`` relative.
    cvxpy_solver : str, default="SCS"
        The conic solver cvxpy calls (``solver="cvxpy"``).
    solver_options : dict or None, default=None
        Keyword arguments for ``cvxpy.Problem.solve``, added to the defaults (for SCS:
        ``eps_abs = eps_rel = 1e-5``, which given values override).
    random_state : int, RandomState instance or None, default=None
    verbose : int, default=0
        Print ``F`` every ``verbose`` steps (0: silent).

    Every LA-SDP step after the first starts from the previous one: the low-rank solver
    from its factors and multipliers, SCS from its primal and dual iterates (cvxpy's
    ``warm_start``).

    Attributes
    ----------
    labels_ : ndarray of shape (n_samples,)
        ``argmax_k`` of the soft memberships.
    memberships_ : ndarray of shape (n_samples, n_clusters)
        ``w_ik = (Z_k 1)_i``; rows sum to one.
    means_ : ndarray of shape (n_clusters, n_features)
        Membership-weighted means.
    covariances_ : ndarray
        ``(K, d, d)``, ``(K, d)`` or ``(K,)`` by ``covariance_type``.
    weights_ : ndarray of shape (n_clusters,)
        Cluster proportions ``n_k / n``.
    objective_history_ : ndarray of shape ``(n_iter_ + 1,)``
        ``F`` (with the shrinkage term, without ``n p log(2 pi) / 2``) at the start and
        after every accepted step; it never increases (a step that would raise ``F`` is
        discarded and ends the fit). In ``X``'s units: the frame's plus
        ``n d log(scale)`` (``log det Sigma_k`` gains ``2 d log(scale)``).
    init_labels_ : ndarray of shape (n_samples,)
    solver_ : str
    n_iter_ : int
    converged_ : bool

    Examples
    --------
    >>> import numpy as np
    >>> from clusterlab.sdp import ILASDP
    >>> rng = np.random.default_rng(0)
    >>> X = np.vstack([rng.normal(0, 0.5, (50, 2)),
    ...                rng.normal([2.5, 0], [0.5, 3.0], (50, 2))])
    >>> model = ILASDP(n_clusters=2, solver="lowrank", random_state=0).fit(X)
    >>> np.bincount(model.labels_).tolist()
    [50, 50]
    >>> bool(np.all(np.diff(model.objective_history_) <= 0))
    True
    """

    _parameter_constraints: dict = {  # noqa: RUF012 - scikit-learn's convention
        "n_clusters": [Interval(Integral, 1, None, closed="left")],
        "covariance_type": [StrOptions({"full", "diag", "spherical"})],
        "shrinkage": [Interval(Real, 0, None, closed="left")],
        "init": [StrOptions({"sdp", "k-means++"}), "array-like"],
        "solver": [StrOptions(_SOLVERS)],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "cvxpy_solver": [str],
        "solver_options": [None, dict],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    def __init__(
        self,
        n_clusters=8,
        *,
        covariance_type="full",
        shrinkage=0.1,
        init="sdp",
        solver="auto",
        max_iter=50,
        tol=1e-4,
        cvxpy_solver="SCS",
        solver_options=None,
        random_state=None,
        verbose=0,
    ):
        self.n_clusters = n_clusters
        self.covariance_type = covariance_type
        self.shrinkage = shrinkage
        self.init = init
        self.solver = solver
        self.max_iter = max_iter
        self.tol = tol
        self.cvxpy_solver = cvxpy_solver
        self.solver_options = solver_options
        self.random_state = random_state
        self.verbose = verbose

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Run iLA-SDP on ``X``; ``y`` is ignored.

        Returns
        -------
        self
        """
        X = validate_data(self, X, dtype=[np.float64, np.float32], order="C")
        n = X.shape[0]
        check_n_clusters(self.n_clusters, n)
        # the fit runs in X's normalised frame (clusterlab._scaling): see "Scale" above
        X64, self._frame = normalise_scale(np.asarray(X, dtype=np.float64))
        if n < 2:
            raise ValueError(
                "ILASDP needs at least 2 samples to estimate covariances, got 1 sample."
            )
        if np.unique(X64, axis=0).shape[0] < self.n_clusters:
            raise ValueError(f"X has fewer distinct samples than n_clusters={self.n_clusters}.")
        ridge = self.shrinkage * float(X64.var(axis=0).mean())
        if not ridge > 0 and np.ptp(X64, axis=0).max() == 0:
            raise ValueError("X is constant: there is no covariance to estimate.")
        rng = _generator(self.random_state)
        self._frame_shift = n * X.shape[1] * self._frame.log_scale  # see objective_history_
        self.solver_ = _resolve_solver(
            self.solver, n, _EXACT_MAX_SAMPLES_ILA, n_blocks=self.n_clusters
        )
        init_labels = self._initial_labels(X64, rng)
        exact_options = {"solver": self.cvxpy_solver, "solver_options": self.solver_options}
        try:
            result = ila_sdp(
                X64,
                init_labels,
                self.n_clusters,
                covariance_type=self.covariance_type,
                ridge=ridge,
                solver=self.solver_,
                max_iter=self.max_iter,
                tol=self.tol,
                rng=rng,
                lowrank_options={"ftol": _ILA_FTOL},
                exact_options=exact_options,
                callback=self._progress(),
            )
        except np.linalg.LinAlgError as exc:
            raise ValueError(
                "a cluster covariance is singular (a cluster of identical or collinear "
                f"samples); raise shrinkage (now {self.shrinkage})."
            ) from exc
        frame, dtype = self._frame, X.dtype
        weights = result.weights.sum(axis=0) / n
        self._frame_params = MixtureParams(
            weights, result.means, result.covariances, self.covariance_type
        )
        self.init_labels_ = init_labels
        self.labels_ = result.labels
        self.memberships_ = result.weights.astype(dtype)
        self.means_ = frame.points(result.means).astype(dtype)
        self.covariances_ = frame.lengths(result.covariances, 2).astype(dtype)
        self.weights_ = weights.astype(dtype)
        # F = (1/2) sum_k [tr(Sigma_k^-1 (S_k + ridge I)) + n_k log det Sigma_k]: the trace
        # is unit-free, and log det Sigma_k gains 2 d log(scale), so F gains n d log(scale)
        history = np.asarray(result.objective_history, dtype=np.float64)
        self.objective_history_ = history + self._frame_shift
        self.n_iter_ = result.n_iter
        self.converged_ = result.converged
        if not result.converged:  # relative changes of F in the frame: what tol sees
            change = abs(history[-1] - history[-2]) / abs(history[-2]) if len(history) > 1 else 0
            reason = (
                "a step that would have raised F by more than tol was discarded"
                if result.stopped_on_increase
                else f"max_iter={self.max_iter} reached"
            )
            warnings.warn(
                f"ILASDP stopped after {result.n_iter} accepted steps ({reason}) with F "
                f"changing by {change:.2e} relative at the last one (tol={self.tol}); last "
                f"solver status {result.solver_statuses[-1:]}.",
                ConvergenceWarning,
                stacklevel=3,
            )
        return self

    def _initial_labels(self, X, rng):
        n = X.shape[0]
        if isinstance(self.init, str) and self.init == "sdp":
            # the start needs labels only: no certificate, no rank escalation
            labels = peng_wei(
                X,
                self.n_clusters,
                rng=rng,
                solver=self.solver_,
                certify=False,
                cvxpy_solver=self.cvxpy_solver,
                solver_options=self.solver_options,
            ).labels
        elif isinstance(self.init, str):
            labels = seeded_kmeans(X, np.full(n, -1), self.n_clusters, rng=rng, n_init=10).labels
        else:
            labels = np.asarray(self.init)
            if labels.shape != (n,) or labels.dtype.kind not in "iu":
                raise ValueError(
                    f"init labels must be integers of shape ({n},), got {labels.dtype} "
                    f"{labels.shape}."
                )
        in_range = labels.min() >= 0 and labels.max() < self.n_clusters
        counts = np.bincount(labels, minlength=self.n_clusters) if in_range else labels
        if not in_range or np.any(counts == 0):
            raise ValueError(
                f"the initial partition must use every label in [0, {self.n_clusters}) "
                "and no other."
            )
        return labels.astype(np.int64)

    def _progress(self):
        report = progress_printer(self.verbose, "ILASDP", [("F", ".6g")], unit="step")
        if report is None:
            return None
        return lambda step, value: report(step, value + self._frame_shift)  # F in X's units

    def _log_density(self, X):
        """Log likelihoods of the samples under each cluster, in the frame (the
        normalisation over clusters does not see ``-d log scale``), and ``X``'s dtype.
        Rows far from every cluster are redone relative to the nearest one
        (:func:`~clusterlab.solvers.gaussian.fix_far_rows`): finite posteriors."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=[np.float64, np.float32], order="C", reset=False)
        Z = self._frame.to_frame(np.asarray(X, dtype=np.float64))
        with np.errstate(over="ignore", invalid="ignore"):
            log_density = log_gaussian(Z, self._frame_params)
        fix_far_rows(Z, self._frame_params, log_density)
        return log_density, X.dtype

    def predict(self, X):
        """Cluster of highest Gaussian likelihood under the fitted means and covariances.

        No mixing proportions enter (as in ``F``), so on the training samples this can
        differ from ``labels_``, the largest SDP membership.
        """
        return np.argmax(self._log_density(X)[0], axis=1)

    def predict_proba(self, X):
        """Likelihoods ``N(x | mean_k, Sigma_k)`` normalised over clusters.

        Like ``F``, these carry no mixing proportions: every cluster is a priori equally
        likely.
        """
        log_density, dtype = self._log_density(X)
        proba = np.exp(log_density - logsumexp(log_density, axis=1, keepdims=True))
        return proba.astype(dtype, copy=False)
