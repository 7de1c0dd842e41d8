"""The benchmark scripts still run end to end (tiny sizes); no timing is asserted."""

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow  # each runs a whole benchmark script: CI's slow tier


def run_quick(script, out):
    completed = subprocess.run(
        [sys.executable, script, "--quick", "--out", str(out)],
        capture_output=True, text=True, timeout=600, check=False,
    )
    assert completed.returncode == 0, completed.stderr
    return json.loads(out.read_text())["rows"]


def test_sinkhorn_benchmark_quick_run(tmp_path):
    pytest.importorskip("ot")
    rows = run_quick("benchmarks/sinkhorn.py", tmp_path / "sinkhorn.json")
    cases = {row["case"] for row in rows}
    assert len(cases) == 3  # --quick: swav and converged at one size, and the small-eps case
    ours = [row for row in rows if row["method"].startswith("clusterlab")]
    assert ours
    assert all(row["finite"] for row in ours)
    # measured on the returned float32 plan: storage rounding adds ~1e-7 to the solver's 1e-6
    assert all(row["marginal_error"] <= 2e-6 for row in ours if "converged" in row["case"])


def test_bound_benchmark_quick_run(tmp_path):
    rows = run_quick("benchmarks/bound.py", tmp_path / "bound.json")
    fewshot = [row for row in rows if row["case"].startswith("fewshot")]
    kmeans = [row for row in rows if row["case"].startswith("laplacian k-means")]
    assert any(row["method"].startswith("NumPy reference") for row in fewshot)
    assert any(row["method"].startswith("NumPy reference") for row in kmeans)
    ours_fewshot = [row for row in fewshot if row["method"].startswith("clusterlab")]
    ours_kmeans = [row for row in kmeans if row["method"].startswith("clusterlab")]
    assert ours_fewshot
    assert any(row["threads"] == 1 for row in ours_kmeans)  # the one-thread run
    # Same mathematics as the NumPy reference: the predictions agree (identical when
    # measured; the bound allows a rare floating-point near-tie to go the other way).
    assert all(row["differing"] <= 2 for row in ours_fewshot)  # tasks, of 200
    assert all(row["differing"] <= 5 for row in ours_kmeans)  # points, of 5,000


def test_mixture_benchmark_quick_run(tmp_path):
    rows = run_quick("benchmarks/mixture.py", tmp_path / "mixture.json")
    sweeps = [row for row in rows if row["case"].startswith("sweep")]
    moves = [row for row in rows if row["case"].startswith("moves")]
    assert {row["case"] for row in sweeps} == {"sweep full", "sweep diag"}
    for case in ("sweep full", "sweep diag"):
        ours = [r for r in sweeps if r["case"] == case and r["method"].startswith("clusterlab")]
        theirs = [r for r in sweeps if r["case"] == case and r["method"].startswith("scikit")]
        assert len(ours) == len(theirs) == 1
        assert ours[0]["monotone"]  # MAP-EM sweeps never lower the objective
        assert theirs[0]["n_iter"] == [2, 12]  # tol=0: the fits ran every iteration
        assert all(0.0 <= r["zero_resp"] <= 1.0 for r in (ours[0], theirs[0]))
    methods = {row["method"] for row in moves}
    assert any("split_step" in m for m in methods)
    assert any("merge_step" in m for m in methods)
    assert {row["case"] for row in moves} == {"moves full", "moves diag"}


def test_sdp_benchmark_quick_run(tmp_path):
    rows = run_quick("benchmarks/sdp.py", tmp_path / "sdp.json")
    peng_wei = [row for row in rows if row["case"].startswith("peng-wei")]
    assert {row["method"] for row in peng_wei} == {"cvxpy + SCS", "clusterlab lowrank"}
    ours = [row for row in peng_wei if row["method"] == "clusterlab lowrank"]
    assert all(row["same_labels"] for row in ours)  # separated data: one partition
    assert all(abs(row["gap"]) <= 1e-3 for row in ours)
    lowrank = [row for row in rows if row["case"].startswith("lowrank")]
    assert lowrank
    assert all(row["error"] == 0.0 for row in lowrank)  # above the threshold: exact recovery
    assert any(row["method"] == "clusterlab ILASDP" for row in rows)


def test_gpu_benchmark_quick_run_on_the_cpu(tmp_path):
    pytest.importorskip("torch")
    completed = subprocess.run(
        [sys.executable, "benchmarks/gpu.py", "--quick", "--device", "cpu",
         "--out", str(tmp_path / "gpu.json")],
        capture_output=True, text=True, timeout=600, check=False,
    )
    assert completed.returncode == 0, completed.stderr
    rows = json.loads((tmp_path / "gpu.json").read_text())["rows"]
    torch_rows = [row for row in rows if row["backend"] == "torch-cpu"]
    assert {row["case"].split()[0] for row in torch_rows} == {
        "swav", "converged", "kmeans", "fewshot", "gmm"}
    assert not any("failed" in row["note"] for row in rows)
    assert all(row["max_diff"] <= 1e-4 for row in torch_rows if row["max_diff"] is not None)
    assert all("equal to NumPy's: 1.0000" in row["note"]
               for row in torch_rows if row["case"].startswith(("kmeans", "fewshot")))
