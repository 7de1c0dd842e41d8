"""The ``clusterlab`` command."""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
from pathlib import Path


def _demo(args):
    from clusterlab.demo import format_report, run_demo

    if not args.json:
        print(
            "Running every clusterlab estimator on bundled real data "
            "(the first run compiles the Numba kernels)...",
            file=sys.stderr,
            flush=True,
        )
    report = run_demo(seed=args.seed)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(format_report(report))
    return 0


def _grid_values(text):
    """A separation grid item: a number, or ``start:stop:step`` (both ends included)."""
    parts = text.split(":")
    try:
        values = [float(part) for part in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is neither a number nor START:STOP:STEP"
        ) from None
    if len(values) == 1:
        return values
    if len(values) != 3 or values[2] <= 0 or values[1] < values[0]:
        raise argparse.ArgumentTypeError(
            f"{text!r}: a range is START:STOP:STEP with STOP >= START and STEP > 0"
        )
    start, stop, step = values
    count = math.floor((stop - start) / step + 1e-9) + 1  # stop is included when on the grid
    return [round(start + i * step, 10) for i in range(count)]


def _seed(text):
    """A seed for NumPy's generators: an integer in [0, 2**32)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if not 0 <= value < 2**32:
        raise argparse.ArgumentTypeError(f"{value} is outside [0, 2**32)")
    return value


def _n_jobs(text):
    """A number of parallel fits: a positive integer, or -1 for one per CPU."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1 and value != -1:
        raise argparse.ArgumentTypeError(
            f"{value}: give a positive number of fits to run at once, or -1 (one per CPU)"
        )
    return value


# Seconds to wait for the Dask scheduler given by --scheduler to answer.
SCHEDULER_TIMEOUT = 10


def _dask_client(address):
    """``(client, None)`` connected to the Dask scheduler at ``address``, or
    ``(None, message)``."""
    try:
        import distributed
    except ImportError:
        return None, ('--scheduler needs the distributed package (pip install "clusterlab[dask]")')
    try:
        client = distributed.Client(address, timeout=SCHEDULER_TIMEOUT, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as error:
        return None, (
            f"--scheduler {address}: no Dask scheduler answered within "
            f"{SCHEDULER_TIMEOUT} s ({error})"
        )
    return client, None


def _writable_folder(path):
    """The error that writing into folder ``path`` would raise, or None (checked up front,
    so that a long experiment is not run only to lose its files)."""
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        return f"--out {path}: exists and is not a folder"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        return f"--out {path}: cannot write there ({error.strerror or error})"
    return None


def _recovery(args):
    problem = _writable_folder(args.out)
    client = None
    if problem is None and args.scheduler is not None:
        client, problem = _dask_client(args.scheduler)
    if problem is not None:
        print(f"clusterlab recovery {args.experiment}: error: {problem}", file=sys.stderr)
        return 2
    if client is None:
        return _run_recovery(args)
    import joblib

    # every fit a task on the cluster's workers, through joblib's Dask backend
    with client, joblib.parallel_config(backend="dask", client=client):
        if not args.quiet:
            workers = len(client.scheduler_info().get("workers", {}))
            print(
                f"Running the fits on the Dask cluster at {args.scheduler} ({workers} worker(s)).",
                file=sys.stderr,
                flush=True,
            )
        return _run_recovery(args)


def _run_recovery(args):
    import importlib.util
    import itertools

    from clusterlab import experiments

    # every fit's row as it is measured, one JSON object a line: an interrupted run
    # keeps what it measured; removed once the full tables are written
    partial = Path(args.out) / f"{args.experiment}_partial.jsonl"
    partial.write_text("")

    def keep(row):
        with partial.open("a") as stream:
            stream.write(json.dumps(row, default=float) + "\n")

    plot = not args.no_plot
    if plot and importlib.util.find_spec("matplotlib") is None:
        print(
            "matplotlib is not installed, so no PNG plot is drawn (pip install "
            '"clusterlab[plot]").',
            file=sys.stderr,
        )
        plot = False
    try:
        if args.experiment == "phase-transition":
            configs = list(itertools.product(args.n, args.p, args.clusters))
            grid = [value for item in args.grid for value in item]
            result = experiments.phase_transition(
                configs,
                grid,
                n_trials=args.trials,
                methods=args.methods,
                sigma=args.sigma,
                sdp_solver=args.sdp_solver,
                random_state=args.seed,
                verbose=not args.quiet,
                on_result=keep,
                n_jobs=args.n_jobs,
            )
        else:
            result = experiments.heterogeneous(
                args.settings,
                n_replicates=args.replicates,
                methods=args.methods,
                sdp_solver=args.sdp_solver,
                random_state=args.seed,
                verbose=not args.quiet,
                on_result=keep,
                n_jobs=args.n_jobs,
            )
    except ValueError as error:
        partial.unlink()
        print(f"clusterlab recovery {args.experiment}: error: {error}", file=sys.stderr)
        return 2
    print(result.format_table())
    try:
        paths = result.save(args.out, plot=plot)
    except OSError as error:  # the folder changed while the experiment ran
        print(
            f"clusterlab recovery {args.experiment}: error: could not write to {args.out} "
            f"({error}); the table above is the result",
            file=sys.stderr,
        )
        return 1
    partial.unlink()
    print(f"\nFinished in {result.seconds:.1f} s; wrote")
    for path in paths.values():
        print(f"  {path}")
    return 0


def _add_recovery_parser(commands):
    recovery = commands.add_parser(
        "recovery",
        help="statistical recovery experiments: SDP phase transition, heterogeneous mixtures",
        description="Run a recovery experiment of clusterlab.experiments, print its table "
        "and write CSV, JSON and PNG files to --out.",
    )
    experiments = recovery.add_subparsers(dest="experiment", metavar="EXPERIMENT", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--out",
        default="recovery_results",
        metavar="DIR",
        help="folder for the CSV/JSON/PNG files (default: recovery_results)",
    )
    common.add_argument("--seed", type=_seed, default=0, help="random seed (default: 0)")
    common.add_argument(
        "--sdp-solver",
        choices=("lowrank", "cvxpy", "auto"),
        default="lowrank",
        help="solver of the SDP methods (default: lowrank; cvxpy is exact "
        "but takes seconds per fit at n = 100 and grows about cubically)",
    )
    common.add_argument("--no-plot", action="store_true", help="skip the PNG plot")
    common.add_argument("--quiet", action="store_true", help="no progress lines on standard error")
    where = common.add_mutually_exclusive_group()
    where.add_argument(
        "--n-jobs",
        type=_n_jobs,
        default=None,
        metavar="N",
        help="fits to run at once in worker processes (-1: one per CPU; "
        "default: one at a time); the CSV files are those of a serial run",
    )
    where.add_argument(
        "--scheduler",
        default=None,
        metavar="ADDRESS",
        help="run the fits on the Dask cluster whose scheduler is at ADDRESS "
        "(tcp://host:8786; needs the dask extra); the CSV files are those of "
        "a serial run",
    )
    method_names = ("sdp", "kmeans", "em", "em-spherical", "em-random", "ila-sdp")

    phase = experiments.add_parser(
        "phase-transition",
        parents=[common],
        help="probability of exact recovery against separation / Θ²",
        description="Equal-size spherical Gaussian clusters whose centres are at squared "
        "distance separation * Θ², where Θ² is Chen & Yang's exact recovery threshold: the "
        "fraction of trials each method clusters without a single error, per separation. "
        "One configuration per combination of --n, --p and --clusters.",
    )
    phase.add_argument(
        "--n",
        type=int,
        nargs="+",
        default=[100],
        metavar="N",
        help="numbers of samples (default: 100)",
    )
    phase.add_argument(
        "--p",
        type=int,
        nargs="+",
        default=[10],
        metavar="P",
        help="numbers of features (default: 10)",
    )
    phase.add_argument(
        "--clusters",
        type=int,
        nargs="+",
        default=[3],
        metavar="K",
        help="numbers of clusters, at most p + 1 (default: 3)",
    )
    phase.add_argument(
        "--grid",
        type=_grid_values,
        nargs="+",
        default=[[0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0]],
        metavar="SEP",
        help="separations / Θ²: numbers or START:STOP:STEP ranges (default: 0.25:2:0.25)",
    )
    phase.add_argument(
        "--trials", type=int, default=10, help="data sets per separation (default: 10)"
    )
    phase.add_argument(
        "--sigma", type=float, default=1.0, help="noise standard deviation (default: 1)"
    )
    phase.add_argument(
        "--methods",
        nargs="+",
        choices=method_names,
        metavar="METHOD",
        default=["sdp", "kmeans", "em-spherical"],
        help=f"methods to compare, among {', '.join(method_names)} (default: "
        "sdp kmeans em-spherical)",
    )
    phase.set_defaults(handler=_recovery)

    hetero = experiments.add_parser(
        "heterogeneous",
        parents=[common],
        help="mis-clustering error on mixtures with a covariance per cluster",
        description="Mis-clustering error (mean ± sd over replicates) of each method on the "
        "heterogeneous settings of clusterlab.datasets.make_heterogeneous_mixture: k2 (two "
        "clusters, covariances 0.25 I and diag(0.25, 9)) and k3 (a pinwheel of three "
        "elongated clusters).",
    )
    hetero.add_argument(
        "--settings",
        nargs="+",
        choices=("k2", "k3"),
        default=["k2", "k3"],
        help="settings to run (default: k2 k3)",
    )
    hetero.add_argument(
        "--replicates", type=int, default=10, help="data sets per setting (default: 10)"
    )
    hetero.add_argument(
        "--methods",
        nargs="+",
        choices=method_names,
        metavar="METHOD",
        default=["kmeans", "sdp", "em", "em-random", "ila-sdp"],
        help=f"methods to compare, among {', '.join(method_names)} (default: "
        "kmeans sdp em em-random ila-sdp)",
    )
    hetero.set_defaults(handler=_recovery)


def build_parser():
    parser = argparse.ArgumentParser(
        prog="clusterlab",
        description="Classical and convex clustering solvers behind a scikit-learn API.",
    )
    parser.add_argument("--version", action="version", version=_version())
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = commands.add_parser(
        "demo",
        help="run every estimator on bundled real data beside a scikit-learn baseline",
        description="Fit every clusterlab estimator on real data that ships with "
        "scikit-learn and print ARI, NMI, accuracy, seconds and the largest/smallest "
        "cluster size beside scikit-learn's KMeans on the same data.",
    )
    demo.add_argument("--json", action="store_true", help="print the report as JSON")
    demo.add_argument("--seed", type=_seed, default=0, help="random seed (default: 0)")
    demo.set_defaults(handler=_demo)
    _add_recovery_parser(commands)
    return parser


def _version():
    from clusterlab import __version__

    return f"clusterlab {__version__}"


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    return args.handler(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
