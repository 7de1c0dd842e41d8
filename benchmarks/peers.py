"""Peer implementations that ``clusterlab``'s Sinkhorn solvers are compared with.

* :func:`swav_sinkhorn_numpy`: SwAV's ``distributed_sinkhorn`` procedure (Caron et al.,
  2020) transcribed to plain NumPy for a single process.
* :func:`pot_plan`: POT's ``ot.sinkhorn`` (method ``"sinkhorn"``: scaling vectors, or
  ``"sinkhorn_log"``: log domain, i.e. ``ot.bregman.sinkhorn_log``) on similarity scores.

POT is imported lazily, inside :func:`pot_plan`, so this module (used by the tests)
imports without it.

In all three procedures one iteration is one column (prototype) scaling followed by one
row (sample) scaling, starting from uniform scalings, as in ``clusterlab``.
"""

from __future__ import annotations

import warnings

import numpy as np

__all__ = ["pot_plan", "swav_sinkhorn_numpy"]


def swav_sinkhorn_numpy(scores, eps, n_iter):
    """SwAV's Sinkhorn-Knopp codes in plain NumPy, in the dtype of ``scores``.

    ``Q = exp(S / eps)^T`` (prototypes x samples) is normalised to unit mass, then each
    iteration gives every prototype mass ``1 / K`` and every sample mass ``1 / B``.
    Returns the codes ``B * Q^T`` (samples x prototypes), rows summing to one. No
    log-domain safeguard: as in SwAV, ``exp(S / eps)`` must not overflow.
    """
    scores = np.asarray(scores)
    Q = np.exp(scores / scores.dtype.type(eps)).T
    K, B = Q.shape
    Q /= Q.sum()
    for _ in range(n_iter):
        Q /= Q.sum(axis=1, keepdims=True)  # prototype loads
        Q /= K
        Q /= Q.sum(axis=0, keepdims=True)  # sample masses
        Q /= B
    return (Q * B).T


def pot_plan(scores, eps, a=None, b=None, method="sinkhorn", **kw):
    """POT's entropic plan for similarity ``scores`` (cost ``M = -scores``, ``reg = eps``).

    ``method`` is ``"sinkhorn"`` (scaling vectors, ``ot.bregman.sinkhorn_knopp``) or
    ``"sinkhorn_log"`` (``ot.bregman.sinkhorn_log``), both run through ``ot.sinkhorn``;
    extra keywords (``numItermax``, ``stopThr``, ...) go to POT.
    Uniform marginals in the dtype of ``scores`` by default. POT's warnings are caught,
    not shown.

    Returns ``(plan, n_iter, messages)``: the plan, the iterations POT ran and the text of
    the warnings it issued.
    """
    import ot

    if method not in ("sinkhorn", "sinkhorn_log"):
        raise ValueError(f"method must be 'sinkhorn' or 'sinkhorn_log', got {method!r}.")
    scores = np.asarray(scores)
    n, K = scores.shape
    dtype = scores.dtype
    a = np.full(n, 1.0 / n, dtype) if a is None else np.asarray(a, dtype)
    b = np.full(K, 1.0 / K, dtype) if b is None else np.asarray(b, dtype)
    with warnings.catch_warnings(record=True) as caught, np.errstate(all="ignore"):
        warnings.simplefilter("always")
        plan, log = ot.sinkhorn(a, b, -scores, eps, method=method, log=True, **kw)
    messages = sorted({str(w.message) for w in caught})
    return plan, int(log["niter"]) + 1, messages
