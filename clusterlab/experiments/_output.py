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


def write_csv(path, rows):
    """Rows (dicts with the same keys) as a CSV file with a header line."""
    path = Path(path)
    fields = list(rows[0]) if rows else []
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(_plain(row) for row in rows)
    return path


def write_json(path, payload):
    path = Path(path)
    path.write_text(
        json.dumps(_plain(payload), indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    return path


def output_folder(out_dir):
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    return out_dir


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
