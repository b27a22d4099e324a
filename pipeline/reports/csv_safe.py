"""CSV cells that a spreadsheet shows as text, never runs as a formula.

Team names, agent ids and call ids come from call metadata, which may be
hostile (``=HYPERLINK(...)``, ``@SUM(...)``). A text cell starting with
``= + - @``, a tab or a carriage return gets a leading apostrophe (OWASP's
advice for CSV injection); numbers are written as numbers.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import pyarrow as pa

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralise(value: object) -> str:
    """``value`` as CSV text, prefixed with ``'`` when a spreadsheet would read it as a formula."""
    if value is None:
        return ""
    text = str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value) if isinstance(value, float) else str(value)
    if isinstance(value, list):
        return neutralise(", ".join("" if v is None else str(v) for v in value))
    return neutralise(value)


def table_csv(table: pa.Table) -> str:
    """``table`` as CSV text (header, then rows), text cells neutralised."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([neutralise(name) for name in table.column_names])
    for row in table.to_pylist():
        writer.writerow([_cell(v) for v in row.values()])
    return buffer.getvalue()


def write_csv(table: pa.Table, path: str | Path) -> Path:
    """Write :func:`table_csv` to ``path`` atomically (UTF-8 with BOM so Excel reads Chinese)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text("\ufeff" + table_csv(table), encoding="utf-8", newline="")
    os.replace(tmp, path)
    return path
