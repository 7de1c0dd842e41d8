"""Benchmark clusterlab's Sinkhorn solvers against POT and a NumPy transcription of SwAV.

Run from the repository root::

    python benchmarks/sinkhorn.py            # full sizes (several minutes)
    python benchmarks/sinkhorn.py --quick    # tiny sizes, every code path, seconds
    python benchmarks/sinkhorn.py --swav-only  # SwAV case, largest n, no sinkhorn_log
    python benchmarks/sinkhorn.py --out results.json

Every method runs in this one process on the same data: float32 cosine scores
``S = X C^T`` of L2-normalised clustered features ``X`` (Gaussian centres plus noise)
against L2-normalised random prototypes ``C``. Methods in float64 get the exact upcast.
POT takes a cost, so it is given ``M = -S`` with ``reg = eps``: the same plan.

Cases
-----
``swav``
    SwAV's fixed 3 iterations at eps = 0.05: POT ``ot.sinkhorn`` and
    ``ot.sinkhorn_log`` (``numItermax=3``, POT's default ``stopThr``; the cost
    ``M = -S`` formed once, outside the timing), the NumPy transcription of SwAV's
    ``distributed_sinkhorn`` (:func:`benchmarks.peers.swav_sinkhorn_numpy`) and
    ``clusterlab.sinkhorn_codes``. At the large sizes also: clusterlab's solver with the
    range check fused into its first pass (:func:`clusterlab.solvers.sinkhorn.sinkhorn_codes`
    with ``check_range``; the public function reads the scores once more for their
    minimum and maximum), and memory-traffic floors (rows ``floor: ...``, no arithmetic
    beyond the sums, so no method can beat them on this machine): a NumPy copy of the
    scores (one thread), the same copy by a threaded kernel (one read, one write of a fresh
    n x K array), one threaded read, one threaded read and write in place, and the four
    passes SwAV's three iterations need at the least (each iteration's column sums depend
    on every row of the previous one: write ``E`` into a fresh array while reading the
    scores, read it twice, read it and write the codes over it), done by the same
    streaming kernels with the exponential left out. Every method's codes (``n * plan``)
    are compared with the NumPy transcription's (``note``: max abs difference). At large
    ``n`` that difference is the transcription's own float32 rounding: its sums over the
    samples accumulate in float32 (at n = 65536 it is ~2e-5 off float64 arithmetic,
    clusterlab ~3e-8).
``converged``
    eps = 0.05 to a relative column-marginal error of 1e-6: POT ``ot.sinkhorn`` in
    float64 and float32 and ``ot.sinkhorn_log`` in float64, ``clusterlab.sinkhorn`` in
    float32 (``tol=1e-6``; with its default epsilon scaling and without,
    ``eps_scaling=False``). POT stops when the L2
    norm of the absolute column error is below ``stopThr``; ``stopThr = tol * min(b)``
    implies a relative L-inf error below ``tol`` (a sufficient, stricter test). POT checks
    every 10 iterations and is capped at ``numItermax``: in float32 its error stalls
    before ``stopThr`` and it runs to the cap.
``small_eps``
    eps = 1e-3 on a 512 x 300 problem (16-d features, so the scores spread over most
    of [-1, 1] and ``exp(S / eps)`` overflows float64): POT ``ot.sinkhorn_log`` and
    ``ot.sinkhorn`` in float64, ``clusterlab.sinkhorn`` in float32 and float64
    (``tol=1e-6``, ``max_iter=10000``).

For every method one iteration is one column (prototype) scaling followed by one row
(sample) scaling, from uniform scalings; POT's count is read from its log.
``clusterlab.sinkhorn`` counts its epsilon-scaling warm-up stages too.

Reported per row: ``seconds`` (``time.perf_counter``; best of 3 runs, or one run when the
first takes over 2 s; clusterlab gets an untimed warm-up call for Numba's JIT),
``ratio`` (the row's seconds over the clusterlab row's of the same case, same dtype if
there is one, else the float32 one: > 1 means clusterlab is faster; n/a for non-finite
output), ``marginal_error``
(``max_k |colsum_k / b_k - 1|`` of the returned plan, one shared function for all),
``n_iter``, whether the output is finite, and a note (warnings caught, differences).
The table is printed and written as JSON (rows and metadata) to ``--out``.
"""

from __future__ import annotations

import argparse
import math
import platform
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from clusterlab.solvers import sinkhorn as solver
from clusterlab.solvers._backend import n_threads
from clusterlab.solvers._scaling_kernels import row_scaling_pass
from numba import njit, prange

import clusterlab

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
from benchmarks.peers import pot_plan, swav_sinkhorn_numpy

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "sinkhorn.json"
EPS = 0.05
SMALL_EPS = 1e-3
TOL = 1e-6
SWAV_ITER = 3
POT_CONVERGED_MAX_ITER = 200  # POT float32 stalls above tol: bounds its run time
SMALL_EPS_MAX_ITER = 10_000
FLOOR_MIN_SIZE = 10_000_000  # the traffic floors are shown for the large SwAV cases only


@dataclass(frozen=True)
class Sizes:
    """Problem sizes of one benchmark run."""

    ns: tuple[int, ...]  # batch sizes of the swav and converged cases
    K: int  # prototypes
    dim: int
    n_centres: int
    small: tuple[int, int]  # (n, K) of the small-eps case
    small_dim: int
    small_centres: int


FULL = Sizes(
    ns=(4096, 65536),
    K=3000,
    dim=64,
    n_centres=100,
    small=(512, 300),
    small_dim=16,
    small_centres=20,
)
QUICK = Sizes(ns=(256,), K=100, dim=64, n_centres=10, small=(64, 50), small_dim=16, small_centres=5)


# -- data and measurements --------------------------------------------------------------


def _unit_rows(Z):
    return Z / np.linalg.norm(Z, axis=1, keepdims=True)


def clustered_scores(n, K, dim, n_centres, seed=0, noise=0.5):
    """float32 cosines of ``n`` clustered unit features against ``K`` unit prototypes."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_centres, dim))
    X = centres[rng.integers(0, n_centres, n)] + noise * rng.standard_normal((n, dim))
    C = rng.standard_normal((K, dim))
    X, C = _unit_rows(X).astype(np.float32), _unit_rows(C).astype(np.float32)
    return np.ascontiguousarray(X @ C.T)


def relative_marginal_error(plan, target):
    """``max_k |sum_i plan_ik / target_k - 1|``, summed in float64 (inf if non-finite)."""
    col = plan.sum(axis=0, dtype=np.float64)
    with np.errstate(all="ignore"):
        error = float(np.max(np.abs(col / target - 1.0)))
    return error if math.isfinite(error) else math.inf


def pot_runner(S, eps, method, **kw):
    """A call of :func:`pot_plan` returning ``((plan, n_iter), messages)``."""

    def run():
        plan, n_iter, messages = pot_plan(S, eps, method=method, **kw)
        return (plan, n_iter), messages

    return run


def _short(message):
    """A warning's first sentence."""
    return message.removeprefix("Warning: ").split(". ")[0].rstrip(".")[:70]


def measure(case, method, S, fn, mass, *, warmup=True, reference=None, cap=None):
    """Time ``fn`` after one untimed call (returning ``((plan, n_iter), messages)``); the
    table row and the plan.

    ``mass`` is each column's target sum; ``reference`` is compared with the output
    scaled to codes (``n * plan``); ``cap`` notes a run that stopped at an iteration cap.
    """
    seconds, ((plan, n_iter), messages) = timed(fn, warmup)
    n, K = S.shape
    finite = bool(np.all(np.isfinite(plan)))
    error = relative_marginal_error(plan, np.full(K, mass))
    notes = [_short(m) for m in messages]
    if not finite:
        notes.insert(0, "non-finite output")
    if cap is not None and n_iter >= cap:
        notes.append(f"ran to the iteration cap ({cap})")
    if reference is not None:
        codes = plan * np.asarray(n / (mass * K), plan.dtype)
        notes.append(f"max |codes - NumPy SwAV| = {float(np.max(np.abs(codes - reference))):.2g}")
    row = {
        "case": case,
        "method": method,
        "dtype": str(plan.dtype),
        "n": n,
        "K": K,
        "seconds": seconds,
        "ratio": None,
        "marginal_error": error,
        "n_iter": int(n_iter),
        "finite": finite,
        "note": "; ".join(notes),
    }
    return row, plan


# -- cases -------------------------------------------------------------------------------


@njit(parallel=True, cache=True, fastmath={"reassoc", "contract", "nsz", "arcp"})
def _copy_column_sums(S, E, col_partial, copy, sums):
    """``E = S`` if ``copy``, and if ``sums`` the per-block column sums of ``S`` (float64)."""
    n, K = S.shape
    n_chunks = col_partial.shape[0]
    for c in prange(n_chunks):
        acc = col_partial[c]
        acc[:] = 0.0
        for i in range(c * n // n_chunks, (c + 1) * n // n_chunks):
            if copy:
                for k in range(K):
                    E[i, k] = S[i, k]
            if sums:
                for k in range(K):
                    acc[k] += S[i, k]


def floor_rows(case, S):
    """The memory-traffic floors of the SwAV case (module docstring)."""
    n, K = S.shape
    n_chunks = max(1, min(n, 4 * n_threads()))
    col_partial = np.empty((n_chunks, K))
    ones = np.ones(K)
    E = S.copy()  # for the in-place pass: no fresh pages

    def copy_once():
        out = np.empty_like(S)
        _copy_column_sums(S, out, col_partial, True, False)
        return out

    def four_passes():
        out = np.empty_like(S)
        _copy_column_sums(S, out, col_partial, True, True)
        for it in range(SWAV_ITER):
            v = 1.0 / col_partial.sum(axis=0)
            row_scaling_pass(out, v, col_partial, it == SWAV_ITER - 1)
        return out

    rows = []
    for method, fn, note in (
        ("floor: NumPy copy", S.copy, "S.copy(), one thread: a fresh array"),
        ("floor: read + write once", copy_once, "a threaded copy into a fresh array"),
        (
            "floor: read once",
            lambda: _copy_column_sums(S, S, col_partial, False, True),
            "threaded column sums",
        ),
        (
            "floor: read + write in place",
            lambda: row_scaling_pass(E, ones, col_partial, True),
            "the codes pass on an existing array",
        ),
        (
            "floor: 4 passes, no exp",
            four_passes,
            "write E, read it twice, read and write it (what the codes need, minus exp)",
        ),
    ):
        seconds, _ = timed(fn, True)
        rows.append(
            {
                "case": case,
                "method": method,
                "dtype": str(S.dtype),
                "n": n,
                "K": K,
                "seconds": seconds,
                "ratio": None,
                "marginal_error": math.nan,
                "n_iter": 0,
                "finite": True,
                "note": f"{note}; {S.nbytes / 1e9:.2f} GB per array, "
                f"{S.nbytes / seconds / 1e9:.1f} GB/s",
            }
        )
    return rows


def _check_range(eps):
    """The public function's range check (:func:`clusterlab._validation.check_score_range`)
    on the range the solver's first pass measures."""

    def check(low, high):
        if not (math.isfinite(low) and math.isfinite(high)):
            raise ValueError("scores contains NaN or infinity.")
        if not math.isfinite((high - low) / eps):
            raise ValueError(f"eps={eps:g} is too small for scores spanning {high - low:g}.")

    return check


def pot_swav_runner(S, eps, method):
    """POT at SwAV's setting: ``numItermax=3``, its default ``stopThr``, float32 marginals
    and the cost ``M = -S`` formed once here, so that the timing is POT's alone."""
    import ot

    n, K = S.shape
    a, b = np.full(n, 1.0 / n, S.dtype), np.full(K, 1.0 / K, S.dtype)
    M = -S

    def run():
        plan, log = ot.sinkhorn(a, b, M, eps, method=method, numItermax=SWAV_ITER, log=True)
        return plan, int(log["niter"]) + 1

    return quietly(run)


def swav_case(S, with_log=True):
    """SwAV mode: 3 fixed iterations at eps = 0.05, float32 codes (``with_log``: POT's
    ``ot.sinkhorn_log`` too)."""
    n, K = S.shape
    case = f"swav {SWAV_ITER} it, n={n}"
    codes_mass = n / K  # codes have rows summing to 1
    reference_fn = quietly(lambda: (swav_sinkhorn_numpy(S, EPS, SWAV_ITER), SWAV_ITER))
    row, reference = measure(case, "NumPy SwAV transcription", S, reference_fn, codes_mass)
    rows = [row]
    for method in ("sinkhorn", "sinkhorn_log") if with_log else ("sinkhorn",):
        fn = pot_swav_runner(S, EPS, method)
        rows.append(measure(case, f"POT ot.{method}", S, fn, 1 / K, reference=reference)[0])
    fn = quietly(lambda: (clusterlab.sinkhorn_codes(S, EPS, SWAV_ITER), SWAV_ITER))
    rows.append(
        measure(case, "clusterlab.sinkhorn_codes", S, fn, codes_mass, reference=reference)[0]
    )
    # the solver with the range check fused into its first pass
    check = _check_range(EPS)
    fn = quietly(
        lambda: (solver.sinkhorn_codes(S, EPS, SWAV_ITER, check_range=check)[0], SWAV_ITER)
    )
    row = measure(case, "clusterlab solver, check fused", S, fn, codes_mass, reference=reference)
    rows.append(row[0])
    if S.size >= FLOOR_MIN_SIZE:
        rows += floor_rows(case, S)
    return rows


def _clusterlab_runner(S, eps, max_iter, eps_scaling=True):
    def run():
        result = clusterlab.sinkhorn(S, eps, tol=TOL, max_iter=max_iter, eps_scaling=eps_scaling)
        return result.plan, result.n_iter

    return quietly(run)


def converged_case(S):
    """eps = 0.05 to a relative column-marginal error of 1e-6."""
    n, K = S.shape
    case = f"converged 1e-6, n={n}"
    stop = TOL / K  # ||colsum - b||_2 < tol * min(b) implies the relative L-inf error < tol
    rows = []
    for dtype in (np.float64, np.float32):
        fn = pot_runner(
            S.astype(dtype, copy=False),
            EPS,
            "sinkhorn",
            numItermax=POT_CONVERGED_MAX_ITER,
            stopThr=stop,
        )
        rows.append(measure(case, "POT ot.sinkhorn", S, fn, 1 / K, cap=POT_CONVERGED_MAX_ITER)[0])
    fn = pot_runner(
        S.astype(np.float64), EPS, "sinkhorn_log", numItermax=POT_CONVERGED_MAX_ITER, stopThr=stop
    )
    rows.append(measure(case, "POT ot.sinkhorn_log", S, fn, 1 / K, cap=POT_CONVERGED_MAX_ITER)[0])
    for scaling in (True, False):
        name = "clusterlab.sinkhorn" + ("" if scaling else " (eps_scaling=False)")
        fn = _clusterlab_runner(S, EPS, 1000, eps_scaling=scaling)
        rows.append(measure(case, name, S, fn, 1 / K)[0])
    return rows


def small_eps_case(S):
    """eps = 1e-3 on a small problem, float64 POT against clusterlab in both dtypes."""
    n, K = S.shape
    case = f"eps={SMALL_EPS:g}, {n}x{K}"
    S64 = S.astype(np.float64)
    rows = []
    for method in ("sinkhorn_log", "sinkhorn"):
        fn = pot_runner(S64, SMALL_EPS, method, numItermax=SMALL_EPS_MAX_ITER, stopThr=TOL / K)
        rows.append(measure(case, f"POT ot.{method}", S, fn, 1 / K, cap=SMALL_EPS_MAX_ITER)[0])
    for scores in (S, S64):
        fn = _clusterlab_runner(scores, SMALL_EPS, SMALL_EPS_MAX_ITER)
        rows.append(
            measure(case, "clusterlab.sinkhorn", scores, fn, 1 / K, cap=SMALL_EPS_MAX_ITER)[0]
        )
    return rows


def add_ratios(rows):
    """``ratio`` = seconds / clusterlab's seconds in the case (same dtype, else float32).

    None for a row whose output is not finite.
    """
    for row in rows:
        if not row["finite"]:
            continue
        ours = [
            r for r in rows if r["case"] == row["case"] and r["method"].startswith("clusterlab")
        ]
        same = [r for r in ours if r["dtype"] == row["dtype"]]
        ref = (same or [r for r in ours if r["dtype"] == "float32"] or ours)[0]
        row["ratio"] = row["seconds"] / ref["seconds"]
    return rows


# -- output ------------------------------------------------------------------------------

COLUMNS = [
    ("case", 24, "{}"),
    ("method", 26, "{}"),
    ("dtype", 7, "{}"),
    ("seconds", 9, "{:.4f}"),
    ("ratio", 7, lambda r: f"{r['ratio']:.2f}" if r["finite"] else "n/a"),
    ("marginal_error", 14, lambda r: f"{r['marginal_error']:.2e}" if r["finite"] else "non-finite"),
    ("n_iter", 6, "{}"),
    ("note", 0, "{}"),
]


def metadata(quick, sizes, datasets):
    try:
        import ot

        pot_version = ot.__version__
    except ImportError:
        pot_version = None
    return {
        **base_metadata(quick),
        "processor": platform.processor(),
        "pot": pot_version,
        "eps": EPS,
        "small_eps": SMALL_EPS,
        "tol": TOL,
        "swav_iterations": SWAV_ITER,
        "pot_converged_max_iter": POT_CONVERGED_MAX_ITER,
        "small_eps_max_iter": SMALL_EPS_MAX_ITER,
        "sizes": sizes.__dict__,
        "datasets": datasets,
        "timing": f"best of {REPEAT} (one run when the first exceeds {SINGLE_RUN_ABOVE_S} s)",
    }


def describe(S):
    return {"shape": list(S.shape), "min": float(S.min()), "max": float(S.max())}


def run(sizes, swav_only=False):
    """All cases (or the SwAV case only); returns the rows and a description of the data."""
    rows, datasets = [], {}
    S_all = clustered_scores(max(sizes.ns), sizes.K, sizes.dim, sizes.n_centres)
    for n in sizes.ns[-1:] if swav_only else sizes.ns:
        S = S_all[:n]
        datasets[f"n={n}"] = describe(S)
        if swav_only:
            print(f"running swav_case n={n} ...", file=sys.stderr, flush=True)
            rows += swav_case(S, with_log=False)
            continue
        for case in (swav_case, converged_case):
            print(f"running {case.__name__} n={n} ...", file=sys.stderr, flush=True)
            rows += case(S)
    del S_all, S
    if swav_only:
        return add_ratios(rows), datasets
    n, K = sizes.small
    S = clustered_scores(n, K, sizes.small_dim, sizes.small_centres, seed=1)
    datasets[f"{n}x{K}"] = describe(S)
    print(f"running small_eps_case {n}x{K} ...", file=sys.stderr, flush=True)
    rows += small_eps_case(S)
    return add_ratios(rows), datasets


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (smoke test)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON output path")
    parser.add_argument(
        "--swav-only",
        action="store_true",
        help="only the SwAV case at the largest size, without POT's "
        "sinkhorn_log (the slowest contender)",
    )
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    rows, datasets = run(sizes, swav_only=args.swav_only)
    meta = metadata(args.quick, sizes, datasets)
    print(format_table(rows, COLUMNS))
    print(
        f"\nnumpy {meta['numpy']}, numba {meta['numba']} ({meta['numba_threads']} threads), "
        f"POT {meta['pot']}, {meta['cpu_count']} CPUs; {meta['timing']}"
    )
    write_json(args.out, rows, meta)
    print(f"wrote {args.out}")
    return rows


if __name__ == "__main__":
    main()
