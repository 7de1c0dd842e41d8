"""The benchmark scripts still run end to end (tiny sizes); no timing is asserted."""

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow  # each runs a whole benchmark script: CI's slow tier


def run_quick(script, out):
    completed = subprocess.run(
        [sys.executable, script, "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
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
        [
            sys.executable,
            "benchmarks/gpu.py",
            "--quick",
            "--device",
            "cpu",
            "--out",
            str(tmp_path / "gpu.json"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    rows = json.loads((tmp_path / "gpu.json").read_text())["rows"]
    torch_rows = [row for row in rows if row["backend"] == "torch-cpu"]
    assert {row["case"].split()[0] for row in torch_rows} == {
        "swav",
        "converged",
        "kmeans",
        "fewshot",
        "gmm",
    }
    assert not any("failed" in row["note"] for row in rows)
    assert all(row["max_diff"] <= 1e-4 for row in torch_rows if row["max_diff"] is not None)
    assert all(
        "equal to NumPy's: 1.0000" in row["note"]
        for row in torch_rows
        if row["case"].startswith(("kmeans", "fewshot"))
    )


def test_ood_benchmark_quick_run(tmp_path):
    rows = run_quick("benchmarks/ood.py", tmp_path / "ood.json")
    methods = {row["method"] for row in rows}
    assert {
        "MaxQuery P=1, raw max",
        "MaxQuery P=10, raw max",
        "Mahalanobis (L2 features)",
        "5-NN distance",
    } <= methods
    assert all(0.0 <= row[key] <= 1.0 for row in rows for key in ("auroc", "aupr", "fpr95"))
    by_method = {row["method"]: row for row in rows}
    # more prototypes per class describe the inliers better (digits, seed 0)
    assert (
        by_method["MaxQuery P=10, raw max"]["auroc"] > by_method["MaxQuery P=1, raw max"]["auroc"]
    )


def test_community_benchmark_quick_run(tmp_path):
    pytest.importorskip("networkx")
    rows = run_quick("benchmarks/community.py", tmp_path / "community.json")
    table = [row for row in rows if row["method"] != "beta sweep"]
    assert {row["graph"] for row in table} == {"sbm", "karate", "digits", "lesmis"}

    def row(graph, method):
        (found,) = [r for r in table if r["graph"] == graph and r["method"] == method]
        return found

    ours = row("sbm", "GroupSparseCommunity")
    assert 3 <= ours["k_min"] <= ours["k_max"] <= 5
    assert ours["nmi"] >= 0.9
    karate = row("karate", "GroupSparseCommunity")
    assert 2 <= karate["k_min"] <= karate["k_max"] <= 4
    one = row("karate", "one community")  # EDGE rewards under-segmentation
    assert one["nmi"] == 0.0
    assert one["edge"] > karate["edge"] - 0.1
    assert row("lesmis", "Louvain (networkx)")["nmi"] is None
    sweeps = [r for r in rows if r["method"] == "beta sweep"]
    assert sweeps
    assert all(r["non_increasing"] for r in sweeps)


def test_depict_benchmark_quick_run(tmp_path):
    rows = run_quick("benchmarks/depict.py", tmp_path / "depict.json")
    methods = {row["method"] for row in rows}
    assert methods == {
        "KMeans(n_init=10)",
        "DEPICT exact",
        "DEPICT sqrt",
        "DEPICT dec",
        "DEPICT none",
    }
    assert all(0.0 <= row["accuracy"] <= 1.0 and 0.0 <= row["nmi"] <= 1.0 for row in rows)
    exact = [row for row in rows if row["method"] == "DEPICT exact"]
    assert exact
    assert all(row["monotone"] for row in exact)  # J never increases with exact targets


def test_spherical_kmeans_benchmark_quick_run(tmp_path):
    pytest.importorskip("faiss")
    rows = run_quick("benchmarks/spherical_kmeans.py", tmp_path / "spherical_kmeans.json")
    speed = [row for row in rows if row["case"].startswith(("speed", "real-speed"))]
    ours = [row for row in speed if row["method"] == "clusterlab SphericalKMeans"]
    faiss = [row for row in speed if row["method"] == "faiss Kmeans train"]
    assert len(ours) == len(faiss) == 2
    for a, b in zip(ours, faiss, strict=True):  # same iterations from the same centres
        assert abs(a["mean_cos"] - b["mean_cos"]) <= 0.005
    quality = [row for row in rows if row["case"].startswith("quality")]
    assert {row["method"] for row in quality} >= {
        "clusterlab SphericalKMeans",
        "sklearn KMeans (L2 rows)",
    }
    assert all(0.0 <= row["nmi"] <= 1.0 for row in quality)
    scale = [row for row in rows if row["case"].startswith("scale")]
    assert scale
    # memory beyond the data stays far below the n x K matrix the assignment never forms
    assert all(row["peak_MB"] < row["chunk_MB"] + 8 for row in scale)


def test_crossmodal_benchmark_quick_run(tmp_path):
    rows = run_quick("benchmarks/crossmodal.py", tmp_path / "crossmodal.json")
    for case in {row["case"] for row in rows}:
        ours = [
            r
            for r in rows
            if r["case"] == case and r["method"].startswith("CrossModalPrototypeClustering")
        ]
        kmeans = [r for r in rows if r["case"] == case and r["method"].startswith("scikit")]
        assert len(ours) == 2
        assert {r["views"] for r in kmeans} >= {"concatenated"}
        assert len(kmeans) == 3
        n = ours[0]["n"]
        assert all(r["max_dev_pct"] <= 100 * 10 / n * 1.001 for r in ours)  # sizes within one
        assert all(0.0 <= r["agreement"] <= 1.0 for r in ours)
        assert all(-1.0 <= r["ari"] <= 1.0 and 0.0 <= r["nmi"] <= 1.0 for r in rows)


def test_pamc_benchmark_quick_run(tmp_path):
    rows = run_quick("benchmarks/pamc.py", tmp_path / "pamc.json")
    scaling = [r for r in rows if r["case"] == "scaling"]
    assert {r["n"] for r in scaling} == {1000, 4000}
    for n in (1000, 4000):
        at_n = {r["method"]: r for r in scaling if r["n"] == n}
        dense = at_n["ncontrast_loss NumPy dense order 1"]
        assert dense["pairs"] == n * n
        ours = at_n["pamc_loss NumPy order 1"]
        assert ours["pairs"] < 10 * n  # one cosine per graph edge, plus K²
        # the torch path computes the same loss as the NumPy one
        torch_row = at_n.get("pamc_loss torch-cpu 1 thread fwd+bwd o1")
        if torch_row is not None:
            assert abs(torch_row["loss"] - ours["loss"]) <= 1e-9
    digits = [r for r in rows if r["case"] == "digits"]
    assert len(digits) == 8  # three labelings and the dense loss, at two temperatures
    assert all(r["loss"] is not None for r in rows)  # non-finite values are written as null


def test_fewshot_embeddings_benchmark_quick_run(tmp_path):
    rows = run_quick("benchmarks/fewshot_embeddings.py", tmp_path / "fewshot_embeddings.json")
    cells = {(r["set"], r["n_shot"]) for r in rows}
    assert ("digits", 1) in cells
    assert ("digits", 5) in cells
    for cell in cells:
        methods = {r["method"]: r for r in rows if (r["set"], r["n_shot"]) == cell}
        assert set(methods) == {"SimpleShot", "default (λ=0.7)", "calibrated"}
        assert methods["SimpleShot"]["diff_vs_simpleshot"] == 0.0
        assert all(0.0 <= r["accuracy"] <= 1.0 for r in methods.values())
        calibrated = methods["calibrated"]
        scores = calibrated["cal_scores"]
        assert "SimpleShot" in scores
        assert "0" in scores  # the lam=0 candidate
        # the setting kept is the best on the calibration episodes
        kept = "SimpleShot" if calibrated["chosen"] == "SimpleShot" else f"{calibrated['lam']:g}"
        assert scores[kept] == max(scores.values())


def test_distributed_benchmark_quick_run(tmp_path):
    pytest.importorskip("distributed")
    pytest.importorskip("dask_ml")
    rows = run_quick("benchmarks/distributed.py", tmp_path / "distributed.json")
    swav = {r["method"]: r for r in rows if r["case"] == "swav" and r["n"] == 8000}
    assert swav["clusterlab Dask"]["max_diff"] <= 1e-5  # the codes equal the in-memory ones
    assert swav["clusterlab Dask"]["label_agree"] > 0.999
    lloyd = {r["method"]: r for r in rows if r["case"] == "lloyd"}
    ours = lloyd["clusterlab SphericalKMeans (Dask)"]
    in_memory = lloyd["clusterlab SphericalKMeans (in memory)"]
    assert abs(ours["mean_cos"] - in_memory["mean_cos"]) <= 0.002
    assert in_memory["label_agree"] == 1.0
    assert ours["n_iter"] == lloyd["dask-ml KMeans"]["n_iter"] == 5
    assert {r["workers"] for r in rows if r["case"] == "workers"} == {1}


def test_gcd_embeddings_benchmark_quick_run(tmp_path):
    rows = run_quick("benchmarks/gcd_embeddings.py", tmp_path / "gcd_embeddings.json")
    methods = {row["method"] for row in rows}
    assert methods == {
        "SemiSupervisedGMM, default",
        "SemiSupervisedGMM, previous default",
        "SemiSupervisedKMeans, true K",
    }
    assert len({row["set"] for row in rows}) == 1  # --quick: the smallest set, one seed
    assert all(0.0 <= row["all"] <= 1.0 and row["k_per_seed"] for row in rows)


@pytest.mark.slow
def test_sdp_ila_warm_benchmark_quick_run(tmp_path):
    completed = subprocess.run(
        [
            sys.executable,
            "benchmarks/sdp.py",
            "--ila-warm",
            "--quick",
            "--out",
            str(tmp_path / "ila.json"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    rows = json.loads((tmp_path / "ila.json").read_text())["rows"]
    for case in {row["case"] for row in rows}:
        variants = {row["method"]: row for row in rows if row["case"] == case}
        default = variants["warm, ftol=1e-10 (default)"]
        for other in variants.values():  # same partition, F within 1e-3 relative
            assert other["same_labels"]
            assert abs(other["objective"] - default["objective"]) <= 1e-3 * abs(
                default["objective"]
            )
