"""Per-sample predictions on Dask arrays: mapped over row (or task) chunks, lazily.

Every Dask result is compared with the in-memory result of the same call on the
computed array. Graph logic (one task per chunk, the model as one key, several outputs
from one pass) runs on the synchronous scheduler; the end-to-end tests run on the
two-process ``dask_client`` cluster of ``conftest.py``.
"""

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError

da = pytest.importorskip("dask.array")
dask = pytest.importorskip("dask")

from clusterlab import multilabel  # noqa: E402
from clusterlab.mixture import SemiSupervisedGMM, SemiSupervisedKMeans  # noqa: E402
from clusterlab.multilabel import multilabel_assign  # noqa: E402
from clusterlab.transductive import TransductiveFewShot  # noqa: E402


def blobs(n_per=60, seed=0):
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0, 0.0, 0.0], [6.0, 0.0, 1.0], [0.0, 6.0, -1.0]])
    X = np.concatenate([rng.normal(c, 1.0, (n_per, 3)) for c in centres])
    y = np.full(X.shape[0], -1)
    y[:8], y[n_per : n_per + 8] = 10, 20  # two labeled classes, one new
    return X, y


@pytest.fixture(scope="module")
def fitted():
    X, y = blobs()
    gmm = SemiSupervisedGMM(n_components=3, random_state=0).fit(X, y)
    kmeans = SemiSupervisedKMeans(3, n_init=2, random_state=0).fit(X, y)
    rng = np.random.default_rng(1)
    X_new = np.concatenate([X, rng.normal(3.0, 4.0, (37, 3))])  # 217 rows
    return gmm, kmeans, X_new


def brute_force_topk(X, centers, k):
    """Cosines to every centre, sorted by (-cosine, index): the obviously correct top k."""
    S = (X / np.linalg.norm(X, axis=1, keepdims=True)) @ (
        centers / np.linalg.norm(centers, axis=1, keepdims=True)
    ).T
    order = np.array([sorted(range(S.shape[1]), key=lambda j, r=row: (-r[j], j)) for row in S])
    return order[:, :k], np.take_along_axis(S, order[:, :k], axis=1)


def fewshot_tasks(n_tasks=7, seed=2):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0.0, 3.0, (n_tasks, 3, 4))
    support = np.repeat(centres, 2, axis=1) + rng.normal(0.0, 1.0, (n_tasks, 6, 4))
    labels = np.tile([4, 4, 7, 7, 9, 9], (n_tasks, 1))
    queries = np.repeat(centres, 5, axis=1) + rng.normal(0.0, 1.0, (n_tasks, 15, 4))
    return support, labels, queries


# --- graph logic, synchronous scheduler -------------------------------------------------


@pytest.fixture
def synchronous():
    with dask.config.set(scheduler="synchronous"):
        yield


CASES = [("gmm", "predict"), ("gmm", "predict_proba"), ("kmeans", "predict")]


@pytest.mark.parametrize(("which", "method"), CASES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_row_methods_equal_the_in_memory_result(fitted, synchronous, which, method, dtype):
    model = fitted[0] if which == "gmm" else fitted[1]
    X = fitted[2].astype(dtype)
    expected = getattr(model, method)(X)
    lazy = getattr(model, method)(da.from_array(X, chunks=(50, 3)))
    assert isinstance(lazy, da.Array)
    assert lazy.chunks[0] == (50, 50, 50, 50, 17)
    assert lazy.shape == expected.shape
    assert lazy.dtype == expected.dtype
    computed = lazy.compute()
    assert type(computed) is np.ndarray
    assert computed.dtype == expected.dtype
    if method == "predict":
        np.testing.assert_array_equal(computed, expected)
        assert set(np.unique(computed)) <= set(model.labels_.tolist()) | {
            *getattr(model, "component_labels_", getattr(model, "cluster_labels_", []))
        }
    else:
        np.testing.assert_allclose(
            computed, expected, rtol=1e-6 if dtype == np.float32 else 1e-12, atol=1e-12
        )
        np.testing.assert_allclose(computed.sum(axis=1), 1.0, rtol=1e-5)


def test_one_task_per_chunk_and_the_model_is_one_key(fitted):
    gmm, _, X = fitted
    lazy = gmm.predict_proba(da.from_array(X, chunks=(40, 3)))
    graph = dict(lazy.__dask_graph__())
    model_keys = [key for key in graph if str(key).startswith("SemiSupervisedGMM")]
    assert len(model_keys) == 1
    mapped = [
        key
        for key in graph
        if isinstance(key, tuple) and key[0].startswith("semisupervisedgmm-predict_proba")
    ]
    assert len(mapped) == len(lazy.chunks[0]) == 6


@pytest.mark.parametrize(("which", "method"), CASES)
def test_the_model_sent_to_the_workers_leaves_the_training_rows_behind(fitted, which, method):
    model = fitted[0] if which == "gmm" else fitted[1]
    n_train = model.labels_.shape[0]
    lazy = getattr(model, method)(da.from_array(fitted[2], chunks=(100, 3)))
    graph = dict(lazy.__dask_graph__())
    (key,) = [key for key in graph if str(key).startswith(type(model).__name__)]
    sent = dask.get(graph, key)  # the one copy every chunk's task reads
    assert isinstance(sent, type(model))
    grows = [
        name
        for name, value in vars(sent).items()
        if isinstance(value, np.ndarray) and value.ndim and value.shape[0] == n_train
    ]
    assert grows == []
    assert hasattr(model, "labels_")  # the caller's model keeps its attributes


def test_column_chunks_are_joined_and_integer_input_scored_in_float64(fitted, synchronous):
    gmm, kmeans, X = fitted
    Xi = np.round(X).astype(np.int64)
    lazy = gmm.predict_proba(da.from_array(Xi, chunks=(64, 2)))
    assert lazy.dtype == np.float64
    assert lazy.chunks[1] == (3,)
    np.testing.assert_allclose(lazy.compute(), gmm.predict_proba(Xi), rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(
        kmeans.predict(da.from_array(Xi, chunks=(100, 1))).compute(), kmeans.predict(Xi)
    )


def test_bad_input_is_refused_before_or_at_compute(fitted, synchronous):
    gmm, kmeans, X = fitted
    with pytest.raises(ValueError, match="has 2 features, but SemiSupervisedGMM is expecting 3"):
        gmm.predict(da.from_array(X[:, :2], chunks=(50, 2)))  # no compute needed
    with pytest.raises(ValueError, match="2-D"):
        kmeans.predict(da.from_array(X[:, 0], chunks=50))
    with pytest.raises(NotFittedError):
        SemiSupervisedGMM().predict(da.from_array(X, chunks=(50, 3)))
    bad = X.copy()
    bad[130, 1] = np.nan
    lazy = gmm.predict(da.from_array(bad, chunks=(50, 3)))  # lazily built: no error yet
    with pytest.raises(ValueError, match="NaN"):
        lazy.compute()
    unknown = da.from_array(X, chunks=(50, 3))
    unknown = unknown[unknown[:, 0] > 0]
    with pytest.raises(ValueError, match="compute_chunk_sizes"):
        kmeans.predict(unknown)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_multilabel_assign_two_outputs_from_one_pass(synchronous, monkeypatch, dtype):
    rng = np.random.default_rng(3)
    X = (rng.standard_normal((90, 6)) * rng.uniform(0.5, 3.0, (90, 1))).astype(dtype)
    centers = rng.standard_normal((11, 6))
    calls = []
    block = multilabel._assign_block

    def counted(*args):
        calls.append(args[0].shape[0])
        return block(*args)

    monkeypatch.setattr(multilabel, "_assign_block", counted)
    indices, values = multilabel_assign(da.from_array(X, chunks=(25, 3)), centers, k=4)
    assert isinstance(indices, da.Array)
    assert isinstance(values, da.Array)
    assert indices.dtype == np.int64
    assert values.dtype == dtype
    assert indices.chunks == values.chunks == ((25, 25, 25, 15), (4,))
    got_indices, got_values = dask.compute(indices, values)
    assert sorted(calls) == [15, 25, 25, 25]  # one NumPy call per chunk for both outputs
    expected_indices, expected_values = multilabel_assign(X, centers, k=4)
    np.testing.assert_array_equal(got_indices, expected_indices)
    np.testing.assert_array_equal(got_values, expected_values)
    reference_indices, reference_values = brute_force_topk(X.astype(np.float64), centers, 4)
    np.testing.assert_array_equal(got_indices, reference_indices)
    np.testing.assert_allclose(
        got_values, reference_values, rtol=1e-5 if dtype == np.float32 else 1e-12
    )


def test_multilabel_assign_checks_centres_now_and_rows_at_compute(synchronous):
    rng = np.random.default_rng(4)
    X = rng.standard_normal((30, 5))
    lazy_X = da.from_array(X, chunks=(10, 5))
    centers = rng.standard_normal((6, 5))
    with pytest.raises(ValueError, match="k=7 is larger than the number of centres"):
        multilabel_assign(lazy_X, centers, k=7)
    with pytest.raises(ValueError, match="centers have 4 features but X has 5"):
        multilabel_assign(lazy_X, centers[:, :4], k=2)
    zero_centre = centers.copy()
    zero_centre[2] = 0.0
    with pytest.raises(ValueError, match="centers has an all-zero row"):
        multilabel_assign(lazy_X, zero_centre, k=2)
    X[17] = 0.0
    indices, _ = multilabel_assign(da.from_array(X, chunks=(10, 5)), centers, k=2)
    with pytest.raises(ValueError, match="X has an all-zero row"):
        indices.compute()
    # centres given as a Dask array are small: gathered and checked at once
    indices, _values = multilabel_assign(lazy_X, da.from_array(centers, chunks=(3, 5)), k=2)
    np.testing.assert_array_equal(
        indices[:10].compute(), multilabel_assign(X[:10], centers, k=2)[0]
    )


def test_predict_tasks_chunked_along_the_tasks(synchronous):
    support, labels, queries = fewshot_tasks()
    model = TransductiveFewShot()
    expected = model.predict_tasks(support, labels, queries)
    lazy = model.predict_tasks(
        da.from_array(support, chunks=(3, 2, 4)), labels, da.from_array(queries, chunks=(2, 15, 4))
    )
    assert isinstance(lazy, da.Array)
    assert lazy.chunks == ((3, 3, 1), (15,))
    assert lazy.dtype == np.int64
    np.testing.assert_array_equal(lazy.compute(), expected)
    # NumPy support with Dask queries, Dask labels: the queries' task chunks
    lazy = model.predict_tasks(
        support, da.from_array(labels, chunks=(4, 6)), da.from_array(queries, chunks=(4, 15, 4))
    )
    assert lazy.chunks[0] == (4, 3)
    np.testing.assert_array_equal(lazy.compute(), expected)


def test_predict_tasks_refuses_mismatched_tasks(synchronous):
    support, labels, queries = fewshot_tasks()
    model = TransductiveFewShot()
    with pytest.raises(ValueError, match="disagree on the number of tasks"):
        model.predict_tasks(da.from_array(support, chunks=(3, 6, 4)), labels, queries[:5])
    with pytest.raises(ValueError, match="y_support has shape"):
        model.predict_tasks(da.from_array(support, chunks=(3, 6, 4)), labels[:, :5], queries)
    with pytest.raises(ValueError, match="n_neighbors"):
        TransductiveFewShot(n_neighbors=0).predict_tasks(
            da.from_array(support, chunks=(3, 6, 4)), labels, queries
        )


# --- end to end on a two-process LocalCluster --------------------------------------------


@pytest.mark.slow  # the workers import clusterlab and compile its kernels: ~20 s here
def test_predictions_on_a_cluster_equal_the_in_memory_ones(fitted, dask_client):
    gmm, kmeans, X = fitted
    lazy_X = da.from_array(X.astype(np.float32), chunks=(60, 3))
    centers = kmeans.cluster_centers_
    support, labels, queries = fewshot_tasks()
    lazy = {
        "labels": gmm.predict(lazy_X),
        "proba": gmm.predict_proba(lazy_X),
        "kmeans": kmeans.predict(lazy_X),
        "assign": multilabel_assign(lazy_X, centers, k=2),
        "tasks": TransductiveFewShot().predict_tasks(
            da.from_array(support, chunks=(4, 6, 4)), labels, queries
        ),
    }
    (got,) = dask.compute(lazy, scheduler=dask_client.get)
    X32 = X.astype(np.float32)
    np.testing.assert_array_equal(got["labels"], gmm.predict(X32))
    np.testing.assert_allclose(got["proba"], gmm.predict_proba(X32), rtol=1e-6, atol=1e-7)
    assert got["proba"].dtype == np.float32
    np.testing.assert_array_equal(got["kmeans"], kmeans.predict(X32))
    for part, expected in zip(got["assign"], multilabel_assign(X32, centers, k=2), strict=True):
        np.testing.assert_array_equal(part, expected)
    np.testing.assert_array_equal(
        got["tasks"], TransductiveFewShot().predict_tasks(support, labels, queries)
    )
