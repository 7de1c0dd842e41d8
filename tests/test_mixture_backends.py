"""SemiSupervisedGMM and SemiSupervisedKMeans predict and score arrays of any library.

A model fitted on NumPy takes PyTorch (CPU, CUDA), CuPy and array_api_strict arrays in
predict, predict_proba, score_samples and score, answers with arrays of the same library
on the same device, and agrees with its NumPy path. fit copies such arrays to the host.
"""

import copy
import pickle

import numpy as np
import pytest
from clusterlab.solvers._backend import get_namespace
from clusterlab.solvers.sdp.peng_wei import nearest_centre
from sklearn.base import clone

from clusterlab.mixture import SemiSupervisedGMM, SemiSupervisedKMeans

COVARIANCE_TYPES = ["full", "diag", "spherical"]
DTYPES = [np.float32, np.float64]
# predict_proba: absolute; score_samples: relative
PROBA_ATOL = {np.float32: 1e-4, np.float64: 1e-8}
DENSITY_RTOL = {np.float32: 1e-4, np.float64: 1e-8}


def _blobs(seed=0, n=80, d=5):
    rng = np.random.default_rng(seed)
    centres = 4.0 * rng.standard_normal((4, d))
    scales = rng.uniform(0.5, 1.5, (4, d))
    X = np.vstack(
        [c + s * rng.standard_normal((n, d)) for c, s in zip(centres, scales, strict=True)]
    )
    y = np.full(4 * n, -1)
    y[: n // 2] = 2
    y[n : n + n // 2] = 5
    return X, y


_MODELS = {}


def _gmm(covariance_type):
    """One fitted model per covariance type for the whole module (fits are the slow part)."""
    if covariance_type not in _MODELS:
        X, y = _blobs()
        _MODELS[covariance_type] = SemiSupervisedGMM(
            3, covariance_type=covariance_type, random_state=0
        ).fit(X, y)
    return copy.deepcopy(_MODELS[covariance_type])


def _new_points(d=5, n=300, seed=1):
    """Points around and between the blobs, a few far out (tiny densities)."""
    rng = np.random.default_rng(seed)
    X = 5.0 * rng.standard_normal((n, d))
    X[:10] *= 6.0
    return X


def _namespace_dtype(x, name):
    xp = get_namespace(x)
    return x.dtype == getattr(xp, name)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_gmm_predictions_match_numpy(other_backend, covariance_type, dtype):
    model = _gmm(covariance_type)
    X = _new_points().astype(dtype)
    Xb = other_backend.asarray(X)
    expected_proba = model.predict_proba(X)
    # the points must exercise soft posteriors, not only 0/1
    assert np.sum((expected_proba > 0.01) & (expected_proba < 0.99)) > 20

    labels = model.predict(Xb)
    assert other_backend.is_own(labels)
    assert _namespace_dtype(labels, "int64")
    np.testing.assert_array_equal(other_backend.to_numpy(labels), model.predict(X))

    proba = model.predict_proba(Xb)
    assert other_backend.is_own(proba)
    assert tuple(proba.shape) == expected_proba.shape
    assert _namespace_dtype(proba, "float32" if dtype == np.float32 else "float64")
    np.testing.assert_allclose(
        other_backend.to_numpy(proba), expected_proba, rtol=0, atol=PROBA_ATOL[dtype]
    )

    density = model.score_samples(Xb)
    assert other_backend.is_own(density)
    assert _namespace_dtype(density, "float32" if dtype == np.float32 else "float64")
    expected_density = model.score_samples(X)
    np.testing.assert_allclose(
        other_backend.to_numpy(density), expected_density, rtol=DENSITY_RTOL[dtype]
    )

    score = model.score(Xb)
    assert isinstance(score, float)
    assert score == pytest.approx(model.score(X), rel=DENSITY_RTOL[dtype])


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_predictions_on_other_arrays_write_no_state(other_backend, covariance_type):
    X_train, y = _blobs()
    X = _new_points()
    for model in (_gmm(covariance_type), SemiSupervisedKMeans(4, random_state=0).fit(X_train, y)):
        before = dict(model.__dict__)
        for dtype in DTYPES:
            Xb = other_backend.asarray(X.astype(dtype))
            model.predict(Xb)
            if isinstance(model, SemiSupervisedGMM):
                model.predict_proba(Xb)
                model.score_samples(Xb)
                model.score(Xb)
        assert model.__dict__.keys() == before.keys()
        assert all(model.__dict__[key] is value for key, value in before.items())


def test_numpy_input_keeps_the_numpy_path():
    model = _gmm("full")
    X = _new_points()
    model.predict_proba(X)
    model.predict(X.astype(np.float32))
    # float32 stays float32 on NumPy as on the other backends (issue 16)
    assert model.predict_proba(X.astype(np.float32)).dtype == np.float32
    assert model.predict_proba(X).dtype == np.float64


def test_pickle_clone_and_refit_after_a_torch_predict():
    torch = pytest.importorskip("torch")
    X_train, y = _blobs()
    model = _gmm("full")
    X = _new_points()
    params = model.get_params()
    expected = model.predict(torch.as_tensor(X)).numpy()

    restored = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(restored.predict(torch.as_tensor(X)).numpy(), expected)
    np.testing.assert_array_equal(restored.predict(X), expected)
    assert clone(model).get_params() == params
    assert model.get_params() == params

    model.fit(X_train, y)
    np.testing.assert_array_equal(model.predict(torch.as_tensor(X)).numpy(), expected)

    kmeans = SemiSupervisedKMeans(4, random_state=0).fit(X_train, y)
    kmeans.predict(torch.as_tensor(X))
    restored = pickle.loads(pickle.dumps(kmeans))
    np.testing.assert_array_equal(restored.predict(X), kmeans.predict(X))


@pytest.mark.parametrize("dtype", DTYPES)
def test_kmeans_predict_matches_numpy(other_backend, dtype):
    X_train, y = _blobs()
    model = SemiSupervisedKMeans(4, random_state=0).fit(X_train, y)
    X = _new_points().astype(dtype)
    labels = model.predict(other_backend.asarray(X))
    assert other_backend.is_own(labels)
    assert _namespace_dtype(labels, "int64")
    expected = model.predict(X)
    assert len(np.unique(expected)) == 4
    np.testing.assert_array_equal(other_backend.to_numpy(labels), expected)


@pytest.mark.parametrize(
    "make",
    [lambda: SemiSupervisedKMeans(4, random_state=0), lambda: SemiSupervisedGMM(3, random_state=0)],
)
def test_fit_copies_other_arrays_to_the_host(other_backend, make):
    X, y = _blobs()
    on_host = make().fit(X, y)
    model = make().fit(other_backend.asarray(X), y)
    np.testing.assert_array_equal(model.labels_, on_host.labels_)
    assert isinstance(model.labels_, np.ndarray)


def test_bad_input_on_other_backends(other_backend):
    model = _gmm("diag")
    kmeans = SemiSupervisedKMeans(4, random_state=0).fit(*_blobs())
    X = _new_points()
    for method in (
        model.predict,
        model.predict_proba,
        model.score_samples,
        model.score,
        kmeans.predict,
    ):
        with pytest.raises(ValueError, match=r"X has 4 features, but .* expecting 5"):
            method(other_backend.asarray(X[:, :4]))
        bad = X.copy()
        bad[3, 2] = np.nan
        with pytest.raises(ValueError, match="NaN"):
            method(other_backend.asarray(bad))


def test_score_samples_is_differentiable_on_torch():
    """No in-place update on the input's graph: the gradient of the log density is
    ``-sum_k r_k Sigma_k^{-1} (x - mu_k)``."""
    torch = pytest.importorskip("torch")
    model = _gmm("full")
    X = _new_points(n=20)
    Xt = torch.tensor(X, requires_grad=True)
    model.score_samples(Xt).sum().backward()
    resp = model.predict_proba(X)
    precisions = np.linalg.inv(model.covariances_)
    expected = -np.einsum("nk,kab,nkb->na", resp, precisions, X[:, None, :] - model.means_[None])
    np.testing.assert_allclose(Xt.grad.numpy(), expected, rtol=1e-6, atol=1e-10)


def test_nearest_centre_is_the_nearest():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((500, 3))
    centres = rng.standard_normal((6, 3))
    labels = nearest_centre(X, centres)
    assert labels.dtype == np.int64
    brute = np.argmin(((X[:, None, :] - centres[None]) ** 2).sum(axis=2), axis=1)
    np.testing.assert_array_equal(labels, brute)
