"""Benchmark clusterlab's Laplacian bound optimizer against a plain NumPy reference.

Run from the repository root::

    python benchmarks/bound.py            # full sizes (several minutes)
    python benchmarks/bound.py --quick    # small sizes, every code path, seconds
    python benchmarks/bound.py --out results.json
    python benchmarks/bound.py --tasks 1000 --points 20000   # sizes of your choice

The reference (:mod:`benchmarks.peers`) is the same mathematics written plainly with
NumPy, SciPy sparse matrices and scikit-learn's ``NearestNeighbors``, one problem at a
time, as the authors' released code runs (Ziko et al., 2018; 2020; 2021). Everything runs
in this one process on the same data, in float64.

Cases
-----
``fewshot``
    Five-way five-shot tasks with 15 queries per class drawn from scikit-learn's digits:
    classes 0-4 give the centring mean ("CL2N" features), classes 5-9 form the tasks
    (:func:`clusterlab.datasets.fewshot_tasks`, ``random_state=0``). Laplacian K-means
    with the support clamped, ``lam = 0.7``, a binary 3-NN graph per task. Timed end to
    end (preprocessing, graphs, inference): ``TransductiveFewShot.predict_tasks`` on all
    tasks at once against :func:`benchmarks.peers.fewshot_task_numpy` in a loop over the
    tasks. ``accuracy`` is the mean query accuracy +- its 95% interval
    (:func:`clusterlab.metrics.evaluate_fewshot`); ``differing`` counts the tasks whose
    predictions differ from the reference's.
``laplacian k-means``
    ``n`` points in 64 dimensions from a mixture of 10 isotropic Gaussians (unit
    variance, centres drawn with standard deviation 0.5 per coordinate,
    ``np.random.default_rng(0)``), 10 clusters started at k-means++ seeds
    (scikit-learn's ``kmeans_plusplus``, ``random_state=0``), ``lam = 0.2``. The binary
    10-NN graph is built once with :func:`clusterlab.solvers.graph.knn_affinity` (its
    time is a row of its own) and given to both solvers, with the costs divided by its
    ``sigma^2`` as :class:`clusterlab.LaplacianKMeans` does:
    :func:`clusterlab.solvers.bound.fit_prototypes` with two Numba threads and with one
    (the parallel speed-up), against :func:`benchmarks.peers.laplacian_kmeans_numpy`.
    ``accuracy`` is the clustering accuracy against the mixture components;
    ``differing`` counts the points whose label differs from the reference's.

Reported per row: ``threads`` (Numba's), ``seconds`` (``time.perf_counter``; best of 3
runs, or one run when the first takes over 2 s, after one untimed call of the same
contender on the same data, the NumPy reference and the graph included; clusterlab also
gets small warm-up calls first so Numba's compilation is not timed), ``ratio`` (the row's
seconds over those of the case's first clusterlab row, the default configuration or two
threads: > 1 means that one is faster; on the one-thread row of Laplacian K-means it is
the parallel speed-up), ``accuracy``, ``differing`` and a note (rounds run, warnings
caught). The table is printed and written as JSON (rows and metadata, the load average
included) to ``--out``.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from dataclasses import dataclass
from pathlib import Path

import numba
import numpy as np
from clusterlab.solvers.bound import fit_prototypes
from clusterlab.solvers.graph import knn_affinity
from sklearn.cluster import kmeans_plusplus
from threadpoolctl import threadpool_info

from clusterlab.datasets import fewshot_tasks, load_dataset
from clusterlab.metrics import clustering_accuracy, evaluate_fewshot
from clusterlab.transductive import TransductiveFewShot

# Run as a script, ``benchmarks`` is importable once the repository root is on the path.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks._report import (
    REPEAT,
    SINGLE_RUN_ABOVE_S,
    base_metadata,
    format_table,
    quietly,
    timed,
    write_json,
)
from benchmarks.peers import fewshot_task_numpy, laplacian_kmeans_numpy

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "bound.json"

# Few-shot protocol.
N_WAY, N_SHOT, N_QUERY = 5, 5, 15
FEWSHOT_LAM = 0.7
FEWSHOT_NEIGHBORS = 3
TASK_SEED = 0
WARMUP_TASKS = 4

# Laplacian K-means problem.
N_CLUSTERS = 10
CENTRE_SCALE = 0.5
KMEANS_LAM = 0.2
KMEANS_NEIGHBORS = 10
WARMUP_POINTS = 500
PARALLEL_THREADS = 2  # Numba threads of the parallel run, compared with one thread

# Solver settings, shared by both implementations (the estimators' defaults).
TOL = 1e-6
MAX_ITER = 100
MAX_BOUND_ITER = 1000


@dataclass(frozen=True)
class Sizes:
    """Problem sizes of one benchmark run."""

    n_tasks: int  # few-shot tasks
    n_points: int  # Laplacian K-means points
    dim: int = 64  # Laplacian K-means features


FULL = Sizes(n_tasks=10_000, n_points=100_000)
QUICK = Sizes(n_tasks=200, n_points=5_000)


# -- measurements -----------------------------------------------------------------------


def row(case, method, seconds, *, threads=None, accuracy=None, differing=None, note=""):
    return {
        "case": case,
        "method": method,
        "threads": threads,
        "seconds": seconds,
        "ratio": None,
        "accuracy": accuracy,
        "differing": differing,
        "note": note,
    }


# -- cases ------------------------------------------------------------------------------


def digits_tasks(n_tasks):
    """Few-shot tasks on digits classes 5-9 and the mean of classes 0-4."""
    X, y = load_dataset("digits")
    base_mean = X[y < 5].mean(axis=0)
    novel = y >= 5
    tasks = fewshot_tasks(
        X[novel],
        y[novel],
        n_way=N_WAY,
        n_shot=N_SHOT,
        n_query=N_QUERY,
        n_tasks=n_tasks,
        random_state=TASK_SEED,
    )
    return tasks, base_mean


def fewshot_case(n_tasks):
    """``TransductiveFewShot.predict_tasks`` against the per-task NumPy loop."""
    tasks, base_mean = digits_tasks(n_tasks)
    case = f"fewshot {N_WAY}-way {N_SHOT}-shot, {n_tasks} tasks"
    settings = {
        "base_mean": base_mean,
        "lam": FEWSHOT_LAM,
        "n_neighbors": FEWSHOT_NEIGHBORS,
        "tol": TOL,
        "max_iter": MAX_ITER,
        "max_bound_iter": MAX_BOUND_ITER,
    }
    model = TransductiveFewShot(**settings)
    support, labels, queries = tasks.X_support, tasks.y_support, tasks.X_query

    def ours():
        return model.predict_tasks(support, labels, queries)

    def reference():
        return np.stack(
            [
                fewshot_task_numpy(support[t], labels[t], queries[t], **settings)
                for t in range(n_tasks)
            ]
        )

    warm = slice(0, WARMUP_TASKS)
    quietly(lambda: model.predict_tasks(support[warm], labels[warm], queries[warm]))()
    ref_seconds, (ref_pred, ref_messages) = timed(quietly(reference))
    runs = [("NumPy reference, per task", None, ref_seconds, ref_pred, ref_messages)]
    seconds, (pred, messages) = timed(quietly(ours))
    runs.append(("clusterlab predict_tasks", numba.get_num_threads(), seconds, pred, messages))
    rows = []
    for method, threads, seconds, pred, messages in runs:
        score = evaluate_fewshot(tasks.y_query, pred)
        differing = int(np.count_nonzero((pred != ref_pred).any(axis=1)))
        rows.append(
            row(
                case,
                method,
                seconds,
                threads=threads,
                accuracy=f"{100 * score.accuracy:.2f} +- {100 * score.ci95:.2f} %",
                differing=differing,
                note="; ".join(messages),
            )
        )
    return rows


def gaussian_mixture(n, dim, seed=0):
    """``n`` points of a mixture of ``N_CLUSTERS`` unit-variance Gaussians, and components."""
    rng = np.random.default_rng(seed)
    centres = CENTRE_SCALE * rng.standard_normal((N_CLUSTERS, dim))
    components = rng.integers(0, N_CLUSTERS, n)
    X = centres[components] + rng.standard_normal((n, dim))
    return X, components


def solve_ours(X, graph, init):
    """:func:`fit_prototypes` called as :meth:`LaplacianKMeans.fit` calls it (means)."""
    scale = np.where(graph.sigma2 > 0, graph.sigma2, 1.0)
    return fit_prototypes(
        X[None],
        graph.affinity,
        KMEANS_LAM,
        init[None],
        kind="means",
        sigma2=scale,
        cost_scale=scale,
        max_iter=MAX_ITER,
        tol=TOL,
        max_bound_iter=MAX_BOUND_ITER,
    )


def solve_reference(X, graph, init):
    scale = float(graph.sigma2[0]) if graph.sigma2[0] > 0 else 1.0
    return laplacian_kmeans_numpy(
        X,
        graph.affinity,
        KMEANS_LAM,
        init,
        cost_scale=scale,
        tol=TOL,
        max_iter=MAX_ITER,
        max_bound_iter=MAX_BOUND_ITER,
    )


def _describe(result):
    notes = [f"{int(result.n_iter[0])} rounds"]
    if result.empty_cluster[0]:
        notes.append("stopped: a cluster emptied")
    elif not result.converged[0]:
        notes.append("labels still changing at max_iter")
    if not result.bound_converged[0]:
        notes.append("last bound solve hit max_bound_iter")
    return notes


def laplacian_kmeans_case(n, dim):
    """``fit_prototypes`` (default threads and one thread) against the NumPy reference."""
    X, components = gaussian_mixture(n, dim)
    init, _ = kmeans_plusplus(X, N_CLUSTERS, random_state=0)
    case = f"laplacian k-means, n={n}, d={dim}"
    graph_seconds, graph = timed(lambda: knn_affinity(X, KMEANS_NEIGHBORS))
    rows = [
        row(
            case,
            f"knn_affinity, {KMEANS_NEIGHBORS}-NN (shared)",
            graph_seconds,
            note=f"{graph.affinity.nnz} edges, sigma^2 = {graph.sigma2[0]:.4g}",
        )
    ]

    few = slice(0, WARMUP_POINTS)
    solve_ours(X[few], knn_affinity(X[few], KMEANS_NEIGHBORS), init)  # compile, untimed
    ref_seconds, (ref_labels, _) = timed(lambda: solve_reference(X, graph, init))
    rows.append(
        row(
            case,
            "NumPy reference",
            ref_seconds,
            accuracy=f"{100 * clustering_accuracy(components, ref_labels):.2f} %",
            differing=0,
        )
    )

    default_threads = numba.get_num_threads()
    most = min(PARALLEL_THREADS, numba.config.NUMBA_NUM_THREADS)
    try:
        for threads in sorted({most, 1}, reverse=True):
            numba.set_num_threads(threads)
            seconds, result = timed(lambda: solve_ours(X, graph, init))
            labels = result.labels[0]
            rows.append(
                row(
                    case,
                    "clusterlab fit_prototypes",
                    seconds,
                    threads=threads,
                    accuracy=f"{100 * clustering_accuracy(components, labels):.2f} %",
                    differing=int(np.count_nonzero(labels != ref_labels)),
                    note="; ".join(_describe(result)),
                )
            )
    finally:
        numba.set_num_threads(default_threads)
    return rows


def add_ratios(rows):
    """``ratio`` = seconds / those of the first clusterlab row of the same case.

    None for the graph construction, which is not a solver.
    """
    for r in rows:
        if r["method"].startswith("knn_affinity"):
            continue
        ours = next(
            o for o in rows if o["case"] == r["case"] and o["method"].startswith("clusterlab")
        )
        r["ratio"] = r["seconds"] / ours["seconds"]
    return rows


# -- output -----------------------------------------------------------------------------

COLUMNS = [
    ("case", 36, "{}"),
    ("method", 40, "{}"),
    ("threads", 7, "{}"),
    ("seconds", 9, "{:.3f}"),
    ("ratio", 7, "{:.2f}"),
    ("accuracy", 17, "{}"),
    ("differing", 9, "{}"),
    ("note", 0, "{}"),
]


def metadata(quick, sizes):
    import scipy
    import sklearn

    return {
        **base_metadata(quick),
        "processor": platform.processor(),
        "scipy": scipy.__version__,
        "scikit-learn": sklearn.__version__,
        "numba_threading_layer": numba.threading_layer(),
        "blas": [
            {k: info.get(k) for k in ("internal_api", "version", "num_threads")}
            for info in threadpool_info()
            if info.get("user_api") == "blas"
        ],
        "sizes": sizes.__dict__,
        "fewshot": {
            "n_way": N_WAY,
            "n_shot": N_SHOT,
            "n_query": N_QUERY,
            "lam": FEWSHOT_LAM,
            "n_neighbors": FEWSHOT_NEIGHBORS,
            "random_state": TASK_SEED,
            "data": "digits: classes 0-4 base mean, 5-9 tasks",
        },
        "laplacian_kmeans": {
            "n_clusters": N_CLUSTERS,
            "lam": KMEANS_LAM,
            "n_neighbors": KMEANS_NEIGHBORS,
            "data": f"mixture of {N_CLUSTERS} unit Gaussians, centres "
            f"{CENTRE_SCALE} * N(0, I), default_rng(0)",
            "init": "kmeans_plusplus(random_state=0)",
        },
        "solver": {"tol": TOL, "max_iter": MAX_ITER, "max_bound_iter": MAX_BOUND_ITER},
        "timing": f"best of {REPEAT} (one run when the first exceeds {SINGLE_RUN_ABOVE_S} s)",
    }


def run(sizes):
    print(f"running fewshot_case, {sizes.n_tasks} tasks ...", file=sys.stderr, flush=True)
    rows = fewshot_case(sizes.n_tasks)
    print(f"running laplacian_kmeans_case, n={sizes.n_points} ...", file=sys.stderr, flush=True)
    rows += laplacian_kmeans_case(sizes.n_points, sizes.dim)
    return add_ratios(rows)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke test)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON output path")
    parser.add_argument("--tasks", type=int, help="few-shot tasks (overrides the size)")
    parser.add_argument("--points", type=int, help="Laplacian K-means points (overrides)")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    sizes = Sizes(
        n_tasks=args.tasks or sizes.n_tasks, n_points=args.points or sizes.n_points, dim=sizes.dim
    )
    load_before = os.getloadavg()
    rows = run(sizes)
    meta = {
        **metadata(args.quick, sizes),
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
    }
    print(format_table(rows, COLUMNS))
    print(
        f"\nnumpy {meta['numpy']}, scikit-learn {meta['scikit-learn']}, numba {meta['numba']} "
        f"({meta['numba_threads']} threads), {meta['cpu_count']} CPUs, load average "
        f"{load_before[0]:.1f} before and {meta['load_average_after'][0]:.1f} after; "
        f"{meta['timing']}"
    )
    write_json(args.out, rows, meta)
    print(f"wrote {args.out}")
    return rows


if __name__ == "__main__":
    main()
