"""The CuPy path against the NumPy kernels; skipped where CuPy or a CUDA device is absent."""

import numpy as np
import pytest

from clusterlab import sinkhorn, sinkhorn_codes
from tests.conftest import cosine_scores

cp = pytest.importorskip("cupy")
try:
    if cp.cuda.runtime.getDeviceCount() < 1:
        pytest.skip("no CUDA device", allow_module_level=True)
except cp.cuda.runtime.CUDARuntimeError:
    pytest.skip("no CUDA device", allow_module_level=True)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sinkhorn_on_the_gpu_matches_numpy(dtype):
    S = cosine_scores(2000, 300, seed=1, dtype=dtype)
    ours = sinkhorn(S, 0.05, tol=1e-6)
    gpu = sinkhorn(cp.asarray(S), 0.05, tol=1e-6)
    assert isinstance(gpu.plan, cp.ndarray)
    assert gpu.plan.dtype == dtype
    assert gpu.converged
    rtol = 1e-4 if dtype == np.float32 else 1e-9
    np.testing.assert_allclose(cp.asnumpy(gpu.plan), ours.plan, rtol=rtol, atol=1e-10)


def test_codes_on_the_gpu_match_numpy():
    S = cosine_scores(512, 100, seed=2, dtype=np.float32)
    np.testing.assert_allclose(
        cp.asnumpy(sinkhorn_codes(cp.asarray(S))), sinkhorn_codes(S), atol=1e-6
    )
