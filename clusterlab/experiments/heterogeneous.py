"""Experiment 2: mis-clustering error on mixtures whose clusters have different covariances.

The settings are those of :func:`clusterlab.datasets.make_heterogeneous_mixture`. K-means
and the Peng–Wei SDP assume spherical clusters of equal spread; EM and iLA-SDP fit a
covariance per cluster, and iLA-SDP does so without estimating centroids first.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field

import numpy as np
from sklearn.utils import check_random_state

from clusterlab._validation import check_count
from clusterlab.datasets import HETEROGENEOUS_SETTINGS, make_heterogeneous_mixture
from clusterlab.experiments._methods import check_methods, check_sdp_solver, run_method
from clusterlab.experiments._output import format_table, save_experiment
from clusterlab.experiments._parallel import check_n_jobs, run_tasks

__all__ = ["HeterogeneousResult", "heterogeneous"]

DEFAULT_METHODS = ("kmeans", "sdp", "em", "em-random", "ila-sdp")


@dataclass
class HeterogeneousResult:
    """What :func:`heterogeneous` measured.

    Attributes
    ----------
    summary : list of dict
        One row per setting and method: ``setting, method, replicates, mean_error,
        sd_error`` (sample standard deviation; 0 for one replicate), ``median_error``,
        ``min_error``, ``max_error``, ``mean_seconds``, ``warnings``.
    replicates : list of dict
        One row per replicate and method: the error, seconds and warnings of that fit.
    parameters : dict
    seconds : float
        Wall-clock time of the run.
    """

    summary: list = field(default_factory=list)
    replicates: list = field(default_factory=list)
    parameters: dict = field(default_factory=dict)
    seconds: float = 0.0

    def format_table(self):
        """Mean ± sd of the mis-clustering error, one block per setting."""
        blocks = []
        for setting in self.parameters["settings"]:
            rows = [row for row in self.summary if row["setting"] == setting]
            table = [
                [
                    row["method"],
                    f"{row['mean_error']:.3f} ± {row['sd_error']:.3f}",
                    f"{row['median_error']:.3f}",
                    f"{row['max_error']:.3f}",
                    f"{row['mean_seconds']:.2f}",
                    row["warnings"],
                ]
                for row in rows
            ]
            blocks.append(
                f"{setting}: {HETEROGENEOUS_SETTINGS[setting]['description']} "
                f"({self.parameters['n_replicates']} replicates)\n"
                + format_table(
                    ["method", "error mean ± sd", "median", "max", "s/fit", "warnings"], table
                )
            )
        return "\n\n".join(blocks)

    def save(self, out_dir, *, plot=True):
        """Write ``heterogeneous.csv`` (summary), ``heterogeneous_replicates.csv``,
        ``heterogeneous.json`` (everything) and, with ``plot``, ``heterogeneous.png`` into
        ``out_dir`` (created if missing).

        Returns a dict of the paths written. The CSV and JSON files are written before the
        plot, so a missing matplotlib (an ImportError) loses no numbers.
        """
        payload = {
            "parameters": self.parameters,
            "settings": {
                name: HETEROGENEOUS_SETTINGS[name]["description"]
                for name in self.parameters["settings"]
            },
            "seconds": self.seconds,
            "summary": self.summary,
            "replicates": self.replicates,
        }
        draw = None
        if plot:
            from clusterlab.experiments._plots import plot_heterogeneous

            def draw(path):
                return plot_heterogeneous(self, path)

        return save_experiment(
            out_dir, "heterogeneous", self.summary, "replicates", self.replicates, payload, draw
        )


def _check_settings(settings):
    if isinstance(settings, str):
        settings = (settings,)
    settings = list(settings)
    if not settings:
        raise ValueError(
            "settings is empty: name at least one of " + ", ".join(HETEROGENEOUS_SETTINGS) + "."
        )
    unknown = [name for name in settings if name not in HETEROGENEOUS_SETTINGS]
    if unknown:
        raise ValueError(
            f"Unknown setting(s) {', '.join(map(repr, unknown))}; choose among "
            f"{', '.join(HETEROGENEOUS_SETTINGS)}."
        )
    if len(set(settings)) != len(settings):
        raise ValueError(f"settings has repeated names: {settings}.")
    return settings


def _fit(setting, replicate, method, data_seed, fit_seed, sdp_solver):
    """One method on one replicate's data set (drawn again from its seed): its row."""
    X, y = make_heterogeneous_mixture(setting, random_state=data_seed)
    n_clusters = len(HETEROGENEOUS_SETTINGS[setting]["means"])
    fit = run_method(method, X, y, n_clusters, fit_seed, sdp_solver)
    return {
        "setting": setting,
        "replicate": replicate,
        "method": method,
        **fit,
        "data_seed": data_seed,
    }


def heterogeneous(
    settings=("k2", "k3"),
    *,
    n_replicates=20,
    methods=DEFAULT_METHODS,
    sdp_solver="lowrank",
    random_state=None,
    verbose=False,
    on_result=None,
    n_jobs=None,
):
    """Mis-clustering error of each method on heterogeneous mixtures (experiment 2).

    Every replicate draws one data set per setting from
    :func:`~clusterlab.datasets.make_heterogeneous_mixture`, and every method clusters it.

    Parameters
    ----------
    settings : sequence of {"k2", "k3"}
        See :data:`clusterlab.datasets.HETEROGENEOUS_SETTINGS`.
    n_replicates : int
    methods : sequence of str
        Among ``"kmeans"`` (scikit-learn ``KMeans``, ``n_init=10``), ``"sdp"``
        (:class:`clusterlab.sdp.SDPKMeans`), ``"em"`` (``GaussianMixture``, full
        covariances, k-means init), ``"em-random"`` (the same from random
        responsibilities), ``"em-spherical"`` and ``"ila-sdp"``
        (:class:`clusterlab.sdp.ILASDP`, full covariances, SDP init).
    sdp_solver : {"lowrank", "cvxpy", "auto"}
        Solver of the SDP methods (cvxpy: tens of seconds per iLA-SDP fit).
    random_state : int, RandomState instance or None
    verbose : bool
        Print one line per replicate (to standard error).
    on_result : callable or None
        Called with every per-fit row (a dict, as in ``result.replicates``) as soon as it is
        measured: ``clusterlab recovery`` writes them to a partial file, so that an
        interrupted run keeps what it measured. In parallel, in the order the fits finish.
    n_jobs : int or None, default=None
        Fits run at once, through joblib (-1: one per CPU; None: one at a time, unless a
        ``joblib.parallel_config`` context says otherwise; inside
        ``joblib.parallel_config(backend="dask")`` they run on a Dask cluster). Every
        seed is drawn before the first fit, so the result is the same for any
        ``n_jobs``, times aside.

    Returns
    -------
    HeterogeneousResult

    Examples
    --------
    >>> from clusterlab.experiments import heterogeneous
    >>> result = heterogeneous(["k2"], n_replicates=2, methods=["kmeans", "em"],
    ...                        random_state=0)
    >>> {row["method"]: row["mean_error"] < 0.1 for row in result.summary}
    {'kmeans': False, 'em': True}
    """
    settings = _check_settings(settings)
    n_replicates = check_count(n_replicates, "n_replicates")
    methods = check_methods(methods)
    sdp_solver = check_sdp_solver(sdp_solver)
    n_jobs = check_n_jobs(n_jobs)
    rng = check_random_state(random_state)
    seeds = rng.randint(0, 2**31 - 1, size=(len(settings), n_replicates, 2))
    result = HeterogeneousResult(
        parameters={
            "settings": settings,
            "n_replicates": n_replicates,
            "methods": list(methods),
            "sdp_solver": sdp_solver,
            "random_state": random_state if isinstance(random_state, int) else None,
        }
    )
    start = time.perf_counter()
    tasks = [
        (
            setting,
            replicate,
            method,
            int(seeds[s, replicate, 0]),
            int(seeds[s, replicate, 1]),
            sdp_solver,
        )
        for s, setting in enumerate(settings)
        for replicate in range(n_replicates)
        for method in methods
    ]
    rows = [None] * len(tasks)
    left = {}  # (setting, replicate) -> fits not yet finished
    for index, row in run_tasks(_fit, tasks, n_jobs=n_jobs):
        rows[index] = row
        if on_result is not None:
            on_result(row)
        key = (row["setting"], row["replicate"])
        left[key] = left.get(key, len(methods)) - 1
        if verbose and left[key] == 0:
            first = index - methods.index(row["method"])
            fits = rows[first : first + len(methods)]
            errors = ", ".join(f"{fit['method']} {fit['error']:.3f}" for fit in fits)
            seconds = sum(fit["seconds"] for fit in fits)
            print(
                f"[heterogeneous {row['setting']}] replicate {row['replicate'] + 1}/"
                f"{n_replicates}: error {errors} [{seconds:.1f} s]",
                file=sys.stderr,
                flush=True,
            )
    result.replicates = rows
    for setting in settings:
        for method in methods:
            fits = [row for row in rows if row["setting"] == setting and row["method"] == method]
            errors = np.array([fit["error"] for fit in fits])
            result.summary.append(
                {
                    "setting": setting,
                    "method": method,
                    "replicates": n_replicates,
                    "mean_error": float(errors.mean()),
                    "sd_error": float(errors.std(ddof=1)) if n_replicates > 1 else 0.0,
                    "median_error": float(np.median(errors)),
                    "min_error": float(errors.min()),
                    "max_error": float(errors.max()),
                    "mean_seconds": float(np.mean([fit["seconds"] for fit in fits])),
                    "warnings": int(sum(fit["warnings"] for fit in fits)),
                }
            )
    result.seconds = time.perf_counter() - start
    return result
