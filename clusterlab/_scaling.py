"""The normalised frame in which scale-invariant estimators fit (issue 16).

K-means, balanced k-means, Laplacian k-means, Gaussian mixtures and the K-means SDPs give
the same partition of ``X`` and of ``X * s``: in exact arithmetic nothing in them depends
on the unit of ``X``. In floating point it does: squared distances of ``X * 1e160``
overflow, those of ``X * 1e-160`` underflow, and a large offset (``X + 1e12``) cancels
the digits of the expanded squares. :func:`normalise_scale` maps ``X`` to

    Z = ((X * 2**-outer) - offset) * 2**-inner,   max |Z| in [1/2, 1),

and every estimator fits on ``Z``. Both scale factors are powers of two, so the two
multiplications are exact (unless a result is subnormal): ``X * 2**j`` gives bitwise the
same ``Z`` as ``X``, hence the same partition, and ``X * s`` for any other ``s`` gives
the ``Z`` of ``X`` up to the rounding of ``X * s`` itself. The first factor (from the
largest magnitude) keeps the offset from overflowing; the offset is the midrange of the
pre-scaled samples (the fits are translation-invariant); the second factor (from the
largest centred magnitude) brings the spread to unit size, whatever the offset was.

The fitted attributes are mapped back with :meth:`Frame.points` (centres, means),
:meth:`Frame.lengths` (squared lengths: covariances, inertias, with ``power=2``) and
:attr:`Frame.log_scale` (log densities shift by ``-d log scale`` per sample). Where a
scaled-back quantity leaves the floating-point range (the covariance of data at 1e200 is
about 1e400) it is ``inf`` (or 0); the estimators keep their parameters in the frame,
so their predictions are unaffected.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from clusterlab.solvers._backend import (
    accumulation_dtype,
    device,
    get_namespace,
    host_floats,
    is_numpy_namespace,
    to_namespace,
    to_numpy,
)

__all__ = ["Frame", "common_scale", "normalise_scale"]

# Largest power-of-two step of one multiplication: 2**60 is a normal float32 number, so
# a product by it is exact in both float dtypes; 2**-1074 needs 18 steps.
_STEP = 60


def _times_power_of_two(X, exponent):
    """``X * 2**exponent``, exact where the result is a normal number, in ``X``'s dtype
    and namespace (NumPy: ``ldexp``; other namespaces: products by powers of two)."""
    if exponent == 0:
        return X
    if isinstance(X, np.ndarray):
        with np.errstate(over="ignore", under="ignore"):
            return np.ldexp(X, exponent).astype(X.dtype, copy=False)
    step = _STEP if exponent > 0 else -_STEP
    while exponent != 0:
        part = step if abs(exponent) > _STEP else exponent
        X = X * (2.0**part)
        exponent -= part
    return X


def _binary_exponent(value):
    """``e`` with ``value = m * 2**e``, ``m`` in [1/2, 1); 0 for 0."""
    return math.frexp(value)[1] if value > 0 else 0


@dataclass(frozen=True)
class Frame:
    """``x = (offset + z * 2**inner) * 2**outer``; see the module docstring.

    Attributes
    ----------
    outer, inner : int
        The two binary exponents.
    offset : ndarray of shape (n_features,) or None
        Feature midranges of ``X * 2**-outer``, float64 (None: not centred).
    """

    outer: int
    inner: int
    offset: np.ndarray | None

    @property
    def exponent(self):
        """``log2`` of the scale: one unit of ``Z`` is ``2**exponent`` units of ``X``."""
        return self.outer + self.inner

    @property
    def scale(self):
        """``2**exponent`` as a float (inf when it exceeds the float64 range)."""
        return float(_times_power_of_two(np.ones(()), self.exponent))

    @property
    def log_scale(self):
        """``log(scale)``, always finite."""
        return self.exponent * math.log(2.0)

    def _offset_like(self, A):
        """The offset (float64, NumPy) in ``A``'s namespace and device, in its
        accumulation dtype."""
        xp = get_namespace(A)
        if is_numpy_namespace(xp):
            return self.offset
        where = device(A)
        return xp.astype(to_namespace(xp, self.offset, where), accumulation_dtype(xp, where))

    def to_frame(self, X):
        """Samples ``X`` (any namespace, float32 or float64) in the frame, same dtype."""
        X = _times_power_of_two(X, -self.outer)
        if self.offset is not None:
            X = get_namespace(X).astype(X - self._offset_like(X), X.dtype, copy=False)
        return _times_power_of_two(X, -self.inner)

    def points(self, Z):
        """Points of the frame (centres, means) in ``X``'s units, in ``Z``'s dtype.

        Computed as ``(offset + Z * 2**inner) * 2**outer``: a point inside the data's
        convex hull stays in the floating-point range at every step.
        """
        Z = _times_power_of_two(Z, self.inner)
        if self.offset is not None:
            Z = get_namespace(Z).astype(Z + self._offset_like(Z), Z.dtype, copy=False)
        return _times_power_of_two(Z, self.outer)

    def lengths(self, values, power=1):
        """``values * scale**power``: differences (``power=1``), squared lengths such as
        covariances and inertias (2), precision factors (-1). Arrays keep their dtype;
        a Python float stays one. Out of range: inf (or 0)."""
        if isinstance(values, float | int):
            return float(_times_power_of_two(np.asarray(float(values)), power * self.exponent))
        return _times_power_of_two(values, power * self.exponent)


def normalise_scale(X, *, centre=True):
    """``X`` in its normalised frame, and the :class:`Frame`.

    Parameters
    ----------
    X : array of shape (n_samples, n_features), float32 or float64
        Finite, validated; NumPy or any array-API namespace (kept, with its device and
        dtype: the result is computed there, with one host transfer per scale).
    centre : bool, default=True
        Subtract the feature midranges (for translation-invariant methods). Without it only
        the power-of-two scale is applied (for methods that normalise rows, e.g. cosine
        scores).

    Returns
    -------
    Z : array like ``X``
        Largest magnitude in [1/2, 1) (all zeros for constant ``X`` when centred).
    frame : Frame
    """
    xp = get_namespace(X)
    (top,) = host_floats(xp, xp.max(xp.abs(X)))
    outer = _binary_exponent(top)
    Z = _times_power_of_two(X, -outer)
    if not centre:
        return Z, Frame(outer, 0, None)
    # the midrange, not the mean: exact for a constant feature (whose centred values are
    # then exact zeros), and the centred magnitudes are as small as they can be
    wide = xp.astype(Z, accumulation_dtype(xp, device(Z)), copy=False)
    middle = 0.5 * xp.max(wide, axis=0) + 0.5 * xp.min(wide, axis=0)
    offset = np.asarray(to_numpy(middle), dtype=np.float64)
    Z = xp.astype(wide - middle, Z.dtype, copy=False)
    (spread,) = host_floats(xp, xp.max(xp.abs(Z)))
    inner = _binary_exponent(spread)
    return _times_power_of_two(Z, -inner), Frame(outer, inner, offset)


def common_scale(*arrays):
    """The :class:`Frame` (scale only, no offset) that brings the largest magnitude of
    all ``arrays`` (any shapes, one namespace each, None skipped) into [1/2, 1)."""
    top = 0.0
    for array in arrays:
        if array is None:
            continue
        xp = get_namespace(array)
        (value,) = host_floats(xp, xp.max(xp.abs(array)))
        top = max(top, value)
    return Frame(_binary_exponent(top), 0, None)
