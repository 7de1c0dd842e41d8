"""Clustering quality against reference labels.

Adjusted Rand index and normalised mutual information come from scikit-learn
(:func:`sklearn.metrics.adjusted_rand_score`, :func:`sklearn.metrics.normalized_mutual_info_score`);
this module adds the accuracy under the best one-to-one matching of clusters to classes, and its
split into known ("old") and novel ("new") classes used in generalized category discovery.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import (
    adjusted_rand_score,
    average_precision_score,
    normalized_mutual_info_score,
    roc_auc_score,
    roc_curve,
)

__all__ = [
    "FewShotScore",
    "GCDScore",
    "OODScore",
    "adjusted_rand_score",
    "aupr",
    "auroc",
    "clustering_accuracy",
    "edge_f1_score",
    "evaluate_fewshot",
    "evaluate_ood",
    "fpr_at_tpr",
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
    for name, labels in (("y_true", y_true), ("y_pred", y_pred)):
        _check_no_missing_labels(labels, name)
    _, true_idx = np.unique(y_true, return_inverse=True)
    _, pred_idx = np.unique(y_pred, return_inverse=True)
    table = np.zeros((pred_idx.max() + 1, true_idx.max() + 1), dtype=np.int64)
    np.add.at(table, (pred_idx, true_idx), 1)
    return table, true_idx, pred_idx


def _check_no_missing_labels(labels, name):
    """NaN or None is a missing label, not a class: np.unique would count each NaN apart."""
    if labels.dtype.kind == "f" and not np.isfinite(labels).all():
        raise ValueError(f"{name} holds NaN or infinite labels; labels must be defined.")
    if labels.dtype == object and any(label is None or label != label for label in labels):
        raise ValueError(f"{name} holds None or NaN labels; labels must be defined.")


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
    for name, labels in (("y_true", y_true), ("y_pred", y_pred)):
        _check_no_missing_labels(labels.ravel(), name)
    per_task = (y_true == y_pred).mean(axis=1)
    ci95 = 1.96 * per_task.std() / np.sqrt(per_task.shape[0])
    return FewShotScore(float(per_task.mean()), float(ci95), per_task)


# -- out-of-distribution detection --------------------------------------------------------


def _ood_inputs(y_true, scores):
    """``y_true`` as booleans (True = in-distribution) and ``scores`` as finite float64.

    Device arrays (PyTorch, CuPy, ...) are copied to the host: the curves are computed
    there by scikit-learn.
    """
    from clusterlab.solvers._backend import is_array, to_numpy

    y_true = to_numpy(y_true) if is_array(y_true) else y_true
    scores = to_numpy(scores) if is_array(scores) else scores
    y_true, scores = np.asarray(y_true), np.asarray(scores)
    if y_true.ndim != 1 or scores.ndim != 1 or y_true.shape != scores.shape:
        raise ValueError(
            "y_true and scores must be 1-D arrays of the same length, got shapes "
            f"{y_true.shape} and {scores.shape}."
        )
    if y_true.dtype != bool:
        if y_true.dtype.kind not in "iuf":
            raise ValueError(
                "y_true must hold 1 (or True) for in-distribution samples and 0, -1 (or "
                f"False) for out-of-distribution ones, got dtype {y_true.dtype}."
            )
        other = y_true[(y_true != 1) & (y_true != 0) & (y_true != -1)]
        if other.size:
            raise ValueError(
                "y_true must hold 1 for in-distribution samples and 0 or -1 for "
                f"out-of-distribution ones, got {other[0].item()!r}."
            )
        if np.any(y_true == 0) and np.any(y_true == -1):
            raise ValueError("y_true mixes 0 and -1 for out-of-distribution samples.")
        y_true = y_true == 1
    if y_true.all() or not y_true.any():
        raise ValueError(
            "y_true must hold both in-distribution (1) and out-of-distribution (0 or -1) "
            "samples: the curves are undefined otherwise."
        )
    if scores.dtype.kind not in "iuf":
        raise ValueError(f"scores must hold real numbers, got dtype {scores.dtype}.")
    scores = scores.astype(np.float64)
    if not np.isfinite(scores).all():
        raise ValueError("scores contains NaN or infinity.")
    return y_true, scores


def auroc(y_true, scores):
    """Area under the ROC curve of an in-distribution score (AUROC).

    In-distribution samples are the positive class, and a higher score means "more
    in-distribution" (the convention of ``score_samples`` in scikit-learn's outlier
    detectors and of :class:`clusterlab.ood.PrototypeOODDetector`). The value is the
    probability that an in-distribution sample scores above an out-of-distribution one,
    ties counting one half; it is :func:`sklearn.metrics.roc_auc_score`.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        1 or True for in-distribution samples; 0, -1 or False for out-of-distribution
        ones (so ``predict``'s +1/-1 output is accepted as it is). Both kinds must occur.
    scores : array-like of shape (n_samples,)
        In-distribution scores. NumPy, PyTorch, CuPy and other array-API arrays are
        accepted (copied to the host).

    Returns
    -------
    float

    Examples
    --------
    >>> from clusterlab.metrics import auroc
    >>> auroc([1, 1, 0, 0], [0.9, 0.4, 0.5, 0.1])
    0.75
    """
    y_true, scores = _ood_inputs(y_true, scores)
    return float(roc_auc_score(y_true, scores))


def aupr(y_true, scores):
    """Area under the precision-recall curve with in-distribution as the positive class.

    This is "AUPR-In" of the out-of-distribution literature, computed as scikit-learn's
    :func:`sklearn.metrics.average_precision_score`: ``sum_n (R_n - R_{n-1}) P_n`` over
    the distinct score values taken as thresholds in decreasing order, with ``P_n`` and
    ``R_n`` the precision and recall of "score >= threshold n". Tied scores form one
    threshold and no interpolation is made between thresholds (the trapezoidal rule would
    be optimistic). "AUPR-Out" is ``aupr(1 - y_true, -scores)`` for 0/1 labels.

    Parameters
    ----------
    y_true, scores : array-like of shape (n_samples,)
        As in :func:`auroc`.

    Returns
    -------
    float

    Examples
    --------
    >>> from clusterlab.metrics import aupr
    >>> aupr([1, 1, 0, 0], [0.9, 0.4, 0.5, 0.1])  # (1/2)(1/1) + (1/2)(2/3)
    0.8333333333333333
    """
    y_true, scores = _ood_inputs(y_true, scores)
    return float(average_precision_score(y_true, scores))


def fpr_at_tpr(y_true, scores, tpr=0.95):
    """False positive rate at a given true positive rate (FPR95 for ``tpr=0.95``).

    In-distribution samples are the positives and a sample is accepted when its score is
    at or above a threshold. The threshold is the largest score value at which at least
    a fraction ``tpr`` of the in-distribution samples is accepted; the result is the
    fraction of out-of-distribution samples accepted there. The threshold is always one
    of the scores, tied samples are accepted or rejected together, and nothing is
    interpolated between thresholds: where no threshold gives exactly ``tpr`` (few
    samples, or ties), the true positive rate reached is the first one above ``tpr``.
    Computed from :func:`sklearn.metrics.roc_curve` (``drop_intermediate=False``).

    Parameters
    ----------
    y_true, scores : array-like of shape (n_samples,)
        As in :func:`auroc`.
    tpr : float in (0, 1], default=0.95

    Returns
    -------
    float
        Lower is better.

    Examples
    --------
    >>> from clusterlab.metrics import fpr_at_tpr
    >>> y = [1, 1, 1, 1, 0, 0, 0, 0]
    >>> s = [0.9, 0.8, 0.7, 0.3, 0.75, 0.5, 0.2, 0.1]
    >>> fpr_at_tpr(y, s, tpr=0.75)  # threshold 0.7 accepts 3 of 4 inliers and 1 outlier
    0.25
    >>> fpr_at_tpr(y, s)  # 95 % needs all four inliers: threshold 0.3
    0.5
    """
    if isinstance(tpr, bool) or not isinstance(tpr, numbers.Real) or not 0 < tpr <= 1:
        raise ValueError(f"tpr must be a number in (0, 1], got {tpr!r}.")
    y_true, scores = _ood_inputs(y_true, scores)
    fprs, tprs, _ = roc_curve(y_true, scores, drop_intermediate=False)
    # tprs is non-decreasing and ends at 1: the first point reaching tpr is the largest
    # threshold that does, and its false positive rate the smallest among those that do
    return float(fprs[np.searchsorted(tprs, tpr, side="left")])


@dataclass(frozen=True)
class OODScore:
    """Out-of-distribution detection quality of an in-distribution score.

    Attributes
    ----------
    auroc : float
        :func:`auroc`, higher is better.
    aupr : float
        :func:`aupr` (AUPR-In), higher is better.
    fpr95 : float
        :func:`fpr_at_tpr` at 95 % TPR, lower is better.
    """

    auroc: float
    aupr: float
    fpr95: float

    def __str__(self):
        return (
            f"AUROC {100 * self.auroc:.2f}  AUPR {100 * self.aupr:.2f}  "
            f"FPR95 {100 * self.fpr95:.2f}"
        )


def evaluate_ood(scores_in, scores_out):
    """AUROC, AUPR-In and FPR95 from the scores of in- and out-of-distribution samples.

    Parameters
    ----------
    scores_in : array-like of shape (n_in,)
        Scores of in-distribution samples (the positives); higher = more in-distribution.
    scores_out : array-like of shape (n_out,)
        Scores of out-of-distribution samples.

    Returns
    -------
    OODScore

    Examples
    --------
    >>> from clusterlab.metrics import evaluate_ood
    >>> score = evaluate_ood([0.9, 0.8, 0.7, 0.3], [0.75, 0.5, 0.2, 0.1])
    >>> score.auroc, score.fpr95
    (0.8125, 0.5)
    >>> print(score)
    AUROC 81.25  AUPR 85.42  FPR95 50.00
    """
    from clusterlab.solvers._backend import is_array, to_numpy

    parts = []
    for name, scores in (("scores_in", scores_in), ("scores_out", scores_out)):
        scores = np.asarray(to_numpy(scores) if is_array(scores) else scores)
        if scores.ndim != 1 or scores.shape[0] == 0:
            raise ValueError(f"{name} must be a non-empty 1-D array, got shape {scores.shape}.")
        parts.append(scores)
    y_true = np.concatenate([np.ones(parts[0].shape[0], bool), np.zeros(parts[1].shape[0], bool)])
    y_true, scores = _ood_inputs(y_true, np.concatenate(parts))
    fprs, tprs, _ = roc_curve(y_true, scores, drop_intermediate=False)
    return OODScore(
        auroc=float(roc_auc_score(y_true, scores)),
        aupr=float(average_precision_score(y_true, scores)),
        fpr95=float(fprs[np.searchsorted(tprs, 0.95, side="left")]),
    )


def edge_f1_score(adjacency, labels_true, labels_pred):
    """Edge-level F1 of a graph partition: the EDGE score of DAG (Liu et al., 2024, Eqs. 14-15).

    Each observed edge ``{i, j}`` (an undirected pair of distinct nodes with a nonzero
    entry ``A_ij`` or ``A_ji``; weights and self-loops are ignored) is a positive when its
    ends share a true community and a predicted positive when they share a predicted
    one. With ``P`` the precision and ``R`` the recall of the predicted positives,

    ``EDGE = 2PR / (P + R) = 2 |true ∩ predicted| / (|true| + |predicted|)``.

    A partition with no predicted positive (every edge cut, e.g. all singletons) scores
    0, and so does one whose edges are all true inter-community edges.

    .. warning::
       EDGE rewards under-segmentation. One community for all nodes predicts every edge
       positive and scores ``2(1 - c) / (2 - c)``, ``c`` the share of observed edges that
       join different true communities: about 0.89 on Cora and 0.92 on the karate club.
       Report it beside NMI, never alone.

    Parameters
    ----------
    adjacency : sparse matrix or array-like of shape (n_samples, n_samples)
        The observed graph. A device array is copied to the host.
    labels_true, labels_pred : array-like of shape (n_samples,)
        True and predicted communities (any hashable labels).

    Returns
    -------
    float in [0, 1]

    Examples
    --------
    >>> import numpy as np
    >>> from clusterlab.metrics import edge_f1_score
    >>> A = np.array([[0, 1, 1, 0], [1, 0, 1, 0], [1, 1, 0, 1], [0, 0, 1, 0]])
    >>> truth = [0, 0, 0, 1]  # edges 01, 02, 12 inside, 23 across: c = 1/4
    >>> edge_f1_score(A, truth, truth)
    1.0
    >>> edge_f1_score(A, truth, [0, 1, 2, 3])  # all singletons
    0.0
    >>> edge_f1_score(A, truth, [0, 0, 0, 0])  # one community: 2(1 - c)/(2 - c)
    0.8571428571428571
    """
    import scipy.sparse as sp

    from clusterlab.solvers._backend import is_array, to_numpy

    def host(x):
        return to_numpy(x) if is_array(x) and not isinstance(x, np.ndarray) else x

    labels_true, labels_pred = np.asarray(host(labels_true)), np.asarray(host(labels_pred))
    for name, labels in (("labels_true", labels_true), ("labels_pred", labels_pred)):
        if labels.ndim != 1:
            raise ValueError(f"{name} must be 1-dimensional, got shape {labels.shape}.")
    n = labels_true.shape[0]
    if labels_pred.shape[0] != n:
        raise ValueError(
            f"labels_true and labels_pred have different lengths ({n} and {labels_pred.shape[0]})."
        )
    if sp.issparse(adjacency):
        pattern = sp.coo_matrix(adjacency)
    else:
        dense = np.asarray(host(adjacency))
        if dense.ndim != 2 or not (np.issubdtype(dense.dtype, np.number) or dense.dtype == bool):
            raise ValueError(
                f"adjacency must be a 2-D numeric array, got {dense.dtype} {dense.shape}."
            )
        pattern = sp.coo_matrix(dense)
    if pattern.shape != (n, n):
        raise ValueError(
            f"adjacency has shape {pattern.shape}; expected ({n}, {n}) for {n} labels."
        )
    if pattern.nnz and not np.all(np.isfinite(pattern.data)):
        raise ValueError("adjacency contains NaN or infinity.")
    stored = pattern.data != 0
    i, j = pattern.row[stored], pattern.col[stored]
    i, j = np.minimum(i, j), np.maximum(i, j)
    off_diagonal = i != j
    pairs = np.unique(i[off_diagonal].astype(np.int64) * n + j[off_diagonal])
    if pairs.shape[0] == 0:
        raise ValueError("adjacency has no edges between distinct nodes: EDGE is undefined.")
    i, j = pairs // n, pairs % n
    true_codes = np.unique(labels_true, return_inverse=True)[1].reshape(-1)
    pred_codes = np.unique(labels_pred, return_inverse=True)[1].reshape(-1)
    positive = true_codes[i] == true_codes[j]
    predicted = pred_codes[i] == pred_codes[j]
    n_predicted = int(predicted.sum())
    if n_predicted == 0:
        return 0.0
    both = int(np.count_nonzero(positive & predicted))
    return 2.0 * both / (int(positive.sum()) + n_predicted)
