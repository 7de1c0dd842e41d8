"""The few-shot protocol on scikit-learn's digits reaches the reference accuracies.

Classes 0-4 give the centring mean, classes 5-9 form 5-way tasks with 15 queries per
class; 10,000 test tasks per number of shots. lam of Laplacian K-means is chosen on
validation tasks drawn with another seed, never on the test tasks (the full benchmark,
``benchmarks/fewshot_accuracy.py``, searches a wider grid on 1,000 validation tasks for
every method; here the grid is the neighbourhood of its choice, to keep the run short).
"""

import json

import numpy as np
import pytest

from benchmarks import fewshot_accuracy as bench
from clusterlab.datasets import fewshot_tasks

TEST_SEED, VAL_SEED = 0, 1
LAM_GRID = (0.5, 0.7, 1.0)


@pytest.fixture(scope="module")
def digits_protocol():
    rows = bench.run_protocol(
        "digits",
        n_tasks=10_000,
        n_val_tasks=500,
        methods=("SimpleShot", "Laplacian K-means"),
        lam_grid=LAM_GRID,
        test_seed=TEST_SEED,
        val_seed=VAL_SEED,
    )
    return {(row["method"], row["n_shot"]): row for row in rows}


@pytest.mark.slow
@pytest.mark.parametrize(("n_shot", "target"), [(1, 0.814), (5, 0.920)])
def test_laplacian_kmeans_reaches_the_reference(digits_protocol, n_shot, target):
    row = digits_protocol["Laplacian K-means", n_shot]
    assert row["n_tasks"] == 10_000
    assert row["n_val_tasks"] == 500
    assert row["lam"] in LAM_GRID
    # the lam chosen is the best on the validation tasks
    assert row["val_accuracy"] == max(row["val_scores"].values())
    assert row["accuracy"] >= target, row
    assert row["ci95"] < 0.003


@pytest.mark.slow
@pytest.mark.parametrize(("n_shot", "reference"), [(1, 0.728), (5, 0.887)])
def test_simpleshot_matches_the_reference(digits_protocol, n_shot, reference):
    row = digits_protocol["SimpleShot", n_shot]
    assert row["lam"] == 0.0
    assert row["n_val_tasks"] == 0  # nothing tuned
    assert abs(row["accuracy"] - reference) <= 0.01, row


@pytest.mark.slow
def test_transduction_gains_over_simpleshot(digits_protocol):
    for n_shot in (1, 5):
        gain = (
            digits_protocol["Laplacian K-means", n_shot]["accuracy"]
            - digits_protocol["SimpleShot", n_shot]["accuracy"]
        )
        assert gain > 0.03


def test_validation_and_test_tasks_need_different_seeds():
    with pytest.raises(ValueError, match="another random_state"):
        bench.run_protocol("digits", n_tasks=5, n_val_tasks=5, test_seed=3, val_seed=3)
    with pytest.raises(ValueError, match="Unknown method"):
        bench.run_protocol("digits", n_tasks=5, n_val_tasks=5, methods=("TIM",))


def test_lam_selection_prefers_the_best_then_the_smallest(monkeypatch):
    scores = {0.1: 0.5, 0.3: 0.8, 0.7: 0.8, 1.0: 0.6}

    class Score:
        def __init__(self, accuracy):
            self.accuracy = accuracy

    def fake_score(model, tasks, warmup=True):
        return Score(scores[model.lam]), 0.0, ""

    monkeypatch.setattr(bench, "score_tasks", fake_score)
    method = bench.get_method("Laplacian K-means")
    lam, found, _ = bench.select_lam(method, None, np.zeros(3), (1.0, 0.7, 0.3, 0.1))
    assert lam == 0.3
    assert found == scores


def test_task_indices_give_the_tasks_of_fewshot_tasks(monkeypatch):
    X, y, _ = bench.novel_split("digits")
    reference = fewshot_tasks(X, y, n_shot=2, n_tasks=25, random_state=7)
    tasks = bench.draw_tasks(X, y, 25, 7, n_way=5, n_shot=2, n_query=15)
    X_support, y_support, X_query = tasks.arrays(slice(None))
    np.testing.assert_array_equal(X_support, reference.X_support)
    np.testing.assert_array_equal(y_support, reference.y_support)
    np.testing.assert_array_equal(X_query, reference.X_query)
    np.testing.assert_array_equal(tasks.y_query, reference.y_query)
    # scored in chunks, the predictions are those of one call over all the tasks
    model = bench.make_model(bench.get_method("Laplacian K-means"), 0.7, X.mean(axis=0))
    monkeypatch.setattr(bench, "CHUNK_TASKS", 10)
    score, _, note = bench.score_tasks(model, tasks, warmup=False)
    whole = model.predict_tasks(reference.X_support, reference.y_support, reference.X_query)
    np.testing.assert_array_equal(score.task_accuracies, (whole == reference.y_query).mean(1))
    assert note == ""


def test_warnings_of_chunks_are_added_up():
    messages = [
        "Of 10 tasks, 1 stopped before their labels settled (max_iter=100, or a class lost "
        "all its points) and 2 ended their last bound iterations at max_bound_iter=1000.",
        "Of 10 tasks, 0 stopped before their labels settled (max_iter=100, or a class lost "
        "all its points) and 3 ended their last bound iterations at max_bound_iter=1000.",
    ]
    assert bench._summarise(messages).startswith("1 tasks stopped before")
    assert "5 ended" in bench._summarise(messages)
    assert bench._summarise(["something else"]) == "something else"
    assert bench._summarise([]) == ""


def test_benchmark_script_runs_every_method(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(bench, "QUICK", {"n_tasks": 10, "n_val_tasks": 10, "lam_grid": (0.3, 0.7)})
    out = tmp_path / "fewshot.json"
    bench.main(["--quick", "--datasets", "digits", "--out", str(out)])
    printed = capsys.readouterr().out
    assert "Laplacian K-modes" in printed
    assert "5-shot" in printed
    written = json.loads(out.read_text())
    meta = written["metadata"]
    assert meta["protocol"]["n_tasks"] == 10
    assert meta["protocol"]["lam_grid"] == [0.3, 0.7]
    rows = written["rows"]
    assert [(row["n_shot"], row["method"]) for row in rows] == [
        (shot, name) for shot in (1, 5) for name in bench.METHOD_NAMES
    ]
    for row in rows:
        assert 0.2 < row["accuracy"] <= 1.0
        tuned = bench.get_method(row["method"]).tuned
        assert (row["lam"] in (0.3, 0.7)) if tuned else row["lam"] == 0.0
        assert set(row["val_scores"]) == ({"0.3", "0.7"} if tuned else set())
