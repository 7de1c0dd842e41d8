"""MaxQuery scores: the largest affinity of each sample to a set of prototypes.

Pure functions over validated arrays of one array-API namespace (NumPy through its
compat wrapper, PyTorch, CuPy, ``array_api_strict``). Everything is differentiable on
PyTorch: no in-place update, no host transfer.

The affinities of a batch are formed ``block_rows`` samples at a time, so that the
``n x K`` matrix never has to exist whole; only the ``n`` scores are kept.
"""

from __future__ import annotations

from clusterlab.solvers._backend import get_namespace, logsumexp, unit_rows

__all__ = ["BLOCK_ELEMENTS", "affinities", "max_query"]

# affinities are formed in row blocks of at most this many entries (64 MiB in float32)
BLOCK_ELEMENTS = 1 << 24


def affinities(X, centers, affinity):
    """``a(x_i, c_n)``: cosines (``"cosine"``) or inner products (``"dot"``), shape (n, K).

    ``centers`` must already be unit rows when ``affinity="cosine"`` (callers normalise
    them once).
    """
    xp = get_namespace(X, centers)
    if affinity == "cosine":
        X = unit_rows(xp, X)
    return X @ centers.T


def _score_block(X, centers, affinity, normalize, temperature):
    xp = get_namespace(X, centers)
    A = affinities(X, centers, affinity)
    if normalize == "none":
        return xp.max(A, axis=1)
    Z = A / temperature
    # largest softmax probability, exp(max z - logsumexp z): no overflow, no 0/0
    return xp.exp(xp.max(Z, axis=1) - logsumexp(xp, Z, axis=1))


def max_query(X, centers, *, affinity="cosine", normalize="none", temperature=1.0, block_rows=None):
    """Each sample's largest affinity to the prototypes (or largest softmax assignment).

    Parameters
    ----------
    X : array of shape (n, d)
    centers : array of shape (K, d), same namespace, device and dtype as ``X``; unit rows
        for ``affinity="cosine"``.
    affinity : {"cosine", "dot"}
    normalize : {"none", "softmax"}
        ``"none"``: ``max_n a(x, c_n)``. ``"softmax"``: ``max_n softmax_n(a(x, c) / T)``.
    temperature : float > 0
        ``T`` of the softmax.
    block_rows : int or None
        Samples per block; None keeps each block under :data:`BLOCK_ELEMENTS` entries.

    Returns
    -------
    scores : array of shape (n,), in the dtype of ``X``
    """
    xp = get_namespace(X, centers)
    n, K = X.shape[0], centers.shape[0]
    if block_rows is None:
        block_rows = max(1, BLOCK_ELEMENTS // max(K, 1))
    if n <= block_rows:
        return _score_block(X, centers, affinity, normalize, temperature)
    parts = [
        _score_block(X[start : start + block_rows, :], centers, affinity, normalize, temperature)
        for start in range(0, n, block_rows)
    ]
    return xp.concat(parts)
