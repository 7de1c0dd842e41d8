"""The ``clusterlab demo`` job: every estimator on bundled real data, beside a baseline.

Each :class:`DemoCase` names a dataset, the clusterlab estimator and the scikit-learn
baseline it is compared with. Later capabilities add their cases to :data:`CASES`.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from sklearn.base import clone
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from clusterlab.balanced import SinkhornKMeans
from clusterlab.datasets import load_dataset
from clusterlab.metrics import clustering_accuracy


@dataclass(frozen=True)
class DemoCase:
    title: str
    dataset: str
    preprocessing: str | None
    n_clusters: int
    make_estimator: Callable[[int, int], object]  # (n_clusters, seed) -> estimator
    make_baseline: Callable[[int, int], object]


def _kmeans(n_clusters, seed):
    return KMeans(n_clusters=n_clusters, n_init=10, random_state=seed)


CASES = [
    DemoCase(
        "balanced k-means (Sinkhorn)", "digits", None, 10,
        lambda k, seed: SinkhornKMeans(n_clusters=k, random_state=seed),
        _kmeans,
    ),
    DemoCase(
        "spherical balanced k-means, centred + L2-normalised", "digits", "l2", 10,
        lambda k, seed: SinkhornKMeans(n_clusters=k, spherical=True, random_state=seed),
        _kmeans,
    ),
]


def _evaluate(name, estimator, X, y):
    # one untimed fit on a slice first, so that seconds exclude Numba's one-time compile
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clone(estimator).fit(X[:200])
    start = time.perf_counter()
    labels = np.asarray(estimator.fit_predict(X))
    seconds = time.perf_counter() - start
    sizes = np.bincount(labels)
    sizes = sizes[sizes > 0]
    return {
        "estimator": name,
        "ari": adjusted_rand_score(y, labels),
        "nmi": normalized_mutual_info_score(y, labels),
        "accuracy": clustering_accuracy(y, labels),
        "seconds": seconds,
        "largest_cluster": int(sizes.max()),
        "smallest_cluster": int(sizes.min()),
    }


def run_demo(seed=0, cases=None):
    """Run the demo cases; returns a list of ``{case, dataset, n_samples, rows}`` dicts."""
    report = []
    for case in CASES if cases is None else cases:
        X, y = load_dataset(case.dataset, preprocessing=case.preprocessing)
        rows = [
            _evaluate(type(model).__name__, model, X, y)
            for model in (
                case.make_estimator(case.n_clusters, seed),
                case.make_baseline(case.n_clusters, seed),
            )
        ]
        report.append(
            {"case": case.title, "dataset": case.dataset, "n_samples": int(X.shape[0]),
             "n_clusters": case.n_clusters, "preprocessing": case.preprocessing, "rows": rows}
        )
    return report


def format_report(report):
    """The report as a plain-text table, one block per case."""
    header = (
        f"{'estimator':<22}{'ARI':>7}{'NMI':>7}{'acc':>7}"
        f"{'seconds':>9}{'largest':>9}{'smallest':>9}"
    )
    lines = []
    for block in report:
        prep = f", {block['preprocessing']}" if block["preprocessing"] else ""
        lines.append(
            f"{block['case']} — {block['dataset']} ({block['n_samples']} samples, "
            f"{block['n_clusters']} clusters{prep}; seconds after a warm-up fit)"
        )
        lines.append(header)
        lines.extend(
            f"{r['estimator']:<22}{r['ari']:>7.3f}{r['nmi']:>7.3f}{r['accuracy']:>7.3f}"
            f"{r['seconds']:>9.2f}{r['largest_cluster']:>9d}{r['smallest_cluster']:>9d}"
            for r in block["rows"]
        )
        lines.append("")
    return "\n".join(lines)
