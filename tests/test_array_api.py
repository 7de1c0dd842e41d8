"""The array-API path (what CuPy runs on a GPU), checked on CPU with array_api_strict."""

import numpy as np
import pytest

from clusterlab import sinkhorn, sinkhorn_codes, swapped_prediction_loss
from tests.conftest import cosine_scores

xps = pytest.importorskip("array_api_strict")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sinkhorn_matches_numpy(dtype):
    S = cosine_scores(300, 40, seed=6, dtype=dtype)
    rtol = 1e-5 if dtype == np.float32 else 1e-10
    # the same iterations: the same plan and potentials
    ours = sinkhorn(S, 0.05, n_iter=40)
    strict = sinkhorn(xps.asarray(S), 0.05, n_iter=40)
    assert type(strict.plan) is type(xps.asarray(S))
    assert strict.plan.dtype == xps.asarray(S).dtype
    assert strict.n_iter == ours.n_iter == 40
    assert strict.marginal_error == pytest.approx(ours.marginal_error, rel=1e-3)
    np.testing.assert_allclose(np.asarray(strict.plan), ours.plan, rtol=rtol, atol=1e-12)
    np.testing.assert_allclose(np.asarray(strict.g), ours.g, rtol=rtol, atol=1e-9)
    # tolerance mode: the error is fetched after 1, 2, 4, 8 iterations and then every
    # 10, so each epsilon stage may overrun by up to 9; both plans meet the tolerance
    ours = sinkhorn(S, 0.05, tol=1e-6)
    strict = sinkhorn(xps.asarray(S), 0.05, tol=1e-6)
    assert strict.converged
    assert strict.marginal_error <= 1e-6
    assert ours.n_iter <= strict.n_iter <= ours.n_iter + 10 * len(strict.error_history)
    np.testing.assert_allclose(np.asarray(strict.plan), ours.plan, rtol=1e-4, atol=1e-12)


def test_tiny_eps_float32_converges():
    S = cosine_scores(256, 100, seed=5, dtype=np.float32)
    result = sinkhorn(xps.asarray(S), 1e-3, tol=1e-4, max_iter=5000)
    assert result.converged
    assert bool(xps.all(xps.isfinite(result.plan)))


def test_codes_and_loss_match_numpy():
    rng = np.random.default_rng(0)
    s_a, s_b = rng.uniform(-1, 1, (2, 32, 8)).astype(np.float32)
    np.testing.assert_allclose(
        np.asarray(sinkhorn_codes(xps.asarray(s_a), hard=True)), sinkhorn_codes(s_a, hard=True)
    )
    np.testing.assert_allclose(
        np.asarray(sinkhorn_codes(xps.asarray(s_a))), sinkhorn_codes(s_a), rtol=1e-5
    )
    loss_np, ga_np, gb_np = swapped_prediction_loss(s_a, s_b)
    loss_x, ga_x, gb_x = swapped_prediction_loss(xps.asarray(s_a), xps.asarray(s_b))
    assert float(loss_x) == pytest.approx(loss_np, rel=1e-5)
    np.testing.assert_allclose(np.asarray(ga_x), ga_np, rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(np.asarray(gb_x), gb_np, rtol=1e-4, atol=1e-7)


def test_bad_input_checked_in_the_namespace():
    S = xps.asarray([[0.0, float("nan")], [1.0, 0.0]])
    with pytest.raises(ValueError, match="NaN"):
        sinkhorn(S, 0.1)


def test_boolean_arrays_are_rejected():
    with pytest.raises(ValueError, match="real numbers"):
        sinkhorn(xps.asarray([[True, False], [False, True]]), 0.5)
