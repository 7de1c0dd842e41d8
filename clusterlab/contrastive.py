"""Graph-contrastive clustering losses: PamC's meta-node loss and the dense loss it replaces.

:func:`pamc_loss` is the loss of PamC (Kulatilleke et al., 2022): a kNN graph pulls each
embedding towards its neighbours, and the ``O(N²)`` push away from every other sample is
replaced by a push between cluster *meta-nodes* (the summed embeddings of each cluster),
so that the cost is linear in the number of samples. :func:`ncontrast_loss` is the dense
neighbourhood-contrastive loss it replaces (Graph-MLP's ``Ncontrast``), and
:func:`meta_nodes` gives the meta-nodes themselves. :func:`knn_graph` builds the
symmetric, unnormalised kNN graph both losses take.

The losses take NumPy arrays, PyTorch tensors (CPU or CUDA), CuPy arrays and any other
array-API array ``Z``, and return a 0-d array of ``Z``'s namespace, dtype and device; on
PyTorch it carries the autograd graph of ``Z``. The graph is a SciPy sparse matrix: its
powers are computed on the host, once per call, and its edge list is copied to ``Z``'s
device (O(nnz) integers).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from clusterlab._validation import (
    check_adjacency,
    check_count,
    check_float_matrix,
    check_positive,
)
from clusterlab.solvers import meta_nodes as _mn
from clusterlab.solvers._backend import (
    device,
    get_namespace,
    host_floats,
    is_array,
    is_numpy_namespace,
    to_namespace,
)
from clusterlab.solvers.graph import knn_affinity

__all__ = ["knn_graph", "meta_nodes", "ncontrast_loss", "pamc_loss"]


def knn_graph(X, n_neighbors=3):
    """The symmetric, unnormalised kNN graph PamC and Graph-MLP use.

    ``A_ij = 1`` when ``j`` is among the ``n_neighbors`` nearest neighbours of ``i`` (a
    point is not its own neighbour) *or* ``i`` is among those of ``j``: the union of the
    directed kNN graph and its transpose, which is how the released code's
    ``load_graph`` (from SDCN) symmetrises its kNN edge list. Neighbours are exact and
    Euclidean, from :func:`clusterlab.solvers.graph.knn_affinity` (scikit-learn's
    ``NearestNeighbors``); that function's own symmetrisation, ``(W + W^T) / 2``, gives
    one-way edges the weight 1/2, hence this wrapper.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        Features on the host (a device array is copied there).
    n_neighbors : int, default=3
        The released code's default ``k``.

    Returns
    -------
    scipy.sparse.csr_array of shape (n_samples, n_samples)
        Binary (float64 ones), symmetric, with an empty diagonal.

    Examples
    --------
    >>> import numpy as np
    >>> from clusterlab import knn_graph
    >>> knn_graph(np.array([[0.0], [1.0], [3.0], [7.0]]), n_neighbors=1).toarray()
    array([[0., 1., 0., 0.],
           [1., 0., 1., 0.],
           [0., 1., 0., 1.],
           [0., 0., 1., 0.]])
    """
    from clusterlab.solvers._backend import to_numpy

    X = check_float_matrix(to_numpy(X) if is_array(X) else X, "X", min_rows=2)
    n_neighbors = check_count(n_neighbors, "n_neighbors")
    directed = sp.csr_array(knn_affinity(X, n_neighbors, symmetrize=False).affinity)
    return directed.maximum(directed.T).tocsr()


def _check_embeddings(Z):
    return check_float_matrix(Z, "Z")


def _labels_from(assignments, n_samples, n_clusters, xp, where):
    """Integer labels on Z's device (int64) and the number of clusters K, from 1-D labels
    or the argmax of 2-D soft assignments. One host sync for the range check."""
    if not is_array(assignments):
        assignments = np.asarray(assignments)
        if assignments.dtype == object or not np.issubdtype(assignments.dtype, np.number):
            raise ValueError(f"assignments must hold numbers, got dtype {assignments.dtype}.")
    xa = get_namespace(assignments)
    if assignments.ndim == 2:
        if assignments.shape[0] != n_samples or assignments.shape[1] < 1:
            raise ValueError(
                f"soft assignments must have shape ({n_samples}, n_clusters), got "
                f"{tuple(assignments.shape)}."
            )
        if not xa.isdtype(assignments.dtype, "real floating"):
            raise ValueError(
                f"2-D assignments must be floating-point scores, got {assignments.dtype}."
            )
        if not bool(xa.all(xa.isfinite(assignments))):
            raise ValueError("assignments contains NaN or infinity.")
        K = int(assignments.shape[1])
        if n_clusters is not None and n_clusters != K:
            raise ValueError(
                f"n_clusters={n_clusters} does not match the {K} columns of assignments."
            )
        labels = xa.argmax(assignments, axis=1)
    elif assignments.ndim == 1:
        if assignments.shape[0] != n_samples:
            raise ValueError(
                f"labels must have length {n_samples} (one per row of Z), got "
                f"{assignments.shape[0]}."
            )
        if not xa.isdtype(assignments.dtype, "integral"):
            raise ValueError(
                f"1-D assignments must be integer labels, got dtype {assignments.dtype}."
            )
        labels = assignments
        low, high = host_floats(xa, xa.min(labels), xa.max(labels))
        if low < 0:
            raise ValueError(f"labels must be >= 0, got {int(low)}.")
        K = int(high) + 1 if n_clusters is None else n_clusters
        if high >= K:
            raise ValueError(f"labels must be < n_clusters={K}, got {int(high)}.")
    else:
        raise ValueError(
            "assignments must be 1-D integer labels or 2-D soft assignments, got an "
            f"array of shape {tuple(assignments.shape)}."
        )
    labels = to_namespace(xp, labels, where)
    labels = xp.astype(labels, xp.int64)
    if is_numpy_namespace(xp):
        labels = np.ascontiguousarray(labels)
    return labels, K


def meta_nodes(Z, assignments, n_clusters=None):
    """PamC's meta-nodes: the summed embeddings of each cluster.

    ``c_k = Σ_{i: label_i = k} z_i`` with hard labels: the integer labels given, or the
    argmax of each row of soft assignments (no gradient flows through the argmax).

    Parameters
    ----------
    Z : array of shape (n_samples, n_features)
        Embeddings: NumPy, PyTorch (CPU/CUDA), CuPy or another array-API array.
    assignments : array of shape (n_samples,) or (n_samples, n_clusters)
        Integer labels in ``[0, n_clusters)``, or soft assignments (scores or
        probabilities) whose row argmax is the label. Any array library; moved to
        ``Z``'s device.
    n_clusters : int or None, default=None
        The number of meta-nodes; by default ``max(labels) + 1``, or the number of
        columns of soft assignments.

    Returns
    -------
    sums : array of shape (n_clusters, n_features)
        In ``Z``'s namespace, dtype and device; on PyTorch differentiable in ``Z``. An
        empty cluster's row is zero.
    nonempty : array of bool, shape (n_clusters,)
        Which clusters hold at least one sample.

    Examples
    --------
    >>> import numpy as np
    >>> from clusterlab import meta_nodes
    >>> Z = np.array([[1.0, 0.0], [0.0, 1.0], [2.0, 2.0]])
    >>> sums, nonempty = meta_nodes(Z, np.array([0, 0, 2]))
    >>> sums
    array([[1., 1.],
           [0., 0.],
           [2., 2.]])
    >>> nonempty
    array([ True, False,  True])
    """
    Z = _check_embeddings(Z)
    if n_clusters is not None:
        n_clusters = check_count(n_clusters, "n_clusters")
    xp = get_namespace(Z)
    labels, K = _labels_from(assignments, Z.shape[0], n_clusters, xp, device(Z))
    return _mn.meta_node_sums(xp, Z, labels, K)


def _check_loss_parameters(tau, order, cumulative):
    tau = check_positive(tau, "tau")
    order = check_count(order, "order")
    if not isinstance(cumulative, (bool, np.bool_)):
        raise ValueError(f"cumulative must be True or False, got {cumulative!r}.")
    return tau, order, bool(cumulative)


def pamc_loss(
    Z, adjacency, assignments, *, tau=1.0, order=1, cumulative=True, detach_meta_nodes=False
):
    """PamC's linear-time contrastive loss over cluster meta-nodes.

    With ``Â = D⁻¹(A + I)`` (``D`` the row sums of ``A + I``), ``W = Σ_{t=1..order} Â^t``
    and ``cos`` the cosine similarity with the self cosine set to 0::

        pos_i = Σ_j W_ij exp(τ cos(z_i, z_j))        over the nonzeros of W
        c_k   = Σ_{i: label_i = k} z_i               hard meta-nodes
        neg_k = Σ_l exp(τ cos(c_k, c_l))             over the non-empty clusters
        L     = -mean_i log pos_i + mean_k log neg_k (k over the non-empty clusters)

    This is the loss of the released code (``NcontrastCCSP`` in gayanku/PAMC) without
    its ``+1e-10`` inside each log, which only guards against ``log 0``: here
    ``pos_i >= W_ii > 0`` and ``neg_k >= 1``. An empty cluster has no meta-node and is
    left out of both the sums and the mean (the released code gives NaN for an empty
    cluster below the largest label). A zero embedding has cosine 0 with everything
    (the released code gives NaN). The cost is ``O(nnz(W) · d + N d + K² d)``.

    Parameters
    ----------
    Z : array of shape (n_samples, n_features)
        Embeddings: NumPy, PyTorch (CPU/CUDA), CuPy or another array-API array.
    adjacency : scipy sparse matrix of shape (n_samples, n_samples)
        The symmetric, unnormalised kNN graph ``A`` (e.g. :func:`knn_graph`); weighted
        graphs are accepted (non-negative weights). The self loops of ``A + I`` are
        added here.
    assignments : array of shape (n_samples,) or (n_samples, n_clusters)
        Integer cluster labels, or soft assignments (the released code passes the
        Student-t ``q``) whose row argmax is the label. The labels are constants: no
        gradient flows through them.
    tau : float > 0, default=1.0
        Multiplies the cosines (the released code's ``tau``; not a divisor).
    order : int >= 1, default=1
        The number of graph powers.
    cumulative : bool, default=True
        ``W = Σ_{t<=order} Â^t``; False gives ``W = Â^order``, the released code's
        default (its ``--influence`` flag selects the cumulative sum). The two agree
        for ``order=1``.
    detach_meta_nodes : bool, default=False
        The released code lets the gradient reach ``Z`` through the meta-node sums
        (only the argmax is detached); True detaches the meta-nodes too.

    Returns
    -------
    loss : 0-d array
        Of ``Z``'s namespace, dtype and device; on PyTorch it carries the autograd graph
        of ``Z``, so ``loss.backward()`` trains the model.

    See Also
    --------
    ncontrast_loss : the dense ``O(N²)`` loss it replaces.
    meta_nodes : the meta-nodes.
    knn_graph : the graph.

    Examples
    --------
    >>> import numpy as np
    >>> from clusterlab import knn_graph, pamc_loss
    >>> rng = np.random.default_rng(0)
    >>> Z = np.concatenate([rng.normal(0, 0.1, (20, 2)) + [1, 0],
    ...                     rng.normal(0, 0.1, (20, 2)) + [0, 1]])
    >>> A = knn_graph(Z, n_neighbors=3)
    >>> labels = np.repeat([0, 1], 20)
    >>> bool(pamc_loss(Z, A, labels) < pamc_loss(Z, A, rng.integers(0, 2, 40)))
    True

    In a PyTorch training step (``z = model(x)``, ``q`` the soft assignments)::

        loss = beta * kl + alpha * pamc_loss(z, A, q.detach(), tau=1.0, order=2)
        loss.backward()
    """
    Z = _check_embeddings(Z)
    tau, order, cumulative = _check_loss_parameters(tau, order, cumulative)
    A = check_adjacency(adjacency, Z.shape[0])
    xp = get_namespace(Z)
    labels, K = _labels_from(assignments, Z.shape[0], None, xp, device(Z))
    graph = _mn.propagation_graph(A, order, cumulative=cumulative)
    return _mn.pamc_loss(xp, Z, graph, labels, K, tau, detach_meta_nodes=bool(detach_meta_nodes))


def ncontrast_loss(Z, adjacency, *, tau=1.0, order=1, cumulative=True):
    """The dense neighbourhood-contrastive loss (Graph-MLP's ``Ncontrast``), O(N²).

    With ``W`` and the cosines as in :func:`pamc_loss` (self cosine 0)::

        L = -mean_i log( Σ_j W_ij exp(τ cos_ij) / Σ_j exp(τ cos_ij) )

    where the denominator runs over **every** ``j``, the self term ``exp(τ·0) = 1``
    included. This is what Graph-MLP's released ``Ncontrast`` (and PamC's copy of it)
    computes; the Graph-MLP paper writes both sums over ``j ≠ i`` and divides the
    cosine by τ instead. The ``+1e-8`` the code adds inside the log is left out. It
    is the loss PamC's meta-nodes replace, kept as the reference and the peer: its
    cost is ``O(N² d)`` time, computed in row blocks of ``O(N)`` memory each (on
    PyTorch, autograd keeps every block: O(N²) memory for the backward pass).

    Parameters
    ----------
    Z, adjacency, tau, order, cumulative
        As in :func:`pamc_loss`.

    Returns
    -------
    loss : 0-d array
        Of ``Z``'s namespace, dtype and device; differentiable on PyTorch.

    Examples
    --------
    >>> import numpy as np
    >>> from clusterlab import knn_graph, ncontrast_loss
    >>> rng = np.random.default_rng(0)
    >>> Z = rng.normal(size=(30, 4))
    >>> loss = ncontrast_loss(Z, knn_graph(Z), tau=2.0)
    >>> loss.shape, bool(loss > 0)
    ((), True)
    """
    Z = _check_embeddings(Z)
    tau, order, cumulative = _check_loss_parameters(tau, order, cumulative)
    A = check_adjacency(adjacency, Z.shape[0])
    xp = get_namespace(Z)
    graph = _mn.propagation_graph(A, order, cumulative=cumulative)
    return _mn.ncontrast_loss(xp, Z, graph, tau)
