"""Hard labels with prescribed cluster sizes, from a transport plan or a score matrix."""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["round_to_proportions", "round_to_sizes", "target_sizes"]


def target_sizes(n, proportions):
    """Integer cluster sizes summing to ``n``, each within one of ``n * proportions``.

    Largest-remainder rounding: every cluster gets ``floor(n p_k)``, and the samples left
    over go to the clusters with the largest fractional parts (ties: lowest index).
    """
    ideal = n * np.asarray(proportions, dtype=np.float64)
    sizes = np.floor(ideal).astype(np.int64)
    short = n - int(sizes.sum())
    order = np.argsort(-(ideal - sizes), kind="stable")
    sizes[order[:short]] += 1
    return sizes


@njit(cache=True)
def _greedy_round(scores, sizes, n_spare, spare_free, order):  # pragma: no cover - compiled
    # IN: scores (n, K), higher is better; sizes (K,) guaranteed places, summing to
    #     n - n_spare; n_spare places, at most one each for the clusters where spare_free
    #     (K,) is True (at least n_spare of them); order (n,) the visiting order.
    # OUT: labels (n,)
    n, K = scores.shape
    remaining = sizes.copy()
    spare_free = spare_free.copy()
    labels = np.full(n, -1, dtype=np.int64)
    deferred = np.empty(n, dtype=np.int64)
    n_deferred = 0
    for i in order:
        k = np.argmax(scores[i])
        if remaining[k] > 0:
            remaining[k] -= 1
        elif n_spare > 0 and spare_free[k]:
            spare_free[k] = False
            n_spare -= 1
        else:
            deferred[n_deferred] = i
            n_deferred += 1
            continue
        labels[i] = k
    for j in range(n_deferred):
        i = deferred[j]
        best, best_score = -1, -np.inf
        for k in range(K):
            has_room = remaining[k] > 0 or (n_spare > 0 and spare_free[k])
            if has_room and (best < 0 or scores[i, k] > best_score):
                best, best_score = k, scores[i, k]
        if remaining[best] > 0:
            remaining[best] -= 1
        else:
            spare_free[best] = False
            n_spare -= 1
        labels[i] = best
    return labels


def _confidence_order(scores):
    return np.argsort(-scores.max(axis=1), kind="stable")


def round_to_sizes(scores, sizes):
    """Labels maximising the scores greedily under exact cluster sizes.

    Samples are visited from the most to the least confident (largest row maximum); each
    takes its best cluster while that cluster has room. Samples whose best cluster is full
    then take their best cluster with room, in the same order. Cluster ``k`` receives
    exactly ``sizes[k]`` samples. This is a greedy rounding, not the optimal
    capacity-constrained assignment, but from a converged balanced plan few samples
    are deferred.
    """
    scores = np.ascontiguousarray(scores)
    sizes = np.asarray(sizes, dtype=np.int64)
    if int(sizes.sum()) != scores.shape[0]:
        raise ValueError(f"sizes sum to {int(sizes.sum())}, not to the {scores.shape[0]} samples")
    no_spare = np.zeros(sizes.shape[0], dtype=np.bool_)
    return _greedy_round(scores, sizes, 0, no_spare, _confidence_order(scores))


def round_to_proportions(scores, proportions):
    """Greedy labels with cluster ``k`` holding ``floor(n p_k)`` or ``ceil(n p_k)`` samples.

    Each cluster has ``floor(n p_k)`` guaranteed places; the ``n - sum_k floor(n p_k)``
    places left over go to the clusters the samples prefer among those whose ``n p_k`` is
    fractional, one at most per cluster, so every size is strictly within one of
    ``n p_k``. Visiting order and deferral as in :func:`round_to_sizes`.
    """
    scores = np.ascontiguousarray(scores)
    proportions = np.asarray(proportions, dtype=np.float64)
    if abs(proportions.sum() - 1.0) > 1e-6 or np.any(proportions < 0):
        raise ValueError("proportions must be nonnegative and sum to 1.")
    ideal = scores.shape[0] * (proportions / proportions.sum())
    sizes = np.floor(ideal + 1e-9).astype(np.int64)  # 1e-9: 0.3 * 10 is 3, not 2.99..
    fractional = ideal - sizes > 1e-9
    n_spare = scores.shape[0] - int(sizes.sum())
    return _greedy_round(scores, sizes, n_spare, fractional, _confidence_order(scores))
