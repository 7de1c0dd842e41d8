"""TransductiveFewShot and LaplacianKMeans on array-API namespaces (the dense batched path).

Every test compares against the NumPy (Numba, sparse-graph) path on the same data:
array_api_strict and PyTorch CPU run here, PyTorch CUDA and CuPy skip without a GPU.
"""

import numpy as np
import pytest
from clusterlab.solvers.bound import bound_update
from clusterlab.solvers.dense_bound import (
    dense_bound_update,
    dense_fit_prototypes,
    dense_knn_affinity,
)
from clusterlab.solvers.fewshot import FewShotSettings, infer_tasks
from clusterlab.solvers.graph import batched_knn_affinity
from sklearn.datasets import make_blobs
from sklearn.exceptions import ConvergenceWarning

from clusterlab._validation import encode_task_labels
from clusterlab.datasets import fewshot_tasks, load_dataset
from clusterlab.transductive import LaplacianKMeans, TransductiveFewShot

N_TASKS = 240
TOLERANCE = {np.float32: 1e-4, np.float64: 1e-8}

# (prototypes, lam, weights): the weights matter only where a graph is built.
SETTINGS = [
    ("means", 0.0, "binary"),
    ("means", 0.7, "binary"),
    ("means", 0.7, "gaussian"),
    ("fixed", 0.0, "binary"),
    ("fixed", 0.7, "binary"),
    ("fixed", 0.7, "gaussian"),
    ("modes", 0.7, "gaussian"),
    ("members", 0.0, "binary"),
    ("members", 0.7, "binary"),
]


@pytest.fixture(scope="module")
def digits():
    X, y = load_dataset("digits")
    tasks = fewshot_tasks(
        X[y >= 5], y[y >= 5], n_way=5, n_shot=2, n_query=6, n_tasks=N_TASKS, random_state=0
    )
    return tasks, X[y < 5].mean(axis=0)


_references = {}


def _numpy_reference(tasks, base_mean, dtype, setting):
    """NumPy predict_proba_tasks / predict_tasks, computed once per setting and dtype."""
    key = (dtype, setting)
    if key not in _references:
        prototypes, lam, weights = setting
        model = TransductiveFewShot(
            prototypes=prototypes, lam=lam, weights=weights, base_mean=base_mean
        )
        args = (tasks.X_support.astype(dtype), tasks.y_support, tasks.X_query.astype(dtype))
        proba, classes = model.predict_proba_tasks(*args)
        _references[key] = (model, proba, classes, model.predict_tasks(*args))
    return _references[key]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("setting", SETTINGS, ids=lambda s: "-".join(map(str, s)))
def test_tasks_match_the_numpy_path(other_backend, digits, dtype, setting):
    tasks, base_mean = digits
    model, proba_ref, classes_ref, predicted_ref = _numpy_reference(
        tasks, base_mean, dtype, setting
    )
    support = other_backend.asarray(tasks.X_support.astype(dtype))
    queries = other_backend.asarray(tasks.X_query.astype(dtype))
    proba, classes = model.predict_proba_tasks(support, tasks.y_support, queries)
    predicted = model.predict_tasks(support, tasks.y_support, queries)

    assert other_backend.is_own(proba)
    assert proba.dtype == support.dtype
    assert tuple(proba.shape) == proba_ref.shape == (N_TASKS, 30, 5)
    np.testing.assert_allclose(
        other_backend.to_numpy(proba), proba_ref, rtol=0, atol=TOLERANCE[dtype]
    )
    # NumPy labels in, NumPy classes and predictions out.
    assert isinstance(classes, np.ndarray)
    assert isinstance(predicted, np.ndarray)
    np.testing.assert_array_equal(classes, classes_ref)
    np.testing.assert_array_equal(predicted, predicted_ref)
    assert np.mean(predicted == tasks.y_query) > 0.6  # chance is 0.2


@pytest.mark.parametrize("setting", SETTINGS, ids=lambda s: "-".join(map(str, s)))
def test_rounds_and_energies_match_the_numpy_path_task_by_task(other_backend, digits, setting):
    # Per-task stopping: each task runs the rounds, and within them the bound
    # iterations, that the NumPy path runs (a different bound stop would move the
    # energy by about tol, far above the rounding compared here).
    tasks, base_mean = digits
    prototypes, lam, weights = setting
    settings = FewShotSettings(lam=lam, prototypes=prototypes, weights=weights, base_mean=base_mean)
    codes, _ = encode_task_labels(tasks.y_support)
    ref = infer_tasks(tasks.X_support, codes, tasks.X_query, 5, settings).result
    got = infer_tasks(
        other_backend.asarray(tasks.X_support),
        codes,
        other_backend.asarray(tasks.X_query),
        5,
        settings,
    ).result
    to_numpy = other_backend.to_numpy
    for name in ("n_iter", "converged", "empty_cluster", "bound_converged", "labels"):
        assert other_backend.is_own(getattr(got, name))
        np.testing.assert_array_equal(
            to_numpy(getattr(got, name)), getattr(ref, name), err_msg=name
        )
    np.testing.assert_allclose(to_numpy(got.energy_history), ref.energy_history, rtol=1e-10)
    np.testing.assert_allclose(to_numpy(got.prototypes), ref.prototypes, rtol=0, atol=1e-10)
    if prototypes != "fixed":
        assert np.unique(ref.n_iter).size > 1  # tasks stop after different rounds


def test_a_task_is_not_changed_by_the_others_in_its_batch(other_backend, digits):
    tasks, base_mean = digits
    settings = FewShotSettings(base_mean=base_mean, lam=1.0)
    codes, _ = encode_task_labels(tasks.y_support)
    support = other_backend.asarray(tasks.X_support)
    queries = other_backend.asarray(tasks.X_query)
    batch = infer_tasks(support, codes, queries, 5, settings)
    rounds = other_backend.to_numpy(batch.result.n_iter)
    # The quickest and the slowest tasks, solved alone.
    chosen = [int(np.argmin(rounds)), int(np.argmax(rounds))]
    assert rounds[chosen[0]] < rounds[chosen[1]]
    for t in chosen:
        alone = infer_tasks(
            support[t : t + 1, ...], codes[t : t + 1], queries[t : t + 1, ...], 5, settings
        )
        np.testing.assert_allclose(
            other_backend.to_numpy(alone.proba[0, ...]),
            other_backend.to_numpy(batch.proba[t, ...]),
            atol=1e-12,
        )
        assert int(other_backend.to_numpy(alone.result.n_iter)[0]) == rounds[t]
        alone_history = other_backend.to_numpy(alone.result.energy_history[:, 0])
        batch_history = other_backend.to_numpy(batch.result.energy_history[:, t])
        n_rounds = alone_history.shape[0]
        np.testing.assert_allclose(alone_history, batch_history[:n_rounds], rtol=1e-12)
        assert np.isnan(batch_history[n_rounds:]).all()


def _stacked_problems(n_problems=30, n=25, n_labels=4, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n_problems, n, 3)) * rng.uniform(0.3, 3.0, (n_problems, 1, 1))
    centers = rng.normal(size=(n_problems, n_labels, 3))
    unary = ((X[:, :, None, :] - centers[:, None]) ** 2).sum(axis=3)
    clamp = np.where(
        rng.random((n_problems, n)) < 0.2, rng.integers(0, n_labels, (n_problems, n)), -1
    )
    return X, unary, clamp


@pytest.mark.parametrize(("lam", "max_iter"), [(0.0, 9), (0.4, 9), (1.5, 20)])
def test_dense_bound_stops_each_problem_where_the_sparse_one_does(
    other_backend, lam, max_iter, monkeypatch
):
    import clusterlab.solvers.dense_bound as dense_bound

    compactions = []
    rows = dense_bound._rows
    monkeypatch.setattr(
        dense_bound, "_rows", lambda xp, mask: compactions.append(1) or rows(xp, mask)
    )
    X, unary, clamp = _stacked_problems()
    n_problems, _, n_labels = unary.shape
    graph = batched_knn_affinity(X, 4)
    ref = bound_update(
        unary.reshape(-1, n_labels),
        graph.affinity,
        lam,
        clamp=clamp.ravel(),
        n_problems=n_problems,
        tol=1e-10,
        max_iter=max_iter,
    )
    dense = dense_knn_affinity(other_backend.asarray(X), 4)
    got = dense_bound_update(
        other_backend.asarray(unary),
        dense.affinity,
        lam,
        other_backend.asarray(clamp),
        tol=1e-10,
        max_iter=max_iter,
    )
    np.testing.assert_array_equal(other_backend.to_numpy(got.n_iter), ref.n_iter)
    np.testing.assert_array_equal(other_backend.to_numpy(got.converged), ref.converged)
    np.testing.assert_allclose(other_backend.to_numpy(got.energy), ref.energy, rtol=1e-12)
    np.testing.assert_allclose(
        other_backend.to_numpy(got.assignments), ref.assignments.reshape(unary.shape), atol=1e-12
    )
    if lam > 0:
        # Problems stop at different iterations (some at the cap), so the working set
        # was compacted along the way.
        assert np.unique(ref.n_iter).size > 2
        assert 0 < np.count_nonzero(ref.converged) < n_problems
        assert compactions


@pytest.mark.parametrize("weights", ["binary", "gaussian"])
def test_dense_graph_equals_the_sparse_one_ties_included(other_backend, weights):
    rng = np.random.default_rng(3)
    cases = [
        rng.normal(size=(20, 15, 4)),
        rng.integers(0, 3, size=(20, 15, 2)).astype(float),  # many equal distances
        1000 + rng.integers(0, 3, size=(20, 15, 3)).astype(float),  # far from the origin
        np.repeat(rng.normal(size=(20, 5, 3)), 3, axis=1),  # duplicated points
    ]
    for X in cases:
        ref = batched_knn_affinity(X, 3, weights=weights)
        blocks = ref.affinity.toarray().reshape(20, 15, 20, 15)
        blocks = blocks[np.arange(20), :, np.arange(20), :]
        got = dense_knn_affinity(other_backend.asarray(X), 3, weights=weights)
        assert other_backend.is_own(got.affinity)
        np.testing.assert_allclose(other_backend.to_numpy(got.affinity), blocks, atol=1e-12)
        np.testing.assert_allclose(other_backend.to_numpy(got.sigma2), ref.sigma2, rtol=1e-12)


def test_labels_given_on_the_device_come_back_on_the_device(other_backend, digits):
    tasks, base_mean = digits
    model = TransductiveFewShot(base_mean=base_mean)
    support = other_backend.asarray(tasks.X_support)
    queries = other_backend.asarray(tasks.X_query)
    labels = other_backend.asarray(tasks.y_support - 7)  # classes -2..2
    _, classes = model.predict_proba_tasks(support, labels, queries)
    predicted = model.predict_tasks(support, labels, queries)
    assert other_backend.is_own(classes)
    assert other_backend.is_own(predicted)
    expected = model.predict_tasks(tasks.X_support, tasks.y_support, tasks.X_query)
    np.testing.assert_array_equal(other_backend.to_numpy(predicted) + 7, expected)
    np.testing.assert_array_equal(other_backend.to_numpy(classes)[:, 0], -2)


def test_float32_support_sets_the_dtype_and_base_mean_may_be_an_array(other_backend, digits):
    tasks, base_mean = digits
    support = other_backend.asarray(tasks.X_support[:20].astype(np.float32))
    queries = other_backend.asarray(tasks.X_query[:20])  # float64, cast to float32
    model = TransductiveFewShot(base_mean=other_backend.asarray(base_mean))
    proba, _ = model.predict_proba_tasks(support, tasks.y_support[:20], queries)
    assert proba.dtype == support.dtype
    expected, _ = TransductiveFewShot(base_mean=base_mean).predict_proba_tasks(
        tasks.X_support[:20].astype(np.float32),
        tasks.y_support[:20],
        tasks.X_query[:20].astype(np.float32),
    )
    np.testing.assert_allclose(other_backend.to_numpy(proba), expected, atol=1e-4)


@pytest.mark.parametrize("preprocessing", ["l2n", None])
@pytest.mark.parametrize("shift_queries", [True, False])
def test_other_preprocessing_matches(other_backend, digits, preprocessing, shift_queries):
    tasks, _ = digits
    model = TransductiveFewShot(
        preprocessing=preprocessing, shift_queries=shift_queries, n_neighbors=4
    )
    part = slice(0, 60)
    expected, _ = model.predict_proba_tasks(
        tasks.X_support[part], tasks.y_support[part], tasks.X_query[part]
    )
    proba, _ = model.predict_proba_tasks(
        other_backend.asarray(tasks.X_support[part]),
        tasks.y_support[part],
        other_backend.asarray(tasks.X_query[part]),
    )
    np.testing.assert_allclose(other_backend.to_numpy(proba), expected, atol=1e-8)


def test_capped_iterations_warn_on_the_device(other_backend, digits):
    tasks, base_mean = digits
    model = TransductiveFewShot(base_mean=base_mean, max_iter=1, max_bound_iter=2)
    with pytest.warns(ConvergenceWarning, match=f"Of {N_TASKS} tasks"):
        model.predict_tasks(
            other_backend.asarray(tasks.X_support),
            tasks.y_support,
            other_backend.asarray(tasks.X_query),
        )


def test_device_chunks_give_the_same_result(other_backend, digits, monkeypatch):
    import clusterlab.transductive as transductive

    tasks, base_mean = digits
    model = TransductiveFewShot(base_mean=base_mean)
    support = other_backend.asarray(tasks.X_support[:50])
    queries = other_backend.asarray(tasks.X_query[:50])
    whole, _ = model.predict_proba_tasks(support, tasks.y_support[:50], queries)
    for name in ("_DEVICE_CHUNK_ENTRIES", "_CPU_CHUNK_ENTRIES"):
        monkeypatch.setattr(transductive, name, 7 * 40 * 40)  # 7 tasks
    assert len(transductive._device_chunks(50, 40)) == 8
    chunked, _ = model.predict_proba_tasks(support, tasks.y_support[:50], queries)
    np.testing.assert_allclose(
        other_backend.to_numpy(chunked), other_backend.to_numpy(whole), atol=1e-12
    )


def test_bad_device_input_is_a_clear_error(other_backend):
    rng = np.random.default_rng(0)
    support, queries = rng.normal(size=(2, 3, 4)), rng.normal(size=(2, 6, 4))
    labels = np.array([[0, 1, 2], [0, 1, 2]])
    model = TransductiveFewShot(n_neighbors=2)
    with pytest.raises(ValueError, match="same library"):
        model.predict_tasks(support, labels, other_backend.asarray(queries))
    bad = queries.copy()
    bad[1, 2, 3] = np.inf
    with pytest.raises(ValueError, match="finite"):
        model.predict_tasks(other_backend.asarray(support), labels, other_backend.asarray(bad))
    with pytest.raises(ValueError, match="at least one task"):
        model.predict_tasks(
            other_backend.asarray(support[:0]), labels[:0], other_backend.asarray(queries[:0])
        )
    with pytest.raises(ValueError, match="X_query must have shape"):
        model.predict_tasks(
            other_backend.asarray(support), labels, other_backend.asarray(queries[0])
        )
    with pytest.raises(ValueError, match="integer class labels"):
        model.predict_tasks(
            other_backend.asarray(support), labels[:, :2], other_backend.asarray(queries)
        )
    with pytest.raises(ValueError, match="n_neighbors=9 must be smaller"):
        TransductiveFewShot(n_neighbors=9).predict_tasks(
            other_backend.asarray(support), labels, other_backend.asarray(queries)
        )
    with pytest.raises(ValueError, match="base_mean must have shape"):
        TransductiveFewShot(base_mean=np.zeros(3)).predict_tasks(
            other_backend.asarray(support), labels, other_backend.asarray(queries)
        )


def test_dense_fit_prototypes_accepts_a_cost_scale(other_backend):
    from clusterlab.solvers.bound import fit_prototypes

    X, _, clamp = _stacked_problems(n_problems=6, n=30)
    graph = batched_knn_affinity(X, 4)
    init = X[:, :4, :].copy()
    scale = graph.sigma2
    ref = fit_prototypes(X, graph.affinity, 0.5, init, clamp=clamp, sigma2=scale, cost_scale=scale)
    dense = dense_knn_affinity(other_backend.asarray(X), 4)
    got = dense_fit_prototypes(
        other_backend.asarray(X),
        dense.affinity,
        0.5,
        other_backend.asarray(init),
        clamp=other_backend.asarray(clamp),
        sigma2=dense.sigma2,
        cost_scale=dense.sigma2,
    )
    np.testing.assert_array_equal(other_backend.to_numpy(got.labels), ref.labels)
    np.testing.assert_array_equal(other_backend.to_numpy(got.n_iter), ref.n_iter)
    np.testing.assert_allclose(other_backend.to_numpy(got.assignments), ref.assignments, atol=1e-10)


# -- LaplacianKMeans ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def blobs():
    X, y = make_blobs(n_samples=150, centers=3, cluster_std=0.6, random_state=0)
    return X, y


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_laplacian_kmeans_fits_on_the_host_and_answers_in_the_namespace(
    other_backend, blobs, dtype
):
    X, _ = blobs
    X = X.astype(dtype)
    partial = np.full(150, -1)
    partial[:5] = 1
    reference = LaplacianKMeans(n_clusters=3, random_state=0).fit(X, partial)
    model = LaplacianKMeans(n_clusters=3, random_state=0).fit(
        other_backend.asarray(X), other_backend.asarray(partial)
    )
    for name in ("labels_", "cluster_centers_", "assignments_"):
        assert other_backend.is_own(getattr(model, name)), name
    assert model.cluster_centers_.dtype == other_backend.asarray(X).dtype
    assert isinstance(model.energy_history_, np.ndarray)
    np.testing.assert_array_equal(other_backend.to_numpy(model.labels_), reference.labels_)
    np.testing.assert_allclose(
        other_backend.to_numpy(model.cluster_centers_), reference.cluster_centers_
    )
    # predict: in the input's namespace, whichever way the model was fitted
    rng = np.random.default_rng(1)
    new = (X[rng.permutation(150)[:40]] + rng.normal(0, 0.1, (40, 2))).astype(dtype)
    expected = reference.predict(new)
    for fitted in (reference, model):
        predicted = fitted.predict(other_backend.asarray(new))
        assert other_backend.is_own(predicted)
        np.testing.assert_array_equal(other_backend.to_numpy(predicted), expected)
    np.testing.assert_array_equal(model.predict(new), expected)  # NumPy in, NumPy out
    with pytest.raises(ValueError, match="expecting 2 features"):
        model.predict(other_backend.asarray(np.zeros((3, 4), dtype=dtype)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_single_task_fit_and_predict_on_the_device(other_backend, digits, dtype):
    tasks, base_mean = digits
    support, labels = tasks.X_support[0].astype(dtype), tasks.y_support[0]
    queries = tasks.X_query[0].astype(dtype)
    model = TransductiveFewShot(base_mean=base_mean)
    expected_proba = model.fit(support, labels).predict_proba(queries)
    expected = model.predict(queries)
    # fitted on the device, queried on the device
    model.fit(other_backend.asarray(support), labels)
    proba = model.predict_proba(other_backend.asarray(queries))
    assert other_backend.is_own(proba)
    assert proba.dtype == other_backend.asarray(support).dtype
    np.testing.assert_allclose(
        other_backend.to_numpy(proba), expected_proba, rtol=TOLERANCE[dtype], atol=TOLERANCE[dtype]
    )
    predicted = model.predict(other_backend.asarray(queries))
    assert other_backend.is_own(predicted)
    np.testing.assert_array_equal(other_backend.to_numpy(predicted), expected)
    # fitted on the device, NumPy queries: solved on the support's device
    np.testing.assert_array_equal(other_backend.to_numpy(model.predict(queries)), expected)
    with pytest.raises(ValueError, match="features"):
        model.predict(other_backend.asarray(queries[:, :10]))
