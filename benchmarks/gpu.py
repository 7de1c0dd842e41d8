"""Every head on PyTorch and CuPy (on a GPU where present) against the NumPy/Numba CPU path.

Run from the repository root::

    python benchmarks/gpu.py                 # full sizes (under 5 minutes on one GPU)
    python benchmarks/gpu.py --quick         # tiny sizes, every code path, seconds
    python benchmarks/gpu.py --device cpu    # PyTorch on the CPU (no GPU needed)

All contenders run in this one process on the same data, each warmed up by one untimed
call; GPU timings synchronise the device before the clock stops. Cases:

``swav``
    SwAV codes, 3 iterations at eps = 0.05, on float32 cosine scores (n x 3000):
    ``clusterlab.sinkhorn_codes`` on NumPy, PyTorch and CuPy, and SwAV's own
    linear-domain Sinkhorn reimplemented in PyTorch (:func:`benchmarks.peers.swav_sinkhorn_torch`).
    ``max_diff`` is the largest code difference from the NumPy path; ``floor_ratio`` the
    time over the memory-bandwidth floor of seven passes over the score matrix, at the
    bandwidth of a device copy measured in the same run; ``host_syncs`` the
    synchronisations PyTorch reports (``torch.cuda.set_sync_debug_mode``) for the solver
    call and for the public, validating call; ``peak_mb`` the peak device memory.
``converged``
    ``clusterlab.sinkhorn`` to a relative marginal error of 1e-6 (16384 x 1000).
``kmeans``
    ``SinkhornKMeans(spherical=True).fit`` on 20,000 x 128 clustered embeddings, K = 50.
``fewshot``
    ``TransductiveFewShot.predict_tasks`` on 10,000 five-way five-shot tasks
    (15 queries per class) drawn from scikit-learn's digits; ``accuracy`` beside the time.
``gmm``
    ``SemiSupervisedGMM.predict_proba`` of 200,000 x 64 samples, 20 full components.

float32 everywhere, and float64 for the SwAV case at the smaller size. The table is
printed and written as JSON (rows and metadata) to ``--out``.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from clusterlab.solvers import sinkhorn as solver
from clusterlab.solvers._backend import to_numpy

from benchmarks._report import base_metadata, format_table, write_json
from benchmarks.peers import swav_sinkhorn_torch
from clusterlab import (
    SemiSupervisedGMM,
    SinkhornKMeans,
    TransductiveFewShot,
    sinkhorn,
    sinkhorn_codes,
)
from clusterlab.datasets import fewshot_tasks, load_dataset

DEFAULT_OUT = Path("benchmarks/results/gpu.json")

FULL = {
    "swav": (4096, 65536),
    "K": 3000,
    "converged": (16384, 1000),
    "kmeans": (20000, 128, 50),
    "tasks": 10_000,
    "gmm": (200_000, 64, 20),
}
QUICK = {
    "swav": (256,),
    "K": 100,
    "converged": (256, 50),
    "kmeans": (500, 16, 5),
    "tasks": 50,
    "gmm": (2000, 8, 3),
}

COLUMNS = [
    ("case", 30, "{}"),
    ("backend", 16, "{}"),
    ("dtype", 8, "{}"),
    ("seconds", 9, "{:.4f}"),
    ("speedup", 8, lambda r: "" if r["speedup"] is None else f"{r['speedup']:.1f}x"),
    ("max_diff", 9, lambda r: "" if r["max_diff"] is None else f"{r['max_diff']:.1e}"),
    ("floor_ratio", 11, lambda r: "" if r["floor_ratio"] is None else f"{r['floor_ratio']:.2f}"),
    ("host_syncs", 10, lambda r: "" if r["host_syncs"] is None else str(r["host_syncs"])),
    ("peak_mb", 8, lambda r: "" if r["peak_mb"] is None else f"{r['peak_mb']:.0f}"),
    ("note", 0, "{}"),
]


class Library:
    """One array library on one device: moving data there, synchronising, memory."""

    def __init__(self, name, module=None, device=None):
        self.name, self.module, self.device = name, module, device

    def asarray(self, x):
        if self.name == "numpy":
            return x
        if self.name.startswith("torch"):
            return self.module.as_tensor(x, device=self.device)
        return self.module.asarray(x)

    def sync(self):
        if self.name.startswith("torch") and self.device == "cuda":
            self.module.cuda.synchronize()
        elif self.name == "cupy":
            self.module.cuda.Device().synchronize()

    def reset_peak(self):
        self.sync()
        if self.name == "torch-cuda":
            self.module.cuda.reset_peak_memory_stats()
            return self.module.cuda.memory_allocated()
        return None

    def peak_mb(self, base):
        if self.name == "torch-cuda":
            return (self.module.cuda.max_memory_allocated() - base) / 2**20
        return None

    def copy_bandwidth(self, n_bytes):
        """Bytes per second of a device copy (read + write) of ``n_bytes``."""
        x = self.asarray(np.ones(n_bytes // 4, dtype=np.float32))
        seconds = self.timed(lambda: x * 1.0)
        return 2 * n_bytes / seconds

    def timed(self, fn, repeat=3):
        fn()  # warm-up: JIT, cuBLAS handles, allocator pools
        self.sync()
        best = float("inf")
        for _ in range(repeat):
            start = time.perf_counter()
            fn()
            self.sync()
            best = min(best, time.perf_counter() - start)
        return best


def libraries(device):
    found = [Library("numpy")]
    try:
        import torch
    except ImportError:
        torch = None
    if torch is not None and device == "cuda" and torch.cuda.is_available():
        found.append(Library("torch-cuda", torch, "cuda"))
    elif torch is not None:
        found.append(Library("torch-cpu", torch, "cpu"))
    if device == "cuda":
        try:
            import cupy

            if cupy.cuda.runtime.getDeviceCount() > 0:
                found.append(Library("cupy", cupy))
        except Exception:  # no CuPy, or no driver
            pass
    return found


def count_syncs(lib, fn):
    """Host synchronisations PyTorch reports during ``fn()`` (CUDA only)."""
    if lib.name != "torch-cuda":
        return None
    torch = lib.module
    lib.sync()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            fn()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return sum("synchroniz" in str(w.message).lower() for w in caught)


def cosine_scores(n, K, dim=128, seed=0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((50, dim))
    X = centres[rng.integers(0, 50, n)] + 0.7 * rng.standard_normal((n, dim))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    C = rng.standard_normal((K, dim))
    C /= np.linalg.norm(C, axis=1, keepdims=True)
    return np.ascontiguousarray(X @ C.T, dtype=dtype), X.astype(dtype)


def row(case, lib, dtype, seconds, baseline=None, **extra):
    out = {
        "case": case,
        "backend": lib if isinstance(lib, str) else lib.name,
        "dtype": np.dtype(dtype).name,
        "seconds": seconds,
        "speedup": None if baseline is None else baseline / seconds,
        "max_diff": None,
        "floor_ratio": None,
        "host_syncs": None,
        "peak_mb": None,
        "note": "",
    }
    out.update(extra)
    return out


def swav_rows(libs, n, K, dtype):
    S, _ = cosine_scores(n, K, dtype=dtype)
    case = f"swav {n}x{K}"
    reference = sinkhorn_codes(S, 0.05, 3)
    numpy_lib = libs[0]
    base_time = numpy_lib.timed(lambda: sinkhorn_codes(S, 0.05, 3))
    rows = [row(case, numpy_lib, dtype, base_time)]
    score_range = (float(S.min()), float(S.max()))
    for lib in libs[1:]:
        scores = lib.asarray(S)
        floor = 7 * S.nbytes / lib.copy_bandwidth(S.nbytes)
        base = lib.reset_peak()
        seconds = lib.timed(lambda scores=scores: sinkhorn_codes(scores, 0.05, 3))
        peak = lib.peak_mb(base)
        codes = to_numpy(sinkhorn_codes(scores, 0.05, 3))
        syncs = count_syncs(
            lib,
            lambda scores=scores: solver.scaling_codes(scores, 0.05, 3, score_range=score_range),
        )
        public = count_syncs(lib, lambda scores=scores: sinkhorn_codes(scores, 0.05, 3))
        rows.append(
            row(
                case,
                lib,
                dtype,
                seconds,
                base_time,
                max_diff=float(np.abs(codes - reference).max()),
                floor_ratio=seconds / floor,
                peak_mb=peak,
                host_syncs=None if syncs is None else f"{syncs}/{public}",
                note="host_syncs: solver/public call",
            )
        )
        if lib.name.startswith("torch"):
            base = lib.reset_peak()
            seconds = lib.timed(lambda scores=scores: swav_sinkhorn_torch(scores, 0.05, 3))
            peak = lib.peak_mb(base)
            codes = to_numpy(swav_sinkhorn_torch(scores, 0.05, 3))
            rows.append(
                row(
                    case,
                    f"SwAV {lib.name}",
                    dtype,
                    seconds,
                    base_time,
                    max_diff=float(np.abs(codes - reference).max()),
                    floor_ratio=seconds / floor,
                    peak_mb=peak,
                    note="SwAV's own linear-domain Sinkhorn",
                )
            )
    return rows


def converged_rows(libs, n, K):
    S, _ = cosine_scores(n, K, seed=1)
    case = f"converged {n}x{K}"
    reference = sinkhorn(S, 0.05, tol=1e-6).plan
    base_time = libs[0].timed(lambda: sinkhorn(S, 0.05, tol=1e-6))
    rows = [row(case, libs[0], np.float32, base_time)]
    for lib in libs[1:]:
        scores = lib.asarray(S)
        seconds = lib.timed(lambda scores=scores: sinkhorn(scores, 0.05, tol=1e-6))
        result = sinkhorn(scores, 0.05, tol=1e-6)
        rows.append(
            row(
                case,
                lib,
                np.float32,
                seconds,
                base_time,
                max_diff=float(np.abs(to_numpy(result.plan) - reference).max() * n),
                note=f"{result.n_iter} iterations, error {result.marginal_error:.1e}",
            )
        )
    return rows


def kmeans_rows(libs, n, dim, K):
    _, X = cosine_scores(n, 10, dim=dim, seed=2)
    init = X[np.random.default_rng(0).choice(n, K, replace=False)]
    case = f"kmeans {n}x{dim} K={K}"

    def fit(data, centres):
        return SinkhornKMeans(K, spherical=True, init=centres, max_iter=20, tol=0).fit(data)

    base_time = libs[0].timed(lambda: fit(X, init), repeat=1)
    reference = fit(X, init).labels_
    rows = [row(case, libs[0], np.float32, base_time)]
    for lib in libs[1:]:
        data, centres = lib.asarray(X), lib.asarray(init)
        try:
            seconds = lib.timed(lambda data=data, centres=centres: fit(data, centres), repeat=1)
            labels = to_numpy(fit(data, centres).labels_)
            rows.append(
                row(
                    case,
                    lib,
                    np.float32,
                    seconds,
                    base_time,
                    note=f"labels equal to NumPy's: {np.mean(labels == reference):.4f}",
                )
            )
        except (TypeError, ValueError) as exc:
            rows.append(row(case, lib, np.float32, float("nan"), note=f"failed: {exc}"))
    return rows


def fewshot_rows(libs, n_tasks):
    X, y = load_dataset("digits")
    X = X.astype(np.float32)
    novel = y >= 5
    tasks = fewshot_tasks(
        X[novel], y[novel], n_way=5, n_shot=5, n_query=15, n_tasks=n_tasks, random_state=0
    )
    support, support_y, query = tasks.X_support, tasks.y_support, tasks.X_query
    query_y = tasks.y_query
    model = TransductiveFewShot(lam=0.7, base_mean=X[~novel].mean(axis=0))
    case = f"fewshot {n_tasks} tasks 5w5s"
    base_time = libs[0].timed(lambda: model.predict_tasks(support, support_y, query), repeat=1)
    reference = model.predict_tasks(support, support_y, query)
    rows = [
        row(
            case,
            libs[0],
            np.float32,
            base_time,
            note=f"accuracy {np.mean(reference == query_y):.4f}",
        )
    ]
    for lib in libs[1:]:
        s, q = lib.asarray(support), lib.asarray(query)
        try:
            seconds = lib.timed(lambda s=s, q=q: model.predict_tasks(s, support_y, q), repeat=1)
            predicted = to_numpy(model.predict_tasks(s, support_y, q))
            rows.append(
                row(
                    case,
                    lib,
                    np.float32,
                    seconds,
                    base_time,
                    note=f"accuracy {np.mean(predicted == query_y):.4f}, equal to "
                    f"NumPy's: {np.mean(predicted == reference):.4f}",
                )
            )
        except (TypeError, ValueError) as exc:
            rows.append(row(case, lib, np.float32, float("nan"), note=f"failed: {exc}"))
    return rows


def gmm_rows(libs, n, dim, K):
    rng = np.random.default_rng(3)
    centres = rng.normal(0, 3, (K, dim))
    X = (centres[rng.integers(0, K, n)] + rng.standard_normal((n, dim))).astype(np.float32)
    model = SemiSupervisedGMM(K, split_merge=False, max_iter=5, tol=0, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # five sweeps do not converge: not the point here
        model.fit(X[:20_000])
    case = f"gmm predict_proba {n}x{dim} K={K}"
    base_time = libs[0].timed(lambda: model.predict_proba(X))
    reference = model.predict_proba(X)
    rows = [row(case, libs[0], np.float32, base_time)]
    for lib in libs[1:]:
        data = lib.asarray(X)
        try:
            seconds = lib.timed(lambda data=data: model.predict_proba(data))
            proba = to_numpy(model.predict_proba(data))
            rows.append(
                row(
                    case,
                    lib,
                    np.float32,
                    seconds,
                    base_time,
                    max_diff=float(np.abs(proba - reference).max()),
                )
            )
        except (TypeError, ValueError) as exc:
            rows.append(row(case, lib, np.float32, float("nan"), note=f"failed: {exc}"))
    return rows


def run(sizes, device):
    libs = libraries(device)
    rows = []
    for i, n in enumerate(sizes["swav"]):
        for dtype in (np.float32, np.float64) if i == 0 else (np.float32,):
            rows += swav_rows(libs, n, sizes["K"], dtype)
    rows += converged_rows(libs, *sizes["converged"])
    rows += kmeans_rows(libs, *sizes["kmeans"])
    rows += fewshot_rows(libs, sizes["tasks"])
    rows += gmm_rows(libs, *sizes["gmm"])
    return rows, [lib.name for lib in libs]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (smoke test)")
    parser.add_argument(
        "--device",
        choices=("cuda", "cpu"),
        default="cuda",
        help="where PyTorch runs (CuPy needs cuda)",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON output path")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    rows, names = run(sizes, args.device)
    meta = base_metadata(args.quick) | {"libraries": names, "sizes": sizes}
    try:
        import torch

        meta["torch"] = torch.__version__
        meta["torch_threads"] = torch.get_num_threads()
        if torch.cuda.is_available():
            meta["gpu"] = torch.cuda.get_device_name()
    except ImportError:
        pass
    print(format_table(rows, COLUMNS))
    write_json(args.out, rows, meta)
    print(f"wrote {args.out}")
    return rows


if __name__ == "__main__":
    main()
