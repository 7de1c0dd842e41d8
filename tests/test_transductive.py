import pickle

import numpy as np
import pytest
from sklearn.cluster import KMeans
from sklearn.datasets import make_blobs
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.estimator_checks import parametrize_with_checks

from clusterlab.datasets import fewshot_tasks, load_dataset
from clusterlab.metrics import clustering_accuracy
from clusterlab.transductive import LaplacianKMeans, TransductiveFewShot

# TransductiveFewShot classifies the queries of one task jointly: that is what the
# estimator is for, and two checks cannot apply to it.
_TRANSDUCTIVE_EXPECTED_FAILED = {
    "check_methods_subset_invariance": (
        "transductive inference: the queries given to predict are classified jointly "
        "(kNN graph over support and queries, prototypes re-estimated from them), so a "
        "query's class depends on the other queries of the batch"
    ),
    "check_non_transformer_estimators_n_iter": (
        "fit only stores the support set; the bound iterations (max_iter) run on each "
        "batch of queries in predict, which keeps no state, so there is no n_iter_ after "
        "fit"
    ),
}


# LaplacianKMeans reads y as partial labels of any kind (a fully labeled y fits one
# cluster per class, more classes than n_clusters grow the model): every check applies.
@parametrize_with_checks(
    [LaplacianKMeans(n_clusters=3, n_neighbors=3, random_state=0), TransductiveFewShot()],
    expected_failed_checks=lambda estimator: (
        _TRANSDUCTIVE_EXPECTED_FAILED if isinstance(estimator, TransductiveFewShot) else {}
    ),
)
def test_scikit_learn_compatible(estimator, check):
    check(estimator)


@pytest.fixture(scope="module")
def blobs():
    return make_blobs(n_samples=150, centers=3, cluster_std=0.6, random_state=0)


def test_recovers_blobs_and_predicts_fitted_points(blobs):
    X, y = blobs
    model = LaplacianKMeans(n_clusters=3, random_state=0).fit(X)
    assert clustering_accuracy(y, model.labels_) > 0.95
    assert model.converged_
    np.testing.assert_array_equal(model.predict(X), model.labels_)
    assert model.assignments_.shape == (150, 3)
    np.testing.assert_allclose(model.assignments_.sum(axis=1), 1.0)
    assert model.energy_history_.shape == (model.n_iter_,)
    assert np.all(np.isfinite(model.energy_history_))


def test_fit_is_deterministic_picklable_and_leaves_input_alone(blobs):
    X, _ = blobs
    X_before = X.copy()
    first = LaplacianKMeans(n_clusters=3, random_state=1).fit(X)
    second = LaplacianKMeans(n_clusters=3, random_state=1).fit(X)
    np.testing.assert_array_equal(first.labels_, second.labels_)
    np.testing.assert_array_equal(X, X_before)
    restored = pickle.loads(pickle.dumps(first))
    np.testing.assert_array_equal(restored.predict(X), first.predict(X))
    assert first.n_features_in_ == 2


def test_float32_input_keeps_float32_centres(blobs):
    X, y = blobs
    model = LaplacianKMeans(n_clusters=3, random_state=0).fit(X.astype(np.float32))
    assert model.cluster_centers_.dtype == np.float32
    assert clustering_accuracy(y, model.labels_) > 0.95


def test_labeled_points_keep_their_clusters(blobs):
    X, y = blobs
    partial = np.full_like(y, -1)
    partial[:10] = (y[:10] + 1) % 3  # deliberately permuted ids
    model = LaplacianKMeans(n_clusters=3, random_state=0).fit(X, partial)
    np.testing.assert_array_equal(model.labels_[:10], partial[:10])
    assert clustering_accuracy(y, model.labels_) > 0.95


@pytest.mark.parametrize("prototypes", ["modes", "members"])
def test_kmodes_variants_recover_blobs(blobs, prototypes):
    X, y = blobs
    model = LaplacianKMeans(n_clusters=3, prototypes=prototypes, random_state=0).fit(X)
    assert clustering_accuracy(y, model.labels_) > 0.95


def test_explicit_init_and_kmeanspp(blobs):
    X, y = blobs
    init = KMeans(3, n_init=1, random_state=0).fit(X).cluster_centers_
    model = LaplacianKMeans(n_clusters=3, init=init).fit(X)
    assert clustering_accuracy(y, model.labels_) > 0.95
    model = LaplacianKMeans(n_clusters=3, init="k-means++", random_state=0).fit(X)
    assert clustering_accuracy(y, model.labels_) > 0.9
    with pytest.raises(ValueError, match="init must have shape"):
        LaplacianKMeans(n_clusters=3, init=init[:2]).fit(X)


def test_empty_cluster_warns_and_returns_finite_labels():
    rng = np.random.default_rng(8)
    X = np.concatenate([rng.normal(0, 0.1, (30, 2)), [[1.0, 0.0]]])
    model = LaplacianKMeans(
        n_clusters=2, lam=1e4, n_neighbors=5, init=np.array([[0.0, 0.0], [1.0, 0.0]])
    )
    with pytest.warns(ConvergenceWarning, match="lost all its points"):
        model.fit(X)
    assert np.bincount(model.labels_).min() > 0


@pytest.mark.parametrize(
    ("kwargs", "y", "message"),
    [
        ({"n_neighbors": 40}, None, "n_neighbors=40 must be smaller"),
        ({"n_clusters": 50}, None, "n_samples=40 should be >= n_clusters=50"),
        ({"n_clusters": 40}, np.r_[np.full(37, -1), 5, 5, 6], "only 37 samples are unlabeled"),
        ({}, np.full(40, 0.5), "Unknown label type"),
        ({}, np.r_[np.full(39, -1), np.nan], "NaN"),
        ({}, np.zeros(39, dtype=int), "length 40"),
    ],
)
def test_bad_input_is_a_clear_error(kwargs, y, message):
    X = np.random.default_rng(0).normal(size=(40, 2))
    with pytest.raises(ValueError, match=message):
        LaplacianKMeans(**{"n_clusters": 3, **kwargs}).fit(X, y)


def test_nan_is_an_error():
    X = np.random.default_rng(0).normal(size=(40, 2))
    X[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        LaplacianKMeans(n_clusters=3).fit(X)


@pytest.fixture(scope="module")
def digits_tasks():
    X, y = load_dataset("digits")
    tasks = fewshot_tasks(
        X[y >= 5], y[y >= 5], n_way=5, n_shot=2, n_query=10, n_tasks=12, random_state=0
    )
    return tasks, X[y < 5].mean(axis=0)


@pytest.mark.parametrize("prototypes", ["means", "modes", "members", "fixed"])
def test_batched_tasks_equal_one_task_at_a_time(digits_tasks, prototypes):
    tasks, base_mean = digits_tasks
    model = TransductiveFewShot(base_mean=base_mean, prototypes=prototypes)
    batched = model.predict_tasks(tasks.X_support, tasks.y_support, tasks.X_query)
    proba, classes = model.predict_proba_tasks(tasks.X_support, tasks.y_support, tasks.X_query)
    for t in range(tasks.X_support.shape[0]):
        single = model.fit(tasks.X_support[t], tasks.y_support[t])
        np.testing.assert_array_equal(batched[t], single.predict(tasks.X_query[t]))
        np.testing.assert_allclose(proba[t], single.predict_proba(tasks.X_query[t]), atol=1e-12)
        np.testing.assert_array_equal(classes[t], single.classes_)


def test_simpleshot_setting_is_the_nearest_class_mean(digits_tasks):
    tasks, base_mean = digits_tasks
    model = TransductiveFewShot(
        prototypes="fixed", lam=0.0, shift_queries=False, base_mean=base_mean
    )
    predicted = model.predict_tasks(tasks.X_support, tasks.y_support, tasks.X_query)

    def cl2n(Z):
        Z = Z - base_mean
        return Z / np.linalg.norm(Z, axis=-1, keepdims=True)

    support, queries = cl2n(tasks.X_support), cl2n(tasks.X_query)
    for t in range(support.shape[0]):
        classes = np.unique(tasks.y_support[t])
        means = np.stack([support[t][tasks.y_support[t] == c].mean(axis=0) for c in classes])
        d2 = ((queries[t][:, None, :] - means[None]) ** 2).sum(axis=2)
        np.testing.assert_array_equal(predicted[t], classes[d2.argmin(axis=1)])


def test_transduction_beats_the_inductive_baseline(digits_tasks):
    X, y = load_dataset("digits")
    tasks = fewshot_tasks(X[y >= 5], y[y >= 5], n_shot=1, n_tasks=300, random_state=1)
    base_mean = X[y < 5].mean(axis=0)
    simple = TransductiveFewShot(
        prototypes="fixed", lam=0.0, shift_queries=False, base_mean=base_mean
    )
    laplacian = TransductiveFewShot(base_mean=base_mean)
    accuracy = {}
    for name, model in (("simple", simple), ("laplacian", laplacian)):
        predicted = model.predict_tasks(tasks.X_support, tasks.y_support, tasks.X_query)
        accuracy[name] = np.mean(predicted == tasks.y_query)
    assert accuracy["laplacian"] > accuracy["simple"] + 0.04


def test_fewshot_bad_input():
    rng = np.random.default_rng(0)
    support, queries = rng.normal(size=(3, 4)), rng.normal(size=(3, 4))
    with pytest.raises(ValueError, match="n_neighbors=10 must be smaller"):
        TransductiveFewShot(n_neighbors=10).fit(support, [0, 1, 2]).predict(queries)
    with pytest.raises(ValueError, match="Unknown label type"):
        TransductiveFewShot().fit(support, [0.5, 1, 2])
    with pytest.raises(ValueError, match="requires y to be passed"):
        TransductiveFewShot().fit(support, None)
    with pytest.raises(ValueError, match="Unknown label type"):
        TransductiveFewShot().predict_tasks(support[None], np.array([[0.5, 1, 2]]), queries[None])
    bad = queries.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        TransductiveFewShot(n_neighbors=2).fit(support, [0, 1, 2]).predict(bad)
    with pytest.raises(ValueError, match="finite"):
        TransductiveFewShot().predict_tasks(support[None], np.array([[0, 1, 2]]), bad[None])
    with pytest.raises(ValueError, match="same number of classes"):
        TransductiveFewShot().predict_tasks(
            np.stack([support, support]),
            np.array([[0, 1, 2], [0, 0, 1]]),
            np.stack([queries, queries]),
        )
    with pytest.raises(ValueError, match="base_mean must have shape"):
        TransductiveFewShot(base_mean=np.zeros(3), n_neighbors=2).fit(support, [0, 1, 2]).predict(
            queries
        )
    with pytest.raises(ValueError, match="base_mean holds NaN"):  # was blamed on overflow
        TransductiveFewShot(base_mean=np.full(4, np.nan), n_neighbors=2).fit(
            support, [0, 1, 2]
        ).predict(queries)
    with pytest.raises(ValueError, match="base_mean holds NaN"):
        TransductiveFewShot(base_mean=np.full(4, np.inf)).predict_tasks(
            support[None], np.array([[0, 1, 2]]), queries[None]
        )


def test_float32_tasks_are_supported(digits_tasks):
    tasks, base_mean = digits_tasks
    model = TransductiveFewShot(base_mean=base_mean)
    expected = model.predict_tasks(tasks.X_support, tasks.y_support, tasks.X_query)
    got = model.predict_tasks(
        tasks.X_support.astype(np.float32), tasks.y_support, tasks.X_query.astype(np.float32)
    )
    assert np.mean(got == expected) > 0.99


def test_capped_iterations_warn(digits_tasks, blobs):
    tasks, base_mean = digits_tasks
    model = TransductiveFewShot(base_mean=base_mean, max_iter=1, max_bound_iter=2)
    with pytest.warns(ConvergenceWarning, match="12 tasks"):
        model.predict_tasks(tasks.X_support, tasks.y_support, tasks.X_query)
    X, _ = blobs
    with pytest.warns(ConvergenceWarning, match="max_bound_iter=1"):
        LaplacianKMeans(n_clusters=3, max_bound_iter=1, tol=0.0, random_state=0).fit(X)


def test_single_task_queries_of_another_float_dtype(digits_tasks):
    tasks, base_mean = digits_tasks
    model = TransductiveFewShot(base_mean=base_mean).fit(tasks.X_support[0], tasks.y_support[0])
    expected = model.predict(tasks.X_query[0])
    np.testing.assert_array_equal(model.predict(tasks.X_query[0].astype(np.float32)), expected)


def test_labels_mean_the_same_in_fit_and_predict_tasks(digits_tasks):
    # -1 and other negative integers are ordinary classes; whole floats are accepted.
    tasks, base_mean = digits_tasks
    model = TransductiveFewShot(base_mean=base_mean)
    shifted = tasks.y_support - 7  # classes -2..2
    batched = model.predict_tasks(tasks.X_support, shifted.astype(float), tasks.X_query)
    single = model.fit(tasks.X_support[0], shifted[0]).predict(tasks.X_query[0])
    np.testing.assert_array_equal(batched[0], single)
    np.testing.assert_array_equal(
        batched + 7, model.predict_tasks(tasks.X_support, tasks.y_support, tasks.X_query)
    )
