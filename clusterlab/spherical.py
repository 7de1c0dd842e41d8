"""Spherical k-means for embeddings, built for a large number of clusters.

:class:`SphericalKMeans` validates its input and calls
:mod:`clusterlab.solvers.spherical_kmeans`. Its ``fit`` runs on the host (NumPy, BLAS and
Numba); ``predict``, ``transform`` and ``score`` also take PyTorch tensors (CPU or
CUDA), CuPy arrays and other array-API arrays and compute on their device.
"""

from __future__ import annotations

import math
import warnings
from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, ClusterMixin, TransformerMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from clusterlab._progress import progress_printer
from clusterlab._sklearn_compat import Interval, StrOptions, _fit_context, validate_data
from clusterlab._validation import (
    check_dask_features,
    check_float_matrix,
    check_n_clusters,
    count_runs,
)
from clusterlab.solvers import spherical_kmeans as _skm
from clusterlab.solvers._backend import (
    accumulation_dtype,
    device,
    get_namespace,
    host_floats,
    is_other_array,
    stop_gradient,
    to_namespace,
    to_numpy,
)
from clusterlab.solvers._dask import is_dask_array

__all__ = ["SphericalKMeans"]


def unit_rows(X, name="X"):
    """``X`` with rows scaled to unit norm (NumPy or any array-API array). ``X`` itself
    when every norm is already 1 to within rounding (``8 sqrt(d) eps``), else a new array.
    An all-zero row is a ``ValueError``."""
    xp = get_namespace(X)
    if isinstance(X, np.ndarray):  # no n x d temporary (vector_norm makes one)
        norms = np.sqrt(np.einsum("ij,ij->i", X, X))[:, None]
    else:
        norms = xp.linalg.vector_norm(X, axis=1, keepdims=True)
    smallest, worst = host_floats(xp, xp.min(norms), xp.max(xp.abs(norms - 1.0)))
    if smallest == 0:
        rows = to_numpy(xp.nonzero(norms[:, 0] == 0)[0])[:5].tolist()
        raise ValueError(
            f"{name} has all-zero rows (first: {rows}); a zero vector has no direction, "
            "so spherical k-means cannot place it: drop those rows."
        )
    # normalising again cannot bring norms closer to 1 than the rounding of a d-term sum
    if worst <= 8 * math.sqrt(X.shape[1]) * float(xp.finfo(X.dtype).eps):
        return X
    return X / norms


class SphericalKMeans(ClusterMixin, TransformerMixin, BaseEstimator):
    """Spherical k-means (cosine k-means) for a large number of clusters.

    Samples are L2-normalised; each belongs to the centre of largest cosine, and each
    centre is the normalised sum of its samples (Lloyd iterations on the unit sphere, as
    in faiss' ``Kmeans(..., spherical=True)``). Built for large K (MLCD clusters its
    embeddings into up to a million centres): the assignment is a chunked matrix
    product followed by a row argmax, so the n x K similarity matrix is never held;
    memory beyond the data and the centres is O(``chunk_size`` x K). Empty clusters are
    re-seeded with the samples farthest from their centres (lowest cosine).

    ``fit`` runs on the host: a PyTorch tensor, CuPy array or other array-API array is
    copied to the host as NumPy, and the fitted attributes are NumPy arrays. ``predict``,
    ``transform`` and ``score`` accept all of those kinds and compute on the input's
    device (the centres are copied there; results are arrays of the input's kind).
    float32 input stays float32 throughout.

    A row-chunked Dask array is clustered where its chunks live: each Lloyd step is one
    pass of per-chunk assignments and K x d partial sums
    (:mod:`clusterlab.solvers.dask_lloyd`), the fitted centres are NumPy and ``labels_``
    a lazy Dask array; ``predict`` and ``transform`` of a Dask array return lazy Dask
    arrays (see :doc:`/user_guide/scaling_out`). ``init="k-means++"`` then seeds from a
    uniform sample of ``max(10 000, 20 n_clusters)`` rows.

    Parameters
    ----------
    n_clusters : int, default=8
    init : {"k-means++", "random"} or array of shape (n_clusters, n_features), \
            default="k-means++"
        "k-means++" is greedy D² seeding by cosine distance ``1 - cos`` (k-means++ on
        the normalised data; its cost grows as n x K x d x log K over K sequential
        steps: for K in the thousands prefer "random" or your own centres); "random" picks
        ``n_clusters`` distinct samples; an array gives the initial centres (normalised
        here; an all-zero row is an error).
    n_init : int, default=1
        Runs from different initial centres; the one of lowest inertia wins.
    max_iter : int, default=100
        Centre updates per run.
    tol : float, default=1e-4
        Converged when the mean squared centre shift ``mean_k ||c_k^new - c_k^old||^2``
        is at most ``tol`` (unit vectors: no scaling is needed), or when no label changes.
    chunk_size : int or None, default=None
        Rows per matrix product of the assignment; each worker thread (Numba's thread
        count) holds one ``chunk_size`` x K block of similarities. None: at most 1024
        rows, fewer where the blocks of all threads would exceed 64 MiB together.
    random_state : int, RandomState instance or None, default=None
    verbose : int, default=0
        Print the inertia and centre shift every ``verbose`` centre updates (0: silent).

    Attributes
    ----------
    cluster_centers_ : ndarray of shape (n_clusters, n_features)
        Unit-norm centres, in the dtype of the fitted ``X``.
    labels_ : ndarray of shape (n_samples,), int64
        Each sample's centre of largest cosine (for the final centres).
    inertia_ : float
        ``sum_i (1 - cos(x_i, c_{labels_i}))`` (lower is better; half the Euclidean
        k-means inertia of the normalised data). The mean cosine to the assigned centre
        is ``1 - inertia_ / n_samples``.
    objective_history_ : ndarray
        The inertia at every assignment of the winning run; it does not increase.
    n_iter_ : int
        Centre updates of the winning run.
    converged_ : bool
    n_reseeded_ : int
        Empty clusters re-seeded during the winning run.
    n_features_in_ : int

    See Also
    --------
    clusterlab.multilabel_assign : each sample's top-k centres, chunked the same way.
    sklearn.cluster.KMeans : Euclidean k-means.

    References
    ----------
    Dhillon and Modha, "Concept Decompositions for Large Sparse Text Data Using
    Clustering", Machine Learning 2001. An et al., "Multi-label Cluster Discrimination
    for Visual Representation Learning" (MLCD), ECCV 2024.

    Examples
    --------
    >>> import numpy as np
    >>> from clusterlab import SphericalKMeans
    >>> X = np.array([[1.0, 0.1], [2.0, 0.0], [0.0, 1.0], [0.1, 3.0]])
    >>> model = SphericalKMeans(n_clusters=2, random_state=0).fit(X)
    >>> model.labels_[0] == model.labels_[1], model.labels_[0] != model.labels_[2]
    (np.True_, np.True_)
    >>> np.allclose(np.linalg.norm(model.cluster_centers_, axis=1), 1.0)
    True
    >>> model.transform(X).shape  # cosines to every centre
    (4, 2)
    """

    _parameter_constraints: dict = {  # noqa: RUF012 - scikit-learn's convention
        "n_clusters": [Interval(Integral, 1, None, closed="left")],
        "init": [StrOptions({"k-means++", "random"}), "array-like"],
        "n_init": [Interval(Integral, 1, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "chunk_size": [Interval(Integral, 1, None, closed="left"), None],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    def __init__(
        self,
        n_clusters=8,
        *,
        init="k-means++",
        n_init=1,
        max_iter=100,
        tol=1e-4,
        chunk_size=None,
        random_state=None,
        verbose=0,
    ):
        self.n_clusters = n_clusters
        self.init = init
        self.n_init = n_init
        self.max_iter = max_iter
        self.tol = tol
        self.chunk_size = chunk_size
        self.random_state = random_state
        self.verbose = verbose

    # -- fitting ---------------------------------------------------------------------

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Cluster the rows of ``X`` by cosine (``y`` is ignored).

        ``X`` (NumPy, array-like, or any array-API array, copied to the host) must have
        no all-zero row. It is not modified: the rows are normalised in a copy (none is
        made when they already have unit norm).
        """
        if is_dask_array(X):  # row-chunked: Lloyd steps as per-chunk partial sums
            from clusterlab.solvers import dask_lloyd

            X = self._dask_unit_rows(X, reset=True)
            check_n_clusters(self.n_clusters, X.shape[0])
            lloyd, chunk = dask_lloyd.spherical_lloyd, self.chunk_size
        else:
            if is_other_array(X):
                X = to_numpy(stop_gradient(get_namespace(X), check_float_matrix(X, "X")))
            X = validate_data(self, X, dtype=[np.float64, np.float32], order="C", copy=False)
            check_n_clusters(self.n_clusters, X.shape[0])
            X = np.ascontiguousarray(unit_rows(X))
            lloyd, chunk = _skm.lloyd, self._chunk_size(X.dtype.itemsize)
        rng = check_random_state(self.random_state)
        n_init = count_runs(self.init, self.n_init)
        callback = progress_printer(
            self.verbose, "SphericalKMeans", [("inertia", ".6g"), ("centre shift", ".3e")]
        )
        best = None
        for _ in range(n_init):
            run = lloyd(
                X,
                self._initial_centers(X, rng),
                max_iter=self.max_iter,
                tol=self.tol,
                chunk_size=chunk,
                callback=callback,
            )
            if best is None or run.inertia < best.inertia:
                best = run
        if not best.converged:
            warnings.warn(
                f"SphericalKMeans stopped after max_iter={self.max_iter} centre updates "
                f"without reaching tol={self.tol:g} (inertia "
                f"{best.objective_history[-2]:.6g} -> {best.inertia:.6g}); raise max_iter.",
                ConvergenceWarning,
                stacklevel=3,
            )
        self.cluster_centers_ = best.centers
        self.labels_ = best.labels
        self.inertia_ = best.inertia
        self.objective_history_ = best.objective_history
        self.n_iter_ = best.n_iter
        self.converged_ = best.converged
        self.n_reseeded_ = best.n_reseeded
        return self

    def _chunk_size(self, itemsize):
        if self.chunk_size is not None:
            return int(self.chunk_size)
        return _skm.default_chunk_size(self.n_clusters, itemsize)

    def _dask_unit_rows(self, X, *, reset):
        """A Dask ``X`` checked (shape and dtype lazily, values in one pass) and with
        unit rows (lazily normalised where needed)."""
        from clusterlab.solvers import dask_lloyd

        X = check_dask_features(self, X, reset=reset)
        smallest, worst, finite = dask_lloyd.norm_range(X)
        if not finite:
            raise ValueError("X contains NaN or infinity.")
        if smallest == 0:
            raise ValueError(
                "X has all-zero rows; a zero vector has no direction, so spherical "
                "k-means cannot place it: drop those rows."
            )
        if worst <= 8 * math.sqrt(X.shape[1]) * float(np.finfo(X.dtype).eps):
            return X
        return dask_lloyd.unit_rows(X)

    def _initial_centers(self, X, rng):
        if is_dask_array(X) and isinstance(self.init, str):
            # seeds from rows brought to the client: k-means++ on a uniform sample of
            # max(10 000, 20 K) rows (drawn with replacement, duplicates dropped)
            from clusterlab.solvers.dask_lloyd import sample_rows

            n = X.shape[0]
            if self.init == "random":
                return sample_rows(X, rng.choice(n, self.n_clusters, replace=False))
            size = max(10_000, 20 * self.n_clusters)
            index = np.arange(n) if n <= size else np.unique(rng.randint(0, n, size))
            sample = sample_rows(X, index)
            return _skm.kmeans_plusplus(sample, self.n_clusters, rng)
        if isinstance(self.init, str) and self.init == "k-means++":
            return _skm.kmeans_plusplus(X, self.n_clusters, rng)
        if isinstance(self.init, str):
            return X[rng.choice(X.shape[0], self.n_clusters, replace=False)]
        init = self.init
        if is_other_array(init):
            init = to_numpy(init)
        centers = check_float_matrix(init, "init")
        if centers.shape != (self.n_clusters, X.shape[1]):
            raise ValueError(
                f"init has shape {centers.shape}; expected ({self.n_clusters}, {X.shape[1]})."
            )
        return np.ascontiguousarray(unit_rows(centers, "init"), dtype=X.dtype)

    # -- inference -------------------------------------------------------------------

    def _check_new(self, X):
        """``X`` validated, and the centres in its namespace, device and dtype."""
        check_is_fitted(self)
        if not is_other_array(X):
            X = validate_data(self, X, dtype=[np.float64, np.float32], order="C", reset=False)
        else:
            X = stop_gradient(get_namespace(X), check_float_matrix(X, "X"))
            if X.shape[1] != self.n_features_in_:
                raise ValueError(
                    f"X has {X.shape[1]} features, but {type(self).__name__} is "
                    f"expecting {self.n_features_in_} features as input."
                )
        xp = get_namespace(X)
        centers = xp.astype(to_namespace(xp, self.cluster_centers_, device(X)), X.dtype)
        return xp, unit_rows(X), centers

    def _check_new_dask(self, X):
        check_is_fitted(self)
        X = self._dask_unit_rows(X, reset=False)
        return X, np.ascontiguousarray(self.cluster_centers_, dtype=X.dtype)

    def predict(self, X):
        """Index of each sample's centre of largest cosine (int64, chunked like ``fit``;
        an array of the kind and on the device of ``X``; a lazy Dask array, chunked
        like its rows, for a Dask ``X``)."""
        if is_dask_array(X):
            from clusterlab.solvers import dask_lloyd

            X, centers = self._check_new_dask(X)
            return dask_lloyd.assign_rows(X, centers, self.chunk_size)[0]
        xp, X, centers = self._check_new(X)
        return self._assign(xp, X, centers)[0]

    def transform(self, X):
        """Cosines of the samples to every centre.

        Warning: this forms the full n x K matrix (``n_clusters`` columns); for large K
        use :meth:`predict` or :func:`clusterlab.multilabel_assign`, which are chunked.
        A Dask ``X`` gives a lazy Dask array chunked like its rows.
        """
        if is_dask_array(X):
            from clusterlab.solvers import dask_lloyd

            X, centers = self._check_new_dask(X)
            return dask_lloyd.scores(X, centers, spherical=True, scale=1.0)
        _, X, centers = self._check_new(X)
        return X @ centers.T

    def score(self, X, y=None):
        """Opposite of the inertia of ``X``: ``-sum_i (1 - cos(x_i, nearest centre))``
        (higher is better, as scikit-learn's ``KMeans.score``). A Python float."""
        if is_dask_array(X):
            from clusterlab.solvers import dask_lloyd

            X, centers = self._check_new_dask(X)
            best = dask_lloyd.assign_rows(X, centers, self.chunk_size)[1]
            return -(X.shape[0] - float(best.sum(dtype=np.float64).compute()))
        xp, X, centers = self._check_new(X)
        best = self._assign(xp, X, centers)[1]
        total = host_floats(xp, xp.sum(best, dtype=accumulation_dtype(xp, device(best))))[0]
        return -(X.shape[0] - total)

    def _assign(self, xp, X, centers):
        chunk = self._chunk_size(4 if X.dtype == xp.float32 else 8)
        if isinstance(X, np.ndarray):
            return _skm.assign(X, centers, chunk)
        return _skm.assign_namespace(xp, X, centers, chunk)

    def fit_predict(self, X, y=None):
        """``fit(X).labels_``."""
        return self.fit(X).labels_

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags
