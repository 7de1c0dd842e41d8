"""The backend primitives on every array library, against NumPy/SciPy."""

import numpy as np
import pytest
from clusterlab.solvers import _backend as B
from scipy.special import logsumexp


def test_logsumexp_matches_scipy_and_keeps_empty_rows(backend):
    x = np.array([[0.0, -np.inf, 3.0], [-np.inf, -np.inf, -np.inf], [700.0, 699.0, 1.0]])
    xp = B.get_namespace(backend.asarray(x))
    for axis in (0, 1):
        with np.errstate(divide="ignore"):  # log 0 = -inf on the empty row, as expected
            expected = logsumexp(x, axis=axis)
            out = B.logsumexp(xp, backend.asarray(x), axis)
        assert backend.is_own(out)
        np.testing.assert_allclose(backend.to_numpy(out), expected, rtol=1e-12)


def test_topk_gives_the_largest_first(backend):
    x = np.array([[3.0, 1.0, 4.0, 1.5], [0.0, -2.0, 9.0, 8.0]])
    values, indices = B.topk(B.get_namespace(backend.asarray(x)), backend.asarray(x), 2)
    np.testing.assert_array_equal(backend.to_numpy(indices), [[2, 0], [2, 3]])
    np.testing.assert_array_equal(backend.to_numpy(values), [[4.0, 3.0], [9.0, 8.0]])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_exp_nonpositive_has_no_subnormals(backend, dtype):
    x = -np.linspace(0, 800, 2001).astype(dtype)
    out = backend.to_numpy(
        B.exp_nonpositive(B.get_namespace(backend.asarray(x)), backend.asarray(x))
    )
    tiny = np.finfo(dtype).tiny
    assert np.all((out == 0) | (out >= tiny))
    normal = np.exp(x.astype(np.float64)) >= 2 * tiny
    np.testing.assert_allclose(out[normal], np.exp(x[normal]), rtol=1e-6)


def test_extrema_and_one_transfer(backend):
    x = backend.asarray(np.array([[1.0, -3.0], [7.5, 2.0]]))
    xp = B.get_namespace(x)
    assert B.host_floats(xp, *B.extrema(xp, x)) == (7.5, -3.0)


def test_to_namespace_copies_only_across_libraries(backend):
    x = backend.asarray(np.arange(6.0).reshape(2, 3))
    xp = B.get_namespace(x)
    assert B.to_namespace(xp, x, B.device(x)) is x
    moved = B.to_namespace(xp, np.ones(3), B.device(x))
    assert backend.is_own(moved)
    assert B.is_other_array(x) == (backend.name != "numpy")


def test_stop_gradient_cuts_the_graph():
    torch = pytest.importorskip("torch")
    x = torch.ones(3, requires_grad=True)
    assert not B.stop_gradient(B.get_namespace(x), x * 2).requires_grad


def test_squared_distances_and_nearest_centres(backend):
    rng = np.random.default_rng(0)
    X, C = rng.normal(size=(20, 4)), rng.normal(size=(5, 4))
    expected = ((X[:, None, :] - C[None]) ** 2).sum(axis=2)
    xp = B.get_namespace(backend.asarray(X))
    d = B.squared_distances(xp, backend.asarray(X), backend.asarray(C))
    np.testing.assert_allclose(backend.to_numpy(d), expected, rtol=1e-10, atol=1e-12)
    nearest = B.nearest_centers(xp, backend.asarray(X), backend.asarray(C))
    np.testing.assert_array_equal(backend.to_numpy(nearest), expected.argmin(axis=1))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_segment_sum_matches_a_loop(backend, dtype):
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 9, 200)
    ids[ids == 4] = 7  # segment 4 is empty; the ids are in no particular order
    values_2d = rng.normal(size=(200, 3)).astype(dtype)
    for values in (values_2d[:, 0], values_2d):
        expected = np.zeros((9, *values.shape[1:]))
        for e, s in enumerate(ids):
            expected[s] += values[e]
        xp = B.get_namespace(backend.asarray(values))
        out = B.segment_sum(xp, backend.asarray(values), backend.asarray(ids), 9)
        assert backend.is_own(out)
        assert out.dtype == backend.asarray(values).dtype
        tol = 1e-5 if dtype == np.float32 else 1e-12
        np.testing.assert_allclose(backend.to_numpy(out), expected, rtol=tol, atol=tol)
        assert not np.any(backend.to_numpy(out)[4])


def test_segment_sum_carries_the_gradient():
    torch = pytest.importorskip("torch")
    values = torch.arange(6.0, requires_grad=True)
    ids = torch.tensor([2, 0, 2, 1, 0, 2])
    out = B.segment_sum(B.get_namespace(values), values, ids, 4)
    (out * torch.tensor([1.0, 10.0, 100.0, 1000.0])).sum().backward()
    np.testing.assert_array_equal(values.grad.numpy(), [100, 1, 100, 10, 1, 100])
