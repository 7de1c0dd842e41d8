"""Out-of-distribution detection with inlier prototypes (MaxQuery) beside its peers.

Run from the repository root::

    python benchmarks/ood.py                  # digits (PCA-32) and mnist_5k (PCA-50), 10 seeds
    python benchmarks/ood.py --quick          # digits, seed 0, 1 and 10 prototypes per class
    python benchmarks/ood.py --out results.json

Protocol: classes 0-6 are in-distribution, 7-9 out. For every seed the inliers are split
70/30 (stratified, ``random_state=seed``); PCA (``random_state=0``) is fitted on the
inlier training part only, and every sample is projected and L2-normalised. Each method
fits on the inlier training part (features and classes) and scores the inlier test part
and all outliers; :func:`clusterlab.metrics.evaluate_ood` gives AUROC, AUPR-In and FPR95
(in-distribution = positive, higher score = more in-distribution).

Methods:

- ``PrototypeOODDetector`` with 1, 3, 5 and 10 prototypes per class
  (``random_state=seed``), raw largest cosine (``normalize="none"``); the same prototypes
  scored with the largest softmax assignment (``max_query_score(..., normalize="softmax")``)
  at temperatures 0.1 and 1 (the default, chosen on digits).
- class-conditional Mahalanobis: class means of the training features, one covariance
  (:class:`sklearn.covariance.EmpiricalCovariance`) of the class-centred training
  features, score ``-min_c (x - mu_c)' S^-1 (x - mu_c)``; on the same L2-normalised
  features, and, for reference, on the PCA features before normalisation.
- k-NN distance: minus the distance to the 5th nearest training feature
  (:class:`sklearn.neighbors.NearestNeighbors`, Euclidean on the L2-normalised features).

The default ``n_prototypes`` is the one with the best mean AUROC on digits (raw scores);
MNIST-5k is held out. Seconds are fit plus scoring, per seed, after one untimed warm-up
run of every method. The table (mean and sd over seeds) is printed and written as JSON.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from sklearn.covariance import EmpiricalCovariance
from sklearn.decomposition import PCA
from sklearn.model_selection import train_test_split
from sklearn.neighbors import NearestNeighbors

from clusterlab.datasets import load_dataset
from clusterlab.metrics import evaluate_ood
from clusterlab.ood import PrototypeOODDetector, max_query_score

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks._report import base_metadata, format_table, write_json

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "ood.json"
INLIER_CLASSES = (0, 1, 2, 3, 4, 5, 6)
TEST_SIZE = 0.3
N_NEIGHBORS = 5
FULL = {
    "settings": (("digits", 32), ("mnist_5k", 50)),
    "seeds": tuple(range(10)),
    "n_prototypes": (1, 3, 5, 10),
    "temperatures": (0.1, 1.0),
}
QUICK = {
    "settings": (("digits", 32),),
    "seeds": (0,),
    "n_prototypes": (1, 10),
    "temperatures": (0.1,),
}


def split_features(X, y, n_pca, seed):
    """Inlier train / inlier test / outlier features: PCA on the inlier training part,
    then L2 rows. Also returns the PCA features before normalisation."""
    inlier = np.isin(y, INLIER_CLASSES)
    X_train, X_test, y_train, _ = train_test_split(
        X[inlier], y[inlier], test_size=TEST_SIZE, stratify=y[inlier], random_state=seed
    )
    pca = PCA(n_pca, random_state=0).fit(X_train)
    raw = [pca.transform(A) for A in (X_train, X_test, X[~inlier])]
    unit = [Z / np.linalg.norm(Z, axis=1, keepdims=True) for Z in raw]
    return unit, raw, y_train


def mahalanobis_scores(F_train, y_train, parts):
    means = np.stack([F_train[y_train == c].mean(axis=0) for c in np.unique(y_train)])
    index = np.searchsorted(np.unique(y_train), y_train)
    cov = EmpiricalCovariance(assume_centered=True).fit(F_train - means[index])
    return [-np.min([cov.mahalanobis(A - m) for m in means], axis=0) for A in parts]


def knn_scores(F_train, parts):
    nn = NearestNeighbors(n_neighbors=N_NEIGHBORS).fit(F_train)
    return [-nn.kneighbors(A)[0][:, -1] for A in parts]


def methods(config):
    """name -> function of (unit, raw, y_train, seed) returning {method: (s_in, s_out)}."""
    out = {}
    for P in config["n_prototypes"]:

        def prototypes(unit, raw, y_train, seed, P=P):
            F_train, F_in, F_out = unit
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # a ConvergenceWarning is not a failure
                detector = PrototypeOODDetector(n_prototypes=P, random_state=seed).fit(
                    F_train, y_train
                )
            result = {
                f"MaxQuery P={P}, raw max": (
                    detector.score_samples(F_in),
                    detector.score_samples(F_out),
                )
            }
            for T in config["temperatures"]:
                result[f"MaxQuery P={P}, softmax T={T:g}"] = tuple(
                    max_query_score(
                        A, detector.cluster_centers_, normalize="softmax", temperature=T
                    )
                    for A in (F_in, F_out)
                )
            return result

        out[f"prototypes P={P}"] = prototypes

    def mahalanobis(unit, raw, y_train, seed):
        return {
            "Mahalanobis (L2 features)": tuple(mahalanobis_scores(unit[0], y_train, unit[1:])),
            "Mahalanobis (PCA, no L2)": tuple(mahalanobis_scores(raw[0], y_train, raw[1:])),
        }

    def knn(unit, raw, y_train, seed):
        return {f"{N_NEIGHBORS}-NN distance": tuple(knn_scores(unit[0], unit[1:]))}

    out["mahalanobis"] = mahalanobis
    out["knn"] = knn
    return out


def run_setting(name, n_pca, config):
    X, y = load_dataset(name)
    contenders = methods(config)
    unit, raw, y_train = split_features(X, y, n_pca, config["seeds"][0])
    for fn in contenders.values():  # warm-up: Numba compilation stays out of the times
        fn(unit, raw, y_train, config["seeds"][0])
    rows = []
    for seed in config["seeds"]:
        unit, raw, y_train = split_features(X, y, n_pca, seed)
        for fn in contenders.values():
            start = time.perf_counter()
            results = fn(unit, raw, y_train, seed)
            seconds = time.perf_counter() - start
            for method, (s_in, s_out) in results.items():
                score = evaluate_ood(s_in, s_out)
                rows.append(
                    {
                        "method": method,
                        "seed": seed,
                        "auroc": score.auroc,
                        "aupr": score.aupr,
                        "fpr95": score.fpr95,
                        "seconds": seconds,
                    }
                )
        print(f"{name}: seed {seed} done", flush=True)
    return rows


def summarise(setting, rows):
    groups = {}
    for row in rows:
        groups.setdefault(row["method"], []).append(row)
    table = []
    for method, group in groups.items():
        entry = {"setting": setting, "method": method, "n_seeds": len(group)}
        for key in ("auroc", "aupr", "fpr95", "seconds"):
            values = np.array([r[key] for r in group])
            entry[key] = float(values.mean())
            entry[f"{key}_sd"] = float(values.std())
        entry["auroc_per_seed"] = [r["auroc"] for r in group]
        table.append(entry)
    return table


def claims(table, setting, n_prototypes):
    """The chosen detector's AUROC margin over Mahalanobis (same features), per seed."""
    rows = {r["method"]: r for r in table if r["setting"] == setting}
    ours = np.array(rows[f"MaxQuery P={n_prototypes}, raw max"]["auroc_per_seed"])
    theirs = np.array(rows["Mahalanobis (L2 features)"]["auroc_per_seed"])
    knn = np.array(rows[f"{N_NEIGHBORS}-NN distance"]["auroc_per_seed"])
    margin = ours - theirs
    return {
        "setting": setting,
        "n_prototypes": n_prototypes,
        "margin_mean": float(margin.mean()),
        "margin_sd": float(margin.std()),
        "margin_min": float(margin.min()),
        "seeds_with_margin_at_least_0.01": int((margin >= 0.01 - 1e-12).sum()),
        "n_seeds": int(margin.size),
        "minus_knn_mean": float((ours - knn).mean()),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    config = QUICK if args.quick else FULL
    table, per_seed = [], []
    for name, n_pca in config["settings"]:
        setting = f"{name}, PCA-{n_pca}"
        rows = run_setting(name, n_pca, config)
        per_seed.extend({"setting": setting, **row} for row in rows)
        table.extend(summarise(setting, rows))
    digits = [
        r for r in table if r["setting"].startswith("digits") and r["method"].endswith("raw max")
    ]
    best = max(digits, key=lambda r: r["auroc"])
    chosen = int(best["method"].split("P=")[1].split(",")[0])
    default = PrototypeOODDetector().n_prototypes
    columns = [
        ("setting", 16, "{}"),
        ("method", 32, "{}"),
        ("AUROC", 15, lambda r: f"{r['auroc']:.4f} ± {r['auroc_sd']:.4f}"),
        ("AUPR", 15, lambda r: f"{r['aupr']:.4f} ± {r['aupr_sd']:.4f}"),
        ("FPR95", 15, lambda r: f"{r['fpr95']:.4f} ± {r['fpr95_sd']:.4f}"),
        ("seconds", 0, "{:.3f}"),
    ]
    print(format_table(table, columns))
    print(
        f"\nbest n_prototypes on digits (raw max, mean AUROC): {chosen}; the estimator's "
        f"default is {default}" + ("" if chosen == default else "  <-- differs")
    )
    checks = [
        claims(table, setting, default) for setting in dict.fromkeys(r["setting"] for r in table)
    ]
    for c in checks:
        print(
            f"{c['setting']}: P={c['n_prototypes']} AUROC - Mahalanobis = "
            f"{c['margin_mean']:+.4f} ± {c['margin_sd']:.4f} (min {c['margin_min']:+.4f}; "
            f">= 0.01 on {c['seeds_with_margin_at_least_0.01']}/{c['n_seeds']} seeds); "
            f"- 5-NN = {c['minus_knn_mean']:+.4f}"
        )
    meta = base_metadata(args.quick)
    meta.update(
        {
            "chosen_n_prototypes": chosen,
            "default_n_prototypes": default,
            "claims": checks,
            "per_seed_rows": per_seed,
            "test_size": TEST_SIZE,
            "inlier_classes": list(INLIER_CLASSES),
        }
    )
    write_json(args.out, table, meta)
    return table


if __name__ == "__main__":
    main()
