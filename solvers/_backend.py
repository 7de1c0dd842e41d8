"""Array backends: the namespace, device and dtype of the input are those of the output.

NumPy arrays run the Numba kernels. Any other array-API namespace (PyTorch on CPU or
CUDA, CuPy, ``array_api_strict`` in the tests) runs code written against the standard,
through :mod:`array_api_compat`. This module holds the few operations the standard lacks,
each with a native branch only where a library's own call is faster:

- :func:`logsumexp`, :func:`topk`, :func:`exp_nonpositive` (no subnormals), :func:`extrema`;
- :func:`segment_sum` (a scatter-add: sums of rows grouped by an index);
- :func:`stop_gradient` (codes are targets, as SwAV and MGCA detach them);
- :func:`host_floats`, the one place a device value is brought to the host, several at
  a time so that a check costs one synchronisation;
- :func:`has_float64`, :func:`accumulation_dtype` (Apple's MPS has no float64).

CuPy and PyTorch are never imported here: :mod:`array_api_compat` recognises their arrays
when they are passed in.
"""

from __future__ import annotations

import array_api_compat
import numba
import numpy as np
from threadpoolctl import ThreadpoolController

__all__ = [
    "accumulation_dtype",
    "device",
    "exp_nonpositive",
    "extrema",
    "float_dtype",
    "get_namespace",
    "has_float64",
    "host_floats",
    "is_array",
    "is_numpy_namespace",
    "is_other_array",
    "is_torch_namespace",
    "logsumexp",
    "n_threads",
    "nearest_centers",
    "segment_sum",
    "squared_distances",
    "stop_gradient",
    "to_namespace",
    "to_numpy",
    "topk",
    "unit_rows",
]


def get_namespace(*arrays):
    """The array-API namespace shared by ``arrays`` (NumPy's compat wrapper for ndarrays)."""
    return array_api_compat.array_namespace(*arrays)


def is_array(x) -> bool:
    """Whether ``x`` is an array of a namespace the backends run (not a list, not None)."""
    return array_api_compat.is_array_api_obj(x)


def is_other_array(x) -> bool:
    """Whether ``x`` is an array of a library other than NumPy that runs on its own
    device (PyTorch, CuPy, array_api_strict...). Dask arrays are not: scikit-learn's
    validation computes them into NumPy."""
    return is_array(x) and not isinstance(x, np.ndarray) and not array_api_compat.is_dask_array(x)


def to_namespace(xp, x, where):
    """``x`` as an array of ``xp`` on the device ``where`` (a copy only if needed)."""
    if is_numpy_namespace(xp) and isinstance(x, np.ndarray):
        return x
    if (
        is_array(x)
        and not isinstance(x, np.ndarray)
        and get_namespace(x) is xp
        and device(x) == where
    ):
        return x
    return xp.asarray(to_numpy(x), device=where)


def is_numpy_namespace(xp) -> bool:
    return array_api_compat.is_numpy_namespace(xp)


def is_torch_namespace(xp) -> bool:
    return array_api_compat.is_torch_namespace(xp)


def device(x):
    """The device that holds ``x``."""
    return array_api_compat.device(x)


def float_dtype(xp, dtype):
    """float32 stays float32; every other dtype computes in float64."""
    return xp.float32 if dtype == xp.float32 else xp.float64


def has_float64(xp, where) -> bool:
    """Whether the device ``where`` computes in float64 (Apple's MPS does not)."""
    return not (is_torch_namespace(xp) and getattr(where, "type", None) == "mps")


def accumulation_dtype(xp, where):
    """float64 for sums and potentials where the device has it, else float32."""
    return xp.float64 if has_float64(xp, where) else xp.float32


def host_floats(xp, *values):
    """Python floats of 0-d device arrays, fetched in one transfer (one host sync)."""
    if is_numpy_namespace(xp):
        return tuple(float(v) for v in values)
    stacked = xp.stack(
        [
            xp.astype(xp.reshape(v, ()), xp.float64 if has_float64(xp, device(v)) else xp.float32)
            for v in values
        ]
    )
    return tuple(float(v) for v in to_numpy(stacked))


def extrema(xp, x):
    """``(max(x), min(x))`` as 0-d arrays on ``x``'s device (one pass on PyTorch)."""
    if is_torch_namespace(xp):
        low, high = x.aminmax()
        return high, low
    return xp.max(x), xp.min(x)


def exp_nonpositive(xp, x):
    """``exp(x)`` for ``x <= 0`` with results below the smallest normal number set to 0.

    Subnormal results are exact zeros instead: CPUs compute them several times slower,
    and they are negligible beside the entry 1 that every shifted row or column holds.
    """
    lowest = -87.0 if x.dtype == xp.float32 else -708.0  # log of the smallest normal
    floor = xp.asarray(lowest, dtype=x.dtype, device=device(x))
    e = xp.exp(xp.maximum(x, floor))
    return xp.where(x > floor, e, xp.zeros_like(e))


def to_numpy(x):
    """A NumPy copy of ``x`` (from any device; detached from an autograd graph)."""
    if isinstance(x, np.ndarray):
        return x
    if array_api_compat.is_torch_array(x):
        return x.detach().cpu().numpy()
    if array_api_compat.is_cupy_array(x):
        return x.get()
    return np.asarray(x)


def logsumexp(xp, x, axis, *, keepdims=False):
    """``log sum exp`` along ``axis``, shifted by the maximum (``-inf`` rows stay ``-inf``)."""
    if is_torch_namespace(xp):
        import torch  # the input is a tensor: torch is already imported

        return torch.logsumexp(x, dim=axis, keepdim=keepdims)
    if is_numpy_namespace(xp):
        from scipy.special import logsumexp as scipy_logsumexp

        return scipy_logsumexp(x, axis=axis, keepdims=keepdims)
    top = xp.max(x, axis=axis, keepdims=True)
    top = xp.where(xp.isfinite(top), top, xp.zeros_like(top))
    out = xp.log(xp.sum(xp.exp(x - top), axis=axis, keepdims=True)) + top
    return out if keepdims else xp.squeeze(out, axis=axis)


def topk(xp, x, k, *, axis=-1):
    """The ``k`` largest entries along ``axis`` and their indices, largest first."""
    if is_torch_namespace(xp):
        values, indices = x.topk(k, dim=axis, largest=True, sorted=True)
        return values, indices
    if is_numpy_namespace(xp) and k < x.shape[axis]:
        # select in linear time, then sort only the k selected: a full sort of long rows
        # (the large-K assignment) costs far more than the matrix product that made them
        part = np.argpartition(-x, k - 1, axis=axis)
        part = np.take(part, np.arange(k), axis=axis)
        values = np.take_along_axis(x, part, axis=axis)
        order = np.argsort(-values, axis=axis, kind="stable")
        return np.take_along_axis(values, order, axis=axis), np.take_along_axis(
            part, order, axis=axis
        )
    order = xp.argsort(x, axis=axis, descending=True, stable=True)
    indices = (
        order[..., :k]
        if axis in (-1, x.ndim - 1)
        else xp.moveaxis(xp.moveaxis(order, axis, -1)[..., :k], -1, axis)
    )
    return xp.take_along_axis(x, indices, axis=axis), indices


def stop_gradient(xp, x):
    """``x`` cut from the autograd graph (PyTorch); any other array as it is."""
    return x.detach() if is_torch_namespace(xp) else x


def unit_rows(xp, X):
    """Rows of ``X`` divided by their L2 norm; an all-zero row stays zero (it has no
    direction: its cosine with anything is 0). Differentiable on PyTorch (the guard is a
    ``where``, not an in-place fix)."""
    norms = xp.linalg.vector_norm(X, axis=1, keepdims=True)
    return X / xp.where(norms > 0, norms, xp.ones_like(norms))


def squared_distances(xp, X, centers):
    """``||x_i - c_k||^2`` of shape (n, K) by one matrix product, clipped at 0 against
    rounding. Exact enough when ``X`` is centred near the centres (callers centre)."""
    d = (
        xp.sum(X * X, axis=1)[:, None]
        - 2.0 * (X @ centers.T)
        + xp.sum(centers * centers, axis=1)[None, :]
    )
    return xp.maximum(d, xp.zeros((), dtype=d.dtype, device=device(d)))


def nearest_centers(xp, X, centers):
    """Index of the nearest centre of each row (squared Euclidean distance)."""
    # ||x||^2 is the same for every centre of a row: the argmin does not need it
    d = xp.sum(centers * centers, axis=1)[None, :] - 2.0 * (X @ centers.T)
    return xp.argmin(d, axis=1)


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


def segment_sum(xp, values, segment_ids, n_segments):
    """``out[s] = sum of values[e] over the e with segment_ids[e] == s`` (a scatter-add).

    ``values`` has shape (E,) or (E, d); the result has shape (n_segments,) or
    (n_segments, d), in the dtype and on the device of ``values``, with zeros for
    segments no entry names. ``segment_ids`` are integers in ``[0, n_segments)``, in any
    order. On PyTorch the result carries the autograd graph of ``values``.

    Native calls: PyTorch ``index_add`` (out of place, differentiable), NumPy
    ``bincount`` (1-D, summed in float64) or ``add.at`` (2-D), CuPy
    ``cupyx.scatter_add``. Any other namespace (``array_api_strict``...) has no scatter
    in the standard, so the fallback sorts the entries by segment, takes prefix sums (in
    float64 where the device has it) and subtracts them at the segment boundaries found
    by ``searchsorted``: O(E log E), standard calls only. Its rounding error is that of
    a prefix sum, about ``E * eps`` times the total of ``|values|``, which is fine for
    the positive weights it is used on and no replacement for a native scatter.
    """
    shape = (n_segments, *values.shape[1:])
    if is_torch_namespace(xp):
        out = xp.zeros(shape, dtype=values.dtype, device=device(values))
        return out.index_add(0, segment_ids, values)
    if is_numpy_namespace(xp):
        values = np.asarray(values)
        segment_ids = np.asarray(segment_ids)
        if values.ndim == 1:
            sums = np.bincount(segment_ids, weights=values, minlength=n_segments)
            return sums.astype(values.dtype, copy=False)
        out = np.zeros(shape, dtype=values.dtype)
        np.add.at(out, segment_ids, values)
        return out
    if array_api_compat.is_cupy_namespace(xp):
        import cupyx  # the input is a CuPy array: CuPy is already imported

        out = xp.zeros(shape, dtype=values.dtype)
        cupyx.scatter_add(out, segment_ids, values)
        return out
    where = device(values)
    order = xp.argsort(segment_ids, stable=True)
    sorted_ids = xp.take(segment_ids, order)
    sorted_values = xp.astype(xp.take(values, order, axis=0), accumulation_dtype(xp, where))
    prefix = xp.cumulative_sum(sorted_values, axis=0, include_initial=True)
    segments = xp.arange(n_segments, dtype=sorted_ids.dtype, device=where)
    start = xp.searchsorted(sorted_ids, segments, side="left")
    stop = xp.searchsorted(sorted_ids, segments, side="right")
    sums = xp.take(prefix, stop, axis=0) - xp.take(prefix, start, axis=0)
    return xp.astype(sums, values.dtype)
