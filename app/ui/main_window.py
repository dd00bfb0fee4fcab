"""The main window: pick files (folder tree, Ctrl+O, drag and drop), pick a detector, scan into the current
case, and study the results (table, histogram, detail view). It composes the parts that do each job (the scan
toolbar, the folder browser, the scan, the case and its exports) and wires them to its actions."""
from __future__ import annotations

import time
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QCloseEvent, QDragEnterEvent, QDropEvent, QKeySequence
from PySide6.QtWidgets import QApplication, QFileDialog, QLabel, QMainWindow, QSplitter, QWidget

from app.case.store import Case, CaseRow
from app.services.scanning import ScanSummary
from app.ui.case.controller import CaseController
from app.ui.case.report_export import ReportExport
from app.ui.models.model_manager import ModelManagerDialog
from app.ui.scan.controller import ScanController
from app.ui.scan.detail_view import DetailView
from app.ui.scan.explain import ExplainService
from app.ui.scan.folder_browser import FolderBrowser
from app.ui.scan.histogram_pane import HistogramPane
from app.ui.scan.results_panel import ResultsPanel
from app.ui.scan.toolbar import ScanToolbar
from app.ui.training.wizard import TrainingWizard
from app.ui.widgets.palette import apply_palette
from app.ui.widgets.settings import open_settings, read_bool, read_int
from models.labels import Thresholds
from models.library import ModelLibrary, data_home


class MainWindow(QMainWindow):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAcceptDrops(True)
        self.settings = open_settings()
        self.library = ModelLibrary()
        self.batch_size = max(1, read_int(self.settings, "scan/batch_size", 16))
        self.device = str(self.settings.value("scan/device", "auto"))
        self.scan_targets: list[Path] = []
        self.training_wizard: TrainingWizard | None = None
        self._build_actions()
        self.toolbar = ScanToolbar(self.library, self.settings, self.device, [self.open_folder_action],
                                   [self.scan_action, self.stop_action], self)
        self.addToolBar(self.toolbar)
        self._build_body()
        self._build_menus()
        self.targets_label = QLabel("Choose a folder to scan (Ctrl+O), or drop files here.")
        self.statusBar().addWidget(self.targets_label, 1)
        self.scans = ScanController(self)
        self.reports = ReportExport(self)
        self.cases = CaseController(self, self.settings, self.results, self.histogram, self.toolbar,
                                    self.scans.is_scanning)
        self._connect_parts()
        self.toolbar.set_thresholds(0.5, 0.3, 0.7)
        self.reload_models()
        self._restore_settings()
        self._update_controls()

    # ---- construction ------------------------------------------------------------------------
    def _build_actions(self) -> None:
        def action(text: str, slot, shortcuts=(), tip: str = "") -> QAction:
            act = QAction(text, self)
            act.setShortcuts([QKeySequence(s) for s in shortcuts])
            act.setToolTip(tip or text)
            act.triggered.connect(lambda *_: slot())
            self.addAction(act)  # shortcuts work wherever the focus is in the window
            return act

        self.open_folder_action = action("Open folder…", self.open_folder, ["Ctrl+O"], "Choose a folder to scan")
        self.scan_action = action("Scan", self.start_scan, ["Ctrl+R"], "Scan the chosen files (Ctrl+R)")
        self.stop_action = action("Stop", self.stop_scan, ["Esc", "Ctrl+."],
                                  "Stop after the current batch; everything scored so far is kept (Esc)")
        self.new_case_action = action("New case…", self.new_case, ["Ctrl+N"], "Start an empty case file")
        self.open_case_action = action("Open case…", self.open_case, ["Ctrl+Shift+O"], "Open a .sqlite case file")
        self.export_action = action("Export CSV…", self.export_csv, ["Ctrl+E"], "Every file of the case, as CSV")
        self.report_action = action("Export report…", self.export_report, ["Ctrl+Shift+E"],
                                    "A PDF report of the case, with its SHA-256 beside it")
        self.quit_action = action("Quit", self.close, ["Ctrl+Q"])
        self.manage_models_action = action("Manage models…", self.manage_models, ["Ctrl+M"])
        self.train_action = action("Train a model…", self.train_model, ["Ctrl+T"],
                                   "Train or fine-tune a detector on your own data (the same trainer as "
                                   "`forensight train`)")
        self.dark_action = action("Dark palette", self._toggle_dark)
        self.dark_action.setCheckable(True)

    def _build_body(self) -> None:
        self.browser = FolderBrowser()
        self.results = ResultsPanel()
        self.histogram = HistogramPane(self.results.model)
        self.explainer = ExplainService(device=self.device, parent=self)
        self.detail = DetailView(self.explainer)
        centre = QSplitter(Qt.Orientation.Vertical)
        centre.addWidget(self.results)
        centre.addWidget(self.histogram)
        centre.setStretchFactor(0, 3)
        centre.setStretchFactor(1, 1)
        main = QSplitter(Qt.Orientation.Horizontal)
        for stretch, widget in ((1, self.browser), (3, centre), (2, self.detail)):
            main.addWidget(widget)
            main.setStretchFactor(main.count() - 1, stretch)
        main.setSizes([220, 640, 440])
        centre.setSizes([480, 200])
        self.main_splitter, self.centre_splitter = main, centre
        self.setCentralWidget(main)

    def _build_menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        file_menu.addAction(self.open_folder_action)
        file_menu.addSeparator()
        file_menu.addActions([self.new_case_action, self.open_case_action, self.export_action, self.report_action])
        file_menu.addSeparator()
        file_menu.addAction(self.quit_action)
        self.menuBar().addMenu("&Scan").addActions([self.scan_action, self.stop_action])
        self.menuBar().addMenu("&Models").addActions([self.manage_models_action, self.train_action])
        self.menuBar().addMenu("&View").addAction(self.dark_action)

    def _connect_parts(self) -> None:
        self.toolbar.model_picked.connect(self._model_picked)
        self.toolbar.also_changed.connect(self._also_changed)
        self.toolbar.thresholds_changed.connect(self._thresholds_changed)
        self.histogram.model_chosen.connect(self._show_histogram_thresholds)
        self.browser.chosen.connect(self._browser_chose)
        self.results.current_changed.connect(self._show_detail)
        self.scans.starting.connect(self.cases.prepare_scan)
        self.scans.batch_stored.connect(self.cases.add_scanned)
        self.scans.running_changed.connect(lambda _running: self._update_controls())
        self.cases.shown.connect(self._case_shown)
        self.reports.busy_changed.connect(self._update_report_action)

    # ---- settings ----------------------------------------------------------------------------
    def _restore_settings(self) -> None:
        s = self.settings
        if geometry := s.value("window/geometry"):
            self.restoreGeometry(geometry)
        else:
            self.resize(1400, 860)
        if state := s.value("window/state"):
            self.restoreState(state)
        for key, splitter in self._splitters():
            if value := s.value(key):
                splitter.restoreState(value)
        self.toolbar.restore()
        self.dark_action.setChecked(read_bool(s, "view/dark", False))
        if (folder := s.value("scan/last_folder")) and Path(folder).exists():
            self.set_targets([Path(folder)], reveal=True)
        last_case = s.value("case/path")
        if last_case and Path(last_case).is_file():
            self.open_case(Path(last_case))
        else:
            self.new_case(data_home() / "cases" / f"case-{time.strftime('%Y%m%d-%H%M%S')}.sqlite")

    def _save_settings(self) -> None:
        s = self.settings
        s.setValue("window/geometry", self.saveGeometry())
        s.setValue("window/state", self.saveState())
        for key, splitter in self._splitters():
            s.setValue(key, splitter.saveState())
        self.toolbar.save()
        s.setValue("view/dark", self.dark_action.isChecked())
        if self.case is not None:
            s.setValue("case/path", str(self.case.path))
        s.sync()

    def _splitters(self) -> list[tuple[str, QSplitter]]:
        return [("window/main_splitter", self.main_splitter), ("window/centre_splitter", self.centre_splitter),
                ("window/detail_splitter", self.detail.body_splitter)]

    # ---- models and thresholds -------------------------------------------------------------------
    def reload_models(self) -> None:
        self.toolbar.reload_models()
        self._update_controls()

    def picked_model_id(self) -> str | None:
        return self.toolbar.picked_model_id()

    def picked_model_ids(self) -> list[str]:
        return self.toolbar.picked_model_ids()

    def thresholds(self) -> Thresholds:
        """The thresholds in the toolbar; ValueError with the rule when they do not make sense."""
        return self.toolbar.thresholds()

    def _model_picked(self, model_id: str) -> None:
        if model_id != self.shown_model_id:
            self.cases.show_model(model_id)

    def _also_changed(self) -> None:
        if not self.is_scanning():
            self.cases.show_model(self.shown_model_id)  # a score column for each ticked model

    def _thresholds_changed(self) -> None:
        try:
            self.thresholds()
        except ValueError as exc:
            self.statusBar().showMessage(str(exc), 5000)
            return
        self._show_histogram_thresholds()

    def _show_histogram_thresholds(self) -> None:
        """The toolbar's thresholds over the table's own model's scores; the card's for a model beside it."""
        model_id = self.histogram.chosen_model() or self.shown_model_id
        try:
            thresholds = self.thresholds()
        except ValueError:  # the toolbar's do not fit together: the status bar says so
            return
        if model_id != self.shown_model_id:
            thresholds = self.toolbar.card_thresholds(model_id) or thresholds
        self.histogram.view.set_thresholds(thresholds)

    def manage_models(self) -> ModelManagerDialog:
        dialog = ModelManagerDialog(self.library, self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.library_changed.connect(self.reload_models)
        dialog.open()
        return dialog

    def train_model(self) -> TrainingWizard:
        if self.training_wizard is not None:  # one training at a time: bring the open wizard forward
            self.training_wizard.raise_()
            self.training_wizard.activateWindow()
            return self.training_wizard
        wizard = TrainingWizard(self.library, self.device, self)
        wizard.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        wizard.model_added.connect(lambda _id: self.reload_models())
        wizard.finished.connect(self._training_wizard_closed)
        self.training_wizard = wizard
        wizard.open()
        return wizard

    def _training_wizard_closed(self) -> None:
        wizard, self.training_wizard = self.training_wizard, None
        self.reload_models()
        if wizard is not None and wizard.made_default:  # chosen on the wizard's last page: scan with it next
            self.toolbar.pick_model(wizard.made_default)

    # ---- choosing what to scan ---------------------------------------------------------------
    def open_folder(self, folder: Path | None = None) -> None:
        if folder is None:
            start = str(self.settings.value("scan/last_folder", str(Path.home())))
            chosen = QFileDialog.getExistingDirectory(self, "Folder to scan", start)
            if not chosen:
                return
            folder = Path(chosen)
        self.set_targets([folder], reveal=True)
        self.settings.setValue("scan/last_folder", str(folder))

    def set_targets(self, paths: list[Path], reveal: bool = False) -> None:
        self.scan_targets = [Path(p).absolute() for p in paths]
        names = ", ".join(p.name or str(p) for p in self.scan_targets[:3])
        more = f" and {len(self.scan_targets) - 3} more" if len(self.scan_targets) > 3 else ""
        self.targets_label.setText(f"To scan: {names}{more}" if self.scan_targets else "Nothing chosen to scan.")
        if reveal and self.scan_targets:
            self.browser.reveal(self.scan_targets[0])  # selects it: _browser_chose sets the same target
        self._update_controls()

    def _browser_chose(self, paths: list[Path]) -> None:
        self.set_targets(paths)
        self.settings.setValue("scan/last_folder", str(paths[0] if paths[0].is_dir() else paths[0].parent))

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if event.mimeData().hasUrls() and any(u.isLocalFile() for u in event.mimeData().urls()):
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        paths = [Path(u.toLocalFile()) for u in event.mimeData().urls() if u.isLocalFile()]
        if not paths:
            return
        event.acceptProposedAction()
        if self.is_scanning():
            self.statusBar().showMessage("A scan is running; drop the files again when it has finished.", 5000)
            return
        self.set_targets(paths)
        self.start_scan()

    # ---- scanning ----------------------------------------------------------------------------
    @property
    def last_summary(self) -> ScanSummary | None:
        return self.scans.last_summary

    def is_scanning(self) -> bool:
        return self.scans.is_scanning()

    def start_scan(self) -> None:
        if self.is_scanning() or self.case is None:
            return
        request = self.scans.request(self.case.path, self.scan_targets, self.toolbar, self.batch_size, self.device)
        if request is not None:
            self.scans.start(request)

    def stop_scan(self) -> None:
        self.scans.stop()

    def wait_for_scan(self, timeout_ms: int = 60_000) -> None:
        """Block until the scan has ended (it was told to stop, or is about to finish)."""
        self.scans.wait(timeout_ms)

    def _update_controls(self) -> None:
        scanning = self.is_scanning()
        self.scan_action.setEnabled(not scanning and bool(self.picked_model_id()))
        self.stop_action.setEnabled(scanning)
        self.toolbar.set_scanning(scanning)
        for act in (self.new_case_action, self.open_case_action, self.manage_models_action):
            act.setEnabled(not scanning)
        self._update_report_action()

    # ---- the case ----------------------------------------------------------------------------
    @property
    def case(self) -> Case | None:
        return self.cases.case

    @property
    def shown_model_id(self) -> str | None:
        return self.cases.shown_model_id

    def new_case(self, path: Path | None = None) -> None:
        self.cases.new_case(path, self.scan_targets)

    def open_case(self, path: Path | None = None) -> None:
        self.cases.open_case(path, self.scan_targets)

    def export_csv(self, path: Path | None = None) -> None:
        """Written on a worker; the status bar says when it is done."""
        self.cases.export_csv(path)

    def export_report(self, path: Path | None = None, title: str | None = None, examiner: str | None = None) -> None:
        """Build the case's PDF report on a worker (the same build_report as `forensight report`); asks for the
        file, title and examiner when they are not given."""
        if self.case is not None:
            self.reports.export(self.case.path, self.shown_model_id, self.device, path, title, examiner)

    def _case_shown(self) -> None:
        self._show_histogram_thresholds()
        self.detail.show_row(None, [])
        self._update_report_action()

    def _update_report_action(self) -> None:
        """A report needs results of the shown model, a case no scan is writing to, and no report underway."""
        self.report_action.setEnabled(self.cases.has_results() and not self.is_scanning() and not self.reports.busy())

    def _show_detail(self, row: CaseRow | None) -> None:
        self.detail.show_row(row, *self.cases.facts_for(row))

    # ---- appearance and closing --------------------------------------------------------------
    def _toggle_dark(self) -> None:
        app = QApplication.instance()
        if isinstance(app, QApplication):
            apply_palette(app, self.dark_action.isChecked())

    def closeEvent(self, event: QCloseEvent) -> None:
        self.stop_scan()
        self.wait_for_scan()
        QApplication.processEvents()  # deliver the scan's last signals before the widgets go
        self._save_settings()
        services = [self.results.thumbnails, self.explainer, self.detail, self.reports, self.cases.exports,
                    self.scans.workers]
        for service in services + ([self.training_wizard] if self.training_wizard is not None else []):
            service.shutdown()
        self.cases.close()
        super().closeEvent(event)
