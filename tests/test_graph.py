import numpy as np
import pytest
import scipy.sparse as sp
from clusterlab.solvers.graph import batched_knn_affinity, knn_affinity


def _brute_force_neighbors(X, k):
    d2 = ((X[:, None, :] - X[None, :, :]) ** 2).sum(axis=2)
    np.fill_diagonal(d2, np.inf)
    order = np.argsort(d2, axis=1)[:, :k]
    return order, np.take_along_axis(d2, order, axis=1)


@pytest.mark.parametrize("k", [1, 3, 7])
def test_binary_affinity_links_each_point_to_its_nearest_others(k):
    X = np.random.default_rng(0).normal(size=(40, 5))
    W = knn_affinity(X, k, symmetrize=False).affinity.toarray()
    neighbors, _ = _brute_force_neighbors(X, k)
    expected = np.zeros_like(W)
    np.put_along_axis(expected, neighbors, 1.0, axis=1)
    np.testing.assert_array_equal(W, expected)
    assert np.all(np.diag(W) == 0)


def test_symmetrized_affinity_is_the_mean_with_the_transpose():
    X = np.random.default_rng(1).normal(size=(30, 3))
    W = knn_affinity(X, 4, symmetrize=False).affinity
    S = knn_affinity(X, 4).affinity
    np.testing.assert_allclose(S.toarray(), 0.5 * (W + W.T).toarray())
    assert abs(S - S.T).max() == 0


def test_gaussian_weights_use_the_mean_squared_neighbour_distance():
    X = np.random.default_rng(2).normal(size=(25, 4))
    graph = knn_affinity(X, 3, weights="gaussian", symmetrize=False)
    neighbors, d2 = _brute_force_neighbors(X, 3)
    sigma2 = d2.mean()
    np.testing.assert_allclose(graph.sigma2, [sigma2])
    expected = np.zeros((25, 25))
    np.put_along_axis(expected, neighbors, np.exp(-d2 / (2 * sigma2)), axis=1)
    np.testing.assert_allclose(graph.affinity.toarray(), expected)


@pytest.mark.parametrize("weights", ["binary", "gaussian"])
def test_batched_affinity_is_block_diagonal_of_single_affinities(weights):
    X = np.random.default_rng(3).normal(size=(6, 20, 8))
    batched = batched_knn_affinity(X, 3, weights=weights)
    singles = [knn_affinity(task, 3, weights=weights) for task in X]
    expected = sp.block_diag([g.affinity for g in singles]).toarray()
    np.testing.assert_allclose(batched.affinity.toarray(), expected, atol=1e-12)
    np.testing.assert_allclose(batched.sigma2, [g.sigma2[0] for g in singles])


def test_duplicated_points_give_finite_gaussian_weights():
    X = np.zeros((5, 2))
    graph = knn_affinity(X, 2, weights="gaussian")
    assert np.all(np.isfinite(graph.affinity.data))


@pytest.mark.parametrize("builder", [knn_affinity, batched_knn_affinity])
def test_too_many_neighbours_is_an_error(builder):
    X = np.zeros((4, 2)) if builder is knn_affinity else np.zeros((2, 4, 2))
    with pytest.raises(ValueError, match="n_neighbors=4 must be smaller"):
        builder(X, 4)


def test_unknown_weights_is_an_error():
    with pytest.raises(ValueError, match="weights must be one of"):
        knn_affinity(np.random.default_rng(0).normal(size=(5, 2)), 2, weights="cosine")


@pytest.mark.parametrize("builder", [knn_affinity, batched_knn_affinity])
def test_overflowing_distances_are_an_error(builder):
    X = np.array([[1e200], [-1e200], [3e200], [0.0]])
    with pytest.raises(ValueError, match="overflow"):
        builder(X if builder is knn_affinity else X[None], 2)
