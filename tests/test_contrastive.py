"""PamC's meta-node loss and the dense neighbourhood-contrastive loss, against dense
transcriptions of the released code (gayanku/PAMC, Graph-MLP) written with full matrices."""

import numpy as np
import pytest
import scipy.sparse as sp
from clusterlab.solvers.meta_nodes import propagation_graph

from clusterlab import knn_graph, meta_nodes, ncontrast_loss, pamc_loss

# --- obviously-correct dense references -------------------------------------------------


def dense_propagation(A, order, cumulative=True):
    """``Σ_{t<=order} Â^t`` (or ``Â^order``) with ``Â = D⁻¹(A + I)``, as dense matrices."""
    A = A.toarray() if sp.issparse(A) else np.asarray(A, dtype=float)
    A_loops = A + np.eye(A.shape[0])
    A_hat = A_loops / A_loops.sum(axis=1, keepdims=True)
    powers = [np.linalg.matrix_power(A_hat, t) for t in range(1, order + 1)]
    return sum(powers) if cumulative else powers[-1]


def cosine_without_self(X):
    """The released ``get_feature_dis``: all cosines, the diagonal set to 0."""
    norms = np.sqrt((X**2).sum(axis=1)).reshape(-1, 1)
    cos = (X @ X.T) * (norms @ norms.T) ** -1.0
    return (1 - np.eye(X.shape[0])) * cos


def released_pamc_dense(Z, A, assignments, tau, order, cumulative=True):
    """PamC's loss as the released code computes it (``NcontrastCC``), densely, without
    its +1e-10 inside the logs. The meta-nodes come from a one-hot of the argmax sized by
    the largest label (``F.one_hot``), as in the released code."""
    labels = assignments.argmax(axis=1) if assignments.ndim == 2 else assignments
    W = dense_propagation(A, order, cumulative)
    x_pos = np.sum(np.exp(tau * cosine_without_self(Z)) * W, axis=1)
    one_hot = np.eye(labels.max() + 1)[labels]
    cc = np.sum(Z[:, None, :] * one_hot[:, :, None], axis=0)
    x_neg = np.sum(np.exp(tau * cosine_without_self(cc)), axis=1)
    return -np.log(x_pos).mean() + np.log(x_neg).mean()


def ncontrast_double_loop(Z, A, tau, order, cumulative=True):
    """Graph-MLP's ``Ncontrast`` one pair at a time (self cosine 0, in both sums)."""
    W = dense_propagation(A, order, cumulative)
    n = Z.shape[0]
    total = 0.0
    for i in range(n):
        numerator = denominator = 0.0
        for j in range(n):
            cos = 0.0 if i == j else Z[i] @ Z[j] / np.sqrt((Z[i] @ Z[i]) * (Z[j] @ Z[j]))
            numerator += W[i, j] * np.exp(tau * cos)
            denominator += np.exp(tau * cos)
        total += -np.log(numerator / denominator)
    return total / n


def blobs(n, dim=5, n_centres=3, seed=0):
    rng = np.random.default_rng(seed)
    centres = 2.0 * rng.normal(size=(n_centres, dim))
    truth = rng.integers(0, n_centres, n)
    return centres[truth] + rng.normal(size=(n, dim)), truth


def soft_assignments(n, n_clusters, seed):
    return np.random.default_rng(seed).dirichlet(np.ones(n_clusters), size=n)


# --- values ----------------------------------------------------------------------------


@pytest.mark.parametrize("order", [1, 2, 3])
@pytest.mark.parametrize("tau", [0.5, 1.0, 3.0])
@pytest.mark.parametrize("kind", ["labels", "soft"])
def test_pamc_loss_equals_the_released_code_densely(order, tau, kind):
    Z, truth = blobs(60, seed=order)
    A = knn_graph(Z, 3)
    assignments = truth if kind == "labels" else soft_assignments(60, 4, seed=order)
    expected = released_pamc_dense(Z, A, assignments, tau, order)
    loss = pamc_loss(Z, A, assignments, tau=tau, order=order)
    assert isinstance(loss, np.ndarray)
    assert loss.shape == ()
    assert abs(float(loss) - expected) <= 1e-10


@pytest.mark.parametrize("order", [2, 3])
def test_non_cumulative_power_and_weighted_graph(order):
    Z, truth = blobs(50, seed=7)
    rng = np.random.default_rng(0)
    A = knn_graph(Z, 4)
    weighted = A.copy()
    weighted.data = rng.uniform(0.1, 2.0, weighted.nnz)
    weighted = (weighted + weighted.T) / 2  # symmetric, weights in (0.1, 2)
    for graph in (A, weighted):
        expected = released_pamc_dense(Z, graph, truth, 1.5, order, cumulative=False)
        loss = pamc_loss(Z, graph, truth, tau=1.5, order=order, cumulative=False)
        assert abs(float(loss) - expected) <= 1e-10
    # the two sums differ from order 2 on: the flag is not ignored
    assert (
        abs(
            float(pamc_loss(Z, A, truth, order=order))
            - float(pamc_loss(Z, A, truth, order=order, cumulative=False))
        )
        > 1e-3
    )


def test_an_empty_cluster_is_dropped_not_nan():
    Z, truth = blobs(60, seed=3)
    A = knn_graph(Z, 3)
    labels = np.where(truth == 1, 3, truth)  # clusters 0, 2, 3: cluster 1 is empty
    with np.errstate(invalid="ignore", divide="ignore"):
        assert np.isnan(released_pamc_dense(Z, A, labels, 1.0, 2))  # the released code: NaN
    compact = np.unique(labels, return_inverse=True)[1]  # 0, 1, 2: no cluster empty
    expected = released_pamc_dense(Z, A, compact, 1.0, 2)
    loss = pamc_loss(Z, A, labels, tau=1.0, order=2)
    assert np.isfinite(loss)
    assert abs(float(loss) - expected) <= 1e-10
    # soft assignments whose second and last columns never win: both dropped
    Q = soft_assignments(60, 5, seed=1) * 0.1
    Q[np.arange(60), np.array([0, 2, 3])[truth]] = 1.0
    assert abs(float(pamc_loss(Z, A, Q, tau=1.0, order=2)) - expected) <= 1e-10


def test_zero_embedding_gives_no_nan():
    Z, truth = blobs(30, seed=4)
    A = knn_graph(Z, 3)
    Z[5] = 0.0
    assert np.isfinite(pamc_loss(Z, A, truth))
    assert np.isfinite(ncontrast_loss(Z, A))


def test_loss_uses_only_the_graph_and_the_meta_nodes():
    """The positive term does not depend on the labels, the negative term only on the
    partition: relabelling the clusters leaves the loss unchanged."""
    Z, truth = blobs(40, seed=5)
    A = knn_graph(Z, 3)
    permuted = np.array([2, 0, 1])[truth]
    assert abs(float(pamc_loss(Z, A, truth)) - float(pamc_loss(Z, A, permuted))) <= 1e-12


@pytest.mark.parametrize(
    ("order", "tau", "cumulative"),
    [(1, 1.0, True), (2, 0.5, True), (2, 2.0, False), (3, 1.0, True)],
)
def test_ncontrast_loss_equals_its_double_loop(order, tau, cumulative):
    Z, _ = blobs(35, seed=order)
    A = knn_graph(Z, 3)
    expected = ncontrast_double_loop(Z, A, tau, order, cumulative)
    loss = ncontrast_loss(Z, A, tau=tau, order=order, cumulative=cumulative)
    assert loss.shape == ()
    assert abs(float(loss) - expected) <= 1e-10


def test_meta_nodes_are_cluster_sums():
    Z, truth = blobs(40, seed=6)
    labels = np.where(truth == 1, 4, truth)
    sums, nonempty = meta_nodes(Z, labels)
    expected = np.stack(
        [
            Z[labels == k].sum(axis=0) if np.any(labels == k) else np.zeros(Z.shape[1])
            for k in range(5)
        ]
    )
    np.testing.assert_allclose(sums, expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(nonempty, [True, False, True, False, True])
    sums7, nonempty7 = meta_nodes(Z, labels, n_clusters=7)
    assert sums7.shape == (7, Z.shape[1])
    assert not nonempty7[5:].any()
    Q = soft_assignments(40, 3, seed=2)
    sums_q, _ = meta_nodes(Z, Q)
    np.testing.assert_allclose(sums_q, meta_nodes(Z, Q.argmax(axis=1), n_clusters=3)[0])


def test_knn_graph_is_the_union_of_the_directed_knn_graph():
    Z, _ = blobs(40, seed=8)
    A = knn_graph(Z, 3)
    distances = ((Z[:, None, :] - Z[None, :, :]) ** 2).sum(axis=2)
    np.fill_diagonal(distances, np.inf)
    directed = np.zeros((40, 40))
    for i in range(40):
        directed[i, np.argsort(distances[i])[:3]] = 1.0
    np.testing.assert_array_equal(A.toarray(), np.maximum(directed, directed.T))


def test_pairs_evaluated_grow_linearly_with_the_points():
    """Counts, not times: the loss evaluates one cosine per off-diagonal nonzero of W
    (plus K² between meta-nodes). For a kNN graph their number per point is bounded:
    4x the points gives about 4x the pairs."""
    for dim, orders, bound in ((2, (1, 2, 3), 4.2), (16, (1, 2), 4.5)):
        counts = []
        for n in (1500, 6000):
            X, _ = blobs(n, dim=dim, n_centres=10, seed=1)
            A = knn_graph(X, 3)
            counts.append([propagation_graph(A, order).n_edges for order in orders])
        ratios = np.array(counts[1]) / np.array(counts[0])
        assert np.all(ratios <= bound), (dim, ratios)
        assert np.all(ratios >= 3.5), (dim, ratios)  # and the counts did grow


# --- backends and gradients ------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_every_backend_matches_numpy(backend, dtype):
    Z, truth = blobs(70, seed=9)
    Z = Z.astype(dtype)
    A = knn_graph(Z, 3)
    Q = soft_assignments(70, 4, seed=3).astype(dtype)
    tol = {"rtol": 1e-5, "atol": 1e-6} if dtype == np.float32 else {"rtol": 1e-11, "atol": 0}
    Zb = backend.asarray(Z)
    for host, assignments in (
        (truth, truth),
        (truth, backend.asarray(truth)),
        (Q, backend.asarray(Q)),
    ):
        loss = pamc_loss(Zb, A, assignments, tau=1.3, order=2)
        assert backend.is_own(loss)
        assert loss.dtype == Zb.dtype
        assert tuple(loss.shape) == ()
        expected = pamc_loss(Z.astype(np.float64), A, host, tau=1.3, order=2)
        np.testing.assert_allclose(float(backend.to_numpy(loss)), float(expected), **tol)
    dense = ncontrast_loss(Zb, A, tau=0.7, order=2)
    assert backend.is_own(dense)
    assert dense.dtype == Zb.dtype
    np.testing.assert_allclose(
        float(backend.to_numpy(dense)),
        float(ncontrast_loss(Z.astype(np.float64), A, tau=0.7, order=2)),
        **tol,
    )
    sums, nonempty = meta_nodes(Zb, backend.asarray(truth), n_clusters=4)
    assert backend.is_own(sums)
    assert backend.is_own(nonempty)
    np.testing.assert_allclose(backend.to_numpy(sums), meta_nodes(Z, truth, n_clusters=4)[0], **tol)
    np.testing.assert_array_equal(backend.to_numpy(nonempty), [True, True, True, False])


def torch_released_pamc(torch, Z, A, labels, tau, order, detach_meta_nodes):
    """The released dense loss in PyTorch, for gradients (meta-nodes optionally detached)."""
    W = torch.as_tensor(dense_propagation(A, order))

    def cos(X):
        norms = X.norm(dim=1)
        off_diagonal = 1 - torch.eye(X.shape[0], dtype=X.dtype)
        return off_diagonal * (X @ X.T) / (norms[:, None] * norms[None, :])

    x_pos = torch.sum(torch.exp(tau * cos(Z)) * W, 1)
    one_hot = torch.nn.functional.one_hot(torch.as_tensor(labels)).to(Z.dtype)
    cc = torch.sum(Z.unsqueeze(1) * one_hot.unsqueeze(2), dim=0)
    if detach_meta_nodes:
        cc = cc.detach()
    x_neg = torch.sum(torch.exp(tau * cos(cc)), 1)
    return -torch.log(x_pos).mean() + torch.log(x_neg).mean()


def test_torch_gradients():
    torch = pytest.importorskip("torch")
    Z, truth = blobs(24, dim=3, seed=10)
    A = knn_graph(Z, 3)
    Zt = torch.tensor(Z, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda z: pamc_loss(z, A, truth, tau=0.8, order=2), (Zt,), eps=1e-6, atol=1e-7
    )
    assert torch.autograd.gradcheck(
        lambda z: ncontrast_loss(z, A, tau=0.8, order=2), (Zt,), eps=1e-6, atol=1e-7
    )
    for detach in (False, True):
        (grad,) = torch.autograd.grad(
            pamc_loss(Zt, A, truth, tau=0.8, order=2, detach_meta_nodes=detach), Zt
        )
        (expected,) = torch.autograd.grad(
            torch_released_pamc(torch, Zt, A, truth, 0.8, 2, detach), Zt
        )
        np.testing.assert_allclose(grad.numpy(), expected.numpy(), rtol=1e-9, atol=1e-12)
    # the flag matters: the meta-node path carries a gradient of its own
    (attached,) = torch.autograd.grad(pamc_loss(Zt, A, truth), Zt)
    (detached,) = torch.autograd.grad(pamc_loss(Zt, A, truth, detach_meta_nodes=True), Zt)
    assert float((attached - detached).abs().max()) > 1e-4


# --- bad input -------------------------------------------------------------------------


def test_bad_input_is_rejected_with_a_clear_message():
    Z, truth = blobs(20, seed=11)
    A = knn_graph(Z, 3)
    directed = sp.csr_array(A.toarray() * np.tri(20))
    cases = [
        (lambda: pamc_loss(Z, directed, truth), "symmetric"),
        (lambda: pamc_loss(Z, A[:10, :10], truth), "shape"),
        (lambda: pamc_loss(Z, -A, truth), "negative"),
        (lambda: pamc_loss(Z, [[0, 1], [1, 0]], truth), "shape"),
        (lambda: pamc_loss(np.where(np.eye(20, 5) > 0, np.nan, Z), A, truth), "NaN"),
        (lambda: pamc_loss(Z, A, truth - 1), ">= 0"),
        (lambda: pamc_loss(Z, A, truth[:-1]), "length"),
        (lambda: pamc_loss(Z, A, truth.astype(float)), "integer"),
        (lambda: pamc_loss(Z, A, np.full((20, 3), np.nan)), "NaN"),
        (lambda: pamc_loss(Z, A, truth, tau=0.0), "tau"),
        (lambda: pamc_loss(Z, A, truth, order=0), "order"),
        (lambda: pamc_loss(Z, A, truth, cumulative="yes"), "cumulative"),
        (lambda: ncontrast_loss(Z, A, tau=-1.0), "tau"),
        (lambda: meta_nodes(Z, truth, n_clusters=2), "n_clusters"),
        (lambda: meta_nodes(Z, np.zeros((20, 2, 2))), "1-D"),
    ]
    for call, message in cases:
        with pytest.raises(ValueError, match=message):
            call()


def test_inputs_are_not_modified():
    Z, truth = blobs(25, seed=12)
    A = knn_graph(Z, 3)
    Z0, A0, t0 = Z.copy(), A.copy(), truth.copy()
    pamc_loss(Z, A, truth, order=2)
    ncontrast_loss(Z, A)
    np.testing.assert_array_equal(Z, Z0)
    np.testing.assert_array_equal(A.toarray(), A0.toarray())
    np.testing.assert_array_equal(truth, t0)


def test_duplicate_and_unsorted_entries_in_the_adjacency_are_summed():
    Z, truth = blobs(30, seed=13)
    A = knn_graph(Z, 3)
    half = A.tocoo()
    # every edge stored twice with half its weight, column indices in reverse order
    rows = np.concatenate([half.row, half.row])
    cols = np.concatenate([half.col, half.col])
    order = np.lexsort((-cols, rows))
    indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=30))])
    messy = sp.csr_array((np.full(rows.size, 0.5), cols[order], indptr), shape=(30, 30))
    assert not messy.has_canonical_format
    for order_ in (1, 2):
        assert (
            abs(
                float(pamc_loss(Z, messy, truth, order=order_))
                - released_pamc_dense(Z, A, truth, 1.0, order_)
            )
            <= 1e-10
        )
