"""Few-shot on real embeddings: TransductiveFewShot calibrated, at its default lam, and SimpleShot.

Run from the repository root::

    python benchmarks/fewshot_embeddings.py            # digits + every exported set
    python benchmarks/fewshot_embeddings.py --quick    # few tasks, every code path, seconds
    python benchmarks/fewshot_embeddings.py --sets digits pbmc68k_pca50 --out results.json

Protocol
--------
Each labeled feature set is split into *base* classes and *novel* classes (``SPLITS``;
classes 0-4 / 5-9 for the digit sets, as in ``fewshot_accuracy.py``). The base classes
play the classes a feature extractor was trained on: they give the centring mean of CL2N
(``base_mean``: the mean of the base samples) and the episodes :meth:`calibrate
<clusterlab.transductive.TransductiveFewShot.calibrate>` chooses its setting on
(``N_CAL_TASKS`` episodes, seed ``CAL_SEED``). The test tasks are drawn from the novel
classes alone (seed ``TEST_SEED`` = 0, so the digits tasks are those of
``fewshot_accuracy.py``): 5-way, 1 or 5 shots, ``N_QUERY`` = 15 queries per class,
accuracy on the queries, mean over the tasks with its 95% half-width.

On the same test tasks, three settings of :class:`~clusterlab.transductive.TransductiveFewShot`
(3-NN binary graphs, ``preprocessing="cl2n"`` with the base mean):

- **SimpleShot**: ``prototypes="fixed"``, ``lam=0``, ``shift_queries=False`` (nearest
  support mean of the centred, unit-norm features);
- **default**: the estimator's defaults (Laplacian K-means, ``lam=0.7``, query shift);
- **calibrated**: ``TransductiveFewShot().calibrate(X_base, y_base, n_way=5, n_shot=...)``,
  its default candidate grid (SimpleShot and lam in 0..1.5), then the tasks.

Beside each accuracy: ``diff vs SS``, the mean over tasks of (accuracy - SimpleShot's
accuracy) on the same task, with the 95% half-width of that paired difference. The issue's
target is a calibrated ``diff vs SS`` never below -0.5 points.

Small sets. A class enters an episode only with ``n_shot + n_query`` samples. When fewer
than 5 base (or novel) classes have ``n_shot + 15`` samples, that side's episodes use the
largest ``n_query`` for which 5 classes do (printed in the ``q cal`` / ``q test``
columns); ``pbmc68k_pca50``'s base classes hold 8 to 240 cells, so its 5-shot calibration
episodes have 3 queries per class.

Times: ``cal s`` is the whole ``calibrate`` call (episode draw, all candidates, after an
untimed warm-up calibrate on 5 episodes that excludes Numba's compile), ``test s`` the
solver on the test tasks (as ``fewshot_accuracy.py`` times them: chunks of 1,000
tasks, features gathered off the clock, after a 20-task warm-up). The table is printed
and written as JSON to ``--out``.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from clusterlab.datasets import load_dataset
from clusterlab.metrics import evaluate_fewshot
from clusterlab.transductive import TransductiveFewShot

# Run as a script, ``benchmarks`` is importable once the repository root is on the path.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks._report import base_metadata, format_table, write_json
from benchmarks.embedding_sets import EMBEDDING_SETS, load_embedding_set
from benchmarks.fewshot_accuracy import _summarise, draw_tasks, solve_tasks

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "fewshot_embeddings.json"
DIGIT_SETS = ("digits", "mnist_5k")
N_WAY = 5
N_QUERY = 15
SHOTS = (1, 5)
N_TASKS = 10_000
N_CAL_TASKS = 1_000
TEST_SEED = 0
CAL_SEED = 1
QUICK = {"n_tasks": 100, "n_cal_tasks": 50}

#: Base classes of each set (labels as loaded); every other class is novel.
SPLITS = {
    "digits": (0, 1, 2, 3, 4),
    "mnist_5k": (0, 1, 2, 3, 4),
    # 10 cell types of 8 to 240 cells: the five lymphocyte types with >= 31 cells are
    # novel (B, CD4+ T reg, NK, CD8+ cytotoxic, CD8+ naive cytotoxic); the base holds the
    # monocytes, dendritic cells, CD34+ progenitors and the two small CD4+ T types
    "pbmc68k_pca50": (0, 2, 4, 5, 9),
}


def available_sets():
    """digits and every embedding set whose file is present (mnist_5k on request)."""
    names = ["digits"]
    for name in EMBEDDING_SETS:
        try:
            load_embedding_set(name)
        except FileNotFoundError:
            continue
        names.append(name)
    return names


def load_set(name):
    if name in DIGIT_SETS:
        return load_dataset(name)
    X, y, _ = load_embedding_set(name)
    return X, y


def base_classes(name, y):
    """``SPLITS[name]``, else the first half of the classes in label order."""
    if name in SPLITS:
        return np.asarray(SPLITS[name])
    classes = np.unique(y)
    return classes[: classes.size // 2]


def largest_query(y, n_shot, n_way=N_WAY, n_query=N_QUERY):
    """The largest number of queries <= ``n_query`` for which ``n_way`` classes of ``y``
    have ``n_shot + queries`` samples (0 if none)."""
    counts = np.sort(np.unique(y, return_counts=True)[1])[::-1]
    if counts.size < n_way:
        return 0
    return int(min(n_query, counts[n_way - 1] - n_shot))


def _paired(accuracy, reference):
    difference = accuracy - reference
    return float(difference.mean()), float(1.96 * difference.std() / np.sqrt(difference.size))


def _task_accuracy(model, tasks):
    """Per-task accuracy, its FewShotScore, the solver's seconds and the warnings line,
    timed as ``fewshot_accuracy.py`` times its tasks (:func:`solve_tasks`, warmed up)."""
    predicted, seconds, note = solve_tasks(model, tasks)
    per_task = (predicted == tasks.y_query).mean(axis=1)
    return per_task, evaluate_fewshot(tasks.y_query, predicted), seconds, note


def run_set(name, n_tasks=N_TASKS, n_cal_tasks=N_CAL_TASKS, shots=SHOTS, log=None, skipped=None):
    """One row per (shots, method) on the set ``name``; ``skipped`` (a list) collects the
    (set, shots) cells that cannot be run, with the reason."""
    X, y = load_set(name)
    base = np.isin(y, base_classes(name, y))
    if not base.any() or base.all():
        raise ValueError(f"{name}: the split must leave base and novel classes.")
    X_base, y_base, X_novel, y_novel = X[base], y[base], X[~base], y[~base]
    base_mean = X_base.mean(axis=0, dtype=np.float64)
    rows = []
    for n_shot in shots:
        q_cal, q_test = largest_query(y_base, n_shot), largest_query(y_novel, n_shot)
        if q_cal < 1 or q_test < 1:
            reason = (
                f"{name} {n_shot}-shot: fewer than {N_WAY} "
                f"{'base' if q_cal < 1 else 'novel'} classes with {n_shot + 1} samples"
            )
            if log is not None:
                log(reason)
            if skipped is not None:
                skipped.append(reason)
            continue
        test = draw_tasks(
            X_novel, y_novel, n_tasks, TEST_SEED, n_way=N_WAY, n_shot=n_shot, n_query=q_test
        )
        calibration = {"n_way": N_WAY, "n_shot": n_shot, "n_query": q_cal}
        TransductiveFewShot().calibrate(
            X_base, y_base, n_tasks=5, random_state=0, **calibration
        )  # warm-up: Numba's compile
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            start = time.perf_counter()
            calibrated = TransductiveFewShot().calibrate(
                X_base, y_base, n_tasks=n_cal_tasks, random_state=CAL_SEED, **calibration
            )
            cal_seconds = time.perf_counter() - start
        results = calibrated.calibration_results_
        chosen = (
            "SimpleShot"
            if calibrated.prototypes_ == "fixed"
            and calibrated.lam_ == 0
            and not calibrated.shift_queries_
            else f"λ={calibrated.lam_:g}"
        )
        models = {
            "SimpleShot": TransductiveFewShot(
                lam=0.0, prototypes="fixed", shift_queries=False, base_mean=base_mean
            ),
            "default (λ=0.7)": TransductiveFewShot(base_mean=base_mean),
            "calibrated": calibrated,
        }
        reference = None
        for method, model in models.items():
            if log is not None:
                log(f"{name} {n_shot}-shot {method} ...")
            per_task, score, seconds, note = _task_accuracy(model, test)
            if reference is None:
                reference = per_task
            diff, diff_ci = _paired(per_task, reference)
            row = {
                "set": name,
                "n_shot": n_shot,
                "method": method,
                "accuracy": score.accuracy,
                "ci95": score.ci95,
                "diff_vs_simpleshot": diff,
                "diff_ci95": diff_ci,
                "seconds": seconds,
                "n_tasks": n_tasks,
                "n_query_test": q_test,
                "note": note,
            }
            if method == "calibrated":
                row.update(
                    {
                        "chosen": chosen,
                        "lam": calibrated.lam_,
                        "prototypes": calibrated.prototypes_,
                        "shift_queries": calibrated.shift_queries_,
                        "cal_seconds": cal_seconds,
                        "n_cal_tasks": n_cal_tasks,
                        "n_query_cal": q_cal,
                        "cal_scores": {
                            ("SimpleShot" if i == 0 else f"{lam:g}"): float(acc)
                            for i, (lam, acc) in enumerate(
                                zip(results["lam"], results["mean_accuracy"], strict=True)
                            )
                        },
                        "note": "; ".join(
                            filter(None, [note, _summarise([str(w.message) for w in caught])])
                        ),
                    }
                )
            rows.append(row)
    return rows


COLUMNS = [
    ("set", 17, "{}"),
    ("shots", 5, lambda r: str(r["n_shot"])),
    ("method", 15, "{}"),
    ("accuracy %", 14, lambda r: f"{100 * r['accuracy']:.2f} ± {100 * r['ci95']:.2f}"),
    (
        "diff vs SS",
        13,
        lambda r: f"{100 * r['diff_vs_simpleshot']:+.2f} ± {100 * r['diff_ci95']:.2f}",
    ),
    ("chosen", 10, lambda r: r.get("chosen", "")),
    ("q cal", 5, lambda r: str(r.get("n_query_cal", ""))),
    ("q test", 6, lambda r: str(r["n_query_test"])),
    ("cal s", 6, lambda r: f"{r['cal_seconds']:.1f}" if "cal_seconds" in r else ""),
    ("test s", 6, lambda r: f"{r['seconds']:.2f}"),
    ("note", 0, "{}"),
]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few tasks (smoke test)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON output path")
    parser.add_argument(
        "--sets",
        nargs="+",
        default=None,
        help="digits, mnist_5k or embedding sets (default: digits and every exported set)",
    )
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else {"n_tasks": N_TASKS, "n_cal_tasks": N_CAL_TASKS}
    names = args.sets or available_sets()

    def log(message):
        print(message, file=sys.stderr, flush=True)

    rows, skipped, start = [], [], time.perf_counter()
    for name in names:
        rows += run_set(name, **sizes, log=log, skipped=skipped)
    total = time.perf_counter() - start
    meta = {
        **base_metadata(args.quick),
        "protocol": {
            "splits": {
                name: [int(c) for c in base_classes(name, load_set(name)[1])] for name in names
            },
            "n_way": N_WAY,
            "n_query": N_QUERY,
            "shots": list(SHOTS),
            "test_seed": TEST_SEED,
            "cal_seed": CAL_SEED,
            **sizes,
            "preprocessing": "cl2n with the mean of the base samples, 3-NN binary graphs",
        },
        "skipped": skipped,
        "total_seconds": total,
    }
    print(format_table(rows, COLUMNS))
    print(
        f"\n{sizes['n_tasks']} test tasks from the novel classes, calibration on "
        f"{sizes['n_cal_tasks']} base episodes; total {total:.0f} s"
    )
    for reason in skipped:
        print(f"skipped: {reason}")
    write_json(args.out, rows, meta)
    print(f"wrote {args.out}")
    return rows


if __name__ == "__main__":
    main()
