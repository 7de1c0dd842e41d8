"""Number of clusters from partial labels: the k-means baseline of generalized category discovery.

A clustering into ``k`` clusters of all samples is scored by how well it recovers the known
labels; the best-scoring ``k`` is found with Brent's bounded scalar search.
"""

from __future__ import annotations

import numbers

import numpy as np
from scipy.optimize import minimize_scalar
from sklearn.cluster import KMeans
from sklearn.utils import check_random_state

from clusterlab._labels import partial_labels
from clusterlab._validation import check_count, check_float_matrix
from clusterlab.metrics import clustering_accuracy

__all__ = ["estimate_n_clusters"]


def estimate_n_clusters(
    X, y, *, k_min=None, k_max=None, n_init=10, random_state=None, return_scores=False
):
    """Estimate the number of classes from partially labeled data, as the GCD baseline does.

    This is the estimate of the number of categories used as a baseline in generalized
    category discovery (GCD), from Vaze, Han, Vedaldi and Zisserman, "Generalized Category
    Discovery" (CVPR 2022). For a candidate ``k``, scikit-learn's
    :class:`~sklearn.cluster.KMeans` with ``k`` clusters is run on all samples, labeled and
    unlabeled; the clustering is scored by its Hungarian accuracy
    (:func:`clusterlab.metrics.clustering_accuracy`) on the labeled samples only. The score
    is maximised over ``k`` in ``[k_min, k_max]`` with Brent's bounded method
    (:func:`scipy.optimize.minimize_scalar` with ``method="bounded"``), the continuous
    variable being rounded to the nearest integer; each integer ``k`` is clustered once.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        Features of all samples (a NumPy-compatible array).
    y : array-like of shape (n_samples,)
        Class labels of the labeled samples (integers, strings, ...), -1 for unlabeled
        ones. At least one sample must be labeled and at least one unlabeled.
    k_min : int or None, default=None
        Smallest candidate; by default the number of distinct labeled classes ``C``.
    k_max : int or None, default=None
        Largest candidate, at most ``n_samples`` and greater than ``k_min``; by default
        ``min(n_samples, max(3 * C, k_min) + 10)``: room for twice as many new classes as
        labeled ones, and some more for few classes.
    n_init : int, default=10
        k-means restarts per candidate (``KMeans(n_init=...)``); more restarts make the
        score less noisy, which the search relies on.
    random_state : int, RandomState instance or None, default=None
        Every k-means run gets the same seed: an int is passed to ``KMeans`` as is; from a
        RandomState instance or None (NumPy's global generator) one seed is drawn first.
    return_scores : bool, default=False
        Also return the score of every candidate that was clustered.

    Returns
    -------
    k : int
        The candidate with the highest score among those evaluated (the smallest one on
        ties). Brent's method looks for a local maximum: the score is not unimodal in
        general, so ``k`` need not be the best in the whole range.
    scores : dict of int to float
        Only with ``return_scores``: labeled-sample accuracy of each evaluated ``k``,
        sorted by ``k``.

    Notes
    -----
    Surplus clusters count as errors on the labeled samples, so a ``k`` that splits a
    labeled class scores lower, as does one that merges two labeled classes. Unlabeled
    samples influence the score only through the clustering: splitting a new class, or
    merging it into another class, costs nothing. On well-separated data the score is
    therefore flat over a range of ``k`` around the true number of classes, and the
    estimate can land anywhere on that plateau (in practice often one below the truth,
    ties going to the smallest ``k``). The search is also sensitive to the bounds, as
    Brent's method samples a step function: a tight ``k_max`` helps. The bounded method
    never evaluates the ends of the interval themselves, only points rounding to them.

    Examples
    --------
    Six blobs, half of the samples of three of them labeled:

    >>> from sklearn.datasets import make_blobs
    >>> from clusterlab.mixture import estimate_n_clusters
    >>> from clusterlab.datasets import make_gcd_split
    >>> X, y = make_blobs(n_samples=600, centers=6, n_features=10, random_state=2)
    >>> split = make_gcd_split(y, old_classes=[0, 1, 2], random_state=2)
    >>> estimate_n_clusters(X, split.y_partial, k_max=12, random_state=0)
    6
    """
    X = check_float_matrix(X)
    if not isinstance(X, np.ndarray):
        raise ValueError(
            "X must be a NumPy-compatible array: scikit-learn's KMeans runs on the CPU."
        )
    n_samples = X.shape[0]
    codes = partial_labels(y, n_samples).codes  # any label type, -1 unlabeled
    labeled = codes != -1
    n_labeled = int(labeled.sum())
    if n_labeled == 0:
        raise ValueError("y has no labeled samples (every label is -1); nothing to score k on.")
    if n_labeled == n_samples:
        raise ValueError(
            "every sample of y is labeled: the number of classes is the number of labels; "
            "mark unlabeled samples with -1."
        )
    n_classes = np.unique(codes[labeled]).shape[0]
    k_min = n_classes if k_min is None else check_count(k_min, "k_min")
    k_max = (
        min(n_samples, max(3 * n_classes, k_min) + 10)
        if k_max is None
        else check_count(k_max, "k_max")
    )
    if k_max > n_samples:
        raise ValueError(f"k_max={k_max} exceeds the number of samples, {n_samples}.")
    if k_max <= k_min:
        raise ValueError(f"k_max={k_max} must be greater than k_min={k_min}.")
    n_init = check_count(n_init, "n_init")
    if isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool):
        seed = int(random_state)
    else:
        seed = int(check_random_state(random_state).randint(np.iinfo(np.int32).max))
    y_labeled = codes[labeled]
    scores = {}

    def score(k):
        if k not in scores:
            model = KMeans(n_clusters=k, n_init=n_init, random_state=seed)
            labels = model.fit_predict(X)
            scores[k] = clustering_accuracy(y_labeled, labels[labeled])
        return scores[k]

    minimize_scalar(
        lambda k: -score(int(np.clip(round(k), k_min, k_max))),
        bounds=(k_min, k_max),
        method="bounded",
    )
    scores = dict(sorted(scores.items()))
    best = max(scores, key=lambda k: (scores[k], -k))
    return (best, scores) if return_scores else best
