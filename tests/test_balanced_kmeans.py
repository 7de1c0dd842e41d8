import warnings

import numpy as np
import pytest
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score
from sklearn.utils.estimator_checks import parametrize_with_checks

from clusterlab import SinkhornKMeans
from clusterlab.metrics import clustering_accuracy


@parametrize_with_checks([SinkhornKMeans(n_clusters=3, random_state=0)])
def test_scikit_learn_compatible(estimator, check):
    check(estimator)


def test_sizes_are_balanced_to_within_one():
    X, _ = make_blobs(n_samples=103, centers=[[0, 0], [8, 0]], cluster_std=[1, 3], random_state=0)
    labels = SinkhornKMeans(n_clusters=4, random_state=0).fit(X).labels_
    sizes = np.bincount(labels, minlength=4)
    assert sizes.sum() == 103
    assert np.all(np.abs(sizes - 103 / 4) < 1)


def test_requested_proportions_are_met():
    X, _ = make_blobs(n_samples=200, centers=3, random_state=1)
    proportions = np.array([0.5, 0.3, 0.2])
    model = SinkhornKMeans(n_clusters=3, proportions=proportions, random_state=0).fit(X)
    sizes = np.bincount(model.labels_, minlength=3)
    np.testing.assert_array_equal(np.sort(sizes), [40, 60, 100])
    loads = model.transform(X).sum(axis=0) / 200
    np.testing.assert_allclose(np.sort(loads), [0.2, 0.3, 0.5], rtol=model.sinkhorn_tol)


def test_recovers_separated_balanced_blobs():
    X, y = make_blobs(n_samples=300, centers=5, cluster_std=0.5, random_state=3)
    model = SinkhornKMeans(n_clusters=5, random_state=0).fit(X)
    assert clustering_accuracy(y, model.labels_) == 1.0
    assert model.converged_
    np.testing.assert_array_equal(model.predict(X, balanced=False), model.labels_)


@pytest.mark.parametrize("spherical", [False, True])
def test_objective_never_increases(spherical):
    X, _ = make_blobs(n_samples=300, centers=6, n_features=4, random_state=4)
    model = SinkhornKMeans(
        n_clusters=4,
        spherical=spherical,
        eps=0.2,
        sinkhorn_tol=1e-8,
        sinkhorn_max_iter=20_000,
        random_state=0,
    ).fit(X)
    history = model.objective_history_
    assert len(history) >= 3
    assert np.all(np.diff(history) <= 1e-6 * np.abs(history[:-1]))


def test_spherical_centres_are_unit_vectors():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((120, 5))
    model = SinkhornKMeans(n_clusters=4, spherical=True, random_state=0).fit(X)
    np.testing.assert_allclose(np.linalg.norm(model.cluster_centers_, axis=1), 1.0, rtol=1e-10)
    assert np.all(np.bincount(model.labels_) == 30)


def test_float32_is_kept():
    X, _ = make_blobs(n_samples=90, centers=3, random_state=0)
    model = SinkhornKMeans(n_clusters=3, random_state=0).fit(X.astype(np.float32))
    assert model.cluster_centers_.dtype == np.float32
    assert model.transform(X.astype(np.float32)).dtype == np.float32


def test_fit_predict_equals_labels():
    X, _ = make_blobs(n_samples=60, centers=3, random_state=0)
    model = SinkhornKMeans(n_clusters=3, random_state=0)
    np.testing.assert_array_equal(model.fit_predict(X), model.fit(X).labels_)


@pytest.mark.parametrize(
    ("params", "X", "message"),
    [
        ({"n_clusters": 5}, np.zeros((3, 2)), "n_samples=3 should be >= n_clusters=5"),
        ({"n_clusters": 2, "proportions": [0.5, 0.6]}, np.eye(4), "proportions must sum to 1"),
        ({"n_clusters": 2, "proportions": [1.0]}, np.eye(4), "length 2"),
        ({"n_clusters": 2, "spherical": True}, np.zeros((4, 2)), "all-zero row"),
        ({"n_clusters": 2, "init": np.zeros((3, 2))}, np.eye(4)[:, :2], "init has shape"),
        ({"n_clusters": 2}, np.array([[0.0, np.nan], [1, 1]]), "NaN"),
    ],
)
def test_bad_input(params, X, message):
    with pytest.raises(ValueError, match=message):
        SinkhornKMeans(**params).fit(X)


def test_input_is_not_modified():
    X, _ = make_blobs(n_samples=60, centers=3, random_state=0)
    kept = X.copy()
    SinkhornKMeans(n_clusters=3, spherical=True, random_state=0).fit(X)
    np.testing.assert_array_equal(X, kept)


def test_balanced_predict_of_one_sample_per_blob_separates_them():
    X, y = make_blobs(n_samples=90, centers=3, cluster_std=0.3, random_state=0)
    model = SinkhornKMeans(n_clusters=3, random_state=0).fit(X)
    batch = X[[np.flatnonzero(y == k)[0] for k in range(3)]]
    labels = model.predict(batch)
    assert sorted(labels.tolist()) == [0, 1, 2]
    np.testing.assert_array_equal(labels, model.predict(batch, balanced=False))


def test_float32_with_a_large_offset_matches_float64():
    X, _y = make_blobs(n_samples=300, centers=3, random_state=0)
    reference = SinkhornKMeans(n_clusters=3, random_state=0).fit(X).labels_
    for offset in (1e4, 1e5):
        model = SinkhornKMeans(n_clusters=3, random_state=0).fit((X + offset).astype(np.float32))
        assert clustering_accuracy(reference, model.labels_) > 0.99
        assert model.converged_
        np.testing.assert_allclose(model.cluster_centers_.mean(), X.mean() + offset, rtol=1e-3)


def test_spherical_centre_whose_mean_vanishes_keeps_its_direction():
    # the two unit rows cancel: the centre stays the sample it was seeded with, not 0 / 0
    X = np.array([[1.0, 0], [-1, 0]])
    model = SinkhornKMeans(n_clusters=1, spherical=True, random_state=0).fit(X)
    assert np.isfinite(model.cluster_centers_).all()
    assert np.abs(model.cluster_centers_ - X).sum(axis=1).min() < 1e-12


def test_float32_input_whose_squares_overflow_fits_in_the_normalised_frame():
    # squared distances of float32 X * 1e19 overflow float32: the fit runs on X divided by
    # a power of two (issue 16), so it gives the partition of X
    X, _ = make_blobs(n_samples=30, centers=3, random_state=0)
    X32 = X.astype(np.float32)
    reference = SinkhornKMeans(n_clusters=3, random_state=0).fit(X32)
    model = SinkhornKMeans(n_clusters=3, random_state=0).fit(X32 * np.float32(1e19))
    assert adjusted_rand_score(reference.labels_, model.labels_) == 1.0
    assert model.cluster_centers_.dtype == np.float32
    np.testing.assert_allclose(
        model.cluster_centers_ / 1e19, reference.cluster_centers_, rtol=1e-4, atol=1e-5
    )


def test_explicit_init_runs_once():
    X, _ = make_blobs(n_samples=60, centers=3, random_state=0)
    with pytest.warns(RuntimeWarning, match="one run"):
        SinkhornKMeans(n_clusters=3, init=X[:3], n_init=4).fit(X)


def test_no_warning_on_easy_data_at_the_defaults():
    # three separated blobs: the first transports are near-hard and took more than the
    # old 1000-iteration cap; the final assignment now starts from the last potentials
    X, y = make_blobs(60, 4, centers=3, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for seed in range(10):
            labels = SinkhornKMeans(3, random_state=seed).fit(X).labels_
            assert adjusted_rand_score(y, labels) == 1.0
