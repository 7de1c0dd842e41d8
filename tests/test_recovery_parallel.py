"""``clusterlab recovery --n-jobs`` / ``--scheduler``: the same files as a serial run.

Every seed is drawn before the first fit and every result is filed under its task's
index, so a run in worker processes, or on a Dask cluster, writes the same CSV bytes as
a serial one (the times, which differ from run to run, are only in the JSON file).
"""

import json

import pytest

from clusterlab import cli
from clusterlab.cli import main
from clusterlab.experiments import heterogeneous, phase_transition

# the smallest run that still has a few replicates per worker
ARGV = [
    "recovery",
    "heterogeneous",
    "--settings",
    "k2",
    "--replicates",
    "3",
    "--methods",
    "kmeans",
    "em",
    "--seed",
    "5",
    "--no-plot",
]
FILES = ("heterogeneous.csv", "heterogeneous_replicates.csv")


def run(tmp_path, name, *extra):
    out = tmp_path / name
    assert main([*ARGV, "--out", str(out), *extra]) == 0
    assert not (out / "heterogeneous_partial.jsonl").exists()
    return out


@pytest.fixture(scope="module")
def serial(tmp_path_factory):
    return run(tmp_path_factory.mktemp("serial"), "serial", "--quiet")


def assert_same_files(out, serial):
    for name in FILES:
        assert (out / name).read_bytes() == (serial / name).read_bytes(), name
    ours = json.loads((out / "heterogeneous.json").read_text())
    theirs = json.loads((serial / "heterogeneous.json").read_text())
    for payload in (ours, theirs):  # wall-clock times aside, the JSON is the same too
        for row in payload["summary"] + payload["replicates"]:
            row.pop("seconds", None)
            row.pop("mean_seconds", None)
        payload.pop("seconds")
    assert ours == theirs


def test_serial_files_hold_no_times_and_every_fit(serial):
    header, *rows = (serial / "heterogeneous_replicates.csv").read_text().splitlines()
    assert "seconds" not in header
    assert "error" in header
    assert len(rows) == 3 * 2
    assert [row.split(",")[1:3] for row in rows] == [
        [str(replicate), method] for replicate in range(3) for method in ("kmeans", "em")
    ]
    payload = json.loads((serial / "heterogeneous.json").read_text())
    assert all(row["seconds"] > 0 for row in payload["replicates"])  # times kept there


@pytest.mark.slow  # starts two worker processes that import clusterlab: ~15 s here
def test_n_jobs_2_writes_the_serial_files_byte_for_byte(tmp_path, serial, capsys):
    out = run(tmp_path, "parallel", "--n-jobs", "2")
    assert_same_files(out, serial)
    progress = capsys.readouterr().err.splitlines()
    assert sorted(line.split(":")[0] for line in progress if "replicate" in line) == [
        f"[heterogeneous k2] replicate {i}/3" for i in (1, 2, 3)
    ]


@pytest.mark.slow  # the cluster's workers import clusterlab: ~15 s here
def test_scheduler_runs_on_the_dask_cluster_with_the_same_files(
    tmp_path, serial, dask_client, capsys
):
    address = dask_client.scheduler.address
    out = run(tmp_path, "dask", "--scheduler", address)
    assert_same_files(out, serial)
    assert f"Dask cluster at {address} (2 worker(s))" in capsys.readouterr().err


def test_partial_rows_arrive_as_fits_finish_in_any_order(tmp_path):
    # through joblib's threading backend: parallel, in this process, quick to start
    from joblib import parallel_config

    seen = []
    with parallel_config(backend="threading"):
        result = heterogeneous(
            ["k2"],
            n_replicates=2,
            methods=["kmeans", "em"],
            random_state=1,
            on_result=seen.append,
            n_jobs=2,
        )
    expected = heterogeneous(["k2"], n_replicates=2, methods=["kmeans", "em"], random_state=1)

    def key(row):
        return row["replicate"], row["method"]

    assert sorted(map(key, seen)) == sorted(map(key, result.replicates))
    for ours, theirs in zip(result.replicates, expected.replicates, strict=True):
        assert {k: v for k, v in ours.items() if k != "seconds"} == {
            k: v for k, v in theirs.items() if k != "seconds"
        }


def test_phase_transition_in_parallel_equals_serial():
    from joblib import parallel_config

    kwargs = dict(grid=[0.5, 3.0], n_trials=2, methods=["kmeans", "em-spherical"], random_state=3)
    serial = phase_transition([(30, 3, 2)], **kwargs)
    with parallel_config(backend="threading"):
        parallel = phase_transition([(30, 3, 2)], n_jobs=2, **kwargs)

    def timeless(rows):
        return [{k: v for k, v in row.items() if "seconds" not in k} for row in rows]

    assert timeless(parallel.summary) == timeless(serial.summary)
    assert timeless(parallel.trials) == timeless(serial.trials)
    assert parallel.transitions == serial.transitions


@pytest.mark.parametrize("value", ["0", "-2", "two", "1.5"])
def test_n_jobs_must_be_positive_or_minus_one(value, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([*ARGV, "--out", str(tmp_path), "--n-jobs", value])
    assert exit_info.value.code == 2
    assert "--n-jobs" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_library_n_jobs_is_checked():
    for bad in (0, -3, 1.5, True, "2"):
        with pytest.raises(ValueError, match="n_jobs must be None, a positive integer or -1"):
            heterogeneous(["k2"], n_replicates=1, methods=["kmeans"], n_jobs=bad)


def test_n_jobs_and_scheduler_exclude_each_other(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main([*ARGV, "--out", str(tmp_path), "--n-jobs", "2", "--scheduler", "tcp://x:1"])
    assert "not allowed with argument" in capsys.readouterr().err


def test_unreachable_scheduler_is_a_clear_error(tmp_path, capsys, monkeypatch):
    pytest.importorskip("distributed")
    monkeypatch.setattr(cli, "SCHEDULER_TIMEOUT", 1)
    # the discard port: nothing listens there
    assert main([*ARGV, "--out", str(tmp_path), "--scheduler", "tcp://127.0.0.1:9"]) == 2
    err = capsys.readouterr().err
    assert "--scheduler tcp://127.0.0.1:9: no Dask scheduler answered within 1 s" in err
    assert not list(tmp_path.iterdir())  # no partial file, no table


def test_scheduler_without_distributed_says_what_to_install(tmp_path, capsys, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "distributed", None)  # import fails
    assert main([*ARGV, "--out", str(tmp_path), "--scheduler", "tcp://127.0.0.1:8786"]) == 2
    assert 'needs the distributed package (pip install "clusterlab[dask]")' in (
        capsys.readouterr().err
    )
