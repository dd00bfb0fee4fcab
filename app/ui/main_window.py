"""The main window: pick files (folder tree, Ctrl+O, drag and drop), pick a detector, scan into the current
case, and study the results (table, histogram, detail view). Heavy work happens in workers; this class only
wires widgets to them."""
from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QDir, QThread, Qt
from PySide6.QtGui import (QAction, QCloseEvent, QDragEnterEvent, QDropEvent, QKeySequence, QStandardItem,
                           QStandardItemModel)
from PySide6.QtWidgets import (QApplication, QCheckBox, QComboBox, QDoubleSpinBox, QFileDialog, QFileSystemModel,
                               QHBoxLayout, QInputDialog, QLabel, QListView, QMainWindow, QMenu, QProgressBar,
                               QSplitter, QToolBar, QToolButton, QTreeView, QVBoxLayout, QWidget, QWidgetAction)

from app.case.store import Case, CaseError
from app.case.csv_export import export_csv, export_models_csv
from app.output_guard import CASE, OutputRefused, check_output, scan_evidence
from app.services.scanning import ScanSummary
from app.ui.scan.detail_view import DetailView
from app.ui.scan.histogram import HistogramView
from app.ui.widgets.messages import show_error
from app.ui.models.model_manager import ModelManagerDialog
from app.ui.widgets.palette import apply_palette
from app.ui.scan.results_panel import ResultsPanel
from app.ui.widgets.settings import open_settings, read_bool, read_float, read_int
from app.ui.tasks import BackgroundTasks, ProgressRelay
from app.ui.training.wizard import TrainingWizard
from app.ui.workers import ExplainService, ScanProgress, ScanRequest, ScanWorker, start_worker_thread
from models.device import DeviceError, describe_device, select_device
from models.labels import Thresholds
from models.library import ModelLibrary, data_home
from models.classes import IMAGE_SUFFIXES

if TYPE_CHECKING:
    from app.report import ReportInfo  # loaded on first use, not at start-up

_TREE_PATTERNS = sorted({f"*{s}" for s in IMAGE_SUFFIXES} | {f"*{s.upper()}" for s in IMAGE_SUFFIXES})


class MainWindow(QMainWindow):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAcceptDrops(True)
        self.settings = open_settings()
        self.library = ModelLibrary()
        self.batch_size = max(1, read_int(self.settings, "scan/batch_size", 16))
        self.device = str(self.settings.value("scan/device", "auto"))
        self.case: Case | None = None
        self.shown_model_id: str | None = None
        self.scan_targets: list[Path] = []
        self.last_summary: ScanSummary | None = None
        self._worker: ScanWorker | None = None
        self._thread: QThread | None = None

        self.explainer = ExplainService(device=self.device, parent=self)
        self.report_tasks = BackgroundTasks(1, self)  # PDF reports, one at a time, off the GUI thread
        self.training_wizard: TrainingWizard | None = None
        self.report_progress_relay = ProgressRelay(self)
        self.writing_report: Path | None = None  # own flag: report_tasks.busy() holds until on_done returns
        self._build_actions()
        self._build_toolbar()
        self._build_body()
        self._build_menus()
        self._build_status_bar()
        # queued: build_report calls back from the worker thread, the slot updates widgets on the GUI thread
        self.report_progress_relay.changed.connect(self._show_report_progress, Qt.ConnectionType.QueuedConnection)
        self._set_thresholds(0.5, 0.3, 0.7)
        self.reload_models()
        self._restore_settings()
        self._update_scan_controls()

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

    def _build_toolbar(self) -> None:
        bar = QToolBar("Scan")
        bar.setObjectName("scanToolbar")
        bar.setMovable(False)
        self.addToolBar(bar)
        bar.addAction(self.open_folder_action)
        bar.addSeparator()
        bar.addWidget(QLabel(" Model "))
        self.model_picker = QComboBox()
        self.model_picker.setMinimumContentsLength(18)
        self.model_picker.setToolTip("The detector used for the next scan")
        self.model_picker.currentIndexChanged.connect(self._model_picked)
        bar.addWidget(self.model_picker)
        bar.addWidget(self._build_also_picker())
        self.device_label = QLabel("")
        self.device_label.setToolTip("Where inference runs")
        bar.addWidget(self.device_label)
        bar.addSeparator()
        bar.addWidget(QLabel(" Threshold "))
        self.threshold_box = self._probability_box("P(fake) at or above which a picture is called AI-generated")
        bar.addWidget(self.threshold_box)
        bar.addWidget(QLabel(" Inconclusive "))
        self.band_low_box = self._probability_box("Lower end of the inconclusive band")
        bar.addWidget(self.band_low_box)
        bar.addWidget(QLabel("–"))
        self.band_high_box = self._probability_box("Upper end of the inconclusive band (equal ends: no band)")
        bar.addWidget(self.band_high_box)
        self.recursive_box = QCheckBox("Sub-folders")
        self.recursive_box.setToolTip("Also scan the folders inside the chosen folder")
        self.recursive_box.setChecked(True)
        bar.addWidget(self.recursive_box)
        bar.addSeparator()
        bar.addAction(self.scan_action)
        bar.addAction(self.stop_action)

    def _build_also_picker(self) -> QToolButton:
        """More models for the same pass: a checkable list (one item per library model) in a drop-down."""
        self.model_choices = QStandardItemModel(self)
        self.model_choices.itemChanged.connect(self._also_changed)
        view = QListView()
        view.setModel(self.model_choices)
        view.setMinimumWidth(260)
        menu = QMenu(self)
        holder = QWidgetAction(menu)
        holder.setDefaultWidget(view)  # a list in the menu: ticking models leaves it open
        menu.addAction(holder)
        self.also_button = QToolButton()
        self.also_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.also_button.setMenu(menu)
        self.also_button.setToolTip("Also score every file with these models in the same pass (each file is read "
                                    "and decoded once); they use their own cards' thresholds")
        return self.also_button

    def _probability_box(self, tip: str) -> QDoubleSpinBox:
        box = QDoubleSpinBox()
        box.setRange(0.0, 1.0)
        box.setDecimals(2)
        box.setSingleStep(0.05)
        box.setToolTip(tip)
        box.valueChanged.connect(self._thresholds_changed)
        return box

    def _build_body(self) -> None:
        self.files_model = QFileSystemModel(self)
        self.files_model.setFilter(QDir.Filter.AllDirs | QDir.Filter.Files | QDir.Filter.NoDotAndDotDot)
        self.files_model.setNameFilters(_TREE_PATTERNS)
        self.files_model.setNameFilterDisables(False)  # hide non-images instead of greying them
        self.files_model.setRootPath("")
        self.tree = QTreeView()
        self.tree.setModel(self.files_model)
        for column in (1, 2, 3):
            self.tree.hideColumn(column)
        self.tree.setHeaderHidden(True)
        self.tree.setSelectionMode(QTreeView.SelectionMode.ExtendedSelection)
        self.tree.selectionModel().selectionChanged.connect(self._tree_selection_changed)

        self.results = ResultsPanel()
        self.results.current_changed.connect(self._show_detail)
        self.histogram = HistogramView()
        self.histogram_model = QComboBox()
        self.histogram_model.setToolTip("Whose scores the histogram shows")
        self.histogram_model.currentIndexChanged.connect(lambda *_: self._update_histogram())
        self.detail = DetailView(self.explainer)

        centre = QSplitter(Qt.Orientation.Vertical)
        centre.addWidget(self.results)
        centre.addWidget(self._histogram_pane())
        centre.setStretchFactor(0, 3)
        centre.setStretchFactor(1, 1)
        main = QSplitter(Qt.Orientation.Horizontal)
        main.addWidget(self.tree)
        main.addWidget(centre)
        main.addWidget(self.detail)
        main.setStretchFactor(0, 1)
        main.setStretchFactor(1, 3)
        main.setStretchFactor(2, 2)
        main.setSizes([220, 640, 440])
        centre.setSizes([480, 200])
        self.main_splitter, self.centre_splitter = main, centre
        self.setCentralWidget(main)

    def _histogram_pane(self) -> QWidget:
        pane = QWidget()
        chooser = QHBoxLayout()
        chooser.addWidget(QLabel("Histogram of"))
        chooser.addWidget(self.histogram_model)
        chooser.addStretch(1)
        layout = QVBoxLayout(pane)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(chooser)
        layout.addWidget(self.histogram, 1)
        return pane

    def _build_menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        file_menu.addAction(self.open_folder_action)
        file_menu.addSeparator()
        file_menu.addActions([self.new_case_action, self.open_case_action, self.export_action, self.report_action])
        file_menu.addSeparator()
        file_menu.addAction(self.quit_action)
        scan_menu = self.menuBar().addMenu("&Scan")
        scan_menu.addAction(self.scan_action)
        scan_menu.addAction(self.stop_action)
        self.menuBar().addMenu("&Models").addActions([self.manage_models_action, self.train_action])
        self.menuBar().addMenu("&View").addAction(self.dark_action)

    def _build_status_bar(self) -> None:
        self.targets_label = QLabel("Choose a folder to scan (Ctrl+O), or drop files here.")
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(260)
        self.progress.setFormat("%v of %m files")
        self.progress.hide()
        self.rate_label = QLabel("")
        # the report has its own label: a busy QProgressBar draws no text, and a scan may run beside it
        self.report_label = QLabel("")
        self.report_label.hide()
        self.report_progress = QProgressBar()
        self.report_progress.setMaximumWidth(160)
        self.report_progress.setTextVisible(False)
        self.report_progress.hide()
        bar = self.statusBar()
        bar.addWidget(self.targets_label, 1)
        bar.addPermanentWidget(self.rate_label)
        bar.addPermanentWidget(self.progress)
        bar.addPermanentWidget(self.report_label)
        bar.addPermanentWidget(self.report_progress)

    # ---- settings ----------------------------------------------------------------------------
    def _restore_settings(self) -> None:
        s = self.settings
        if geometry := s.value("window/geometry"):
            self.restoreGeometry(geometry)
        else:
            self.resize(1400, 860)
        if state := s.value("window/state"):
            self.restoreState(state)
        for key, splitter in (("window/main_splitter", self.main_splitter),
                              ("window/centre_splitter", self.centre_splitter),
                              ("window/detail_splitter", self.detail.body_splitter)):
            if value := s.value(key):
                splitter.restoreState(value)
        self.recursive_box.setChecked(read_bool(s, "scan/recursive", True))
        self.dark_action.setChecked(read_bool(s, "view/dark", False))
        if s.contains("scan/threshold"):
            self._set_thresholds(read_float(s, "scan/threshold", 0.5),
                                 read_float(s, "scan/band_low", 0.3), read_float(s, "scan/band_high", 0.7))
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
        s.setValue("window/main_splitter", self.main_splitter.saveState())
        s.setValue("window/centre_splitter", self.centre_splitter.saveState())
        s.setValue("window/detail_splitter", self.detail.body_splitter.saveState())
        s.setValue("scan/recursive", self.recursive_box.isChecked())
        s.setValue("scan/threshold", self.threshold_box.value())
        s.setValue("scan/band_low", self.band_low_box.value())
        s.setValue("scan/band_high", self.band_high_box.value())
        s.setValue("view/dark", self.dark_action.isChecked())
        if model_id := self.picked_model_id():
            s.setValue("scan/model", model_id)
        s.setValue("scan/also_models", self.picked_model_ids()[1:])
        if self.case is not None:
            s.setValue("case/path", str(self.case.path))
        s.sync()

    # ---- models ------------------------------------------------------------------------------
    def reload_models(self) -> None:
        """Fill the model picker from the library: the remembered choice, else the library's default."""
        wanted = self.picked_model_id() or str(self.settings.value("scan/model", "") or "")
        entries = self.library.entries()
        ids = [e.card.id for e in entries]
        if wanted not in ids:
            wanted = self.library.default_id() or (ids[0] if ids else "")
        self.model_picker.blockSignals(True)
        self.model_picker.clear()
        default = self.library.default_id()
        for entry in entries:
            star = " ★" if entry.card.id == default else ""
            self.model_picker.addItem(f"{entry.card.name}{star}", entry.card.id)
            self.model_picker.setItemData(self.model_picker.count() - 1,
                                          f"{entry.card.id} · {entry.card.architecture}",
                                          Qt.ItemDataRole.ToolTipRole)
        self.model_picker.blockSignals(False)
        self._fill_model_choices(entries)
        if wanted:
            self.model_picker.setCurrentIndex(ids.index(wanted))
            self._model_picked()
        self._update_device_label()
        self._update_scan_controls()

    def picked_model_id(self) -> str | None:
        return self.model_picker.currentData() if self.model_picker.count() else None

    def picked_model_ids(self) -> list[str]:
        """The models of the next scan: the picker's, then every other one ticked in the list."""
        first = self.picked_model_id()
        if not first:
            return []
        ticked = (self.model_choices.item(i) for i in range(self.model_choices.rowCount()))
        return [first] + [item.data() for item in ticked
                          if item.checkState() == Qt.CheckState.Checked and item.data() != first]

    def _fill_model_choices(self, entries) -> None:
        if self.model_choices.rowCount():
            ticked = set(self.picked_model_ids()[1:])
        else:  # the first fill: the models ticked when the app was last closed
            saved = self.settings.value("scan/also_models", [])
            ticked = {saved} if isinstance(saved, str) else set(saved or [])
        self.model_choices.blockSignals(True)
        self.model_choices.clear()
        for entry in entries:
            item = QStandardItem(f"{entry.card.name} ({entry.card.id})")
            item.setData(entry.card.id)
            item.setEditable(False)
            item.setCheckable(True)
            item.setCheckState(Qt.CheckState.Checked if entry.card.id in ticked else Qt.CheckState.Unchecked)
            self.model_choices.appendRow(item)
        self.model_choices.blockSignals(False)
        self._update_also_button()

    def _also_changed(self, _item: QStandardItem) -> None:
        self._update_also_button()
        if self.case is not None and not self.is_scanning():
            self._show_case_rows(self.shown_model_id)  # a score column for each ticked model

    def _update_also_button(self) -> None:
        extra = len(self.picked_model_ids()) - 1
        self.also_button.setText(" + models " if extra <= 0 else f" + {extra} model{'s' if extra > 1 else ''} ")

    def _model_picked(self) -> None:
        model_id = self.picked_model_id()
        entry = next((e for e in self.library.entries() if e.card.id == model_id), None)
        if entry is None:
            return
        if model_id != self.settings.value("scan/model"):  # a new choice starts from its card's thresholds
            card = entry.card
            self._set_thresholds(card.threshold, *card.inconclusive_band)
            self.settings.setValue("scan/model", model_id)
        self._update_also_button()  # the picker's model never counts twice
        if self.case is not None and model_id != self.shown_model_id:
            self._show_case_rows(model_id)

    def _update_device_label(self) -> None:
        try:
            self.device_label.setText(f"  {describe_device(select_device(self.device))}  ")
        except DeviceError as exc:
            self.device_label.setText(f"  device: {exc}  ")

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
            self.model_picker.setCurrentIndex(self.model_picker.findData(wizard.made_default))

    # ---- thresholds --------------------------------------------------------------------------
    def _set_thresholds(self, threshold: float, low: float, high: float) -> None:
        for box, value in ((self.threshold_box, threshold), (self.band_low_box, low), (self.band_high_box, high)):
            box.blockSignals(True)
            box.setValue(value)
            box.blockSignals(False)
        self._thresholds_changed()

    def thresholds(self) -> Thresholds:
        """The thresholds in the toolbar; ValueError with the rule when they do not make sense."""
        return Thresholds(self.threshold_box.value(), self.band_low_box.value(), self.band_high_box.value())

    def _thresholds_changed(self) -> None:
        try:
            self.thresholds()
        except ValueError as exc:
            self.statusBar().showMessage(str(exc), 5000)
            return
        self._update_histogram()

    def _update_histogram(self) -> None:
        """The histogram of the model chosen beside it (the shown model's by default), with its thresholds: the
        toolbar's for the shown model, the card's for one scanned beside it."""
        model_id = self.histogram_model.currentData() or self.shown_model_id
        self.histogram.update_rows(self.results.model.rows_of(model_id) if model_id else self.results.model.rows())
        try:
            thresholds = self.thresholds()
        except ValueError:  # the toolbar's do not fit together: the status bar says so
            return
        if model_id != self.shown_model_id:
            entry = next((e for e in self.library.entries() if e.card.id == model_id), None)
            if entry is not None:
                thresholds = Thresholds.around(entry.card.threshold, entry.card.inconclusive_band)
        self.histogram.set_thresholds(thresholds)

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
            index = self.files_model.index(str(self.scan_targets[0]))
            self.tree.setCurrentIndex(index)  # selects it: _tree_selection_changed sets the same target
            self.tree.scrollTo(index)
            self.tree.expand(index)
        self._update_scan_controls()

    def _tree_selection_changed(self, *_args) -> None:
        paths = [Path(self.files_model.filePath(i)) for i in self.tree.selectionModel().selectedRows()]
        if paths:
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
    def is_scanning(self) -> bool:
        return self._worker is not None

    def start_scan(self) -> None:
        if self.is_scanning():
            return
        model_id = self.picked_model_id()
        if not model_id:
            show_error(self, "No detector", "No detector is installed.",
                       "Open Models → Manage models… and import a checkpoint first.")
            return
        if not self.scan_targets:
            self.statusBar().showMessage("Choose a folder or files to scan first (Ctrl+O).", 5000)
            return
        try:
            thresholds = self.thresholds()
        except ValueError as exc:
            show_error(self, "Thresholds do not fit", "The threshold and the inconclusive band disagree.", str(exc))
            return
        try:  # the case must not sit among the evidence it records
            check_output(self.case.path, CASE, scan_evidence(self.scan_targets))
        except OutputRefused as exc:
            show_error(self, "Choose another case", "The case would be written among the files being scanned.",
                       str(exc))
            return
        model_ids = self.picked_model_ids()
        if self.shown_model_id != model_id or self.results.model.model_ids() != model_ids:
            self._show_case_rows(model_id)
        request = ScanRequest(self.case.path, model_id, tuple(self.scan_targets), self.recursive_box.isChecked(),
                              thresholds, self.batch_size, self.device, also=tuple(model_ids[1:]))
        worker = ScanWorker(request)
        worker.listed.connect(self._scan_listed)
        worker.batch_done.connect(self._scan_batch)
        worker.failed.connect(self._scan_failed)
        worker.finished.connect(self._scan_finished)
        self._worker = worker
        self.last_summary = None
        self.progress.setRange(0, 0)  # busy until the files are listed
        self.progress.show()
        self.rate_label.setText("Loading the model…")
        self._update_scan_controls()
        self._thread = start_worker_thread(worker, self)

    def stop_scan(self) -> None:
        if self._worker is not None:
            self._worker.stop()
            self.rate_label.setText("Stopping after this batch…")

    def _scan_listed(self, total: int) -> None:
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(0)
        self.rate_label.setText(f"{total} files")

    def _scan_batch(self, rows_by_model: dict, progress: ScanProgress) -> None:
        self.results.add_rows(rows_by_model.get(self.shown_model_id, []), rows_by_model)
        self._update_histogram()
        self.progress.setValue(progress.done)
        left = progress.seconds_left
        eta = "" if left is None else f" · {int(left) // 60}:{int(left) % 60:02d} left"
        self.rate_label.setText(f"{progress.rate:.1f} files/s{eta}")

    def _scan_failed(self, reason: str) -> None:
        show_error(self, "Scan failed", "The scan could not run.", reason)

    def _scan_finished(self, summary: ScanSummary | None) -> None:
        self._worker = None
        if self._thread is not None:
            self._thread.wait(10_000)  # it quits as soon as the worker has finished: a moment at most
            self._thread.deleteLater()
            self._thread = None
        self.last_summary = summary
        self.progress.hide()
        self.rate_label.setText("")
        if summary is not None:
            counts = ", ".join(f"{n} {label}" for label, n in summary.by_label.items() if n)
            errors = sum(summary.errors.values())
            agreement = (f"; the {len(summary.tallies)} models agree on {summary.agreed} of {summary.compared}"
                         if len(summary.tallies) > 1 else "")
            self.statusBar().showMessage(f"{summary.lines()[0]} — {counts or 'nothing scored'}"
                                         + (f", {errors} unreadable" if errors else "") + agreement)
        self._update_scan_controls()

    def wait_for_scan(self, timeout_ms: int = 60_000) -> None:
        """Block until the scan thread has ended (the worker was told to stop, or is about to finish)."""
        if self._thread is not None:
            self._thread.wait(timeout_ms)

    def _update_scan_controls(self) -> None:
        scanning = self.is_scanning()
        self.scan_action.setEnabled(not scanning and bool(self.picked_model_id()))
        self.stop_action.setEnabled(scanning)
        for widget in (self.model_picker, self.also_button, self.threshold_box, self.band_low_box,
                       self.band_high_box, self.recursive_box):
            widget.setEnabled(not scanning)
        for act in (self.new_case_action, self.open_case_action, self.manage_models_action):
            act.setEnabled(not scanning)
        self._update_report_action()

    # ---- the case ----------------------------------------------------------------------------
    def new_case(self, path: Path | None = None) -> None:
        if path is None:
            chosen, _ = QFileDialog.getSaveFileName(
                self, "New case", str(data_home() / "cases" / "case.sqlite"), "Forensight cases (*.sqlite)",
                options=QFileDialog.Option.DontConfirmOverwrite)
            if not chosen:
                return
            path = Path(chosen).with_suffix(".sqlite")
        if path.exists():  # a case is evidence of what was done: never overwrite one
            show_error(self, "Case exists", f"{path.name} already exists.",
                       "Open it with File → Open case…, or choose another name for the new case.")
            return
        self._use_case(path)

    def open_case(self, path: Path | None = None) -> None:
        if path is None:
            chosen, _ = QFileDialog.getOpenFileName(self, "Open case", str(data_home() / "cases"),
                                                    "Forensight cases (*.sqlite);;All files (*)")
            if not chosen:
                return
            path = Path(chosen)
        self._use_case(path)

    def _use_case(self, path: Path) -> None:
        if self.is_scanning():
            self.statusBar().showMessage("Stop the scan before changing the case.", 5000)
            return
        try:  # before Case() creates anything: a new case and its side files must not land among evidence
            check_output(path, CASE, scan_evidence(self.scan_targets), create_folder=True)
        except OutputRefused as exc:
            show_error(self, "Choose another place for the case", f"{path.name} cannot be used here.", str(exc))
            return
        try:
            case = Case(path)
            case.rows()  # fails now, not later, on a file that is not a case
        except (CaseError, OSError, sqlite3.Error) as exc:
            show_error(self, "Cannot open the case", f"{path} cannot be used as a case.", str(exc))
            return
        if self.case is not None:
            self.case.close()
        self.case = case
        self.settings.setValue("case/path", str(path))
        self.setWindowTitle(f"Forensight — {path.stem}")
        picked = self.picked_model_id()
        has_picked = picked and self.case.count_results(picked) > 0
        self.shown_model_id = None
        self._show_case_rows(picked if has_picked or self.case.count_results() == 0 else None)

    def _show_case_rows(self, model_id: str | None) -> None:
        """The whole case as seen by one model (the most recently used one when None)."""
        rows = self.case.rows(model_id)
        if model_id is None:  # rows() picked the most recent model: every scored row names it
            model_id = next((r.model_id for r in rows if r.model_id), self.picked_model_id())
        self.shown_model_id = model_id
        # beside it, a column for each other model ticked for scanning (none ticked: the table as ever)
        models = [model_id, *(m for m in self.picked_model_ids()[1:] if m != model_id)] if model_id else []
        self.results.set_rows(rows, models, {m: self.case.rows(m) for m in models[1:]})
        self.histogram_model.blockSignals(True)
        self.histogram_model.clear()
        for m in models:
            self.histogram_model.addItem(m, m)
        self.histogram_model.blockSignals(False)
        self.histogram_model.setEnabled(len(models) > 1)
        self._update_histogram()
        self.detail.show_row(None, [])
        self.results.title.setText(f"Case {self.case.path.name} — results of {model_id or 'no model yet'}")
        self._update_report_action()

    def export_csv(self, path: Path | None = None) -> None:
        if self.case is None:
            return
        if path is None:
            start = str(self.case.path.parent / f"{self.case.path.stem}.csv")  # never the scanned folder
            chosen, _ = QFileDialog.getSaveFileName(self, "Export CSV", start, "CSV (*.csv)")
            if not chosen:
                return
            path = Path(chosen)
        models = self.results.model.model_ids()
        try:  # the table's models side by side when it shows several
            written = (export_models_csv(self.case, models, path) if len(models) > 1 else
                       export_csv(self.case, self.case.rows(self.shown_model_id), path))
        except OutputRefused as exc:
            show_error(self, "Export refused", f"Forensight will not write {path.name} there.", str(exc))
            return
        except OSError as exc:
            show_error(self, "Export failed", f"Cannot write {path}.", exc.strerror or str(exc))
            return
        self.statusBar().showMessage(f"Exported {written} rows to {path}", 8000)

    def export_report(self, path: Path | None = None, title: str | None = None, examiner: str | None = None) -> None:
        """Build the case's PDF report on a worker thread (the same build_report as `forensight report`);
        asks for the file, title and examiner when they are not given."""
        if self.case is None:
            return
        if self.writing_report is not None:
            self.statusBar().showMessage("A report is already being written.", 5000)
            return
        if path is None:
            start = str(self.case.path.parent / f"{self.case.path.stem}.pdf")  # never the scanned folder
            chosen, _ = QFileDialog.getSaveFileName(self, "Export report", start, "PDF (*.pdf)")
            if not chosen:
                return
            path = Path(chosen).with_suffix(".pdf")
        if title is None:
            title, ok = QInputDialog.getText(self, "Export report", "Report title:", text="Forensight report")
            if not ok:
                return
        if examiner is None:
            examiner, ok = QInputDialog.getText(self, "Export report", "Examiner:")
            if not ok:
                return
        from app.report import build_report  # ReportLab loads on first use, not at start-up

        case_path, model_id, device = self.case.path, self.shown_model_id, self.device
        progress = self.report_progress_relay.report
        self._report_started(path)
        self.report_tasks.submit(
            lambda: build_report(case_path, path, title=title, examiner=examiner, model_id=model_id,
                                 progress=progress, device=device),
            self._report_written, lambda reason: self._report_failed(path, reason))

    def _update_report_action(self) -> None:
        """A report needs results of the shown model, a case no scan is writing to, and no report underway."""
        has_results = self.case is not None and self.case.count_results(self.shown_model_id) > 0
        self.report_action.setEnabled(has_results and not self.is_scanning() and self.writing_report is None)

    def _report_started(self, path: Path) -> None:
        self.writing_report = path
        self.statusBar().showMessage(f"Writing report {path.name}…")
        self.report_label.setText("Report: reading the case…")
        self.report_progress.setRange(0, 0)  # busy until the first file is done
        self.report_label.show()
        self.report_progress.show()
        self._update_report_action()

    def _show_report_progress(self, done: int, total: int) -> None:
        self.report_progress.setRange(0, total)
        self.report_progress.setValue(done)
        self.report_label.setText(f"Report: {done:,} of {total:,} files")
        if done >= total:  # every file is in the story; ReportLab still has to lay out the pages
            self.report_progress.setRange(0, 0)
            self.report_label.setText("Laying out pages…")

    def _report_written(self, info: ReportInfo) -> None:
        self._report_ended()
        self.statusBar().showMessage(f"Report {info.pdf_path.name}: {info.pages} pages, SHA-256 {info.sha256}", 15000)

    def _report_failed(self, path: Path, reason: str) -> None:
        self._report_ended()
        self.statusBar().clearMessage()  # not "Writing report…" any more
        show_error(self, "Report failed", f"Cannot write {path.name}.", reason)

    def _report_ended(self) -> None:
        self.writing_report = None
        self.report_progress.hide()
        self.report_label.hide()
        self._update_report_action()

    # ---- detail ------------------------------------------------------------------------------
    def _show_detail(self, row) -> None:
        known = row is not None and self.case is not None
        scores = self.case.scores_for_file(row.file_id) if known else []
        findings = self.case.evidence_for(row.file_id) if known else []
        tiles = self.case.tiles_for(row.file_id, row.model_id, row.weights_sha256) if known and row.model_id else []
        self.detail.show_row(row, scores, findings, tiles)

    # ---- appearance and closing --------------------------------------------------------------
    def _toggle_dark(self) -> None:
        app = QApplication.instance()
        if isinstance(app, QApplication):
            apply_palette(app, self.dark_action.isChecked())

    def closeEvent(self, event: QCloseEvent) -> None:
        if self._worker is not None:
            self._worker.stop()
        self.wait_for_scan()
        QApplication.processEvents()  # deliver the scan's last signals before the widgets go
        self._save_settings()
        services = [self.results.thumbnails, self.explainer, self.detail, self.report_tasks]
        for service in services + ([self.training_wizard] if self.training_wizard is not None else []):
            service.shutdown()
        if self.case is not None:
            self.case.close()
            self.case = None
        super().closeEvent(event)
