"""Numba kernel preprocessing the features of many few-shot tasks in one cache-resident pass."""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange


@njit(parallel=True, cache=True)
def stack_tasks(support, queries, center, normalise, shift, out):
    """Stack each task's support and queries, centre, L2-normalise, shift the queries.

    Per task ``t``: ``out[t, :s] = f(support[t])`` and ``out[t, s:] = f(queries[t])`` with
    ``f(x) = (x - c) / ||x - c||`` (``c = center[t]``; no division when ``normalise`` is
    False; zero rows stay zero); then, if ``shift``, the queries move by
    ``mean(support rows) - mean(query rows)``.

    IN: support (T, s, d); queries (T, q, d); center (T, d); normalise, shift: bool.
    OUT: out (T, s + q, d).
    """
    n_tasks, n_support, n_features = support.shape
    n_query = queries.shape[1]
    for t in prange(n_tasks):
        for p in range(n_support + n_query):
            source = support[t, p] if p < n_support else queries[t, p - n_support]
            row = out[t, p]
            norm = 0.0
            for j in range(n_features):
                row[j] = source[j] - center[t, j]
                norm += row[j] * row[j]
            if normalise and norm > 0.0:
                inv = 1.0 / math.sqrt(norm)
                for j in range(n_features):
                    row[j] *= inv
        if shift:
            offset = np.zeros(n_features)
            for p in range(n_support):
                for j in range(n_features):
                    offset[j] += out[t, p, j] / n_support
            for p in range(n_support, n_support + n_query):
                for j in range(n_features):
                    offset[j] -= out[t, p, j] / n_query
            for p in range(n_support, n_support + n_query):
                for j in range(n_features):
                    out[t, p, j] += offset[j]
