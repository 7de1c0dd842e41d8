"""Hard labels with prescribed cluster sizes, from a transport plan or a score matrix."""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["round_to_sizes", "target_sizes"]


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
def _greedy_round(scores, sizes, order):  # pragma: no cover - compiled
    # IN: scores (n, K), higher is better; sizes (K,) summing to n; order (n,) sample order.
    # OUT: labels (n,)
    n, K = scores.shape
    remaining = sizes.copy()
    labels = np.full(n, -1, dtype=np.int64)
    deferred = np.empty(n, dtype=np.int64)
    n_deferred = 0
    for i in order:
        k = np.argmax(scores[i])
        if remaining[k] > 0:
            labels[i] = k
            remaining[k] -= 1
        else:
            deferred[n_deferred] = i
            n_deferred += 1
    for j in range(n_deferred):
        i = deferred[j]
        best, best_score = -1, -np.inf
        for k in range(K):
            if remaining[k] > 0 and (best < 0 or scores[i, k] > best_score):
                best, best_score = k, scores[i, k]
        labels[i] = best
        remaining[best] -= 1
    return labels


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
    order = np.argsort(-scores.max(axis=1), kind="stable")
    return _greedy_round(scores, sizes, order)
