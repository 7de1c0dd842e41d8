"""Episode accuracy of many ``lam`` values at once, for calibrating transductive few-shot.

:meth:`clusterlab.TransductiveFewShot.calibrate` draws few-shot episodes from labeled base
classes and keeps the setting with the best mean query accuracy. Every candidate is scored
on the same episodes, and everything that does not depend on ``lam`` is computed once per
chunk of episodes, not once per candidate:

- the features of the chunk are gathered from the base matrix (row indices, so 1,000
  episodes of 768-dimensional embeddings are never held at once);
- preprocessing (centring on the base mean, unit norm, query shift) and the task's kNN
  graph (:func:`.graph.batched_knn_affinity`), both independent of ``lam``;
- then :func:`.bound.fit_prototypes` runs once per candidate on the shared points and
  graph, all episodes of the chunk as one batched problem.

The SimpleShot baseline (nearest support mean of the centred, unit-norm features, no query
shift) is scored on the same episodes. Each candidate's predictions are those of
:func:`.fewshot.infer_tasks` with that ``lam`` (the same steps in the same order), so the
scores equal those of :meth:`~clusterlab.TransductiveFewShot.predict_tasks`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import scipy.sparse as sp

from ._backend import single_threaded_blas
from .bound import fit_prototypes
from .fewshot import infer_tasks, preprocess_tasks
from .graph import batched_knn_affinity

__all__ = ["SIMPLESHOT", "EpisodeScores", "episode_scores"]

# Points (support + queries) per chunk of episodes, as in TransductiveFewShot.
_CHUNK_POINTS = 50_000

#: The SimpleShot setting of :class:`~.fewshot.FewShotSettings`: nearest support mean,
#: no graph, no prototype update, no query shift.
SIMPLESHOT = {"lam": 0.0, "prototypes": "fixed", "shift_queries": False}


@dataclass
class EpisodeScores:
    """Output of :func:`episode_scores`.

    Attributes
    ----------
    lams : ndarray of shape (n_candidates,)
    correct : ndarray of shape (n_candidates, n_episodes), int64
        Queries classified correctly by each candidate ``lam`` in each episode.
    n_query : int
        Queries per episode.
    unsettled : ndarray of shape (n_candidates,)
        Episodes whose labels had not settled when the solver stopped (``max_iter``
        rounds, or a class about to lose all its points), per candidate.
    capped : ndarray of shape (n_candidates,)
        Episodes whose last bound iterations stopped at ``max_bound_iter``.
    simpleshot : ndarray of shape (n_episodes,) or None
        Queries classified correctly by SimpleShot in each episode (None when not asked
        for).
    """

    lams: np.ndarray
    correct: np.ndarray
    n_query: int
    unsettled: np.ndarray
    capped: np.ndarray
    simpleshot: np.ndarray | None

    @property
    def accuracy(self):
        """Query accuracy of each candidate on each episode, (n_candidates, n_episodes)."""
        return self.correct / self.n_query


def _no_edges(n_points):
    return sp.csr_matrix((n_points, n_points))


def episode_scores(
    X,
    support_rows,
    support_codes,
    query_rows,
    query_codes,
    n_way,
    lams,
    settings,
    *,
    simpleshot=True,
):
    """Query accuracy of every ``lam`` in ``lams`` (and of SimpleShot) on every episode.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        float32 or float64, finite: the base samples the episodes are drawn from.
    support_rows : integer ndarray of shape (n_episodes, n_support)
        Rows of ``X`` forming each episode's support set.
    support_codes : integer ndarray of shape (n_episodes, n_support)
        Class index in ``[0, n_way)`` of each support sample; every class has at least one.
    query_rows : integer ndarray of shape (n_episodes, n_query)
    query_codes : integer ndarray of shape (n_episodes, n_query)
        Class index of each query, in the same coding as ``support_codes``.
    n_way : int
    lams : sequence of float
        Candidate values, each >= 0; run with ``settings``' other fields.
    settings : FewShotSettings
        Prototype kind, preprocessing (``base_mean`` included), query shift, graph and
        stopping parameters shared by every candidate; its ``lam`` is ignored.
    simpleshot : bool, default=True
        Also score SimpleShot (:data:`SIMPLESHOT` replacing those fields of ``settings``).

    Returns
    -------
    EpisodeScores
        Counts of correct queries; SimpleShot's from :func:`.fewshot.infer_tasks` with
        :data:`SIMPLESHOT`, each candidate's from the steps of ``infer_tasks`` with the
        preprocessing and graph computed once per chunk.
    """
    lams = np.asarray(lams, dtype=np.float64).reshape(-1)
    n_episodes, n_support = support_rows.shape
    n_points = n_support + query_rows.shape[1]
    correct = np.empty((lams.size, n_episodes), dtype=np.int64)
    unsettled = np.zeros(lams.size, dtype=np.int64)
    capped = np.zeros(lams.size, dtype=np.int64)
    simple = np.empty(n_episodes, dtype=np.int64) if simpleshot else None
    simple_settings = replace(settings, **SIMPLESHOT)
    needs_graph = settings.prototypes in ("modes", "members")
    size = max(1, _CHUNK_POINTS // n_points)
    for start in range(0, n_episodes, size):
        part = slice(start, start + size)
        support, queries = X[support_rows[part]], X[query_rows[part]]
        codes, truth = support_codes[part], query_codes[part]
        n_tasks = support.shape[0]
        if simpleshot:
            solution = infer_tasks(support, codes, queries, n_way, simple_settings)
            simple[part] = (solution.proba.argmax(axis=2) == truth).sum(axis=1)
        points = preprocess_tasks(support, queries, settings)
        clamp = np.concatenate([codes, np.full(truth.shape, -1, dtype=codes.dtype)], axis=1)
        graph = None
        if needs_graph or np.any(lams > 0):
            graph = batched_knn_affinity(points, settings.n_neighbors, weights=settings.weights)
        one_hot = codes[:, None, :] == np.arange(n_way)[None, :, None]
        with single_threaded_blas():  # many tiny products
            means = (one_hot @ points[:, :n_support, :]) / one_hot.sum(axis=2, keepdims=True)
        sigma2 = np.ones(n_tasks) if graph is None else graph.sigma2
        sigma2 = np.where(sigma2 > 0, sigma2, 1.0)
        empty = None
        for index, lam in enumerate(lams):
            if lam > 0 or needs_graph:
                affinity = graph.affinity
            else:  # as infer_tasks: no pairwise term and no bandwidth, no graph
                empty = _no_edges(n_tasks * n_points) if empty is None else empty
                affinity = empty
            result = fit_prototypes(
                points,
                affinity,
                float(lam),
                means,
                clamp=clamp,
                kind=settings.prototypes,
                sigma2=sigma2,
                max_iter=settings.max_iter,
                tol=settings.tol,
                max_bound_iter=settings.max_bound_iter,
            )
            predicted = result.assignments[:, n_support:, :].argmax(axis=2)
            correct[index, part] = (predicted == truth).sum(axis=1)
            unsettled[index] += int(np.count_nonzero(~result.converged))
            capped[index] += int(np.count_nonzero(~result.bound_converged))
    return EpisodeScores(lams, correct, query_rows.shape[1], unsettled, capped, simple)
