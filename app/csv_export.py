"""CSV export from the case: one row per file, errors included, RFC 4180 quoting, UTF-8, and safe to open
in a spreadsheet (file names are attacker-controlled, so formula-looking cells are neutralised)."""
from __future__ import annotations

import csv
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable

from app.case import CaseRow

COLUMNS = ["path", "file_name", "sha256", "size_bytes", "width", "height", "format", "modified_utc",
           "p_fake", "label", "threshold", "model_id", "weights_sha256", "error", "scored_utc"]
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value: object) -> str:
    """Text that a spreadsheet shows as text: a leading formula character gets a ' in front (OWASP)."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def _utc(timestamp: float | None) -> str:
    if timestamp is None:
        return ""
    return datetime.fromtimestamp(timestamp, tz=timezone.utc).isoformat(timespec="seconds")


def row_values(row: CaseRow) -> list[object]:
    return [row.path, Path(row.path).name, row.sha256, row.size, row.width, row.height, row.format,
            _utc(row.modified), "" if row.p_fake is None else f"{row.p_fake:.6f}", row.label,
            row.threshold, row.model_id, row.weights_sha256, row.error, _utc(row.scored_at)]


def write_csv(rows: Iterable[CaseRow], path: Path) -> int:
    count = 0
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, quoting=csv.QUOTE_MINIMAL, lineterminator="\r\n")
        writer.writerow(COLUMNS)
        for row in rows:
            writer.writerow([spreadsheet_safe(v) for v in row_values(row)])
            count += 1
    return count
