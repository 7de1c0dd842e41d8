"""SemiSupervisedKMeans and SemiSupervisedGMM: the estimator contract, labels and bad input."""

import pickle

import numpy as np
import pytest
from scipy import stats
from sklearn.utils.estimator_checks import parametrize_with_checks

from clusterlab.mixture import SemiSupervisedGMM, SemiSupervisedKMeans


# Every check applies: y is read as partial labels of any kind (-1 unlabeled), a fully
# labeled y fits one cluster per class, and more labeled classes than clusters grow the
# model (clusterlab._labels; tests/test_labels.py).
@parametrize_with_checks(
    [SemiSupervisedKMeans(n_clusters=3), SemiSupervisedGMM(n_components=3)],
)
def test_scikit_learn_compatible(estimator, check):
    check(estimator)


def _four_blobs(seed=0, n=60):
    rng = np.random.default_rng(seed)
    centres = np.array([[0, 0], [5, 0], [0, 5], [5, 5]], dtype=float)
    X = np.vstack([rng.normal(c, 0.4, (n, 2)) for c in centres])
    truth = np.repeat(np.arange(4), n)
    y = np.full(4 * n, -1)
    y[: n // 2] = 7  # half of blob 0 labeled as class 7
    y[n : n + n // 2] = 3  # half of blob 1 labeled as class 3
    return X, y, truth


@pytest.mark.parametrize(
    "make",
    [
        lambda: SemiSupervisedKMeans(4, random_state=0),
        lambda: SemiSupervisedGMM(2, random_state=0),
        lambda: SemiSupervisedGMM(9, random_state=0),
    ],
)
def test_labeled_classes_keep_their_labels_and_new_ones_count_up(make):
    X, y, truth = _four_blobs()
    model = make().fit(X, y)
    labels = model.labels_
    assert np.all(labels[truth == 0] == 7)
    assert np.all(labels[truth == 1] == 3)
    new = [set(labels[truth == b].tolist()) for b in (2, 3)]
    assert all(len(s) == 1 for s in new)
    assert sorted(new[0] | new[1]) == [8, 9]
    np.testing.assert_array_equal(model.predict(X), labels)


def test_gmm_without_labels_is_an_unsupervised_mixture():
    X, _, truth = _four_blobs()
    model = SemiSupervisedGMM(8, random_state=0).fit(X)
    assert model.n_components_ == 4
    assert model.concentration_ == 1.0  # no labeled class to calibrate on
    assert sorted(np.unique(model.labels_)) == [0, 1, 2, 3]
    assert len({(t, p) for t, p in zip(truth, model.labels_, strict=True)}) == 4


def test_gmm_fixed_k_objective_never_decreases():
    X, y, _ = _four_blobs(seed=1)
    for cov in ("full", "diag", "spherical"):
        model = SemiSupervisedGMM(
            6, covariance_type=cov, split_merge=False, tol=0, max_iter=30, random_state=0
        )
        with pytest.warns(Warning, match="did not converge"):
            model.fit(X, y)
        steps = np.diff(model.objective_history_)
        assert np.all(steps >= -1e-9 * np.abs(model.objective_history_[1:])), cov
        assert model.n_components_ == 6
        assert model.concentration_ is None


@pytest.mark.parametrize("cov", ["full", "diag", "spherical"])
def test_gmm_probabilities_and_densities_match_scipy(cov):
    X, y, _ = _four_blobs(seed=2)
    model = SemiSupervisedGMM(4, covariance_type=cov, random_state=0).fit(X, y)
    X_new = np.random.default_rng(5).normal(2.5, 3.0, (25, 2))
    covs = model.covariances_
    if cov == "diag":
        covs = np.array([np.diag(c) for c in covs])
    elif cov == "spherical":
        covs = np.array([c * np.eye(2) for c in covs])
    joint = np.column_stack(
        [
            np.log(w) + stats.multivariate_normal(m, c).logpdf(X_new)
            for w, m, c in zip(model.weights_, model.means_, covs, strict=True)
        ]
    )
    expected = np.logaddexp.reduce(joint, axis=1)
    np.testing.assert_allclose(model.score_samples(X_new), expected, rtol=1e-10)
    np.testing.assert_allclose(model.score(X_new), expected.mean(), rtol=1e-10)
    proba = model.predict_proba(X_new)
    np.testing.assert_allclose(proba, np.exp(joint - expected[:, None]), atol=1e-12)
    np.testing.assert_array_equal(
        model.predict(X_new), model.component_labels_[np.argmax(joint, axis=1)]
    )


def test_gmm_does_not_over_split_with_one_labeled_class():
    """Three unit Gaussians 4 apart in 4-D, half of one labeled. The labeled class alone
    sets only the split bound: with one split tried per class it is positive here (4 to
    38 over the draws measured), and uncapped the fit ended with 4-7 components on 4 of
    these 5 seeds; with the default 20 tries it is -0.2 to 5.8. Capped at alpha = 1 it
    finds the 3 classes."""
    n = 150
    for seed in range(5):
        rng = np.random.default_rng(seed)
        y_true = np.repeat(np.arange(3), n)
        X = 4.0 * np.eye(3, 4)[y_true] + rng.standard_normal((3 * n, 4))
        y = np.full(3 * n, -1)
        y[rng.choice(n, n // 2, replace=False)] = 0
        model = SemiSupervisedGMM(n_components=3, random_state=seed).fit(X, y)
        assert -0.5 < model.log_concentration_ <= 0.0  # the split bound, or the cap
        assert model.n_components_ == 3, seed


def test_gmm_warns_when_the_labeled_classes_contradict_the_calibration():
    """Two labeled classes drawn from one two-clump distribution: each splits, and the
    two would merge; no alpha keeps them whole and apart."""
    rng = np.random.default_rng(0)
    clumps = np.where(rng.random(200) < 0.5, -4.0, 4.0)
    X = np.vstack(
        [
            rng.standard_normal((200, 2)) + np.column_stack([clumps, np.zeros(200)]),
            rng.standard_normal((100, 2)) + np.array([0.0, 8.0]),
        ]
    )
    y = np.full(300, -1)
    y[:50], y[100:150] = 0, 1
    with pytest.warns(UserWarning, match="contradictory bounds on log") as record:
        model = SemiSupervisedGMM(4, random_state=0).fit(X, y)
    assert [w.category for w in record] == [UserWarning]
    assert model.log_concentration_ == 0.0
    X_apart = X.copy()
    X_apart[100:200, 0] += 30.0  # class 1 moved away: consistent bounds, no warning
    SemiSupervisedGMM(4, random_state=0).fit(X_apart, y)


def test_bad_input():
    X, y, _ = _four_blobs()
    with pytest.raises(ValueError, match="Unknown label type"):
        SemiSupervisedGMM(4).fit(X, y + 0.5)
    with pytest.raises(ValueError, match="NaN"):
        SemiSupervisedKMeans(4).fit(X, np.where(y == 3, np.nan, y))
    with pytest.raises(ValueError, match="mixes labels of types"):
        SemiSupervisedKMeans(4).fit(X, np.array(["a", 3] + [-1] * (len(X) - 2), dtype=object))
    n_unlabeled = int(np.count_nonzero(y == -1))
    with pytest.raises(ValueError, match=f"only {n_unlabeled} samples are unlabeled"):
        SemiSupervisedKMeans(n_unlabeled + 3).fit(X, y)
    with pytest.raises(ValueError, match="length"):
        SemiSupervisedGMM(4).fit(X, y[:-1])
    with pytest.raises(ValueError, match="NaN"):
        SemiSupervisedGMM(4).fit(np.where(X > 4.9, np.nan, X), y)
    with pytest.raises(ValueError, match="covariance_prior must be"):
        SemiSupervisedGMM(4, covariance_prior=np.ones(3)).fit(X, y)
    with pytest.raises(ValueError, match="positive definite"):
        SemiSupervisedGMM(4, covariance_prior=-np.eye(2)).fit(X, y)
    with pytest.raises(ValueError, match="constant"):
        SemiSupervisedGMM(2).fit(np.ones((20, 3)))


def test_single_labeled_sample_and_duplicated_points_are_handled():
    """A class with one labeled sample still gets a component; duplicates (singular sample
    covariances) are regularised by the prior."""
    X, y, _ = _four_blobs()
    y_one = np.full_like(y, -1)
    y_one[0] = 7
    model = SemiSupervisedGMM(4, random_state=0).fit(X, y_one)
    assert model.labels_[0] == 7
    assert 7 in model.component_labels_
    assert np.all(np.isfinite(model.covariances_))
    duplicated = np.vstack([np.repeat(X[:5], 20, axis=0), X[100:]])  # 5 points x 20 copies
    model = SemiSupervisedGMM(3, random_state=0).fit(duplicated)
    assert np.all(np.linalg.eigvalsh(model.covariances_) > 0)
    assert np.all(np.isfinite(model.score_samples(duplicated)))


@pytest.mark.parametrize(
    "make",
    [lambda: SemiSupervisedKMeans(4, random_state=0), lambda: SemiSupervisedGMM(3, random_state=0)],
)
def test_pickle_dtype_idempotence_and_readonly_input(make):
    X, y, _ = _four_blobs()
    first = make().fit(X, y)
    again = make().fit(X, y)
    np.testing.assert_array_equal(first.labels_, again.labels_)
    restored = pickle.loads(pickle.dumps(first))
    np.testing.assert_array_equal(restored.predict(X), first.predict(X))
    X32 = X.astype(np.float32)
    X32.setflags(write=False)
    y.setflags(write=False)
    model32 = make().fit(X32, y)
    assert model32.n_features_in_ == 2
    np.testing.assert_array_equal(model32.labels_, first.labels_)
    with pytest.raises(ValueError, match="features"):
        first.predict(X[:, :1])


@pytest.mark.parametrize("covariance_type", ["full", "diag", "spherical"])
@pytest.mark.parametrize("width", [1e-2, 1e-5])
def test_gmm_keeps_tight_clusters_that_are_far_apart(covariance_type, width):
    # with a fixed mean precision of 1 the prior placed every mean within one cluster
    # width of the data mean, and split/merge merged these two clusters into one
    noise = np.random.default_rng(0).standard_normal((60, 4))
    X = np.repeat([[0.0] * 4, [5.0] * 4], 30, axis=0) + width * noise
    model = SemiSupervisedGMM(n_components=2, covariance_type=covariance_type, random_state=0).fit(
        X
    )
    assert model.n_components_ == 2
    assert np.array_equal(np.bincount(model.labels_), [30, 30])
