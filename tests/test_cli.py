import json

import pytest

from clusterlab.cli import main
from clusterlab.demo import (
    CASES,
    FEWSHOT_CASES,
    GCD_CASES,
    HEAD_CASES,
    format_report,
    run_demo,
)


@pytest.mark.slow
def test_demo_json_reports_every_case(capsys):
    assert main(["demo", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [block["case"] for block in report] == [
        case.title for case in [*CASES, *FEWSHOT_CASES, *GCD_CASES, *HEAD_CASES]
    ]
    clustering = {block["case"]: block for block in report if block["kind"] == "clustering"}
    for block in clustering.values():
        names = [row["estimator"] for row in block["rows"]]
        assert names[1] == ("GaussianMixture" if names[0] == "ILASDP" else "KMeans")
        assert 0.5 < block["rows"][0]["accuracy"] <= 1.0
        if names[0] == "SinkhornKMeans":
            balanced = block["rows"][0]
            # balanced clusters: largest and smallest differ by at most one sample
            assert balanced["largest_cluster"] - balanced["smallest_cluster"] <= 1
    laplacian = clustering["Laplacian k-means (10-NN graph, bound optimizer)"]["rows"]
    assert laplacian[0]["nmi"] > laplacian[1]["nmi"]
    sdp = next(b["rows"] for b in clustering.values() if b["rows"][0]["estimator"] == "SDPKMeans")
    ila = next(b["rows"] for b in clustering.values() if b["rows"][0]["estimator"] == "ILASDP")
    assert sdp[0]["accuracy"] >= sdp[1]["accuracy"]  # wine: 0.978 against 0.966
    assert ila[0]["accuracy"] >= ila[1]["accuracy"]
    (fewshot,) = [block for block in report if block["kind"] == "fewshot"]
    accuracy = {(r["method"], r["n_shot"]): r["accuracy"] for r in fewshot["rows"]}
    for n_shot in (1, 5):
        assert accuracy["Laplacian k-means", n_shot] > accuracy["SimpleShot", n_shot]
    (gcd,) = [block for block in report if block["kind"] == "gcd"]
    gmm, _, given_k = gcd["rows"]
    assert abs(gmm["k"] - gcd["true_k"]) <= 1
    assert gmm["all"] >= given_k["all"]


def test_text_report_has_a_row_per_estimator():
    text = format_report(run_demo(cases=CASES[:1], fewshot_cases=[], gcd_cases=[], head_cases=[]))
    estimators = [line.split()[0] for line in text.splitlines()[2:] if line.strip()]
    assert estimators == ["SinkhornKMeans", "KMeans"]
    assert "largest" in text.splitlines()[1]


@pytest.mark.parametrize("argv", [["--help"], ["demo", "--help"]])
def test_help(argv, capsys):
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 0
    assert "usage: clusterlab" in capsys.readouterr().out


def test_no_command_prints_help(capsys):
    assert main([]) == 2
    assert "demo" in capsys.readouterr().out


def test_head_cases_report_their_own_scores():
    from clusterlab.demo import HeadCase

    case = HeadCase(
        "a head",
        "digits",
        lambda seed: [
            {"method": "ours", "auroc": 0.9 + seed, "seconds": 0.5},
            {"method": "peer", "auroc": 0.8, "seconds": 0.25},
        ],
    )
    report = run_demo(seed=0, cases=[], fewshot_cases=[], gcd_cases=[], head_cases=[case])
    assert report == [{"case": "a head", "kind": "head", "dataset": "digits", "rows": case.run(0)}]
    text = format_report(report)
    assert "auroc" in text
    assert "0.900" in text
    assert "0.800" in text


@pytest.mark.parametrize(
    "argv", [["demo", "--seed", "-1"], ["recovery", "heterogeneous", "--seed", "2.5"]]
)
def test_bad_seed_is_one_line_and_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert "--seed" in error
    assert "Traceback" not in capsys.readouterr().err


def test_recovery_checks_out_before_running(tmp_path, capsys):
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")
    # a run this size would take seconds; the check answers before any fit
    code = main(
        ["recovery", "heterogeneous", "--replicates", "50", "--quiet", "--out", str(not_a_folder)]
    )
    captured = capsys.readouterr()
    assert code == 2
    assert captured.out == ""
    assert "exists and is not a folder" in captured.err


def test_recovery_keeps_measured_rows_when_interrupted(tmp_path, monkeypatch, capsys):
    import importlib

    module = importlib.import_module("clusterlab.experiments.heterogeneous")
    calls = []
    real = module.run_method

    def interrupted_after_three(*args):
        if len(calls) == 3:
            raise KeyboardInterrupt
        calls.append(args[0])
        return real(*args)

    monkeypatch.setattr(module, "run_method", interrupted_after_three)
    with pytest.raises(KeyboardInterrupt):
        main(
            [
                "recovery",
                "heterogeneous",
                "--settings",
                "k2",
                "--replicates",
                "5",
                "--methods",
                "kmeans",
                "em",
                "--quiet",
                "--no-plot",
                "--out",
                str(tmp_path),
            ]
        )
    rows = [
        json.loads(line)
        for line in (tmp_path / "heterogeneous_partial.jsonl").read_text().splitlines()
    ]
    assert [row["method"] for row in rows] == ["kmeans", "em", "kmeans"]
    assert [row["replicate"] for row in rows] == [0, 0, 1]
    assert all(0.0 <= row["error"] <= 1.0 for row in rows)


def test_recovery_run_to_the_end_leaves_no_partial_file(tmp_path, capsys):
    assert (
        main(
            [
                "recovery",
                "heterogeneous",
                "--settings",
                "k2",
                "--replicates",
                "2",
                "--methods",
                "kmeans",
                "--quiet",
                "--no-plot",
                "--out",
                str(tmp_path),
            ]
        )
        == 0
    )
    written = sorted(path.name for path in tmp_path.iterdir())
    assert written
    assert not any("partial" in name for name in written)
