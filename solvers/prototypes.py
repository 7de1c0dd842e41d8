"""Prototype costs and updates for Laplacian-regularised clustering.

Arrays are batched: ``X`` (n_problems, n_points, n_features), prototypes ``M``
(n_problems, n_labels, n_features), hard labels (n_problems, n_points). Kinds:

- ``"means"``: ``f(x, m) = ||x - m||^2``, ``m_l`` the mean of the points labelled ``l``
  (K-means);
- ``"modes"``: ``f(x, m) = -exp(-||x - m||^2 / (2 sigma^2))``, ``m_l`` the mode of the
  Gaussian kernel density of the points labelled ``l``, found by mean-shift started at
  their mean (K-modes, Ziko et al. 2018);
- ``"members"``: the same cost, ``m_l`` the free (unclamped) point with the largest
  assignment ``z_pl`` (the cheap mode estimate of the bound optimizer, "BO");
- ``"fixed"``: squared distances to prototypes that never change (LaplacianShot).

A label without points keeps its previous prototype; the caller decides what to do.
"""

from __future__ import annotations

import numpy as np

from . import _prototype_kernels as kernels

__all__ = ["PROTOTYPES", "squared_distances", "unary_costs", "update_prototypes"]

PROTOTYPES = ("means", "modes", "members", "fixed")

_MEANSHIFT_TOL = 1e-5
_MEANSHIFT_MAX_ITER = 100


def squared_distances(X, M):
    """``||x_p - m_l||^2`` of shape (n_problems, n_points, n_labels), in float64."""
    out = np.empty((X.shape[0], X.shape[1], M.shape[1]))
    kernels.squared_distances(X, M.astype(X.dtype, copy=False), out)
    return out


def _kernel(d2, sigma2):
    """Gaussian kernel values ``exp(-d2 / (2 sigma^2))``, one bandwidth per problem."""
    return np.exp(-d2 / (2.0 * sigma2.reshape((-1,) + (1,) * (d2.ndim - 1))))


def unary_costs(X, M, kind, sigma2):
    """Costs ``f(x_p, m_l)`` of shape (n_problems, n_points, n_labels)."""
    d2 = squared_distances(X, M)
    if kind in ("means", "fixed"):
        return d2
    return -_kernel(d2, sigma2)


def _label_means(X, labels, point_weights, previous):
    """Weighted mean of each label's points; a label with zero weight keeps ``previous``."""
    n_problems, n_labels, n_features = previous.shape
    sums = np.empty((n_problems, n_labels, n_features))
    totals = np.empty((n_problems, n_labels))
    kernels.label_sums(X, labels, point_weights, sums, totals)
    empty = (totals == 0.0)[:, :, None]
    return np.where(empty, previous, sums / np.where(empty, 1.0, totals[:, :, None]))


def _mean_shift(X, labels, previous, sigma2):
    """Mode of each label's kernel density, by mean-shift iterations from the label's mean.

    Each problem stops on its own (largest step below a fraction of its largest coordinate),
    so a problem's result does not depend on the others solved with it.
    """
    M = _label_means(X, labels, np.ones(labels.shape), previous.astype(np.float64))
    scale = np.abs(M).max(axis=(1, 2))
    running = np.arange(X.shape[0])
    for _ in range(_MEANSHIFT_MAX_ITER):
        X_run, labels_run, M_run = X[running], labels[running], M[running]
        own = np.take_along_axis(squared_distances(X_run, M_run), labels_run[:, :, None], axis=2)
        shifted = _label_means(X_run, labels_run, _kernel(own[:, :, 0], sigma2[running]), M_run)
        step = np.abs(shifted - M_run).max(axis=(1, 2))
        M[running] = shifted
        running = running[step > _MEANSHIFT_TOL * scale[running]]
        if running.size == 0:
            break
    return M


def update_prototypes(X, labels, assignments, previous, kind, sigma2, clamp=None):
    """New prototypes from hard labels (and, for "members", the soft assignments).

    ``clamp`` (n_problems, n_points), labels of clamped points or -1: "members" chooses
    among the free points only (a clamped point's assignment is 1, which would pin the
    prototype to the first labeled point); a label without free points keeps ``previous``.
    """
    if kind == "fixed":
        return previous
    labels = np.ascontiguousarray(labels, dtype=np.int64)
    if kind == "means":
        updated = _label_means(X, labels, np.ones(labels.shape), previous)
    elif kind == "modes":
        updated = _mean_shift(X, labels, previous, sigma2)
    else:
        scores = (
            assignments if clamp is None else np.where((clamp >= 0)[:, :, None], -1.0, assignments)
        )
        best = scores.argmax(axis=1)
        found = np.take_along_axis(scores, best[:, None, :], axis=1)[:, 0, :] >= 0
        members = np.take_along_axis(X, best[:, :, None], axis=1)
        updated = np.where(found[:, :, None], members, previous)
    return updated.astype(previous.dtype, copy=False)
