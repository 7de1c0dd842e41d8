import json

import pytest

from clusterlab.cli import main
from clusterlab.demo import CASES, format_report, run_demo


def test_demo_json_reports_every_case(capsys):
    assert main(["demo", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [block["case"] for block in report] == [case.title for case in CASES]
    for block in report:
        names = [row["estimator"] for row in block["rows"]]
        assert names == ["SinkhornKMeans", "KMeans"]
        balanced = block["rows"][0]
        # balanced clusters: largest and smallest differ by at most one sample
        assert balanced["largest_cluster"] - balanced["smallest_cluster"] <= 1
        assert 0.5 < balanced["accuracy"] <= 1.0


def test_text_report_has_a_row_per_estimator():
    text = format_report(run_demo(cases=CASES[:1]))
    assert "SinkhornKMeans" in text
    assert "KMeans" in text
    assert "largest" in text


@pytest.mark.parametrize("argv", [["--help"], ["demo", "--help"]])
def test_help(argv, capsys):
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 0
    assert "usage: clusterlab" in capsys.readouterr().out


def test_no_command_prints_help(capsys):
    assert main([]) == 2
    assert "demo" in capsys.readouterr().out
