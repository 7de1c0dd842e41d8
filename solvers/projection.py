"""Principal-component projection that caps the dimension a Gaussian mixture fits in.

A full covariance in ``d`` dimensions has ``d (d + 1) / 2`` parameters. On embeddings of
hundreds of dimensions this makes the EM sweeps slow and, worse, the normal-inverse-Wishart
evidence of :mod:`.niw` that drives the split/merge moves prices every extra component
by about ``d (d + 3) / 4 log N`` nats: the moves then merge distinct classes. Exported
embeddings keep most of their class structure in their leading principal directions, so
the mixture is fitted on the samples projected onto the leading ``p`` principal
components (fitted on all samples, no labels used)::

    z = (x - c) V,    V: (d, p) orthonormal eigenvectors of the sample covariance

:func:`auto_dimension` picks ``p``, :func:`principal_basis` computes ``c`` and ``V``, and
:class:`Projection` applies them to arrays of any array-API namespace.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ._backend import device, get_namespace, is_numpy_namespace, to_namespace

__all__ = [
    "MAX_AUTO_DIMENSION",
    "ProjectedFrame",
    "Projection",
    "auto_dimension",
    "principal_basis",
]

#: Largest dimension :func:`auto_dimension` keeps (32 until 2026-12-04: on 384-d
#: sentence embeddings of 11 topics the mixture then ended with 16-18 components, at 64
#: with 14-15, both with one calibration try per labeled class; 11-13 at 64 with the
#: default 20; see docs/user_guide/gcd.rst, "Embeddings exported by pretrained models").
MAX_AUTO_DIMENSION = 64


def auto_dimension(n_samples, n_features, n_components, cap=MAX_AUTO_DIMENSION, floor=8):
    """The number of principal components a mixture of ``n_components`` fits in.

    ``min(n_features, cap, max(floor, n_samples // (2 n_components)))``: at most ``cap``,
    and at most half the mean size of the starting components (so that an average
    component has at least twice as many samples as the dimension of its full covariance),
    but never below ``floor`` (small data sets in few dimensions are left as they are).
    """
    by_size = max(floor, n_samples // (2 * max(n_components, 1)))
    return int(min(n_features, cap, by_size))


def principal_basis(X, n_dims):
    """Mean ``c`` (float64, shape (d,)) and the leading ``n_dims`` principal directions
    ``V`` (float64, shape (d, n_dims), orthonormal columns, by decreasing variance; the
    sign of each column is fixed so that its largest entry is positive)."""
    X = np.asarray(X)
    mean = X.mean(axis=0, dtype=np.float64)
    centred = X.astype(np.float64) - mean
    n, d = centred.shape
    if d <= n:
        values, vectors = np.linalg.eigh(centred.T @ centred)
        vectors = vectors[:, np.argsort(values)[::-1][:n_dims]]
    else:  # fewer samples than features: the right singular vectors
        _, _, vt = np.linalg.svd(centred, full_matrices=False)
        vectors = vt[:n_dims].T
        if vectors.shape[1] < n_dims:  # complete to an orthonormal basis
            q, _ = np.linalg.qr(np.c_[vectors, np.eye(d)[:, : n_dims - vectors.shape[1]]])
            vectors = q[:, :n_dims]
    top = np.argmax(np.abs(vectors), axis=0)
    signs = np.sign(vectors[top, np.arange(vectors.shape[1])])
    signs[signs == 0] = 1.0
    return mean, np.ascontiguousarray(vectors * signs)


@dataclass
class Projection:
    """``z = (x - mean) @ components.T`` for arrays of any namespace.

    Attributes
    ----------
    mean : ndarray of shape (d,), float64
    components : ndarray of shape (p, d), float64, orthonormal rows
    """

    mean: np.ndarray
    components: np.ndarray
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def n_dims(self):
        return self.components.shape[0]

    def __call__(self, X):
        """Projected samples, in ``X``'s namespace, device and dtype."""
        xp = get_namespace(X)
        if is_numpy_namespace(xp):
            mean, components = self.mean.astype(X.dtype), self.components.astype(X.dtype)
            return np.ascontiguousarray((X - mean) @ components.T)
        where = device(X)
        key = (xp.__name__, str(where), str(X.dtype))
        if key not in self._cache:
            self._cache[key] = tuple(
                xp.astype(to_namespace(xp, a, where), X.dtype)
                for a in (self.mean, self.components.T)
            )
        mean, basis = self._cache[key]
        return (X - mean) @ basis

    def back(self, Z):
        """Points of the projected space in the original coordinates, ``mean + Z V^T``."""
        return self.mean + np.asarray(Z, dtype=np.float64) @ self.components

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_cache"] = {}  # device arrays are not needed to restore a model
        return state


@dataclass
class ProjectedFrame:
    """A normalised frame (:class:`clusterlab._scaling.Frame`) followed by a projection.

    Offers the frame's interface (``to_frame``, ``points``, ``lengths``, ``log_scale``,
    ``exponent``), so that an estimator which fits and predicts "in its frame" fits and
    predicts in the projected space: ``to_frame`` normalises then projects, ``points``
    maps projected points back to the original coordinates (on the principal subspace).
    """

    frame: object
    projection: Projection

    @property
    def exponent(self):
        return self.frame.exponent

    @property
    def log_scale(self):
        return self.frame.log_scale

    def to_frame(self, X):
        return self.projection(self.frame.to_frame(X))

    def points(self, Z):
        return self.frame.points(self.projection.back(Z).astype(np.asarray(Z).dtype))

    def lengths(self, values, power=1):
        return self.frame.lengths(values, power)
