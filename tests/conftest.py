import numpy as np
import pytest


def cosine_scores(n, K, dim=16, n_groups=8, seed=0, dtype=np.float64):
    """Cosine scores of L2-normalised clustered features against normalised prototypes."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_groups, dim))
    X = centres[rng.integers(0, n_groups, n)] + 0.5 * rng.standard_normal((n, dim))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    C = rng.standard_normal((K, dim))
    C /= np.linalg.norm(C, axis=1, keepdims=True)
    return np.ascontiguousarray((X @ C.T).astype(dtype))


@pytest.fixture
def scores():
    return cosine_scores(120, 7)


class Backend:
    """An array library the heads run on: how to move NumPy test data there and back."""

    def __init__(self, name, module, device=None):
        self.name = name
        self.module = module
        self.device = device

    def asarray(self, x):
        """``x`` (NumPy) as this library's array, same dtype, on this backend's device."""
        x = np.asarray(x)
        if self.name == "numpy":
            return x.copy()
        if self.name.startswith("torch"):
            return self.module.as_tensor(x.copy(), device=self.device)
        return self.module.asarray(x)

    @staticmethod
    def to_numpy(x):
        from clusterlab.solvers._backend import to_numpy

        return to_numpy(x)

    def is_own(self, x):
        """Whether ``x`` is an array of this library on this device."""
        if self.name == "numpy":
            return isinstance(x, np.ndarray)
        if self.name.startswith("torch"):
            return isinstance(x, self.module.Tensor) and x.device.type == self.device
        return type(x).__module__.split(".")[0] == self.module.__name__.split(".")[0]

    def __repr__(self):
        return self.name


def _cuda_torch():
    try:
        import torch
    except ImportError:
        return None
    return torch if torch.cuda.is_available() else None


def _cuda_cupy():
    try:
        import cupy

        return cupy if cupy.cuda.runtime.getDeviceCount() > 0 else None
    except Exception:  # no CuPy, or CuPy without a driver
        return None


def _backend(name):
    if name == "numpy":
        return Backend("numpy", np)
    if name == "array_api_strict":
        return Backend(name, pytest.importorskip("array_api_strict"))
    if name == "torch-cpu":
        return Backend(name, pytest.importorskip("torch"), "cpu")
    if name == "torch-cuda":
        torch = _cuda_torch()
        if torch is None:
            pytest.skip("PyTorch with a CUDA device is not available")
        return Backend(name, torch, "cuda")
    cupy = _cuda_cupy()
    if cupy is None:
        pytest.skip("CuPy with a CUDA device is not available")
    return Backend(name, cupy)


BACKENDS = ["numpy", "array_api_strict", "torch-cpu", "torch-cuda", "cupy"]


@pytest.fixture(params=BACKENDS)
def backend(request):
    """Every array library a head must take: NumPy, array_api_strict, PyTorch (CPU and
    CUDA) and CuPy; the GPU ones skip without a device."""
    return _backend(request.param)


@pytest.fixture(params=BACKENDS[1:])
def other_backend(request):
    """The non-NumPy libraries, for comparisons against the NumPy path."""
    return _backend(request.param)


@pytest.fixture(scope="module")
def dask_client():
    """A ``distributed`` client on a two-process LocalCluster on the loopback address."""
    distributed = pytest.importorskip("distributed")
    with (
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
            memory_limit="4GiB",
            # no dashboard, and the scheduler's HTTP routes on a free loopback port: the
            # default 8787 may be taken (another cluster), which warns (an error here)
            scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        yield client
