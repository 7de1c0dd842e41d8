"""The GMM solver pieces against slow, obviously-correct NumPy/SciPy references.

Every reference here is written from the formulas (``scipy.stats`` densities, explicit
weighted loops, the NIW MAP formulas of :mod:`clusterlab.solvers.niw`), independently of
the Cholesky/BLAS/Numba code paths it checks.
"""

import warnings

import numba
import numpy as np
import pytest
from clusterlab.solvers import _gmm_kernels, gaussian, gmm, split_merge
from clusterlab.solvers.gaussian import MixtureParams, log_gaussian
from clusterlab.solvers.gmm import component_stats, e_step, fit_mixture, m_step, squares_for
from clusterlab.solvers.niw import NIWPrior, SetStats
from clusterlab.solvers.seeded_kmeans import seeded_kmeans
from clusterlab.solvers.split_merge import (
    MoveConfig,
    SubClusters,
    calibrated_log_alpha,
    labeled_gain_bounds,
    merge_step,
    resolve_log_alpha,
    split_step,
)
from scipy import stats
from scipy.special import logsumexp

COV_TYPES = ["full", "diag", "spherical"]
# (rtol, atol) of a float32 computation against the float64 reference
TOL = {np.float64: (1e-10, 1e-10), np.float32: (1e-4, 1e-3)}


@pytest.fixture(params=["one thread", "parallel"])
def threads(request, monkeypatch):
    """Run the kernels on one thread (small calls) or in parallel (large calls)."""
    limit = 1 << 62 if request.param == "one thread" else 0
    monkeypatch.setattr(_gmm_kernels, "PARALLEL_MIN_WORK", limit)
    return request.param


# -- references -------------------------------------------------------------------------


def _random_params(cov_type, K, d, rng):
    """Weights, means and covariances; full covariances are far from diagonal."""
    weights = rng.dirichlet(np.full(K, 2.0))
    means = 2.0 * rng.standard_normal((K, d))
    if cov_type == "full":
        A = rng.standard_normal((K, d, d))
        covs = A @ np.swapaxes(A, 1, 2) / d + 0.3 * np.eye(d)
    elif cov_type == "diag":
        covs = rng.uniform(0.3, 2.0, size=(K, d))
    else:
        covs = rng.uniform(0.3, 2.0, size=K)
    return MixtureParams(weights, means, covs, cov_type)


def _dense_cov(covariance, cov_type, d):
    if cov_type == "full":
        return covariance
    if cov_type == "diag":
        return np.diag(covariance)
    return covariance * np.eye(d)


def _ref_log_gaussian(X, params):
    X = np.asarray(X, dtype=np.float64)
    d = X.shape[1]
    return np.stack(
        [
            stats.multivariate_normal(
                params.means[k], _dense_cov(params.covariances[k], params.covariance_type, d)
            ).logpdf(X)
            for k in range(params.n_components)
        ],
        axis=1,
    ).reshape(X.shape[0], params.n_components)


def _ref_e_step(X, params, clamp, hard=False):
    """Responsibilities and log-likelihood: softmax (or argmax) of log w + logpdf."""
    with np.errstate(divide="ignore"):
        log_joint = np.log(params.weights) + _ref_log_gaussian(X, params)
    n, K = log_joint.shape
    resp = np.zeros((n, K))
    loglik = 0.0
    for i in range(n):
        if clamp[i] >= 0:
            resp[i, clamp[i]] = 1.0
            loglik += log_joint[i, clamp[i]]
        elif hard:
            resp[i, np.argmax(log_joint[i])] = 1.0
            loglik += log_joint[i].max()
        else:
            total = logsumexp(log_joint[i])
            resp[i] = np.exp(log_joint[i] - total)
            loglik += total
    return resp, loglik, log_joint


def _ref_stats(X, resp, cov_type):
    """Counts, means and scatters by explicit weighted loops."""
    X = np.asarray(X, dtype=np.float64)
    resp = np.asarray(resp, dtype=np.float64)
    n, d = X.shape
    K = resp.shape[1]
    counts, means = np.zeros(K), np.zeros((K, d))
    scatters = np.zeros((K, d, d))
    for k in range(K):
        for i in range(n):
            counts[k] += resp[i, k]
            means[k] += resp[i, k] * X[i]
        if counts[k] > 0:
            means[k] /= counts[k]
        for i in range(n):
            gap = X[i] - means[k]
            scatters[k] += resp[i, k] * np.outer(gap, gap)
    if cov_type != "full":
        scatters = np.diagonal(scatters, axis1=1, axis2=2).copy()
    return counts, means, scatters


def _ref_map(counts, means, scatters, prior):
    """NIW MAP: mu = (N xbar + kappa m) / (N + kappa), Sigma = Psi_N / (nu_N + d + 2)."""
    K, d = means.shape
    out_means = np.zeros((K, d))
    out_covs = []
    for k in range(K):
        N = counts[k]
        out_means[k] = (N * means[k] + prior.kappa * prior.mean) / (N + prior.kappa)
        gap = means[k] - prior.mean
        shrink = prior.kappa * N / (prior.kappa + N)
        if prior.covariance_type == "full":
            psi_n = prior.psi + scatters[k] + shrink * np.outer(gap, gap)
            out_covs.append(psi_n / (prior.nu + N + d + 2))
        elif prior.covariance_type == "diag":  # one 1-D inverse-Wishart per feature
            psi_n = prior.psi + scatters[k] + shrink * gap**2
            out_covs.append(psi_n / (prior.nu + N + 1 + 2))
        else:  # one variance: N d residuals, d mean coordinates
            psi_n = prior.psi + np.sum(scatters[k] + shrink * gap**2)
            out_covs.append(psi_n / (prior.nu + N * d + d + 2))
    return out_means, np.array(out_covs)


def _prior(X, cov_type):
    d = X.shape[1]
    return NIWPrior(
        mean=X.mean(axis=0),
        kappa=1.0,
        nu=d + 3 if cov_type == "full" else 3,
        psi=X.var(axis=0).mean(),
        covariance_type=cov_type,
    )


def _mixture_data(rng, centres, sizes, scale=1.0):
    truth = np.repeat(np.arange(len(sizes)), sizes)
    X = centres[truth] + scale * rng.standard_normal((truth.shape[0], centres.shape[1]))
    return np.ascontiguousarray(X), truth


def _fit_inputs(X, sample_class, K0, rng):
    C = int(sample_class.max()) + 1
    init_labels = seeded_kmeans(X, sample_class, K0, rng=rng).labels
    init_class = np.r_[np.arange(C), -np.ones(K0 - C)].astype(np.int64)
    return init_labels, init_class


# -- log_gaussian -----------------------------------------------------------------------


@pytest.mark.parametrize("blocked", [False, True])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("cov_type", COV_TYPES)
def test_log_gaussian_matches_scipy(cov_type, dtype, blocked, monkeypatch, threads):
    rng = np.random.default_rng(0)
    n, d, K = 300, 5, 4
    params = _random_params(cov_type, K, d, rng)
    if cov_type == "full":  # really non-diagonal
        off = (
            params.covariances
            - np.eye(d) * np.diagonal(params.covariances, axis1=1, axis2=2)[:, None]
        )
        assert np.abs(off).max() > 0.3
    if blocked:  # 64-row BLAS blocks: 5 blocks, the last one partial
        monkeypatch.setattr(gaussian, "_BLOCK_BYTES", 1)
    X = (2.0 * rng.standard_normal((n, d))).astype(dtype)
    expected = _ref_log_gaussian(X, params)
    rtol, atol = TOL[dtype]
    out = log_gaussian(X, params)
    assert out.dtype == np.float64
    assert out.shape == (n, K)
    np.testing.assert_allclose(out, expected, rtol=rtol, atol=atol)
    log_w = np.log(params.weights)
    np.testing.assert_allclose(
        log_gaussian(X, params, log_w), expected + log_w, rtol=rtol, atol=atol
    )


@pytest.mark.parametrize("cov_type", COV_TYPES)
def test_precision_factors_invert_the_covariances(cov_type):
    rng = np.random.default_rng(1)
    d = 4
    params = _random_params(cov_type, 3, d, rng)
    for k in range(3):
        cov = _dense_cov(params.covariances[k], cov_type, d)
        P = _dense_cov(params.precisions_cholesky[k], cov_type, d)
        np.testing.assert_allclose(P @ P.T, np.linalg.inv(cov), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(
            params.log_det_precisions_cholesky[k], -0.5 * np.linalg.slogdet(cov)[1], rtol=1e-12
        )


def test_threads_for_limits_small_calls_and_restores():
    before = numba.get_num_threads()
    with _gmm_kernels.threads_for(10):
        assert numba.get_num_threads() == 1
    assert numba.get_num_threads() == before
    with _gmm_kernels.threads_for(_gmm_kernels.PARALLEL_MIN_WORK):
        assert numba.get_num_threads() == before
    with pytest.raises(ZeroDivisionError), _gmm_kernels.threads_for(10):
        1 / 0  # noqa: B018
    assert numba.get_num_threads() == before


# -- e_step ------------------------------------------------------------------------------


def _e_step_problem(cov_type, dtype, seed=2):
    rng = np.random.default_rng(seed)
    n, d, K = 200, 4, 5
    params = _random_params(cov_type, K, d, rng)
    # samples near the components, so responsibilities are neither uniform nor all 0/1
    X = params.means[rng.integers(0, K, n)] + 1.5 * rng.standard_normal((n, d))
    clamp = np.full(n, -1, dtype=np.int64)
    labeled = rng.choice(n, 40, replace=False)
    clamp[labeled] = rng.integers(0, K, 40)
    return X.astype(dtype), params, clamp


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("cov_type", COV_TYPES)
def test_e_step_soft_matches_reference(cov_type, dtype, threads):
    X, params, clamp = _e_step_problem(cov_type, dtype)
    resp, loglik = e_step(X, params, clamp)
    ref_resp, ref_loglik, _ = _ref_e_step(X, params, clamp)
    assert resp.dtype == dtype
    rtol, atol = TOL[dtype]
    np.testing.assert_allclose(resp, ref_resp, rtol=max(rtol, 1e-6), atol=max(atol, 1e-6) * 0.1)
    np.testing.assert_allclose(resp.sum(axis=1), 1.0, rtol=1e-5 if dtype == np.float32 else 1e-12)
    np.testing.assert_allclose(loglik, ref_loglik, rtol=rtol)
    labeled = np.flatnonzero(clamp >= 0)
    onehot = np.zeros((labeled.shape[0], params.n_components), dtype=dtype)
    onehot[np.arange(labeled.shape[0]), clamp[labeled]] = 1.0
    np.testing.assert_array_equal(resp[labeled], onehot)
    # free rows are really soft somewhere (the test would be weak otherwise)
    free = clamp < 0
    assert ((resp[free] > 0.05) & (resp[free] < 0.95)).any(axis=1).sum() >= 10


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("cov_type", COV_TYPES)
def test_e_step_hard_is_argmax_and_classification_loglik(cov_type, dtype, threads):
    X, params, clamp = _e_step_problem(cov_type, dtype)
    resp, loglik = e_step(X, params, clamp, hard=True)
    ref_resp, ref_loglik, log_joint = _ref_e_step(X, params, clamp, hard=True)
    assert resp.dtype == dtype
    # compare away from near-ties in float32
    top2 = np.sort(log_joint, axis=1)[:, -2:]
    clear = (top2[:, 1] - top2[:, 0] > 1e-3) | (clamp >= 0)
    np.testing.assert_array_equal(resp[clear], ref_resp[clear].astype(dtype))
    assert set(np.unique(resp)) <= {0.0, 1.0}
    np.testing.assert_array_equal(resp.sum(axis=1), 1.0)
    np.testing.assert_allclose(loglik, ref_loglik, rtol=TOL[dtype][0])


def test_e_step_zero_weight_component_gets_no_mass():
    X, params, clamp = _e_step_problem("full", np.float64)
    params = MixtureParams(
        np.r_[0.0, params.weights[1:] / params.weights[1:].sum()],
        params.means,
        params.covariances,
        "full",
    )
    clamp[clamp == 0] = -1  # nobody clamped to the empty component
    resp, loglik = e_step(X, params, clamp)
    ref_resp, ref_loglik, _ = _ref_e_step(X, params, clamp)
    np.testing.assert_array_equal(resp[:, 0], 0.0)
    np.testing.assert_allclose(resp, ref_resp, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(loglik, ref_loglik, rtol=1e-10)


def test_e_step_in_several_row_blocks_matches_reference():
    """600 rows: the exponentials run in blocks of 256 rows, the last one partial."""
    rng = np.random.default_rng(6)
    n, d, K = 600, 3, 4
    params = _random_params("diag", K, d, rng)
    X = params.means[rng.integers(0, K, n)] + 1.5 * rng.standard_normal((n, d))
    clamp = np.where(rng.random(n) < 0.2, rng.integers(0, K, n), -1).astype(np.int64)
    resp, loglik = e_step(X, params, clamp)
    ref_resp, ref_loglik, _ = _ref_e_step(X, params, clamp)
    np.testing.assert_allclose(resp, ref_resp, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(loglik, ref_loglik, rtol=1e-12)


def test_normalize_sets_negligible_terms_to_exact_zeros():
    """Terms below 1e-300 of their row's largest are 0, never denormal; the rest are the
    softmax to full precision."""
    log_joint = np.array([[0.0, -1.0, -680.0, -720.0, -800.0, -np.inf]])
    expected = np.exp(log_joint[0] - np.logaddexp.reduce(log_joint[0]))
    expected[3:] = 0.0  # exp(-720) ~ 1e-313 would be denormal
    resp = np.empty_like(log_joint)
    row_loglik = np.empty(1)
    clamp = np.full(1, -1, dtype=np.int64)
    _gmm_kernels.normalize_clamped(log_joint.copy(), clamp, False, resp, row_loglik)
    np.testing.assert_allclose(resp[0], expected, rtol=1e-13, atol=0)
    np.testing.assert_array_equal(resp[0, 3:], 0.0)
    assert resp[0, 2] > 0.0  # exp(-680) ~ 5e-296 is kept
    np.testing.assert_allclose(row_loglik[0], np.logaddexp(0.0, -1.0), rtol=1e-15)


# -- component_stats ---------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("cov_type", COV_TYPES)
def test_component_stats_match_weighted_loops(cov_type, dtype, monkeypatch, threads):
    # 7-row blocks for the diagonal scatter: several blocks, the last one partial
    monkeypatch.setattr(gmm, "_SCATTER_BLOCK_ROWS", 7)
    rng = np.random.default_rng(3)
    n, d, K = 60, 4, 5
    X = (rng.standard_normal((n, d)) * [1.0, 3.0, 0.5, 2.0] + 5.0).astype(dtype)
    resp = rng.dirichlet(np.ones(K), size=n)
    resp[rng.random((n, K)) < 0.3] = 0.0  # exact zeros, skipped rows
    resp[:, 3] = 0.0  # an empty component
    resp[:10] = np.eye(K)[rng.integers(0, K, 10)]  # one-hot rows
    resp = resp.astype(dtype)
    counts, means, scatters = _ref_stats(X, resp, cov_type)
    rtol, atol = TOL[dtype]
    for buffer in [None, np.empty_like(X)]:
        st = component_stats(X, resp, cov_type, buffer=buffer)
        assert st.count.dtype == st.mean.dtype == st.scatter.dtype == np.float64
        assert st.scatter.shape == scatters.shape
        np.testing.assert_allclose(st.count, counts, rtol=rtol)
        held = counts > 0
        np.testing.assert_allclose(st.mean[held], means[held], rtol=rtol, atol=atol)
        np.testing.assert_allclose(st.scatter, scatters, rtol=rtol, atol=atol)
        assert st.count[3] == 0.0
        np.testing.assert_array_equal(st.scatter[3], 0.0)
        if cov_type == "full":
            np.testing.assert_array_equal(st.scatter, np.swapaxes(st.scatter, 1, 2))


@pytest.mark.parametrize("cov_type", COV_TYPES)
def test_squares_passed_in_give_the_same_results(cov_type):
    """float64 diagonal and spherical covariances use X * X (squares_for); passing it in
    (data near the means) agrees with letting e_step and component_stats centre and
    square the samples themselves."""
    X, params, clamp = _e_step_problem(cov_type, np.float64, seed=8)
    squares = squares_for(X, cov_type)
    if cov_type == "full":
        assert squares is None
    else:
        np.testing.assert_array_equal(squares, X * X)
    assert squares_for(X.astype(np.float32), cov_type) is None  # float32: exact Numba pass
    resp, loglik = e_step(X, params, clamp, squares=squares)
    resp_own, loglik_own = e_step(X, params, clamp)
    np.testing.assert_allclose(resp, resp_own, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(loglik, loglik_own, rtol=1e-13)
    given = component_stats(X, resp, cov_type, squares=squares)
    own = component_stats(X, resp, cov_type)
    np.testing.assert_allclose(given.scatter, own.scatter, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("cov_type", ["diag", "spherical"])
def test_diagonal_paths_are_accurate_far_from_the_origin(cov_type):
    """Without given squares, log_gaussian and component_stats centre float64 samples
    before squaring them: moving data and means by 1e6 changes nothing (the squared raw
    samples would lose the densities and variances to cancellation)."""
    X, params, clamp = _e_step_problem(cov_type, np.float64, seed=10)
    shift = 1e6
    moved = MixtureParams(params.weights, params.means + shift, params.covariances, cov_type)
    np.testing.assert_allclose(
        log_gaussian(X + shift, moved), log_gaussian(X, params), rtol=0, atol=1e-6
    )
    resp, _ = e_step(X, params, clamp)
    far = component_stats(X + shift, resp, cov_type)
    near = component_stats(X, resp, cov_type)
    np.testing.assert_allclose(far.mean - shift, near.mean, rtol=0, atol=1e-8)
    np.testing.assert_allclose(far.scatter, near.scatter, rtol=1e-6)


def test_diagonal_scatter_of_a_constant_feature_is_not_negative():
    """``resp^T X^2 - N mean^2`` is clamped at 0 where the exact scatter is 0."""
    rng = np.random.default_rng(9)
    X = np.column_stack([np.full(50, 0.1), rng.standard_normal(50)])
    resp = np.zeros((50, 2))
    resp[:, 0] = 1.0 / 3.0  # weights that do not sum exactly in binary
    resp[:, 1] = 2.0 / 3.0
    stats = component_stats(X, resp, "diag")
    assert np.all(stats.scatter[:, 0] >= 0.0)
    np.testing.assert_allclose(stats.scatter[:, 0], 0.0, atol=1e-14)


# -- one EM sweep -----------------------------------------------------------------------


@pytest.mark.parametrize("cov_type", COV_TYPES)
def test_em_sweep_matches_numpy_sweep(cov_type):
    X, params, clamp = _e_step_problem(cov_type, np.float64, seed=4)
    prior = _prior(X, cov_type)
    resp, _ = e_step(X, params, clamp)
    new = m_step(component_stats(X, resp, cov_type), prior, X.shape[0])

    ref_resp, _, _ = _ref_e_step(X, params, clamp)
    counts, means, scatters = _ref_stats(X, ref_resp, cov_type)
    ref_means, ref_covs = _ref_map(counts, means, scatters, prior)
    assert new.covariance_type == cov_type
    np.testing.assert_allclose(new.weights, counts / X.shape[0], rtol=1e-10)
    np.testing.assert_allclose(new.means, ref_means, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(new.covariances, ref_covs, rtol=1e-9, atol=1e-12)
    # map_estimate on its own, from the reference statistics
    m, c = prior.map_estimate(SetStats(counts, means, scatters))
    np.testing.assert_allclose(m, ref_means, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(c, ref_covs, rtol=1e-12, atol=1e-14)


# -- fit_mixture without moves -----------------------------------------------------------


def _three_blobs(seed=5):
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0, 0.0, 0.0], [2.5, 0.5, 0.0], [0.0, 3.0, 1.0]])
    X, truth = _mixture_data(rng, centres, [60, 50, 40], scale=[1.0, 0.6, 1.3])
    sample_class = np.full(X.shape[0], -1, dtype=np.int64)
    for c in (0, 1):
        sample_class[np.flatnonzero(truth == c)[:8]] = c
    return X, sample_class


@pytest.mark.parametrize("hard", [False, True])
@pytest.mark.parametrize("cov_type", COV_TYPES)
def test_fit_mixture_objective_never_decreases(cov_type, hard):
    X, sample_class = _three_blobs()
    K0 = 4
    rng = np.random.default_rng(0)
    init_labels, init_class = _fit_inputs(X, sample_class, K0, rng)
    prior = _prior(X, cov_type)
    result = fit_mixture(
        X,
        sample_class,
        init_labels,
        init_class,
        prior,
        moves=None,
        hard=hard,
        max_iter=25,
        tol=0.0,
        rng=rng,
    )
    history = result.objective_history
    assert history.shape == (25,)  # tol=0: every sweep runs
    assert np.isfinite(history).all()
    assert (np.diff(history) >= -1e-9 * np.abs(history[1:])).all(), np.diff(history)
    assert history[-1] > history[0]
    np.testing.assert_array_equal(result.n_components_history, K0)
    np.testing.assert_array_equal(result.component_class, init_class)
    assert result.params.n_components == K0
    # the objective is the log-likelihood plus the log prior of the parameters
    assert (result.objective_history != result.loglik_history).all()
    # labeled samples stay in their class's component
    labeled = np.flatnonzero(sample_class >= 0)
    np.testing.assert_array_equal(result.resp[labeled, sample_class[labeled]], 1.0)
    np.testing.assert_array_equal(result.resp[labeled].sum(axis=1), 1.0)
    if hard:
        assert set(np.unique(result.resp)) <= {0.0, 1.0}


def test_fit_mixture_first_objective_is_loglik_plus_log_prior():
    """F at the first E-step, recomputed with the scipy reference and the prior density."""
    X, sample_class = _three_blobs()
    rng = np.random.default_rng(0)
    init_labels, init_class = _fit_inputs(X, sample_class, 3, rng)
    prior = _prior(X, "full")
    result = fit_mixture(
        X, sample_class, init_labels, init_class, prior, moves=None, max_iter=1, rng=rng
    )
    start = gmm.params_from_labels(X, init_labels, 3, prior)
    _, loglik, _ = _ref_e_step(X, start, sample_class)  # classes 0, 1 are components 0, 1
    expected = loglik + prior.log_density(start.means, start.covariances).sum()
    np.testing.assert_allclose(result.loglik_history[0], loglik, rtol=1e-10)
    np.testing.assert_allclose(result.objective_history[0], expected, rtol=1e-10)


@pytest.mark.parametrize("cov_type", COV_TYPES)
def test_fit_mixture_far_from_the_origin_matches_the_centred_fit(cov_type):
    """The sweeps run on data centred on the prior mean: a fit of X + 1e6 is the fit of X
    moved by 1e6 (without the centring, cancellation in the squared-sample products of
    the diagonal path makes errors of 10-30 % here)."""
    X, sample_class = _three_blobs()
    offset = 1e6
    results = []
    for shift in (0.0, offset):
        Xs = X + shift
        rng = np.random.default_rng(0)
        init_labels, init_class = _fit_inputs(X, sample_class, 4, rng)
        results.append(
            fit_mixture(
                Xs,
                sample_class,
                init_labels,
                init_class,
                _prior(Xs, cov_type),
                moves=None,
                max_iter=10,
                tol=0.0,
                rng=rng,
            )
        )
    base, far = results
    np.testing.assert_allclose(far.params.means - offset, base.params.means, atol=1e-7)
    np.testing.assert_allclose(far.params.covariances, base.params.covariances, rtol=1e-7)
    np.testing.assert_allclose(far.resp, base.resp, atol=1e-7)
    np.testing.assert_allclose(far.loglik_history, base.loglik_history, rtol=1e-9)


# -- fit_mixture with split/merge moves ---------------------------------------------------


def _six_blobs(seed=0):
    """6 unit-variance blobs in 5-D, 100 points each, centres at least 9 apart.

    Classes 0 and 1 are half labeled. (With the prior of :func:`_prior`, whose
    inverse-Wishart scale is the whole data's variance, two blobs only ~5 apart are
    better explained as one component: their merge gain is positive even at alpha = 1.)
    """
    rng = np.random.default_rng(seed)
    while True:
        centres = 6.0 * rng.standard_normal((6, 5))
        gaps = np.linalg.norm(centres[:, None] - centres[None], axis=2)
        if gaps[np.triu_indices(6, 1)].min() >= 9.0:
            break
    X, truth = _mixture_data(rng, centres, [100] * 6)
    sample_class = np.full(X.shape[0], -1, dtype=np.int64)
    for c in (0, 1):
        sample_class[np.flatnonzero(truth == c)[:50]] = c
    return X, truth, sample_class


@pytest.mark.parametrize("K0", [2, 12])
@pytest.mark.parametrize("cov_type", COV_TYPES)
def test_split_merge_finds_the_six_blobs(cov_type, K0):
    X, truth, sample_class = _six_blobs()
    rng = np.random.default_rng(1)
    init_labels, init_class = _fit_inputs(X, sample_class, K0, rng)
    result = fit_mixture(
        X,
        sample_class,
        init_labels,
        init_class,
        _prior(X, cov_type),
        moves=MoveConfig(),
        rng=rng,
    )
    K = result.params.n_components
    assert K == 6, result.n_components_history
    sizes = result.n_components_history
    if K0 == 12:
        assert result.n_merges >= 1
        assert (np.diff(sizes) < 0).any()  # merged components are removed
    else:
        assert result.n_splits >= 4
    # every array of the result has the final K
    assert result.params.weights.shape == (K,)
    assert result.params.means.shape[0] == K
    assert result.params.covariances.shape[0] == K
    assert result.component_class.shape == (K,)
    assert result.resp.shape == (X.shape[0], K)
    np.testing.assert_allclose(result.params.weights.sum(), 1.0)
    # classes 0 and 1 each held by one component, which holds their labeled samples
    held = result.component_class[result.component_class >= 0]
    np.testing.assert_array_equal(np.sort(held), [0, 1])
    labels = result.resp.argmax(axis=1)
    for c in (0, 1):
        k = int(np.flatnonzero(result.component_class == c)[0])
        np.testing.assert_array_equal(labels[sample_class == c], k)
    # the components are the blobs
    for k in range(K):
        assert np.unique(truth[labels == k]).shape[0] == 1
    assert np.unique(labels).shape[0] == 6


def test_a_merge_sets_the_next_split_proposal_only(monkeypatch):
    """A merge leaves the merged component's two parts as its sub-clusters, the part that
    holds a class on side 0, valid for the next split step only: that step starts from
    them (no fresh seeding), and the step after it seeds afresh."""
    rng = np.random.default_rng(0)
    new_blob = rng.standard_normal((40, 2)) + np.array([3.0, 0.0])  # component 0, no class
    known = rng.standard_normal((60, 2))  # component 1, class 0, half labeled
    X = np.ascontiguousarray(np.vstack([new_blob, known]))
    labels = np.repeat([0, 1], [40, 60])
    clamp = np.full(100, -1)
    clamp[40:70] = 0
    members = [
        SetStats.from_points(X[labels == k], np.ones(np.sum(labels == k)), "full") for k in (0, 1)
    ]
    prior = _prior(X, "full")
    means, covariances = prior.map_estimate(SetStats.concat(members))
    params = MixtureParams(np.array([0.4, 0.6]), means, covariances, "full")
    config, reject_splits, accept_merges = MoveConfig(), -1e9, -1e9  # log alpha
    merged = merge_step(
        X,
        labels,
        clamp,
        params,
        np.array([-1, 0]),
        SubClusters.empty(2, 2),
        prior,
        config,
        accept_merges,
        rng,
    )
    assert merged.n_merges == 1
    np.testing.assert_array_equal(merged.component_class, [0])
    np.testing.assert_array_equal(merged.subclusters.valid, [True])
    np.testing.assert_allclose(merged.subclusters.centres[0], [known.mean(0), new_blob.mean(0)])
    seeded = []
    fresh_seed = split_merge._seed
    monkeypatch.setattr(split_merge, "_seed", lambda *args: seeded.append(1) or fresh_seed(*args))
    state = merged
    for expected_seedings in (0, 1):
        state = split_step(
            X,
            np.zeros(100, dtype=np.int64),
            clamp,
            state.params,
            state.component_class,
            state.subclusters,
            prior,
            config,
            reject_splits,
            rng,
        )
        assert state.n_splits == 0
        assert len(seeded) == expected_seedings
        np.testing.assert_array_equal(state.subclusters.valid, [False])


# -- input handling ----------------------------------------------------------------------


def test_read_only_inputs_work_and_are_not_modified():
    """Read-only arrays (as scikit-learn's validation may pass them on) in every kernel.

    float64 only: each read-only signature is one more Numba compilation (~1 s each).
    """
    X, _, sample_class = _six_blobs()
    rng = np.random.default_rng(2)
    init_labels, init_class = _fit_inputs(X, sample_class, 4, rng)
    inputs = [X, sample_class, init_labels, init_class]
    copies = [a.copy() for a in inputs]
    for a in inputs:
        a.setflags(write=False)
    prior = _prior(X, "full")
    result = fit_mixture(
        X,
        sample_class,
        init_labels,
        init_class,
        prior,
        moves=MoveConfig(burn_in=1, patience=1),
        max_iter=6,
        rng=rng,
    )
    assert np.isfinite(result.objective_history).all()
    for cov_type in COV_TYPES:
        params = _random_params(cov_type, 3, X.shape[1], np.random.default_rng(0))
        clamp = np.where(sample_class >= 0, sample_class, -1)
        clamp.setflags(write=False)
        resp, _ = e_step(X, params, clamp)
        resp.setflags(write=False)
        component_stats(X, resp, cov_type)
        log_gaussian(X, params)
        np.testing.assert_array_equal(clamp, np.where(sample_class >= 0, sample_class, -1))
    for a, b in zip(inputs, copies, strict=True):
        np.testing.assert_array_equal(a, b)


# -- calibration of alpha on the labeled classes -----------------------------------------


def _labeled_pair(kind, seed=0):
    """Two labeled classes of 100 points in 2-D.

    "separated": unit blobs 10 apart. "same bimodal": both classes drawn from one
    two-clump distribution, so each class splits and the two would merge.
    """
    rng = np.random.default_rng(seed)
    if kind == "separated":
        X = np.vstack([rng.standard_normal((100, 2)), rng.standard_normal((100, 2)) + 10.0])
    else:
        clumps = np.where(rng.random(200) < 0.5, -4.0, 4.0)
        X = rng.standard_normal((200, 2)) + np.column_stack([clumps, np.zeros(200)])
    return np.ascontiguousarray(X), np.repeat(np.arange(2), 100).astype(np.int64)


def _bounds_and_value(X, clamp, prior):
    bounds = labeled_gain_bounds(X, clamp, prior, np.random.default_rng(0), 3)
    value = calibrated_log_alpha(X, clamp, prior, np.random.default_rng(0), 3)
    return bounds, value


@pytest.mark.parametrize("cov_type", COV_TYPES)
def test_calibrated_log_alpha_is_the_midpoint_of_consistent_bounds(cov_type):
    X, clamp = _labeled_pair("separated")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # consistent bounds: no warning
        (lower, upper), value = _bounds_and_value(X, clamp, _prior(X, cov_type))
    assert lower < 0.0 < upper
    assert lower + upper < 0.0  # below the cap
    assert value == 0.5 * (lower + upper)


@pytest.mark.parametrize("cov_type", COV_TYPES)
def test_contradictory_labeled_bounds_warn_with_the_numbers(cov_type):
    X, clamp = _labeled_pair("same bimodal")
    prior = _prior(X, cov_type)
    with pytest.warns(UserWarning, match="contradictory bounds") as record:
        (lower, upper), value = _bounds_and_value(X, clamp, prior)
    assert lower > upper
    assert [w.category for w in record] == [UserWarning]
    message = str(record[0].message)
    assert f"{lower:.6g}" in message
    assert f"{upper:.6g}" in message
    assert value == min(0.5 * (lower + upper), 0.0)
    assert f"log(alpha) = {value:.6g}" in message


def test_calibrated_log_alpha_is_capped_at_zero_and_one_bound_is_used_alone():
    X, clamp = _labeled_pair("separated")
    prior = _prior(X, "full")
    rng = np.random.default_rng(0)
    one_class = np.where(clamp == 0, 0, -1)
    lower, upper = labeled_gain_bounds(X, one_class, prior, np.random.default_rng(0), 3)
    assert lower is None
    assert upper > 0.0  # uncapped, alpha = exp(upper) would make small splits free
    assert calibrated_log_alpha(X, one_class, prior, np.random.default_rng(0), 3) == 0.0
    # no class large enough to split: the merge bound alone, capped
    tiny = np.full(X.shape[0], -1, dtype=np.int64)
    tiny[[0, 1, 2, 100, 101, 102]] = [0, 0, 0, 1, 1, 1]
    lower, upper = labeled_gain_bounds(X, tiny, prior, np.random.default_rng(0), 3)
    assert upper is None
    assert calibrated_log_alpha(X, tiny, prior, rng, 3) == min(lower, 0.0)
    # no labeled class: no bound, alpha = 1
    none = np.full(X.shape[0], -1, dtype=np.int64)
    assert labeled_gain_bounds(X, none, prior, rng, 3) == (None, None)
    assert calibrated_log_alpha(X, none, prior, rng, 3) is None
    assert resolve_log_alpha(X, none, prior, MoveConfig(), rng) == 0.0
    assert resolve_log_alpha(X, none, prior, MoveConfig(alpha=5.0), rng) == np.log(5.0)
