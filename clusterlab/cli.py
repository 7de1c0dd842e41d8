"""The ``clusterlab`` command."""

from __future__ import annotations

import argparse
import json
import sys


def _demo(args):
    from clusterlab.demo import format_report, run_demo

    if not args.json:
        print("Running every clusterlab estimator on bundled real data "
              "(the first run compiles the Numba kernels)...", file=sys.stderr, flush=True)
    report = run_demo(seed=args.seed)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(format_report(report))
    return 0


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
    demo.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    demo.set_defaults(handler=_demo)
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
