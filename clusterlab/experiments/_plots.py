"""PNG plots of the experiments. matplotlib (the ``plot`` extra) is imported lazily."""

from __future__ import annotations

import math

import numpy as np

_MARKERS = ("o", "s", "^", "D", "v", "x")
_DASHES = ("-", "--", ":", "-.")


def _figure(n_panels, *, width=4.2, height=3.4):
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:  # the plot extra is optional
        raise ImportError(
            'Plotting the experiments needs matplotlib: pip install "clusterlab[plot]" '
            "(or save with plot=False)."
        ) from exc
    n_cols = min(n_panels, 3)
    n_rows = math.ceil(n_panels / n_cols)
    figure = Figure(figsize=(width * n_cols, height * n_rows), layout="constrained")
    axes = figure.subplots(n_rows, n_cols, squeeze=False).ravel()
    for extra in axes[n_panels:]:
        extra.set_visible(False)
    return figure, axes[:n_panels]


def plot_phase_transition(result, path):
    """Recovery probability against separation / Θ², one panel per (n, p, K)."""
    configs = result.configs()
    figure, axes = _figure(len(configs))
    for axis, (n, p, n_clusters) in zip(axes, configs, strict=True):
        for i, method in enumerate(result.parameters["methods"]):
            rows = result.rows(n=n, p=p, n_clusters=n_clusters, method=method)
            # distinct markers and dashes: curves that coincide stay visible
            axis.plot(
                [row["separation"] for row in rows],
                [row["recovery_probability"] for row in rows],
                marker=_MARKERS[i % len(_MARKERS)],
                markersize=8 - 1.5 * (i % 3),
                linestyle=_DASHES[i % len(_DASHES)],
                color=f"C{i}",
                label=method,
            )
        axis.axvline(1.0, color="0.4", linestyle="--", linewidth=1, label="Θ² (Chen & Yang)")
        axis.set_ylim(-0.03, 1.03)
        axis.set_xlabel("min squared centre distance / Θ²")
        axis.set_ylabel("probability of exact recovery")
        axis.set_title(f"n={n}, p={p}, K={n_clusters} ({result.parameters['n_trials']} trials)")
        axis.grid(alpha=0.3)
    axes[0].legend(loc="lower right", fontsize="small")
    figure.savefig(path, dpi=120)
    return path


def plot_heterogeneous(result, path):
    """Mis-clustering error per method (mean ± sd bars, replicates as dots), per setting."""
    settings = result.parameters["settings"]
    methods = result.parameters["methods"]
    figure, axes = _figure(len(settings), width=1.0 + 0.9 * len(methods), height=3.6)
    jitter = np.random.default_rng(0)
    for axis, setting in zip(axes, settings, strict=True):
        for position, method in enumerate(methods):
            (row,) = [
                r for r in result.summary if r["setting"] == setting and r["method"] == method
            ]
            axis.bar(
                position,
                row["mean_error"],
                yerr=row["sd_error"],
                color=f"C{position}",
                alpha=0.35,
                capsize=4,
            )
            errors = [
                r["error"]
                for r in result.replicates
                if r["setting"] == setting and r["method"] == method
            ]
            axis.scatter(
                position + jitter.uniform(-0.2, 0.2, len(errors)),
                errors,
                s=10,
                color=f"C{position}",
            )
        axis.set_xticks(range(len(methods)), methods, rotation=30, ha="right")
        axis.set_ylabel("mis-clustering error")
        axis.set_ylim(bottom=0)
        axis.set_title(f"{setting} ({result.parameters['n_replicates']} replicates)")
        axis.grid(alpha=0.3, axis="y")
    figure.savefig(path, dpi=120)
    return path
