"""Clustering quality against reference labels.

Adjusted Rand index and normalised mutual information come from scikit-learn
(:func:`sklearn.metrics.adjusted_rand_score`, :func:`sklearn.metrics.normalized_mutual_info_score`);
this module adds the accuracy under the best one-to-one matching of clusters to classes, and its
split into known ("old") and novel ("new") classes used in generalized category discovery.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

__all__ = [
    "FewShotScore",
    "GCDScore",
    "adjusted_rand_score",
    "clustering_accuracy",
    "evaluate_fewshot",
    "gcd_accuracy",
    "misclustering_error",
    "normalized_mutual_info_score",
]


def _contingency(y_true, y_pred):
    """Cluster-by-class counts, and each sample's class and cluster as indices into the table.

    Returns ``table`` of shape (n_clusters, n_classes), ``true_idx`` and ``pred_idx``: the
    column and row of every sample (its class and cluster, numbered in sorted order).
    """
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
    return table, true_idx, pred_idx


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
    table, _, _ = _contingency(y_true, y_pred)
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
class GCDScore:
    """Accuracy of a clustering of the unlabeled set in generalized category discovery.

    All three fractions come from one matching of clusters to classes (see
    :func:`gcd_accuracy`).

    Attributes
    ----------
    all : float
        Fraction of samples whose cluster is matched to their class.
    old : float
        The same fraction among samples of old (known) classes; nan if there are none.
    new : float
        The same fraction among samples of new (novel) classes; nan if there are none.
    """

    all: float
    old: float
    new: float

    def __str__(self):
        return f"All {100 * self.all:.1f}  Old {100 * self.old:.1f}  New {100 * self.new:.1f}"


def _check_old_mask(old_mask, n_samples):
    mask = np.asarray(old_mask)
    if mask.ndim != 1 or mask.shape[0] != n_samples:
        raise ValueError(
            f"old_mask must be a 1-D array of length {n_samples} (one flag per sample), "
            f"got shape {mask.shape}."
        )
    if mask.dtype == bool:
        return mask
    if mask.dtype.kind not in "iuf":
        raise ValueError(f"old_mask must be boolean (or 0/1), got dtype {mask.dtype}.")
    other = mask[(mask != 0) & (mask != 1)]
    if other.size:
        raise ValueError(f"old_mask must hold only 0 and 1 (or booleans), got {other[0].item()!r}.")
    return mask.astype(bool)


def gcd_accuracy(y_true, y_pred, old_mask):
    """All, Old and New accuracy of a clustering, as generalized category discovery reports it.

    This is the "v2" protocol of GCD benchmarks, applied to the unlabeled samples only (pass
    just those). Predicted clusters and true classes are matched one-to-one once, over all
    the given samples, so as to maximise the number of agreeing samples (Hungarian method,
    :func:`scipy.optimize.linear_sum_assignment`); surplus clusters or classes match nothing
    and their samples count as errors. Under that single matching, ``all`` is the fraction
    of samples whose cluster is matched to their class (it equals
    :func:`clustering_accuracy`), and ``old`` and ``new`` are the same fraction among the
    samples with ``old_mask`` True and False respectively.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        True classes of the unlabeled samples.
    y_pred : array-like of shape (n_samples,)
        Their predicted clusters; the ids need not relate to the class ids.
    old_mask : array-like of bool of shape (n_samples,)
        True for samples whose true class is an old (labeled) class, e.g.
        ``split.old_mask[split.unlabeled_mask]`` for a
        :class:`~clusterlab.datasets.GCDSplit`.

    Returns
    -------
    GCDScore
        ``old`` (or ``new``) is nan when no sample has ``old_mask`` True (or False).

    Notes
    -----
    When several matchings agree on equally many samples, ``all`` does not depend on which
    one is used but ``old`` and ``new`` may; the one returned by
    :func:`scipy.optimize.linear_sum_assignment` is used.

    Examples
    --------
    >>> from clusterlab.metrics import gcd_accuracy
    >>> score = gcd_accuracy([0, 0, 1, 1, 2, 2], [5, 5, 7, 7, 7, 9], [1, 1, 1, 1, 0, 0])
    >>> score.all, score.old, score.new
    (0.8333333333333334, 1.0, 0.5)
    >>> print(score)
    All 83.3  Old 100.0  New 50.0
    """
    table, true_idx, pred_idx = _contingency(y_true, y_pred)
    old_mask = _check_old_mask(old_mask, true_idx.shape[0])
    rows, cols = linear_sum_assignment(table, maximize=True)
    class_of_cluster = np.full(table.shape[0], -1, dtype=np.int64)  # -1: matched to nothing
    class_of_cluster[rows] = cols
    hit = class_of_cluster[pred_idx] == true_idx
    n_old = int(old_mask.sum())
    n_new = hit.shape[0] - n_old
    return GCDScore(
        all=float(hit.sum() / hit.shape[0]),
        old=float(hit[old_mask].sum() / n_old) if n_old else float("nan"),
        new=float(hit[~old_mask].sum() / n_new) if n_new else float("nan"),
    )


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
