"""Experiment 1: the probability of exact recovery against the separation of the centres.

Equal-size spherical clusters (:func:`clusterlab.datasets.make_isotropic_mixture`) are
drawn at squared centre distances ``separation * Θ²`` on a grid of ``separation``, where
``Θ²`` is Chen & Yang's threshold (:func:`exact_recovery_threshold`); each method clusters
every draw, and a draw counts as recovered when the mis-clustering error is exactly 0.
Theory: the Peng–Wei SDP recovers with probability tending to one above ``Θ²`` and no
method recovers below it, so the SDP curve should rise near ``separation = 1``.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field

import numpy as np
from sklearn.utils import check_random_state

from clusterlab._validation import check_count, check_positive
from clusterlab.datasets import make_isotropic_mixture
from clusterlab.experiments._methods import check_methods, check_sdp_solver, run_method
from clusterlab.experiments._output import format_table, save_experiment
from clusterlab.experiments._parallel import check_n_jobs, run_tasks
from clusterlab.experiments.threshold import exact_recovery_threshold

__all__ = ["PhaseTransitionResult", "phase_transition", "recovery_crossing"]

DEFAULT_GRID = (0.2, 0.4, 0.6, 0.8, 1.0, 1.2, 1.4, 1.6, 1.8, 2.0)


def recovery_crossing(separations, probabilities, level=0.5):
    """Where a recovery curve first reaches ``level``, by linear interpolation.

    Returns ``(crossing, note)``: ``note`` is ``"interpolated"``, ``"below grid"`` (the
    curve is at or above ``level`` already at the first point; ``crossing`` is that point,
    an upper bound) or ``"not reached"`` (``crossing`` is NaN).

    Examples
    --------
    >>> from clusterlab.experiments import recovery_crossing
    >>> recovery_crossing([0.5, 1.0, 1.5], [0.0, 0.25, 0.75])
    (1.25, 'interpolated')
    """
    separations = np.asarray(separations, dtype=np.float64)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    reached = np.flatnonzero(probabilities >= level)
    if reached.size == 0:
        return float("nan"), "not reached"
    i = reached[0]
    if i == 0:
        return float(separations[0]), "below grid"
    s0, s1 = separations[i - 1], separations[i]
    p0, p1 = probabilities[i - 1], probabilities[i]
    return float(s0 + (level - p0) * (s1 - s0) / (p1 - p0)), "interpolated"


@dataclass
class PhaseTransitionResult:
    """What :func:`phase_transition` measured.

    Attributes
    ----------
    summary : list of dict
        One row per configuration, separation and method: ``n, p, n_clusters,
        separation`` (squared centre distance over ``Θ²``), ``squared_distance``,
        ``theta2``, ``method``, ``trials``, ``recovered``, ``recovery_probability``,
        ``mean_error``, ``mean_seconds``, ``warnings``.
    trials : list of dict
        One row per draw and method: the error, seconds and warnings of that fit.
    transitions : list of dict
        Per configuration and method, the separation at which the recovery probability
        first reaches 0.5 (:func:`recovery_crossing`).
    parameters : dict
        The arguments of the run.
    seconds : float
        Wall-clock time of the run.
    """

    summary: list = field(default_factory=list)
    trials: list = field(default_factory=list)
    transitions: list = field(default_factory=list)
    parameters: dict = field(default_factory=dict)
    seconds: float = 0.0

    def configs(self):
        """The ``(n, p, n_clusters)`` configurations run, in order."""
        return [tuple(config) for config in self.parameters["configs"]]

    def rows(self, **match):
        """Summary rows whose fields equal ``match``, in grid order."""
        return [
            row for row in self.summary if all(row[key] == value for key, value in match.items())
        ]

    def format_table(self):
        """The recovery probabilities as text, one block per configuration."""
        methods = self.parameters["methods"]
        blocks = []
        for n, p, n_clusters in self.configs():
            rows = self.rows(n=n, p=p, n_clusters=n_clusters)
            theta2 = rows[0]["theta2"]
            table = []
            for separation in self.parameters["grid"]:
                cells = {row["method"]: row for row in rows if row["separation"] == separation}
                table.append(
                    [f"{separation:.2f}", f"{separation * theta2:.2f}"]
                    + [f"{cells[m]['recovery_probability']:.2f}" for m in methods]
                )
            crossings = []
            for row in self.transitions:
                if (row["n"], row["p"], row["n_clusters"]) == (n, p, n_clusters):
                    value = row["crossing"]
                    text = "none" if np.isnan(value) else f"{value:.2f}"
                    if row["note"] == "below grid":
                        text = f"<= {text}"
                    crossings.append(f"{row['method']} {text}")
            blocks.append(
                f"n={n}  p={p}  K={n_clusters}  Θ²={theta2:.2f}  "
                f"(probability of exact recovery over {self.parameters['n_trials']} trials)\n"
                + format_table(["sep/Θ²", "Δ²", *methods], table)
                + "\nseparation/Θ² where recovery first reaches 0.5: "
                + ", ".join(crossings)
            )
        return "\n\n".join(blocks)

    def save(self, out_dir, *, plot=True):
        """Write ``phase_transition.csv`` (summary), ``phase_transition_trials.csv``,
        ``phase_transition.json`` (everything) and, with ``plot``,
        ``phase_transition.png`` into ``out_dir`` (created if missing).

        Returns a dict of the paths written. The CSV and JSON files are written before the
        plot, so a missing matplotlib (an ImportError) loses no numbers.
        """
        payload = {
            "parameters": self.parameters,
            "seconds": self.seconds,
            "summary": self.summary,
            "transitions": self.transitions,
            "trials": self.trials,
        }
        draw = None
        if plot:
            from clusterlab.experiments._plots import plot_phase_transition

            def draw(path):
                return plot_phase_transition(self, path)

        return save_experiment(
            out_dir, "phase_transition", self.summary, "trials", self.trials, payload, draw
        )


def _check_configs(configs):
    configs = [tuple(config) for config in configs]
    if not configs:
        raise ValueError("configs is empty: give at least one (n, p, n_clusters).")
    checked = []
    for config in configs:
        if len(config) != 3:
            raise ValueError(f"each config must be (n, p, n_clusters), got {config!r}.")
        n, p, n_clusters = config
        n = check_count(n, "n", minimum=2)
        p = check_count(p, "p")
        n_clusters = check_count(n_clusters, "n_clusters", minimum=2)
        if n_clusters > n:
            raise ValueError(f"config {config}: n_clusters={n_clusters} exceeds n={n}.")
        if n_clusters > p + 1:
            raise ValueError(
                f"config {config}: equidistant centres for n_clusters={n_clusters} need "
                f"p >= {n_clusters - 1}."
            )
        checked.append((n, p, n_clusters))
    return checked


def _check_grid(grid):
    values = np.asarray(grid, dtype=np.float64).ravel()
    if values.size == 0:
        raise ValueError("grid is empty: give at least one separation / Θ².")
    for value in values:
        check_positive(float(value), "every grid value")
    return sorted({float(value) for value in values})


def _fit(n, p, n_clusters, separation, trial, method, data_seed, fit_seed, sigma, sdp_solver):
    """One method on one trial's data set (drawn again from its seed): its row."""
    X, y = make_isotropic_mixture(n, p, n_clusters, separation, sigma=sigma, random_state=data_seed)
    fit = run_method(method, X, y, n_clusters, fit_seed, sdp_solver)
    return {
        "n": n,
        "p": p,
        "n_clusters": n_clusters,
        "separation": separation,
        "trial": trial,
        "method": method,
        "recovered": fit["error"] == 0.0,
        **fit,
        "data_seed": data_seed,
    }


def _report_point(rows, methods, theta2):
    """The progress line of one grid point (its fits' rows); seconds summed over fits."""
    first = rows[0]
    probabilities = ", ".join(
        f"{method} {np.mean([row['recovered'] for row in rows if row['method'] == method]):.2f}"
        for method in methods
    )
    separation = first["separation"]
    print(
        f"[phase transition] n={first['n']} p={first['p']} K={first['n_clusters']} "
        f"sep/Θ²={separation:.2f} (Δ²={separation * theta2:.1f}): "
        f"P(exact recovery) {probabilities} "
        f"[{sum(row['seconds'] for row in rows):.1f} s]",
        file=sys.stderr,
        flush=True,
    )


def phase_transition(
    configs=((200, 10, 3),),
    grid=DEFAULT_GRID,
    *,
    n_trials=10,
    methods=("sdp", "kmeans", "em-spherical"),
    sigma=1.0,
    sdp_solver="lowrank",
    random_state=None,
    verbose=False,
    on_result=None,
    n_jobs=None,
):
    """Probability of exact recovery against separation / Θ² (experiment 1).

    For every configuration ``(n, p, n_clusters)`` and every ``separation`` in ``grid``,
    draws ``n_trials`` data sets from :func:`~clusterlab.datasets.make_isotropic_mixture`
    (minimum squared centre distance ``separation * Θ²``, noise ``N(0, σ² I_p)``) and
    clusters each with every method; a trial recovers when the mis-clustering error is 0.
    All methods see the same data sets.

    Parameters
    ----------
    configs : sequence of (n, p, n_clusters)
        ``n_clusters <= p + 1`` (the centres form a regular simplex).
    grid : sequence of float
        Separations in units of ``Θ²`` (sorted; duplicates dropped).
    n_trials : int
        Data sets per grid point.
    methods : sequence of str
        Among ``"sdp"`` (:class:`clusterlab.sdp.SDPKMeans`), ``"kmeans"`` (scikit-learn
        ``KMeans``, ``n_init=10``), ``"em-spherical"`` and ``"em"`` (scikit-learn
        ``GaussianMixture`` with spherical or full covariances, k-means init),
        ``"em-random"`` (full, random init) and ``"ila-sdp"`` (:class:`clusterlab.sdp.ILASDP`).
    sigma : float
        Noise standard deviation.
    sdp_solver : {"lowrank", "cvxpy", "auto"}
        Solver of the SDP methods. cvxpy takes seconds per fit at n = 100 and grows about
        cubically: keep ``"lowrank"`` for grids of many fits.
    random_state : int, RandomState instance or None
        Seeds every data set and every fit.
    verbose : bool
        Print one line per grid point (to standard error).
    on_result : callable or None
        Called with every per-fit row (a dict, as in ``result.trials``) as soon as it is
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
    PhaseTransitionResult

    Examples
    --------
    >>> from clusterlab.experiments import phase_transition
    >>> result = phase_transition([(40, 2, 2)], grid=[3.0], n_trials=2,
    ...                           methods=["kmeans"], random_state=0)
    >>> [(row["separation"], row["recovery_probability"]) for row in result.summary]
    [(3.0, 1.0)]
    """
    configs = _check_configs(configs)
    grid = _check_grid(grid)
    n_trials = check_count(n_trials, "n_trials")
    methods = check_methods(methods)
    sigma = check_positive(sigma, "sigma")
    sdp_solver = check_sdp_solver(sdp_solver)
    n_jobs = check_n_jobs(n_jobs)
    rng = check_random_state(random_state)
    seeds = rng.randint(0, 2**31 - 1, size=(len(configs), len(grid), n_trials, 2))
    result = PhaseTransitionResult(
        parameters={
            "configs": [list(config) for config in configs],
            "grid": grid,
            "n_trials": n_trials,
            "methods": list(methods),
            "sigma": sigma,
            "sdp_solver": sdp_solver,
            "random_state": random_state if isinstance(random_state, int) else None,
        }
    )
    start = time.perf_counter()
    thresholds = [exact_recovery_threshold(n, p, n_clusters, sigma) for n, p, n_clusters in configs]
    tasks = [
        (
            n,
            p,
            n_clusters,
            separation,
            trial,
            method,
            int(seeds[c, g, trial, 0]),
            int(seeds[c, g, trial, 1]),
            sigma,
            sdp_solver,
        )
        for c, (n, p, n_clusters) in enumerate(configs)
        for g, separation in enumerate(grid)
        for trial in range(n_trials)
        for method in methods
    ]
    per_point = n_trials * len(methods)
    trials = [None] * len(tasks)
    left = [per_point] * (len(configs) * len(grid))  # fits not yet finished, per grid point
    for index, row in run_tasks(_fit, tasks, n_jobs=n_jobs):
        trials[index] = row
        if on_result is not None:
            on_result(row)
        point = index // per_point
        left[point] -= 1
        if verbose and left[point] == 0:
            _report_point(
                trials[point * per_point : (point + 1) * per_point],
                methods,
                thresholds[point // len(grid)],
            )
    result.trials = trials
    for c, (n, p, n_clusters) in enumerate(configs):
        theta2 = thresholds[c]
        for g, separation in enumerate(grid):
            point = c * len(grid) + g
            rows = trials[point * per_point : (point + 1) * per_point]
            for method in methods:
                fits = [row for row in rows if row["method"] == method]
                errors = np.array([fit["error"] for fit in fits])
                result.summary.append(
                    {
                        "n": n,
                        "p": p,
                        "n_clusters": n_clusters,
                        "separation": separation,
                        "squared_distance": separation * theta2,
                        "theta2": theta2,
                        "method": method,
                        "trials": n_trials,
                        "recovered": int(np.sum(errors == 0.0)),
                        "recovery_probability": float(np.mean(errors == 0.0)),
                        "mean_error": float(errors.mean()),
                        "mean_seconds": float(np.mean([fit["seconds"] for fit in fits])),
                        "warnings": int(sum(fit["warnings"] for fit in fits)),
                    }
                )
        for method in methods:
            rows = result.rows(n=n, p=p, n_clusters=n_clusters, method=method)
            crossing, note = recovery_crossing(
                [row["separation"] for row in rows],
                [row["recovery_probability"] for row in rows],
            )
            result.transitions.append(
                {
                    "n": n,
                    "p": p,
                    "n_clusters": n_clusters,
                    "method": method,
                    "crossing": crossing,
                    "note": note,
                }
            )
    result.seconds = time.perf_counter() - start
    return result
