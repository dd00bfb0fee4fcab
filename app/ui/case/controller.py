"""The window's case: File > New case / Open case, the rows the table shows (one model's, with a column per
other model ticked for scanning), the scan's batches as they are stored, and File > Export CSV."""
from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Callable

from PySide6.QtCore import QObject, QSettings, Signal
from PySide6.QtWidgets import QFileDialog, QMainWindow

from app.case.store import Case, CaseError, CaseRow, ModelScore
from app.evidence.findings import Finding
from app.output_guard import CASE, OutputRefused, check_output, scan_evidence
from app.ui.case.csv_job import ExportRefused, write_case_csv
from app.ui.scan.histogram_pane import HistogramPane
from app.ui.scan.results_panel import ResultsPanel
from app.ui.scan.scan_job import ScanRequest
from app.ui.scan.toolbar import ScanToolbar
from app.ui.widgets.messages import show_error
from app.ui.workers import WorkerPool
from models.engine import Tile
from models.library import data_home


class CaseController(QObject):
    shown = Signal()  # another case, or another model's rows: what can be reported on may have changed

    def __init__(self, window: QMainWindow, settings: QSettings, results: ResultsPanel, histogram: HistogramPane,
                 toolbar: ScanToolbar, scanning: Callable[[], bool]) -> None:
        super().__init__(window)
        self.window, self.settings, self.scanning = window, settings, scanning
        self.results, self.histogram, self.toolbar = results, histogram, toolbar
        self.case: Case | None = None
        self.shown_model_id: str | None = None
        self.exports = WorkerPool(1, self)  # CSV files, off the GUI thread

    # ---- choosing the case -------------------------------------------------------------------
    def new_case(self, path: Path | None, targets: list[Path]) -> None:
        if path is None:
            chosen, _ = QFileDialog.getSaveFileName(
                self.window, "New case", str(data_home() / "cases" / "case.sqlite"), "Forensight cases (*.sqlite)",
                options=QFileDialog.Option.DontConfirmOverwrite)
            if not chosen:
                return
            path = Path(chosen).with_suffix(".sqlite")
        if path.exists():  # a case is evidence of what was done: never overwrite one
            show_error(self.window, "Case exists", f"{path.name} already exists.",
                       "Open it with File → Open case…, or choose another name for the new case.")
            return
        self.use_case(path, targets)

    def open_case(self, path: Path | None, targets: list[Path]) -> None:
        if path is None:
            chosen, _ = QFileDialog.getOpenFileName(self.window, "Open case", str(data_home() / "cases"),
                                                    "Forensight cases (*.sqlite);;All files (*)")
            if not chosen:
                return
            path = Path(chosen)
        self.use_case(path, targets)

    def use_case(self, path: Path, targets: list[Path]) -> None:
        if self.scanning():
            self.window.statusBar().showMessage("Stop the scan before changing the case.", 5000)
            return
        try:  # before Case() creates anything: a new case and its side files must not land among evidence
            check_output(path, CASE, scan_evidence(targets), create_folder=True)
        except OutputRefused as exc:
            show_error(self.window, "Choose another place for the case", f"{path.name} cannot be used here.",
                       str(exc))
            return
        try:
            case = Case(path)
            case.rows()  # fails now, not later, on a file that is not a case
        except (CaseError, OSError, sqlite3.Error) as exc:
            show_error(self.window, "Cannot open the case", f"{path} cannot be used as a case.", str(exc))
            return
        self.close()
        self.case = case
        self.settings.setValue("case/path", str(path))
        self.window.setWindowTitle(f"Forensight — {path.stem}")
        picked = self.toolbar.picked_model_id()
        has_picked = picked and self.case.count_results(picked) > 0
        self.shown_model_id = None
        self.show_model(picked if has_picked or self.case.count_results() == 0 else None)

    def close(self) -> None:
        if self.case is not None:
            self.case.close()
            self.case = None

    # ---- the rows shown ----------------------------------------------------------------------
    def show_model(self, model_id: str | None) -> None:
        """The whole case as seen by one model (the most recently used one when None)."""
        if self.case is None:
            return
        rows = self.case.rows(model_id)
        if model_id is None:  # rows() picked the most recent model: every scored row names it
            model_id = next((r.model_id for r in rows if r.model_id), self.toolbar.picked_model_id())
        self.shown_model_id = model_id
        # beside it, a column for each other model ticked for scanning (none ticked: the table as ever)
        models = [model_id, *(m for m in self.toolbar.picked_model_ids()[1:] if m != model_id)] if model_id else []
        self.results.set_rows(rows, models, {m: self.case.rows(m) for m in models[1:]})
        self.histogram.set_models(models)
        self.results.title.setText(f"Case {self.case.path.name} — results of {model_id or 'no model yet'}")
        self.shown.emit()

    def prepare_scan(self, request: ScanRequest) -> None:
        """The table shows the scan's models before its first batch arrives."""
        if self.shown_model_id != request.model_id or self.results.model.model_ids() != list(request.model_ids):
            self.show_model(request.model_id)

    def add_scanned(self, rows_by_model: dict[str, list[CaseRow]]) -> None:
        self.results.add_rows(rows_by_model.get(self.shown_model_id, []), rows_by_model)

    def has_results(self) -> bool:
        return self.case is not None and self.case.count_results(self.shown_model_id) > 0

    def facts_for(self, row: CaseRow | None) -> tuple[list[ModelScore], list[Finding], list[Tile]]:
        """Every model's score of the row's file, its findings and its tiles (the detail view)."""
        if row is None or self.case is None:
            return [], [], []
        tiles = self.case.tiles_for(row.file_id, row.model_id, row.weights_sha256) if row.model_id else []
        return self.case.scores_for_file(row.file_id), self.case.evidence_for(row.file_id), tiles

    # ---- CSV -------------------------------------------------------------------------------------
    def export_csv(self, path: Path | None = None) -> None:
        if self.case is None:
            return
        if path is None:
            start = str(self.case.path.parent / f"{self.case.path.stem}.csv")  # never the scanned folder
            chosen, _ = QFileDialog.getSaveFileName(self.window, "Export CSV", start, "CSV (*.csv)")
            if not chosen:
                return
            path = Path(chosen)
        case_path, models = self.case.path, self.results.model.model_ids()
        if len(models) <= 1:  # the table's models side by side when it shows several
            models = [self.shown_model_id]
        self.window.statusBar().showMessage(f"Exporting {path.name}…")
        self.exports.start(lambda: write_case_csv(case_path, models, path),
                           done=lambda written: self._csv_written(path, written),
                           failed=lambda reason: self._csv_failed(path, reason))

    def _csv_written(self, path: Path, written: int | ExportRefused) -> None:
        if isinstance(written, ExportRefused):
            self.window.statusBar().clearMessage()
            show_error(self.window, "Export refused", f"Forensight will not write {path.name} there.", written.reason)
            return
        self.window.statusBar().showMessage(f"Exported {written} rows to {path}", 8000)

    def _csv_failed(self, path: Path, reason: str) -> None:
        self.window.statusBar().clearMessage()
        show_error(self.window, "Export failed", f"Cannot write {path}.", reason)
