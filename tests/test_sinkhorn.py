import itertools
import warnings

import numpy as np
import pytest
from clusterlab.solvers import sinkhorn as solver
from scipy.optimize import linear_sum_assignment
from sklearn.exceptions import ConvergenceWarning

from clusterlab import sinkhorn, sinkhorn_codes
from tests.conftest import cosine_scores
from tests.reference import sinkhorn_log_reference


def relative_column_error(plan, b):
    return np.max(np.abs(plan.sum(axis=0) / b - 1))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_marginals_met_with_custom_weights(dtype):
    S = cosine_scores(300, 12, dtype=dtype)
    rng = np.random.default_rng(1)
    a = rng.uniform(0.5, 1.5, 300)
    a /= a.sum()
    b = rng.uniform(0.5, 1.5, 12)
    b /= b.sum()
    result = sinkhorn(S, 0.05, a, b, tol=1e-6)
    assert result.converged
    assert result.plan.dtype == dtype
    plan = result.plan.astype(np.float64)
    assert relative_column_error(plan, b) <= 1e-5  # float32 storage of the plan
    np.testing.assert_allclose(plan.sum(axis=1), a, rtol=1e-5)
    assert result.marginal_error <= 1e-6


def test_plan_matches_textbook_log_domain_sinkhorn(scores):
    n, K = scores.shape
    a, b = np.full(n, 1 / n), np.full(K, 1 / K)
    ours = sinkhorn(scores, 0.1, n_iter=25, eps_scaling=False).plan
    reference = sinkhorn_log_reference(scores, 0.1, a, b, n_iter=25)
    np.testing.assert_allclose(ours, reference, rtol=1e-9, atol=1e-14)


def test_potentials_reproduce_the_plan(scores):
    result = sinkhorn(scores, 0.05)
    rebuilt = np.exp((scores + result.f[:, None] + result.g[None, :]) / result.eps)
    np.testing.assert_allclose(rebuilt, result.plan, rtol=1e-9)


def test_small_eps_approaches_the_exact_assignment():
    rng = np.random.default_rng(3)
    S = rng.uniform(-1, 1, (12, 12))
    rows, cols = linear_sum_assignment(S, maximize=True)
    permutation = np.zeros_like(S)
    permutation[rows, cols] = 1 / 12
    eps_values = (0.1, 0.03, 0.01, 0.003, 0.001)
    plans = [sinkhorn(S, eps, tol=1e-5, max_iter=100_000).plan for eps in eps_values]
    gaps = [np.abs(plan - permutation).sum() for plan in plans]
    assert all(later < earlier for earlier, later in itertools.pairwise(gaps))
    assert gaps[-1] < 1e-6
    assert np.array_equal(np.argmax(plans[-1], axis=1)[rows], cols)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_tiny_eps_is_finite_and_converges(dtype):
    S = cosine_scores(512, 300, dim=32, seed=5, dtype=dtype)
    result = sinkhorn(S, 1e-3, tol=1e-4, max_iter=5000)
    assert np.all(np.isfinite(result.plan))
    assert result.converged
    assert relative_column_error(result.plan.astype(np.float64), 1 / 300) <= 1.5e-4


def test_float32_reaches_tight_tolerance():
    S = cosine_scores(2000, 300, dim=32, seed=2, dtype=np.float32)
    result = sinkhorn(S, 0.05, tol=1e-6)
    assert result.converged
    assert result.marginal_error <= 1e-6


def test_fixed_iterations_run_exactly(scores):
    result = sinkhorn(scores, 0.05, n_iter=4)
    assert result.n_iter == 4
    assert len(result.error_history) == 4
    assert result.marginal_error == result.error_history[-1]


def test_warm_start_needs_fewer_iterations(scores):
    cold = sinkhorn(scores, 0.02, tol=1e-8)
    warm = sinkhorn(scores + 1e-4, 0.02, tol=1e-8, init=cold.g)
    assert warm.n_iter < cold.n_iter / 2


def test_not_converging_warns_with_the_numbers(scores):
    with pytest.warns(ConvergenceWarning, match="marginal error"):
        result = sinkhorn(scores, 0.01, tol=1e-12, max_iter=3)
    assert not result.converged


def test_threaded_and_serial_kernels_agree():
    """The prange kernel over several blocks against its serial twin over one."""
    from clusterlab.solvers import _sinkhorn_kernels as kernels
    from clusterlab.solvers._fastexp import work_dtype

    S = cosine_scores(801, 300, seed=9, dtype=np.float32)
    n, K = S.shape
    g_scaled = np.random.default_rng(0).normal(size=K)
    log_a = np.full(n, -np.log(n))
    outputs = []
    for kernel, n_chunks in ((kernels.row_pass, 7), (kernels.row_pass_serial, 1)):
        f_scaled, partial, plan = np.empty(n), np.empty((n_chunks, K)), np.empty_like(S)
        work = np.empty((n_chunks, K), work_dtype(S.dtype))
        kernel(S, g_scaled, 20.0, log_a, np.empty(0), np.ones(n), f_scaled, partial, plan, work)
        outputs.append((f_scaled, partial.sum(axis=0), plan))
    for threaded, serial in zip(*outputs, strict=True):
        np.testing.assert_allclose(threaded, serial, rtol=1e-12)


def test_non_finite_iterate_is_rolled_back(monkeypatch, scores):
    original = solver._NumbaPasses.row_pass
    calls = {"n": 0}

    def poisoned(self, *args, **kwargs):
        f, col_sum, plan = original(self, *args, **kwargs)
        calls["n"] += 1
        if calls["n"] == 3:
            col_sum = col_sum * np.nan
        return f, col_sum, plan

    monkeypatch.setattr(solver._NumbaPasses, "row_pass", poisoned)
    with pytest.warns(RuntimeWarning, match="non-finite"):
        result = solver.sinkhorn(scores, 0.05, tol=1e-9, eps_scaling=False)
    assert np.all(np.isfinite(result.plan))
    assert np.all(np.isfinite(result.g))
    assert result.n_iter == 2  # the poisoned third pass is not counted
    # the error reported is the returned plan's
    assert result.marginal_error == pytest.approx(
        relative_column_error(result.plan, 1 / scores.shape[1]), rel=1e-9
    )


def test_inputs_are_not_modified(scores):
    n, K = scores.shape
    a, b = np.full(n, 1 / n), np.full(K, 1 / K)
    copies = [x.copy() for x in (scores, a, b)]
    sinkhorn(scores, 0.05, a, b)
    sinkhorn_codes(scores)
    for original, kept in zip((scores, a, b), copies, strict=True):
        np.testing.assert_array_equal(original, kept)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"scores": np.array([[0.0, np.nan], [1.0, 0.0]])}, "NaN or infinity"),
        ({"scores": np.array([[0.0, np.inf], [1.0, 0.0]])}, "NaN or infinity"),
        ({"scores": np.zeros(4)}, "2-dimensional"),
        ({"scores": np.zeros((0, 3))}, "at least 1 row"),
        ({"scores": [["a", "b"]]}, "numbers"),
        ({"eps": 0.0}, "eps must be a positive"),
        ({"eps": -1.0}, "eps must be a positive"),
        ({"a": np.array([0.5, 0.6, -0.1, 0.0])}, "a has negative"),
        ({"b": np.array([0.5, 0.6, 0.1])}, "b must sum to 1"),
        ({"b": np.array([0.5, 0.5])}, "b must be a 1-D array of length 3"),
        ({"a": np.full((2, 2), 0.25)}, "a must be a 1-D array of length 4"),
        ({"b": np.array([0.5, np.nan, 0.5])}, "b contains NaN"),
        ({"n_iter": 0}, "n_iter must be an integer"),
        ({"tol": -1e-3}, "tol must be a positive"),
        ({"init": np.zeros(5)}, "init must be 3 finite"),
    ],
)
def test_bad_input_is_named(kwargs, message):
    arguments = {"scores": np.zeros((4, 3)), "eps": 0.1, **kwargs}
    with pytest.raises(ValueError, match=message):
        sinkhorn(**arguments)


def test_integer_scores_compute_in_float64():
    result = sinkhorn(np.array([[1, 0], [0, 1]]), 0.5)
    assert result.plan.dtype == np.float64


def test_no_warning_when_converged(scores):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sinkhorn(scores, 0.05)


def test_epsilon_scaling_reaches_the_same_plan():
    S = cosine_scores(200, 30, seed=11)
    direct = sinkhorn(S, 0.005, tol=1e-9, max_iter=20_000, eps_scaling=False)
    scaled = sinkhorn(S, 0.005, tol=1e-9, max_iter=20_000, eps_scaling=True)
    assert scaled.converged
    assert len(scaled.error_history) == scaled.n_iter
    np.testing.assert_allclose(scaled.plan, direct.plan, rtol=1e-6, atol=1e-12)


def test_overflowing_score_spread_is_rejected():
    with pytest.raises(ValueError, match="floating-point range"):
        sinkhorn(np.array([[3e38, -3e38], [0, 1]], np.float32), 0.05)
    with pytest.raises(ValueError, match="eps=1e-310 is too small"):
        sinkhorn(np.array([[1.0, 0.0], [0.0, 1.0]]), 1e-310)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_absurdly_small_eps_stays_finite(dtype):
    S = np.random.default_rng(0).uniform(-1, 1, (5, 4)).astype(dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        result = sinkhorn(S, 1e-20, max_iter=300)
    assert np.all(np.isfinite(result.plan))
    assert np.all(np.isfinite(result.f))
    assert np.isfinite(result.marginal_error)


def test_marginals_within_the_sum_tolerance_are_renormalised():
    S = cosine_scores(5, 3, seed=0)
    result = sinkhorn(S, 0.05, a=np.full(5, 0.2) * (1 + 9e-7), tol=1e-10)
    assert result.converged


def test_float32_first_column_update_matches_float64():
    S = cosine_scores(64, 20, seed=3)
    codes32 = sinkhorn_codes(S.astype(np.float32), eps=1e-3, n_iter=1)
    codes64 = sinkhorn_codes(S, eps=1e-3, n_iter=1)
    np.testing.assert_allclose(codes32, codes64, atol=1e-5)


@pytest.mark.parametrize(
    ("scores", "message"),
    [(np.eye(3) + 1j, "real numbers"), (np.eye(3, dtype=bool), "real numbers")],
)
def test_complex_and_boolean_scores_are_rejected(scores, message):
    with pytest.raises(ValueError, match=message):
        sinkhorn(scores, 0.5)


@pytest.mark.parametrize("entry", [sinkhorn, sinkhorn_codes])
def test_sparse_scores_are_named(entry):
    from scipy import sparse

    with pytest.raises(ValueError, match=r"sparse matrix.*toarray"):
        entry(sparse.csr_matrix(np.eye(3)), eps=0.1)
