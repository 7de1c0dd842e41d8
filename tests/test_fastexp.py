import numba
import numpy as np
import pytest
from clusterlab.solvers._fastexp import exp_nonpositive, exp_nonpositive_minimax, work_dtype


@numba.njit
def _apply(x, out, work):
    exp_nonpositive(x, out, work)


@pytest.mark.parametrize(
    ("dtype", "lowest", "rtol"), [(np.float32, -87.0, 1.5e-7), (np.float64, -708.0, 5e-16)]
)
def test_matches_numpy_exp_on_its_range(dtype, lowest, rtol):
    x = np.concatenate([np.linspace(lowest, 0, 20_001), [0.0, -1e-30, -0.5, lowest]]).astype(dtype)
    out = np.empty_like(x)
    _apply(x, out, np.empty(x.shape, work_dtype(dtype)))
    np.testing.assert_allclose(out, np.exp(x.astype(np.float64)), rtol=rtol)


@pytest.mark.parametrize(("dtype", "lowest"), [(np.float32, -87.0), (np.float64, -708.0)])
def test_clamps_below_the_normal_range(dtype, lowest):
    x = np.array([lowest - 5, -1e4], dtype=dtype)
    out = np.empty_like(x)
    _apply(x, out, np.empty(x.shape, work_dtype(dtype)))
    np.testing.assert_allclose(out, np.exp(np.float64(lowest)), rtol=1e-6)
    assert np.all(out > 0)
    assert np.all(np.isfinite(out))


@numba.njit
def _apply_minimax(x, out, work):
    exp_nonpositive_minimax(x, out, work)


@pytest.mark.parametrize(
    ("dtype", "lowest", "rtol"), [(np.float32, -87.0, 1.5e-7), (np.float64, -708.0, 5e-16)]
)
def test_minimax_variant_is_as_accurate(dtype, lowest, rtol):
    x = np.concatenate([np.linspace(lowest, 0, 200_001), [0.0, -1e-30, -0.5, lowest - 5]])
    x = x.astype(dtype)
    out = np.empty_like(x)
    _apply_minimax(x, out, np.empty(x.shape, work_dtype(dtype)))
    expected = np.exp(np.maximum(x, lowest).astype(np.float64))
    np.testing.assert_allclose(out, expected, rtol=rtol)
