"""A scan in the window: checks that it can run, runs it on a worker (scan_job, the same path as `forensight
scan`), shows its progress and rate in the status bar, lets Stop end it after the current batch, and says how
it went."""
from __future__ import annotations

from functools import partial
from pathlib import Path

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QLabel, QMainWindow, QProgressBar

from app.output_guard import CASE, OutputRefused, check_output, scan_evidence
from app.services.scanning import ScanSummary
from app.ui.scan.scan_job import ScanListed, ScanRequest, StoredBatch, scan_job
from app.ui.scan.toolbar import ScanToolbar
from app.ui.widgets.messages import show_error
from app.ui.workers import Worker, WorkerPool
from models.engine import CancelToken


class ScanController(QObject):
    starting = Signal(object)  # the ScanRequest, before its first batch: the table shows its models
    batch_stored = Signal(dict)  # {model id: [CaseRow]} as the case stored them
    running_changed = Signal(bool)

    def __init__(self, window: QMainWindow) -> None:
        super().__init__(window)
        self.window = window
        self.workers = WorkerPool(1, self)  # one scan at a time, never queued behind other work
        self.last_summary: ScanSummary | None = None
        self._scan: Worker | None = None
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(260)
        self.progress.setFormat("%v of %m files")
        self.progress.hide()
        self.rate_label = QLabel("")
        window.statusBar().addPermanentWidget(self.rate_label)
        window.statusBar().addPermanentWidget(self.progress)

    def is_scanning(self) -> bool:
        return self._scan is not None

    def request(self, case_path: Path, targets: list[Path], toolbar: ScanToolbar, batch_size: int,
                device: str) -> ScanRequest | None:
        """The scan the user asked for, or None once they have been told why it cannot run."""
        model_ids = toolbar.picked_model_ids()
        if not model_ids:
            show_error(self.window, "No detector", "No detector is installed.",
                       "Open Models → Manage models… and import a checkpoint first.")
            return None
        if not targets:
            self.window.statusBar().showMessage("Choose a folder or files to scan first (Ctrl+O).", 5000)
            return None
        try:
            thresholds = toolbar.thresholds()
        except ValueError as exc:
            show_error(self.window, "Thresholds do not fit", "The threshold and the inconclusive band disagree.",
                       str(exc))
            return None
        try:  # the case must not sit among the evidence it records
            check_output(case_path, CASE, scan_evidence(targets))
        except OutputRefused as exc:
            show_error(self.window, "Choose another case", "The case would be written among the files being "
                       "scanned.", str(exc))
            return None
        return ScanRequest(case_path, model_ids[0], tuple(targets), toolbar.recursive(), thresholds, batch_size,
                           device, also=tuple(model_ids[1:]))

    def start(self, request: ScanRequest) -> None:
        if self.is_scanning():
            return
        self.starting.emit(request)
        cancel = CancelToken()
        self._scan = self.workers.start(partial(scan_job, request, cancel), yielded=self._step,
                                        done=self._finished, failed=self._failed, cancel=cancel)
        self.last_summary = None
        self.progress.setRange(0, 0)  # busy until the files are listed
        self.progress.show()
        self.rate_label.setText("Loading the model…")
        self.running_changed.emit(True)

    def stop(self) -> None:
        if self._scan is not None:
            self._scan.stop()
            self.rate_label.setText("Stopping after this batch…")

    def wait(self, timeout_ms: int = 60_000) -> None:
        """Block until the scan has ended (it was told to stop, or is about to finish)."""
        self.workers.wait(timeout_ms)

    def _step(self, step: ScanListed | StoredBatch) -> None:
        if isinstance(step, ScanListed):
            self.progress.setRange(0, max(step.total, 1))
            self.progress.setValue(0)
            self.rate_label.setText(f"{step.total} files")
            return
        self.batch_stored.emit(step.rows_by_model)
        progress = step.progress
        self.progress.setValue(progress.done)
        left = progress.seconds_left
        eta = "" if left is None else f" · {int(left) // 60}:{int(left) % 60:02d} left"
        self.rate_label.setText(f"{progress.rate:.1f} files/s{eta}")

    def _failed(self, reason: str) -> None:
        show_error(self.window, "Scan failed", "The scan could not run.", reason)  # model, device or case trouble
        self._finished(None)

    def _finished(self, summary: ScanSummary | None) -> None:
        self._scan = None
        self.last_summary = summary
        self.progress.hide()
        self.rate_label.setText("")
        if summary is not None:
            self.window.statusBar().showMessage(describe_summary(summary))
        self.running_changed.emit(False)


def describe_summary(summary: ScanSummary) -> str:
    """The status line after a scan: how far it got, its labels, unreadable files, and the models' agreement."""
    counts = ", ".join(f"{n} {label}" for label, n in summary.by_label.items() if n)
    errors = sum(summary.errors.values())
    agreement = (f"; the {len(summary.tallies)} models agree on {summary.agreed} of {summary.compared}"
                 if len(summary.tallies) > 1 else "")
    return (f"{summary.lines()[0]} — {counts or 'nothing scored'}" + (f", {errors} unreadable" if errors else "")
            + agreement)
