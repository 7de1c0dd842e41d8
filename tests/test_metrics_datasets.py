import numpy as np
import pytest

from clusterlab.datasets import DATASETS, load_dataset
from clusterlab.metrics import clustering_accuracy, misclustering_error


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
