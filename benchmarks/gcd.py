"""Generalized category discovery on bundled real datasets: estimated K and All/Old/New.

Run from the repository root::

    python benchmarks/gcd.py                  # digits (raw, PCA-32) and mnist_5k (PCA-32)
    python benchmarks/gcd.py --quick          # digits PCA-32, seed 0, starting K 5 and 40
    python benchmarks/gcd.py --out results.json

Protocol (the "v2" protocol of ``docs/user_guide/gcd.rst``): classes 0-4 are old, 5-9 new;
:func:`clusterlab.datasets.make_gcd_split` labels a random 50 % of each old class
(``random_state=seed``); every method fits on all samples and is scored on the unlabeled
ones with :func:`clusterlab.metrics.gcd_accuracy`. Features are the data as loaded and its
projection on the first 32 principal components (scikit-learn's PCA fitted on all
samples, no labels used).

Methods, for seeds 0-4:

- ``SemiSupervisedGMM`` (defaults, full covariances, split/merge) from starting K of 5,
  20 and 40; reported: the K it ends with and its accuracy.
- ``estimate_n_clusters`` (the GCD baseline: k-means scored on the labeled subset, Brent's
  method), then ``SemiSupervisedKMeans`` with that K.
- ``SemiSupervisedKMeans`` with the true K = 10 (the accuracy bar).
- scikit-learn's ``BayesianGaussianMixture`` with 40 components (full covariances, its
  default Dirichlet-process prior, ``max_iter=500``): the number of components with weight
  above ``1 / (2 n)``, and its accuracy. It cannot use the labels.

The table (mean, sd and every seed's value) is printed and written as JSON to ``--out``.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from sklearn.decomposition import PCA
from sklearn.mixture import BayesianGaussianMixture

from clusterlab.datasets import load_dataset, make_gcd_split
from clusterlab.metrics import gcd_accuracy
from clusterlab.mixture import SemiSupervisedGMM, SemiSupervisedKMeans, estimate_n_clusters

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks._report import base_metadata, format_table, write_json

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "gcd.json"
OLD_CLASSES = (0, 1, 2, 3, 4)
TRUE_K = 10
FULL = {
    "settings": (("digits", 0), ("digits", 32), ("mnist_5k", 32)),
    "seeds": (0, 1, 2, 3, 4),
    "start_k": (5, 20, 40),
    "baselines": True,
}
QUICK = {"settings": (("digits", 32),), "seeds": (0,), "start_k": (5, 40), "baselines": False}


def features(name, n_pca):
    X, y = load_dataset(name)
    if n_pca:
        X = PCA(n_pca, random_state=0).fit_transform(X)
    return np.ascontiguousarray(X, dtype=np.float64), y


def _score(y, labels, split):
    unlabeled = split.unlabeled_mask
    return gcd_accuracy(y[unlabeled], labels[unlabeled], split.old_mask[unlabeled])


def run_setting(X, y, seed, start_k, baselines):
    """Rows of one (features, seed): every method's K, All/Old/New and fit time."""
    split = make_gcd_split(y, OLD_CLASSES, labeled_fraction=0.5, random_state=seed)
    rows = []

    def record(method, k, labels, seconds):
        score = _score(y, labels, split)
        rows.append(
            {
                "method": method,
                "seed": seed,
                "k": int(k),
                "all": score.all,
                "old": score.old,
                "new": score.new,
                "seconds": seconds,
            }
        )

    for k0 in start_k:
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ConvergenceWarning is reported via converged_
            model = SemiSupervisedGMM(n_components=k0, random_state=seed).fit(X, split.y_partial)
        record(
            f"SemiSupervisedGMM K0={k0}",
            model.n_components_,
            model.labels_,
            time.perf_counter() - start,
        )
    if not baselines:
        return rows
    start = time.perf_counter()
    k_hat = estimate_n_clusters(X, split.y_partial, random_state=seed)
    kmeans = SemiSupervisedKMeans(k_hat, random_state=seed).fit(X, split.y_partial)
    record("estimate_n_clusters + SS-KMeans", k_hat, kmeans.labels_, time.perf_counter() - start)
    start = time.perf_counter()
    kmeans = SemiSupervisedKMeans(TRUE_K, random_state=seed).fit(X, split.y_partial)
    record("SS-KMeans, true K", TRUE_K, kmeans.labels_, time.perf_counter() - start)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bgm = BayesianGaussianMixture(n_components=40, max_iter=500, random_state=seed).fit(X)
    k_bgm = int((bgm.weights_ > 1.0 / (2 * X.shape[0])).sum())
    record("BayesianGaussianMixture(40)", k_bgm, bgm.predict(X), time.perf_counter() - start)
    return rows


def summarise(rows):
    """Mean and sd per (setting, method) over seeds."""
    groups = {}
    for row in rows:
        groups.setdefault((row["setting"], row["method"]), []).append(row)
    table = []
    for (setting, method), group in groups.items():
        ks = np.array([r["k"] for r in group])
        entry = {
            "setting": setting,
            "method": method,
            "k_per_seed": ks.tolist(),
            "k_mean": float(ks.mean()),
            "k_within_1": int((np.abs(ks - TRUE_K) <= 1).sum()),
            "seconds": float(np.mean([r["seconds"] for r in group])),
        }
        for part in ("all", "old", "new"):
            values = np.array([r[part] for r in group])
            entry[part] = float(values.mean())
            entry[f"{part}_sd"] = float(values.std())
        table.append(entry)
    return table


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    config = QUICK if args.quick else FULL
    rows = []
    for name, n_pca in config["settings"]:
        X, y = features(name, n_pca)
        setting = f"{name}, {'PCA-' + str(n_pca) if n_pca else 'as loaded'}"
        for seed in config["seeds"]:
            rows.extend(
                {"setting": setting, **row}
                for row in run_setting(X, y, seed, config["start_k"], config["baselines"])
            )
            print(f"{setting}: seed {seed} done", flush=True)
    table = summarise(rows)
    columns = [
        ("setting", 18, "{}"),
        ("method", 32, "{}"),
        ("k_per_seed", 18, "{}"),
        ("all", 6, "{:.3f}"),
        ("old", 6, "{:.3f}"),
        ("new", 6, "{:.3f}"),
        ("seconds", 0, "{:.2f}"),
    ]
    print(format_table(table, columns))
    meta = base_metadata(args.quick)
    meta["per_seed_rows"] = rows
    write_json(args.out, table, meta)
    return table


if __name__ == "__main__":
    main()
