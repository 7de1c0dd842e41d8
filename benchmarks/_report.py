"""Shared by the benchmark scripts: timing, caught warnings, a text table, run metadata
and the JSON file."""

from __future__ import annotations

import json
import math
import os
import platform
import sys
import time
import warnings
from pathlib import Path

import numba
import numpy as np

import clusterlab

# Best of this many runs, or a single run when the first takes longer than this.
REPEAT = 3
SINGLE_RUN_ABOVE_S = 2.0


def timed(fn, warmup=True):
    """Best wall time of ``fn()`` over up to ``REPEAT`` runs, and its last output.

    ``warmup``: one untimed call first, so that no contender is timed cold (Numba's
    compilation, a library's first-call set-up and cold caches stay out of the time).
    """
    if warmup:
        fn()
    best, out = math.inf, None
    for _ in range(REPEAT):
        out = None  # free the previous output before the next run
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
        if best > SINGLE_RUN_ABOVE_S:
            break
    return best, out


def quietly(fn):
    """``fn`` returning ``(output, messages)``: its warnings caught, not shown."""

    def run():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            out = fn()
        return out, sorted({str(w.message).split(";")[0][:80] for w in caught})

    return run


def format_table(rows, columns):
    """The rows as a fixed-width text table, one line per row under a header.

    ``columns`` are ``(name, width, fmt)`` triples. ``fmt`` is either a format string
    applied to ``row[name]`` (None prints an empty cell) or a function of the row that
    returns the cell's text, ``name`` then being the header only. A width of 0 leaves the
    cell unpadded (the last column). Trailing spaces are stripped.
    """

    def line(cells):
        return "  ".join(c.ljust(w) for c, (_, w, _) in zip(cells, columns, strict=True)).rstrip()

    def cell(row, name, fmt):
        if callable(fmt):
            return fmt(row)
        return "" if row[name] is None else fmt.format(row[name])

    out = [line([name for name, _, _ in columns]), line(["-" * max(w, 4) for _, w, _ in columns])]
    out += [line([cell(row, name, fmt) for name, _, fmt in columns]) for row in rows]
    return "\n".join(out)


def base_metadata(quick):
    """The metadata every script records: command, time, platform, versions, threads."""
    return {
        "quick": quick,
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "numpy": np.__version__,
        "numba": numba.__version__,
        "clusterlab": clusterlab.__version__,
        "numba_threads": numba.get_num_threads(),
        "cpu_count": os.cpu_count(),
    }


def write_json(path, rows, meta):
    """Write ``{"metadata": meta, "rows": rows}`` to ``path``; non-finite row values become null."""

    def clean(value):
        return None if isinstance(value, float) and not math.isfinite(value) else value

    rows = [{k: clean(v) for k, v in row.items()} for row in rows]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"metadata": meta, "rows": rows}, indent=2, allow_nan=False))
