"""Benchmark the SDP solvers: cvxpy + SCS against the nonnegative low-rank solver.

Run from the repository root::

    python benchmarks/sdp.py            # the issue's sizes (about 5 minutes on 2 cores)
    python benchmarks/sdp.py --quick    # tiny sizes, seconds
    python benchmarks/sdp.py --out results.json
    python benchmarks/sdp.py --ila-warm # only the iLA-SDP warm-start case (wine, k2)
    python benchmarks/sdp.py --certificate  # only the certified-gap cases (~20 minutes)

Cases
-----
``peng-wei n=...``
    The Peng–Wei SDP on ``make_isotropic_mixture(n, p=10, K=3)`` at 1.2 times the
    exact-recovery threshold (``random_state=0``), solved by
    ``SDPKMeans(solver="cvxpy")`` (SCS at its default here, ``eps = 1e-5``) and by
    ``SDPKMeans(solver="lowrank")`` in this one process on the same data. Reported: the
    time (best of 3 runs, one run when the first takes over 2 s), the SDP objective (the
    K-means cost of ``Z``), the relative objective gap of the low-rank solution,
    ``||Z 1 - 1||``, whether the two label vectors are the same partition (adjusted Rand
    index 1), and the ratio cvxpy time / low-rank time.
``lowrank n=20000``
    The low-rank solver alone on ``make_isotropic_mixture(20000, 50, 5)`` at 1.2 times
    the threshold: time and mis-clustering error (0 is exact recovery); then the same
    with ``sketch_size=2000`` (sketch-and-lift: the SDP on 2,000 random samples, the
    rest assigned to the nearest centre).
``ila-sdp n=10000``
    ``ILASDP(solver="lowrank")`` (Peng–Wei start on the low-rank solver) on the K = 2
    heterogeneous setting of ``make_heterogeneous_mixture("k2", 10000)``; scikit-learn's
    ``GaussianMixture(2, covariance_type="full")`` on the same data for reference.

``ila-sdp wine seed=s`` and ``ila-sdp k2 n=...`` (``--ila-warm``, also part of the full run)
    iLA-SDP's LA-SDP steps on the low-rank solver from the same starting partition
    (``ILASDP``'s Peng–Wei start for that seed) in the estimator's frame, three ways:
    warm (each step from the previous factors and multipliers) with the inner
    ``ftol = 1e-10`` (the default), the same with ``ftol = 0`` (the projected-gradient test
    alone: the behaviour before), and cold (each step restarted from the partition of
    the memberships, fresh multipliers). Reported: time (best of 3 after a warm-up, one
    run above 2 s), final ``F`` (frame units), accepted steps, whether the labels equal
    the default's (ARI 1). Standardised wine (178 samples, K = 3) is the demo's case;
    ``make_heterogeneous_mixture("k2")`` takes several steps.

``certificate <case>`` (``--certificate``, not part of the full run: the reference takes
most of 20 minutes)
    The certified gap of ``SDPKMeans(3, solver="lowrank", random_state=0)`` without
    escalation (``gap_tol=np.inf``), with the defaults, and with ``max_iter=60000``, on
    the issue's 120-point case (``make_isotropic_mixture(120, 2, 3, 1.4,
    relative=False, random_state=0)``) and on standardised wine; the reference is the SDP
    optimum by cvxpy + SCS at ``eps = 1e-7`` (timed once, not warmed up: it is a value,
    not a speed contender). ``--quick``: a 36-point case with Clarabel's optimum, without
    the ``max_iter=60000`` row.

The table is printed and written as JSON (rows and metadata) to ``--out``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from clusterlab.solvers.sdp.likelihood import ila_sdp
from sklearn.metrics import adjusted_rand_score
from sklearn.mixture import GaussianMixture

from clusterlab._scaling import normalise_scale
from clusterlab.datasets import load_dataset, make_heterogeneous_mixture, make_isotropic_mixture
from clusterlab.metrics import misclustering_error
from clusterlab.sdp import ILASDP, SDPKMeans

# Run as a script, ``benchmarks`` is importable once the repository root is on the path.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks._report import base_metadata, format_table, quietly, timed, write_json

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "sdp.json"
SEPARATION = 1.2  # times the exact-recovery threshold
FULL = {
    "peng_wei": (100, 200, 300),
    "lowrank": (20_000, 50, 5, 2_000),
    "ila": 10_000,
    "ila_warm": ((0, 1, 2, 3, 4), 400),
}
QUICK = {"peng_wei": (40, 60), "lowrank": (2_000, 10, 3, 500), "ila": 500, "ila_warm": ((0,), 100)}

COLUMNS = [
    ("case", 26, "{}"),
    ("method", 24, "{}"),
    ("seconds", 9, "{:.3f}"),
    ("objective", 12, "{:.6g}"),
    ("gap", 9, "{:.1e}"),
    ("infeasibility", 13, "{:.1e}"),
    ("error", 7, "{:.4f}"),
    ("same_labels", 11, "{}"),
    ("bound", 12, "{:.6g}"),
    ("ratio", 0, "{:.1f}"),
]


def _row(case, method, seconds, **values):
    row = dict.fromkeys(name for name, _, _ in COLUMNS)
    row.update(case=case, method=method, seconds=seconds, **values)
    return row


def peng_wei_rows(n):
    X, y = make_isotropic_mixture(n, 10, 3, SEPARATION, random_state=0)
    case = f"peng-wei n={n}"
    t_exact, (exact, notes) = timed(quietly(lambda: SDPKMeans(3, solver="cvxpy").fit(X)))
    t_fast, (fast, _) = timed(
        quietly(lambda: SDPKMeans(3, solver="lowrank", random_state=0).fit(X))
    )
    same = bool(adjusted_rand_score(exact.labels_, fast.labels_) == 1.0)
    return [
        _row(
            case,
            "cvxpy + SCS",
            t_exact,
            objective=exact.objective_,
            infeasibility=exact.primal_infeasibility_,
            error=misclustering_error(y, exact.labels_),
            note="; ".join(notes),
        ),
        _row(
            case,
            "clusterlab lowrank",
            t_fast,
            objective=fast.objective_,
            gap=(fast.objective_ - exact.objective_) / exact.objective_,
            infeasibility=fast.primal_infeasibility_,
            error=misclustering_error(y, fast.labels_),
            same_labels=same,
            ratio=t_exact / t_fast,
        ),
    ]


def lowrank_rows(n, p, K, sketch_size):
    X, y = make_isotropic_mixture(n, p, K, SEPARATION, random_state=0)
    rows = []
    for method, sketch in (
        ("clusterlab lowrank", None),
        (f"lowrank, sketch {sketch_size}", sketch_size),
    ):
        seconds, model = timed(
            lambda sketch=sketch: SDPKMeans(
                K, solver="lowrank", sketch_size=sketch, random_state=0
            ).fit(X)
        )
        rows.append(
            _row(
                f"lowrank n={n} p={p} K={K}",
                method,
                seconds,
                objective=model.objective_,
                infeasibility=model.primal_infeasibility_,
                error=misclustering_error(y, model.labels_),
                note=f"{model.n_iter_} iterations, converged={model.converged_}",
            )
        )
    return rows


def ila_rows(n):
    X, y = make_heterogeneous_mixture("k2", n, random_state=0)
    case = f"ila-sdp n={n}"
    seconds, model = timed(lambda: ILASDP(2, solver="lowrank", random_state=0).fit(X))
    t_em, em = timed(lambda: GaussianMixture(2, covariance_type="full", random_state=0).fit(X))
    return [
        _row(
            case,
            "clusterlab ILASDP",
            seconds,
            objective=model.objective_history_[-1],
            error=misclustering_error(y, model.labels_),
            note=f"{model.n_iter_} steps",
        ),
        _row(case, "sklearn GaussianMixture", t_em, error=misclustering_error(y, em.predict(X))),
    ]


def _ila_variants(case, X, n_clusters, seed):
    """The three ways of running the LA-SDP steps (see the module text) on ``X``."""
    X64, _ = normalise_scale(np.asarray(X, dtype=np.float64))
    fit_start = quietly(lambda: ILASDP(n_clusters, random_state=seed, max_iter=1).fit(X))
    start = fit_start()[0].init_labels_  # max_iter=1 warns: only the start is wanted
    ridge = 0.1 * float(X64.var(axis=0).mean())  # ILASDP's default shrinkage

    def run(warm, ftol):
        return ila_sdp(
            X64,
            start,
            n_clusters,
            ridge=ridge,
            solver="lowrank",
            rng=np.random.default_rng(seed),
            warm_start=warm,
            lowrank_options={"ftol": ftol},
        )

    rows, reference = [], None
    for method, warm, ftol in [
        ("warm, ftol=1e-10 (default)", True, 1e-10),
        ("warm, ftol=0 (before)", True, 0.0),
        ("cold, ftol=1e-10", False, 1e-10),
    ]:
        seconds, result = timed(lambda warm=warm, ftol=ftol: run(warm, ftol))
        reference = result.labels if reference is None else reference
        rows.append(
            _row(
                case,
                method,
                seconds,
                objective=result.objective_history[-1],
                same_labels=bool(adjusted_rand_score(reference, result.labels) == 1),
                note=f"{result.n_iter} steps",
            )
        )
    return rows


def ila_warm_rows(seeds, n_k2):
    X, _ = load_dataset("wine", preprocessing="standardize")
    rows = []
    for seed in seeds:
        rows += _ila_variants(f"ila-sdp wine seed={seed}", X, 3, seed)
    X, _ = make_heterogeneous_mixture("k2", n_k2, random_state=0)
    rows += _ila_variants(f"ila-sdp k2 n={n_k2}", X, 2, 0)
    return rows


def _sdp_optimum(X, K, **solve):
    """The Peng–Wei SDP optimum (K-means cost units) by a direct cvxpy model."""
    import cvxpy as cp

    Xc = X - X.mean(axis=0)
    n = X.shape[0]
    Z = cp.Variable((n, n), PSD=True)
    objective = cp.Maximize(cp.trace(Xc @ Xc.T @ Z))
    constraints = [Z >= 0, cp.sum(Z, axis=1) == 1, cp.trace(Z) == K]
    problem = cp.Problem(objective, constraints)
    problem.solve(**solve)
    return float(np.sum(Xc**2) - problem.value), problem.status


def certificate_rows(quick):
    if quick:
        X = make_isotropic_mixture(36, 3, 3, 0.15, random_state=4)[0]
        cases = [("certificate n=36", X, {"solver": "CLARABEL"}, "Clarabel")]
    else:
        issue = make_isotropic_mixture(120, 2, 3, 1.4, relative=False, random_state=0)[0]
        wine, _ = load_dataset("wine", preprocessing="standardize")
        scs = {"solver": "SCS", "eps_abs": 1e-7, "eps_rel": 1e-7, "max_iters": 10**6}
        cases = [
            ("certificate n=120", issue, scs, "SCS 1e-7"),
            ("certificate wine", wine, scs, "SCS 1e-7"),
        ]
    rows = []
    for case, X, solve, name in cases:
        seconds, (optimum, status) = timed(
            lambda X=X, solve=solve: _sdp_optimum(X, 3, **solve), warmup=False
        )
        rows.append(_row(case, f"cvxpy + {name}", seconds, objective=optimum, note=status))
        for method, options in [
            ("lowrank gap_tol=inf", {"gap_tol": np.inf}),
            ("lowrank (defaults)", {}),
            ("lowrank gap_tol=1e-5", {"gap_tol": 1e-5}),
            ("lowrank max_iter=60000", {"max_iter": 60000}),
        ][: 2 if quick else 4]:
            seconds, (model, notes) = timed(
                quietly(
                    lambda X=X, options=options: SDPKMeans(
                        3, solver="lowrank", random_state=0, **options
                    ).fit(X)
                )
            )
            rows.append(
                _row(
                    case,
                    method,
                    seconds,
                    objective=model.objective_,
                    bound=model.lower_bound_,
                    gap=(model.objective_ - model.lower_bound_) / model.objective_,
                    note=f"rank {model.rank_}, above the optimum by "
                    f"{model.objective_ - optimum:.2e}, bound below it by "
                    f"{optimum - model.lower_bound_:.2e}" + ("; warned" if notes else ""),
                )
            )
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (seconds)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON output path")
    parser.add_argument("--ila-warm", action="store_true", help="only the iLA-SDP warm-start cases")
    parser.add_argument("--certificate", action="store_true", help="only the certified-gap cases")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    if args.certificate:
        rows = certificate_rows(args.quick)
        print(format_table(rows, COLUMNS))
        write_json(args.out, rows, base_metadata(args.quick))
        print(f"written: {args.out}")
        return
    if args.ila_warm:
        rows = ila_warm_rows(*sizes["ila_warm"])
        print(format_table(rows, COLUMNS))
        write_json(args.out, rows, base_metadata(args.quick))
        print(f"written: {args.out}")
        return
    rows = []
    for n in sizes["peng_wei"]:
        rows += peng_wei_rows(n)
        print(f"done: peng-wei n={n}", flush=True)
    rows += lowrank_rows(*sizes["lowrank"])
    print("done: lowrank", flush=True)
    rows += ila_rows(sizes["ila"])
    rows += ila_warm_rows(*sizes["ila_warm"])
    print(format_table(rows, COLUMNS))
    write_json(args.out, rows, base_metadata(args.quick))
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
