"""Communities of an attributed graph, their number found by group sparsity (DAG).

:class:`GroupSparseCommunity` reads communities out of node features propagated over
the graph, ``C = ReLU(Â X W)``, trains ``W`` with a BPR edge loss and an
:math:`\\ell_{2,1}` penalty on its columns (Liu et al., KDD 2024), and counts the
communities that remain in use, instead of searching a grid over their number. Score
its partitions with :func:`clusterlab.metrics.edge_f1_score` (the paper's EDGE) beside
NMI. The optimiser is :mod:`clusterlab.solvers.group_sparse`.
"""

from __future__ import annotations

import warnings
from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, ClusterMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state

from clusterlab._progress import progress_printer
from clusterlab._sklearn_compat import Interval, _fit_context, validate_data
from clusterlab._validation import check_adjacency, check_float_matrix
from clusterlab.solvers import group_sparse as _gs
from clusterlab.solvers._backend import is_other_array, to_numpy
from clusterlab.solvers.graph import knn_affinity

__all__ = ["GroupSparseCommunity", "check_adjacency"]

# Iterations without the group penalty before it is switched on (see
# clusterlab.solvers.group_sparse.fit_readout).
_WARMUP_ITER = 100


class GroupSparseCommunity(ClusterMixin, BaseEstimator):
    """Community detection on an attributed graph with the number of communities learned.

    The memberships of the nodes are read out of their features averaged over their
    neighbourhoods, ``C = ReLU(Â X W)`` with ``Â = D⁻¹(A + I)`` (``W`` of shape
    ``(n_features, k_max)``), and ``W`` minimises (Liu et al., 2024)::

        mean over edges (i, j) of  log(1 + exp(-(C_i . C_j - C_i . C_u)))
            + alpha ||W||_F^2 + beta sum_k ||W[:, k]||_2

    where ``u`` is a node not adjacent to ``i``, drawn once per directed edge. The
    group penalty switches whole columns of ``W`` off (exactly zero, by proximal gradient
    steps); a node's community is its largest membership, ``argmax_k C_ik``, and the
    number of communities is the number of distinct labels that remain, at most
    ``k_max``. Larger ``beta`` gives fewer communities.

    **Optimisation.** ``W`` starts Gaussian, scaled so that the memberships have a mean
    squared norm of 4; 100 proximal gradient iterations without the penalty first let
    the loss organise the columns into communities, then the penalised objective is
    minimised by proximal gradient with a backtracking step, which never increases it
    (``objective_history_``). ``W = 0`` is always a local minimum; with the default
    preprocessing it becomes the best one for ``beta`` above roughly 0.04-0.05, and
    every community is switched off (a warning says so). Useful values lie between
    about 0.005 and 0.04.

    **Preprocessing.** ``Â X`` is centred and scaled to a mean squared row norm of 1, so
    that ``beta`` does not depend on the units of ``X`` (translating or rescaling ``X``
    does not change the fit). Node features that carry no community information can be
    replaced by the identity (``X = np.eye(n)``, each node its own feature: ``Â X`` is
    then the normalised adjacency) or a spectral embedding of the graph.

    **Nodes with no membership.** A node whose row of ``C`` is all zero (every
    pre-activation ``(Â X W)_ik <= 0``) takes the label most common among its graph
    neighbours, weighted by the edge weights (ties to the smaller community), propagated
    until every such node next to a labelled one has a label; a node whose whole
    connected component has no membership takes the active community with the largest
    pre-activation. Every node is labelled; none is silently put in community 0.

    ``fit`` is a host algorithm: PyTorch, CuPy and other array-API inputs are copied to
    the host, computed in float64, and the fitted attributes are NumPy arrays.

    Parameters
    ----------
    k_max : int, default=16
        Number of columns of ``W``: the most communities that can be found.
    alpha : float >= 0, default=0.0
        Weight of a ridge term ``alpha ||W||_F^2``. Not the paper's alpha, which weights
        a feature-reconstruction loss of its graph autoencoder; with fixed features there
        is nothing to reconstruct, and that term is left out. The ridge is a
        clusterlab addition (off by default) that keeps ``W`` bounded when ``beta`` is
        tiny.
    beta : float >= 0, default=0.03
        Weight of the group penalty ``sum_k ||W[:, k]||_2`` (the loss is a mean over
        edges, so ``beta`` does not grow with the graph). 0 keeps every column.
    learning_rate : float > 0, default=1.0
        First step size of the proximal gradient method; the step then adapts
        (backtracking), so this mostly affects speed.
    max_iter : int, default=500
        Proximal gradient iterations.
    tol : float >= 0, default=1e-6
        Converged when an iteration decreases the objective by at most ``tol`` times
        its value.
    n_neighbors : int, default=10
        With ``adjacency=None``, the graph is the symmetrised ``n_neighbors``-nearest
        neighbour graph of ``X`` (binary weights), with at most ``(n_samples - 1) // 2``
        neighbours per node: on a complete graph every node averages the same
        neighbourhood and the readout cannot tell nodes apart.
    n_hops : int, default=1
        Times the features are averaged over neighbourhoods before the readout:
        ``C = ReLU(Â^n_hops X W)``. 1 is the paper's readout, which in DAG sits on top
        of a graph neural network whose output has already been averaged over the
        graph; fixed features have had no such averaging, and ``n_hops=2`` stands in for
        one encoder layer (a clusterlab choice, not in the paper). On sparse graphs it
        assigns the nodes markedly better (see the guide's benchmark).
    random_state : int, RandomState instance or None, default=None
        The initial ``W`` and the sampled non-neighbours.
    verbose : int, default=0
        Print the objective and the number of active columns every ``verbose``
        iterations.

    Attributes
    ----------
    labels_ : ndarray of shape (n_samples,), int64
        Community of every node, numbered ``0 .. n_communities_ - 1``.
    n_communities_ : int
        Number of distinct labels.
    label_columns_ : ndarray of shape (n_communities,)
        The column of ``W`` (and of ``membership_``) that each label stands for.
    active_communities_ : ndarray
        Columns of ``W`` that are not zero. A column can be active yet be nobody's
        largest membership, so ``n_communities_ <= len(active_communities_)`` except
        when no column is active (then every node is in community 0).
    membership_ : ndarray of shape (n_samples, k_max)
        ``C = ReLU(Â X W)`` on the preprocessed features.
    weights_ : ndarray of shape (n_features, k_max)
        ``W`` (in the units of the preprocessed features).
    objective_history_ : ndarray
        The objective at the start and after every iteration; it never increases.
    objective_ : float
    n_iter_ : int
    converged_ : bool
    n_features_in_ : int

    See Also
    --------
    clusterlab.metrics.edge_f1_score : the EDGE score of a partition of a graph.
    sklearn.cluster.SpectralClustering : with ``affinity="precomputed"``, for a given K.

    References
    ----------
    Liu et al., DAG, KDD 2024: the group-sparse readout and the EDGE score (Eqs. 14-15).

    Examples
    --------
    >>> import numpy as np
    >>> from clusterlab import GroupSparseCommunity
    >>> from clusterlab.datasets import make_attributed_sbm
    >>> X, A, y = make_attributed_sbm(200, 4, p_in=0.2, p_out=0.01, n_features=8,
    ...                               random_state=0)
    >>> model = GroupSparseCommunity(k_max=16, random_state=0).fit(X, adjacency=A)
    >>> model.n_communities_
    4
    >>> from sklearn.metrics import normalized_mutual_info_score
    >>> bool(normalized_mutual_info_score(y, model.labels_) > 0.9)
    True
    """

    _parameter_constraints: dict = {  # noqa: RUF012 - scikit-learn's convention
        "k_max": [Interval(Integral, 1, None, closed="left")],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "beta": [Interval(Real, 0, None, closed="left")],
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "n_neighbors": [Interval(Integral, 1, None, closed="left")],
        "n_hops": [Interval(Integral, 1, None, closed="left")],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    def __init__(
        self,
        k_max=16,
        *,
        alpha=0.0,
        beta=0.03,
        learning_rate=1.0,
        max_iter=500,
        tol=1e-6,
        n_neighbors=10,
        n_hops=1,
        random_state=None,
        verbose=0,
    ):
        self.k_max = k_max
        self.alpha = alpha
        self.beta = beta
        self.learning_rate = learning_rate
        self.max_iter = max_iter
        self.tol = tol
        self.n_neighbors = n_neighbors
        self.n_hops = n_hops
        self.random_state = random_state
        self.verbose = verbose

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None, adjacency=None):
        """Find the communities of the graph ``adjacency`` with node features ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Node features (a device array is copied to the host).
        y : ignored
        adjacency : sparse matrix or array-like of shape (n_samples, n_samples), or None
            Symmetric nonnegative edge weights (the diagonal is ignored: ``Â`` adds unit
            self-loops). None builds the symmetrised ``n_neighbors``-NN graph of ``X``.

        Returns
        -------
        self
        """
        X = self._validate_X(X)
        n = X.shape[0]
        if n < 2:
            raise ValueError(f"n_samples={n}: a graph needs at least 2 samples (1 sample given).")
        if adjacency is None:
            A = knn_affinity(X, min(self.n_neighbors, max(1, (n - 1) // 2))).affinity
        else:
            A = check_adjacency(adjacency, n)
        A.setdiag(0.0)
        A.eliminate_zeros()
        if A.nnz == 0:
            raise ValueError("adjacency has no edges between distinct nodes.")
        H = self._propagated_features(X, A, self.n_hops)
        rng = check_random_state(self.random_state)
        edges = _gs.edge_samples(A, rng)
        result = _gs.fit_readout(
            H,
            edges,
            _gs.initial_weights(H, self.k_max, rng),
            alpha=float(self.alpha),
            beta=float(self.beta),
            learning_rate=float(self.learning_rate),
            max_iter=self.max_iter,
            tol=float(self.tol),
            warmup_iter=_WARMUP_ITER,
            callback=progress_printer(
                self.verbose,
                "GroupSparseCommunity",
                [("objective", ".6g"), ("active communities", "d")],
            ),
        )
        history = result.objective_history
        if not result.converged:
            before, after = history[-2], history[-1]
            warnings.warn(
                f"GroupSparseCommunity did not converge in max_iter={self.max_iter} "
                f"iterations: the last one decreased the objective by "
                f"{(before - after) / max(abs(before), 1e-12):.2e} of its value "
                f"{after:.6g} (tol={self.tol:g}), with {result.active.shape[0]} active "
                "communities; raise max_iter.",
                ConvergenceWarning,
                stacklevel=2,
            )
        if result.active.shape[0] == 0:
            warnings.warn(
                f"beta={self.beta:g} switched every community off (W is zero): all nodes "
                "are in community 0. Lower beta.",
                UserWarning,
                stacklevel=2,
            )
        Z, C = _gs.readout(H, result.weights)
        columns = _gs.community_labels(C, Z, A, result.active)
        self.label_columns_, labels = np.unique(columns, return_inverse=True)
        self.labels_ = labels.astype(np.int64).reshape(-1)
        self.n_communities_ = int(self.label_columns_.shape[0])
        self.active_communities_ = result.active
        self.membership_ = C
        self.weights_ = result.weights
        self.objective_history_ = history
        self.objective_ = float(history[-1])
        self.n_iter_ = result.n_iter
        self.converged_ = bool(result.converged)
        return self

    def fit_predict(self, X, y=None, adjacency=None):
        """``fit(X, adjacency=adjacency).labels_``."""
        return self.fit(X, adjacency=adjacency).labels_

    def _validate_X(self, X):
        if is_other_array(X):
            X = to_numpy(check_float_matrix(X, "X"))
            self.n_features_in_ = X.shape[1]
            if hasattr(self, "feature_names_in_"):
                del self.feature_names_in_
        else:
            X = validate_data(self, X, dtype=[np.float64, np.float32])
        return np.ascontiguousarray(X, dtype=np.float64)

    @staticmethod
    def _propagated_features(X, A, n_hops):
        """``Â^n_hops X``, centred, scaled to a mean squared row norm of 1."""
        P = _gs.propagation_matrix(A)
        H = X
        for _ in range(n_hops):
            H = P @ H
        H -= H.mean(axis=0)
        scale = np.sqrt(np.mean(np.einsum("nd,nd->n", H, H)))
        if not scale > 1e-12 * max(float(np.abs(X).max()), 1e-300):
            raise ValueError(
                "The propagated features A_hat @ X are the same for every node (X is "
                "constant, or every node averages the same neighbourhood, as on a "
                "complete graph): the readout has nothing to separate. Pass informative "
                "features, or X = np.eye(n_samples) to use the graph alone."
            )
        return np.ascontiguousarray(H / scale)
