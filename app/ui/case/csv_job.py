"""File > Export CSV as a job for a worker: the CLI's CSV writers (app.case.csv_export), the rows and every
file's findings each read with one query."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from app.case.csv_export import model_calibrations, write_csv, write_models_csv
from app.case.store import Case
from app.evidence.findings import Finding
from app.output_guard import CSV, OutputRefused, case_evidence, check_output


@dataclass(frozen=True)
class ExportRefused:
    reason: str  # why Forensight will not write there (among the evidence, or not a CSV of ours)


def write_case_csv(case_path: Path, model_ids: list[str | None], path: Path) -> int | ExportRefused:
    """The rows of `model_ids` (the table's: several side by side, one as `forensight scan --csv` writes it);
    the number of rows written. A refused place is an answer, not an error; a failed write raises OSError."""
    with Case(case_path) as case:  # this thread's own connection: SQLite objects stay put
        try:
            target = check_output(path, CSV, case_evidence(case))
        except OutputRefused as exc:
            return ExportRefused(str(exc))
        findings = FindingsInFileOrder(case.evidence_by_file())
        try:
            if len(model_ids) > 1:
                return write_models_csv({model_id: case.rows(model_id) for model_id in model_ids}, target,
                                        findings, model_calibrations(case))
            return write_csv(case.rows(model_ids[0] if model_ids else None), target, findings,
                             model_calibrations(case))
        except OSError as exc:
            raise OSError(exc.strerror or str(exc)) from exc  # "Permission denied", not errno and path


class FindingsInFileOrder:
    """A file's findings for rows asked about in file-id order (as Case.rows gives them), read alongside them
    from one query instead of one query per row."""

    def __init__(self, by_file: Iterable[tuple[int, list[Finding]]]) -> None:
        self._by_file = iter(by_file)
        self._next = next(self._by_file, None)

    def __call__(self, file_id: int) -> list[Finding]:
        while self._next is not None and self._next[0] < file_id:
            self._next = next(self._by_file, None)
        return self._next[1] if self._next is not None and self._next[0] == file_id else []
