"""Sinkhorn heads on every array library, against the NumPy path (fixtures in conftest)."""

import numpy as np
import pytest
from clusterlab.solvers import sinkhorn as solver

from benchmarks.peers import swav_sinkhorn_numpy
from clusterlab import sinkhorn, sinkhorn_codes, swapped_prediction_loss
from tests.conftest import cosine_scores

DTYPES = [np.float32, np.float64]


def tolerance(dtype):
    return {"rtol": 1e-4, "atol": 1e-6} if dtype == np.float32 else {"rtol": 1e-9, "atol": 1e-12}


def check_same_kind(backend, out, like):
    assert backend.is_own(out)
    assert out.dtype == like.dtype
    assert tuple(out.shape) == tuple(like.shape)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    ("eps", "n_iter", "hard"), [(0.05, 3, False), (0.05, 10, True), (0.03, 10, False)]
)
def test_fixed_iteration_codes_match_numpy(other_backend, dtype, eps, n_iter, hard):
    S = cosine_scores(500, 60, seed=3, dtype=dtype)
    expected = sinkhorn_codes(S, eps, n_iter, hard=hard)
    scores = other_backend.asarray(S)
    codes = sinkhorn_codes(scores, eps, n_iter, hard=hard)
    check_same_kind(other_backend, codes, scores)
    np.testing.assert_allclose(other_backend.to_numpy(codes), expected, **tolerance(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_scaling_domain_is_swav_exactly(dtype):
    S = cosine_scores(400, 50, seed=4, dtype=dtype)
    for n_iter in (1, 3, 10):
        codes = solver.scaling_codes(S, 0.05, n_iter, score_range=(float(S.min()), float(S.max())))
        expected = swav_sinkhorn_numpy(S.astype(np.float64), 0.05, n_iter)
        np.testing.assert_allclose(codes, expected, **tolerance(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_wide_scores_take_the_log_domain_and_still_match(other_backend, dtype):
    S = cosine_scores(300, 40, seed=5, dtype=dtype)
    eps = 1e-3  # spread / eps near 2000: too wide for the scaling domain in any dtype
    assert solver.scaling_codes(S, eps, 3, score_range=(float(S.min()), float(S.max()))) is None
    expected = sinkhorn_codes(S, eps, 3)
    codes = sinkhorn_codes(other_backend.asarray(S), eps, 3)
    assert np.all(np.isfinite(other_backend.to_numpy(codes)))
    np.testing.assert_allclose(other_backend.to_numpy(codes), expected, **tolerance(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_tolerance_mode_matches_numpy(other_backend, dtype):
    S = cosine_scores(300, 30, seed=7, dtype=dtype)
    rng = np.random.default_rng(0)
    b = rng.uniform(0.5, 1.5, 30)
    b /= b.sum()
    expected = sinkhorn(S, 0.05, b=b, tol=1e-6)
    result = sinkhorn(other_backend.asarray(S), 0.05, b=other_backend.asarray(b), tol=1e-6)
    check_same_kind(other_backend, result.plan, other_backend.asarray(S))
    assert result.converged
    assert result.marginal_error <= 1e-6
    np.testing.assert_allclose(
        other_backend.to_numpy(result.plan), expected.plan, rtol=1e-4, atol=1e-9
    )
    codes = sinkhorn_codes(other_backend.asarray(S), 0.05, n_iter=None, tol=1e-6)
    np.testing.assert_allclose(other_backend.to_numpy(codes).sum(axis=0), 300 / 30, rtol=1e-5)


@pytest.mark.parametrize("dtype", DTYPES)
def test_loss_and_gradients_match_numpy(other_backend, dtype):
    rng = np.random.default_rng(1)
    s_a, s_b = rng.uniform(-1, 1, (2, 64, 12)).astype(dtype)
    loss_np, grad_a_np, grad_b_np = swapped_prediction_loss(s_a, s_b)
    loss, grad_a, grad_b = swapped_prediction_loss(
        other_backend.asarray(s_a), other_backend.asarray(s_b)
    )
    check_same_kind(other_backend, grad_a, other_backend.asarray(s_a))
    assert tuple(loss.shape) == ()
    assert float(other_backend.to_numpy(loss)) == pytest.approx(loss_np, rel=1e-5)
    np.testing.assert_allclose(other_backend.to_numpy(grad_a), grad_a_np, **tolerance(dtype))
    np.testing.assert_allclose(other_backend.to_numpy(grad_b), grad_b_np, **tolerance(dtype))


def test_torch_loss_backward_gives_the_analytic_gradients():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    s_a, s_b = rng.uniform(-1, 1, (2, 96, 20))
    loss_np, grad_a_np, grad_b_np = swapped_prediction_loss(s_a, s_b, tau=0.1)
    a = torch.tensor(s_a, requires_grad=True)
    b = torch.tensor(s_b, requires_grad=True)
    loss, _, _ = swapped_prediction_loss(a, b, tau=0.1)
    assert loss.ndim == 0
    assert loss.requires_grad
    loss.backward()
    assert float(loss.detach()) == pytest.approx(loss_np, rel=1e-12)
    # the codes are detached, so autograd gives the gradient with the codes held fixed
    np.testing.assert_allclose(a.grad.numpy(), grad_a_np, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(b.grad.numpy(), grad_b_np, rtol=1e-8, atol=1e-12)


def test_torch_codes_are_detached_from_the_graph():
    torch = pytest.importorskip("torch")
    S = torch.tensor(cosine_scores(64, 8, seed=9), requires_grad=True)
    for n_iter in (3, None):
        codes = sinkhorn_codes(S * 1.0, 0.05, n_iter=n_iter)
        assert not codes.requires_grad


def test_torch_nan_is_a_clear_error():
    torch = pytest.importorskip("torch")
    S = torch.tensor([[0.0, float("nan")], [1.0, 0.0]])
    for call in (
        lambda: sinkhorn_codes(S),
        lambda: sinkhorn(S, 0.1),
        lambda: swapped_prediction_loss(S, S),
    ):
        with pytest.raises(ValueError, match="NaN"):
            call()


def swav_training_steps(torch, views, n_steps, n_prototypes=10, seed=0):
    """The SwAV training step of docs/user_guide/gpu.rst, on a linear encoder."""
    from torch.nn import functional as F

    torch.manual_seed(seed)
    encoder = torch.nn.Linear(views[0].shape[1], 16)
    prototypes = torch.nn.Linear(16, n_prototypes, bias=False)
    optimizer = torch.optim.SGD([*encoder.parameters(), *prototypes.parameters()], lr=0.5)
    losses = []
    for _ in range(n_steps):
        with torch.no_grad():  # prototypes stay on the unit sphere
            prototypes.weight.copy_(F.normalize(prototypes.weight, dim=1))
        z_a = F.normalize(encoder(views[0]), dim=1)
        z_b = F.normalize(encoder(views[1]), dim=1)
        loss, _, _ = swapped_prediction_loss(
            prototypes(z_a), prototypes(z_b), eps=0.05, tau=0.1, n_iter=3
        )
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    return losses


def test_swav_training_step_lowers_the_loss():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 3, (10, 32))
    X = centres[rng.integers(0, 10, 512)]
    views = [torch.tensor(X + rng.normal(0, 0.5, X.shape), dtype=torch.float32) for _ in range(2)]
    losses = swav_training_steps(torch, views, n_steps=30)
    assert all(np.isfinite(losses))
    assert np.mean(losses[-10:]) < 0.8 * np.mean(losses[:5])
