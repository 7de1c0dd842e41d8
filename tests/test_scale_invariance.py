"""Scale invariance, finite posteriors and float32 (issue 16, items 1, 2 and 5).

The scale-invariant estimators fit in the normalised frame of ``clusterlab._scaling``:
``fit(X * s)`` must give ``fit(X)``'s partition for s from 1e-200 to 1e200, with the
fitted attributes mapped back (points times s, squared lengths times s**2, log
densities shifted by the log-Jacobian), no NaN and no warning.
"""

import math
import warnings

import numpy as np
import pytest
from clusterlab.solvers.gaussian import MixtureParams, log_gaussian, relative_log_joint
from clusterlab.solvers.gmm import fit_mixture
from clusterlab.solvers.seeded_kmeans import seeded_kmeans
from scipy.special import logsumexp
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score

from clusterlab._scaling import normalise_scale
from clusterlab.balanced import SinkhornKMeans
from clusterlab.mixture import SemiSupervisedGMM, SemiSupervisedKMeans
from clusterlab.sdp import ILASDP, SDPKMeans
from clusterlab.transductive import LaplacianKMeans, TransductiveFewShot

X0, Y0 = make_blobs(60, 4, centers=3, random_state=0)
N, D = X0.shape

SCALES = [1e-200, 1e-160, 1e-8, 1e8, 1e160, 1e200, 2.0**-600]
POWER_OF_TWO = 2.0**-600  # the frame is exact: bitwise the same fit

# components axis of each attribute (None: a scalar or a history); power of the scale
#   "point": x s (and the permutation); integers: x s**power; "loglik"/"objective": shifts
_JACOBIAN_FULL = D + D * (D + 1)  # mean + full covariance parameters of one component


def _gmm_objective_shift(model, s):
    return -(N * D + model.n_components_history_ * _JACOBIAN_FULL) * math.log(s)


ESTIMATORS = {
    "SinkhornKMeans": (
        lambda: SinkhornKMeans(3, random_state=0),
        {
            "cluster_centers_": (0, "point"),
            "objective_": (None, 2),
            "objective_history_": (None, 2),
        },
    ),
    "LaplacianKMeans": (
        lambda: LaplacianKMeans(3, random_state=0),
        {"cluster_centers_": (0, "point"), "assignments_": (1, 0), "energy_history_": (None, 0)},
    ),
    "SemiSupervisedKMeans": (
        lambda: SemiSupervisedKMeans(3, n_init=3, random_state=0),
        {"cluster_centers_": (0, "point"), "inertia_": (None, 2)},
    ),
    "SemiSupervisedGMM": (
        lambda: SemiSupervisedGMM(3, random_state=0),
        {
            "means_": (0, "point"),
            "covariances_": (0, 2),
            "precisions_cholesky_": (0, -1),
            "weights_": (0, 0),
            "responsibilities_": (1, 0),
            "log_likelihood_history_": (None, lambda m, s: -N * D * math.log(s)),
            "objective_history_": (None, _gmm_objective_shift),
        },
    ),
    "SDPKMeans": (
        lambda: SDPKMeans(3, solver="lowrank", random_state=0),
        {"cluster_centers_": (0, "point"), "inertia_": (None, 2), "objective_": (None, 2)},
    ),
    "ILASDP": (
        lambda: ILASDP(3, solver="lowrank", random_state=0),
        {
            "means_": (0, "point"),
            "covariances_": (0, 2),
            "memberships_": (1, 0),
            "weights_": (0, 0),
            "objective_history_": (None, lambda m, s: N * D * math.log(s)),
        },
    ),
}


def _fit_quietly(make, X):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = make().fit(X)
    assert not caught, [f"{w.category.__name__}: {w.message}" for w in caught]
    return model


def _matching(reference, labels):
    """Component of ``labels`` matching each component of ``reference``."""
    K = reference.max() + 1
    return np.array([np.bincount(labels[reference == k], minlength=K).argmax() for k in range(K)])


def _assert_scaled(actual, reference, s, power, name):
    """``actual == reference * s**power`` where that is a normal float; inf where it
    overflows; (nearly) 0 where it underflows."""
    actual = np.asarray(actual, dtype=np.float64)
    with np.errstate(over="ignore", under="ignore"):
        expected = np.asarray(reference, dtype=np.float64) * np.float64(s) ** power
        expected = np.asarray(expected, dtype=np.float64)
    normal = np.isfinite(expected) & ((np.abs(expected) > 1e-290) | (expected == 0))
    top = np.abs(expected[normal]).max(initial=0.0)
    np.testing.assert_allclose(
        actual[normal], expected[normal], rtol=1e-5, atol=1e-7 * top, err_msg=name
    )
    big = ~np.isfinite(expected)
    assert np.all(np.sign(actual[big]) * np.abs(actual[big]) == expected[big]), name
    tiny = ~normal & ~big
    assert np.all(np.abs(actual[tiny]) <= 1e-280), name


def _assert_no_nan(model):
    for name, value in vars(model).items():
        if isinstance(value, float | np.ndarray) and np.asarray(value).dtype.kind == "f":
            assert not np.any(np.isnan(value)), name


@pytest.fixture(scope="module")
def references():
    return {name: _fit_quietly(make, X0) for name, (make, _) in ESTIMATORS.items()}


@pytest.mark.parametrize("s", SCALES, ids=lambda s: f"{s:g}")
@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_fit_of_scaled_data_is_the_fit_scaled(name, s, references):
    make, attributes = ESTIMATORS[name]
    reference = references[name]
    model = _fit_quietly(make, X0 * s)
    if s == POWER_OF_TWO:
        np.testing.assert_array_equal(model.labels_, reference.labels_)
    assert adjusted_rand_score(reference.labels_, model.labels_) == 1.0
    order = _matching(reference.labels_, model.labels_)
    _assert_no_nan(model)
    for attribute, (axis, power) in attributes.items():
        value = np.asarray(getattr(model, attribute), dtype=np.float64)
        base = np.asarray(getattr(reference, attribute), dtype=np.float64)
        if axis is not None:
            value = np.take(value, order, axis=axis)
        elif value.ndim == 1 and s != POWER_OF_TWO:
            # a history: a stopping test within rounding of its threshold may stop one
            # step apart when the frame differs by more than a power of two
            value, base = value[: len(base)], base[: len(value)]
        if power == "point":
            _assert_scaled(value, base, s, 1, attribute)
        elif callable(power):
            shift = np.broadcast_to(power(model, s), np.shape(getattr(model, attribute)))
            shift = shift[: len(value)]
            np.testing.assert_allclose(value, base + shift, rtol=1e-6, err_msg=attribute)
        else:
            _assert_scaled(value, base, s, power, attribute)
    # new data go through the same frame
    np.testing.assert_array_equal(order[reference.predict(X0)], model.predict(X0 * s))


@pytest.mark.slow
@pytest.mark.parametrize("s", [1e-200, 1e-160, 1e160, 1e200], ids=lambda s: f"{s:g}")
@pytest.mark.parametrize(
    "make",
    [
        lambda: SDPKMeans(3, solver="cvxpy", random_state=0),
        lambda: ILASDP(3, solver="cvxpy", max_iter=3, random_state=0),
        lambda: ILASDP(3, covariance_type="diag", solver="lowrank", random_state=0),
        lambda: SemiSupervisedGMM(3, covariance_type="spherical", random_state=0),
        lambda: SinkhornKMeans(3, spherical=True, random_state=0),
    ],
    ids=[
        "SDPKMeans-cvxpy",
        "ILASDP-cvxpy",
        "ILASDP-diag",
        "GMM-spherical",
        "SinkhornKMeans-spherical",
    ],
)
def test_other_solvers_and_settings_at_any_scale(make, s):
    reference = _fit_quietly(make, X0 + 20.0)  # spherical: away from the origin
    model = _fit_quietly(make, (X0 + 20.0) * s)
    assert adjusted_rand_score(reference.labels_, model.labels_) == 1.0
    _assert_no_nan(model)


@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_large_offset_is_centred_away(name, references):
    # the spread (about 10) survives in float64 next to an offset of 1e6; expanded
    # squared distances around the offset would lose it, the centred frame does not
    make, _ = ESTIMATORS[name]
    model = _fit_quietly(make, X0 + 1e6)
    assert adjusted_rand_score(references[name].labels_, model.labels_) == 1.0


def test_normalised_frame():
    Z, frame = normalise_scale(X0)
    assert 0.5 <= np.abs(Z).max() < 1
    np.testing.assert_allclose(frame.points(Z), X0, rtol=0, atol=1e-14 * np.abs(X0).max())
    for k in (-1000, -3, 5, 900):  # a power of two: bitwise the same frame
        Zk, frame_k = normalise_scale(np.ldexp(X0, k))
        np.testing.assert_array_equal(Zk, Z)
        assert frame_k.exponent == frame.exponent + k
        assert frame_k.log_scale == pytest.approx(frame.log_scale + k * math.log(2))
    # a constant feature (however large its value) becomes exact zeros
    X = X0.copy()
    X[:, 1] = 1e200
    Z, frame = normalise_scale(X)
    assert np.all(Z[:, 1] == 0)
    assert frame.points(Z)[0, 1] == 1e200
    Z, frame = normalise_scale(np.full((5, 3), 1e200))
    assert np.all(Z == 0)
    assert frame.inner == 0
    # squared lengths leave the float range honestly
    assert normalise_scale(X0 * 1e200)[1].lengths(1.0, 2) == np.inf


def test_gmm_histories_match_the_unnormalised_solver():
    """The log-Jacobian shifts against the solver run on the raw data (the old path)."""
    X = X0 * 3.0  # not a power of two: the frame differs from X by more than an offset
    model = _fit_quietly(lambda: SemiSupervisedGMM(3, split_merge=False, random_state=0), X)
    rng = np.random.default_rng(np.random.RandomState(0).randint(2**31))
    clamp = np.full(N, -1)
    init = seeded_kmeans(X, clamp, 3, rng=rng, n_init=1)
    # the default prior computed on the raw data: the frame's prior in X's units
    prior = model._prior(X, init.labels)
    raw = fit_mixture(
        X,
        clamp,
        init.labels,
        np.full(3, -1),
        prior,
        moves=None,
        hard=False,
        max_iter=model.max_iter,
        tol=model.tol,
        rng=rng,
    )
    m = min(len(raw.loglik_history), len(model.log_likelihood_history_))
    np.testing.assert_allclose(model.log_likelihood_history_[:m], raw.loglik_history[:m], rtol=1e-7)
    np.testing.assert_allclose(model.objective_history_[:m], raw.objective_history[:m], rtol=1e-7)


@pytest.mark.parametrize("s", [1e-200, 1e-160, 1e160, 1e200], ids=lambda s: f"{s:g}")
@pytest.mark.parametrize("preprocessing", ["cl2n", "l2n"])
def test_fewshot_tasks_at_any_scale(preprocessing, s):
    support, labels, queries = _tasks()
    model = TransductiveFewShot(preprocessing=preprocessing)
    reference = model.predict_tasks(support, labels, queries)
    assert np.mean(reference == np.repeat(np.arange(3), 6)[None]) > 0.9
    np.testing.assert_array_equal(model.predict_tasks(support * s, labels, queries * s), reference)
    base_mean = support.reshape(-1, support.shape[2]).mean(axis=0)
    with_base = TransductiveFewShot(preprocessing=preprocessing, base_mean=base_mean)
    np.testing.assert_array_equal(
        TransductiveFewShot(preprocessing=preprocessing, base_mean=base_mean * s).predict_tasks(
            support * s, labels, queries * s
        ),
        with_base.predict_tasks(support, labels, queries),
    )
    proba = model.fit(support[0] * s, labels[0]).predict_proba(queries[0] * s)
    np.testing.assert_allclose(
        proba, model.fit(support[0], labels[0]).predict_proba(queries[0]), rtol=1e-6, atol=1e-9
    )


@pytest.mark.parametrize("s", [1e-200, 1e-160, 1e160, 1e200], ids=lambda s: f"{s:g}")
def test_fewshot_without_preprocessing_refuses_out_of_range_squares(s):
    # raw squared distances are the costs (lam is in their units): rescaling would change
    # the model, so squares out of the float range are refused, naming the magnitude
    support, labels, queries = _tasks()
    with pytest.raises(ValueError, match=r"magnitude about .*(over|under)flow.*l2n"):
        TransductiveFewShot(preprocessing=None).predict_tasks(support * s, labels, queries * s)


def _tasks(n_tasks=4, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_tasks, 3, 8)) * 3
    support = np.repeat(centres, 2, axis=1) + rng.normal(size=(n_tasks, 6, 8))
    queries = np.repeat(centres, 6, axis=1) + rng.normal(size=(n_tasks, 18, 8))
    labels = np.tile(np.repeat(np.arange(3), 2), (n_tasks, 1))
    return support, labels, queries


# -- item 2: finite posteriors for any finite input ------------------------------------

FAR = np.vstack(
    [
        np.full((1, 4), 1e200),
        np.full((1, 4), -1e200),
        [[1e308, -1e308, 0.0, 1.0]],
        [[0.0, 0.0, 0.0, 1e-300]],
    ]
)


@pytest.fixture(scope="module", params=["SemiSupervisedGMM", "ILASDP"])
def mixture(request):
    make = {
        "SemiSupervisedGMM": lambda: SemiSupervisedGMM(3, random_state=0),
        "ILASDP": lambda: ILASDP(3, solver="lowrank", random_state=0),
    }[request.param]
    return _fit_quietly(make, X0)


def test_probabilities_are_finite_for_any_finite_input(mixture):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        proba = mixture.predict_proba(np.vstack([FAR, X0]))
        labels = mixture.predict(FAR)
    assert np.all(np.isfinite(proba))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)
    # far along u, -q_k / 2 is dominated by -t^2 u' Sigma_k^-1 u / 2: the component of the
    # smallest u' Sigma_k^-1 u takes all the mass (an independent, closed-form reference)
    covariances = mixture.covariances_
    for row, x in enumerate(FAR[:3]):
        u = x / np.abs(x).max()
        a = np.einsum("i,kij,j->k", u, np.linalg.inv(covariances), u)
        assert proba[row, np.argmin(a)] == 1.0
        assert labels[row] == np.argmin(a)  # no labeled classes: labels are components
    # near the data the ordinary computation stands
    np.testing.assert_array_equal(proba[len(FAR) :].argmax(axis=1), mixture.predict(X0))


def test_gmm_score_samples_of_far_points():
    model = _fit_quietly(lambda: SemiSupervisedGMM(3, random_state=0), X0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        density = model.score_samples(np.vstack([FAR, X0[:3]]))
    assert density[0] == -np.inf  # about -1e400: below the float range
    assert np.all(np.isfinite(density[3:]))
    # a reference: sklearn-style log-sum-exp of log N with scipy
    from scipy.stats import multivariate_normal

    joint = np.column_stack(
        [
            np.log(w) + multivariate_normal(m, c).logpdf(X0[:3])
            for w, m, c in zip(model.weights_, model.means_, model.covariances_, strict=True)
        ]
    )
    np.testing.assert_allclose(density[len(FAR) :], logsumexp(joint, axis=1), rtol=1e-9)


@pytest.mark.parametrize("covariance_type", ["full", "diag", "spherical"])
def test_relative_log_joint_matches_the_ordinary_one_where_both_work(covariance_type):
    rng = np.random.default_rng(1)
    K, d = 3, 4
    means = rng.normal(size=(K, d))
    covariances = {
        "full": np.eye(d) + 0.1 * np.ones((K, d, d)),
        "diag": rng.uniform(0.5, 2, (K, d)),
        "spherical": rng.uniform(0.5, 2, K),
    }[covariance_type]
    params = MixtureParams(np.full(K, 1 / 3), means, covariances, covariance_type)
    X = rng.normal(size=(20, d)) * 1e3
    relative, reference = relative_log_joint(X, params, np.log(params.weights))
    expected = log_gaussian(X, params, np.log(params.weights))
    np.testing.assert_allclose(relative + reference[:, None], expected, rtol=1e-9)


# -- item 5: float32 stays float32 --------------------------------------------------------

FLOAT32_OUTPUTS = {
    "SemiSupervisedGMM": (
        lambda: SemiSupervisedGMM(3, random_state=0),
        ["weights_", "means_", "covariances_", "precisions_cholesky_", "responsibilities_"],
        ["predict_proba", "score_samples"],
    ),
    "SDPKMeans": (
        lambda: SDPKMeans(3, solver="lowrank", random_state=0),
        ["cluster_centers_", "membership_factor_"],
        [],
    ),
    "ILASDP": (
        lambda: ILASDP(3, solver="lowrank", random_state=0),
        ["means_", "covariances_", "memberships_", "weights_"],
        ["predict_proba"],
    ),
    "SemiSupervisedKMeans": (
        lambda: SemiSupervisedKMeans(3, n_init=2, random_state=0),
        ["cluster_centers_"],
        [],
    ),
}


@pytest.mark.parametrize("name", list(FLOAT32_OUTPUTS))
def test_float32_stays_float32(name):
    make, attributes, methods = FLOAT32_OUTPUTS[name]
    X32 = X0.astype(np.float32)
    model = _fit_quietly(make, X32)
    reference = _fit_quietly(make, X0)
    for attribute in attributes:
        assert getattr(model, attribute).dtype == np.float32, attribute
    for method in methods:
        out = getattr(model, method)(X32)
        assert out.dtype == np.float32, method
        np.testing.assert_allclose(out, getattr(reference, method)(X0), rtol=1e-3, atol=1e-4)
    assert adjusted_rand_score(model.labels_, reference.labels_) == 1.0


def test_fewshot_probabilities_stay_float32():
    support, labels, queries = _tasks()
    model = TransductiveFewShot()
    proba, _ = model.predict_proba_tasks(
        support.astype(np.float32), labels, queries.astype(np.float32)
    )
    assert proba.dtype == np.float32
    single = model.fit(support[0].astype(np.float32), labels[0]).predict_proba(
        queries[0].astype(np.float32)
    )
    assert single.dtype == np.float32
    np.testing.assert_allclose(
        single, model.fit(support[0], labels[0]).predict_proba(queries[0]), atol=1e-4
    )


# -- other array backends: the frame is applied in the input's namespace ----------------


def test_far_rows_on_other_backends(other_backend):
    model = _fit_quietly(lambda: SemiSupervisedGMM(3, random_state=0), X0)
    X = np.vstack([FAR, X0[:5]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        proba = other_backend.to_numpy(model.predict_proba(other_backend.asarray(X)))
        density = other_backend.to_numpy(model.score_samples(other_backend.asarray(X)))
    np.testing.assert_allclose(proba, model.predict_proba(X), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(density, model.score_samples(X), rtol=1e-9)


@pytest.mark.parametrize("s", [1e-200, 1e200], ids=lambda s: f"{s:g}")
def test_scaled_models_predict_other_backends(other_backend, s):
    for make in (
        lambda: SemiSupervisedKMeans(3, n_init=2, random_state=0),
        lambda: LaplacianKMeans(3, random_state=0),
    ):
        model = _fit_quietly(make, X0 * s)
        labels = other_backend.to_numpy(model.predict(other_backend.asarray(X0 * s)))
        np.testing.assert_array_equal(labels, model.predict(X0 * s))
    support, labels, queries = _tasks(n_tasks=2)
    model = TransductiveFewShot()
    found = model.predict_tasks(
        other_backend.asarray(support * s), labels, other_backend.asarray(queries * s)
    )
    np.testing.assert_array_equal(np.asarray(found), model.predict_tasks(support, labels, queries))
