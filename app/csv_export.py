"""CSV export from the case: one row per file, errors included, RFC 4180 quoting, UTF-8, and safe to open
in a spreadsheet (file names are attacker-controlled, so formula-looking cells are neutralised)."""
from __future__ import annotations

import csv
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterable

from app.case import CaseRow
from app.evidence.findings import Finding

COLUMNS = ["path", "file_name", "sha256", "size_bytes", "width", "height", "format", "modified_utc",
           "p_fake", "label", "threshold", "model_id", "weights_sha256", "error", "scored_utc", "notes",
           "strongest_tile_x", "strongest_tile_y", "strongest_tile_w", "strongest_tile_h", "strongest_tile_p_fake",
           "camera", "software", "generator_metadata", "c2pa", "jpeg_quality", "evidence"]
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
    tile = row.strongest_tile  # where in the picture the evidence is strongest (the whole view for one view)
    return [row.path, Path(row.path).name, row.sha256, row.size, row.width, row.height, row.format,
            _utc(row.modified), "" if row.p_fake is None else f"{row.p_fake:.6f}", row.label,
            row.threshold, row.model_id, row.weights_sha256, row.error, _utc(row.scored_at), row.notes,
            *((tile.x, tile.y, tile.w, tile.h, f"{tile.p_fake:.6f}") if tile else ("",) * 5)]


def evidence_values(findings: list[Finding]) -> list[object]:
    """The evidence columns: camera, software, generator metadata, C2PA state, JPEG quality, and the
    strong/moderate findings in words."""
    def first(kinds: tuple[str, ...]) -> Finding | None:
        return next((f for f in findings if f.kind in kinds), None)

    camera = first(("camera",))
    software = next((f.details["software"] for f in findings if f.source == "exif" and f.details.get("software")), "")
    generator = "; ".join(f.message for f in findings if f.points_to == "generated" and f.source != "c2pa")
    c2pa = first(("c2pa_invalid", "c2pa_valid", "no_c2pa", "c2pa_unavailable"))
    c2pa_text = {"c2pa_invalid": "invalid", "c2pa_valid": "valid", "no_c2pa": "none",
                 "c2pa_unavailable": "unavailable"}.get(c2pa.kind, "") if c2pa else ""
    if c2pa_text and first(("c2pa_ai_generated",)):
        c2pa_text += " (AI-generated)"
    quality = first(("jpeg_quality",))
    notable = "; ".join(f"{f.strength}: {f.message}" for f in findings if f.strength in ("strong", "moderate"))
    return [camera.details.get("camera", "") if camera else "", software, generator, c2pa_text,
            quality.details.get("quality", "") if quality else "", notable]


def export_csv(case, rows: Iterable[CaseRow], path: Path) -> int:
    """The one CSV export of the CLI scan, `report --csv` and the desktop app: the rows with their evidence
    columns, refused (OutputRefused) where it would overwrite evidence or a file that is not a Forensight CSV."""
    from app.output_guard import CSV, case_evidence, check_output

    return write_csv(rows, check_output(path, CSV, case_evidence(case)), case.evidence_for)


def write_csv(rows: Iterable[CaseRow], path: Path,
              evidence: Callable[[int], list[Finding]] | None = None) -> int:
    """Write one line per row; `evidence` (e.g. Case.evidence_for) gives a file's findings by file id,
    and without it the evidence columns stay empty."""
    count = 0
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, quoting=csv.QUOTE_MINIMAL, lineterminator="\r\n")
        writer.writerow(COLUMNS)
        for row in rows:
            findings = evidence(row.file_id) if evidence else []
            writer.writerow([spreadsheet_safe(v) for v in row_values(row) + evidence_values(findings)])
            count += 1
    return count
