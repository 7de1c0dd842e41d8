import numpy as np
import pytest
import scipy.sparse as sp
from clusterlab.solvers.bound import bound_update, fit_prototypes, softmax_init
from clusterlab.solvers.graph import batched_knn_affinity, knn_affinity
from clusterlab.solvers.prototypes import update_prototypes
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmarks.peers import bound_iterations_numpy
from clusterlab.datasets import fewshot_tasks, load_dataset


def _problem(seed, n=60, n_labels=4, k=5, labeled=8):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    centers = rng.normal(size=(n_labels, 3))
    unary = ((X[:, None, :] - centers[None]) ** 2).sum(axis=2)
    clamp = np.full(n, -1)
    clamp[:labeled] = rng.integers(0, n_labels, labeled)
    return X, unary, knn_affinity(X, k).affinity, clamp


@pytest.mark.parametrize("lam", [0.0, 0.5, 2.0])
def test_bound_iterations_match_the_dense_reference(lam):
    _, unary, W, clamp = _problem(0)
    result = bound_update(unary, W, lam, clamp=clamp, tol=1e-9)
    Z_ref, history_ref = bound_iterations_numpy(unary, W, lam, clamp, tol=1e-9)
    np.testing.assert_allclose(result.assignments, Z_ref, atol=1e-12)
    np.testing.assert_allclose(result.energy_history[:, 0], history_ref, rtol=1e-12)
    assert result.n_iter[0] == history_ref.shape[0] - 1
    assert result.converged[0]


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    fraction=st.floats(0.05, 1.0),
    k=st.integers(1, 10),
    weights=st.sampled_from(["binary", "gaussian"]),
)
def test_relaxed_energy_never_increases_where_guaranteed(seed, fraction, k, weights):
    # The bound's decrease covers the linearisation error when lam * lambda_min(W) >= -1.
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(80, 4))
    unary = rng.uniform(0, 3, size=(80, 5))
    clamp = np.where(rng.random(80) < 0.1, rng.integers(0, 5, 80), -1)
    W = knn_affinity(X, k, weights=weights).affinity
    lam = fraction / max(1e-12, -np.linalg.eigvalsh(W.toarray()).min())
    history = bound_update(unary, W, lam, clamp=clamp, tol=0.0, max_iter=200).energy_history
    steps = np.diff(history[:, 0])
    assert np.all(steps <= 1e-12 * np.abs(history[:-1, 0]).max())


@pytest.mark.parametrize("n_shot", [1, 5])
@pytest.mark.parametrize("lam", [0.3, 0.7, 1.0])
def test_relaxed_energy_never_increases_on_fewshot_tasks(n_shot, lam):
    # Real graphs at the weights few-shot inference uses (200 digits tasks, k = 3).
    X, y = load_dataset("digits")
    tasks = fewshot_tasks(X[y >= 5], y[y >= 5], n_shot=n_shot, n_tasks=200, random_state=0)
    points = np.concatenate([tasks.X_support, tasks.X_query], axis=1) - X[y < 5].mean(axis=0)
    points /= np.linalg.norm(points, axis=2, keepdims=True)
    n_tasks, n_points, _ = points.shape
    support_means = points[:, : 5 * n_shot].reshape(n_tasks, 5, n_shot, -1).mean(axis=2)
    unary = ((points[:, :, None, :] - support_means[:, None]) ** 2).sum(axis=3)
    clamp = np.full((n_tasks, n_points), -1)
    clamp[:, : 5 * n_shot] = np.repeat(np.arange(5), n_shot)
    graph = batched_knn_affinity(points, 3)
    history = bound_update(
        unary.reshape(-1, 5),
        graph.affinity,
        lam,
        clamp=clamp.ravel(),
        n_problems=n_tasks,
        tol=0.0,
        max_iter=100,
    ).energy_history
    steps = np.diff(history, axis=0)  # NaN once a task has stopped
    scale = np.nanmax(np.abs(history), axis=0)
    assert np.all(np.isnan(steps) | (steps <= 1e-12 * scale))


@pytest.mark.parametrize("max_iter", [1, 2, 50])
def test_clamped_rows_stay_clamped(max_iter):
    _, unary, W, clamp = _problem(1)
    # Costs that pull every point away from its clamped label.
    unary = unary.copy()
    labeled = clamp >= 0
    unary[labeled, clamp[labeled]] += 100.0
    Z = bound_update(unary, W, 3.0, clamp=clamp, max_iter=max_iter).assignments
    np.testing.assert_array_equal(Z[labeled], np.eye(unary.shape[1])[clamp[labeled]])


def test_rows_are_probability_vectors():
    _, unary, W, clamp = _problem(2)
    Z = bound_update(unary, W, 1.0, clamp=clamp).assignments
    assert np.all(Z >= 0)
    np.testing.assert_allclose(Z.sum(axis=1), 1.0)


def test_softmax_init_is_the_softmax_of_minus_the_costs():
    _, unary, _, clamp = _problem(3)
    Z = softmax_init(unary, np.full(unary.shape[0], -1))
    expected = np.exp(-unary) / np.exp(-unary).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(Z, expected, rtol=1e-13)
    Z = softmax_init(unary, clamp)
    np.testing.assert_array_equal(Z[clamp >= 0].argmax(axis=1), clamp[clamp >= 0])


@pytest.mark.parametrize("rows", [30, 700])  # one block per problem, or several
def test_stacked_problems_equal_separate_solves(rows):
    rng = np.random.default_rng(4)
    n_problems, n_labels = 5, 3
    X = rng.normal(size=(n_problems, rows, 2))
    unary = rng.uniform(0, 2, size=(n_problems * rows, n_labels))
    n_samples = n_problems * rows
    clamp = np.where(rng.random(n_samples) < 0.05, rng.integers(0, 3, n_samples), -1)
    graph = batched_knn_affinity(X, 4)
    stacked = bound_update(unary, graph.affinity, 1.5, clamp=clamp, n_problems=n_problems)
    for t in range(n_problems):
        part = slice(t * rows, (t + 1) * rows)
        alone = bound_update(unary[part], knn_affinity(X[t], 4).affinity, 1.5, clamp=clamp[part])
        np.testing.assert_allclose(stacked.assignments[part], alone.assignments, atol=1e-12)
        assert stacked.n_iter[t] == alone.n_iter[0]
        np.testing.assert_allclose(stacked.energy[t], alone.energy[0], rtol=1e-12)


def test_iteration_cap_reports_no_convergence():
    _, unary, W, clamp = _problem(5)
    result = bound_update(unary, W, 1.0, clamp=clamp, tol=0.0, max_iter=3)
    assert result.n_iter[0] == 3
    assert not result.converged[0]
    assert result.energy_history.shape == (4, 1)


def _tasks(seed, n_tasks=4, n=40, n_labels=3):
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=6, size=(n_tasks, n_labels, 2))
    truth = rng.integers(0, n_labels, size=(n_tasks, n))
    X = np.take_along_axis(centers, truth[:, :, None], axis=1) + rng.normal(size=(n_tasks, n, 2))
    clamp = np.full((n_tasks, n), -1)
    clamp[:, :n_labels] = np.arange(n_labels)
    truth[:, :n_labels] = np.arange(n_labels)
    X[:, :n_labels] = centers
    return X, clamp, truth


@pytest.mark.parametrize("kind", ["means", "modes", "members", "fixed"])
def test_batched_prototype_fit_equals_task_by_task(kind):
    X, clamp, _ = _tasks(6)
    graph = batched_knn_affinity(X, 3)
    init = X[:, :3].copy()
    batched = fit_prototypes(
        X, graph.affinity, 1.0, init, clamp=clamp, kind=kind, sigma2=graph.sigma2
    )
    for t in range(X.shape[0]):
        single = knn_affinity(X[t], 3)
        alone = fit_prototypes(
            X[t : t + 1],
            single.affinity,
            1.0,
            init[t : t + 1],
            clamp=clamp[t : t + 1],
            kind=kind,
            sigma2=single.sigma2,
        )
        np.testing.assert_array_equal(batched.labels[t], alone.labels[0])
        np.testing.assert_allclose(batched.prototypes[t], alone.prototypes[0], atol=1e-12)
        assert batched.n_iter[t] == alone.n_iter[0]


def test_prototype_fit_recovers_separated_clusters_and_keeps_supports():
    X, clamp, truth = _tasks(7)
    graph = batched_knn_affinity(X, 3)
    result = fit_prototypes(X, graph.affinity, 0.5, X[:, :3], clamp=clamp)
    assert result.converged.all()
    assert np.mean(result.labels == truth) > 0.9
    np.testing.assert_array_equal(result.labels[:, :3], clamp[:, :3])
    # "means" prototypes are the means of the final hard labels.
    for t in range(X.shape[0]):
        for label in range(3):
            np.testing.assert_allclose(
                result.prototypes[t, label], X[t, result.labels[t] == label].mean(axis=0)
            )


def test_a_cluster_losing_all_points_stops_with_the_previous_labels():
    # An outlier holds the second prototype; its neighbours all belong to the first
    # cluster, so a strong Laplacian term moves it there and empties the second cluster.
    rng = np.random.default_rng(8)
    X = np.concatenate([rng.normal(0, 0.1, (30, 2)), [[1.0, 0.0]]])[None]
    init = np.array([[[0.0, 0.0], [1.0, 0.0]]])
    graph = batched_knn_affinity(X, 5)
    result = fit_prototypes(X, graph.affinity, 50.0, init)
    assert result.empty_cluster[0]
    assert not result.converged[0]
    assert np.all(np.isfinite(result.prototypes))
    assert np.all(np.isfinite(result.assignments))
    # The labels of the previous round (here the nearest-prototype ones) are kept.
    np.testing.assert_array_equal(result.labels[0], [0] * 30 + [1])


def test_mean_shift_prototypes_are_fixed_points():
    X, _, truth = _tasks(9, n_tasks=2)
    sigma2 = np.array([1.0, 1.0])
    modes = update_prototypes(X, truth, None, X[:, :3], "modes", sigma2)
    for t in range(2):
        for label in range(3):
            members = X[t, truth[t] == label]
            weights = np.exp(-((members - modes[t, label]) ** 2).sum(axis=1) / 2.0)
            shifted = weights @ members / weights.sum()
            np.testing.assert_allclose(shifted, modes[t, label], atol=1e-4)


def test_members_prototypes_are_data_points():
    X, _, truth = _tasks(10, n_tasks=2)
    assignments = np.eye(3)[truth] * 0.9 + 0.1 / 3
    members = update_prototypes(X, truth, assignments, X[:, :3], "members", np.ones(2))
    for t in range(2):
        for label in range(3):
            assert np.any(np.all(X[t] == members[t, label], axis=1))


def test_no_edges_and_zero_lam_is_the_nearest_prototype_rule():
    X, clamp, _ = _tasks(11)
    n_points = X.shape[0] * X.shape[1]
    empty = sp.csr_matrix((n_points, n_points))
    result = fit_prototypes(X, empty, 0.0, X[:, :3], clamp=clamp, kind="fixed")
    d2 = ((X[:, :, None, :] - X[:, None, :3, :]) ** 2).sum(axis=3)
    expected = np.where(clamp >= 0, clamp, d2.argmin(axis=2))
    np.testing.assert_array_equal(result.labels, expected)


def test_rows_must_split_into_equal_problems():
    _, unary, W, _ = _problem(12)
    with pytest.raises(ValueError, match="equal problems"):
        bound_update(unary, W, 1.0, n_problems=7)


def test_clamp_labels_out_of_range_are_an_error():
    _, unary, W, clamp = _problem(13)
    clamp = clamp.copy()
    clamp[0] = unary.shape[1]
    with pytest.raises(ValueError, match="clamp must hold one label"):
        bound_update(unary, W, 1.0, clamp=clamp)


def test_overflowing_lam_is_an_error_not_nan():
    _, unary, W, clamp = _problem(14)
    with pytest.raises(FloatingPointError, match="non-finite"):
        bound_update(unary, W, 1e308, clamp=clamp, max_iter=5)


def test_members_prototypes_ignore_clamped_points():
    # The clamped point of each label has assignment 1; the prototype must be a free point.
    X, clamp, truth = _tasks(15, n_tasks=2)
    assignments = np.eye(3)[truth] * 0.9 + 0.1 / 3
    labeled = clamp >= 0
    assignments[labeled] = np.eye(3)[clamp[labeled]]
    members = update_prototypes(X, truth, assignments, X[:, :3], "members", np.ones(2), clamp=clamp)
    for t in range(2):
        for label in range(3):
            row = np.flatnonzero(np.all(X[t] == members[t, label], axis=1))
            assert row.size
            assert np.all(clamp[t, row] < 0)
