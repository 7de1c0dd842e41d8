"""Generalized category discovery helpers: All/Old/New accuracy, label splits, K estimation."""

import dataclasses
from itertools import permutations

import numpy as np
import pytest
from sklearn.cluster import KMeans
from sklearn.datasets import make_blobs

from clusterlab import _n_clusters
from clusterlab._n_clusters import estimate_n_clusters
from clusterlab.datasets import GCDSplit, make_gcd_split
from clusterlab.metrics import GCDScore, clustering_accuracy, gcd_accuracy

# -- gcd_accuracy ------------------------------------------------------------------------


def brute_force_gcd(y_true, y_pred, old_mask):
    """Best total agreement over all one-to-one matchings, and the (old, new) accuracies of
    every matching that reaches it (ties may differ in how they split old and new)."""
    classes = list(np.unique(y_true))
    clusters = list(np.unique(y_pred))
    size = max(len(classes), len(clusters))
    # dummy labels, matched to the surplus clusters (or classes), agree with no sample
    classes += [f"no class {i}" for i in range(size - len(classes))]
    clusters += [f"no cluster {i}" for i in range(size - len(clusters))]
    best, splits = -1, set()
    for perm in permutations(classes):
        mapping = dict(zip(clusters, perm, strict=True))
        hit = np.array([mapping[p] == t for p, t in zip(y_pred, y_true, strict=True)])
        total = int(hit.sum())
        split = (hit[old_mask].mean(), hit[~old_mask].mean())
        if total > best:
            best, splits = total, {split}
        elif total == best:
            splits.add(split)
    return best / len(y_true), splits


def test_gcd_accuracy_matches_brute_force():
    rng = np.random.default_rng(0)
    for trial in range(40):
        n = int(rng.integers(4, 13))
        y_true = rng.integers(0, rng.integers(1, 6), n)
        y_pred = rng.integers(0, rng.integers(1, 6), n) + 10 * (trial % 2)  # ids unrelated
        old_mask = np.zeros(n, dtype=bool)
        old_mask[rng.permutation(n)[: rng.integers(1, n)]] = True  # both subsets non-empty
        score = gcd_accuracy(y_true, y_pred, old_mask)
        expected_all, splits = brute_force_gcd(y_true, y_pred, old_mask)
        assert score.all == pytest.approx(expected_all)
        assert score.all == clustering_accuracy(y_true, y_pred)
        assert any(
            score.old == pytest.approx(old) and score.new == pytest.approx(new)
            for old, new in splits
        )


def test_gcd_accuracy_perfect_and_permuted():
    y_true = [0, 0, 1, 1, 2, 2]
    old_mask = [True, True, True, True, False, False]
    assert gcd_accuracy(y_true, y_true, old_mask) == GCDScore(1.0, 1.0, 1.0)
    assert gcd_accuracy(y_true, [2, 2, 0, 0, 1, 1], old_mask) == GCDScore(1.0, 1.0, 1.0)
    # class ids need not be integers, nor old_mask booleans
    score = gcd_accuracy(["a", "a", "b", "b", "c", "c"], [7, 7, 3, 3, 5, 5], [1, 1, 1, 1, 0, 0])
    assert score == GCDScore(1.0, 1.0, 1.0)


def test_gcd_accuracy_one_matching_for_old_and_new():
    # Cluster 5 holds 2 old and 3 new samples, cluster 7 one old sample. Matched over all
    # samples, 5 goes to the new class (3 agreements) and 7 to the old one: Old = 1/3,
    # although matching within the old samples alone would give 2/3.
    score = gcd_accuracy([0, 0, 0, 1, 1, 1], [5, 5, 7, 5, 5, 5], [1, 1, 1, 0, 0, 0])
    assert score.all == pytest.approx(4 / 6)
    assert score.old == pytest.approx(1 / 3)
    assert score.new == 1.0
    assert str(score) == "All 66.7  Old 33.3  New 100.0"


def test_gcd_accuracy_surplus_clusters_and_classes_are_errors():
    # surplus clusters: 1 and 2 match nothing, so samples 2 and 3 are errors
    score = gcd_accuracy([0, 0, 0, 0, 1, 1], [0, 0, 1, 2, 3, 3], [1, 1, 1, 1, 0, 0])
    assert (score.all, score.old, score.new) == (pytest.approx(4 / 6), 0.5, 1.0)
    # surplus classes: class 1 gets no cluster
    score = gcd_accuracy([0, 0, 1, 1, 2, 2], [0, 0, 0, 1, 1, 1], [1, 1, 1, 1, 0, 0])
    assert (score.all, score.old, score.new) == (pytest.approx(4 / 6), 0.5, 1.0)


def test_gcd_accuracy_empty_subset_is_nan():
    score = gcd_accuracy([0, 0, 1, 1], [1, 1, 0, 2], [True] * 4)
    assert score.all == score.old == 0.75
    assert np.isnan(score.new)
    assert str(score) == "All 75.0  Old 75.0  New nan"
    score = gcd_accuracy([0, 0, 1, 1], [1, 1, 0, 2], np.zeros(4))
    assert np.isnan(score.old)
    assert score.new == 0.75


def test_gcd_score_is_frozen():
    score = gcd_accuracy([0, 1], [0, 1], [True, False])
    with pytest.raises(dataclasses.FrozenInstanceError):
        score.all = 0.0


def test_gcd_accuracy_errors():
    with pytest.raises(ValueError, match="different lengths"):
        gcd_accuracy([0, 1], [0], [True, False])
    with pytest.raises(ValueError, match="empty"):
        gcd_accuracy([], [], [])
    with pytest.raises(ValueError, match="old_mask must be a 1-D array of length 2"):
        gcd_accuracy([0, 1], [0, 1], [True])
    with pytest.raises(ValueError, match="old_mask must be a 1-D array"):
        gcd_accuracy([0, 1], [0, 1], [[True, False]])
    with pytest.raises(ValueError, match="old_mask must hold only 0 and 1"):
        gcd_accuracy([0, 1], [0, 1], [0, 2])
    with pytest.raises(ValueError, match="old_mask must hold only 0 and 1"):
        gcd_accuracy([0, 1], [0, 1], [0.0, np.nan])
    with pytest.raises(ValueError, match="old_mask must be boolean"):
        gcd_accuracy([0, 1], [0, 1], ["old", "new"])


# -- make_gcd_split ----------------------------------------------------------------------


@pytest.fixture
def class_labels():
    sizes = {0: 10, 1: 7, 2: 5, 3: 8, 4: 3}
    y = np.repeat(list(sizes), list(sizes.values()))
    return np.random.default_rng(1).permutation(y)  # classes interleaved


def test_make_gcd_split_is_stratified(class_labels):
    y = class_labels
    split = make_gcd_split(y, [2, 0, 1], labeled_fraction=0.5, random_state=0)
    assert isinstance(split, GCDSplit)
    # round(0.5 * n) per old class, halves rounded up: 10 -> 5, 7 -> 4, 5 -> 3
    np.testing.assert_array_equal(np.bincount(y[split.labeled_mask], minlength=5), [5, 4, 3, 0, 0])
    assert split.y_partial.dtype == np.int64
    np.testing.assert_array_equal(split.y_partial[split.labeled_mask], y[split.labeled_mask])
    assert np.all(split.y_partial[split.unlabeled_mask] == -1)
    np.testing.assert_array_equal(split.old_mask, np.isin(y, [0, 1, 2]))
    np.testing.assert_array_equal(split.unlabeled_mask, ~split.labeled_mask)
    assert not np.any(split.labeled_mask & ~split.old_mask)  # only old classes are labeled
    for mask in (split.labeled_mask, split.old_mask, split.unlabeled_mask):
        assert mask.dtype == bool
        assert mask.shape == y.shape


def test_make_gcd_split_keeps_both_kinds_in_every_old_class():
    y = np.repeat([0, 1, 2], [20, 20, 1])
    few = make_gcd_split(y, [0, 1, 2], labeled_fraction=0.01, random_state=0)
    np.testing.assert_array_equal(np.bincount(y[few.labeled_mask], minlength=3), [1, 1, 0])
    most = make_gcd_split(y, [0, 1, 2], labeled_fraction=0.99, random_state=0)
    np.testing.assert_array_equal(np.bincount(y[most.labeled_mask], minlength=3), [19, 19, 0])
    every = make_gcd_split(y, [0, 2], labeled_fraction=1, random_state=0)
    np.testing.assert_array_equal(every.labeled_mask, y != 1)


def test_make_gcd_split_is_reproducible(class_labels):
    y = class_labels
    first, again, other = (make_gcd_split(y, [0, 1], random_state=seed) for seed in (3, 3, 4))
    np.testing.assert_array_equal(first.labeled_mask, again.labeled_mask)
    assert not np.array_equal(first.labeled_mask, other.labeled_mask)
    from_rng = make_gcd_split(y, [0, 1], random_state=np.random.RandomState(3))
    np.testing.assert_array_equal(from_rng.labeled_mask, first.labeled_mask)
    # integral floats are accepted as labels
    as_float = make_gcd_split(y.astype(float), [0, 1], random_state=3)
    np.testing.assert_array_equal(as_float.y_partial, first.y_partial)


def test_make_gcd_split_errors():
    y = np.array([0, 0, 1, 1, 2, 2])
    with pytest.raises(ValueError, match="old_classes must be a non-empty"):
        make_gcd_split(y, [])
    with pytest.raises(ValueError, match=r"old_classes \[5\] do not occur in y"):
        make_gcd_split(y, [0, 5])
    with pytest.raises(ValueError, match="old_classes must hold integer labels"):
        make_gcd_split(y, [0.5])
    for fraction in (0, 1.5, -0.1, np.nan, True, "half"):
        with pytest.raises(ValueError, match="labeled_fraction must lie in"):
            make_gcd_split(y, [0], labeled_fraction=fraction)
    with pytest.raises(ValueError, match="integers >= 0"):
        make_gcd_split([0, -1, 1], [0])
    with pytest.raises(ValueError, match="integer labels"):
        make_gcd_split([0, 0.5, 1], [0])
    with pytest.raises(ValueError, match="1-D"):
        make_gcd_split(y.reshape(2, 3), [0])
    with pytest.raises(ValueError, match="non-empty 1-D"):
        make_gcd_split([], [0])


# -- estimate_n_clusters -----------------------------------------------------------------


def blobs_task(seed, n_centers=6, n_old=3):
    """Well-separated blobs; half the samples of the first ``n_old`` classes are labeled."""
    X, y = make_blobs(
        n_samples=100 * n_centers, centers=n_centers, n_features=10, random_state=seed
    )
    split = make_gcd_split(y, np.arange(n_old), labeled_fraction=0.5, random_state=seed)
    return X, split.y_partial


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_estimate_n_clusters_finds_the_blobs(seed):
    X, y_partial = blobs_task(seed)
    k, scores = estimate_n_clusters(X, y_partial, k_max=12, random_state=0, return_scores=True)
    assert abs(k - 6) <= 1
    assert scores[k] == 1.0  # the labeled classes are recovered exactly there


def test_estimate_n_clusters_scores_are_labeled_kmeans_accuracies(monkeypatch):
    X, y_partial = blobs_task(3, n_centers=4, n_old=2)
    calls = []

    class CountingKMeans(KMeans):
        def fit(self, X, y=None, sample_weight=None):
            calls.append(self.n_clusters)
            return super().fit(X, y, sample_weight)

    monkeypatch.setattr(_n_clusters, "KMeans", CountingKMeans)
    k, scores = estimate_n_clusters(X, y_partial, n_init=2, random_state=7, return_scores=True)
    assert isinstance(k, int)
    assert sorted(calls) == list(scores)  # every candidate clustered once
    # defaults: k_min = 2 labeled classes, k_max = max(3 * 2, 2) + 10 = 16
    assert len(scores) >= 3
    assert 2 <= min(scores) <= max(scores) <= 16
    assert k == min(scores, key=lambda c: (-scores[c], c))
    labeled = y_partial != -1
    for c, score in scores.items():
        labels = KMeans(n_clusters=c, n_init=2, random_state=7).fit_predict(X)
        assert score == clustering_accuracy(y_partial[labeled], labels[labeled])
    # the bounds are honoured
    bounded = estimate_n_clusters(
        X, y_partial, k_min=3, k_max=5, random_state=7, return_scores=True
    )
    assert set(bounded[1]) <= {3, 4, 5}
    assert estimate_n_clusters(X, y_partial, k_min=3, k_max=5, random_state=7) == bounded[0]


def test_estimate_n_clusters_is_reproducible():
    X, y_partial = blobs_task(4, n_centers=4, n_old=2)
    first = estimate_n_clusters(X, y_partial, n_init=1, random_state=5, return_scores=True)
    assert estimate_n_clusters(X, y_partial, n_init=1, random_state=5, return_scores=True) == first
    rng_result = estimate_n_clusters(
        X, y_partial, n_init=1, random_state=np.random.RandomState(5), return_scores=True
    )
    assert rng_result[0] in rng_result[1]


def test_estimate_n_clusters_reads_string_labels_like_integers():
    X, y_partial = blobs_task(4, n_centers=4, n_old=2)
    names = np.array(["ant", "bee"], dtype=object)[np.maximum(y_partial, 0)]
    names[y_partial == -1] = -1
    assert set(names[y_partial != -1]) == {"ant", "bee"}
    expected = estimate_n_clusters(X, y_partial, n_init=1, random_state=5, return_scores=True)
    assert estimate_n_clusters(X, names, n_init=1, random_state=5, return_scores=True) == expected


def test_estimate_n_clusters_errors():
    X, y_partial = blobs_task(0, n_centers=3, n_old=1)
    with pytest.raises(ValueError, match="no labeled samples"):
        estimate_n_clusters(X, np.full(X.shape[0], -1))
    with pytest.raises(ValueError, match="every sample of y is labeled"):
        estimate_n_clusters(X, np.zeros(X.shape[0], dtype=int))
    with pytest.raises(ValueError, match="k_max=4 must be greater than k_min=4"):
        estimate_n_clusters(X, y_partial, k_min=4, k_max=4)
    with pytest.raises(ValueError, match="exceeds the number of samples"):
        estimate_n_clusters(X, y_partial, k_max=X.shape[0] + 1)
    with pytest.raises(ValueError, match="k_min must be an integer >= 1"):
        estimate_n_clusters(X, y_partial, k_min=0)
    with pytest.raises(ValueError, match="k_max must be an integer >= 1"):
        estimate_n_clusters(X, y_partial, k_max=2.5)
    with pytest.raises(ValueError, match="n_init must be an integer >= 1"):
        estimate_n_clusters(X, y_partial, n_init=0)
    with pytest.raises(ValueError, match="y must be a 1-D array of length"):
        estimate_n_clusters(X, y_partial[:-1])
    with pytest.raises(ValueError, match="Unknown label type"):
        estimate_n_clusters(X, np.where(y_partial == -1, -1.0, y_partial + 0.5))
    bad = X.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        estimate_n_clusters(bad, y_partial)
    with pytest.raises(ValueError, match="2-dimensional"):
        estimate_n_clusters(X[:, 0], y_partial)
    # the default k_max is capped by the number of samples, and must stay above k_min
    with pytest.raises(ValueError, match="must be greater than k_min"):
        estimate_n_clusters(X[:3], [0, 1, -1], k_min=3)
