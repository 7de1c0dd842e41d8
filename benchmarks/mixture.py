"""Benchmark clusterlab's Gaussian mixture (EM sweeps, whole fits) against scikit-learn's.

Run from the repository root::

    python benchmarks/mixture.py            # 50,000 x 64, 20 components (about a minute)
    python benchmarks/mixture.py --quick    # 3,000 x 16, 5 components, seconds
    python benchmarks/mixture.py --out results.json
    python benchmarks/mixture.py --fit-only  # whole fits with their starts only

Data
----
``n`` points in ``d`` dimensions from a mixture of ``K`` Gaussians
(``np.random.default_rng(0)``): means ``0.3 * N(0, I)`` (moderate separation: at the true
parameters about a third of the points have no responsibility above 0.99, none is
exactly zero), random full covariances ``Q diag(lambda) Q^T`` (``Q`` a random rotation,
``lambda`` uniform in [0.3, 2]), Dirichlet(5) weights. Everything runs in float64 in
this one process on the same data.

Cases
-----
``sweep full`` / ``sweep diag``
    Time per EM sweep (one E-step and one M-step).

    scikit-learn: ``GaussianMixture(n_components=K, covariance_type=..., max_iter=m,
    tol=0, init_params="random_from_data", random_state=0).fit(X)`` runs an
    initialisation, ``m`` EM iterations (E-step, M-step, lower bound) and a final
    E-step. With ``tol=0`` its stopping test ``|change| < tol`` never passes, so it runs
    exactly ``m`` iterations (checked on ``n_iter_``; the ConvergenceWarning it then
    issues is caught). The fits at ``m = 2`` and ``m = 12`` share the initialisation and
    the final E-step, so ``(t(12) - t(2)) / 10`` is the time of one iteration.

    clusterlab: :func:`clusterlab.solvers.gmm.e_step`,
    :func:`~clusterlab.solvers.gmm.component_stats` and
    :func:`~clusterlab.solvers.gmm.m_step` with an NIW prior (no moves, no labeled
    samples, as scikit-learn has none), ten sweeps in a loop from the parameters of the
    ``m = 2`` fit (``weights_``, ``means_``, ``covariances_``), so both time ten
    iterations from the same state; the loop's time over 10. What ``fit_mixture`` makes
    once per fit (the squared samples for diagonal covariances, a scatter buffer for full
    ones) is made once in the timed loop. ``monotone`` says whether the sweeps' objective
    (log-likelihood plus log prior, computed afterwards, untimed) never decreased.

    ``zero_resp`` is the fraction of exactly-zero responsibilities in the last E-step
    (scikit-learn: ``predict_proba`` of the ``m = 12`` fit); clusterlab skips such
    entries in its full scatters, scikit-learn does not.
``fit diag`` / ``start diag``
    A whole fit with its start, the issue's setting: 10 EM sweeps, 20 diagonal
    components, no labels. clusterlab: ``SemiSupervisedGMM(n_components=K,
    covariance_type="diag", split_merge=False, max_iter=10, tol=0, random_state=s)``;
    scikit-learn: ``GaussianMixture(n_components=K, covariance_type="diag", max_iter=10,
    tol=0, init_params="kmeans", random_state=s)``; each is warmed up, then timed best of
    3, for the seeds ``s`` in ``FIT_SEEDS``; ``ms`` is the mean over the seeds (the
    k-means starts take a seed-dependent number of Lloyd iterations). ``start diag``
    times the starts alone: :func:`clusterlab.solvers.seeded_kmeans.seeded_kmeans` (one
    run, ``np.random.default_rng(s)``) against ``KMeans(n_clusters=K, n_init=1,
    random_state=s)`` (the start of ``GaussianMixture``), with their Lloyd iterations and
    inertias in the note.
``moves full`` / ``moves diag``
    Split/merge on top of the sweeps (``MoveConfig()``): ``n_classes`` true components
    are labeled classes, half of their samples labeled; from a seeded start (class means,
    random unlabeled points) five clamped sweeps, then one ``split_step`` (sub-clusters
    seeded and refined, as at every split step) and one ``merge_step`` are timed, as is
    the alpha calibration on the labeled classes that a fit does once (20 tries per
    class, ``split_merge.CALIBRATION_RESTARTS``). ``ratio`` is the move's time
    over clusterlab's sweep of the same covariance type.

Reported per row: ``ms`` (per sweep or per move; ``time.perf_counter``, best of 3 runs or
one run when the first takes over 2 s; clusterlab gets an untimed warm-up call so Numba's
compilation is not timed), ``ratio`` (sweeps: the row's time over clusterlab's, > 1 means
clusterlab is faster; moves: the move's time as a fraction of a clusterlab sweep),
``zero_resp``, ``monotone``, ``n_iter`` (scikit-learn's iterations of the two fits) and a
note. The table is printed and written as JSON (rows and metadata) to ``--out``.
"""

from __future__ import annotations

import argparse
import platform
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import numba
import numpy as np
from clusterlab.solvers.gaussian import MixtureParams
from clusterlab.solvers.gmm import (
    component_stats,
    e_step,
    m_step,
    params_from_labels,
    squares_for,
)
from clusterlab.solvers.niw import NIWPrior
from clusterlab.solvers.seeded_kmeans import seeded_kmeans
from clusterlab.solvers.split_merge import (
    MoveConfig,
    SubClusters,
    merge_step,
    resolve_log_alpha,
    split_step,
)
from sklearn.cluster import KMeans
from sklearn.mixture import GaussianMixture
from threadpoolctl import threadpool_info

from clusterlab.mixture import SemiSupervisedGMM

# Run as a script, ``benchmarks`` is importable once the repository root is on the path.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks._report import (
    REPEAT,
    SINGLE_RUN_ABOVE_S,
    base_metadata,
    format_table,
    quietly,
    timed,
    write_json,
)

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "mixture.json"

COVARIANCE_TYPES = ("full", "diag")
MEAN_SCALE = 0.3
EIGEN_RANGE = (0.3, 2.0)
SHORT_FIT, LONG_FIT = 2, 12  # scikit-learn iterations of the two timed fits
N_SWEEPS = LONG_FIT - SHORT_FIT  # clusterlab sweeps in the timed loop
BURN_IN = 5  # clamped sweeps before the timed moves
FIT_SWEEPS = 10  # EM sweeps of the timed whole fits
FIT_SEEDS = (0, 1, 2)


@dataclass(frozen=True)
class Sizes:
    n: int
    d: int
    K: int
    n_classes: int


FULL = Sizes(n=50_000, d=64, K=20, n_classes=5)
QUICK = Sizes(n=3_000, d=16, K=5, n_classes=2)


# -- data and set-up ---------------------------------------------------------------------


def gaussian_mixture(sizes, seed=0):
    """Samples, their components, and the true (weights, means, covariances)."""
    rng = np.random.default_rng(seed)
    K, d = sizes.K, sizes.d
    means = MEAN_SCALE * rng.standard_normal((K, d))
    Q = np.linalg.qr(rng.standard_normal((K, d, d)))[0]
    eigen = rng.uniform(*EIGEN_RANGE, size=(K, d))
    covariances = (Q * eigen[:, None, :]) @ np.swapaxes(Q, 1, 2)
    weights = rng.dirichlet(np.full(K, 5.0))
    components = rng.choice(K, sizes.n, p=weights)
    chol = np.linalg.cholesky(covariances)
    noise = rng.standard_normal((sizes.n, d))
    X = means[components] + np.einsum("nij,nj->ni", chol[components], noise)
    return np.ascontiguousarray(X), components, (weights, means, covariances)


def make_prior(X, covariance_type):
    """NIW prior: data mean, weak mean precision, inverse-Wishart mean ~ 1% of the data
    variance (the settings of the paper's code, scaled to the data)."""
    d = X.shape[1]
    nu = d + 2.0 if covariance_type == "full" else 3.0
    return NIWPrior(
        mean=X.mean(axis=0),
        kappa=1e-2,
        nu=nu,
        psi=0.01 * X.var(axis=0).mean(),
        covariance_type=covariance_type,
    )


def nearest(X, centres):
    sq = (X**2).sum(axis=1)[:, None] - 2.0 * X @ centres.T + (centres**2).sum(axis=1)
    return np.argmin(sq, axis=1)


def zero_fraction(resp):
    return float(np.count_nonzero(resp == 0) / resp.size)


def true_zero_fraction(X, truth):
    """Exactly-zero responsibilities at the true parameters of the mixture."""
    weights, means, covariances = truth
    params = MixtureParams(weights, means, covariances, "full")
    resp, _ = e_step(X, params, np.full(X.shape[0], -1, dtype=np.int64))
    soft = float(np.mean(resp.max(axis=1) < 0.99))
    return zero_fraction(resp), soft


def row(case, method, ms, **kw):
    out = {
        "case": case,
        "method": method,
        "ms": ms,
        "ratio": None,
        "zero_resp": None,
        "monotone": None,
        "n_iter": None,
        "note": "",
    }
    out.update(kw)
    return out


# -- cases -------------------------------------------------------------------------------


def sweeps(X, params, prior, n_sweeps):
    """``n_sweeps`` EM sweeps from ``params``; the parameters at every E-step, the
    log-likelihoods, and the last responsibilities.

    The squared samples (diagonal covariances) and the scatter buffer (full ones) are made
    once per call, as :func:`~clusterlab.solvers.gmm.fit_mixture` makes them once per fit.
    """
    clamp = np.full(X.shape[0], -1, dtype=np.int64)
    buffer = np.empty_like(X) if prior.covariance_type == "full" else None
    squares = squares_for(X, prior.covariance_type)
    seen, logliks = [], []
    resp = None
    for _ in range(n_sweeps):
        resp, loglik = e_step(X, params, clamp, squares=squares)
        seen.append(params)
        logliks.append(loglik)
        stats = component_stats(X, resp, prior.covariance_type, buffer=buffer, squares=squares)
        params = m_step(stats, prior, X.shape[0])
    return seen, logliks, resp


def sklearn_fit(X, K, covariance_type, max_iter):
    def fit():
        model = GaussianMixture(
            n_components=K,
            covariance_type=covariance_type,
            max_iter=max_iter,
            tol=0,
            init_params="random_from_data",
            random_state=0,
        )
        return model.fit(X)

    return quietly(fit)


def sweep_case(X, sizes, covariance_type):
    case = f"sweep {covariance_type}"
    short_s, (short, _) = timed(sklearn_fit(X, sizes.K, covariance_type, SHORT_FIT))
    long_s, (long, messages) = timed(sklearn_fit(X, sizes.K, covariance_type, LONG_FIT))
    n_iter = [int(short.n_iter_), int(long.n_iter_)]
    if n_iter != [SHORT_FIT, LONG_FIT]:
        raise RuntimeError(
            f"GaussianMixture ran {n_iter} iterations, not "
            f"{[SHORT_FIT, LONG_FIT]}: its per-iteration time is wrong"
        )
    theirs = row(
        case,
        "scikit-learn GaussianMixture",
        1e3 * (long_s - short_s) / N_SWEEPS,
        zero_resp=zero_fraction(long.predict_proba(X)),
        n_iter=n_iter,
        note=f"(t({LONG_FIT}) - t({SHORT_FIT})) / {N_SWEEPS}; caught: "
        + ("; ".join(messages) or "none"),
    )

    # clusterlab's sweeps start where scikit-learn's timed iterations start
    prior = make_prior(X, covariance_type)
    start = MixtureParams(short.weights_, short.means_, short.covariances_, covariance_type)
    seen, logliks, resp = sweeps(X, start, prior, N_SWEEPS)  # also compiles, untimed
    objective = np.asarray(logliks) + [
        prior.log_density(p.means, p.covariances).sum() for p in seen
    ]
    # EM's bound holds from any start, scikit-learn's estimate included
    monotone = bool(np.all(np.diff(objective) >= -1e-9 * np.abs(objective[1:])))
    seconds, (_, _, resp) = timed(lambda: sweeps(X, start, prior, N_SWEEPS))
    ours = row(
        case,
        "clusterlab e_step + component_stats + m_step",
        1e3 * seconds / N_SWEEPS,
        zero_resp=zero_fraction(resp),
        monotone=monotone,
        n_iter=N_SWEEPS,
        note=f"{N_SWEEPS} sweeps from scikit-learn's {SHORT_FIT}-iteration fit, loop time / "
        f"{N_SWEEPS}",
    )
    theirs["ratio"] = theirs["ms"] / ours["ms"]
    ours["ratio"] = 1.0
    return [ours, theirs]


def fit_case(X, sizes):
    """Whole fits with their k-means starts (diagonal covariances, no labels)."""

    def ours(seed):
        return quietly(
            lambda: SemiSupervisedGMM(
                n_components=sizes.K,
                covariance_type="diag",
                split_merge=False,
                max_iter=FIT_SWEEPS,
                tol=0,
                random_state=seed,
            ).fit(X)
        )

    def theirs(seed):
        return quietly(
            lambda: GaussianMixture(
                n_components=sizes.K,
                covariance_type="diag",
                max_iter=FIT_SWEEPS,
                tol=0,
                init_params="kmeans",
                random_state=seed,
            ).fit(X)
        )

    clamp = np.full(X.shape[0], -1, dtype=np.int64)

    def our_start(seed):
        return lambda: seeded_kmeans(X, clamp, sizes.K, rng=np.random.default_rng(seed))

    def their_start(seed):
        return lambda: KMeans(n_clusters=sizes.K, n_init=1, random_state=seed).fit(X)

    times = {"ours": [], "theirs": [], "our_start": [], "their_start": []}
    notes = {"our_start": [], "their_start": []}
    sweeps = {"ours": [], "theirs": []}
    for seed in FIT_SEEDS:
        seconds, (model, _) = timed(ours(seed))
        times["ours"].append(seconds)
        sweeps["ours"].append(int(model.n_iter_))
        seconds, (model, _) = timed(theirs(seed))
        times["theirs"].append(seconds)
        sweeps["theirs"].append(int(model.n_iter_))
        seconds, run = timed(our_start(seed))
        times["our_start"].append(seconds)
        notes["our_start"].append(f"{run.n_iter} it, {run.inertia:.6g}")
        seconds, km = timed(their_start(seed))
        times["their_start"].append(seconds)
        notes["their_start"].append(f"{km.n_iter_} it, {km.inertia_:.6g}")
    ms = {key: 1e3 * float(np.mean(value)) for key, value in times.items()}
    per_seed = ", ".join(
        f"{t / o:.2f}" for t, o in zip(times["theirs"], times["ours"], strict=True)
    )
    seeds = f"seeds {list(FIT_SEEDS)}"
    rows = [
        row(
            "fit diag",
            "clusterlab SemiSupervisedGMM.fit",
            ms["ours"],
            ratio=1.0,
            n_iter=sweeps["ours"],
            note=f"mean of {seeds}, best of 3 each; {FIT_SWEEPS} sweeps, seeded k-means start",
        ),
        row(
            "fit diag",
            "scikit-learn GaussianMixture.fit",
            ms["theirs"],
            ratio=ms["theirs"] / ms["ours"],
            n_iter=sweeps["theirs"],
            note=f"init_params='kmeans'; per-seed ratios {per_seed}",
        ),
        row(
            "start diag",
            "clusterlab seeded_kmeans",
            ms["our_start"],
            ratio=1.0,
            note="; ".join(notes["our_start"]),
        ),
        row(
            "start diag",
            "scikit-learn KMeans(n_init=1)",
            ms["their_start"],
            ratio=ms["their_start"] / ms["our_start"],
            note="; ".join(notes["their_start"]),
        ),
    ]
    return rows


def labeled_start(X, components, sizes, prior, rng):
    """Classes ``0 .. n_classes - 1`` half labeled; seeded start and ``BURN_IN`` sweeps."""
    n, K, C = X.shape[0], sizes.K, sizes.n_classes
    sample_class = np.full(n, -1, dtype=np.int64)
    for c in range(C):
        members = np.flatnonzero(components == c)
        sample_class[rng.choice(members, members.shape[0] // 2, replace=False)] = c
    labeled = sample_class >= 0
    class_means = np.stack([X[sample_class == c].mean(axis=0) for c in range(C)])
    others = X[rng.choice(np.flatnonzero(~labeled), K - C, replace=False)]
    labels = nearest(X, np.vstack([class_means, others]))
    labels[labeled] = sample_class[labeled]
    params = params_from_labels(X, labels, K, prior)
    clamp = sample_class  # class c is held by component c
    buffer = np.empty_like(X) if prior.covariance_type == "full" else None
    for _ in range(BURN_IN):
        resp, _ = e_step(X, params, clamp)
        params = m_step(component_stats(X, resp, prior.covariance_type, buffer=buffer), prior, n)
    resp, _ = e_step(X, params, clamp)
    component_class = np.r_[np.arange(C), np.full(K - C, -1)].astype(np.int64)
    return params, np.argmax(resp, axis=1), clamp, component_class


def moves_case(X, components, sizes, covariance_type, sweep_ms):
    case = f"moves {covariance_type}"
    prior = make_prior(X, covariance_type)
    config = MoveConfig()
    params, labels, clamp, component_class = labeled_start(
        X, components, sizes, prior, np.random.default_rng(1)
    )
    empty = SubClusters.empty(params.n_components, X.shape[1])

    def calibrate():
        return resolve_log_alpha(X, clamp, prior, config, np.random.default_rng(2))

    def split():
        return split_step(
            X,
            labels,
            clamp,
            params,
            component_class,
            empty,
            prior,
            config,
            log_alpha,
            np.random.default_rng(3),
        )

    def merge():
        return merge_step(
            X,
            labels,
            clamp,
            params,
            component_class,
            empty,
            prior,
            config,
            log_alpha,
            np.random.default_rng(4),
        )

    # The benchmark's components overlap, so the labeled classes' bounds on log alpha
    # may contradict each other; the warning saying so goes into the note.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        calibrate_s, log_alpha = timed(calibrate, warmup=True)
    contradict = any("contradictory bounds" in str(w.message) for w in caught)
    split_s, split_out = timed(split, warmup=True)
    merge_s, merge_out = timed(merge, warmup=True)
    K = params.n_components
    return [
        row(
            case,
            "clusterlab resolve_log_alpha (once per fit)",
            1e3 * calibrate_s,
            ratio=1e3 * calibrate_s / sweep_ms,
            note=f"{sizes.n_classes} labeled classes, log alpha = {log_alpha:.4g}"
            + (" (their bounds contradict: overlapping classes)" if contradict else ""),
        ),
        row(
            case,
            "clusterlab split_step",
            1e3 * split_s,
            ratio=1e3 * split_s / sweep_ms,
            note=f"K {K} -> {split_out.params.n_components}, {split_out.n_splits} accepted",
        ),
        row(
            case,
            "clusterlab merge_step",
            1e3 * merge_s,
            ratio=1e3 * merge_s / sweep_ms,
            note=f"K {K} -> {merge_out.params.n_components}, {merge_out.n_merges} accepted",
        ),
    ]


# -- output ------------------------------------------------------------------------------

COLUMNS = [
    ("case", 12, "{}"),
    ("method", 45, "{}"),
    ("ms", 9, "{:.1f}"),
    ("ratio", 6, "{:.2f}"),
    ("zero_resp", 9, "{:.3f}"),
    ("monotone", 8, "{}"),
    ("note", 0, "{}"),
]


def metadata(quick, sizes, data_info):
    import scipy
    import sklearn

    return {
        **base_metadata(quick),
        "processor": platform.processor(),
        "scipy": scipy.__version__,
        "scikit-learn": sklearn.__version__,
        "numba_threading_layer": numba.threading_layer(),
        "blas": [
            {k: info.get(k) for k in ("internal_api", "prefix", "version", "num_threads")}
            for info in threadpool_info()
            if info.get("user_api") == "blas"
        ],
        "sizes": sizes.__dict__,
        "data": {
            "means": f"{MEAN_SCALE} * N(0, I)",
            "covariances": f"Q diag(U{EIGEN_RANGE}) Q^T, Q random rotation",
            "weights": "Dirichlet(5)",
            "seed": 0,
            **data_info,
        },
        "sklearn": {
            "init_params": "random_from_data",
            "tol": 0,
            "random_state": 0,
            "max_iter": [SHORT_FIT, LONG_FIT],
            "fit": f"init_params='kmeans', max_iter={FIT_SWEEPS}, tol=0",
        },
        "fit_seeds": list(FIT_SEEDS),
        "clusterlab": {
            "prior": "NIW: mean = data mean, kappa = 0.01, nu = d + 2 (full) "
            "or 3 (diag), psi = 0.01 * mean feature variance",
            "sweeps": N_SWEEPS,
            "moves": "MoveConfig()",
            "burn_in": BURN_IN,
        },
        "timing": f"best of {REPEAT} (one run when the first exceeds {SINGLE_RUN_ABOVE_S} s)",
    }


def run(sizes, fit_only=False):
    X, components, truth = gaussian_mixture(sizes)
    zero, soft = true_zero_fraction(X, truth)
    rows = []
    for covariance_type in () if fit_only else COVARIANCE_TYPES:
        print(
            f"running sweep_case {covariance_type}, n={sizes.n}, d={sizes.d} ...",
            file=sys.stderr,
            flush=True,
        )
        rows += sweep_case(X, sizes, covariance_type)
        print(f"running moves_case {covariance_type} ...", file=sys.stderr, flush=True)
        rows += moves_case(X, components, sizes, covariance_type, rows[-2]["ms"])
    print(f"running fit_case diag, n={sizes.n}, d={sizes.d} ...", file=sys.stderr, flush=True)
    rows += fit_case(X, sizes)
    return rows, {"zero_resp_at_truth": zero, "rows_max_resp_below_0.99_at_truth": soft}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke test)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON output path")
    parser.add_argument(
        "--fit-only",
        action="store_true",
        help="only the whole-fit and start cases (fit diag, start diag)",
    )
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    rows, data_info = run(sizes, fit_only=args.fit_only)
    meta = metadata(args.quick, sizes, data_info)
    print(format_table(rows, COLUMNS))
    print(
        f"\n{sizes.n} x {sizes.d}, {sizes.K} components; at the true parameters "
        f"{data_info['zero_resp_at_truth']:.3f} of the responsibilities are exactly zero and "
        f"{data_info['rows_max_resp_below_0.99_at_truth']:.2f} of the rows have none above "
        f"0.99.\nnumpy {meta['numpy']}, scikit-learn {meta['scikit-learn']}, numba "
        f"{meta['numba']} ({meta['numba_threads']} threads), {meta['cpu_count']} CPUs; "
        f"{meta['timing']}"
    )
    write_json(args.out, rows, meta)
    print(f"wrote {args.out}")
    return rows


if __name__ == "__main__":
    main()
