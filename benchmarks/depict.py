"""Benchmark DEPICT's head on fixed features against k-means, on real digits.

Run from the repository root::

    python benchmarks/depict.py            # digits (PCA-32) and MNIST-5k (PCA-50), 3 seeds
    python benchmarks/depict.py --quick    # a digits subset, one seed, seconds
    python benchmarks/depict.py --out results.json
    python benchmarks/depict.py --sweep    # digits, seed 0: exact targets with alpha > 0

Every method runs in this one process on the same features: scikit-learn's
``KMeans(n_init=10)`` (the peer) and ``DEPICTClustering`` with each target step,
``"exact"`` (the default), ``"sqrt"`` (the paper's closed form), ``"dec"`` (the released
code's) and ``"none"`` (``Q = P``: no frequency prior), all with their default
parameters (``alpha=0``, ``init_alpha=1/n``, ``max_iter=100``, ``tol=1e-7``). Nothing was
tuned on these labels. DEPICT starts from k-means with ``n_init=10`` and the same seed
(the same start labels as the peer), so its seconds include a k-means run.

Reported per row: ``accuracy`` (best one-to-one matching of clusters to classes),
``nmi``, ``seconds`` (``time.perf_counter``, one fit, after an untimed warm-up fit of
every method on 300 samples), DEPICT's ``n_iter``, whether it converged, and whether its
objective history never increased (``monotone``, relative slack 1e-12). With several
seeds every seed is a row, and a ``mean`` row per method follows.

``--sweep`` shows what an L2 term in the alternation does (digits PCA-32, seed 0,
``target="exact"``, ``alpha`` in 1e-4, 1e-3, 1e-2; ``mean_max_p`` is the mean of the
largest predicted probability): the uniform head is the global minimum of DEPICT's
objective, and the fits drift towards it. It is not used to choose any default.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA
from sklearn.metrics import normalized_mutual_info_score

# Run as a script, ``benchmarks`` is importable once the repository root is on the path.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks._report import base_metadata, format_table, write_json
from clusterlab import DEPICTClustering
from clusterlab.datasets import load_dataset
from clusterlab.metrics import clustering_accuracy

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "depict.json"
TARGETS = ("exact", "sqrt", "dec", "none")
FULL = {"cases": [("digits", 32, None), ("mnist_5k", 50, None)], "seeds": (0, 1, 2)}
QUICK = {"cases": [("digits", 16, 600)], "seeds": (0,)}

COLUMNS = [
    ("case", 18, "{}"),
    ("method", 22, "{}"),
    ("seed", 5, "{}"),
    ("accuracy", 9, "{:.4f}"),
    ("nmi", 7, "{:.4f}"),
    ("seconds", 8, "{:.2f}"),
    ("n_iter", 7, "{}"),
    ("converged", 10, "{}"),
    ("monotone", 10, "{}"),
    ("mean_max_p", 0, "{:.3f}"),
]
SWEEP_ALPHAS = (1e-4, 1e-3, 1e-2)


def load(name, n_pca, n_samples):
    X, y = load_dataset(name)
    if n_samples is not None:
        X, y = X[:n_samples], y[:n_samples]
    return PCA(n_pca, random_state=0).fit_transform(X), y


def methods(seed, sweep=False):
    out = {"KMeans(n_init=10)": KMeans(10, n_init=10, random_state=seed)}
    if sweep:
        for alpha in SWEEP_ALPHAS:
            out[f"DEPICT exact a={alpha:g}"] = DEPICTClustering(10, alpha=alpha, random_state=seed)
        return out
    for target in TARGETS:
        out[f"DEPICT {target}"] = DEPICTClustering(10, target=target, random_state=seed)
    return out


def run_case(name, n_pca, n_samples, seeds, sweep=False):
    X, y = load(name, n_pca, n_samples)
    case = f"{name} PCA-{n_pca}"
    rows = []
    for seed in seeds:
        for method, model in methods(seed, sweep).items():
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                type(model)(**model.get_params()).fit(X[:300])  # warm-up, untimed
                start = time.perf_counter()
                labels = np.asarray(model.fit_predict(X))
                seconds = time.perf_counter() - start
            depict = isinstance(model, DEPICTClustering)
            history = model.objective_history_ if depict else None
            rows.append(
                {
                    "case": case,
                    "method": method,
                    "seed": seed,
                    "accuracy": clustering_accuracy(y, labels),
                    "nmi": normalized_mutual_info_score(y, labels),
                    "seconds": seconds,
                    "n_iter": int(model.n_iter_),
                    "converged": bool(model.converged_) if depict else None,
                    "monotone": bool(np.all(np.diff(history) <= 1e-12 * np.abs(history[:-1])))
                    if depict
                    else None,
                    "mean_max_p": float(np.mean(np.max(model.predict_proba(X), axis=1)))
                    if depict
                    else None,
                    "warnings": sorted({str(w.message)[:80] for w in caught}),
                }
            )
            print(f"{case} seed {seed} {method}: done", file=sys.stderr, flush=True)
    if len(seeds) > 1:
        for method in methods(0, sweep):
            mine = [r for r in rows if r["method"] == method]
            rows.append(
                {
                    "case": case,
                    "method": method,
                    "seed": "mean",
                    **{
                        key: float(np.mean([r[key] for r in mine]))
                        for key in ("accuracy", "nmi", "seconds")
                    },
                    "n_iter": None,
                    "converged": None,
                    "monotone": None,
                    "mean_max_p": None,
                    "warnings": [],
                }
            )
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a digits subset, one seed")
    parser.add_argument(
        "--sweep", action="store_true", help="digits, seed 0: exact targets with alpha > 0"
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON output path")
    args = parser.parse_args(argv)
    settings = QUICK if args.quick else FULL
    if args.sweep:
        settings = {"cases": FULL["cases"][:1], "seeds": (0,)}
    rows = []
    for name, n_pca, n_samples in settings["cases"]:
        rows += run_case(name, n_pca, n_samples, settings["seeds"], args.sweep)
    print(format_table(rows, COLUMNS))
    meta = base_metadata(args.quick)
    meta["targets"] = ["exact"] if args.sweep else list(TARGETS)
    write_json(args.out, rows, meta)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
