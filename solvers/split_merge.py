"""Split and merge moves that let a mixture find its number of components.

Both moves compare NIW marginal likelihoods (:meth:`.niw.NIWPrior.log_marginal`) of hard
member sets under a Dirichlet-process prior with concentration ``alpha`` (Chang & Fisher,
2013; Zhao, Wen & Han, 2023)::

    log H_split = log alpha + lgamma(N1) + log f(X1) + lgamma(N2) + log f(X2)
                  - lgamma(N) - log f(X)
    log H_merge = -log H_split of the merged pair

A move is accepted when ``log H > 0`` ("threshold") or with probability ``min(1, H)``
("mh"); ``random_accept`` accepts any proposal with that probability on top.

- Split proposals come from two-way sub-clusters of every component: a few two-Gaussian
  iterations on its members, from a fresh seeding at every split step (from the two
  merged parts right after a merge), so a rejected split is not re-proposed at every
  step. In a component that holds a labeled class, the labeled samples are pinned to the
  first sub-cluster, so the move can split off the unlabeled part (a new class) and
  nothing else.
- Merge proposals pair every component with its ``n_merge_neighbors`` nearest components
  (distance between means); pairs are taken best first and a component merges at most
  once per step. Two components holding different labeled classes never merge. The merged
  component is removed, its statistics are pooled (count-weighted mean), and its two parts
  become its sub-clusters.
- Components left with no member and no class are removed.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy.special import gammaln

from .gaussian import MixtureParams, log_gaussian
from .niw import SetStats

__all__ = [
    "ACCEPTANCE_RULES",
    "CALIBRATION_RESTARTS",
    "CALIBRATION_RULES",
    "MoveConfig",
    "MoveOutcome",
    "SubClusters",
    "calibrated_log_alpha",
    "labeled_gain_bounds",
    "merge_step",
    "resolve_log_alpha",
    "split_step",
]

ACCEPTANCE_RULES = ("threshold", "mh")
CALIBRATION_RULES = ("fewest", "midpoint")
#: Two-Gaussian clusterings tried per labeled class when the calibration looks for the
#: class's best split (:func:`labeled_gain_bounds`). One try (the default until
#: 2026-12-04) often misses it and leaves the split bound too high: 14-15 components for
#: 11 topics on ``wiki_vital_minilm`` against 11-13 with 20 (docs/user_guide/gcd.rst).
CALIBRATION_RESTARTS = 20


@dataclass(frozen=True)
class MoveConfig:
    """Settings of the split/merge moves.

    Attributes
    ----------
    alpha : float or "labeled"
        Dirichlet-process concentration; larger values favour more components.
        "labeled" reads it off the labeled classes (:func:`calibrated_log_alpha`).
    calibration : {"fewest", "midpoint"}
        With ``alpha="labeled"``, where in the range the labeled classes allow
        ``log alpha`` is put (:func:`calibrated_log_alpha`).
    calibration_restarts : int
        With ``alpha="labeled"``, two-Gaussian clusterings tried per labeled class to
        find its best split (``n_restarts`` of :func:`labeled_gain_bounds`).
    acceptance : {"threshold", "mh"}
    random_accept : float
        Probability of accepting a proposal regardless of its ratio.
    n_merge_neighbors : int
        Nearest components each component is proposed to merge with.
    burn_in : int
        EM sweeps before the first move; moves then alternate split, merge.
    subcluster_iter : int
        2-means iterations per split step.
    min_size : int
        Smallest sub-cluster that may be split off.
    patience : int
        Move steps in a row that change nothing before the sweeps may stop.
    """

    alpha: float | str = "labeled"
    calibration: str = "midpoint"
    calibration_restarts: int = CALIBRATION_RESTARTS
    acceptance: str = "threshold"
    random_accept: float = 0.0
    n_merge_neighbors: int = 3
    burn_in: int = 5
    subcluster_iter: int = 3
    min_size: int = 2
    patience: int = 4


@dataclass
class SubClusters:
    """The two-way sub-clusters of every component, which propose its split.

    A split step seeds them afresh (:func:`_seed`) unless they are valid: a merge sets
    the merged component's sub-clusters to its two former parts, valid for the next split
    step only, so that it can undo the merge.

    Attributes
    ----------
    centres : ndarray of shape (K, 2, d)
        Means of the two parts of a component just merged (side 0: the part holding a
        labeled class, if one does); read only where ``valid``.
    valid : ndarray of shape (K,), bool
        Whether the next split step starts from ``centres[k]`` (True only after a merge).
    """

    centres: np.ndarray
    valid: np.ndarray

    @classmethod
    def empty(cls, n_components, n_features):
        """Sub-clusters of ``n_components`` components, none valid."""
        return cls(np.zeros((n_components, 2, n_features)), np.zeros(n_components, dtype=bool))

    def take(self, index):
        """The sub-clusters of the components ``index`` (an integer array)."""
        return SubClusters(self.centres[index], self.valid[index])


@dataclass
class MoveOutcome:
    """The mixture after a split or merge step (:func:`split_step`, :func:`merge_step`).

    Attributes
    ----------
    params : MixtureParams
        Parameters after the step: split components replaced by their first part, with
        the second parts appended; merged pairs pooled into the first component, the
        second removed; empty components without a class removed (merge step).
    component_class : ndarray of shape (K,)
        Class index held by each component, -1 for none (new components hold none).
    subclusters : SubClusters
        The sub-clusters, updated and aligned with ``params``.
    n_splits, n_merges : int
        Accepted moves of this step.
    changed : bool
        Whether the components changed (a move accepted or an empty component removed).
    """

    params: MixtureParams
    component_class: np.ndarray
    subclusters: SubClusters
    n_splits: int = 0
    n_merges: int = 0
    changed: bool = False


def _accept(log_h, config, rng):
    if config.random_accept > 0 and rng.random() < config.random_accept:
        return True
    if config.acceptance == "threshold":
        return log_h > 0
    return np.log(rng.random()) < log_h


def resolve_log_alpha(X, clamp, prior, config, rng):
    """``log alpha``: the configured value, or read off the labeled classes.

    With ``alpha="labeled"`` this is :func:`calibrated_log_alpha` with the rule
    ``config.calibration``, or 0 (``alpha = 1``) where that returns None (no labeled
    class, or one that cannot be split).
    """
    if config.alpha != "labeled":
        return float(np.log(config.alpha))
    calibrated = calibrated_log_alpha(
        X,
        clamp,
        prior,
        rng,
        config.subcluster_iter,
        config.calibration_restarts,
        rule=config.calibration,
    )
    return 0.0 if calibrated is None else float(calibrated)


def _members(labels, n_components):
    """Indices of the samples of each component, as a list of arrays."""
    order = np.argsort(labels, kind="stable")
    bounds = np.searchsorted(labels[order], np.arange(n_components + 1))
    return [order[bounds[k] : bounds[k + 1]] for k in range(n_components)]


def _seed(points, pinned, rng):
    """First centre: the pinned samples' mean (or a random member); second by D^2 sampling."""
    if pinned.any():
        first = points[pinned].mean(axis=0)
        candidates = points[~pinned]
    else:
        first = points[rng.integers(points.shape[0])]
        candidates = points
    d2 = ((candidates - first) ** 2).sum(axis=1)
    total = d2.sum()
    pick = rng.choice(candidates.shape[0], p=d2 / total) if total > 0 else 0
    return np.stack([first, candidates[pick]])


def _two_gaussians(points, pinned, centres, prior, n_iter):
    """Hard two-component Gaussian clustering of ``points``; pinned samples stay in side 0.

    The sides start from the nearest of ``centres``, then alternate NIW-MAP fits of the
    two sides and reassignment by weighted Gaussian likelihood. Returns ``side`` (True:
    the second side).
    """
    d0 = ((points - centres[0]) ** 2).sum(axis=1)
    d1 = ((points - centres[1]) ** 2).sum(axis=1)
    side = (d1 < d0) & ~pinned
    for _ in range(n_iter):
        if side.all() or not side.any():
            break
        stats = _hard_stats(points, [np.flatnonzero(~side), np.flatnonzero(side)], prior)
        means, covariances = prior.map_estimate(stats)
        weights = stats.count / stats.count.sum()
        params = MixtureParams(weights, means, covariances, prior.covariance_type)
        log_joint = log_gaussian(points, params, np.log(weights))
        new_side = (log_joint[:, 1] > log_joint[:, 0]) & ~pinned
        if np.array_equal(new_side, side):
            break
        side = new_side
    return side


def _hard_stats(X, members, prior):
    parts = [
        SetStats.from_points(X[rows], np.ones(rows.shape[0]), prior.covariance_type)
        for rows in members
    ]
    return SetStats.concat(parts)


def _split_gain(X, rows, side, prior):
    """``log H_split - log alpha`` of splitting ``rows`` into ``~side`` and ``side``."""
    parts = _hard_stats(X, [rows[~side], rows[side]], prior)
    whole = parts.pooled(np.array([0]), np.array([1]))
    return (
        (gammaln(parts.count) + prior.log_marginal(parts)).sum()
        - gammaln(whole.count[0])
        - prior.log_marginal(whole)[0]
    ), parts


def _merge_gains(stats, evidence, pooled, first, second, prior):
    """``log H_merge + log alpha`` of the pairs (first[j], second[j])."""
    return (
        gammaln(pooled.count)
        + prior.log_marginal(pooled)
        - gammaln(stats.count[first])
        - gammaln(stats.count[second])
        - evidence[first]
        - evidence[second]
    )


def labeled_gain_bounds(X, clamp, prior, rng, n_iter, n_restarts=CALIBRATION_RESTARTS):
    """The two bounds on ``log alpha`` that the labeled classes set; either may be None.

    With ``G`` the gain (``log H`` without ``log alpha``) computed on labeled samples only:
    no labeled class splits when ``log alpha < upper = -max_c G_split(c)`` (over the
    classes with at least 4 labeled samples whose two-way split the sub-cluster procedure
    finds), and no two labeled classes merge when ``log alpha > lower = max G_merge(c,
    c')`` (over the pairs; at least two classes). Each class's split is the best of
    ``n_restarts`` two-Gaussian clusterings (:func:`_seed`, then ``n_iter`` iterations):
    the bound is meant for every split the fit could propose, and the fit draws a fresh
    proposal at every split step, so one clustering understates the best split's gain.

    Returns
    -------
    lower, upper : float or None
        None where no class pair (``lower``) or no splittable class (``upper``) exists.
    """
    classes = np.unique(clamp[clamp >= 0])
    members = [np.flatnonzero(clamp == k) for k in classes]
    split_gains = []
    for rows in members:
        if rows.shape[0] < 4:
            continue
        points = X[rows].astype(np.float64)
        pinned = np.zeros(rows.shape[0], dtype=bool)
        gains = []
        for _ in range(n_restarts):
            start = _seed(points, pinned, rng)
            side = _two_gaussians(points, pinned, start, prior, n_iter)
            if 0 < side.sum() < rows.shape[0]:
                gains.append(_split_gain(X, rows, side, prior)[0])
        if gains:
            split_gains.append(max(gains))
    upper = -float(max(split_gains)) if split_gains else None
    if len(members) < 2:
        return None, upper
    stats = _hard_stats(X, members, prior)
    first, second = np.triu_indices(len(members), 1)
    pooled = stats.pooled(first, second)
    evidence = prior.log_marginal(stats)
    lower = float(_merge_gains(stats, evidence, pooled, first, second, prior).max())
    return lower, upper


def calibrated_log_alpha(
    X, clamp, prior, rng, n_iter, n_restarts=CALIBRATION_RESTARTS, rule="midpoint"
):
    """A log concentration read off the labeled classes, never above 0.

    Known classes must neither split nor merge: :func:`labeled_gain_bounds` gives the
    ``lower`` (merge) and ``upper`` (split) bounds on ``log alpha``. Returns, capped at 0:

    - no labeled class: None (no bound; :func:`resolve_log_alpha` then uses 0);
    - one labeled class: ``min(upper, 0)``, or None if the class has fewer than 4
      labeled samples or no two-way split of them is found;
    - two or more, ``rule="midpoint"``: ``min((lower + upper) / 2, 0)``;
      ``rule="fewest"``: ``min(lower, upper, 0)``; ``min(lower, 0)`` for both rules if no
      class can be split.

    "fewest" takes the fewest components the labeled classes allow: every ``log alpha``
    between the bounds keeps them whole and apart, and the lower end merges most. The
    classes that the fit must discover are unlabeled and about ``1 / labeled_fraction``
    times as large as the labeled parts the bounds are computed on, and the gains grow
    with the size of a set, so a split of a new class that is as heterogeneous as a known
    one pays more than the labeled bound says: the lower end keeps it whole. Where the
    bounds contradict each other, "fewest" keeps the split bound (no known class would
    split; two known classes never merge in the fit anyway, the moves forbid it). It is
    not the default: it over-merged digits (9 components for 10) and BBC News GloVe
    embeddings (docs/user_guide/gcd.rst, "Embeddings exported by pretrained models").

    The cap keeps ``alpha <= 1``, where the partition prior alone never favours a split:
    its part of the split ratio, ``alpha Gamma(N1) Gamma(N2) / Gamma(N) <= alpha / (N -
    1)``, is then at most 1, so every accepted split is paid for by the marginal
    likelihood. A larger ``alpha`` makes small splits free (an even split of fewer than
    about ``log(alpha) / log(2)`` members), and the fit shreds the unlabeled samples into
    many small components; the uncapped calibration asks for that when the labeled
    classes overlap (their merge bound is above 0) or when only the split bound exists.

    If the bounds contradict each other (``lower > upper``: the features do not separate
    the labeled classes as the model sees them), no value keeps every class whole and
    apart; a UserWarning gives both numbers, and the rule's value is used.
    """
    lower, upper = labeled_gain_bounds(X, clamp, prior, rng, n_iter, n_restarts)
    if lower is None and upper is None:
        return None
    if lower is None or upper is None:
        return min(upper if lower is None else lower, 0.0)
    if rule == "fewest":
        value, how = min(lower, upper, 0.0), "the split bound, capped at 0"
    else:
        value, how = min(0.5 * (lower + upper), 0.0), "the midpoint, capped at 0"
    if lower > upper:
        warnings.warn(
            "The labeled classes give contradictory bounds on log(alpha): two of them "
            f"would merge unless log(alpha) > {lower:.6g}, and one would split unless "
            f"log(alpha) < {upper:.6g}. Using log(alpha) = {value:.6g} ({how}); the "
            "number of new components found is unreliable. Features "
            "that separate the known classes better, or a numeric alpha, avoid this.",
            UserWarning,
            stacklevel=2,
        )
    return value


def split_step(
    X, labels, clamp, params, component_class, subclusters, prior, config, log_alpha, rng
):
    """Propose splitting every component along its sub-clusters; returns a MoveOutcome."""
    K = params.n_components
    members = _members(labels, K)
    pinned_all = clamp >= 0
    restart = subclusters.valid  # after a merge: start from its two parts, this step only
    subclusters = SubClusters(subclusters.centres, np.zeros(K, dtype=bool))
    splits = []  # (component, rows kept, rows split off)
    for k in range(K):
        rows = members[k]
        pinned = pinned_all[rows]
        if (~pinned).sum() < config.min_size or rows.shape[0] < 2 * config.min_size:
            continue
        points = X[rows].astype(np.float64)
        start = subclusters.centres[k] if restart[k] else _seed(points, pinned, rng)
        side = _two_gaussians(points, pinned, start, prior, config.subcluster_iter)
        n_off = int(side.sum())
        if min(n_off, rows.shape[0] - n_off) < config.min_size:
            continue
        gain, parts = _split_gain(X, rows, side, prior)
        if _accept(log_alpha + gain, config, rng):
            splits.append((k, parts))
    if not splits:
        return MoveOutcome(params, component_class, subclusters)
    return _apply_splits(params, component_class, subclusters, splits, prior)


def _apply_splits(params, component_class, subclusters, splits, prior):
    weights, means, covs = params.weights.copy(), params.means.copy(), params.covariances.copy()
    new_w, new_m, new_c = [], [], []
    for k, parts in splits:
        part_means, part_covs = prior.map_estimate(parts)
        share = parts.count / parts.count.sum()
        weights[k], means[k], covs[k] = params.weights[k] * share[0], part_means[0], part_covs[0]
        new_w.append(params.weights[k] * share[1])
        new_m.append(part_means[1])
        new_c.append(part_covs[1])
    n_new = len(splits)
    out = MixtureParams(
        np.concatenate([weights, new_w]),
        np.concatenate([means, new_m]),
        np.concatenate([covs, new_c]),
        params.covariance_type,
    )
    grown = SubClusters.empty(n_new, means.shape[1])
    return MoveOutcome(
        out,
        np.concatenate([component_class, np.full(n_new, -1, dtype=np.int64)]),
        SubClusters(
            np.concatenate([subclusters.centres, grown.centres]),
            np.concatenate([subclusters.valid, grown.valid]),
        ),
        n_splits=n_new,
        changed=True,
    )


def merge_step(
    X, labels, clamp, params, component_class, subclusters, prior, config, log_alpha, rng
):
    """Prune empty components, then propose merging neighbouring pairs; a MoveOutcome."""
    K = params.n_components
    members = _members(labels, K)
    keep = np.array([m.shape[0] > 0 or component_class[k] >= 0 for k, m in enumerate(members)])
    pruned = not keep.all()
    if pruned:
        index = np.flatnonzero(keep)
        params = params.take(index)
        params.weights /= params.weights.sum()
        component_class, subclusters = component_class[index], subclusters.take(index)
        members = [members[k] for k in index]
        K = index.shape[0]
    if K < 2:
        return MoveOutcome(params, component_class, subclusters, changed=pruned)
    stats = _hard_stats(X, members, prior)
    first, second = _candidate_pairs(params.means, component_class, config.n_merge_neighbors)
    if first.shape[0] == 0:
        return MoveOutcome(params, component_class, subclusters, changed=pruned)
    pooled = stats.pooled(first, second)
    log_h = _merge_gains(stats, prior.log_marginal(stats), pooled, first, second, prior)
    log_h -= log_alpha
    used = np.zeros(K, dtype=bool)
    accepted = []
    for p in np.argsort(-log_h, kind="stable"):
        i, j = first[p], second[p]
        if used[i] or used[j] or not _accept(log_h[p], config, rng):
            continue
        used[i] = used[j] = True
        accepted.append(p)
    if not accepted:
        return MoveOutcome(params, component_class, subclusters, changed=pruned)
    accepted = np.asarray(accepted)
    merged_means, merged_covs = prior.map_estimate(pooled.take(accepted))
    weights, means, covs = params.weights.copy(), params.means.copy(), params.covariances.copy()
    component_class = component_class.copy()
    centres, valid = subclusters.centres.copy(), subclusters.valid.copy()
    for t, p in enumerate(accepted):
        i, j = first[p], second[p]
        # side 0 of a split is the labeled part: the part that holds a class goes first
        held_first = (i, j) if component_class[j] < 0 else (j, i)
        centres[i] = stats.mean[list(held_first)]
        valid[i] = True
        weights[i] += weights[j]
        means[i], covs[i] = merged_means[t], merged_covs[t]
        component_class[i] = max(component_class[i], component_class[j])
    index = np.setdiff1d(np.arange(K), second[accepted])
    return MoveOutcome(
        MixtureParams(weights[index], means[index], covs[index], params.covariance_type),
        component_class[index],
        SubClusters(centres[index], valid[index]),
        n_merges=len(accepted),
        changed=True,
    )


def _candidate_pairs(means, component_class, n_neighbors):
    """Pairs (i < j) where j is among i's nearest components or i among j's."""
    K = means.shape[0]
    sq = (means**2).sum(axis=1)
    dist = sq[:, None] + sq[None, :] - 2.0 * means @ means.T
    np.fill_diagonal(dist, np.inf)
    n_neighbors = min(n_neighbors, K - 1)
    nearest = np.argsort(dist, axis=1, kind="stable")[:, :n_neighbors]
    rows = np.repeat(np.arange(K), n_neighbors)
    cols = nearest.ravel()
    pairs = np.unique(np.stack([np.minimum(rows, cols), np.maximum(rows, cols)], axis=1), axis=0)
    both_labeled = (component_class[pairs[:, 0]] >= 0) & (component_class[pairs[:, 1]] >= 0)
    pairs = pairs[~both_labeled]
    return pairs[:, 0], pairs[:, 1]
