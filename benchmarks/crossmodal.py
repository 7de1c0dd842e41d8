"""Benchmark CrossModalPrototypeClustering (MGCA's swapped prototypes) against k-means on
one view and on both views concatenated, on two real two-view data sets.

Run from the repository root::

    python benchmarks/crossmodal.py            # full data (about a minute)
    python benchmarks/crossmodal.py --quick    # random subsets of 600 and 1,000 samples
    python benchmarks/crossmodal.py --out results.json

Data (every method sees the same prepared views)
------------------------------------------------
``digits halves``
    scikit-learn's digits (1,797 8x8 images): the left half (image columns 0-3) and the
    right half (columns 4-7), 32 pixels each; each view centred and L2-normalised.
``MNIST-5k halves``
    ``load_dataset("mnist_5k")`` (5,000 28x28 images, 500 per class; the ``data``
    extra): the top half (rows 0-13) and the bottom half (rows 14-27), 392 pixels each;
    each view reduced by its own PCA to 50 components (which centres it), then
    L2-normalised. Skipped, with a note, where the extra is not installed.

Methods
-------
``CrossModalPrototypeClustering`` (K = 10, n_init = 10, max_iter = 300, eps = 0.05) fitted
on both views with MGCA's 3 Sinkhorn iterations per code (the default) and with 10; its
``labels_`` (balanced), and the per-sample ``predict`` of the 3-iteration fit from one
view only (timed as the predict call). scikit-learn ``KMeans`` (n_init = 10) on each view and on
the concatenation of the two prepared views.

Reported per row: ARI and NMI against the digit classes, ``seconds`` (best of 3, or
one run above 2 s, after an untimed warm-up fit on 200 samples and one untimed call of
the timed one, every contender alike), ``ratio`` (seconds over the default two-view
fit's: > 1 means ours is faster), the smallest and largest cluster and the largest
deviation of a size from n/K in percent, and for the two-view fit the cross-view
code agreement (share of samples whose two views' codes have the same largest entry),
and ``iter``, the iterations of the best run (``!``: it stopped at ``max_iter`` without
converging).
The table is printed and written as JSON (rows and metadata, the load average included)
to ``--out``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from sklearn.cluster import KMeans
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

# Run as a script, ``benchmarks`` is importable once the repository root is on the path.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks._report import (
    REPEAT,
    SINGLE_RUN_ABOVE_S,
    base_metadata,
    format_table,
    timed,
    write_json,
)
from clusterlab import CrossModalPrototypeClustering
from clusterlab.datasets import load_dataset

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "crossmodal.json"
K = 10
N_INIT = 10
MAX_ITER = 300
MNIST_PCA = 50
SETTLED_ITER = 10  # Sinkhorn iterations of the second configuration (see the guide)
QUICK_SAMPLES = {"digits halves": 600, "MNIST-5k halves": 1000}


def unit_rows(V):
    return V / np.linalg.norm(V, axis=1, keepdims=True)


def digits_halves():
    digits = load_digits()
    n = digits.target.size
    left = digits.images[:, :, :4].reshape(n, -1)
    right = digits.images[:, :, 4:].reshape(n, -1)
    views = [unit_rows(v - v.mean(axis=0)) for v in (left, right)]
    return ("left", "right"), views, digits.target


def mnist_halves():
    X, y = load_dataset("mnist_5k")
    images = X.reshape(-1, 28, 28)
    n = y.size
    views = [
        unit_rows(PCA(MNIST_PCA, random_state=0).fit_transform(part.reshape(n, -1)))
        for part in (images[:, :14], images[:, 14:])
    ]
    return ("top", "bottom"), views, y


def size_row(labels):
    sizes = np.bincount(labels, minlength=K)
    target = labels.size / K
    return {
        "smallest": int(sizes.min()),
        "largest": int(sizes.max()),
        "max_dev_pct": float(100 * np.max(np.abs(sizes - target)) / target),
    }


def scores(y, labels):
    return {
        "ari": adjusted_rand_score(y, labels),
        "nmi": normalized_mutual_info_score(y, labels),
        **size_row(np.asarray(labels)),
    }


def quiet(fn):
    def run():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            out = fn()
        return out, sorted({str(w.message).split(";")[0][:70] for w in caught})

    return run


def measure(fn, warm):
    """Time ``fn`` (best of 3) after an untimed ``warm()``; returns seconds, output, notes."""
    quiet(warm)()
    seconds, (out, notes) = timed(quiet(fn))
    return seconds, out, notes


def run_case(case, names, views, y):
    left, right = views
    n = y.size
    warm_n = min(200, n)
    rows = []

    def warm_ours():
        return CrossModalPrototypeClustering(K, random_state=0).fit(left[:warm_n], right[:warm_n])

    fitted = {}
    for n_sinkhorn_iter in (3, SETTLED_ITER):

        def ours(n_sinkhorn_iter=n_sinkhorn_iter):
            return CrossModalPrototypeClustering(
                K,
                n_sinkhorn_iter=n_sinkhorn_iter,
                n_init=N_INIT,
                max_iter=MAX_ITER,
                random_state=0,
            ).fit(left, right)

        seconds, model, notes = measure(ours, warm_ours)
        fitted[n_sinkhorn_iter] = model
        suffix = "" if n_sinkhorn_iter == 3 else f", n_sinkhorn_iter={n_sinkhorn_iter}"
        rows.append(
            {
                "case": case,
                "method": f"CrossModalPrototypeClustering{suffix}",
                "views": "both",
                "seconds": seconds,
                **scores(y, model.labels_),
                "agreement": model.code_agreement_,
                "n_iter": model.n_iter_,
                "converged": bool(model.converged_),
                "note": "; ".join(notes),
            }
        )
    base = rows[0]["seconds"]
    model = fitted[3]
    for index, name in enumerate(names):
        args = (views[0], None) if index == 0 else (None, views[1])
        seconds, labels, notes = measure(
            lambda args=args: model.predict(*args), lambda args=args: model.predict(*args)
        )
        rows.append(
            {
                "case": case,
                "method": "  predict, one view (3 it.)",
                "views": name,
                "seconds": seconds,
                **scores(y, labels),
                "note": "; ".join(notes),
            }
        )
    for name, view in [*zip(names, views, strict=True), ("concatenated", np.hstack(views))]:

        def kmeans(view=view):
            return KMeans(K, n_init=N_INIT, random_state=0).fit(view).labels_

        def warm_kmeans(view=view):
            return KMeans(K, n_init=1, random_state=0).fit(view[:warm_n])

        seconds, labels, notes = measure(kmeans, warm_kmeans)
        rows.append(
            {
                "case": case,
                "method": "scikit-learn KMeans",
                "views": name,
                "seconds": seconds,
                **scores(y, labels),
                "note": "; ".join(notes),
            }
        )
    for row in rows:  # ratios against the two-view fit; none for the predict calls
        row["ratio"] = row["seconds"] / base if row["method"].startswith(("Cross", "sci")) else None
        row["n"] = int(n)
    return rows


COLUMNS = [
    ("case", 16, "{}"),
    ("method", 50, "{}"),
    ("views", 13, "{}"),
    ("ari", 6, "{:.3f}"),
    ("nmi", 6, "{:.3f}"),
    ("seconds", 8, "{:.4f}"),
    ("ratio", 6, lambda r: "" if r.get("ratio") is None else f"{r['ratio']:.2f}"),
    ("sizes", 10, lambda r: f"{r['smallest']}-{r['largest']}"),
    ("dev %", 6, lambda r: f"{r['max_dev_pct']:.1f}"),
    ("agree", 6, lambda r: "" if r.get("agreement") is None else f"{r['agreement']:.3f}"),
    (
        "iter",
        5,
        lambda r: (
            "" if r.get("n_iter") is None else f"{r['n_iter']}{'' if r['converged'] else '!'}"
        ),
    ),
    ("note", 0, lambda r: r.get("note", "")),
]


def run(quick):
    rows, datasets, skipped = [], {}, []
    for case, loader in (("digits halves", digits_halves), ("MNIST-5k halves", mnist_halves)):
        try:
            names, views, y = loader()
        except ImportError as error:  # mnist_5k needs the data extra
            skipped.append(f"{case}: {error}")
            continue
        if quick:  # a random subset: mnist_5k is sorted by class
            keep = np.random.default_rng(0).permutation(y.size)[: QUICK_SAMPLES[case]]
            views, y = [v[keep] for v in views], y[keep]
        datasets[case] = {"n": int(y.size), "view_features": [int(v.shape[1]) for v in views]}
        print(f"running {case} (n={y.size}) ...", file=sys.stderr, flush=True)
        rows += run_case(case, names, views, y)
    return rows, datasets, skipped


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="subsets (smoke test)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON output path")
    args = parser.parse_args(argv)
    load_before = os.getloadavg()
    start = time.perf_counter()
    rows, datasets, skipped = run(args.quick)
    meta = {
        **base_metadata(args.quick),
        "n_clusters": K,
        "n_init": N_INIT,
        "max_iter": MAX_ITER,
        "mnist_pca": MNIST_PCA,
        "datasets": datasets,
        "skipped": skipped,
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "wall_seconds": time.perf_counter() - start,
        "timing": f"best of {REPEAT} (one run when the first exceeds {SINGLE_RUN_ABOVE_S} s)",
    }
    print(format_table(rows, COLUMNS))
    for line in skipped:
        print(f"skipped {line}")
    print(
        f"\n{meta['cpu_count']} CPUs, load average {load_before[0]:.1f} before and "
        f"{meta['load_average_after'][0]:.1f} after; {meta['timing']}"
    )
    write_json(args.out, rows, meta)
    print(f"wrote {args.out}")
    return rows


if __name__ == "__main__":
    main()
