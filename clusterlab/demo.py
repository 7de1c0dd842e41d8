"""The ``clusterlab demo`` job: every estimator on bundled real data, beside a baseline.

Each :class:`DemoCase` names a dataset, the clusterlab estimator and the scikit-learn
baseline it is compared with. Later capabilities add their cases to :data:`CASES`.
:data:`FEWSHOT_CASES` run few-shot episodes (:class:`FewShotCase`) and report accuracy
over tasks beside the SimpleShot baseline. :data:`GCD_CASES` run generalized category
discovery (:class:`GCDCase`): the estimated number of classes and All/Old/New accuracy.
:data:`HEAD_CASES` run the heads of the other papers (:class:`HeadCase`): each returns
rows of named scores, the clusterlab method beside its peer.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from sklearn.base import clone
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score
from sklearn.mixture import GaussianMixture

from clusterlab.balanced import SinkhornKMeans
from clusterlab.datasets import fewshot_tasks, load_dataset, make_gcd_split
from clusterlab.metrics import clustering_accuracy, evaluate_fewshot, gcd_accuracy
from clusterlab.mixture import SemiSupervisedGMM, SemiSupervisedKMeans, estimate_n_clusters
from clusterlab.sdp import ILASDP, SDPKMeans
from clusterlab.transductive import LaplacianKMeans, TransductiveFewShot


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
    DemoCase(
        "Laplacian k-means (10-NN graph, bound optimizer)", "digits", None, 10,
        lambda k, seed: LaplacianKMeans(n_clusters=k, random_state=seed),
        _kmeans,
    ),
    DemoCase(
        "SDP k-means (Peng-Wei relaxation, low-rank solver)", "wine", "standardize", 3,
        lambda k, seed: SDPKMeans(n_clusters=k, random_state=seed),
        _kmeans,
    ),
    DemoCase(
        "iLA-SDP (a covariance per cluster) vs EM", "wine", "standardize", 3,
        lambda k, seed: ILASDP(n_clusters=k, random_state=seed),
        lambda k, seed: GaussianMixture(n_components=k, n_init=10, random_state=seed),
    ),
]


@dataclass(frozen=True)
class FewShotCase:
    """Few-shot episodes on a dataset: base classes give the centring mean, novel form tasks.

    ``lam`` was chosen on validation tasks drawn with another seed
    (``benchmarks/fewshot_accuracy.py``), never on the tasks the demo reports.
    """

    title: str
    dataset: str
    base_classes: tuple
    n_shots: tuple
    n_tasks: int
    lam: float


FEWSHOT_CASES = [
    FewShotCase(
        "transductive few-shot, 5-way, 15 queries per class", "digits", (0, 1, 2, 3, 4),
        (1, 5), 2000, 0.7,
    ),
]


def _fewshot_methods(base_mean, lam):
    return {
        "Laplacian k-means": TransductiveFewShot(lam=lam, base_mean=base_mean),
        "SimpleShot": TransductiveFewShot(prototypes="fixed", lam=0.0, shift_queries=False,
                                          base_mean=base_mean),
    }


def _run_fewshot(case, seed):
    X, y = load_dataset(case.dataset)
    base = np.isin(y, case.base_classes)
    rows = []
    for n_shot in case.n_shots:
        tasks = fewshot_tasks(X[~base], y[~base], n_way=5, n_shot=n_shot, n_query=15,
                              n_tasks=case.n_tasks, random_state=seed)
        for name, model in _fewshot_methods(X[base].mean(axis=0), case.lam).items():
            # untimed warm-up on a few tasks, so that seconds exclude Numba's compile
            model.predict_tasks(tasks.X_support[:2], tasks.y_support[:2], tasks.X_query[:2])
            start = time.perf_counter()
            predicted = model.predict_tasks(tasks.X_support, tasks.y_support, tasks.X_query)
            seconds = time.perf_counter() - start
            score = evaluate_fewshot(tasks.y_query, predicted)
            rows.append({"method": name, "n_shot": n_shot, "accuracy": score.accuracy,
                         "ci95": score.ci95, "seconds": seconds})
    return {"case": case.title, "kind": "fewshot", "dataset": case.dataset,
            "n_tasks": case.n_tasks, "lam": case.lam, "rows": rows}


@dataclass(frozen=True)
class GCDCase:
    """Generalized category discovery: half of each old class labeled, K unknown."""

    title: str
    dataset: str
    n_pca: int
    old_classes: tuple
    start_k: int


GCD_CASES = [
    GCDCase(
        "category discovery, K unknown (semi-supervised GMM, split/merge)", "digits", 32,
        (0, 1, 2, 3, 4), 20,
    ),
]


def _timed_fit(fit):
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a ConvergenceWarning must not end the demo
        result = fit()
    return result, time.perf_counter() - start


def _run_gcd(case, seed):
    X, y = load_dataset(case.dataset)
    X = PCA(case.n_pca, random_state=0).fit_transform(X)
    true_k = int(np.unique(y).shape[0])
    split = make_gcd_split(y, case.old_classes, labeled_fraction=0.5, random_state=seed)
    y_partial, free = split.y_partial, split.unlabeled_mask

    def gmm():
        model = SemiSupervisedGMM(n_components=case.start_k, random_state=seed)
        return model.fit(X, y_partial).n_components_, model.labels_

    def estimated_k():
        k = estimate_n_clusters(X, y_partial, random_state=seed)
        return k, SemiSupervisedKMeans(k, random_state=seed).fit(X, y_partial).labels_

    def given_k():
        return true_k, SemiSupervisedKMeans(true_k, random_state=seed).fit(X, y_partial).labels_

    rows = []
    for name, fit in [("SemiSupervisedGMM", gmm), ("K estimate + SS-KMeans", estimated_k),
                      ("SS-KMeans, true K", given_k)]:
        (k, labels), seconds = _timed_fit(fit)
        score = gcd_accuracy(y[free], labels[free], split.old_mask[free])
        rows.append({"method": name, "k": int(k), "all": score.all, "old": score.old,
                     "new": score.new, "seconds": seconds})
    return {"case": case.title, "kind": "gcd", "dataset": case.dataset, "n_pca": case.n_pca,
            "true_k": true_k, "start_k": case.start_k, "rows": rows}


@dataclass(frozen=True)
class HeadCase:
    """One head of another paper on bundled real data, beside its peer.

    ``run(seed)`` returns rows ``{"method": str, "seconds": float, <score>: float, ...}``;
    every row of a case has the same scores, printed in their order. Seconds exclude
    Numba's one-time compilation (the case warms up first).
    """

    title: str
    dataset: str
    run: Callable[[int], list]


# Each head adds its ``_<head>_rows(seed)`` function above this line and a HeadCase below.

HEAD_CASES: list[HeadCase] = [
    # one HeadCase per head, added above this line
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


def run_demo(seed=0, cases=None, fewshot_cases=None, gcd_cases=None, head_cases=None):
    """Run the demo cases; returns a list of ``{case, kind, dataset, ..., rows}`` dicts.

    ``kind`` is "clustering" (rows per estimator), "fewshot" (rows per method and shot),
    "gcd" (rows per method) or "head" (rows per method, with the case's own scores).
    """
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
            {"case": case.title, "kind": "clustering", "dataset": case.dataset,
             "n_samples": int(X.shape[0]), "n_clusters": case.n_clusters,
             "preprocessing": case.preprocessing, "rows": rows}
        )
    report.extend(_run_fewshot(case, seed)
                  for case in (FEWSHOT_CASES if fewshot_cases is None else fewshot_cases))
    report.extend(_run_gcd(case, seed) for case in (GCD_CASES if gcd_cases is None else gcd_cases))
    report.extend(_run_head(case, seed)
                  for case in (HEAD_CASES if head_cases is None else head_cases))
    return report


def _run_head(case, seed):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a ConvergenceWarning must not end the demo
        rows = case.run(seed)
    return {"case": case.title, "kind": "head", "dataset": case.dataset, "rows": rows}


def format_report(report):
    """The report as a plain-text table, one block per case."""
    header = (
        f"{'estimator':<22}{'ARI':>7}{'NMI':>7}{'acc':>7}"
        f"{'seconds':>9}{'largest':>9}{'smallest':>9}"
    )
    lines = []
    for block in report:
        if block["kind"] == "fewshot":
            lines.extend(_format_fewshot(block))
            continue
        if block["kind"] == "gcd":
            lines.extend(_format_gcd(block))
            continue
        if block["kind"] == "head":
            lines.extend(_format_head(block))
            continue
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


def _format_fewshot(block):
    lines = [
        f"{block['case']} — {block['dataset']} ({block['n_tasks']} tasks per shot, "
        f"lam={block['lam']}; accuracy over tasks with its 95% interval)",
        f"{'method':<22}{'shots':>6}{'accuracy %':>13}{'seconds':>9}",
    ]
    lines.extend(
        f"{r['method']:<22}{r['n_shot']:>6d}{100 * r['accuracy']:>7.2f} ± {100 * r['ci95']:.2f}"
        f"{r['seconds']:>9.2f}"
        for r in block["rows"]
    )
    lines.append("")
    return lines


def _format_gcd(block):
    lines = [
        f"{block['case']} — {block['dataset']}, PCA-{block['n_pca']} (true K "
        f"{block['true_k']}, the GMM starts from K={block['start_k']}; v2 accuracy on the "
        "unlabeled samples)",
        f"{'method':<24}{'K':>4}{'All':>7}{'Old':>7}{'New':>7}{'seconds':>9}",
    ]
    lines.extend(
        f"{r['method']:<24}{r['k']:>4d}{r['all']:>7.3f}{r['old']:>7.3f}{r['new']:>7.3f}"
        f"{r['seconds']:>9.2f}"
        for r in block["rows"]
    )
    lines.append("")
    return lines


def _format_head(block):
    scores = [key for key in block["rows"][0] if key not in ("method", "seconds")]
    lines = [
        f"{block['case']} — {block['dataset']}",
        f"{'method':<30}" + "".join(f"{name:>10}" for name in scores) + f"{'seconds':>9}",
    ]
    lines.extend(
        f"{r['method']:<30}" + "".join(f"{r[name]:>10.3f}" for name in scores)
        + f"{r['seconds']:>9.2f}"
        for r in block["rows"]
    )
    lines.append("")
    return lines
