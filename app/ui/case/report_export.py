"""File > Export report: the case's PDF (the same build_report as `forensight report`) written on a worker, its
progress in the status bar beside a scan's."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QFileDialog, QInputDialog, QLabel, QMainWindow, QProgressBar

from app.ui.widgets.messages import show_error
from app.ui.workers import WorkerPool

if TYPE_CHECKING:
    from app.report import ReportInfo  # loaded on first use, not at start-up


class ReportExport(QObject):
    progressed = Signal(int, int)  # files in the report so far, of all; after the status bar shows it
    busy_changed = Signal()

    def __init__(self, window: QMainWindow) -> None:
        super().__init__(window)
        self.window = window
        self.workers = WorkerPool(1, self)  # one report at a time
        self.writing: Path | None = None  # own flag: busy until the outcome has been shown
        # its own label: a busy QProgressBar draws no text, and a scan may run beside it
        self.label = QLabel("")
        self.label.hide()
        self.bar = QProgressBar()
        self.bar.setMaximumWidth(160)
        self.bar.setTextVisible(False)
        self.bar.hide()
        window.statusBar().addPermanentWidget(self.label)
        window.statusBar().addPermanentWidget(self.bar)

    def busy(self) -> bool:
        return self.writing is not None

    def export(self, case_path: Path, model_id: str | None, device: str, path: Path | None = None,
               title: str | None = None, examiner: str | None = None) -> None:
        """Asks for the file, title and examiner when they are not given."""
        if self.busy():
            self.window.statusBar().showMessage("A report is already being written.", 5000)
            return
        if path is None:
            start = str(case_path.parent / f"{case_path.stem}.pdf")  # never the scanned folder
            chosen, _ = QFileDialog.getSaveFileName(self.window, "Export report", start, "PDF (*.pdf)")
            if not chosen:
                return
            path = Path(chosen).with_suffix(".pdf")
        if title is None:
            title, ok = QInputDialog.getText(self.window, "Export report", "Report title:", text="Forensight report")
            if not ok:
                return
        if examiner is None:
            examiner, ok = QInputDialog.getText(self.window, "Export report", "Examiner:")
            if not ok:
                return
        from app.report import build_report  # ReportLab loads on first use, not at start-up

        self._started(path)
        self.workers.start(
            lambda report: build_report(case_path, path, title=title, examiner=examiner, model_id=model_id,
                                        progress=report, device=device),
            done=self._written, failed=lambda reason: self._failed(path, reason), progress=self._show_progress)

    def shutdown(self) -> None:
        self.workers.shutdown()

    def _started(self, path: Path) -> None:
        self.writing = path
        self.window.statusBar().showMessage(f"Writing report {path.name}…")
        self.label.setText("Report: reading the case…")
        self.bar.setRange(0, 0)  # busy until the first file is done
        self.label.show()
        self.bar.show()
        self.busy_changed.emit()

    def _show_progress(self, done: int, total: int) -> None:
        self.bar.setRange(0, total)
        self.bar.setValue(done)
        self.label.setText(f"Report: {done:,} of {total:,} files")
        if done >= total:  # every file is in the story; ReportLab still has to lay out the pages
            self.bar.setRange(0, 0)
            self.label.setText("Laying out pages…")
        self.progressed.emit(done, total)

    def _written(self, info: ReportInfo) -> None:
        self._ended()
        self.window.statusBar().showMessage(f"Report {info.pdf_path.name}: {info.pages} pages, SHA-256 "
                                            f"{info.sha256}", 15000)

    def _failed(self, path: Path, reason: str) -> None:
        self._ended()
        self.window.statusBar().clearMessage()  # not "Writing report…" any more
        show_error(self.window, "Report failed", f"Cannot write {path.name}.", reason)

    def _ended(self) -> None:
        self.writing = None
        self.bar.hide()
        self.label.hide()
        self.busy_changed.emit()
