"""Writing experiment results: CSV and JSON files, and plain-text tables."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path


def _plain(value):
    """JSON-safe: NaN and infinities become None, NumPy scalars Python numbers."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# Wall-clock columns: they change from run to run (and with --n-jobs), so they go in the
# JSON file and the printed table but not in the CSV files, which the seed determines.
TIMING_COLUMNS = ("seconds", "mean_seconds")


def write_csv(path, rows, *, exclude=()):
    """Rows (dicts with the same keys) as a CSV file with a header line, without the
    columns named in ``exclude``."""
    path = Path(path)
    fields = [key for key in rows[0] if key not in exclude] if rows else []
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(_plain(row) for row in rows)
    return path


def write_json(path, payload):
    path = Path(path)
    path.write_text(
        json.dumps(_plain(payload), indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    return path


def save_experiment(out_dir, name, summary, detail_name, details, payload, plot=None):
    """Write an experiment's files into ``out_dir`` (created if missing).

    ``{name}.csv`` (the summary rows), ``{name}_{detail_name}.csv`` (one row per trial or
    replicate), both without the wall-clock columns (:data:`TIMING_COLUMNS`), so that
    two runs with the same seed write the same bytes, serial or parallel;
    ``{name}.json`` (``{"experiment": name, **payload}``, times included) and, when ``plot``
    (a callable taking the PNG path) is given, ``{name}.png``. The numbers are written
    before the plot, so a missing matplotlib (an ImportError) loses none of them.

    Returns a dict of the paths written, keyed ``csv``, ``{detail_name}_csv``, ``json``
    and ``png``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "csv": write_csv(out_dir / f"{name}.csv", summary, exclude=TIMING_COLUMNS),
        f"{detail_name}_csv": write_csv(
            out_dir / f"{name}_{detail_name}.csv", details, exclude=TIMING_COLUMNS
        ),
        "json": write_json(out_dir / f"{name}.json", {"experiment": name, **payload}),
    }
    if plot is not None:
        paths["png"] = plot(out_dir / f"{name}.png")
    return paths


def format_table(headers, rows):
    """Columns right-aligned under their headers, first column left-aligned."""
    cells = [list(map(str, headers))] + [list(map(str, row)) for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(headers))]
    lines = []
    for line in cells:
        parts = [line[0].ljust(widths[0])]
        parts += [cell.rjust(width) for cell, width in zip(line[1:], widths[1:], strict=True)]
        lines.append("  ".join(parts).rstrip())
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)
