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
        "balanced k-means (Sinkhorn)",
        "digits",
        None,
        10,
        lambda k, seed: SinkhornKMeans(n_clusters=k, random_state=seed),
        _kmeans,
    ),
    DemoCase(
        "spherical balanced k-means, centred + L2-normalised",
        "digits",
        "l2",
        10,
        lambda k, seed: SinkhornKMeans(n_clusters=k, spherical=True, random_state=seed),
        _kmeans,
    ),
    DemoCase(
        "Laplacian k-means (10-NN graph, bound optimizer)",
        "digits",
        None,
        10,
        lambda k, seed: LaplacianKMeans(n_clusters=k, random_state=seed),
        _kmeans,
    ),
    DemoCase(
        "SDP k-means (Peng-Wei relaxation, low-rank solver)",
        "wine",
        "standardize",
        3,
        # no rank escalation: the certificate is loose on overlapping clusters like wine's
        lambda k, seed: SDPKMeans(n_clusters=k, gap_tol=np.inf, random_state=seed),
        _kmeans,
    ),
    DemoCase(
        "iLA-SDP (a covariance per cluster) vs EM",
        "wine",
        "standardize",
        3,
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
        "transductive few-shot, 5-way, 15 queries per class",
        "digits",
        (0, 1, 2, 3, 4),
        (1, 5),
        2000,
        0.7,
    ),
]


def _fewshot_methods(base_mean, lam):
    return {
        "Laplacian k-means": TransductiveFewShot(lam=lam, base_mean=base_mean),
        "SimpleShot": TransductiveFewShot(
            prototypes="fixed", lam=0.0, shift_queries=False, base_mean=base_mean
        ),
    }


def _run_fewshot(case, seed):
    X, y = load_dataset(case.dataset)
    base = np.isin(y, case.base_classes)
    rows = []
    for n_shot in case.n_shots:
        tasks = fewshot_tasks(
            X[~base],
            y[~base],
            n_way=5,
            n_shot=n_shot,
            n_query=15,
            n_tasks=case.n_tasks,
            random_state=seed,
        )
        for name, model in _fewshot_methods(X[base].mean(axis=0), case.lam).items():
            # untimed warm-up on a few tasks, so that seconds exclude Numba's compile
            model.predict_tasks(tasks.X_support[:2], tasks.y_support[:2], tasks.X_query[:2])
            start = time.perf_counter()
            predicted = model.predict_tasks(tasks.X_support, tasks.y_support, tasks.X_query)
            seconds = time.perf_counter() - start
            score = evaluate_fewshot(tasks.y_query, predicted)
            rows.append(
                {
                    "method": name,
                    "n_shot": n_shot,
                    "accuracy": score.accuracy,
                    "ci95": score.ci95,
                    "seconds": seconds,
                }
            )
    return {
        "case": case.title,
        "kind": "fewshot",
        "dataset": case.dataset,
        "n_tasks": case.n_tasks,
        "lam": case.lam,
        "rows": rows,
    }


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
        "category discovery, K unknown (semi-supervised GMM, split/merge)",
        "digits",
        32,
        (0, 1, 2, 3, 4),
        20,
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

    # untimed warm-up on a slice, so that seconds exclude Numba's one-time compile
    warm = slice(0, 300)
    _timed_fit(
        lambda: SemiSupervisedGMM(n_components=case.start_k, random_state=seed).fit(
            X[warm], y_partial[warm]
        )
    )
    _timed_fit(
        lambda: SemiSupervisedKMeans(true_k, random_state=seed).fit(X[warm], y_partial[warm])
    )
    rows = []
    for name, fit in [
        ("SemiSupervisedGMM", gmm),
        ("K estimate + SS-KMeans", estimated_k),
        ("SS-KMeans, true K", given_k),
    ]:
        (k, labels), seconds = _timed_fit(fit)
        score = gcd_accuracy(y[free], labels[free], split.old_mask[free])
        rows.append(
            {
                "method": name,
                "k": int(k),
                "all": score.all,
                "old": score.old,
                "new": score.new,
                "seconds": seconds,
            }
        )
    return {
        "case": case.title,
        "kind": "gcd",
        "dataset": case.dataset,
        "n_pca": case.n_pca,
        "true_k": true_k,
        "start_k": case.start_k,
        "rows": rows,
    }


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


def _ood_rows(seed):
    """Digits, classes 0-6 in and 7-9 out (70/30 split of the inliers, PCA-32 fitted on the
    inlier training part, L2 rows): the prototype detector beside Mahalanobis and 5-NN."""
    from sklearn.covariance import EmpiricalCovariance
    from sklearn.model_selection import train_test_split
    from sklearn.neighbors import NearestNeighbors

    from clusterlab.metrics import evaluate_ood
    from clusterlab.ood import PrototypeOODDetector

    X, y = load_dataset("digits")
    inlier = y <= 6
    X_train, X_test, y_train, _ = train_test_split(
        X[inlier], y[inlier], test_size=0.3, stratify=y[inlier], random_state=seed
    )
    pca = PCA(32, random_state=0).fit(X_train)
    F_train, F_in, F_out = (
        Z / np.linalg.norm(Z, axis=1, keepdims=True)
        for Z in (pca.transform(A) for A in (X_train, X_test, X[~inlier]))
    )

    def prototypes(F, labels):
        detector = PrototypeOODDetector(random_state=seed).fit(F, labels)
        return detector.score_samples(F_in), detector.score_samples(F_out)

    def mahalanobis(F, labels):
        means = np.stack([F[labels == c].mean(axis=0) for c in np.unique(labels)])
        index = np.searchsorted(np.unique(labels), labels)
        cov = EmpiricalCovariance(assume_centered=True).fit(F - means[index])
        return tuple(
            -np.min([cov.mahalanobis(A - m) for m in means], axis=0) for A in (F_in, F_out)
        )

    def knn(F, labels):
        nn = NearestNeighbors(n_neighbors=5).fit(F)
        return tuple(-nn.kneighbors(A)[0][:, -1] for A in (F_in, F_out))

    rows = []
    for name, method in [
        ("PrototypeOODDetector (P=10)", prototypes),
        ("Mahalanobis, shared cov.", mahalanobis),
        ("5-NN distance", knn),
    ]:
        method(F_train[:150], y_train[:150])  # untimed warm-up (Numba's one-time compile)
        start = time.perf_counter()
        s_in, s_out = method(F_train, y_train)
        seconds = time.perf_counter() - start
        score = evaluate_ood(s_in, s_out)
        rows.append(
            {
                "method": name,
                "AUROC": score.auroc,
                "AUPR": score.aupr,
                "FPR95": score.fpr95,
                "seconds": seconds,
            }
        )
    return rows


def _pamc_rows(seed):
    """Digits, PCA-10 embeddings and their 3-NN graph: PamC's linear-time meta-node loss
    (true, k-means and random labels) beside the dense O(N²) loss it replaces."""
    from clusterlab.contrastive import knn_graph, ncontrast_loss, pamc_loss

    X, y = load_dataset("digits")
    Z = PCA(10, random_state=0).fit_transform(X)
    A = knn_graph(Z, 3)
    kmeans = KMeans(10, n_init=10, random_state=seed).fit_predict(Z)
    random = np.random.default_rng(seed).integers(0, 10, y.shape[0])
    small = knn_graph(Z[:100], 3)
    pamc_loss(Z[:100], small, y[:100])  # untimed warm-ups (Numba's one-time compile)
    ncontrast_loss(Z[:100], small)
    rows = []
    for name, compute in [
        ("pamc_loss, true labels", lambda: pamc_loss(Z, A, y)),
        ("pamc_loss, k-means labels", lambda: pamc_loss(Z, A, kmeans)),
        ("pamc_loss, random labels", lambda: pamc_loss(Z, A, random)),
        ("ncontrast_loss, dense O(N^2)", lambda: ncontrast_loss(Z, A)),
    ]:
        start = time.perf_counter()
        loss = float(compute())
        rows.append({"method": name, "loss": loss, "seconds": time.perf_counter() - start})
    return rows


def _community_rows(seed):
    """Zachary's karate club (identity features, truth the two factions): communities found
    by group sparsity beside spectral clustering given the true K = 2; K, NMI and EDGE
    (EDGE rewards fewer, larger communities: one community for all scores 0.924 here)."""
    from sklearn.cluster import SpectralClustering

    from clusterlab.community import GroupSparseCommunity
    from clusterlab.datasets import load_karate_club
    from clusterlab.metrics import edge_f1_score

    A, y = load_karate_club()

    def ours():
        return GroupSparseCommunity(k_max=16, random_state=seed).fit_predict(
            np.eye(A.shape[0]), adjacency=A
        )

    def spectral():
        return SpectralClustering(2, affinity="precomputed", random_state=seed).fit_predict(A)

    rows = []
    for name, method in [("GroupSparseCommunity", ours), ("spectral, true K", spectral)]:
        method()  # untimed warm-up (Numba's one-time compile)
        start = time.perf_counter()
        labels = method()
        seconds = time.perf_counter() - start
        rows.append(
            {
                "method": name,
                "K": float(np.unique(labels).shape[0]),
                "NMI": float(normalized_mutual_info_score(y, labels)),
                "EDGE": edge_f1_score(A, y, labels),
                "seconds": seconds,
            }
        )
    return rows


def _mlcd_rows(seed):
    """Digits, centred and L2-normalised, K = 10: SphericalKMeans beside faiss' spherical
    k-means (scikit-learn's KMeans on the normalised rows where faiss is not installed)."""
    from clusterlab.spherical import SphericalKMeans

    X, y = load_dataset("digits")
    X = X - X.mean(axis=0)
    X = (X / np.linalg.norm(X, axis=1, keepdims=True)).astype(np.float32)

    def ours():
        model = SphericalKMeans(10, n_init=10, random_state=seed).fit(X)
        return model.labels_, model.cluster_centers_

    try:
        import faiss

        def peer():
            # one thread, as ours on a problem this small; OpenMP's spinning threads
            # make faiss many times slower on a busy machine
            threads = faiss.omp_get_max_threads()
            faiss.omp_set_num_threads(1)
            try:
                kmeans = faiss.Kmeans(
                    X.shape[1], 10, niter=100, nredo=10, spherical=True, seed=seed
                )
                kmeans.train(X)
                return kmeans.index.search(X, 1)[1][:, 0], kmeans.centroids
            finally:
                faiss.omp_set_num_threads(threads)

        peer_name = "faiss spherical (nredo=10)"
    except ImportError:

        def peer():
            model = KMeans(10, n_init=10, random_state=seed).fit(X)
            return model.labels_, model.cluster_centers_

        peer_name = "sklearn KMeans (L2 rows)"
    SphericalKMeans(10, random_state=seed).fit(X[:200])  # untimed warm-up (Numba's compile)
    rows = []
    for name, fit in [("SphericalKMeans (n_init=10)", ours), (peer_name, peer)]:
        start = time.perf_counter()
        labels, centers = fit()
        seconds = time.perf_counter() - start
        directions = centers / np.linalg.norm(centers, axis=1, keepdims=True)
        rows.append(
            {
                "method": name,
                "NMI": normalized_mutual_info_score(y, labels),
                "mean cos": float(np.mean(np.sum(X * directions[labels], axis=1))),
                "seconds": seconds,
            }
        )
    return rows


def _depict_rows(seed):
    """Digits, PCA-32, K = 10: DEPICT's head (exact targets, from a k-means start with the
    same seed) beside scikit-learn's KMeans (n_init=10); DEPICT's seconds include its
    k-means start."""
    from clusterlab.depict import DEPICTClustering

    X, y = load_dataset("digits")
    X = PCA(32, random_state=0).fit_transform(X)
    rows = []
    for name, model in [
        ("DEPICTClustering (exact)", DEPICTClustering(10, random_state=seed)),
        ("sklearn KMeans (n_init=10)", KMeans(10, n_init=10, random_state=seed)),
    ]:
        clone(model).fit(X[:300])  # untimed warm-up
        start = time.perf_counter()
        labels = model.fit_predict(X)
        seconds = time.perf_counter() - start
        rows.append(
            {
                "method": name,
                "ACC": clustering_accuracy(y, labels),
                "NMI": float(normalized_mutual_info_score(y, labels)),
                "seconds": seconds,
            }
        )
    return rows


def _crossmodal_rows(seed):
    """Digits halves (image columns 0-3 and 4-7, each view centred and L2-normalised),
    K = 10: MGCA's swapped prototypes on both views (balanced labels_) beside
    scikit-learn's KMeans (n_init=10) on each view and on the two views concatenated."""
    from clusterlab.crossmodal import CrossModalPrototypeClustering

    X, y = load_dataset("digits")
    n = y.size
    images = X.reshape(n, 8, 8)
    views = []
    for half in (images[:, :, :4], images[:, :, 4:]):
        view = half.reshape(n, -1) - half.reshape(n, -1).mean(axis=0)
        views.append(view / np.linalg.norm(view, axis=1, keepdims=True))
    left, right = views
    contenders = [
        (
            "CrossModalPrototypes (both)",
            CrossModalPrototypeClustering(10, n_init=10, random_state=seed),
            (left, right),
        ),
        ("KMeans, left half", KMeans(10, n_init=10, random_state=seed), (left,)),
        ("KMeans, right half", KMeans(10, n_init=10, random_state=seed), (right,)),
        (
            "KMeans, halves concatenated",
            KMeans(10, n_init=10, random_state=seed),
            (np.hstack(views),),
        ),
    ]
    rows = []
    for name, model, data in contenders:
        clone(model).fit(*(view[:300] for view in data))  # untimed warm-up
        start = time.perf_counter()
        labels = model.fit(*data).labels_
        seconds = time.perf_counter() - start
        rows.append(
            {
                "method": name,
                "ARI": float(adjusted_rand_score(y, labels)),
                "NMI": float(normalized_mutual_info_score(y, labels)),
                "seconds": seconds,
            }
        )
    return rows


# Each head adds its ``_<head>_rows(seed)`` function above this line and a HeadCase below.

HEAD_CASES: list[HeadCase] = [
    HeadCase("MaxQuery OOD detection: classes 0-6 in, 7-9 out", "digits", _ood_rows),
    HeadCase(
        "PamC meta-node loss vs dense contrastive loss (PCA-10, 3-NN graph)", "digits", _pamc_rows
    ),
    HeadCase(
        "communities, K found by group sparsity (DAG) vs spectral given K",
        "karate club",
        _community_rows,
    ),
    HeadCase("MLCD clustering step: spherical k-means (centred + L2 rows)", "digits", _mlcd_rows),
    HeadCase(
        "DEPICT head (soft targets, frequency prior) vs k-means, PCA-32", "digits", _depict_rows
    ),
    HeadCase(
        "MGCA swapped prototypes on two views (left/right image halves)", "digits", _crossmodal_rows
    ),
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
            {
                "case": case.title,
                "kind": "clustering",
                "dataset": case.dataset,
                "n_samples": int(X.shape[0]),
                "n_clusters": case.n_clusters,
                "preprocessing": case.preprocessing,
                "rows": rows,
            }
        )
    report.extend(
        _run_fewshot(case, seed)
        for case in (FEWSHOT_CASES if fewshot_cases is None else fewshot_cases)
    )
    report.extend(_run_gcd(case, seed) for case in (GCD_CASES if gcd_cases is None else gcd_cases))
    report.extend(
        _run_head(case, seed) for case in (HEAD_CASES if head_cases is None else head_cases)
    )
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
        f"{r['method']:<30}"
        + "".join(f"{r[name]:>10.3f}" for name in scores)
        + f"{r['seconds']:>9.2f}"
        for r in block["rows"]
    )
    lines.append("")
    return lines
