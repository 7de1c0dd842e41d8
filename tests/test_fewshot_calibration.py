"""TransductiveFewShot.calibrate and solvers.fewshot_calibration: the batched scores equal
one-task-at-a-time predictions, the best setting is kept, SimpleShot is among them."""

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from clusterlab.datasets import fewshot_tasks, load_dataset
from clusterlab.transductive import TransductiveFewShot


@pytest.fixture(scope="module")
def digits():
    X, y = load_dataset("digits")
    base = y < 5
    return X[base], y[base], X[~base], y[~base]


def reference_scores(
    model, X_base, y_base, base_mean, candidates, *, n_way, n_shot, n_query, n_tasks, seed
):
    """Mean query accuracy of SimpleShot and of every candidate, one episode and one
    candidate at a time through fit/predict (the obvious, slow way)."""
    tasks = fewshot_tasks(
        X_base,
        y_base,
        n_way=n_way,
        n_shot=n_shot,
        n_query=n_query,
        n_tasks=n_tasks,
        random_state=seed,
    )
    settings = [{"lam": 0.0, "prototypes": "fixed", "shift_queries": False}]
    settings += [{"lam": lam} for lam in sorted(set(candidates))]
    scores = []
    for setting in settings:
        accuracies = []
        for t in range(n_tasks):
            one = clone(model).set_params(base_mean=base_mean, **setting)
            predicted = one.fit(tasks.X_support[t], tasks.y_support[t]).predict(tasks.X_query[t])
            accuracies.append(np.mean(predicted == tasks.y_query[t]))
        scores.append(np.mean(accuracies))
    return np.array(scores)


def nearest_mean_accuracy(X_base, y_base, *, n_way, n_shot, n_query, n_tasks, seed):
    """SimpleShot written out: centre on the base mean, unit norm, nearest support mean."""
    center = X_base.mean(axis=0)
    tasks = fewshot_tasks(
        X_base,
        y_base,
        n_way=n_way,
        n_shot=n_shot,
        n_query=n_query,
        n_tasks=n_tasks,
        random_state=seed,
    )
    accuracies = []
    for t in range(n_tasks):
        support = tasks.X_support[t] - center
        support /= np.linalg.norm(support, axis=1, keepdims=True)
        query = tasks.X_query[t] - center
        query /= np.linalg.norm(query, axis=1, keepdims=True)
        classes = np.unique(tasks.y_support[t])
        means = np.array([support[tasks.y_support[t] == c].mean(axis=0) for c in classes])
        distances = ((query[:, None, :] - means[None, :, :]) ** 2).sum(axis=2)
        accuracies.append(np.mean(classes[distances.argmin(axis=1)] == tasks.y_query[t]))
    return float(np.mean(accuracies))


@pytest.mark.parametrize(
    ("prototypes", "n_shot"),
    [
        ("means", 1),
        pytest.param("means", 5, marks=pytest.mark.slow),
        pytest.param("modes", 1, marks=pytest.mark.slow),
        pytest.param("fixed", 5, marks=pytest.mark.slow),
    ],
)
def test_batched_scores_equal_one_task_at_a_time(digits, prototypes, n_shot):
    X_base, y_base, _, _ = digits
    candidates = (1.0, 0.0, 0.3, 0.3)  # unsorted, a duplicate
    draw = {"n_way": 5, "n_shot": n_shot, "n_query": 6, "n_tasks": 10}
    model = TransductiveFewShot(prototypes=prototypes)
    model.calibrate(X_base, y_base, candidates=candidates, random_state=3, **draw)
    results = model.calibration_results_
    np.testing.assert_array_equal(results["lam"], [0.0, 0.0, 0.3, 1.0])
    np.testing.assert_array_equal(results["prototypes"], ["fixed"] + [prototypes] * 3)
    np.testing.assert_array_equal(results["shift_queries"], [False, True, True, True])
    expected = reference_scores(
        model, X_base, y_base, X_base.mean(axis=0), candidates, seed=3, **draw
    )
    np.testing.assert_allclose(results["mean_accuracy"], expected, rtol=0, atol=1e-12)
    # the settings differ: their scores are not all the same number
    assert np.ptp(expected) > 0


def test_simpleshot_row_is_the_nearest_support_mean(digits):
    X_base, y_base, _, _ = digits
    draw = {"n_way": 4, "n_shot": 2, "n_query": 5, "n_tasks": 30}
    model = TransductiveFewShot().calibrate(
        X_base, y_base, candidates=[0.5], random_state=1, **draw
    )
    expected = nearest_mean_accuracy(X_base, y_base, seed=1, **draw)
    assert model.calibration_results_["mean_accuracy"][0] == pytest.approx(expected, abs=1e-12)


def test_calibrate_keeps_the_best_setting_and_predicts_with_it(digits):
    X_base, y_base, X_novel, y_novel = digits
    model = TransductiveFewShot(lam=0.05).calibrate(
        X_base, y_base, n_way=5, n_shot=1, n_tasks=60, candidates=[0.0, 0.05, 0.7], random_state=0
    )
    results = model.calibration_results_
    best = int(np.argmax(results["mean_accuracy"]))
    np.testing.assert_array_equal(results["selected"], np.arange(results["lam"].size) == best)
    assert model.lam_ == results["lam"][best]
    assert model.prototypes_ == results["prototypes"][best]
    assert model.shift_queries_ == results["shift_queries"][best]
    assert model.lam_ != model.lam  # digits' 1-shot best is not the tiny lam given
    assert results["mean_accuracy"][best] >= results["mean_accuracy"][0]  # SimpleShot
    assert np.all(results["ci95"] > 0)
    np.testing.assert_array_equal(model.base_mean_, X_base.mean(axis=0))

    tasks = fewshot_tasks(X_novel, y_novel, n_way=5, n_shot=1, n_tasks=40, random_state=2)
    arrays = (tasks.X_support, tasks.y_support, tasks.X_query)
    explicit = TransductiveFewShot(
        lam=model.lam_,
        prototypes=model.prototypes_,
        shift_queries=model.shift_queries_,
        base_mean=model.base_mean_,
    )
    np.testing.assert_array_equal(model.predict_tasks(*arrays), explicit.predict_tasks(*arrays))
    uncalibrated = TransductiveFewShot(lam=0.05, base_mean=model.base_mean_)
    assert np.any(model.predict_tasks(*arrays) != uncalibrated.predict_tasks(*arrays))
    # one task through fit/predict uses the calibration too; fit keeps it
    model.fit(tasks.X_support[0], tasks.y_support[0])
    assert model.lam_ == results["lam"][best]
    np.testing.assert_array_equal(
        model.predict(tasks.X_query[0]),
        explicit.fit(tasks.X_support[0], tasks.y_support[0]).predict(tasks.X_query[0]),
    )


def test_simpleshot_is_kept_when_it_wins(digits):
    X_base, y_base, X_novel, y_novel = digits
    # a graph of 30 neighbours in 100-point episodes links the classes, and lam=5 lets
    # it merge them: the nearest support mean is better
    model = TransductiveFewShot(n_neighbors=30).calibrate(
        X_base, y_base, n_way=5, n_shot=5, candidates=[5.0], n_tasks=30, random_state=0
    )
    scores = model.calibration_results_["mean_accuracy"]
    assert scores[0] > scores[1]
    assert (model.lam_, model.prototypes_, model.shift_queries_) == (0.0, "fixed", False)
    tasks = fewshot_tasks(X_novel, y_novel, n_way=5, n_shot=5, n_tasks=20, random_state=1)
    arrays = (tasks.X_support, tasks.y_support, tasks.X_query)
    simpleshot = TransductiveFewShot(
        lam=0, prototypes="fixed", shift_queries=False, base_mean=X_base.mean(axis=0)
    )
    np.testing.assert_array_equal(model.predict_tasks(*arrays), simpleshot.predict_tasks(*arrays))


def test_clone_drops_the_calibration_and_parameters_stay(digits):
    X_base, y_base, _, _ = digits
    model = TransductiveFewShot(lam=0.05)
    params = model.get_params()
    model.calibrate(X_base, y_base, n_way=5, n_shot=1, n_tasks=20, candidates=[0.5], random_state=0)
    assert model.get_params() == params  # calibrate writes no parameter
    fresh = clone(model)
    for name in ("lam_", "prototypes_", "shift_queries_", "base_mean_", "calibration_results_"):
        assert hasattr(model, name)
        assert not hasattr(fresh, name)
    with pytest.raises(NotFittedError):
        model.predict(X_base[:5])  # calibrated, but no support set fitted


def test_base_mean_given_or_absent(digits):
    X_base, y_base, _, _ = digits
    draw = {"n_way": 5, "n_shot": 1, "n_tasks": 20, "candidates": [0.5], "random_state": 0}
    given = np.full(X_base.shape[1], 3.0)
    model = TransductiveFewShot(base_mean=given).calibrate(X_base, y_base, **draw)
    np.testing.assert_array_equal(model.base_mean_, given)
    own_mean = TransductiveFewShot().calibrate(X_base, y_base, **draw)
    assert not np.array_equal(
        model.calibration_results_["mean_accuracy"], own_mean.calibration_results_["mean_accuracy"]
    )
    assert (
        TransductiveFewShot(preprocessing="l2n").calibrate(X_base, y_base, **draw).base_mean_
        is None
    )


def test_labels_of_any_kind_and_scale(digits):
    X_base, y_base, _, _ = digits
    draw = {"n_way": 3, "n_shot": 2, "n_tasks": 20, "candidates": [0.0, 0.7], "random_state": 5}
    reference = TransductiveFewShot().calibrate(X_base, y_base, **draw).calibration_results_
    names = np.array(["zero", "one", "two", "three", "four"])[y_base]
    recoded = np.unique(names, return_inverse=True)[1].reshape(-1)  # names' sort order
    by_name = TransductiveFewShot().calibrate(X_base, names, **draw)
    by_code = TransductiveFewShot().calibrate(X_base, recoded, **draw)
    np.testing.assert_array_equal(
        by_name.calibration_results_["mean_accuracy"], by_code.calibration_results_["mean_accuracy"]
    )
    # features far below 1 (squares underflow without the power-of-two frame) score alike
    tiny = TransductiveFewShot().calibrate(X_base * 2.0**-700, y_base, **draw)
    np.testing.assert_array_equal(
        tiny.calibration_results_["mean_accuracy"], reference["mean_accuracy"]
    )
    np.testing.assert_array_equal(tiny.base_mean_, X_base.mean(axis=0) * 2.0**-700)


def test_tensor_base_features_give_the_numpy_calibration(digits):
    torch = pytest.importorskip("torch")
    X_base, y_base, _, _ = digits
    draw = {"n_way": 5, "n_shot": 1, "n_tasks": 20, "candidates": [0.3], "random_state": 0}
    numpy_model = TransductiveFewShot().calibrate(X_base, y_base, **draw)
    torch_model = TransductiveFewShot().calibrate(
        torch.from_numpy(X_base), torch.from_numpy(y_base), **draw
    )
    np.testing.assert_array_equal(
        torch_model.calibration_results_["mean_accuracy"],
        numpy_model.calibration_results_["mean_accuracy"],
    )
    assert isinstance(torch_model.base_mean_, np.ndarray)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"y_base": "short"}, "y_base must be a 1-D array of length"),
        ({"y_base": "nan"}, "y_base contains NaN"),
        ({"X_base": "nan"}, "NaN|infinite|finite"),
        ({"n_way": 1}, "n_way must be an integer >= 2"),
        ({"n_shot": 0}, "n_shot must be an integer >= 1"),
        ({"n_query": 2.5}, "n_query must be an integer >= 1"),
        ({"n_tasks": 0}, "n_tasks must be an integer >= 1"),
        ({"n_way": 6}, "only 5 classes have"),
        ({"n_query": 200}, "classes have"),
        ({"candidates": []}, "non-empty"),
        ({"candidates": [0.5, -0.1]}, "finite and >= 0"),
        ({"candidates": [np.nan]}, "finite and >= 0"),
        ({"candidates": "abc"}, "sequence of numbers"),
        ({"base_mean": np.zeros(3)}, "base_mean must hold 64 finite numbers"),
    ],
)
def test_bad_input_is_refused(digits, change, message):
    X_base, y_base, _, _ = digits
    kwargs = {"n_way": 5, "n_shot": 1, "n_query": 15, "n_tasks": 5}
    model = TransductiveFewShot()
    X, y = X_base, y_base
    for key, value in change.items():
        if key == "y_base":
            y = y_base[:-1] if value == "short" else np.where(y_base == 0, np.nan, y_base)
        elif key == "X_base":
            X = X_base.copy()
            X[3, 2] = np.nan
        elif key == "base_mean":
            model.set_params(base_mean=value)
        else:
            kwargs[key] = value
    with pytest.raises(ValueError, match=message):
        model.calibrate(X, y, **kwargs)
    assert not hasattr(model, "lam_")


def test_bad_parameters_are_refused_by_calibrate(digits):
    X_base, y_base, _, _ = digits
    with pytest.raises(ValueError, match="lam"):
        TransductiveFewShot(lam=-1.0).calibrate(X_base, y_base, n_way=5, n_shot=1, n_tasks=5)
