import numpy as np
import pytest

from benchmarks.peers import swav_sinkhorn_numpy
from clusterlab import sinkhorn_codes, swapped_prediction_loss
from tests.conftest import cosine_scores


@pytest.mark.parametrize("n_iter", [1, 3, 10])
def test_codes_match_the_swav_procedure_in_float32(n_iter):
    S = cosine_scores(256, 300, dim=32, seed=4, dtype=np.float32)
    codes = sinkhorn_codes(S, eps=0.05, n_iter=n_iter)
    reference = swav_sinkhorn_numpy(S, 0.05, n_iter)
    assert codes.dtype == np.float32
    np.testing.assert_allclose(codes, reference, atol=1e-6, rtol=0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("n", "K"), [(50, 7), (700, 300)])  # one thread; the threaded pass
def test_scaling_domain_codes_equal_the_log_domain_iteration(n, K, dtype):
    from clusterlab.solvers import sinkhorn as solver

    S = cosine_scores(n, K, seed=3, dtype=dtype)
    fast = solver.scaling_codes(S, 0.05, 3, score_range=(float(S.min()), float(S.max())))
    log_domain = solver.sinkhorn(S, 0.05, n_iter=3, eps_scaling=False, plan_mass=np.ones(n)).plan
    assert fast.dtype == dtype
    np.testing.assert_allclose(fast, log_domain, rtol=1e-5 if dtype == np.float32 else 1e-12)


def test_wide_scores_fall_back_to_the_log_domain():
    from clusterlab.solvers import sinkhorn as solver

    S = 100.0 * cosine_scores(200, 10, seed=5, dtype=np.float32)  # spread / eps ~ 4000
    assert solver.scaling_codes(S, 0.05, 3, score_range=(float(S.min()), float(S.max()))) is None
    codes = sinkhorn_codes(S, eps=0.05, n_iter=3)
    assert np.isfinite(codes).all()
    np.testing.assert_allclose(codes.sum(axis=1), 1.0, rtol=1e-5)


def test_codes_rows_sum_to_one_and_loads_balance_when_converged():
    S = cosine_scores(600, 20, seed=8)
    codes = sinkhorn_codes(S, eps=0.05, n_iter=None, tol=1e-8)
    np.testing.assert_allclose(codes.sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(codes.sum(axis=0), 600 / 20, rtol=1e-7)


def test_three_iterations_are_not_converged():
    S = cosine_scores(2000, 100, seed=1)
    loads = sinkhorn_codes(S, eps=0.05, n_iter=3).sum(axis=0) / (2000 / 100)
    assert np.max(np.abs(loads - 1)) > 1e-2


def test_hard_codes_are_one_hot_argmax():
    S = cosine_scores(200, 10, seed=2)
    soft = sinkhorn_codes(S, eps=0.05, n_iter=10)
    hard = sinkhorn_codes(S, eps=0.05, n_iter=10, hard=True)
    assert hard.shape == soft.shape
    assert hard.dtype == soft.dtype
    np.testing.assert_array_equal(hard.sum(axis=1), 1.0)
    np.testing.assert_array_equal(np.argmax(hard, axis=1), np.argmax(soft, axis=1))


def _loss_only(scores_a, scores_b, codes_a, codes_b, tau):
    return swapped_prediction_loss(scores_a, scores_b, tau=tau, codes_a=codes_a, codes_b=codes_b)[0]


@pytest.mark.parametrize("tau", [0.1, 0.2])
def test_swapped_loss_gradient_matches_finite_differences(tau):
    rng = np.random.default_rng(0)
    s_a, s_b = rng.uniform(-1, 1, (2, 9, 5))
    q_a = sinkhorn_codes(s_a)
    q_b = sinkhorn_codes(s_b)
    _loss, grad_a, grad_b = swapped_prediction_loss(s_a, s_b, tau=tau, codes_a=q_a, codes_b=q_b)
    h = 1e-6
    for grad, which in ((grad_a, 0), (grad_b, 1)):
        numeric = np.zeros_like(grad)
        for idx in np.ndindex(grad.shape):
            plus = [s_a.copy(), s_b.copy()]
            minus = [s_a.copy(), s_b.copy()]
            plus[which][idx] += h
            minus[which][idx] -= h
            numeric[idx] = (
                _loss_only(*plus, q_a, q_b, tau) - _loss_only(*minus, q_a, q_b, tau)
            ) / (2 * h)
        np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-8)


def test_swapped_loss_is_the_cross_entropy_of_swapped_codes():
    rng = np.random.default_rng(1)
    s_a, s_b = rng.uniform(-1, 1, (2, 16, 6))
    loss, _, _ = swapped_prediction_loss(s_a, s_b, eps=0.05, tau=0.1)
    q_a, q_b = sinkhorn_codes(s_a), sinkhorn_codes(s_b)

    def log_softmax(z):
        z = z - z.max(axis=1, keepdims=True)
        return z - np.log(np.exp(z).sum(axis=1, keepdims=True))

    expected = -0.5 * (
        np.mean(np.sum(q_b * log_softmax(s_a / 0.1), axis=1))
        + np.mean(np.sum(q_a * log_softmax(s_b / 0.1), axis=1))
    )
    assert loss == pytest.approx(expected, rel=1e-12)


def test_swapped_loss_rejects_mismatched_views():
    with pytest.raises(ValueError, match="same shape"):
        swapped_prediction_loss(np.zeros((4, 3)), np.zeros((5, 3)))
