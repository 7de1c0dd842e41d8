"""Balanced assignments: Sinkhorn transport, SwAV/SIGMA/SeLa codes, balanced k-means.

The functions here check their input and call :mod:`clusterlab.solvers.sinkhorn`.
``sinkhorn``, ``sinkhorn_codes`` and ``swapped_prediction_loss`` accept NumPy arrays,
PyTorch tensors (CPU or CUDA), CuPy arrays and any other array-API array, and return
arrays of the same kind on the same device; so do ``SinkhornKMeans``'s ``fit``,
``predict`` and ``transform``. Row-chunked Dask arrays are iterated chunk by chunk on
their workers (:mod:`clusterlab.solvers.dask_sinkhorn`, :mod:`clusterlab.solvers.dask_lloyd`)
and give lazy Dask arrays back.
"""

from __future__ import annotations

import math
import warnings
from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, ClusterMixin, TransformerMixin
from sklearn.cluster import kmeans_plusplus
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from clusterlab._progress import progress_printer
from clusterlab._scaling import normalise_scale
from clusterlab._sklearn_compat import Interval, StrOptions, _fit_context, validate_data
from clusterlab._validation import (
    check_count,
    check_dask_features,
    check_float_matrix,
    check_marginal,
    check_n_clusters,
    check_positive,
    check_range_values,
    check_score_range,
    count_runs,
)
from clusterlab.solvers import balanced_kmeans as _bk
from clusterlab.solvers import sinkhorn as _sk
from clusterlab.solvers._backend import (
    accumulation_dtype,
    device,
    get_namespace,
    host_floats,
    is_array,
    is_numpy_namespace,
    is_other_array,
    stop_gradient,
    to_namespace,
    to_numpy,
)
from clusterlab.solvers._dask import check_dask_matrix, is_dask_array
from clusterlab.solvers.assignment import round_to_proportions

__all__ = ["SinkhornKMeans", "sinkhorn", "sinkhorn_codes", "swapped_prediction_loss"]

SinkhornResult = _sk.SinkhornResult


def _check_solver_arguments(scores, eps, tol, max_iter, n_iter, *, measure_range=True):
    """The checks every Sinkhorn entry point shares; returns them validated, and the
    range ``(min, max)`` of the scores (one device sync in all; None without
    ``measure_range``: the solver measures it and calls :func:`check_range_values`)."""
    scores = check_float_matrix(scores, "scores", finite=False)  # the range check sees NaN
    eps = check_positive(eps, "eps")
    score_range = check_score_range(scores, eps) if measure_range else None
    return (
        scores,
        eps,
        score_range,
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


def _check_dask_arguments(scores, eps, tol, max_iter, n_iter, column_lse=False):
    """:func:`_check_solver_arguments` for a row-chunked Dask array: its shape and dtype
    lazily, its range (which shows NaN and inf) in one pass over it; ``column_lse``: that
    pass also forms the first column update of SwAV's codes (appended to the result)."""
    from clusterlab.solvers import dask_sinkhorn as _dsk

    scores = check_dask_matrix(scores, "scores")
    eps = check_positive(eps, "eps")
    if column_lse:
        low, high, lse = _dsk.range_and_column_lse(scores, eps)
    else:
        low, high = _dsk.extrema(scores)
    if not (np.isfinite(low) and np.isfinite(high)):
        raise ValueError("scores contains NaN or infinity.")
    if not np.isfinite((high - low) / eps):
        raise ValueError(f"eps={eps:g} is too small for scores spanning {high - low:g}.")
    checked = (
        scores,
        eps,
        (low, high),
        check_positive(tol, "tol"),
        check_count(max_iter, "max_iter"),
        check_count(n_iter, "n_iter", allow_none=True),
    )
    return (*checked, lse) if column_lse else checked


def _dask_all_finite(X):
    import dask.array as da

    return da.isfinite(X).all().compute(optimize_graph=False)


def _dask_row_marginal(a, n):
    """``a`` of a Dask solve: None, or checked (one pass for a Dask ``a``) and scaled to
    sum to one, lazily for a Dask ``a``."""
    if a is None or not is_dask_array(a):
        return check_marginal(a, n, "a", np)
    if a.shape != (n,):
        raise ValueError(f"a must have shape ({n},), got {a.shape}.")
    import dask

    total, low = (float(v) for v in dask.compute(a.sum(), a.min()))
    if not (np.isfinite(total) and np.isfinite(low)) or low < 0 or abs(total - 1) > 1e-6:
        raise ValueError("a must be finite and nonnegative, summing to 1.")
    return a.astype(np.float64) / total


def _dask_sinkhorn(
    scores, eps, a, b, *, tol, max_iter, n_iter, init, eps_scaling, return_plan, verbose
):
    from clusterlab.solvers import dask_sinkhorn as _dsk

    scores, eps, score_range, tol, max_iter, n_iter = _check_dask_arguments(
        scores, eps, tol, max_iter, n_iter
    )
    n, K = scores.shape
    a = _dask_row_marginal(a, n)
    b = check_marginal(np.asarray(b) if is_dask_array(b) else b, K, "b", np)
    if init is not None:
        init = np.asarray(init, dtype=np.float64)
        if init.shape != (K,) or not np.all(np.isfinite(init)):
            raise ValueError(f"init must be {K} finite column potentials (result.g).")
    result = _dsk.sinkhorn(
        scores,
        eps,
        a,
        b,
        tol=tol,
        max_iter=max_iter,
        n_iter=n_iter,
        init=init,
        eps_scaling=eps_scaling,
        return_plan=return_plan,
        score_range=score_range,
        callback=progress_printer(verbose, "sinkhorn", [("marginal error", ".3e")]),
    )
    if n_iter is None and not result.converged:
        _warn_not_converged(result, tol)
    return result


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
    a, b : arrays or None, default=None
        Row (sample) and column (prototype) marginals, nonnegative and summing to 1;
        uniform by default (equal-sized clusters).
    tol : float, default=1e-6
        Stop when ``max_k |colsum_k / b_k - 1| <= tol`` (ignored when ``n_iter`` is set).
    max_iter : int, default=1000
        Iteration cap in tolerance mode, epsilon-scaling stages included.
    n_iter : int or None, default=None
        Run exactly ``n_iter`` iterations (SwAV's fixed-iteration mode, no epsilon scaling).
    init : array of shape (n_prototypes,) or None, default=None
        Column potentials ``result.g`` of an earlier solve, to warm-start.
    eps_scaling : bool, default=True
        In tolerance mode, solve first for larger eps (halving from the spread of the
        scores), each stage warm-starting the next. Not needed for stability (the
        iteration is in log domain), but near-hard plans converge far faster with it;
        on easy problems it can double the iterations: pass False there.
    return_plan : bool, default=True
        Form the plan (one more pass over ``scores`` in tolerance mode).
    verbose : int, default=0
        Print the marginal error every ``verbose`` iterations (0: silent).

    Returns
    -------
    SinkhornResult
        For row-chunked Dask scores, ``plan`` and ``f`` are lazy Dask arrays chunked
        like the scores and ``g`` is NumPy (``a`` may be NumPy or Dask; see
        :doc:`/user_guide/scaling_out`).
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
    if is_dask_array(scores):  # row-chunked: iterated chunk by chunk, the plan lazy
        return _dask_sinkhorn(
            scores,
            eps,
            a,
            b,
            tol=tol,
            max_iter=max_iter,
            n_iter=n_iter,
            init=init,
            eps_scaling=eps_scaling,
            return_plan=return_plan,
            verbose=verbose,
        )
    scores, eps, _, tol, max_iter, n_iter = _check_solver_arguments(
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
        scores,
        eps,
        a,
        b,
        tol=tol,
        max_iter=max_iter,
        n_iter=n_iter,
        init=init,
        eps_scaling=eps_scaling,
        return_plan=return_plan,
        callback=progress_printer(verbose, "sinkhorn", [("marginal error", ".3e")]),
    )
    if n_iter is None and not result.converged:
        _warn_not_converged(result, tol)
    return result


def sinkhorn_codes(scores, eps=0.05, n_iter=3, *, hard=False, tol=1e-6, max_iter=1000):
    """Balanced codes of a batch: SwAV's Sinkhorn-Knopp procedure and its relatives.

    Every prototype receives the same total mass and every sample's codes sum to one.
    Starting from ``exp(scores / eps)``, each iteration normalises the prototype loads,
    then the samples, as SwAV's ``distributed_sinkhorn`` does, computed so that it gives
    the same numbers without overflow. Two paths, chosen from the scores' range:

    - scaling domain, with ``n_iter`` set and ``(max - min) / eps + log(batch) +
      log(n_prototypes)`` at most 80 (float32; 650 in float64), so that every entry of
      ``exp(scores / eps)`` (shifted) and every scaling stays a normal number: one
      exponential pass, then one pass over the matrix per iteration (on NumPy each row
      shifted by its own maximum and the first prototype sums weighted to match, which
      is exact);
    - log domain otherwise (small ``eps``, widely spread scores) and always in tolerance
      mode (``n_iter=None``): float64 potentials, every exponent shifted by its row's
      maximum; it never overflows.

    Both reproduce SwAV's codes up to rounding (in float32 on cosine scores the two
    paths agree within 1e-5).

    PyTorch tensors (CPU or CUDA) and CuPy arrays are computed on their device and the
    codes come back there, detached from the autograd graph (SwAV computes them under
    ``no_grad``). With ``n_iter`` set, the only host synchronisation is the input check
    (the scores' maximum and minimum, fetched together).

    A row-chunked Dask array (for instance a lazy ``Z @ C.T`` of a Dask ``Z`` and NumPy
    prototypes ``C``) is iterated chunk by chunk where its chunks live, only K-length
    partial sums travelling, and the codes come back as a lazy Dask array chunked like
    the scores (see :doc:`/user_guide/scaling_out`).

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
    eps : float > 0, default=0.05
        Regularisation (SwAV's ``epsilon``).
    n_iter : int or None, default=3
        Fixed number of iterations; None iterates to ``tol``.
    hard : bool, default=False
        Return one-hot codes of each sample's largest code (same shape and dtype).
    tol : float, default=1e-6
        Marginal tolerance, in tolerance mode only (``n_iter=None``).
    max_iter : int, default=1000
        Iteration cap, in tolerance mode only.

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

    On a Dask array the codes are a lazy Dask array, chunked like the scores:

    >>> import dask.array as da
    >>> lazy = sinkhorn_codes(da.from_array(z, chunks=(4, 4)) @ prototypes.T)
    >>> lazy.chunks
    ((4, 4), (4,))
    >>> bool(np.allclose(lazy.compute(), codes, atol=1e-12))
    True
    """
    if is_dask_array(scores):  # row-chunked: iterated chunk by chunk, the codes lazy
        from clusterlab.solvers import dask_sinkhorn as _dsk

        scores, eps, _, tol, max_iter, n_iter, lse = _check_dask_arguments(
            scores, eps, tol, max_iter, n_iter, column_lse=True
        )
        codes, result = _dsk.sinkhorn_codes(
            scores, eps, n_iter, hard=hard, tol=tol, max_iter=max_iter, column_lse=lse
        )
        if n_iter is None and not result.converged:
            _warn_not_converged(result, tol, "sinkhorn_codes")
        return codes
    # NumPy with n_iter: the solver's first pass measures the range (no pass of its own)
    fused = n_iter is not None and isinstance(scores, np.ndarray)
    scores, eps, score_range, tol, max_iter, n_iter = _check_solver_arguments(
        scores, eps, tol, max_iter, n_iter, measure_range=not fused
    )
    codes, result = _sk.sinkhorn_codes(
        scores,
        eps,
        n_iter,
        hard=hard,
        tol=tol,
        max_iter=max_iter,
        score_range=score_range,
        check_range=lambda low, high: check_range_values(
            low, high, eps, float(np.finfo(scores.dtype).max)
        ),
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
    eps : float > 0, default=0.05
        Regularisation of the codes, passed to :func:`sinkhorn_codes`.
    n_iter : int, default=3
        Sinkhorn iterations of the codes, passed to :func:`sinkhorn_codes`.
    tau : float > 0, default=0.1
        Softmax temperature of the predictions.
    codes_a, codes_b : arrays or None, default=None
        Precomputed codes (e.g. from a queue-extended batch); computed when None.

    Returns
    -------
    loss : float, or 0-d array
        A float for NumPy scores. For other arrays a 0-d array of their namespace on
        their device: on PyTorch it carries the autograd graph of both scores, so
        ``loss.backward()`` trains the model (the codes are detached).
    grad_a, grad_b : arrays like ``scores_a`` and ``scores_b``
        ``dL/dscores`` with the codes held fixed (no autograd graph).

    Examples
    --------
    >>> import numpy as np
    >>> from clusterlab import swapped_prediction_loss
    >>> rng = np.random.default_rng(0)
    >>> s = rng.uniform(-1, 1, size=(16, 5))
    >>> loss, grad_a, grad_b = swapped_prediction_loss(s, s + 0.01)
    >>> grad_a.shape
    (16, 5)

    In a PyTorch training step (``z_a``, ``z_b``: normalised embeddings of two views,
    ``C``: the prototypes)::

        loss, _, _ = swapped_prediction_loss(z_a @ C.T, z_b @ C.T, tau=0.1)
        loss.backward()
    """
    # when the codes are computed here, their range check finds NaN or inf in the scores
    scores_a = check_float_matrix(scores_a, "scores_a", finite=codes_a is not None)
    scores_b = check_float_matrix(scores_b, "scores_b", finite=codes_b is not None)
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

    ``fit``, ``predict``, ``transform`` and ``fit_predict`` take NumPy arrays (and
    anything scikit-learn's ``validate_data`` takes), PyTorch tensors on the CPU or a
    GPU, CuPy arrays and other array-API arrays. Non-NumPy input is computed on its
    device, and the results and the fitted ``cluster_centers_`` and ``labels_`` are
    arrays of its namespace, on its device, in its dtype (float32 stays float32; tensors
    are detached from any autograd graph). On such input, k-means++ runs on the device
    with its uniform draws taken from ``random_state`` on the host, and each centroid
    update brings three scalars to the host in one transfer (the convergence test and
    the objective). The rounding to exact sizes runs on the host: the final plan is
    copied there once, and the labels (int64) are copied back to the device.

    Scale: the fit runs on ``X`` centred and divided by a power of two ``scale``
    (:func:`clusterlab._scaling.normalise_scale`; only divided with ``spherical=True``),
    an exact operation, so ``X * s`` gives the partition of ``X`` for any ``s`` from
    1e-200 to 1e200; ``cluster_centers_`` and the objectives are mapped back to ``X``'s
    units, and new samples are mapped into the same frame.

    A row-chunked Dask array is fitted chunk by chunk on its workers: the fitted
    attributes are then NumPy and ``labels_`` a lazy Dask array rounded chunk by chunk
    (see :doc:`/user_guide/scaling_out`); ``predict`` and ``transform`` of a Dask array
    return lazy Dask arrays.

    A model predicts on, and transforms, arrays of any of these kinds, whatever it was
    fitted on: the fitted centres are copied to the namespace and device of the input
    (the input is computed in the fitted dtype).

    Parameters
    ----------
    n_clusters : int, default=8
    proportions : array-like of shape (n_clusters,) or None, default=None
        Cluster proportions (positive, summing to 1); None for equal sizes.
    spherical : bool, default=False
        Cosine scores on L2-normalised samples and centroids.
    eps : float, default=0.05
        Entropic regularisation. Scores are cosines (spherical) or
        ``-||x - c||^2 / (2 v)`` with ``v`` the mean squared distance of the samples to
        their mean, so ``eps`` is unit-free in both cases.
    init : {"k-means++", "random"} or array of shape (n_clusters, n_features), \
            default="k-means++"
        An array of any of the kinds ``fit`` takes; it is copied to the namespace,
        device and dtype of ``X``.
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
    sinkhorn_max_iter : int, default=5000
        Iteration cap of each transport solve. Each solve starts from the potentials of
        the previous one and usually needs a few; the first ones on well-separated data
        (near-hard plans) can need a few thousand.
    random_state : int, RandomState instance or None, default=None
    verbose : int, default=0
        Print the objective every ``verbose`` centroid updates (0: silent).

    Attributes
    ----------
    labels_ : array of shape (n_samples,), int64
        Rounded balanced labels, in the namespace and on the device of ``X``.
    cluster_centers_ : array of shape (n_clusters, n_features)
        In the namespace, device and dtype of ``X``.
    objective_history_ : ndarray
        The entropic k-means objective ``n sum_ik Q_ik ||x_i - c_k||^2 - 2 v eps n H(Q)``
        after every centroid update; it does not increase (up to the transport tolerance).
        Computed in the normalised frame and multiplied back by ``scale**2`` (Euclidean
        scores; see the scale note above): ``inf`` where that leaves the float range.
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

    A PyTorch tensor is clustered on its device, and the fitted arrays are tensors::

        model = SinkhornKMeans(n_clusters=3).fit(embeddings)  # e.g. a CUDA tensor
        model.cluster_centers_.device, model.labels_.dtype  # same device, torch.int64
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
        sinkhorn_max_iter=5000,
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
        """Fit balanced clusters to ``X`` (``y`` is ignored).

        ``X`` is a NumPy array (or array-like), a PyTorch tensor, a CuPy array or
        another array-API array; the fitted arrays are of its kind, on its device. A
        row-chunked Dask array is fitted chunk by chunk (see :meth:`_fit_dask`).
        """
        if is_dask_array(X):
            return self._fit_dask(X)
        X = self._validate_fit_data(X)
        xp, where = get_namespace(X), device(X)
        check_n_clusters(self.n_clusters, X.shape[0])
        self.proportions_ = self._check_proportions()
        # The fit runs in X's normalised frame (clusterlab._scaling): scaled by a power
        # of two (exact), so that X * 1e-200 and X * 1e200 give X's partition, and, for
        # Euclidean scores (translation-invariant), centred, which keeps the expanded
        # squared distances free of cancellation (a float32 offset of 1e4 would swamp them)
        X, self._frame = normalise_scale(X, centre=not self.spherical)
        X = self._to_model_space(xp, X, None)
        rng = check_random_state(self.random_state)
        self._scale = self._score_scale(xp, X)
        proportions = self._proportions_on(xp, where)
        n_init = count_runs(self.init, self.n_init)
        best = None
        for _ in range(n_init):
            run = _bk.single_run(
                X,
                self._initial_centers(xp, X, rng),
                proportions,
                spherical=self.spherical,
                scale=self._scale,
                eps=self.eps,
                max_iter=self.max_iter,
                tol=self.tol,
                sinkhorn_tol=self.sinkhorn_tol,
                sinkhorn_max_iter=self.sinkhorn_max_iter,
                callback=progress_printer(self.verbose, "SinkhornKMeans", [("objective", ".6g")]),
            )
            if best is None or run.objective < best.objective:
                best = run
        if not best.converged:
            warnings.warn(
                f"SinkhornKMeans stopped after max_iter={self.max_iter} centroid updates "
                f"without reaching tol={self.tol:g}; raise max_iter.",
                ConvergenceWarning,
                stacklevel=3,
            )
        self._centers = best.centers  # in the centred (or normalised) space of the scores
        self.cluster_centers_ = self._from_model_space(xp, best.centers)
        # squared distances of the frame, back in X's units (cosine objectives are unit-free)
        power = 0 if self.spherical else 2
        self.objective_history_ = self._frame.lengths(best.objective_history, power)
        self.objective_ = self._frame.lengths(best.objective, power)
        self.n_iter_ = best.n_iter
        self.converged_ = best.converged
        # warm-started from the last inner solve: near-hard plans of well-separated data
        # take thousands of iterations from a cold start
        self.labels_ = self._balanced_labels(xp, X, best.centers, proportions, init=best.potentials)
        return self

    # -- row-chunked Dask arrays (clusterlab.solvers.dask_lloyd) ------------------------

    def _fit_dask(self, X):
        """:meth:`fit` on a row-chunked Dask array: each centroid update is the Dask
        transport (:mod:`clusterlab.solvers.dask_sinkhorn`) and per-chunk partial sums.
        ``cluster_centers_`` and the other fitted attributes are NumPy; ``labels_`` is a
        lazy Dask array, rounded chunk by chunk to exact cluster sizes (each chunk takes
        its share of every cluster; the rounding is greedy within a chunk). k-means++
        seeds from a uniform sample of ``max(10 000, 20 n_clusters)`` rows."""
        from clusterlab.solvers import dask_lloyd

        X = self._check_dask(X, reset=True)
        check_n_clusters(self.n_clusters, X.shape[0])
        self.proportions_ = self._check_proportions()
        X, self._frame = normalise_scale(X, centre=not self.spherical)
        X = self._dask_model_space(X, None)
        rng = check_random_state(self.random_state)
        self._scale = self._score_scale(get_namespace(X), X)
        best = None
        for _ in range(count_runs(self.init, self.n_init)):
            run = dask_lloyd.balanced_run(
                X,
                self._dask_initial_centers(X, rng),
                self.proportions_,
                spherical=self.spherical,
                scale=self._scale,
                eps=self.eps,
                max_iter=self.max_iter,
                tol=self.tol,
                sinkhorn_tol=self.sinkhorn_tol,
                sinkhorn_max_iter=self.sinkhorn_max_iter,
                callback=progress_printer(self.verbose, "SinkhornKMeans", [("objective", ".6g")]),
            )
            if best is None or run.objective < best.objective:
                best = run
        if not best.converged:
            warnings.warn(
                f"SinkhornKMeans stopped after max_iter={self.max_iter} centroid updates "
                f"without reaching tol={self.tol:g}; raise max_iter.",
                ConvergenceWarning,
                stacklevel=4,
            )
        self._centers = best.centers
        self.cluster_centers_ = self._from_model_space(np, best.centers)
        power = 0 if self.spherical else 2
        self.objective_history_ = self._frame.lengths(best.objective_history, power)
        self.objective_ = self._frame.lengths(best.objective, power)
        self.n_iter_ = best.n_iter
        self.converged_ = best.converged
        self.labels_ = self._dask_labels(X, best.centers, best.potentials)
        return self

    def _check_dask(self, X, *, reset):
        """Shape and dtype checked lazily, NaN and inf in one pass."""
        X = check_dask_features(self, X, reset=reset)
        if not bool(_dask_all_finite(X)):
            raise ValueError("X contains NaN or infinity.")
        return X

    def _dask_model_space(self, X, frame):
        from clusterlab.solvers import dask_lloyd

        if frame is not None:
            X = frame.to_frame(X)
        if not self.spherical:
            return X
        if dask_lloyd.norm_range(X)[0] == 0:
            raise ValueError("spherical=True needs nonzero samples: X has an all-zero row.")
        return dask_lloyd.unit_rows(X)

    def _dask_initial_centers(self, X, rng):
        from clusterlab.solvers.dask_lloyd import sample_rows

        n = X.shape[0]
        if isinstance(self.init, str) and self.init == "random":
            return sample_rows(X, rng.choice(n, self.n_clusters, replace=False))
        if isinstance(self.init, str):
            size = max(10_000, 20 * self.n_clusters)
            index = np.arange(n) if n <= size else np.unique(rng.randint(0, n, size))
            centers, _ = kmeans_plusplus(sample_rows(X, index), self.n_clusters, random_state=rng)
            return np.array(centers, dtype=X.dtype)
        return self._initial_centers(np, np.empty((0, X.shape[1]), dtype=X.dtype), rng)

    def _dask_labels(self, X, centers, init):
        """Lazy labels of exact sizes (``floor(n p_k)``, and one more for the clusters of
        largest fractional part until the rows are used up)."""
        from clusterlab.solvers import dask_lloyd
        from clusterlab.solvers import dask_sinkhorn as _dsk

        n = X.shape[0]
        ideal = n * self.proportions_
        sizes = np.floor(ideal + 1e-9).astype(np.int64)
        spare = n - int(sizes.sum())
        sizes[np.argsort(-(ideal - sizes), kind="stable")[:spare]] += 1
        S = dask_lloyd.scores(X, centers, spherical=self.spherical, scale=self._scale)
        result = _dsk.sinkhorn(
            S,
            self.eps,
            None,
            self.proportions_,
            tol=self.sinkhorn_tol,
            max_iter=self.sinkhorn_max_iter,
            init=init,
            return_plan=False,
        )
        if not result.converged:
            _warn_not_converged(result, self.sinkhorn_tol, "SinkhornKMeans' transport")
        return dask_lloyd.balanced_labels(
            X, centers, result.g, sizes, spherical=self.spherical, scale=self._scale, eps=self.eps
        )

    def _dask_new(self, X):
        check_is_fitted(self)
        X = self._check_dask(X, reset=False)
        X = self._dask_model_space(X.astype(self._centers.dtype), self._frame)
        return X

    def _validate_fit_data(self, X):
        if not is_other_array(X):
            return validate_data(self, X, dtype=[np.float64, np.float32], order="C", copy=False)
        X = check_float_matrix(X, "X")
        X = stop_gradient(get_namespace(X), X)
        self.n_features_in_ = X.shape[1]
        if hasattr(self, "feature_names_in_"):  # from an earlier fit on a DataFrame
            del self.feature_names_in_
        return X

    def _check_proportions(self):
        if self.proportions is None:
            return np.full(self.n_clusters, 1.0 / self.n_clusters)
        proportions = self.proportions
        if is_array(proportions):
            proportions = to_numpy(proportions)
        return check_marginal(proportions, self.n_clusters, "proportions", np)

    def _proportions_on(self, xp, where):
        """``proportions_`` as the transport's column marginals, on the data's device."""
        if is_numpy_namespace(xp):
            return self.proportions_
        return xp.asarray(self.proportions_, dtype=accumulation_dtype(xp, where), device=where)

    def _to_model_space(self, xp, X, frame):
        """Samples (or user centres) as the scores see them: in the normalised frame
        (skipped when ``frame`` is None: already there), and unit-norm for cosines."""
        if frame is not None:
            X = frame.to_frame(X)
        if not self.spherical:
            return X
        norms = xp.linalg.vector_norm(X, axis=1, keepdims=True)
        if bool(xp.any(norms == 0)):
            raise ValueError("spherical=True needs nonzero samples: X has an all-zero row.")
        return X / norms

    def _from_model_space(self, xp, centers):
        if self.spherical:
            return centers
        return self._frame.points(centers)

    def _score_scale(self, xp, X):
        """``v``: mean squared distance to the mean (1 for spherical cosine scores)."""
        if self.spherical:
            return 1.0
        # the frame centres on the midrange, not the mean: v is measured from the mean
        X_acc = xp.astype(X, accumulation_dtype(xp, device(X)))
        v, top = host_floats(
            xp,
            xp.mean(xp.sum((X_acc - xp.mean(X_acc, axis=0)) ** 2, axis=1)),
            xp.max(xp.abs(X)),
        )
        finfo = xp.finfo(X.dtype)
        # squared distances are formed in X's dtype: they must fit there
        if not math.isfinite(v) or 4 * top * top > float(finfo.max):
            raise ValueError(
                f"X is too large for {X.dtype}: squared distances overflow; rescale X."
            )
        if v < float(finfo.smallest_normal):
            return 1.0  # (numerically) identical samples: any balanced split is optimal
        return v

    def _initial_centers(self, xp, X, rng):
        numpy = is_numpy_namespace(xp)
        if isinstance(self.init, str) and self.init == "k-means++":
            if numpy:
                centers, _ = kmeans_plusplus(X, self.n_clusters, random_state=rng)
                return np.array(centers, dtype=X.dtype)
            return _bk.kmeans_plusplus(X, self.n_clusters, rng)
        if isinstance(self.init, str):
            index = rng.choice(X.shape[0], self.n_clusters, replace=False)
            if numpy:
                return np.array(X[index], dtype=X.dtype)
            return xp.take(X, xp.asarray(index, device=device(X)), axis=0)
        centers = check_float_matrix(self.init, "init")
        if tuple(centers.shape) != (self.n_clusters, X.shape[1]):
            raise ValueError(
                f"init has shape {tuple(centers.shape)}; expected "
                f"({self.n_clusters}, {X.shape[1]})."
            )
        centers = xp.astype(to_namespace(xp, centers, device(X)), X.dtype)  # a copy
        return self._to_model_space(xp, centers, self._frame)

    def _transport(self, X, centers, proportions, plan_mass=None, init=None):
        result = _bk.transport(
            X,
            centers,
            proportions,
            spherical=self.spherical,
            scale=self._scale,
            eps=self.eps,
            tol=self.sinkhorn_tol,
            max_iter=self.sinkhorn_max_iter,
            plan_mass=plan_mass,
            init=init,
        )
        if not result.converged:
            _warn_not_converged(result, self.sinkhorn_tol, "SinkhornKMeans' transport")
        return result

    def _balanced_labels(self, xp, X, centers, proportions, init=None):
        """Rounded labels of the final plan: computed on the host (the plan is copied
        there once), returned as int64 on the device of ``X``."""
        plan = self._transport(X, centers, proportions, init=init).plan
        labels = round_to_proportions(to_numpy(plan), self.proportions_)
        if is_numpy_namespace(xp):
            return labels
        return xp.asarray(labels, device=device(X))

    # -- inference -------------------------------------------------------------------

    def _check_new(self, X):
        """``X`` in the model space, with the fitted centres and proportions in its
        namespace and on its device."""
        check_is_fitted(self)
        if not is_other_array(X):
            X = validate_data(self, X, dtype=[np.float64, np.float32], order="C", reset=False)
        else:
            X = check_float_matrix(X, "X")
            X = stop_gradient(get_namespace(X), X)
            if X.shape[1] != self.n_features_in_:
                raise ValueError(
                    f"X has {X.shape[1]} features, but {type(self).__name__} is "
                    f"expecting {self.n_features_in_} features as input."
                )
        xp, where = get_namespace(X), device(X)
        centers = to_namespace(xp, self._centers, where)
        X = self._to_model_space(xp, xp.astype(X, centers.dtype, copy=False), self._frame)
        return xp, X, centers, self._proportions_on(xp, where)

    def predict(self, X, balanced=True):
        """Cluster labels of new samples.

        ``balanced=True`` assigns the batch ``X`` as a whole with the fitted proportions
        (so a sample's label depends on the rest of the batch, and each cluster receives
        ``n * proportions[k]`` samples to within one); ``balanced=False`` gives each
        sample its nearest centroid. For batches smaller than ``n_clusters`` balance
        carries no information (one sample's transport plan is ``proportions`` itself):
        use ``balanced=False`` there.

        The labels are int64, of the namespace and on the device of ``X`` (the balanced
        rounding runs on the host, see the class description).
        """
        if is_dask_array(X):  # lazy labels, chunked like the rows of X
            from clusterlab.solvers import dask_lloyd

            X = self._dask_new(X)
            if not balanced:
                return dask_lloyd.scores(
                    X, self._centers, spherical=self.spherical, scale=self._scale
                ).argmax(axis=1)
            return self._dask_labels(X, self._centers, None)
        xp, X, centers, proportions = self._check_new(X)
        if not balanced:
            scores = _bk.scores(X, centers, spherical=self.spherical, scale=self._scale)
            return xp.argmax(scores, axis=1)
        return self._balanced_labels(xp, X, centers, proportions)

    def transform(self, X):
        """Soft balanced codes of the batch ``X``: rows sum to 1, column loads follow
        ``proportions``. An array of the namespace and on the device of ``X``, in the
        fitted dtype (a lazy Dask array, chunked like its rows, for a Dask ``X``)."""
        if is_dask_array(X):
            from clusterlab.solvers import dask_lloyd
            from clusterlab.solvers import dask_sinkhorn as _dsk

            X = self._dask_new(X)
            S = dask_lloyd.scores(X, self._centers, spherical=self.spherical, scale=self._scale)
            result = _dsk.sinkhorn(
                S,
                self.eps,
                None,
                self.proportions_,
                tol=self.sinkhorn_tol,
                max_iter=self.sinkhorn_max_iter,
                plan_mass="ones",
            )
            if not result.converged:
                _warn_not_converged(result, self.sinkhorn_tol, "SinkhornKMeans' transport")
            return result.plan
        xp, X, centers, proportions = self._check_new(X)
        where = device(X)
        ones = xp.ones(X.shape[0], dtype=accumulation_dtype(xp, where), device=where)
        return self._transport(X, centers, proportions, plan_mass=ones).plan

    def fit_predict(self, X, y=None):
        """``fit(X).labels_``."""
        return self.fit(X).labels_

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags
