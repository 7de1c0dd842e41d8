"""SinkhornKMeans on PyTorch, CuPy and array_api_strict arrays, against the NumPy path."""

import numpy as np
import pytest
from clusterlab.solvers import balanced_kmeans as bk
from clusterlab.solvers._backend import device, get_namespace, to_numpy
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score

from clusterlab import SinkhornKMeans

# relative agreement of the centres with the NumPy fit, by dtype
RTOL = {np.float32: 1e-4, np.float64: 1e-8}
# absolute agreement of the soft codes (entries in [0, 1])
CODES_ATOL = {np.float32: 1e-5, np.float64: 1e-9}


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """These problems are tiny: on a busy machine, PyTorch's intra-op threads only
    contend with each other (and with the other test processes)."""
    try:
        import torch
    except ImportError:
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(params=[np.float32, np.float64], ids=["float32", "float64"])
def dtype(request):
    return request.param


def _blobs(dtype, n_samples=160, seed=0, offset=20.0):
    X, y = make_blobs(
        n_samples=n_samples, centers=4, n_features=3, cluster_std=1.5, random_state=seed
    )
    return (X + offset).astype(dtype), y


def _params(dtype, init, **extra):
    # tight transports: the backends check their marginal error every few iterations,
    # NumPy after every one, so a loose tolerance would stop them at different plans
    params = dict(
        n_clusters=4,
        init=init,
        eps=0.3,
        sinkhorn_max_iter=5000,
        sinkhorn_tol=1e-6 if dtype == np.float32 else 1e-10,
    )
    params.update(extra)
    return params


def _assert_centres_close(centres, reference, dtype):
    rtol = RTOL[dtype]
    np.testing.assert_allclose(centres, reference, rtol=rtol, atol=rtol * np.max(np.abs(reference)))


@pytest.mark.parametrize("spherical", [False, True], ids=["euclidean", "spherical"])
def test_fit_equals_the_numpy_fit(other_backend, dtype, spherical):
    # spherical: blobs around the origin, so that the cosines tell them apart
    X, _ = _blobs(dtype, offset=0.0 if spherical else 20.0)
    init = X[[0, 1, 2, 3]]
    reference = SinkhornKMeans(**_params(dtype, init, spherical=spherical)).fit(X)
    Xb = other_backend.asarray(X)
    model = SinkhornKMeans(**_params(dtype, init, spherical=spherical)).fit(Xb)

    assert other_backend.is_own(model.cluster_centers_)
    assert other_backend.is_own(model.labels_)
    assert model.cluster_centers_.dtype == Xb.dtype
    assert to_numpy(model.cluster_centers_).dtype == dtype
    assert to_numpy(model.labels_).dtype == np.int64
    np.testing.assert_array_equal(to_numpy(model.labels_), reference.labels_)
    _assert_centres_close(to_numpy(model.cluster_centers_), reference.cluster_centers_, dtype)

    assert type(model.objective_) is float
    assert type(model.n_iter_) is int
    assert type(model.converged_) is bool
    assert isinstance(model.objective_history_, np.ndarray)
    assert model.n_iter_ == reference.n_iter_
    assert model.converged_ == reference.converged_
    assert model.n_features_in_ == 3
    np.testing.assert_allclose(
        model.objective_history_, reference.objective_history_, rtol=RTOL[dtype]
    )
    assert model.objective_ == model.objective_history_[-1]


def test_init_given_as_a_backend_array(other_backend, dtype):
    X, _ = _blobs(dtype, seed=1)
    reference = SinkhornKMeans(**_params(dtype, X[[0, 1, 2, 3]])).fit(X)
    init = other_backend.asarray(X[[0, 1, 2, 3]])
    model = SinkhornKMeans(**_params(dtype, init)).fit(other_backend.asarray(X))
    np.testing.assert_array_equal(to_numpy(model.labels_), reference.labels_)
    _assert_centres_close(to_numpy(model.cluster_centers_), reference.cluster_centers_, dtype)
    # a backend init also serves a NumPy fit
    from_numpy = SinkhornKMeans(**_params(dtype, init)).fit(X)
    np.testing.assert_array_equal(from_numpy.cluster_centers_, reference.cluster_centers_)


@pytest.mark.parametrize("spherical", [False, True], ids=["euclidean", "spherical"])
def test_predict_and_transform_equal_numpy(other_backend, dtype, spherical):
    offset = 0.0 if spherical else 20.0
    X, _ = _blobs(dtype, offset=offset)
    batch, _ = _blobs(dtype, n_samples=50, seed=0, offset=offset)
    batch = batch[::-1] + dtype(0.3)  # other samples than the training ones
    init = X[[0, 1, 2, 3]]
    reference = SinkhornKMeans(**_params(dtype, init, spherical=spherical)).fit(X)
    model = SinkhornKMeans(**_params(dtype, init, spherical=spherical))
    model.fit(other_backend.asarray(X))
    batch_b = other_backend.asarray(batch)

    for balanced in (True, False):
        labels = model.predict(batch_b, balanced=balanced)
        assert other_backend.is_own(labels)
        np.testing.assert_array_equal(to_numpy(labels), reference.predict(batch, balanced))
    codes = model.transform(batch_b)
    assert other_backend.is_own(codes)
    assert codes.dtype == batch_b.dtype
    np.testing.assert_allclose(
        to_numpy(codes), reference.transform(batch), rtol=0, atol=CODES_ATOL[dtype]
    )
    np.testing.assert_allclose(to_numpy(codes).sum(axis=1), 1.0, rtol=1e-5)
    fit_labels = SinkhornKMeans(**_params(dtype, init, spherical=spherical)).fit_predict(
        other_backend.asarray(X)
    )
    assert other_backend.is_own(fit_labels)
    np.testing.assert_array_equal(to_numpy(fit_labels), reference.labels_)


def test_predicting_on_another_namespace_copies_the_centres(other_backend, dtype):
    X, _ = _blobs(dtype)
    batch = X[::3] - dtype(0.2)
    init = X[[0, 1, 2, 3]]
    on_backend = SinkhornKMeans(**_params(dtype, init)).fit(other_backend.asarray(X))
    on_numpy = SinkhornKMeans(**_params(dtype, init)).fit(X)

    # fitted on the backend, asked about NumPy arrays: NumPy answers
    labels = on_backend.predict(batch)
    assert isinstance(labels, np.ndarray)
    same_batch_on_backend = on_backend.predict(other_backend.asarray(batch))
    np.testing.assert_array_equal(labels, to_numpy(same_batch_on_backend))
    np.testing.assert_array_equal(labels, on_numpy.predict(batch))
    codes = on_backend.transform(batch)
    assert isinstance(codes, np.ndarray)
    np.testing.assert_allclose(codes, on_numpy.transform(batch), rtol=0, atol=CODES_ATOL[dtype])

    # fitted on NumPy, asked about backend arrays: the backend answers, on its device
    batch_b = other_backend.asarray(batch)
    for balanced in (True, False):
        labels = on_numpy.predict(batch_b, balanced=balanced)
        assert other_backend.is_own(labels)
        np.testing.assert_array_equal(to_numpy(labels), on_numpy.predict(batch, balanced))
    codes = on_numpy.transform(batch_b)
    assert other_backend.is_own(codes)
    np.testing.assert_allclose(
        to_numpy(codes), on_numpy.transform(batch), rtol=0, atol=CODES_ATOL[dtype]
    )
    # the fitted attributes stay where they were fitted
    assert isinstance(on_numpy.cluster_centers_, np.ndarray)
    assert other_backend.is_own(on_backend.cluster_centers_)


def test_new_data_is_computed_in_the_fitted_dtype(other_backend):
    X, _ = _blobs(np.float32)
    model = SinkhornKMeans(**_params(np.float32, X[:4])).fit(other_backend.asarray(X))
    codes = model.transform(other_backend.asarray(X.astype(np.float64)))
    assert other_backend.is_own(codes)
    assert to_numpy(codes).dtype == np.float32


@pytest.mark.parametrize("init", ["k-means++", "random"])
def test_device_initialisation_recovers_separated_blobs(other_backend, init):
    X, y = make_blobs(
        n_samples=300,
        centers=[[0, 0], [10, 0], [0, 10], [10, 10], [5, 20]],
        cluster_std=0.6,
        random_state=2,
    )
    model = SinkhornKMeans(n_clusters=5, init=init, eps=0.2, random_state=0)
    model.fit(other_backend.asarray(X.astype(np.float32)))
    assert other_backend.is_own(model.labels_)
    assert adjusted_rand_score(y, to_numpy(model.labels_)) >= 0.9
    assert model.converged_


def test_kmeans_plusplus_draws_one_sample_per_separated_blob(other_backend, dtype):
    centres = np.array([[0, 0, 0], [50, 0, 0], [0, 50, 0], [0, 0, 50]], dtype=float)
    X, y = make_blobs(n_samples=200, centers=centres, cluster_std=0.5, random_state=0)
    X = X.astype(dtype)
    Xb = other_backend.asarray(X)
    for seed in range(3):
        chosen = bk.kmeans_plusplus(Xb, 4, np.random.RandomState(seed))
        assert other_backend.is_own(chosen)
        chosen = to_numpy(chosen)
        assert chosen.shape == (4, 3)
        assert chosen.dtype == dtype
        # every centre is a sample, and each blob holds one of them
        rows = [np.flatnonzero(np.all(c[None, :] == X, axis=1)) for c in chosen]
        assert all(r.size >= 1 for r in rows)
        assert sorted(int(y[r[0]]) for r in rows) == [0, 1, 2, 3]
    # the same random state draws the same centres
    np.testing.assert_array_equal(
        to_numpy(bk.kmeans_plusplus(Xb, 4, np.random.RandomState(7))),
        to_numpy(bk.kmeans_plusplus(Xb, 4, np.random.RandomState(7))),
    )


def test_objective_counts_zero_plan_entries_as_zero_entropy(backend):
    # a plan with exact zeros: 0 log 0 = 0 (no NaN, no warning under filterwarnings=error)
    X = backend.asarray(np.array([[0.0, 0.0], [2.0, 0.0]]))
    centres = backend.asarray(np.array([[0.0, 0.0], [2.0, 1.0]]))
    plan = backend.asarray(np.array([[0.5, 0.0], [0.0, 0.5]]))
    value = bk.objective(X, plan, centres, scale=2.0, eps=0.1)
    # cost 0.5 * 0 + 0.5 * 1; entropy log 2
    expected = 2 * (0.5 - 2 * 2.0 * 0.1 * np.log(2.0))
    assert type(value) is float
    assert value == pytest.approx(expected, rel=1e-12)


def test_single_run_result(other_backend, dtype):
    X, _ = _blobs(dtype)
    X = X - X.mean(axis=0)
    scale = float(np.mean(np.sum(X.astype(np.float64) ** 2, axis=1)))
    Xb = other_backend.asarray(X)
    xp = get_namespace(Xb)
    proportions = xp.asarray(np.full(4, 0.25), device=device(Xb))
    result = bk.single_run(
        Xb,
        Xb[:4, :],
        proportions,
        spherical=False,
        scale=scale,
        eps=0.3,
        max_iter=50,
        tol=1e-6,
        sinkhorn_tol=1e-6,
        sinkhorn_max_iter=5000,
    )
    assert result.converged
    with pytest.raises(AttributeError):
        result.n_iter = 0  # frozen
    assert other_backend.is_own(result.centers)
    assert result.centers.dtype == Xb.dtype
    assert result.objective == result.objective_history[-1]
    assert len(result.objective_history) == result.n_iter
    history = result.objective_history
    assert np.all(np.diff(history) <= 1e-4 * np.abs(history[:-1]))


def test_tensor_with_a_graph_is_fitted_detached():
    torch = pytest.importorskip("torch")
    X, _ = _blobs(np.float64)
    Xt = torch.tensor(X, requires_grad=True)
    model = SinkhornKMeans(**_params(np.float64, X[:4])).fit(Xt)
    assert not model.cluster_centers_.requires_grad
    assert not model.transform(Xt).requires_grad
    assert Xt.grad is None


@pytest.mark.parametrize(
    ("params", "X", "message"),
    [
        ({"n_clusters": 5}, np.zeros((3, 2)), "n_samples=3 should be >= n_clusters=5"),
        ({"n_clusters": 2, "spherical": True}, np.zeros((4, 2)), "all-zero row"),
        ({"n_clusters": 2, "init": np.zeros((3, 2))}, np.eye(4)[:, :2], "init has shape"),
        ({"n_clusters": 2}, np.array([[0.0, np.nan], [1, 1]]), "NaN"),
    ],
)
def test_bad_input(other_backend, params, X, message):
    X = np.asarray(X, dtype=np.float64)
    with pytest.raises(ValueError, match=message):
        SinkhornKMeans(**params).fit(other_backend.asarray(X))


def test_float32_input_whose_squares_overflow_fits(other_backend):
    # squared distances of float32 1e20 overflow float32; the fit runs on X divided by a
    # power of two on X's device (issue 16), and the centres come back in X's units
    X = (np.full((4, 2), 1e20) * [[1], [-1], [1], [-1]]).astype(np.float32)
    model = SinkhornKMeans(n_clusters=2, random_state=0).fit(other_backend.asarray(X))
    labels = np.asarray(to_numpy(model.labels_))
    assert labels[0] == labels[2] != labels[1] == labels[3]
    centers = np.asarray(to_numpy(model.cluster_centers_))
    assert centers.dtype == np.float32
    np.testing.assert_allclose(np.sort(centers[:, 0]), [-1e20, 1e20], rtol=1e-6)


def test_wrong_number_of_features_is_rejected(other_backend):
    X, _ = _blobs(np.float64)
    model = SinkhornKMeans(**_params(np.float64, X[:4])).fit(other_backend.asarray(X))
    for method in (model.predict, model.transform):
        with pytest.raises(
            ValueError, match="X has 2 features, but SinkhornKMeans is expecting 3 features"
        ):
            method(other_backend.asarray(X[:, :2]))
    with pytest.raises(ValueError, match="X has 2 features"):
        model.predict(X[:, :2])  # NumPy input takes scikit-learn's check
