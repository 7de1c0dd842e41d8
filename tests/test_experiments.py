import csv
import json
import math
import sys

import numpy as np
import pytest
from scipy.spatial.distance import pdist

from clusterlab.cli import main
from clusterlab.datasets import (
    HETEROGENEOUS_SETTINGS,
    make_gaussian_mixture,
    make_heterogeneous_mixture,
    make_isotropic_mixture,
)
from clusterlab.experiments import (
    exact_recovery_threshold,
    heterogeneous,
    phase_transition,
    recovery_crossing,
)

# --- the threshold ------------------------------------------------------------------


def test_threshold_matches_hand_computation():
    # n = 200, p = 10, K = 4, sigma = 2: K p / (n log n) = 40 / (200 * 5.298317) = 0.0377478
    log_n = 5.298317366548036  # log 200
    hand = 4 * 4.0 * (1 + math.sqrt(1 + 0.0377478332)) * log_n
    assert exact_recovery_threshold(200, 10, 4, sigma=2.0) == pytest.approx(hand, rel=1e-7)
    assert exact_recovery_threshold(200, 10, 4, sigma=2.0) == pytest.approx(171.1313, abs=1e-4)
    # sigma scales it quadratically; p -> 0 leaves 8 sigma^2 log n
    assert exact_recovery_threshold(200, 10, 4, 2.0) == pytest.approx(
        4 * exact_recovery_threshold(200, 10, 4, 1.0)
    )
    assert exact_recovery_threshold(10**6, 1, 2) == pytest.approx(8 * math.log(10**6), rel=1e-6)


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((1, 2, 2), "n must be an integer >= 2"),
        ((100, 0, 2), "p must be an integer >= 1"),
        ((100, 2, 1), "n_clusters must be an integer >= 2"),
        ((5, 2, 6), "must not exceed the number of samples"),
        ((100, 2, 2, 0.0), "sigma must be a positive number"),
        ((100, 2, 2, float("nan")), "sigma must be a positive number"),
        ((100, 2, 2, float("inf")), "sigma must be finite"),
        ((100.0, 2, 2), "n must be an integer"),
    ],
)
def test_threshold_rejects_bad_input(args, match):
    with pytest.raises(ValueError, match=match):
        exact_recovery_threshold(*args)


# --- generators ----------------------------------------------------------------------


@pytest.mark.parametrize(("n", "p", "K"), [(103, 10, 4), (50, 2, 3), (31, 1, 2), (60, 5, 6)])
def test_isotropic_mixture_sizes_and_separation(n, p, K):
    X, y, centers = make_isotropic_mixture(n, p, K, 1.3, return_centers=True, random_state=0)
    assert X.shape == (n, p)
    assert y.dtype == np.int64
    counts = np.bincount(y)
    assert counts.size == K
    assert counts.sum() == n
    assert counts.max() - counts.min() <= 1
    target = 1.3 * exact_recovery_threshold(n, p, K)
    distances = pdist(centers, "sqeuclidean")
    assert distances.min() == pytest.approx(target, rel=1e-12)
    np.testing.assert_allclose(distances, target, rtol=1e-12)  # a regular simplex
    # absolute separation
    _, _, centers = make_isotropic_mixture(
        n, p, K, 7.5, relative=False, sigma=3.0, return_centers=True, random_state=0
    )
    assert pdist(centers, "sqeuclidean").min() == pytest.approx(7.5, rel=1e-12)


def test_isotropic_mixture_noise_and_determinism():
    X, y, centers = make_isotropic_mixture(
        4000, 3, 2, 2.0, sigma=0.5, return_centers=True, random_state=1
    )
    residual = X - centers[y]
    np.testing.assert_allclose(residual.mean(axis=0), 0.0, atol=0.05)
    np.testing.assert_allclose(np.cov(residual.T), 0.25 * np.eye(3), atol=0.03)
    again = make_isotropic_mixture(4000, 3, 2, 2.0, sigma=0.5, random_state=1)
    np.testing.assert_array_equal(X, again[0])
    np.testing.assert_array_equal(y, again[1])
    other = make_isotropic_mixture(4000, 3, 2, 2.0, sigma=0.5, random_state=2)
    assert not np.array_equal(X, other[0])
    ordered = make_isotropic_mixture(10, 3, 2, 2.0, shuffle=False, random_state=0)[1]
    assert ordered.tolist() == [0] * 5 + [1] * 5


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        ((100, 2, 4, 1.0), {}, "need n_features >= n_clusters - 1 = 3"),
        ((100, 5, 3, 0.0), {}, "separation must be a positive number"),
        ((100, 5, 3, -1.0), {}, "separation must be a positive number"),
        ((2, 5, 3, 1.0), {}, "n_samples=2 should be >= n_clusters=3"),
        ((100, 5, 1, 1.0), {}, "n_clusters must be an integer >= 2"),
        ((100, 0, 2, 1.0), {}, "n_features must be an integer >= 1"),
        ((100, 5, 3, 1.0), {"sigma": -1.0}, "sigma must be a positive number"),
    ],
)
def test_isotropic_mixture_rejects_bad_input(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_isotropic_mixture(*args, **kwargs)


def test_gaussian_mixture_moments_and_covariance_forms():
    means = np.array([[0.0, 0.0], [10.0, -3.0]])
    full = np.array([[[1.0, 0.6], [0.6, 2.0]], [[0.5, 0.0], [0.0, 0.0]]])  # one singular
    X, y = make_gaussian_mixture(means, full, [3000, 2000], random_state=0)
    assert np.bincount(y).tolist() == [3000, 2000]
    for k in range(2):
        np.testing.assert_allclose(X[y == k].mean(axis=0), means[k], atol=0.1)
        np.testing.assert_allclose(np.cov(X[y == k].T), full[k], atol=0.1)
    X_diag, _ = make_gaussian_mixture(
        means, [[1.0, 4.0], [0.25, 0.25]], 4000, random_state=0, shuffle=False
    )
    np.testing.assert_allclose(X_diag[:2000].var(axis=0), [1.0, 4.0], rtol=0.1)
    X_sph, y_sph = make_gaussian_mixture(means, [1.0, 9.0], 4001, random_state=0)
    assert np.bincount(y_sph).tolist() == [2001, 2000]
    np.testing.assert_allclose(X_sph[y_sph == 1].var(axis=0), [9.0, 9.0], rtol=0.1)
    # the same draw for the same seed, with full and equivalent diagonal covariances
    a = make_gaussian_mixture(means, [[1.0, 4.0], [0.25, 0.25]], 50, random_state=3)[0]
    b = make_gaussian_mixture(
        means, [np.diag([1.0, 4.0]), np.diag([0.25, 0.25])], 50, random_state=3
    )[0]
    np.testing.assert_allclose(a, b)


@pytest.mark.parametrize(
    ("covariances", "sizes", "match"),
    [
        ([[[1.0, 2.0], [2.0, 1.0]], np.eye(2)], 10, "not positive semi-definite"),
        ([[[1.0, 0.5], [0.0, 1.0]], np.eye(2)], 10, "symmetric"),
        ([-1.0, 1.0], 10, "nonnegative variances"),
        ([1.0, 1.0, 1.0], 10, r"covariances must have shape \(2,\)"),
        ([np.eye(3), np.eye(3)], 10, "covariances must have shape"),
        ([1.0, np.nan], 10, "NaN or infinity"),
        ([1.0, 1.0], [5, 0], "sizes must be positive"),
        ([1.0, 1.0], [5, 5, 5], "one per mean"),
        ([1.0, 1.0], [5.0, 5.0], "one per mean"),
        ([1.0, 1.0], 1, "cannot fill 2 clusters"),
    ],
)
def test_gaussian_mixture_rejects_bad_input(covariances, sizes, match):
    with pytest.raises(ValueError, match=match):
        make_gaussian_mixture([[0.0, 0.0], [1.0, 1.0]], covariances, sizes)


def test_gaussian_mixture_rejects_bad_means():
    with pytest.raises(ValueError, match="means must be a 2-D array"):
        make_gaussian_mixture([0.0, 1.0], [1.0, 1.0], 10)
    with pytest.raises(ValueError, match="NaN or infinity"):
        make_gaussian_mixture([[0.0], [np.inf]], [1.0, 1.0], 10)


@pytest.mark.parametrize(("setting", "n", "K"), [("k2", 100, 2), ("k3", 120, 3)])
def test_heterogeneous_settings(setting, n, K):
    X, y = make_heterogeneous_mixture(setting, random_state=0)
    assert X.shape == (n, 2)
    assert np.bincount(y).tolist() == [n // K] * K
    np.testing.assert_array_equal(X, make_heterogeneous_mixture(setting, random_state=0)[0])
    X, y = make_heterogeneous_mixture(setting, n_samples=31, random_state=0)
    assert X.shape == (31, 2)
    assert np.bincount(y).max() - np.bincount(y).min() <= 1


def test_heterogeneous_settings_follow_sdp_md():
    k2 = HETEROGENEOUS_SETTINGS["k2"]
    np.testing.assert_array_equal(k2["means"], [[0.0, 0.0], [2.5, 0.0]])
    np.testing.assert_array_equal(k2["covariances"], [np.diag([0.25, 0.25]), np.diag([0.25, 9.0])])
    k3 = HETEROGENEOUS_SETTINGS["k3"]
    # different covariances with equal spectra: each cluster is the previous one turned
    for covariance in k3["covariances"]:
        np.testing.assert_allclose(np.linalg.eigvalsh(covariance), [0.1, 3.0])
    assert not np.allclose(k3["covariances"][0], k3["covariances"][1])
    with pytest.raises(ValueError, match="Unknown setting 'k4'"):
        make_heterogeneous_mixture("k4")
    with pytest.raises(ValueError, match="n_samples must be an integer >= 3"):
        make_heterogeneous_mixture("k3", n_samples=2)


# --- experiments ----------------------------------------------------------------------


def test_recovery_crossing():
    assert recovery_crossing([0.5, 1.0, 1.5], [0.0, 0.25, 0.75]) == (1.25, "interpolated")
    assert recovery_crossing([0.5, 1.0], [0.6, 1.0]) == (0.5, "below grid")
    crossing, note = recovery_crossing([0.5, 1.0], [0.0, 0.4])
    assert math.isnan(crossing)
    assert note == "not reached"


@pytest.fixture(scope="module")
def tiny_phase_transition():
    # far below (0.2 Θ²) and far above (2.5 Θ²) the threshold
    return phase_transition(
        [(60, 5, 3)], grid=[2.5, 0.2], n_trials=3, methods=["sdp", "kmeans"], random_state=0
    )


def test_phase_transition_far_below_and_above(tiny_phase_transition):
    result = tiny_phase_transition
    assert result.parameters["grid"] == [0.2, 2.5]  # sorted
    theta2 = exact_recovery_threshold(60, 5, 3)
    probability = {
        (row["method"], row["separation"]): row["recovery_probability"] for row in result.summary
    }
    assert probability["sdp", 0.2] == 0.0
    assert probability["sdp", 2.5] == 1.0
    assert probability["kmeans", 2.5] == 1.0
    for row in result.summary:
        assert row["theta2"] == pytest.approx(theta2)
        assert row["squared_distance"] == pytest.approx(row["separation"] * theta2)
        assert row["trials"] == 3
        assert 0 <= row["mean_error"] <= 1
    assert len(result.trials) == 2 * 3 * 2
    recovered = [t for t in result.trials if t["method"] == "sdp" and t["separation"] == 2.5]
    assert all(t["recovered"] and t["error"] == 0.0 for t in recovered)
    (sdp,) = [row for row in result.transitions if row["method"] == "sdp"]
    assert sdp["note"] == "interpolated"
    assert 0.2 < sdp["crossing"] < 2.5
    text = result.format_table()
    assert "Θ²=" in text
    assert "sdp" in text


def test_phase_transition_is_reproducible():
    kwargs = {"grid": [0.6], "n_trials": 2, "methods": ["kmeans"], "random_state": 5}
    first = phase_transition([(40, 3, 2)], **kwargs)
    second = phase_transition([(40, 3, 2)], **kwargs)
    assert [t["error"] for t in first.trials] == [t["error"] for t in second.trials]
    assert [t["data_seed"] for t in first.trials] == [t["data_seed"] for t in second.trials]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"configs": [(60, 2, 4)]}, r"need p >= 3"),
        ({"configs": [(60, 2)]}, r"must be \(n, p, n_clusters\)"),
        ({"configs": []}, "configs is empty"),
        ({"grid": []}, "grid is empty"),
        ({"grid": [0.5, -1.0]}, "every grid value must be a positive number"),
        ({"methods": ["sdp", "spectral"]}, "Unknown method"),
        ({"methods": ["sdp", "sdp"]}, "repeated"),
        ({"n_trials": 0}, "n_trials must be an integer >= 1"),
        ({"sdp_solver": "scs"}, "sdp_solver must be"),
    ],
)
def test_phase_transition_rejects_bad_input(kwargs, match):
    arguments = {"configs": [(60, 5, 3)], "grid": [1.0], "n_trials": 1} | kwargs
    with pytest.raises(ValueError, match=match):
        phase_transition(**arguments)


@pytest.fixture(scope="module")
def tiny_heterogeneous():
    return heterogeneous(
        ["k2"], n_replicates=2, methods=["kmeans", "sdp", "em", "ila-sdp"], random_state=0
    )


def test_heterogeneous_tiny(tiny_heterogeneous):
    result = tiny_heterogeneous
    summary = {row["method"]: row for row in result.summary}
    assert list(summary) == ["kmeans", "sdp", "em", "ila-sdp"]
    # K-means and the SDP cut the tall cluster; a covariance per cluster does not
    assert summary["kmeans"]["mean_error"] > 0.1
    assert summary["sdp"]["mean_error"] > 0.1
    assert summary["ila-sdp"]["mean_error"] <= 0.05
    for row in result.summary:
        errors = [r["error"] for r in result.replicates if r["method"] == row["method"]]
        assert row["mean_error"] == pytest.approx(np.mean(errors))
        assert row["sd_error"] == pytest.approx(np.std(errors, ddof=1))
        assert row["min_error"] <= row["median_error"] <= row["max_error"]
    assert "ila-sdp" in result.format_table()


def test_heterogeneous_rejects_bad_input():
    with pytest.raises(ValueError, match="Unknown setting"):
        heterogeneous(["k5"], n_replicates=1)
    with pytest.raises(ValueError, match="n_replicates must be an integer >= 1"):
        heterogeneous(["k2"], n_replicates=0)
    with pytest.raises(ValueError, match="methods is empty"):
        heterogeneous(["k2"], n_replicates=1, methods=[])


def _read_csv(path):
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_save_writes_csv_json_png(tiny_phase_transition, tiny_heterogeneous, tmp_path):
    paths = tiny_phase_transition.save(tmp_path / "phase")
    assert {path.name for path in paths.values()} == {
        "phase_transition.csv",
        "phase_transition_trials.csv",
        "phase_transition.json",
        "phase_transition.png",
    }
    rows = _read_csv(paths["csv"])
    assert len(rows) == len(tiny_phase_transition.summary) == 4
    assert {float(row["recovery_probability"]) for row in rows} <= {0.0, 1 / 3, 2 / 3, 1.0}
    payload = json.loads(paths["json"].read_text())
    assert payload["parameters"]["configs"] == [[60, 5, 3]]
    assert len(payload["trials"]) == 12
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    paths = tiny_heterogeneous.save(tmp_path / "hetero", plot=False)
    assert "png" not in paths
    assert not (tmp_path / "hetero" / "heterogeneous.png").exists()
    assert len(_read_csv(paths["replicates_csv"])) == 2 * 4
    paths = tiny_heterogeneous.save(tmp_path / "hetero")
    assert paths["png"].stat().st_size > 1000


def test_save_without_matplotlib_keeps_the_numbers(tiny_heterogeneous, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # import fails
    with pytest.raises(ImportError, match=r"clusterlab\[plot\]"):
        tiny_heterogeneous.save(tmp_path)
    assert (tmp_path / "heterogeneous.csv").exists()
    assert (tmp_path / "heterogeneous.json").exists()


def test_json_writes_nan_as_null(tmp_path):
    result = phase_transition(
        [(40, 3, 2)], grid=[0.1], n_trials=1, methods=["kmeans"], random_state=0
    )
    assert result.transitions[0]["note"] == "not reached"
    paths = result.save(tmp_path, plot=False)
    assert json.loads(paths["json"].read_text())["transitions"][0]["crossing"] is None


# --- command line ---------------------------------------------------------------------


def test_cli_phase_transition(tmp_path, capsys):
    out = tmp_path / "results"
    argv = [
        "recovery",
        "phase-transition",
        "--n",
        "60",
        "--p",
        "5",
        "--clusters",
        "3",
        "--grid",
        "0.2",
        "3",
        "--trials",
        "2",
        "--methods",
        "sdp",
        "kmeans",
        "--out",
        str(out),
        "--seed",
        "1",
    ]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "sep/Θ²" in captured.out
    assert "[phase transition] n=60 p=5 K=3 sep/Θ²=3.00" in captured.err
    for name in (
        "phase_transition.csv",
        "phase_transition_trials.csv",
        "phase_transition.json",
        "phase_transition.png",
    ):
        assert (out / name).stat().st_size > 0
    payload = json.loads((out / "phase_transition.json").read_text())
    probability = {
        (row["method"], row["separation"]): row["recovery_probability"]
        for row in payload["summary"]
    }
    assert set(probability) == {(m, s) for m in ("sdp", "kmeans") for s in (0.2, 3.0)}
    assert all(0.0 <= value <= 1.0 for value in probability.values())
    assert probability["sdp", 0.2] == 0.0
    assert probability["sdp", 3.0] == 1.0
    assert payload["parameters"]["random_state"] == 1


def test_cli_heterogeneous(tmp_path, capsys):
    argv = [
        "recovery",
        "heterogeneous",
        "--settings",
        "k3",
        "--replicates",
        "2",
        "--methods",
        "kmeans",
        "em",
        "--out",
        str(tmp_path),
        "--quiet",
        "--no-plot",
    ]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "error mean ± sd" in captured.out
    assert captured.err == ""
    rows = _read_csv(tmp_path / "heterogeneous.csv")
    assert [row["method"] for row in rows] == ["kmeans", "em"]
    assert all(0.0 <= float(row["mean_error"]) < 0.2 for row in rows)
    assert (tmp_path / "heterogeneous.json").exists()
    assert not (tmp_path / "heterogeneous.png").exists()


def test_cli_grid_ranges_and_errors(tmp_path, capsys):
    argv = [
        "recovery",
        "phase-transition",
        "--n",
        "30",
        "--p",
        "2",
        "--clusters",
        "2",
        "--grid",
        "0.5:1.5:0.5",
        "4",
        "--trials",
        "1",
        "--methods",
        "kmeans",
        "--out",
        str(tmp_path),
        "--quiet",
        "--no-plot",
    ]
    assert main(argv) == 0
    payload = json.loads((tmp_path / "phase_transition.json").read_text())
    assert payload["parameters"]["grid"] == [0.5, 1.0, 1.5, 4.0]
    capsys.readouterr()
    assert main([*argv[:7], "5", *argv[8:]]) == 2  # K = 5 > p + 1
    assert "need p >= 4" in capsys.readouterr().err
    with pytest.raises(SystemExit) as stop:
        main(["recovery", "phase-transition", "--grid", "1:0:0.5"])
    assert stop.value.code == 2
    with pytest.raises(SystemExit) as stop:
        main(["recovery"])
    assert stop.value.code == 2


@pytest.mark.parametrize(
    "argv",
    [
        ["recovery", "--help"],
        ["recovery", "phase-transition", "--help"],
        ["recovery", "heterogeneous", "--help"],
    ],
)
def test_cli_recovery_help(argv, capsys):
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 0
    assert "usage: clusterlab recovery" in capsys.readouterr().out
