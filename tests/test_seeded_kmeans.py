"""Semi-supervised k-means solver: the fused Lloyd pass and the greedy k-means++ seeding
against plain NumPy references, and its quality on real data."""

import numpy as np
import pytest
from clusterlab.solvers import seeded_kmeans as sk
from sklearn.cluster import KMeans
from sklearn.datasets import load_digits


def blobs(n, d, k, seed, labeled_classes=0):
    rng = np.random.default_rng(seed)
    centres = 3.0 * rng.standard_normal((k, d))
    truth = rng.integers(0, k, n)
    X = centres[truth] + rng.standard_normal((n, d))
    clamp = np.full(n, -1, dtype=np.int64)
    for c in range(labeled_classes):  # half of class c's samples labeled
        members = np.flatnonzero(truth == c)
        clamp[members[: members.size // 2]] = c
    return np.ascontiguousarray(X), clamp


def lloyd_reference(X, clamp, centres, max_iter, threshold):
    """Lloyd's iterations written plainly: explicit distances, labeled samples held."""

    def assign(centres):
        d2 = ((X[:, None, :] - centres[None, :, :]) ** 2).sum(axis=2)
        labels = np.where(clamp >= 0, clamp, d2.argmin(axis=1))
        return labels, d2[np.arange(X.shape[0]), labels]

    labels, dist = assign(centres)
    for it in range(1, max_iter + 1):
        new = np.array([X[labels == k].mean(axis=0) for k in range(centres.shape[0])])
        shift = ((new - centres) ** 2).sum()
        centres = new
        previous = labels
        labels, dist = assign(centres)
        if np.array_equal(previous, labels) or shift <= threshold:
            return labels, centres, dist.sum(), it
    return labels, centres, dist.sum(), max_iter


# one thread below 2**20 multiply-adds per pass, the threaded pass above
@pytest.mark.parametrize(("n", "d", "k"), [(500, 3, 4), (9001, 16, 8)])
@pytest.mark.parametrize("labeled_classes", [0, 2])
def test_lloyd_matches_the_plain_reference(n, d, k, labeled_classes):
    X, clamp = blobs(n, d, k, seed=n + labeled_classes, labeled_classes=labeled_classes)
    rng = np.random.default_rng(0)
    start = X[rng.choice(n, k, replace=False)] + 0.5  # a poor start: many iterations
    threshold = 1e-4 * X.var(axis=0).mean()
    sq = np.einsum("ij,ij->i", X, X)
    fast = sk._lloyd(X, clamp, start, 300, threshold, sq)
    labels, centres, inertia, n_iter = lloyd_reference(X, clamp, start, 300, threshold)
    assert n_iter > 2
    assert fast.n_iter == n_iter
    np.testing.assert_array_equal(fast.labels, labels)
    np.testing.assert_allclose(fast.centers, centres, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(fast.inertia, inertia, rtol=1e-9)
    held = clamp >= 0
    np.testing.assert_array_equal(fast.labels[held], clamp[held])


def test_an_empty_cluster_takes_the_farthest_free_sample():
    X, clamp = blobs(400, 2, 3, seed=1)
    start = np.array([X[0], X[1], [1e3, 1e3]])  # the third centre wins no sample
    sq = np.einsum("ij,ij->i", X, X)
    run = sk._lloyd(X, clamp, start, 1, 0.0, sq)
    d2 = ((X[:, None, :] - start[None, :2, :]) ** 2).sum(axis=2).min(axis=1)
    np.testing.assert_array_equal(run.centers[2], X[np.argmax(d2)])


def greedy_reference(X, free, centres, n_clusters, rng, n_trials):
    """Greedy k-means++ written plainly: the same draws, potentials summed per candidate."""
    chosen = [np.asarray(c) for c in centres]
    pool = X[free]
    if not chosen:
        chosen.append(pool[rng.integers(pool.shape[0])])
    d2 = np.min([((pool - c) ** 2).sum(axis=1) for c in chosen], axis=0)
    while len(chosen) < n_clusters:
        cumulative = np.cumsum(d2)
        draws = rng.uniform(size=n_trials) * cumulative[-1]
        candidates = np.minimum(np.searchsorted(cumulative, draws), pool.shape[0] - 1)
        best = None
        for c in candidates:
            new_d2 = np.minimum(d2, ((pool - pool[c]) ** 2).sum(axis=1))
            if best is None or new_d2.sum() < best[0]:
                best = (new_d2.sum(), c, new_d2)
        chosen.append(pool[best[1]])
        d2 = best[2]
    return np.array(chosen)


@pytest.mark.parametrize("labeled_classes", [0, 2])
def test_greedy_seeding_matches_the_plain_reference(labeled_classes):
    X, clamp = blobs(700, 5, 6, seed=3, labeled_classes=labeled_classes)
    free = np.flatnonzero(clamp < 0)
    held = clamp[clamp >= 0]
    class_centres = [X[clamp == c].mean(axis=0) for c in range(labeled_classes)]
    sq = np.einsum("ij,ij->i", X, X)
    fast = sk._plus_plus(
        X, sq, free, np.array(class_centres).reshape(-1, 5), 9, np.random.default_rng(5), 3
    )
    reference = greedy_reference(X, free, class_centres, 9, np.random.default_rng(5), 3)
    np.testing.assert_allclose(fast, reference, rtol=1e-12)
    assert held.size == 0 or np.all(np.isin(np.arange(labeled_classes), held))


def test_inertia_on_digits_is_that_of_scikit_learn():
    """Real data: over seeds, the mean inertia of one run equals scikit-learn's KMeans
    (greedy k-means++ and Lloyd, one initialisation) within 1.5%."""
    X = load_digits().data
    clamp = np.full(X.shape[0], -1, dtype=np.int64)
    ours = [sk.seeded_kmeans(X, clamp, 10, rng=np.random.default_rng(s)).inertia for s in range(8)]
    theirs = [KMeans(10, n_init=1, random_state=s).fit(X).inertia_ for s in range(8)]
    assert np.mean(ours) <= 1.015 * np.mean(theirs)
