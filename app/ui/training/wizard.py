"""Models → Train a model…: a wizard over the same training path as `forensight train` (app.services.training).

Data (a folder with real/ and fake/, checked in the background, with `data inspect`'s shortcut warnings on
request) → recipe (the seeds' recipes, the common fields editable, fine-tuning from a library model) → training
(live learning curve, Stop keeps the best checkpoint, Resume continues) → the new model's card, in the library,
and its evaluation on held-out data (training_result.py).
"""
from __future__ import annotations

import html
from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtGui import QFontDatabase
from PySide6.QtWidgets import (QComboBox, QDoubleSpinBox, QFileDialog, QFormLayout, QHBoxLayout, QLabel, QLineEdit,
                               QPlainTextEdit, QProgressBar, QPushButton, QSpinBox, QVBoxLayout, QWizard, QWizardPage)

from superqt.utils import qthrottled

from app.services.training import (TrainingJob, TrainingOutcome, TrainingSetupError, can_resume, fine_tuning_overrides,
                               make_recipe, plan_training, run_training)
from app.ui.training.chart import LearningCurveView
from app.ui.training.result import ResultPage
from app.ui.workers import Worker, WorkerPool
from models.device import available_devices
from models.engine import CancelToken
from models.library import ModelLibrary
from training.data import CLASS_NAMES, Dataset
from training.recipes import RECIPES, is_probe
from training.trainer import TrainingEvent

BATCH_EVENTS_PER_S = 10  # batch events arrive hundreds a second on a GPU; the window needs a few


class TrainingWizard(QWizard):
    model_added = Signal(str)  # id of the model the wizard put in the library

    def __init__(self, library: ModelLibrary | None = None, device: str = "auto", parent=None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Train a detector")
        self.resize(820, 640)
        self.library = library or ModelLibrary()
        self.device = device
        self.job: TrainingJob | None = None
        self.made_default: str | None = None  # set when the user asked for the new model to be the default
        self.tasks = WorkerPool(1, self)  # looking at and checking the data, evaluating the new model
        self.data_page = DataPage(self.tasks)
        self.recipe_page = RecipePage()
        self.train_page = TrainPage()
        self.result_page = ResultPage()
        for page in (self.data_page, self.recipe_page, self.train_page, self.result_page):
            self.addPage(page)

    def done(self, result: int) -> None:
        # closing never freezes the window: a run stops on its own, a data check finishes unseen
        self.train_page.close_without_waiting()
        self.tasks.detach()
        super().done(result)

    def shutdown(self) -> None:
        """The app is closing: stop a running training and give it a while to write its checkpoint."""
        self.train_page.stop_and_wait()
        self.tasks.shutdown()


# ---- 1. data --------------------------------------------------------------------------------------------
class DataPage(QWizardPage):
    def __init__(self, tasks: WorkerPool) -> None:
        super().__init__()
        self.setTitle("Training data")
        self.setSubTitle("A folder with real/ and fake/ sub-folders (also 0_real/1_fake, REAL/FAKE, authentic/ai), "
                         "optionally under train/ val/ test/ and per-generator folders such as fake/gan/.")
        self.tasks = tasks
        self.dataset: Dataset | None = None
        self._requested: Path | None = None
        self.folder = QLineEdit()
        self.folder.setPlaceholderText("Dataset folder")
        self.folder.editingFinished.connect(self._folder_edited)
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        self.summary = QLabel("")
        self.summary.setWordWrap(True)
        self.check_button = QPushButton("Check the data (corrupt files, sizes, formats, shortcuts)")
        self.check_button.setEnabled(False)
        self.check_button.clicked.connect(self.check_data)
        self.report = QPlainTextEdit()
        self.report.setReadOnly(True)
        self.report.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        row = QHBoxLayout()
        row.addWidget(self.folder, 1)
        row.addWidget(browse)
        layout = QVBoxLayout(self)
        layout.addLayout(row)
        layout.addWidget(self.summary)
        layout.addWidget(self.check_button)
        layout.addWidget(self.report, 1)

    def _browse(self) -> None:
        chosen = QFileDialog.getExistingDirectory(self, "Dataset folder", self.folder.text())
        if chosen:
            self.set_folder(chosen)

    def _folder_edited(self) -> None:
        # editingFinished also fires when the field merely loses focus (pressing Next): only a new path counts
        if self.folder.text().strip() and Path(self.folder.text()).expanduser() != self._requested:
            self.set_folder(self.folder.text())

    def set_folder(self, folder: str | Path) -> None:
        """Look at the folder's layout off the GUI thread (a big dataset takes a moment to walk)."""
        from training.data import discover_dataset

        path = Path(folder).expanduser()
        self._requested = path
        self.folder.setText(str(path))
        self.dataset = None
        self.report.clear()
        self.check_button.setEnabled(False)
        self.summary.setText(f"Looking at {path}…")
        self.completeChanged.emit()
        self.tasks.start(lambda: discover_dataset(path), done=lambda found: self._found(path, found),
                         failed=lambda reason: self._not_a_dataset(path, reason))

    def _found(self, path: Path, dataset: Dataset) -> None:
        if self._requested != path:
            return  # the user has moved on to another folder
        self.dataset = dataset
        self.summary.setText(describe_dataset(dataset))
        self.check_button.setEnabled(True)
        self.completeChanged.emit()

    def _not_a_dataset(self, path: Path, reason: str) -> None:
        if self._requested == path:
            self.summary.setText(f"<b>Not usable:</b> {html.escape(reason)}")

    def check_data(self) -> None:
        from training.inspect_data import format_report, inspect_dataset

        root = self.dataset.root
        self.check_button.setEnabled(False)
        self.report.setPlainText("Reading every file…")
        self.tasks.start(lambda: format_report(inspect_dataset(root)), done=self._checked,
                         failed=lambda reason: self._checked(f"The check failed: {reason}"))

    def _checked(self, text: str) -> None:
        self.report.setPlainText(text)
        self.check_button.setEnabled(self.dataset is not None)

    def isComplete(self) -> bool:
        return self.dataset is not None


def describe_dataset(dataset: Dataset) -> str:
    summary = dataset.summary()
    per_class = ", ".join(f"{summary['per_class'].get(name, 0):,} {name}" for name in CLASS_NAMES.values())
    parts = [f"{summary['count']:,} images: {per_class}."]
    if dataset.splits:
        parts.append("Splits: " + ", ".join(sorted(dataset.splits)) + ".")
    groups = [g for g in dataset.groups if g != "all"]
    if groups:
        parts.append(f"{len(groups)} groups: " + ", ".join(groups[:8]) + ("…" if len(groups) > 8 else "") + ".")
    return html.escape(" ".join(parts))


# ---- 2. recipe ------------------------------------------------------------------------------------------
class RecipePage(QWizardPage):
    def __init__(self) -> None:
        super().__init__()
        self.setTitle("Recipe")
        self.setSubTitle("The seeds' recipes; change what you need. The model's card records every value.")
        self.setCommitPage(True)  # once training starts there is no going back to change the recipe
        self.setButtonText(QWizard.WizardButton.CommitButton, "Train")
        self.recipe = QComboBox()
        self.recipe.addItems(sorted(RECIPES))
        self.recipe.currentTextChanged.connect(self._load_recipe)
        self.description = QLabel("")
        self.description.setWordWrap(True)
        self.name = QLineEdit()
        self.name.setPlaceholderText("e.g. newsroom-resnet50 (a-z, 0-9, '.', '_', '-')")
        self.epochs = _spin(1, 1000)
        self.batch_size = _spin(1, 4096)
        self.workers = _spin(0, 64)
        self.workers.setToolTip("Processes that decode training images beside the model (0: in the training thread)")
        self.lr = QDoubleSpinBox()
        self.lr.setDecimals(7)
        self.lr.setRange(1e-7, 1.0)
        self.lr.setSingleStep(1e-5)
        self.blur = _probability()
        self.jpeg = _probability()
        self.start_from = QComboBox()
        self.tower = QLineEdit()  # linear_probe only: the frozen foundation-model tower
        self.tower.setPlaceholderText("open_clip_pytorch_model.bin, or the id of a library model with a tower")
        tower_browse = QPushButton("Browse…")
        tower_browse.clicked.connect(self._browse_tower)
        self.tower_row = QHBoxLayout()
        self.tower_row.addWidget(self.tower, 1)
        self.tower_row.addWidget(tower_browse)
        self.device = QComboBox()
        self.device.addItems(available_devices())
        self.error = QLabel("")
        self.error.setWordWrap(True)
        self.error.setStyleSheet("color: #c0392b")
        self.form = form = QFormLayout(self)
        for label, widget in (("Recipe", self.recipe), ("", self.description), ("New model's name", self.name),
                              ("Image tower (CLIP / OpenCLIP)", self.tower_row),
                              ("Start from", self.start_from), ("Epochs", self.epochs), ("Learning rate", self.lr),
                              ("Batch size", self.batch_size), ("Blur augmentation (probability)", self.blur),
                              ("JPEG augmentation (probability)", self.jpeg),
                              ("Data-loading processes", self.workers), ("Device", self.device), ("", self.error)):
            form.addRow(label, widget)

    def initializePage(self) -> None:
        wizard: TrainingWizard = self.wizard()
        self.start_from.clear()
        self.start_from.addItem("the recipe's choice (ImageNet weights where they exist offline)", "")
        self.start_from.addItem("scratch (random weights)", "none")
        for entry in wizard.library.entries():  # fine-tuning keeps the model's architecture, whatever the recipe's
            self.start_from.addItem(f"fine-tune {entry.card.id} ({entry.card.architecture}, its own input size)",
                                    entry.card.id)
        self.device.setCurrentText(wizard.device if wizard.device in available_devices() else "auto")
        self._load_recipe(self.recipe.currentText())

    def _browse_tower(self) -> None:
        chosen, _ = QFileDialog.getOpenFileName(self, "A foundation model's image tower", self.tower.text(),
                                                "Weights (*.bin *.pt *.pth *.safetensors);;All files (*)")
        if chosen:
            self.tower.setText(chosen)

    def _load_recipe(self, name: str) -> None:
        recipe = RECIPES[name]
        self.description.setText(f"{recipe.architecture}: {recipe.description}")
        probe = is_probe(recipe)  # a probe trains no network: only the tower and the data matter
        self.form.setRowVisible(self.tower_row, probe)
        for widget in (self.start_from, self.epochs, self.lr, self.blur, self.jpeg):
            self.form.setRowVisible(widget, not probe)
        self.epochs.setValue(recipe.epochs)
        self.lr.setValue(recipe.lr)
        self.batch_size.setValue(recipe.batch_size)
        self.blur.setValue(recipe.blur_prob)
        self.jpeg.setValue(recipe.jpeg_prob)
        self.workers.setValue(recipe.workers)

    def overrides(self) -> dict:
        chosen = {"epochs": self.epochs.value(), "lr": self.lr.value(), "batch_size": self.batch_size.value(),
                  "blur_prob": self.blur.value(), "jpeg_prob": self.jpeg.value(), "workers": self.workers.value()}
        if is_probe(RECIPES[self.recipe.currentText()]):
            return {"batch_size": self.batch_size.value(), "workers": self.workers.value(),
                    "tower": self.tower.text().strip()}
        start = self.start_from.currentData()
        if start == "none":
            chosen["pretrained"] = "none"
        elif start:
            chosen.update(fine_tuning_overrides(self.wizard().library, start))
        return chosen

    def validatePage(self) -> bool:
        wizard: TrainingWizard = self.wizard()
        try:
            recipe = make_recipe(self.recipe.currentText(), self.overrides())
            wizard.job = plan_training(recipe, wizard.data_page.dataset.root, self.name.text().strip(),
                                       library=wizard.library, device=self.device.currentText())
        except TrainingSetupError as exc:
            self.error.setText(str(exc))
            return False
        self.error.setText("")
        return True


def _spin(low: int, high: int) -> QSpinBox:
    box = QSpinBox()
    box.setRange(low, high)
    return box


def _probability() -> QDoubleSpinBox:
    box = QDoubleSpinBox()
    box.setRange(0.0, 1.0)
    box.setSingleStep(0.1)
    return box


# ---- 3. training ----------------------------------------------------------------------------------------
class TrainPage(QWizardPage):
    def __init__(self) -> None:
        super().__init__()
        self.setTitle("Training")
        self.setSubTitle("Stop ends within the current batch and keeps the best checkpoint; Resume continues.")
        self.runs = WorkerPool(1, self)  # a pool of its own: a data check never queues a training run
        self.worker: Worker | None = None
        # the throttled slot drops none of the other events, which are few
        self._show_batch = qthrottled(self._batch_event, timeout=1000 // BATCH_EVENTS_PER_S, parent=self)
        self.outcome: TrainingOutcome | None = None
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.epoch_bar = QProgressBar()
        self.epoch_bar.setFormat("epoch %v of %m")
        self.batch_bar = QProgressBar()
        self.batch_bar.setFormat("batch %v of %m")
        self.chart = LearningCurveView()
        self.log = QPlainTextEdit()
        self.log.setReadOnly(True)
        self.log.setMaximumBlockCount(2000)
        self.stop_button = QPushButton("Stop")
        self.stop_button.clicked.connect(self.stop)
        self.resume_button = QPushButton("Resume")
        self.resume_button.clicked.connect(lambda: self.start(resume=True))
        self.settings_button = QPushButton("Change the settings")
        self.settings_button.setToolTip("Back to the first page; the data folder is kept")
        self.settings_button.clicked.connect(lambda: self.wizard().restart())
        self.failed_reason = ""
        buttons = QHBoxLayout()
        buttons.addWidget(self.stop_button)
        buttons.addWidget(self.resume_button)
        buttons.addWidget(self.settings_button)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        for widget in (self.status, self.epoch_bar, self.batch_bar):
            layout.addWidget(widget)
        layout.addWidget(self.chart, 3)
        layout.addWidget(self.log, 1)
        layout.addLayout(buttons)

    def initializePage(self) -> None:
        self.chart.clear()
        self.log.clear()
        self.start(resume=False)

    def cleanupPage(self) -> None:
        self.stop_and_wait()  # restart() from a failed or stopped run: nothing may still be training

    def start(self, resume: bool) -> None:
        job = self.wizard().job
        self.outcome, self.failed_reason = None, ""
        self.chart.set_epochs(job.recipe.epochs)
        self.epoch_bar.setRange(0, job.recipe.epochs)
        self.status.setText(f"{'Resuming' if resume else 'Starting'} {job.recipe.name} ({job.recipe.architecture}) "
                            f"on {job.data}…")
        cancel = CancelToken()  # Stop: training ends within the current batch and keeps its best checkpoint
        self.worker = self.runs.start(
            lambda report: run_training(job, ModelLibrary(), on_event=report, cancel=cancel, resume=resume),
            done=self._on_finished, failed=self._on_failed, progress=self._on_event, cancel=cancel)
        self._set_running(True)

    def stop(self) -> None:
        if self.worker is not None:
            self.worker.stop()
            self.status.setText("Stopping after this batch…")

    def stop_and_wait(self, timeout_ms: int = 60_000) -> None:
        """Stop and wait a while for the run to end (its last checkpoint being written); a run still busy after
        that (a step that cannot be interrupted) is left to finish on its own, detached from this page."""
        self.stop()
        if self.worker is not None and not self.runs.wait(timeout_ms):
            self.runs.detach()
            self.runs = WorkerPool(1, self)
            self.worker = None

    def close_without_waiting(self) -> None:
        self.stop_and_wait(timeout_ms=0)

    def is_running(self) -> bool:
        return self.worker is not None

    def _set_running(self, running: bool) -> None:
        self.stop_button.setEnabled(running)
        unfinished = not running and (self.failed_reason or (self.outcome is not None and self.outcome.entry is None))
        self.resume_button.setVisible(bool(unfinished) and can_resume(self.wizard().job))
        self.settings_button.setVisible(bool(unfinished))
        self.completeChanged.emit()

    def _on_event(self, event: TrainingEvent) -> None:
        if event.kind == "batch" and event.batch < event.batches:
            self._show_batch(event)
            return
        self._show_batch.cancel()  # an older batch held back must not land after this newer event
        v = event.values
        if event.kind == "started":
            self._say(f"{v['train']} training and {v['val']} validation images on {v['device']}")
        elif event.kind == "progress":  # a linear probe's feature batches
            self.batch_bar.setRange(0, event.batches)
            self.batch_bar.setValue(event.batch)
            self.status.setText(f"Computing {event.message}: batch {event.batch} of {event.batches}")
        elif event.kind == "epoch_start":
            self.batch_bar.setRange(0, event.batches)
            self.batch_bar.setValue(0)
        elif event.kind == "batch":
            self._batch_event(event)
        elif event.kind == "epoch_end":
            self.epoch_bar.setValue(event.epoch)
            self.chart.add_epoch(v)
            self._say(f"epoch {event.epoch}/{event.epochs}: train loss {v['train_loss']:.4f} accuracy "
                      f"{v['train_accuracy']:.3f} | validation loss {v['val_loss']:.4f} accuracy "
                      f"{v['val_accuracy']:.3f}")
        elif event.message:
            self._say(event.message)

    def _batch_event(self, event: TrainingEvent) -> None:
        v = event.values
        self.batch_bar.setValue(event.batch)
        self.status.setText(f"Epoch {event.epoch} of {event.epochs}: loss {v['loss']:.4f}, accuracy "
                            f"{v['accuracy']:.3f}, {v['images_per_s']:.1f} images/s")

    def _say(self, line: str) -> None:
        self.log.appendPlainText(line)

    def _on_failed(self, reason: str) -> None:
        self.failed_reason = reason
        self._say(f"Training failed: {reason}")
        self.status.setText(f"<b>Training failed:</b> {html.escape(reason)}")
        self._on_finished(None)

    def _on_finished(self, outcome: TrainingOutcome | None) -> None:
        self.worker = None
        self.outcome = outcome
        if outcome is not None and outcome.entry is not None:
            self.status.setText(f"Done ({outcome.result.status}, best epoch {outcome.result.best_epoch}): "
                                f"{outcome.entry.card.id} is in the library.")
            self.wizard().model_added.emit(outcome.entry.card.id)
        elif outcome is not None:
            self.status.setText("Stopped. The best checkpoint so far is kept; Resume continues from the last "
                                "finished epoch.")
        self._set_running(False)  # after a failure the status keeps its reason

    def isComplete(self) -> bool:
        return self.outcome is not None and self.outcome.entry is not None
