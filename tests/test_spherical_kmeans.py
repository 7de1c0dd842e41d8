import warnings

import numpy as np
import pytest
from clusterlab.solvers import spherical_kmeans as skm
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.estimator_checks import parametrize_with_checks

from clusterlab import SphericalKMeans
from clusterlab.metrics import clustering_accuracy


def _expected_failed_checks(estimator):
    return {
        "check_estimators_dtypes": (
            "the check's integer data (3 * uniform, truncated) has an all-zero row, which "
            "has no direction: fit rejects it with a ValueError by design"
        ),
    }


@parametrize_with_checks(
    [SphericalKMeans(n_clusters=3, random_state=0)], expected_failed_checks=_expected_failed_checks
)
def test_scikit_learn_compatible(estimator, check):
    check(estimator)


def unit(X):
    X = np.asarray(X)
    return X / np.linalg.norm(X, axis=1, keepdims=True)


def directions(n_clusters, n_per_cluster, dim=16, spread=0.3, seed=0, dtype=np.float64):
    """Unit vectors around ``n_clusters`` random directions, and their true clusters."""
    rng = np.random.default_rng(seed)
    means = unit(rng.standard_normal((n_clusters, dim)))
    y = np.repeat(np.arange(n_clusters), n_per_cluster)
    X = means[y] + spread * rng.standard_normal((y.size, dim)) / np.sqrt(dim)
    return unit(X).astype(dtype), y


def reference_iteration(X, centers):
    """One spherical Lloyd step written densely: labels by the argmax of the n x K cosine
    matrix, then the normalised sums (a cluster left empty keeps its centre here)."""
    S = X @ centers.T
    labels = np.argmax(S, axis=1)
    new = centers.astype(np.float64).copy()
    for k in range(centers.shape[0]):
        members = X[labels == k]
        if len(members):
            total = members.astype(np.float64).sum(axis=0)
            new[k] = total / np.linalg.norm(total)
    return labels, S.max(axis=1), new


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("chunk_size", [1, 7, 1000])
def test_one_lloyd_iteration_equals_the_dense_reference(dtype, chunk_size):
    X, _ = directions(6, 40, seed=1, dtype=dtype)
    rng = np.random.default_rng(2)
    C0 = X[rng.choice(len(X), 6, replace=False)].copy()
    labels, best, expected = reference_iteration(X, C0)
    assert np.bincount(labels, minlength=6).min() > 0  # no re-seeding in this comparison
    result = skm.lloyd(X, C0, max_iter=1, tol=0.0, chunk_size=chunk_size)
    assert result.n_iter == 1
    assert result.centers.dtype == dtype
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(result.centers, expected, rtol=rtol, atol=rtol)
    assert result.objective_history[0] == pytest.approx(
        len(X) - best.sum(dtype=np.float64), rel=rtol
    )
    # the final labels are those of the returned centres
    np.testing.assert_array_equal(result.labels, np.argmax(X @ result.centers.T, axis=1))
    # and the estimator, from the same centres, makes the same step
    model = SphericalKMeans(6, init=C0, max_iter=1, tol=0.0, chunk_size=chunk_size)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X)
    np.testing.assert_allclose(model.cluster_centers_, expected, rtol=rtol, atol=rtol)


@pytest.mark.parametrize("n_workers", [1, 2, 3])
def test_chunked_assignment_equals_the_dense_argmax(n_workers):
    rng = np.random.default_rng(3)
    X = unit(rng.standard_normal((203, 12))).astype(np.float32)
    C = unit(rng.standard_normal((37, 12))).astype(np.float32)
    labels, best = skm.assign(X, C, chunk_size=10, n_workers=n_workers)
    S = X @ C.T
    np.testing.assert_array_equal(labels, np.argmax(S, axis=1))
    np.testing.assert_array_equal(best, S[np.arange(203), labels])
    assert best.dtype == np.float32


def test_cluster_sums_equal_a_loop():
    rng = np.random.default_rng(4)
    X = rng.standard_normal((150, 5))
    labels = rng.integers(0, 9, 150)
    labels[labels == 4] = 3  # cluster 4 empty
    sums, counts = skm.cluster_sums(X, labels, 9)
    for k in range(9):
        np.testing.assert_allclose(sums[k], X[labels == k].sum(axis=0), atol=1e-12)
        assert counts[k] == np.sum(labels == k)


def test_default_chunk_bounds_the_similarity_blocks():
    for K in (8, 2048, 65_536, 1_000_000):
        for itemsize in (4, 8):
            rows = skm.default_chunk_size(K, itemsize, n_workers=2)
            assert rows >= 1
            assert rows == 1 or 2 * rows * K * itemsize <= skm.CHUNK_BYTES
            assert rows <= skm.MAX_CHUNK_ROWS


def test_empty_cluster_is_reseeded_with_the_farthest_sample():
    X, _ = directions(3, 30, seed=5)
    far = np.argmin(np.max(X @ X[[0, 30, 60]].T, axis=1))
    # a duplicated initial centre: its copy wins no sample (ties go to the lower index)
    C0 = X[[0, 30, 60, 60]]
    result = skm.lloyd(X, C0, max_iter=1, tol=0.0, chunk_size=16)
    assert result.n_reseeded == 1
    np.testing.assert_allclose(result.centers[3], X[far])
    model = SphericalKMeans(4, init=C0, random_state=0).fit(X)
    assert model.n_reseeded_ >= 1
    assert np.bincount(model.labels_, minlength=4).min() > 0


def test_objective_never_increases_and_labels_match_centres():
    X, _ = directions(20, 25, spread=1.5, seed=6)
    model = SphericalKMeans(20, init="random", max_iter=50, tol=0.0, random_state=0).fit(X)
    history = model.objective_history_
    assert len(history) >= 3
    assert np.all(np.diff(history) <= 1e-9 * history[:-1])
    assert model.inertia_ == pytest.approx(history[-1])
    S = unit(X) @ model.cluster_centers_.T
    np.testing.assert_array_equal(model.labels_, np.argmax(S, axis=1))
    assert model.inertia_ == pytest.approx(np.sum(1 - S.max(axis=1)))
    np.testing.assert_allclose(np.linalg.norm(model.cluster_centers_, axis=1), 1.0)


@pytest.mark.parametrize("init", ["k-means++", "random"])
def test_two_points_per_cluster_are_recovered(init):
    X, y = directions(8, 2, spread=0.05, seed=7)
    model = SphericalKMeans(8, init=init, n_init=5, random_state=0).fit(3.0 * X)
    assert clustering_accuracy(y, model.labels_) == 1.0
    assert model.converged_


def test_separated_directions_are_recovered_at_any_norm():
    X, y = directions(5, 60, spread=0.4, seed=8)
    scales = np.random.default_rng(0).uniform(0.1, 100, size=(len(X), 1))
    model = SphericalKMeans(5, n_init=3, random_state=0).fit(X * scales)
    assert clustering_accuracy(y, model.labels_) == 1.0


def test_predict_transform_score():
    X, _ = directions(4, 30, seed=9)
    model = SphericalKMeans(4, random_state=0).fit(X * 2.0)
    np.testing.assert_array_equal(model.predict(X * 5.0), model.labels_)
    np.testing.assert_array_equal(model.fit_predict(X * 2.0), model.labels_)
    np.testing.assert_allclose(model.transform(X * 7.0), X @ model.cluster_centers_.T)
    assert model.score(X) == pytest.approx(-model.inertia_)
    assert model.score(X) > model.score(X[:, ::-1].copy())  # fits its own data better


def test_float32_is_kept():
    X, _ = directions(3, 20, seed=10, dtype=np.float32)
    model = SphericalKMeans(3, random_state=0).fit(X)
    assert model.cluster_centers_.dtype == np.float32
    assert model.transform(X).dtype == np.float32


def test_inference_on_every_backend(backend):
    X, _ = directions(4, 30, seed=11)
    model = SphericalKMeans(4, random_state=0, chunk_size=16).fit(X)
    Xb = backend.asarray(X)
    labels = model.predict(Xb)
    cosines = model.transform(Xb)
    assert backend.is_own(labels)
    assert backend.is_own(cosines)
    np.testing.assert_array_equal(backend.to_numpy(labels), model.labels_)
    np.testing.assert_allclose(backend.to_numpy(cosines), X @ model.cluster_centers_.T, rtol=1e-10)
    assert model.score(Xb) == pytest.approx(-model.inertia_)


def test_fit_on_a_tensor_runs_on_the_host():
    torch = pytest.importorskip("torch")
    X, _ = directions(3, 20, seed=12, dtype=np.float32)
    model = SphericalKMeans(3, random_state=0).fit(torch.tensor(X, requires_grad=True))
    reference = SphericalKMeans(3, random_state=0).fit(X)
    assert isinstance(model.cluster_centers_, np.ndarray)
    np.testing.assert_array_equal(model.labels_, reference.labels_)
    assert model.cluster_centers_.dtype == np.float32


def test_same_result_as_faiss_from_the_same_centres():
    faiss = pytest.importorskip("faiss")
    X, _ = directions(12, 50, spread=1.0, seed=13, dtype=np.float32)
    C0 = X[np.random.default_rng(0).choice(len(X), 12, replace=False)].copy()
    kmeans = faiss.Kmeans(
        X.shape[1],
        12,
        niter=3,
        spherical=True,
        seed=0,
        max_points_per_centroid=10**6,
        min_points_per_centroid=1,
    )
    kmeans.train(X, init_centroids=C0)
    result = skm.lloyd(X, C0, max_iter=3, tol=0.0, chunk_size=64)
    np.testing.assert_allclose(result.centers, kmeans.centroids, atol=1e-5)


def test_non_convergence_warns_with_numbers():
    X, _ = directions(10, 30, spread=2.0, seed=14)
    with pytest.warns(ConvergenceWarning, match=r"max_iter=1 .*inertia"):
        SphericalKMeans(10, init="random", max_iter=1, random_state=0).fit(X)


@pytest.mark.parametrize(
    ("params", "X", "message"),
    [
        ({"n_clusters": 5}, np.ones((3, 2)), "n_samples=3 should be >= n_clusters=5"),
        ({"n_clusters": 2}, np.array([[1.0, 0], [0, 0], [1, 1]]), r"all-zero rows \(first: \[1\]"),
        ({"n_clusters": 2, "init": np.ones((3, 2))}, np.eye(4)[:, :2] + 1, "init has shape"),
        ({"n_clusters": 2, "init": np.zeros((2, 2))}, np.eye(4)[:, :2] + 1, "init has all-zero"),
        ({"n_clusters": 2}, np.array([[0.0, np.nan], [1, 1]]), "NaN"),
    ],
)
def test_bad_input(params, X, message):
    with pytest.raises(ValueError, match=message):
        SphericalKMeans(**params).fit(X)


def test_input_is_not_modified():
    X, _ = directions(3, 20, seed=15)
    X = 3.0 * X
    kept = X.copy()
    model = SphericalKMeans(3, random_state=0).fit(X)
    model.predict(X)
    model.transform(X)
    np.testing.assert_array_equal(X, kept)


def test_explicit_init_runs_once():
    X, _ = directions(3, 20, seed=16)
    with pytest.warns(RuntimeWarning, match="one run"):
        SphericalKMeans(3, init=X[:3], n_init=4).fit(X)


def test_kmeans_plusplus_picks_distinct_samples_spread_over_the_clusters():
    X, y = directions(6, 20, spread=0.05, seed=17)
    rng = np.random.RandomState(0)
    centers = skm.kmeans_plusplus(X, 6, rng)
    rows = [int(np.flatnonzero(np.all(c == X, axis=1))[0]) for c in centers]
    assert sorted(set(y[rows])) == list(range(6))  # one seed in each tight cluster
    all_rows = skm.kmeans_plusplus(X[:10], 10, rng)  # K = n: every sample once
    assert len({tuple(r) for r in all_rows}) == 10
