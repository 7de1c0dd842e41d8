"""GroupSparseCommunity (DAG's group-sparse readout), its solver, EDGE and the SBM generator."""

import math

import numpy as np
import pytest
import scipy.sparse as sp
from clusterlab.solvers import group_sparse as gs
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import normalized_mutual_info_score
from sklearn.utils.estimator_checks import parametrize_with_checks

from clusterlab import GroupSparseCommunity
from clusterlab.datasets import make_attributed_sbm
from clusterlab.metrics import edge_f1_score

# -- references ------------------------------------------------------------------------


def reference_objective(H, W, edges, alpha, beta):
    """F(W) written edge by edge."""
    C = np.maximum(H @ W, 0.0)
    total, loss = 0.0, 0.0
    for i, j, u, w in zip(edges.heads, edges.tails, edges.negatives, edges.weights, strict=True):
        s = C[i] @ C[j] - C[i] @ C[u]
        loss += w * math.log1p(math.exp(-s))
        total += w
    penalty = sum(np.linalg.norm(W[:, k]) for k in range(W.shape[1]))
    return loss / total + alpha * np.sum(W**2) + beta * penalty


def reference_edge_f1(adjacency, labels_true, labels_pred):
    """EDGE by a loop over the node pairs of a dense adjacency."""
    A = np.asarray(adjacency)
    n = A.shape[0]
    tp = fp = fn = 0
    for i in range(n):
        for j in range(i + 1, n):
            if A[i, j] == 0 and A[j, i] == 0:
                continue
            truth = labels_true[i] == labels_true[j]
            predicted = labels_pred[i] == labels_pred[j]
            tp += truth and predicted
            fp += predicted and not truth
            fn += truth and not predicted
    if tp + fp == 0:
        return 0.0
    precision = tp / (tp + fp)
    recall = tp / (tp + fn) if tp + fn else 0.0
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def small_problem(seed=0, n=40, d=5, k=4):
    rng = np.random.default_rng(seed)
    X, A, _ = make_attributed_sbm(n, 2, 0.3, 0.05, d, random_state=seed)
    H = gs.propagation_matrix(A) @ X
    edges = gs.edge_samples(A, rng)
    W = rng.standard_normal((d, k))
    return H, W, edges, A


def karate():
    nx = pytest.importorskip("networkx")
    graph = nx.karate_club_graph()
    A = nx.to_scipy_sparse_array(graph, nodelist=range(34), weight=None)
    y = np.array([graph.nodes[i]["club"] == "Officer" for i in range(34)], dtype=int)
    return sp.csr_matrix(A, dtype=float), y


# -- scikit-learn compatibility ----------------------------------------------------------


@parametrize_with_checks([GroupSparseCommunity(random_state=0)])
def test_scikit_learn_compatible(estimator, check):
    check(estimator)  # adjacency=None: the kNN graph of X


# -- the solver --------------------------------------------------------------------------


@pytest.mark.parametrize("alpha", [0.0, 0.3])
def test_objective_equals_edge_by_edge_reference(alpha):
    H, W, edges, _ = small_problem()
    assert gs.objective(H, W, edges, alpha, 0.2) == pytest.approx(
        reference_objective(H, W, edges, alpha, 0.2), rel=1e-12
    )


@pytest.mark.parametrize("seed", [0, 1])
def test_gradient_matches_finite_differences(seed):
    H, W, edges, _ = small_problem(seed)
    value, grad = gs.smooth_objective(H, W, edges, 0.1)
    assert value == pytest.approx(gs.smooth_objective(H, W, edges, 0.1, gradient=False))
    h = 1e-6
    numeric = np.empty_like(W)
    for index in np.ndindex(W.shape):
        step = np.zeros_like(W)
        step[index] = h
        up = gs.smooth_objective(H, W + step, edges, 0.1, gradient=False)
        down = gs.smooth_objective(H, W - step, edges, 0.1, gradient=False)
        numeric[index] = (up - down) / (2 * h)
    assert np.abs(grad).max() > 1e-3  # not a trivially zero gradient
    np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-8)


def test_group_soft_threshold_is_the_proximal_map():
    rng = np.random.default_rng(0)
    W = rng.standard_normal((6, 5)) * np.array([0.1, 1.0, 3.0, 0.0, 0.5])
    out = gs.group_soft_threshold(W, 0.6)
    for k in range(5):
        norm = np.linalg.norm(W[:, k])
        if norm <= 0.6:
            assert np.all(out[:, k] == 0.0)  # exact zeros
        else:
            np.testing.assert_allclose(out[:, k], (1 - 0.6 / norm) * W[:, k])

    # optimality of the prox: no random perturbation lowers 0.5||V - W||^2 + t sum ||V_k||
    def prox_objective(V):
        return 0.5 * np.sum((V - W) ** 2) + 0.6 * gs.group_l21(V)

    best = prox_objective(out)
    for _ in range(200):
        assert prox_objective(out + 1e-3 * rng.standard_normal(W.shape)) >= best - 1e-12


def test_edge_samples_are_edges_and_non_neighbours():
    _, _, edges, A = small_problem()
    dense = A.toarray()
    assert edges.n_edges == A.nnz  # every stored entry, both directions
    assert np.all(dense[edges.heads, edges.tails] != 0)
    assert np.all(dense[edges.heads, edges.negatives] == 0)
    assert np.all(edges.negatives != edges.heads)


def test_edges_of_a_node_adjacent_to_everyone_are_dropped():
    star = sp.csr_matrix(np.ones((5, 5)) - np.eye(5))  # complete graph: no non-neighbour
    edges = gs.edge_samples(star, np.random.default_rng(0))
    assert edges.n_edges == 0


def test_proximal_gradient_never_increases_the_objective_and_zeroes_columns():
    X, A, _ = make_attributed_sbm(200, 3, 0.2, 0.02, 6, random_state=1)
    H = gs.propagation_matrix(A) @ X
    H -= H.mean(axis=0)
    rng = np.random.default_rng(0)
    edges = gs.edge_samples(A, rng)
    result = gs.proximal_gradient(
        H,
        gs.initial_weights(H, 10, rng),
        edges,
        alpha=1e-3,
        beta=0.03,
        learning_rate=1.0,
        max_iter=300,
        tol=1e-8,
    )
    history = result.objective_history
    assert np.all(np.diff(history) <= 1e-12 * np.abs(history[:-1]))
    assert history[-1] == pytest.approx(gs.objective(H, result.weights, edges, 1e-3, 0.03))
    zero = np.all(result.weights == 0.0, axis=0)
    assert zero.any()
    assert not zero.all()
    np.testing.assert_array_equal(result.active, np.flatnonzero(~zero))


def test_zero_membership_rows_take_their_neighbours_label():
    # path 0-1-2-3-4 and a separate edge 5-6; nodes 2, 3 and the pair 5, 6 have C = 0
    A = sp.csr_matrix(
        np.array(
            [
                [0, 1, 0, 0, 0, 0, 0],
                [1, 0, 1, 0, 0, 0, 0],
                [0, 1, 0, 1, 0, 0, 0],
                [0, 0, 1, 0, 1, 0, 0],
                [0, 0, 0, 1, 0, 0, 0],
                [0, 0, 0, 0, 0, 0, 1],
                [0, 0, 0, 0, 0, 1, 0],
            ],
            dtype=float,
        )
    )
    C = np.array(
        [[0, 0, 2.0], [0, 0, 1.0], [0, 0, 0], [0, 0, 0], [0, 3.0, 0], [0, 0, 0], [0, 0, 0]]
    )
    Z = np.array(
        [
            [0, 0, 2.0],
            [0, 0, 1.0],
            [-1, -1, -1],
            [-1, -1, -1],
            [0, 3.0, 0],
            [-5, -0.5, -2],
            [-5, -0.2, -3],
        ]
    )
    labels = gs.community_labels(C, Z, A, active=np.array([1, 2]))
    # 2 joins its labelled neighbour 1; 3 then has one neighbour in each: the tie goes
    # to the smaller column; 5 and 6 have no labelled node nearby: largest activation
    np.testing.assert_array_equal(labels, [2, 2, 2, 1, 1, 1, 1])
    assert gs.community_labels(C, Z, A, active=np.array([], dtype=int)).tolist() == [0] * 7


# -- EDGE --------------------------------------------------------------------------------


def random_graph(seed, n=30, p=0.2):
    rng = np.random.default_rng(seed)
    upper = np.triu(rng.random((n, n)) < p, 1)
    return (upper | upper.T).astype(float), rng


def test_edge_f1_singletons_truth_and_one_community():
    A, rng = random_graph(0)
    truth = rng.integers(0, 3, 30)
    assert edge_f1_score(A, truth, np.arange(30)) == 0.0
    assert edge_f1_score(A, truth, truth) == 1.0
    assert edge_f1_score(A, truth, truth + 10) == 1.0  # names of communities do not matter
    i, j = np.nonzero(np.triu(A, 1))
    c = np.mean(truth[i] != truth[j])  # share of inter-community edges
    assert 0 < c < 1
    assert edge_f1_score(A, truth, np.zeros(30)) == pytest.approx(2 * (1 - c) / (2 - c))


@pytest.mark.parametrize("seed", range(5))
def test_edge_f1_equals_brute_force(seed):
    A, rng = random_graph(seed)
    A = A * rng.uniform(0.5, 2.0, A.shape)  # weights are ignored
    A[3, 3] = 1.0  # so are self-loops
    A[0, 1], A[1, 0] = 1.0, 0.0  # one direction is enough to observe an edge
    truth, predicted = rng.integers(0, 3, 30), rng.integers(0, 4, 30)
    expected = reference_edge_f1(A, truth, predicted)
    assert edge_f1_score(A, truth, predicted) == pytest.approx(expected, abs=1e-15)
    assert edge_f1_score(sp.csr_matrix(A), truth, predicted) == pytest.approx(expected)
    assert edge_f1_score(A, truth.astype(str), predicted) == pytest.approx(expected)


def test_edge_f1_rewards_under_segmentation():
    _, A, y = make_attributed_sbm(200, 4, 0.2, 0.02, 4, random_state=0)
    merged = y // 2  # two true communities per predicted one
    split = 2 * y + np.arange(200) % 2  # each true community cut in half
    # merging scores higher on EDGE and lower on NMI than splitting: report both
    assert edge_f1_score(A, y, merged) > edge_f1_score(A, y, split)
    assert normalized_mutual_info_score(y, merged) < normalized_mutual_info_score(y, split)


def test_edge_f1_torch_labels():
    torch = pytest.importorskip("torch")
    A, rng = random_graph(1)
    truth, predicted = rng.integers(0, 3, 30), rng.integers(0, 3, 30)
    assert edge_f1_score(
        torch.as_tensor(A), torch.as_tensor(truth), torch.as_tensor(predicted)
    ) == edge_f1_score(A, truth, predicted)


@pytest.mark.parametrize(
    ("adjacency", "labels_pred", "message"),
    [
        (np.eye(3), [0, 1, 1], "no edges"),
        (np.ones((3, 4)), [0, 1, 1], "shape"),
        (np.ones((3, 3)), [0, 1], "different lengths"),
        (np.ones((3, 3)), [[0, 1, 1]], "1-dimensional"),
        (np.full((3, 3), np.nan), [0, 1, 1], "NaN"),
    ],
)
def test_edge_f1_rejects_bad_input(adjacency, labels_pred, message):
    with pytest.raises(ValueError, match=message):
        edge_f1_score(adjacency, [0, 1, 1], labels_pred)


# -- the generator -----------------------------------------------------------------------


def test_attributed_sbm():
    X, A, y = make_attributed_sbm(600, 3, 0.1, 0.01, 5, separation=4.0, random_state=0)
    assert X.shape == (600, 5)
    assert np.bincount(y).tolist() == [200, 200, 200]
    assert (A != A.T).nnz == 0
    assert A.diagonal().sum() == 0
    i, j = sp.triu(A, 1).nonzero()
    inside = y[i] == y[j]
    assert inside.sum() / (3 * 200 * 199 / 2) == pytest.approx(0.1, rel=0.05)
    assert (~inside).sum() / (3 * 200 * 200) == pytest.approx(0.01, rel=0.1)
    means = np.array([X[y == k].mean(axis=0) for k in range(3)])
    distances = np.linalg.norm(means[:, None] - means[None], axis=2)[np.triu_indices(3, 1)]
    np.testing.assert_allclose(distances, 4.0, atol=0.4)
    X2, A2, y2 = make_attributed_sbm(600, 3, 0.1, 0.01, 5, separation=4.0, random_state=0)
    assert np.array_equal(X, X2)
    assert (A != A2).nnz == 0
    assert np.array_equal(y, y2)
    with pytest.raises(ValueError, match="p_in"):
        make_attributed_sbm(10, 2, 1.5, 0.1, 3)
    with pytest.raises(ValueError, match="n_features"):
        make_attributed_sbm(10, 5, 0.5, 0.1, 3)


# -- the estimator -----------------------------------------------------------------------


def sbm(seed=0):
    return make_attributed_sbm(400, 4, 0.1, 0.01, 16, random_state=seed)


def test_finds_the_communities_of_an_attributed_sbm():
    X, A, y = sbm()
    model = GroupSparseCommunity(k_max=16, random_state=0).fit(X, adjacency=A)
    assert 3 <= model.n_communities_ <= 5
    assert normalized_mutual_info_score(y, model.labels_) >= 0.9
    assert model.converged_
    assert np.array_equal(np.unique(model.labels_), np.arange(model.n_communities_))
    assert set(model.label_columns_) <= set(model.active_communities_)
    assert np.all(model.weights_[:, np.setdiff1d(np.arange(16), model.active_communities_)] == 0)
    history = model.objective_history_
    assert np.all(np.diff(history) <= 1e-12 * np.abs(history[:-1]))
    assert model.n_iter_ == len(history) - 1


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_finds_the_communities_of_more_sbms(seed):
    X, A, y = sbm(seed)
    model = GroupSparseCommunity(k_max=16, random_state=seed).fit(X, adjacency=A)
    assert 3 <= model.n_communities_ <= 5
    assert normalized_mutual_info_score(y, model.labels_) >= 0.9


def test_two_hops_equal_one_hop_on_propagated_features():
    X, A, _ = make_attributed_sbm(150, 3, 0.15, 0.02, 4, random_state=3)
    two = GroupSparseCommunity(n_hops=2, random_state=0).fit(X, adjacency=A)
    one = GroupSparseCommunity(random_state=0).fit(gs.propagation_matrix(A) @ X, adjacency=A)
    np.testing.assert_array_equal(two.labels_, one.labels_)
    np.testing.assert_allclose(two.objective_history_, one.objective_history_)


@pytest.mark.slow
def test_two_hops_on_a_sparser_sbm():
    X, A, y = make_attributed_sbm(1000, 4, 0.04, 0.004, 16, random_state=0)
    model = GroupSparseCommunity(n_hops=2, random_state=0).fit(X, adjacency=A)
    assert model.n_communities_ == 4
    assert normalized_mutual_info_score(y, model.labels_) >= 0.95


def test_karate_club_identity_features():
    A, y = karate()
    model = GroupSparseCommunity(k_max=16, random_state=0).fit(np.eye(34), adjacency=A)
    assert 2 <= model.n_communities_ <= 4
    assert normalized_mutual_info_score(y, model.labels_) > 0.5
    assert edge_f1_score(A, y, model.labels_) > 0.7


def counts_over_betas(X, A, betas, seed):
    counts = []
    for beta in betas:
        model = GroupSparseCommunity(beta=beta, random_state=seed)
        if beta >= 0.06:  # everything switched off: said loudly
            with pytest.warns(UserWarning, match="switched every community off"):
                model.fit(X, adjacency=A)
        else:
            model.fit(X, adjacency=A)
        counts.append(model.n_communities_)
    return counts


def test_number_found_does_not_grow_with_beta():
    betas = [0.003, 0.01, 0.03, 0.06]
    X, A, _ = sbm()
    counts = counts_over_betas(X, A, betas, 0)
    assert counts == sorted(counts, reverse=True)
    assert counts[0] > counts[-1] == 1
    A, _ = karate()
    counts = counts_over_betas(np.eye(34), A, betas, 0)
    assert counts == sorted(counts, reverse=True)
    assert counts[0] > counts[-1] == 1


def test_dense_and_sparse_adjacency_and_fit_predict_agree():
    X, A, _ = make_attributed_sbm(120, 3, 0.2, 0.02, 4, random_state=2)
    model = GroupSparseCommunity(random_state=0)
    labels = model.fit_predict(X, adjacency=A)
    np.testing.assert_array_equal(labels, model.labels_)
    np.testing.assert_array_equal(
        GroupSparseCommunity(random_state=0).fit(X, adjacency=A.toarray()).labels_, labels
    )
    np.testing.assert_array_equal(
        GroupSparseCommunity(random_state=0).fit(X.astype(np.float32), adjacency=A).labels_, labels
    )


def test_torch_features_are_copied_to_the_host():
    torch = pytest.importorskip("torch")
    X, A, _ = make_attributed_sbm(120, 3, 0.2, 0.02, 4, random_state=2)
    ours = GroupSparseCommunity(random_state=0).fit(torch.as_tensor(X), adjacency=A)
    np.testing.assert_array_equal(
        ours.labels_, GroupSparseCommunity(random_state=0).fit(X, adjacency=A).labels_
    )
    assert isinstance(ours.labels_, np.ndarray)


def test_every_node_labelled_when_some_memberships_are_zero():
    # three columns for four communities: one community ends up with no membership
    X, A, _ = make_attributed_sbm(300, 4, 0.1, 0.01, 8, random_state=0)
    model = GroupSparseCommunity(k_max=3, random_state=0).fit(X, adjacency=A)
    zero = ~np.any(model.membership_ > 0, axis=1)
    assert zero.sum() >= 10
    assert model.labels_.min() >= 0
    assert model.n_communities_ == 3
    # a zero row is not dumped into community 0: in the first round of the rule, it
    # takes the majority label among its neighbours that have memberships
    A = A.tocsr()
    checked = 0
    for node in np.flatnonzero(zero):
        neighbours = A.indices[A.indptr[node] : A.indptr[node + 1]]
        neighbours = neighbours[~zero[neighbours]]
        if neighbours.shape[0]:
            votes = np.bincount(model.labels_[neighbours], minlength=model.n_communities_)
            assert model.labels_[node] == np.argmax(votes)
            checked += 1
    assert checked >= 5


def test_convergence_warning_has_numbers():
    X, A, _ = sbm()
    with pytest.warns(
        ConvergenceWarning,
        match=r"max_iter=2 iterations.*decreased the "
        r"objective by \d\.\d\de[-+]\d\d",
    ):
        model = GroupSparseCommunity(max_iter=2, random_state=0).fit(X, adjacency=A)
    assert not model.converged_
    assert model.n_iter_ == 2


def test_verbose_prints_progress(capsys):
    X, A, _ = make_attributed_sbm(60, 2, 0.3, 0.05, 3, random_state=0)
    GroupSparseCommunity(verbose=5, random_state=0).fit(X, adjacency=A)
    assert "active communities" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("adjacency", "X", "message"),
    [
        (np.ones((4, 5)), np.eye(4), r"shape \(4, 5\); expected \(4, 4\)"),
        (np.triu(np.ones((4, 4)), 1), np.eye(4), "symmetric"),
        (-np.ones((4, 4)), np.eye(4), "negative"),
        (np.full((4, 4), np.inf), np.eye(4), "NaN or infinity"),
        (np.eye(4), np.eye(4), "no edges"),
        (None, np.ones((6, 2)), "same for every node"),
        (None, np.eye(1), "1 sample"),
    ],
)
def test_bad_input(adjacency, X, message):
    with pytest.raises(ValueError, match=message):
        GroupSparseCommunity().fit(X, adjacency=adjacency)
