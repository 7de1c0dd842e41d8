"""Array backends: pick the namespace and device from the input, keep float32 as float32.

NumPy arrays run the Numba kernels; any other array-API namespace (CuPy on a GPU,
``array_api_strict`` in the tests) runs code written against the standard. CuPy is never
imported here: ``array_api_compat`` recognises its arrays when they are passed in.
"""

from __future__ import annotations

import array_api_compat
import numba
from threadpoolctl import ThreadpoolController

__all__ = [
    "device",
    "float_dtype",
    "get_namespace",
    "is_numpy_namespace",
    "n_threads",
]


def get_namespace(*arrays):
    """The array-API namespace shared by ``arrays`` (NumPy's compat wrapper for ndarrays)."""
    return array_api_compat.array_namespace(*arrays)


def is_numpy_namespace(xp) -> bool:
    return array_api_compat.is_numpy_namespace(xp)


def device(x):
    """The device that holds ``x``."""
    return array_api_compat.device(x)


def float_dtype(xp, dtype):
    """float32 stays float32; every other dtype computes in float64."""
    return xp.float32 if dtype == xp.float32 else xp.float64


def n_threads() -> int:
    """Threads the Numba kernels run on (``NUMBA_NUM_THREADS`` / ``numba.set_num_threads``)."""
    return numba.get_num_threads()


_blas_controller = None


def single_threaded_blas():
    """Context manager limiting BLAS to one thread (for many tiny or per-thread products).

    The library scan behind :class:`threadpoolctl.ThreadpoolController` is done once.
    """
    global _blas_controller
    if _blas_controller is None:
        _blas_controller = ThreadpoolController()
    return _blas_controller.limit(limits=1, user_api="blas")
