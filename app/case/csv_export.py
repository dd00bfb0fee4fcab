"""CSV export from the case: one row per file, errors included, RFC 4180 quoting, UTF-8, and safe to open
in a spreadsheet (file names are attacker-controlled, so formula-looking cells are neutralised)."""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Callable, Iterable

from app.case.store import CaseRow
from app.evidence.findings import Finding
from models.formatting import format_timestamp
from models.labels import agreement

COLUMNS = ["path", "file_name", "sha256", "size_bytes", "width", "height", "format", "modified_utc",
           "p_fake", "label", "threshold", "model_id", "weights_sha256", "error", "scored_utc", "notes",
           "strongest_tile_x", "strongest_tile_y", "strongest_tile_w", "strongest_tile_h", "strongest_tile_p_fake",
           "camera", "software", "generator_metadata", "c2pa", "jpeg_quality", "evidence", "calibration"]
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value: object) -> str:
    """Text that a spreadsheet shows as text: a leading formula character gets a ' in front (OWASP)."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def row_values(row: CaseRow) -> list[object]:
    tile = row.strongest_tile  # where in the picture the evidence is strongest (the whole view for one view)
    return [row.path, Path(row.path).name, row.sha256, row.size, row.width, row.height, row.format,
            format_timestamp(row.modified), "" if row.p_fake is None else f"{row.p_fake:.6f}", row.label,
            row.threshold, row.model_id, row.weights_sha256, row.error, format_timestamp(row.scored_at), row.notes,
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

    return write_csv(rows, check_output(path, CSV, case_evidence(case)), case.evidence_for,
                     model_calibrations(case))


def model_calibrations(case) -> dict[tuple[str, str], str]:
    """(model id, weights SHA-256) → one sentence on the calibration its card carries ("" for none), from the
    cards stored in the case: a row scored by a calibrated variant says so, and an ensemble's says how it
    combined its members (models/ensemble.py)."""
    from models.calibration import describe
    from models.ensemble import describe as describe_ensemble

    found = {}
    for model in case.models():
        card, key = model.card, (model.model_id, model.weights_sha256)
        if isinstance(card.get("ensemble"), dict) and card["ensemble"]:
            found[key] = describe_ensemble(card["ensemble"])
        elif isinstance(card.get("calibration"), dict):
            found[key] = describe(card["calibration"])
    return found


def write_csv(rows: Iterable[CaseRow], path: Path,
              evidence: Callable[[int], list[Finding]] | None = None,
              calibrations: dict[tuple[str, str], str] | None = None) -> int:
    """Write one line per row; `evidence` (e.g. Case.evidence_for) gives a file's findings by file id,
    and without it the evidence columns stay empty; `calibrations` (model_calibrations) fills the last one."""
    count = 0
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, quoting=csv.QUOTE_MINIMAL, lineterminator="\r\n")
        writer.writerow(COLUMNS)
        for row in rows:
            findings = evidence(row.file_id) if evidence else []
            calibration = (calibrations or {}).get((row.model_id, row.weights_sha256), "")
            writer.writerow([spreadsheet_safe(v) for v in row_values(row) + evidence_values(findings) + [calibration]])
            count += 1
    return count


# ---- several models side by side (a multi-model scan) ------------------------------------------------------
FILE_COLUMNS = ["path", "file_name", "sha256", "size_bytes", "width", "height", "format", "modified_utc"]
MODEL_COLUMNS = ["p_fake", "label", "threshold", "weights_sha256", "error", "scored_utc", "notes",
                 "strongest_tile_p_fake", "calibration"]
EVIDENCE_COLUMNS = ["camera", "software", "generator_metadata", "c2pa", "jpeg_quality", "evidence"]  # evidence_values


def model_columns(model_ids: list[str]) -> list[str]:
    """The header of a CSV with several models: each model's columns named `column[model id]`, then whether
    the models agree, then the file's evidence."""
    return (FILE_COLUMNS + [f"{name}[{model_id}]" for model_id in model_ids for name in MODEL_COLUMNS]
            + ["agreement"] + EVIDENCE_COLUMNS)


def export_models_csv(case, model_ids: list[str], path: Path, paths: Iterable[str] | None = None) -> int:
    """export_csv for one model (the same file as before, column for column), or one row per file with every
    model's columns side by side for several; `paths` limits it to those files (a scan's)."""
    from app.output_guard import CSV, case_evidence, check_output

    paths = None if paths is None else list(paths)
    if len(model_ids) == 1:
        return export_csv(case, case.rows(model_ids[0], paths=paths), path)
    target = check_output(path, CSV, case_evidence(case))
    return write_models_csv({model_id: case.rows(model_id, paths=paths) for model_id in model_ids}, target,
                            case.evidence_for, model_calibrations(case))


def write_models_csv(rows_by_model: dict[str, list[CaseRow]], path: Path,
                     evidence: Callable[[int], list[Finding]] | None = None,
                     calibrations: dict[tuple[str, str], str] | None = None) -> int:
    """One line per file (in the first model's order), each model's result in its own columns."""
    model_ids = list(rows_by_model)
    by_file = {model_id: {row.file_id: row for row in rows} for model_id, rows in rows_by_model.items()}
    count = 0
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, quoting=csv.QUOTE_MINIMAL, lineterminator="\r\n")
        writer.writerow([spreadsheet_safe(name) for name in model_columns(model_ids)])  # ids are user-chosen
        for first in rows_by_model[model_ids[0]]:
            rows = [by_file[model_id].get(first.file_id) for model_id in model_ids]
            values = row_values(first)[:len(FILE_COLUMNS)]  # the file's facts lead every row
            for row in rows:
                values += _model_values(row, calibrations or {})
            values.append(agreement(rows))  # agree / differ / empty: models.labels.agreement
            values += evidence_values(evidence(first.file_id) if evidence else [])
            writer.writerow([spreadsheet_safe(v) for v in values])
            count += 1
    return count


def _model_values(row: CaseRow | None, calibrations: dict[tuple[str, str], str]) -> list[object]:
    if row is None or row.model_id is None:  # the file has no result of this model
        return [""] * len(MODEL_COLUMNS)
    tile = row.strongest_tile
    return ["" if row.p_fake is None else f"{row.p_fake:.6f}", row.label, row.threshold, row.weights_sha256,
            row.error, format_timestamp(row.scored_at), row.notes, "" if tile is None else f"{tile.p_fake:.6f}",
            calibrations.get((row.model_id, row.weights_sha256), "")]
