"""Laplacian K-means clusters the digits better than K-means, over the same five seeds."""

import numpy as np
import pytest

from benchmarks.laplacian_clustering import SEEDS, compare, format_table


@pytest.fixture(scope="module")
def digits_rows():
    rows = compare("digits", None, seeds=SEEDS)
    return {row["method"]: row for row in rows}


def test_laplacian_kmeans_beats_kmeans_on_digits(digits_rows):
    ours, theirs = digits_rows["LaplacianKMeans"], digits_rows["sklearn KMeans"]
    assert ours["seeds"] == theirs["seeds"] == [0, 1, 2, 3, 4]
    assert ours["nmi_mean"] >= theirs["nmi_mean"], (ours["nmi"], theirs["nmi"])
    assert ours["accuracy_mean"] >= theirs["accuracy_mean"], (ours["accuracy"], theirs["accuracy"])
    assert not ours["note"]  # no convergence warning on any seed


def test_benchmark_rows_are_consistent(digits_rows):
    for row in digits_rows.values():
        assert len(row["nmi"]) == len(row["accuracy"]) == len(SEEDS)
        assert row["nmi_mean"] == pytest.approx(np.mean(row["nmi"]))
        assert row["accuracy_mean"] == pytest.approx(np.mean(row["accuracy"]))
        assert all(0 < v <= 1 for v in row["nmi"] + row["accuracy"])
    assert "LaplacianKMeans" in format_table(list(digits_rows.values()))
