"""Clustering quality against reference labels.

Adjusted Rand index and normalised mutual information come from scikit-learn
(:func:`sklearn.metrics.adjusted_rand_score`, :func:`sklearn.metrics.normalized_mutual_info_score`);
this module adds the accuracy under the best one-to-one matching of clusters to classes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

__all__ = [
    "FewShotScore",
    "adjusted_rand_score",
    "clustering_accuracy",
    "evaluate_fewshot",
    "misclustering_error",
    "normalized_mutual_info_score",
]


def _contingency(y_true, y_pred):
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    if y_true.ndim != 1 or y_pred.ndim != 1:
        raise ValueError("y_true and y_pred must be 1-D label arrays.")
    if y_true.shape[0] != y_pred.shape[0]:
        raise ValueError(
            f"y_true and y_pred have different lengths ({y_true.shape[0]} and {y_pred.shape[0]})."
        )
    if y_true.shape[0] == 0:
        raise ValueError("y_true and y_pred are empty.")
    _, true_idx = np.unique(y_true, return_inverse=True)
    _, pred_idx = np.unique(y_pred, return_inverse=True)
    table = np.zeros((pred_idx.max() + 1, true_idx.max() + 1), dtype=np.int64)
    np.add.at(table, (pred_idx, true_idx), 1)
    return table


def clustering_accuracy(y_true, y_pred):
    """Fraction of samples whose cluster is matched to their class.

    Clusters and classes are matched one-to-one so as to maximise the number of agreeing
    samples (Hungarian method, :func:`scipy.optimize.linear_sum_assignment`). Surplus
    clusters (more clusters than classes) match nothing, so their samples count as errors.

    Examples
    --------
    >>> from clusterlab.metrics import clustering_accuracy
    >>> clustering_accuracy([0, 0, 1, 1], [1, 1, 0, 0])
    1.0
    >>> clustering_accuracy([0, 0, 1, 1], [0, 1, 2, 3])
    0.5
    """
    table = _contingency(y_true, y_pred)
    rows, cols = linear_sum_assignment(table, maximize=True)
    return float(table[rows, cols].sum() / table.sum())


def misclustering_error(y_true, y_pred):
    """``1 - clustering_accuracy(y_true, y_pred)``: the fraction of misassigned samples.

    Examples
    --------
    >>> from clusterlab.metrics import misclustering_error
    >>> misclustering_error([0, 0, 1, 1], [0, 0, 0, 1])
    0.25
    """
    return 1.0 - clustering_accuracy(y_true, y_pred)


@dataclass(frozen=True)
class FewShotScore:
    """Accuracy over few-shot tasks.

    Attributes
    ----------
    accuracy : float
        Mean over tasks of the fraction of queries classified correctly.
    ci95 : float
        Half-width of the 95% confidence interval, ``1.96 std / sqrt(n_tasks)``.
    task_accuracies : ndarray of shape (n_tasks,)
    """

    accuracy: float
    ci95: float
    task_accuracies: np.ndarray

    def __str__(self):
        return f"{100 * self.accuracy:.2f} +- {100 * self.ci95:.2f} %"


def evaluate_fewshot(y_true, y_pred):
    """Mean query accuracy over tasks and its 95% interval, as few-shot papers report it.

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n_tasks, n_query)

    Returns
    -------
    FewShotScore

    Examples
    --------
    >>> from clusterlab.metrics import evaluate_fewshot
    >>> score = evaluate_fewshot([[0, 1], [0, 1]], [[0, 1], [1, 1]])
    >>> score.accuracy, str(score)
    (0.75, '75.00 +- 34.65 %')
    """
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    if y_true.ndim != 2 or y_true.shape != y_pred.shape or y_true.size == 0:
        raise ValueError(
            "y_true and y_pred must be non-empty arrays of the same shape (n_tasks, n_query), "
            f"got {y_true.shape} and {y_pred.shape}."
        )
    per_task = (y_true == y_pred).mean(axis=1)
    ci95 = 1.96 * per_task.std() / np.sqrt(per_task.shape[0])
    return FewShotScore(float(per_task.mean()), float(ci95), per_task)
