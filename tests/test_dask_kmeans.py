"""SphericalKMeans and SinkhornKMeans on row-chunked Dask arrays, against in-memory fits.

Both paths run the same iterations from the same initial centres, so the fitted centres
agree to rounding. Graph logic runs on the synchronous scheduler; end-to-end equality on
the two-process ``dask_client`` cluster of conftest.
"""

import warnings

import numpy as np
import pytest
from sklearn.datasets import load_digits

da = pytest.importorskip("dask.array")
dask = pytest.importorskip("dask")

from clusterlab.solvers import dask_lloyd  # noqa: E402
from clusterlab.solvers._dask import is_dask_array  # noqa: E402

from clusterlab import SinkhornKMeans, SphericalKMeans  # noqa: E402


@pytest.fixture
def synchronous():
    with dask.config.set(scheduler="synchronous"):
        yield


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X.astype(np.float32), y


def reference_lloyd(X, centers, n_iter):
    """Spherical Lloyd iterations written plainly (float64, no empty clusters)."""
    X = X / np.linalg.norm(X, axis=1, keepdims=True)
    C = centers / np.linalg.norm(centers, axis=1, keepdims=True)
    for _ in range(n_iter):
        labels = np.argmax(X @ C.T, axis=1)
        C = np.stack([X[labels == k].sum(axis=0) for k in range(C.shape[0])])
        C /= np.linalg.norm(C, axis=1, keepdims=True)
    return C


def quiet_fit(model, X):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a capped max_iter warns alike on both paths
        return model.fit(X)


@pytest.mark.parametrize("init", ["random", "k-means++", "array"])
def test_spherical_kmeans_matches_in_memory(synchronous, digits, init):
    X, _ = digits
    X = X[:1200]
    kw = {
        "n_clusters": 12,
        "max_iter": 8,
        "random_state": 0,
        "init": X[::100][:12] if init == "array" else init,
    }
    expected = quiet_fit(SphericalKMeans(**kw), X)
    model = quiet_fit(SphericalKMeans(**kw), da.from_array(X, chunks=(250, 64)))
    assert isinstance(model.cluster_centers_, np.ndarray)
    assert model.cluster_centers_.dtype == np.float32
    np.testing.assert_allclose(model.cluster_centers_, expected.cluster_centers_, atol=1e-6)
    assert model.n_iter_ == expected.n_iter_
    assert model.converged_ == expected.converged_
    np.testing.assert_allclose(model.objective_history_, expected.objective_history_, rtol=1e-6)
    assert is_dask_array(model.labels_)
    assert model.labels_.chunks == ((250, 250, 250, 250, 200),)
    np.testing.assert_array_equal(model.labels_.compute(), expected.labels_)


def test_spherical_lloyd_against_plain_reference(synchronous, digits):
    X, _ = digits
    X = X.astype(np.float64)
    centers = X[[0, 1, 2, 3, 4, 5, 6, 7]]
    expected = reference_lloyd(X, centers, 3)
    model = SphericalKMeans(8, init=centers, max_iter=3, tol=0.0, random_state=0)
    quiet_fit(model, da.from_array(X, chunks=(300, 64)))
    assert model.n_iter_ == 3
    np.testing.assert_allclose(model.cluster_centers_, expected, atol=1e-12)


def test_empty_clusters_are_reseeded_like_in_memory(synchronous, digits):
    X, _ = digits
    X = X[:600]
    init = np.repeat(X[:3], 3, axis=0)  # duplicated centres: six clusters start empty
    expected = quiet_fit(SphericalKMeans(9, init=init, max_iter=5), X)
    model = quiet_fit(SphericalKMeans(9, init=init, max_iter=5), da.from_array(X, chunks=128))
    assert expected.n_reseeded_ > 0
    assert model.n_reseeded_ == expected.n_reseeded_
    np.testing.assert_allclose(model.cluster_centers_, expected.cluster_centers_, atol=1e-6)


def test_spherical_predict_transform_score_on_dask(synchronous, digits):
    X, _ = digits
    model = SphericalKMeans(10, random_state=0).fit(X)
    Xd = da.from_array(X, chunks=(500, 64))
    labels = model.predict(Xd)
    assert is_dask_array(labels)
    np.testing.assert_array_equal(labels.compute(), model.predict(X))
    cosines = model.transform(Xd)
    assert cosines.chunks == (Xd.chunks[0], (10,))
    np.testing.assert_allclose(cosines.compute(), model.transform(X), atol=1e-6)
    assert model.score(Xd) == pytest.approx(model.score(X), rel=1e-6)
    with pytest.raises(ValueError, match="features"):
        model.predict(Xd[:, :10])


def test_bad_dask_input_is_rejected(synchronous):
    X = np.random.default_rng(0).normal(size=(50, 4))
    zero = X.copy()
    zero[7] = 0
    with pytest.raises(ValueError, match="all-zero"):
        SphericalKMeans(3).fit(da.from_array(zero, chunks=10))
    bad = X.copy()
    bad[3, 2] = np.inf
    with pytest.raises(ValueError, match="NaN or infinity"):
        SphericalKMeans(3).fit(da.from_array(bad, chunks=10))
    with pytest.raises(ValueError, match="NaN or infinity"):
        SinkhornKMeans(3).fit(da.from_array(bad, chunks=10))
    with pytest.raises(ValueError, match="n_clusters"):
        SphericalKMeans(60).fit(da.from_array(X, chunks=10))


def test_quotas_add_up():
    rng = np.random.default_rng(0)
    rows = [37, 0, 51, 12, 100]
    sizes = rng.multinomial(200, np.full(7, 1 / 7))
    quotas = dask_lloyd._quota_rows(rows, sizes)
    np.testing.assert_array_equal(quotas.sum(axis=1), rows)
    np.testing.assert_array_equal(quotas.sum(axis=0), sizes)
    assert quotas.min() >= 0


@pytest.mark.parametrize("spherical", [False, True])
def test_sinkhorn_kmeans_matches_in_memory(synchronous, digits, spherical):
    X, _ = digits
    X = X[:700].astype(np.float64)
    kw = {
        "n_clusters": 7,
        "spherical": spherical,
        "init": "random",
        "random_state": 0,
        "max_iter": 3,
        "eps": 0.2,
    }
    expected = quiet_fit(SinkhornKMeans(**kw), X)
    model = quiet_fit(SinkhornKMeans(**kw), da.from_array(X, chunks=(200, 64)))
    np.testing.assert_allclose(
        model.cluster_centers_, expected.cluster_centers_, rtol=1e-9, atol=1e-9
    )
    np.testing.assert_allclose(model.objective_history_, expected.objective_history_, rtol=1e-9)
    assert model.n_iter_ == expected.n_iter_
    labels = model.labels_.compute()
    # exact sizes, like the in-memory rounding (700 = 7 x 100)
    np.testing.assert_array_equal(np.bincount(labels, minlength=7), np.full(7, 100))
    # the roundings differ (per chunk against global) but mostly agree
    assert np.mean(labels == expected.labels_) > 0.8
    Xn = da.from_array(X[:300], chunks=100)
    np.testing.assert_array_equal(
        model.predict(Xn, balanced=False).compute(), expected.predict(X[:300], balanced=False)
    )
    sizes = np.bincount(model.predict(Xn).compute(), minlength=7)
    assert sizes.sum() == 300
    assert set(sizes.tolist()) <= {42, 43}  # within one of 300 / 7, as in memory
    np.testing.assert_allclose(
        model.transform(Xn).compute(), expected.transform(X[:300]), atol=1e-9
    )


@pytest.mark.slow  # a fresh cluster's workers import clusterlab: seconds on a busy machine
def test_on_a_cluster(dask_client, digits):
    X, _ = digits
    Xd = da.from_array(X, chunks=(450, 64)).persist()
    init = X[::150][:12]
    expected = quiet_fit(SphericalKMeans(12, init=init, max_iter=10), X)
    model = quiet_fit(SphericalKMeans(12, init=init, max_iter=10), Xd)
    np.testing.assert_allclose(model.cluster_centers_, expected.cluster_centers_, atol=1e-6)
    np.testing.assert_array_equal(model.labels_.compute(), expected.labels_)


@pytest.mark.slow
def test_sinkhorn_kmeans_on_a_cluster(dask_client, digits):
    X, _ = digits
    Xd = da.from_array(X, chunks=(450, 64)).persist()
    kw = {"n_clusters": 5, "init": X[:5], "max_iter": 2, "spherical": True, "eps": 0.2}
    balanced = quiet_fit(SinkhornKMeans(**kw), Xd)
    np.testing.assert_allclose(
        balanced.cluster_centers_,
        quiet_fit(SinkhornKMeans(**kw), X).cluster_centers_,
        rtol=1e-4,
        atol=1e-4,
    )
    assert np.bincount(balanced.labels_.compute()).tolist() == [360, 360, 359, 359, 359]


@pytest.mark.parametrize(
    "make", [lambda: SphericalKMeans(3, random_state=0), lambda: SinkhornKMeans(3, random_state=0)]
)
def test_dask_predict_with_other_feature_count_is_an_error(make):
    da = pytest.importorskip("dask.array")
    rng = np.random.default_rng(0)
    model = make().fit(da.from_array(rng.standard_normal((60, 4)), chunks=(20, 4)))
    assert model.n_features_in_ == 4
    with pytest.raises(ValueError, match=r"X has 5 features, but .* is expecting 4"):
        model.predict(da.from_array(rng.standard_normal((30, 5)), chunks=(10, 5)))
