r"""MLCD's multi-label cluster targets and losses (An et al., ECCV 2024).

MLCD clusters all embeddings once into K centres (:class:`clusterlab.SphericalKMeans`),
gives each sample its ``l`` nearest centres by cosine as positive labels
(:func:`multilabel_assign`), and trains with a multi-label loss over the sample's
similarities ``s`` to all centres, ``Ω_p`` its positives and ``Ω_n`` the rest:

- MLC (:func:`mlc_loss`): ``log(1 + Σ_{j∈Ω_n} e^{s_j} Σ_{i∈Ω_p} e^{-s_i})``;
- MLCD (:func:`mlcd_loss`): ``log(1 + Σ_{i∈Ω_p} e^{-s_i}) + log(1 + Σ_{j∈Ω'_n} e^{s_j})``
  with ``Ω'_n`` a random part of the negatives, redrawn at every call.

Both are computed with log-sum-exp including the zero logit (the ``1 +``), so they stay
finite for any scale. All three functions take NumPy arrays, PyTorch tensors (CPU or
CUDA), CuPy arrays and other array-API arrays and return the same kind on the same
device; the losses are differentiable on PyTorch.
"""

from __future__ import annotations

import math
import numbers

import numpy as np
from sklearn.utils import check_random_state

from clusterlab._validation import check_count, check_float_matrix, check_positive
from clusterlab.solvers import spherical_kmeans as _skm
from clusterlab.solvers._backend import (
    device,
    get_namespace,
    host_floats,
    is_array,
    is_numpy_namespace,
    logsumexp,
    to_namespace,
    to_numpy,
    topk,
)
from clusterlab.solvers._dask_map import check_rows, is_dask_array, map_rows, shared

__all__ = ["mlc_loss", "mlcd_loss", "multilabel_assign", "negative_columns"]


def _unit_rows_and_norms(xp, X, name):
    """Row norms of ``X`` (checked nonzero)."""
    norms = xp.linalg.vector_norm(X, axis=1)
    if host_floats(xp, xp.min(norms))[0] == 0:
        raise ValueError(f"{name} has an all-zero row: its cosine to anything is undefined.")
    return norms


def multilabel_assign(X, centers, k=8, *, chunk_size=None):
    """Each sample's ``k`` centres of largest cosine: MLCD's multi-label targets.

    The cosines are computed one chunk of rows at a time (a matrix product with the
    centres, then the top ``k`` of each row), so the n x K similarity matrix is never
    held: memory is O(chunk x K) beyond the data. Rows of ``X`` and of ``centers`` are
    L2-normalised here (an all-zero row is an error).

    Parameters
    ----------
    X : array of shape (n_samples, n_features)
        Embeddings (NumPy, PyTorch, CuPy or another array-API array).
    centers : array of shape (n_clusters, n_features)
        Cluster centres, e.g. ``SphericalKMeans(...).fit(X).cluster_centers_``; copied to
        the namespace, device and dtype of ``X``.
    k : int, default=8
        Labels per sample (MLCD uses 8), at most ``n_clusters``.
    chunk_size : int or None, default=None
        Rows per matrix product. None: as in :class:`clusterlab.SphericalKMeans`, the
        blocks of similarities stay within 64 MiB.

    Returns
    -------
    indices : array of shape (n_samples, k), int64
        Centre indices, by decreasing cosine (ties: lower index first).
    similarities : array of shape (n_samples, k)
        Their cosines, in the dtype of ``X``.

    Notes
    -----
    A Dask array ``X`` (rows in chunks) gives two Dask arrays chunked along the rows as
    ``X``; computing them runs the NumPy path once per chunk on the worker that holds it,
    with the centres (a NumPy array, checked now) sent once to each worker. The rows of
    ``X`` are checked (finite, nonzero) when a chunk is computed.

    Examples
    --------
    >>> import numpy as np
    >>> from clusterlab import multilabel_assign
    >>> centers = np.eye(3)
    >>> indices, similarities = multilabel_assign([[2.0, 1.0, 0.0]], centers, k=2)
    >>> indices.tolist(), np.round(similarities, 3).tolist()
    ([[0, 1]], [[0.894, 0.447]])
    """
    if is_dask_array(X):  # row chunks assigned on the workers, lazily
        return _multilabel_assign_dask(X, centers, k, chunk_size)
    X = check_float_matrix(X, "X")
    xp, where = get_namespace(X), device(X)
    centers = check_float_matrix(centers, "centers")
    centers = xp.astype(to_namespace(xp, centers, where), X.dtype)
    n_clusters = centers.shape[0]
    if centers.shape[1] != X.shape[1]:
        raise ValueError(f"centers have {centers.shape[1]} features but X has {X.shape[1]}.")
    k = check_count(k, "k")
    if k > n_clusters:
        raise ValueError(f"k={k} is larger than the number of centres ({n_clusters}).")
    chunk_size = check_count(chunk_size, "chunk_size", allow_none=True)
    itemsize = 4 if X.dtype == xp.float32 else 8
    norms = _unit_rows_and_norms(xp, X, "X")
    centers = centers / _unit_rows_and_norms(xp, centers, "centers")[:, None]
    n = X.shape[0]
    if is_numpy_namespace(xp):
        chunk = chunk_size or _skm.default_chunk_size(n_clusters, itemsize)
        indices = np.empty((n, k), dtype=np.int64)
        values = np.empty((n, k), dtype=X.dtype)

        def work(S, start):
            top, index = topk(xp, S, k, axis=1)
            stop = start + S.shape[0]
            indices[start:stop] = index
            values[start:stop] = top / norms[start:stop, None]

        _skm.map_blocks(np.ascontiguousarray(X), np.ascontiguousarray(centers), chunk, work)
        return indices, values
    chunk = chunk_size or max(1, _skm.CHUNK_BYTES // (n_clusters * itemsize))
    indices, values = [], []
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        top, index = topk(xp, X[start:stop, ...] @ centers.T, k, axis=1)
        indices.append(xp.astype(index, xp.int64))
        values.append(top / norms[start:stop, None])
    if len(indices) == 1:
        return indices[0], values[0]
    return xp.concat(indices, axis=0), xp.concat(values, axis=0)


def _assign_block(block, centers, k, chunk_size):
    return multilabel_assign(block, centers, k, chunk_size=chunk_size)


def _multilabel_assign_dask(X, centers, k, chunk_size):
    """:func:`multilabel_assign` of a row-chunked Dask ``X``: two Dask arrays chunked as
    ``X``, each chunk computed by the NumPy path on a worker. The centres, ``k`` and the
    shapes are checked now; the rows of ``X`` (finite, nonzero) when a chunk is computed."""
    if is_dask_array(centers):
        centers = centers.compute()  # K x d: small
    centers = check_float_matrix(to_numpy(centers) if is_array(centers) else centers, "centers")
    X = check_rows(X, "X", None, "multilabel_assign")
    if centers.shape[1] != X.shape[1]:
        raise ValueError(f"centers have {centers.shape[1]} features but X has {X.shape[1]}.")
    k = check_count(k, "k")
    if k > centers.shape[0]:
        raise ValueError(f"k={k} is larger than the number of centres ({centers.shape[0]}).")
    chunk_size = check_count(chunk_size, "chunk_size", allow_none=True)
    _unit_rows_and_norms(np, centers, "centers")
    dtype = np.dtype(np.float32) if X.dtype == np.float32 else np.dtype(np.float64)
    return map_rows(
        _assign_block,
        X,
        shared(centers),
        k,
        chunk_size,
        outputs=[(np.int64, k), (dtype, k)],
        name="multilabel-assign",
    )


def _check_loss_input(S, positives):
    """``S`` as a float matrix and ``positives`` as int64 indices on its device, checked
    (one host sync for the range and duplicate tests)."""
    S = check_float_matrix(S, "S")
    xp, where = get_namespace(S), device(S)
    n, n_clusters = S.shape
    if not is_array(positives):
        positives = np.asarray(positives)
    if (
        is_array(positives)
        and not isinstance(positives, np.ndarray)
        and get_namespace(positives) is not xp
    ):
        positives = to_numpy(positives)
    positives = to_namespace(xp, positives, where)
    if (
        not xp.isdtype(positives.dtype, "integral")
        or positives.ndim != 2
        or positives.shape[0] != n
    ):
        raise ValueError(
            f"positives must be an integer array of shape ({n}, n_positives) (indices of "
            f"each row's positive columns of S), got {positives.dtype} "
            f"{tuple(positives.shape)}."
        )
    n_positives = positives.shape[1]
    if not 1 <= n_positives < n_clusters:
        raise ValueError(
            f"each row needs between 1 and {n_clusters - 1} positives (S has {n_clusters} "
            f"columns), got {n_positives}."
        )
    positives = xp.astype(positives, xp.int64)
    ordered = xp.sort(positives, axis=1)
    repeated = xp.sum(xp.astype(ordered[:, 1:] == ordered[:, :-1], xp.int64))
    low, high, repeats = host_floats(xp, xp.min(positives), xp.max(positives), repeated)
    if low < 0 or high >= n_clusters:
        raise ValueError(
            f"positives must index the {n_clusters} columns of S, got values in "
            f"[{int(low)}, {int(high)}]."
        )
    if repeats:
        raise ValueError("positives repeat a column within a row; each must be distinct.")
    return xp, S, positives


def _positive_mask(xp, positives, n_clusters, where):
    """Boolean (n, K) mask of the positive columns of each row."""
    columns = xp.arange(n_clusters, dtype=xp.int64, device=where)[None, :]
    mask = positives[:, 0:1] == columns
    for j in range(1, positives.shape[1]):
        mask = mask | (positives[:, j : j + 1] == columns)
    return mask


def _log1p_sum_exp(xp, logits):
    """``log(1 + sum_j exp(logits_j))`` per row: log-sum-exp with a zero logit."""
    zero = xp.zeros((logits.shape[0], 1), dtype=logits.dtype, device=device(logits))
    return logsumexp(xp, xp.concat([zero, logits], axis=1), axis=1)


def _mean_loss(xp, per_row):
    loss = xp.mean(per_row)
    return float(loss) if is_numpy_namespace(xp) else loss


def mlc_loss(S, positives, *, scale=1.0):
    """MLCD's multi-label classification loss (MLC), the mean over samples of

    ``log(1 + Σ_{j∈Ω_n} e^{s_j} Σ_{i∈Ω_p} e^{-s_i})``,

    with ``s = scale * S[row]``, ``Ω_p`` the row's positive columns and ``Ω_n`` all the
    others. Computed as ``logsumexp([0, lse_{Ω_n}(s) + lse_{Ω_p}(-s)])``: no overflow at
    any scale.

    Parameters
    ----------
    S : array of shape (n_samples, n_clusters)
        Similarities of each sample to every centre (cosines), any array-API array.
    positives : integer array of shape (n_samples, n_positives)
        Each row's positive columns (distinct), e.g. the ``indices`` of
        :func:`multilabel_assign`; moved to the namespace and device of ``S``.
        ``1 <= n_positives < n_clusters``.
    scale : float > 0, default=1.0
        Multiplies the similarities (ArcFace-style; the value MLCD uses is not
        published in the paper).

    Returns
    -------
    loss : float, or 0-d array
        A float for NumPy input; otherwise a 0-d array of ``S``'s namespace on its
        device, carrying the autograd graph on PyTorch (``loss.backward()``).

    Examples
    --------
    >>> import numpy as np
    >>> from clusterlab import mlc_loss
    >>> S = np.array([[0.9, 0.1, -0.2], [0.0, 0.8, 0.7]])
    >>> round(mlc_loss(S, [[0], [1]]), 4)
    0.717
    """
    xp, S, positives = _check_loss_input(S, positives)
    scale = check_positive(scale, "scale")
    s = S * scale
    mask = _positive_mask(xp, positives, S.shape[1], device(S))
    negative_inf = xp.asarray(-math.inf, dtype=s.dtype, device=device(s))
    lse_negatives = logsumexp(xp, xp.where(mask, negative_inf, s), axis=1)
    lse_positives = logsumexp(xp, -xp.take_along_axis(s, positives, axis=1), axis=1)
    per_row = _log1p_sum_exp(xp, (lse_negatives + lse_positives)[:, None])
    return _mean_loss(xp, per_row)


def negative_columns(n_columns, neg_ratio, random_state=None):
    """The columns :func:`mlcd_loss` draws as candidate negatives: a boolean NumPy mask
    of ``ceil(neg_ratio * n_columns)`` columns chosen uniformly without replacement
    (all columns when ``neg_ratio`` is 1). ``random_state`` as in :func:`mlcd_loss`."""
    if neg_ratio >= 1:
        return np.ones(n_columns, dtype=bool)
    rng = check_random_state(random_state)
    size = min(n_columns, math.ceil(neg_ratio * n_columns))
    mask = np.zeros(n_columns, dtype=bool)
    mask[rng.choice(n_columns, size, replace=False)] = True
    return mask


def mlcd_loss(S, positives, *, neg_ratio=0.1, scale=1.0, random_state=None):
    """MLCD's loss with sampled negatives, the mean over samples of

    ``log(1 + Σ_{i∈Ω_p} e^{-s_i}) + log(1 + Σ_{j∈Ω'_n} e^{s_j})``,

    with ``s = scale * S[row]``, ``Ω_p`` the row's positive columns and ``Ω'_n`` its
    negatives among a random ``neg_ratio`` share of the columns (the same columns for
    the whole batch, as partial-FC samples class centres; redrawn at every call; see
    :func:`negative_columns`). It equals ``log(1 + A + B + AB)`` with ``A = Σ e^{-s_i}``,
    ``B = Σ e^{s_j}``; each term is a log-sum-exp with a zero logit, finite at any scale.

    Parameters
    ----------
    S : array of shape (n_samples, n_clusters)
        Similarities of each sample to every centre (cosines), any array-API array.
    positives : integer array of shape (n_samples, n_positives)
        Each row's positive columns (distinct), e.g. the ``indices`` of
        :func:`multilabel_assign`; moved to the namespace and device of ``S``.
    neg_ratio : float in (0, 1], default=0.1
        Share of the columns drawn as candidate negatives (MLCD: 0.1; 1.0 uses every
        negative).
    scale : float > 0, default=1.0
        Multiplies the similarities (ArcFace-style scale, a parameter: the value MLCD
        uses is not published in the paper).
    random_state : int, RandomState instance or None, default=None
        Draws the negative columns (on the host; the mask is copied to the device). An
        int gives the same columns at every call (for tests and gradient checks).

    Returns
    -------
    loss : float, or 0-d array
        A float for NumPy input; otherwise a 0-d array of ``S``'s namespace on its
        device, carrying the autograd graph on PyTorch (``loss.backward()``).

    Examples
    --------
    >>> import numpy as np
    >>> from clusterlab import mlcd_loss
    >>> S = np.array([[0.9, 0.1, -0.2], [0.0, 0.8, 0.7]])
    >>> round(mlcd_loss(S, [[0], [1]], neg_ratio=1.0), 4)
    1.5875

    In a PyTorch training step (``z``: normalised embeddings, ``C``: the centres,
    ``targets``: ``multilabel_assign(...)[0]`` for the batch)::

        loss = mlcd_loss(z @ C.T, targets, neg_ratio=0.1, scale=32.0)
        loss.backward()
    """
    xp, S, positives = _check_loss_input(S, positives)
    if (
        not isinstance(neg_ratio, numbers.Real)
        or isinstance(neg_ratio, bool)
        or not 0 < neg_ratio <= 1
    ):
        raise ValueError(f"neg_ratio must be a number in (0, 1], got {neg_ratio!r}.")
    scale = check_positive(scale, "scale")
    where = device(S)
    s = S * scale
    sampled = xp.asarray(negative_columns(S.shape[1], neg_ratio, random_state), device=where)
    negatives = sampled[None, :] & ~_positive_mask(xp, positives, S.shape[1], where)
    negative_inf = xp.asarray(-math.inf, dtype=s.dtype, device=where)
    positive_term = _log1p_sum_exp(xp, -xp.take_along_axis(s, positives, axis=1))
    negative_term = _log1p_sum_exp(xp, xp.where(negatives, s, negative_inf))
    return _mean_loss(xp, positive_term + negative_term)
