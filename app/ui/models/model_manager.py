"""Models → Manage models: the library's detectors with their cards; import, remove, choose the default.

Imports run on a worker thread (hashing and checking a 100 MB checkpoint takes a moment). The library
writes an import in a staging folder and renames it only when everything fits, so a refused file changes
nothing; the reason is shown in a message box.
"""
from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QComboBox, QDialog, QDialogButtonBox, QFileDialog, QHBoxLayout, QInputDialog, QLabel,
                               QListWidget, QListWidgetItem, QMessageBox, QPushButton, QSplitter, QTextBrowser,
                               QVBoxLayout)

from app.ui.widgets.messages import show_error
from app.ui.workers import WorkerPool
from models.card import INPUT_POLICIES, CardError
from models.input_settings import set_model_input
from models.library import LibraryEntry, ModelLibrary
from models.registry import get_architecture

_IMPORT_FILTER = "Detectors (*.safetensors *.pth *.pt *.bin *.ckpt *.onnx card.json);;All files (*)"


class ModelManagerDialog(QDialog):
    library_changed = Signal()
    import_finished = Signal(bool)  # True when a model was added
    calibration_finished = Signal(bool)  # True when a calibrated variant was added
    ensemble_finished = Signal(bool)  # True when an ensemble was added

    def __init__(self, library: ModelLibrary | None = None, parent=None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Models")
        self.resize(860, 540)
        self.library = library or ModelLibrary()
        self._workers = WorkerPool(threads=1, parent=self)

        self.model_list = QListWidget()
        self.model_list.currentItemChanged.connect(lambda *_: self._show_card())
        self.card_view = QTextBrowser()
        self.import_button = QPushButton("Import…")
        self.import_button.setToolTip("A Forensight model folder or card.json, a .safetensors file, or a "
                                      ".pth/.pt state dict (never unpickled with code execution)")
        self.import_button.clicked.connect(lambda: self.import_model())
        self.remove_button = QPushButton("Remove")
        self.remove_button.clicked.connect(lambda: self.remove_selected())
        self.default_button = QPushButton("Make default")
        self.default_button.clicked.connect(self.make_selected_default)
        self.calibrate_button = QPushButton("Calibrate…")
        self.calibrate_button.setToolTip("Fit the selected model's P(fake) and threshold on photos you know are "
                                         "real (and AI-generated): a new, calibrated model; this one is kept")
        self.calibrate_button.clicked.connect(lambda: self.calibrate_selected())
        self.ensemble_button = QPushButton("Create ensemble…")
        self.ensemble_button.setToolTip("Combine several of these models into one: the mean of their calibrated "
                                        "logits, or a logistic regression fitted on pictures you know")
        self.ensemble_button.clicked.connect(lambda: self.create_ensemble())
        self.known_button = QPushButton("Add a known detector…")
        self.known_button.setToolTip("Published detectors (CNNDetection, NPR, Corvi et al., Hugging Face and ONNX "
                                     "models …): what to download, and importing the downloaded file")
        self.known_button.clicked.connect(lambda: self.show_known_detectors())
        self.policy_box = QComboBox()  # how the selected model looks at a picture (your own models only)
        self.policy_box.addItems(INPUT_POLICIES)
        self.policy_box.setToolTip("What the model looks at: tiles and full analyse the whole picture at its own "
                                   "resolution (tiles also give a tile map). Shipped models are read-only.")
        self.policy_box.activated.connect(lambda _: self.set_selected_policy(self.policy_box.currentText()))
        self.status = QLabel("")
        self.status.setWordWrap(True)
        close = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        close.rejected.connect(self.reject)

        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(self.model_list)
        splitter.addWidget(self.card_view)
        splitter.setSizes([280, 580])
        buttons = QHBoxLayout()
        for button in (self.import_button, self.known_button, self.remove_button, self.default_button,
                       self.calibrate_button, self.ensemble_button):
            buttons.addWidget(button)
        buttons.addWidget(QLabel("Looks at:"))
        buttons.addWidget(self.policy_box)
        buttons.addStretch(1)
        buttons.addWidget(close)
        layout = QVBoxLayout(self)
        layout.addWidget(splitter, 1)
        layout.addWidget(self.status)
        layout.addLayout(buttons)
        self.refresh()

    # ---- listing -----------------------------------------------------------------------------
    def refresh(self, select: str | None = None) -> None:
        current = select or self.selected_id()
        default = self.library.default_id()
        self.model_list.clear()
        for entry in self.library.entries():
            card = entry.card
            mark = "★ " if card.id == default else ""
            item = QListWidgetItem(f"{mark}{card.name}\n    {card.id} · {card.architecture}")
            item.setData(Qt.ItemDataRole.UserRole, card.id)
            self.model_list.addItem(item)
            if card.id == current:
                self.model_list.setCurrentItem(item)
        if self.model_list.currentItem() is None and self.model_list.count():
            self.model_list.setCurrentRow(0)
        if not self.model_list.count():
            self.card_view.setHtml("<p>No detector is installed. Use <b>Import…</b> to add a checkpoint.</p>")
        self._update_buttons()

    def model_ids(self) -> list[str]:
        return [self.model_list.item(i).data(Qt.ItemDataRole.UserRole) for i in range(self.model_list.count())]

    def selected_id(self) -> str | None:
        item = self.model_list.currentItem()
        return item.data(Qt.ItemDataRole.UserRole) if item else None

    def _selected_entry(self) -> LibraryEntry | None:
        model_id = self.selected_id()
        return next((e for e in self.library.entries() if e.card.id == model_id), None)

    def _show_card(self) -> None:
        entry = self._selected_entry()
        if entry is not None:
            self.card_view.setHtml(card_html(entry, entry.card.id == self.library.default_id()))
        self._update_buttons()

    def _update_buttons(self, busy: bool = False) -> None:
        entry = self._selected_entry()
        self.import_button.setEnabled(not busy)
        self.remove_button.setEnabled(not busy and entry is not None and not entry.shipped)
        self.default_button.setEnabled(not busy and entry is not None)
        ensemble = entry is not None and entry.card.architecture == "ensemble"  # no input or calibration of its own
        self.calibrate_button.setEnabled(not busy and entry is not None and not ensemble)
        self.ensemble_button.setEnabled(not busy and len(self.model_ids()) >= 2)
        self.policy_box.setEnabled(not busy and entry is not None and not entry.shipped and not ensemble)
        if entry is not None:
            self.policy_box.setCurrentText(entry.card.input.policy)

    def set_selected_policy(self, policy: str) -> None:
        """The same change as `forensight models set ID input.policy=POLICY`."""
        entry = self._selected_entry()
        if entry is None or policy == entry.card.input.policy:
            return
        try:
            set_model_input(self.library, entry.card.id, {"policy": policy})
        except (CardError, ValueError) as exc:
            show_error(self, "Policy not changed", f"{entry.card.id} cannot use {policy}.", str(exc))
            self.policy_box.setCurrentText(entry.card.input.policy)
            return
        self.refresh(select=entry.card.id)
        self.status.setText(f"{entry.card.id} now uses {policy}; its next scan rescores every file.")

    # ---- changing the library ----------------------------------------------------------------
    def import_model(self, path: Path | None = None, family: str | None = None, tower: Path | None = None) -> None:
        if path is None:
            chosen, _ = QFileDialog.getOpenFileName(self, "Import a detector", str(Path.home()), _IMPORT_FILTER)
            if not chosen:
                return
            path = Path(chosen)
        fake_label = None
        if path.is_dir() and not (path / "card.json").exists() and (path / "config.json").is_file():
            fake_label = self._fake_label_for(path)  # a Hugging Face folder: which label means fake?
            if fake_label is False:
                return
        self.status.setText(f"Importing {path.name}…")
        self._update_buttons(busy=True)
        self._workers.start(lambda: self.library.import_path(path, family=family, fake_label=fake_label or None,
                                                             tower=tower),
                            done=self._imported, failed=lambda reason: self._import_failed(path, reason))

    def _fake_label_for(self, folder: Path) -> str | None | bool:
        """None when the labels say which one means fake; the label the user picked; False when cancelled."""
        from models.checkpoints import CheckpointError
        from models.families.huggingface import NeedsFakeLabel, fake_labels, labels_of, read_config

        try:
            fake_labels(labels_of(read_config(folder)))
        except NeedsFakeLabel as exc:
            return self.ask_fake_label(folder.name, exc.labels)
        except CheckpointError:
            pass  # the import itself explains what is wrong with the folder
        return None

    def ask_fake_label(self, name: str, labels: list[str]) -> str | bool:
        label, ok = QInputDialog.getItem(self, "Which output means AI-generated?",
                                         f"The labels of {name} do not say which one means AI-generated.\n"
                                         "Choose the label that means fake:", labels, 0, False)
        return label if ok and label else False

    def show_known_detectors(self) -> "KnownDetectorsDialog":
        dialog = KnownDetectorsDialog(self)
        dialog.show()
        return dialog

    def _imported(self, entry: LibraryEntry) -> None:
        self.status.setText(f"Imported {entry.card.id} ({entry.card.architecture}, "
                            f"weights {entry.card.weights_sha256[:12]}).")
        self.refresh(select=entry.card.id)
        self.library_changed.emit()
        self.import_finished.emit(True)

    def _import_failed(self, path: Path, reason: str) -> None:
        self.status.setText("")
        self._update_buttons()
        show_error(self, "Import failed", f"Cannot import {path.name}.", f"{reason}\n\nThe library is unchanged.")
        self.import_finished.emit(False)

    def remove_selected(self, confirm: bool = True) -> None:
        entry = self._selected_entry()
        if entry is None:
            return
        if confirm and QMessageBox.question(
                self, "Remove model", f"Delete {entry.card.id} and its weights from the library?\n"
                f"{entry.directory}") != QMessageBox.StandardButton.Yes:
            return
        try:
            self.library.remove(entry.card.id)
        except Exception as exc:
            show_error(self, "Cannot remove", str(exc).strip("'\""))
            return
        self.status.setText(f"Removed {entry.card.id}.")
        self.refresh()
        self.library_changed.emit()

    def make_selected_default(self) -> None:
        model_id = self.selected_id()
        if model_id is None:
            return
        try:
            self.library.set_default(model_id)
        except Exception as exc:
            show_error(self, "Cannot set the default", str(exc).strip("'\""))
            return
        self.status.setText(f"{model_id} is now the default model.")
        self.refresh(select=model_id)
        self.library_changed.emit()

    # ---- calibrating (app/services/calibration.py, the same as `forensight calibrate`) ----------------------
    def calibrate_selected(self, request=None) -> None:
        """Ask for the photos (unless `request` is given), then calibrate on the worker thread."""
        from app.services.calibration import run_calibration

        entry = self._selected_entry()
        if entry is None:
            return
        if request is None:
            from app.ui.models.calibrate_dialog import CalibrateDialog

            dialog = CalibrateDialog(entry.card.id, self)
            if dialog.exec() != QDialog.DialogCode.Accepted or (request := dialog.request()) is None:
                return
        self._run_job(lambda library, progress: run_calibration(request, library, progress),
                      f"Calibrating {entry.card.id}", "photos", self.calibration_finished,
                      "Calibration refused", f"{entry.card.id} was not calibrated.")

    # ---- ensembles (app/services/ensemble.py, the same as `forensight ensemble create`) --------------------------
    def create_ensemble(self, request=None) -> None:
        """Ask for the members and the rule (unless `request` is given), then create it on the worker thread
        (a logistic fit scores the reference pictures with every member first)."""
        from app.services.ensemble import run_ensemble

        if request is None:
            from app.ui.models.ensemble_dialog import EnsembleDialog

            dialog = EnsembleDialog(self.library.entries(), self)
            if dialog.exec() != QDialog.DialogCode.Accepted or (request := dialog.request()) is None:
                return
        self._run_job(lambda library, progress: run_ensemble(request, library, progress),
                      f"Creating {request.model_id}", "reference pictures", self.ensemble_finished,
                      "Ensemble refused", f"{request.model_id} was not created.")

    def _run_job(self, job, doing: str, scored: str, finished: Signal, refused: str, not_done: str) -> None:
        """Run a library job (calibration, ensemble: job(library, progress) → an outcome with .entry and .lines())
        on the worker thread, its progress in the status line; the new model selected, or the refusal shown.
        `finished` is emitted with True or False once the dialog is up to date."""
        self.status.setText(f"{doing}…")
        self._update_buttons(busy=True)
        library = self.library

        def succeeded(outcome) -> None:
            self.status.setText("\n".join(outcome.lines()))
            self.refresh(select=outcome.entry.card.id)
            self.library_changed.emit()
            finished.emit(True)

        def failed(reason: str) -> None:
            self.status.setText("")
            self._update_buttons()
            show_error(self, refused, not_done, f"{reason}\n\nThe library is unchanged.")
            finished.emit(False)

        self._workers.start(lambda report: job(library, report), done=succeeded, failed=failed,
                            progress=lambda done, total: self.status.setText(
                                f"{doing}: scored {done} of {total} {scored}…"))

    def done(self, result: int) -> None:
        self._workers.shutdown()
        super().done(result)


def card_html(entry: LibraryEntry, is_default: bool) -> str:
    """A model card for people: what it is, what it was trained on, how well it did, how it decides."""
    from models.preprocess import describe_policy

    card, e = entry.card, html.escape
    arch = get_architecture(card.architecture)
    spec = card.input
    policy = describe_policy(spec)
    family = [("Family", f"{_family_name(card.family)} — {card.provenance.get('paper', '')}".rstrip(" —"))
              ] if card.family else []
    facts = [
        ("Id", card.id), *family, ("Architecture", f"{card.architecture} — {arch.family}"),
        ("Output", f"{card.num_logits} logit(s), {card.output}" + (f", fake = logit {card.fake_index}"
                                                                    if card.num_logits == 2 else "")),
        ("Input", "each member's own, as on its card" if card.ensemble else
                  f"{policy}; mean {tuple(spec.mean)}, std {tuple(spec.std)}"),
        ("Threshold", f"{card.threshold:g} (inconclusive {card.inconclusive_band[0]:g}–"
                      f"{card.inconclusive_band[1]:g})"),
        ("Trained on", card.trained_on or "not stated"),
        ("Weights", f"{card.weights_file}, SHA-256 {card.weights_sha256}"),
        ("Origin", ("ships with Forensight" if entry.shipped else "yours") + f" — {entry.directory}"),
    ]
    rows = "".join(f"<tr><td valign='top'><b>{e(k)}</b></td><td style='padding-left:8px'>{e(v)}</td></tr>"
                   for k, v in facts)
    parts = [f"<h2 style='margin:2px'>{e(card.name)}{' ★ default' if is_default else ''}</h2>"]
    if card.description:
        parts.append(f"<p>{e(card.description)}</p>")
    parts.append(f"<table>{rows}</table>")
    parts.append("<h3 style='margin:8px 0 2px'>Measured metrics</h3>")
    parts.append(_mapping_html(card.metrics) if card.metrics else
                 "<p>None recorded: evaluate this model on data like your casework before relying on it.</p>")
    if card.limitations:
        parts.append(f"<h3 style='margin:8px 0 2px'>Limitations</h3><p>{e(card.limitations)}</p>")
    if card.calibration:
        parts.append(_calibration_html(entry))
    if card.ensemble:
        parts.append(_ensemble_html(card))
    if card.provenance:
        parts.append("<h3 style='margin:8px 0 2px'>Provenance</h3>" + _mapping_html(card.provenance))
    return "".join(parts)


def _calibration_html(entry: LibraryEntry) -> str:
    """What a calibrated variant was fitted on and achieved, with its reliability diagram when it is there."""
    from models.calibration import describe

    parts = ["<h3 style='margin:8px 0 2px'>Calibration</h3>",
             f"<p>{html.escape(describe(entry.card.calibration))}.</p>"]
    diagram = entry.directory / str(entry.card.calibration.get("fitted_on", {}).get("reliability_diagram", ""))
    if diagram.is_file() and diagram.parent == entry.directory:
        parts.append(f"<p><img src='{html.escape(diagram.as_uri())}' width='520'></p>")
    return "".join(parts)


def _ensemble_html(card) -> str:
    """The members (id, weights, calibrated or not), the rule and what it was fitted and measured on."""
    from models.ensemble import describe

    e = html.escape
    rows = "".join(f"<tr><td><b>{e(m['id'])}</b></td><td style='padding-left:8px'>{e(m.get('name', ''))}</td>"
                   f"<td style='padding-left:8px'>weights {e(m['weights_sha256'][:16])}</td>"
                   f"<td style='padding-left:8px'>{'calibrated' if m.get('calibrated') else 'own P(fake)'}</td></tr>"
                   for m in card.ensemble["members"])
    return (f"<h3 style='margin:8px 0 2px'>Ensemble — {e(card.ensemble['combine'])}</h3><table>{rows}</table>"
            f"<p>{e(describe(card.ensemble))}.</p>")


def _mapping_html(values: dict[str, Any]) -> str:
    def show(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:.4g}"
        if isinstance(value, dict):
            return ", ".join(f"{k}: {show(v)}" for k, v in value.items())
        return str(value)

    rows = "".join(f"<tr><td valign='top'><b>{html.escape(str(k))}</b></td>"
                   f"<td style='padding-left:8px'>{html.escape(show(v))}</td></tr>" for k, v in values.items())
    return f"<table>{rows}</table>"


def _family_name(family: str) -> str:
    from models.families import catalogue_entry

    try:
        return catalogue_entry(family)["name"]
    except (KeyError, OSError, ValueError):
        return family


BENCHMARKS_ITEM = "benchmarks"  # the list's last item: not a family (family ids are the catalogue's)


class KnownDetectorsDialog(QDialog):
    """Models → Manage models → Add a known detector…: the catalogue of published detectors (which are
    installed, what to download and from where, under which licence), and importing the downloaded file."""

    def __init__(self, manager: ModelManagerDialog) -> None:
        super().__init__(manager)
        self.setWindowTitle("Known detectors")
        self.resize(900, 560)
        self.manager = manager
        self.detector_list = QListWidget()
        self.detector_list.currentItemChanged.connect(lambda *_: self._show())
        self.details = QTextBrowser()
        self.details.setOpenExternalLinks(False)
        self.file_button = QPushButton("Import downloaded file…")
        self.file_button.clicked.connect(lambda: self.import_download())
        self.folder_button = QPushButton("Import model folder…")
        self.folder_button.clicked.connect(lambda: self.import_download(folder=True))
        close = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        close.rejected.connect(self.reject)
        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(self.detector_list)
        splitter.addWidget(self.details)
        splitter.setSizes([300, 600])
        buttons = QHBoxLayout()
        buttons.addWidget(self.file_button)
        buttons.addWidget(self.folder_button)
        buttons.addStretch(1)
        buttons.addWidget(close)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("Download a detector's published file on a connected computer, bring it here and "
                                "import it: Forensight recognises the family and sets the authors' input and "
                                "output."))
        layout.addWidget(splitter, 1)
        layout.addLayout(buttons)
        manager.library_changed.connect(self.refresh)
        self.refresh()

    def refresh(self) -> None:
        from models.families import catalogue_benchmarks, catalogue_status

        current = self.selected_id()
        self.rows = {row["id"]: row for row in catalogue_status(self.manager.library)}
        self.benchmarks = catalogue_benchmarks()
        self.detector_list.clear()
        for row in self.rows.values():
            item = QListWidgetItem(f"{row['name']}\n    {status_text(row)}")
            item.setData(Qt.ItemDataRole.UserRole, row["id"])
            self.detector_list.addItem(item)
            if row["id"] == current:
                self.detector_list.setCurrentItem(item)
        if self.benchmarks:  # last: the studies that compared these detectors
            item = QListWidgetItem(f"Independent benchmarks\n    {len(self.benchmarks)} studies, results by threat")
            item.setData(Qt.ItemDataRole.UserRole, BENCHMARKS_ITEM)
            self.detector_list.addItem(item)
            if current == BENCHMARKS_ITEM:
                self.detector_list.setCurrentItem(item)
        if self.detector_list.currentItem() is None and self.detector_list.count():
            self.detector_list.setCurrentRow(0)

    def selected_id(self) -> str | None:
        item = self.detector_list.currentItem()
        return item.data(Qt.ItemDataRole.UserRole) if item else None

    def statuses(self) -> dict[str, str]:
        return {row["id"]: status_text(row) for row in self.rows.values()}

    def _show(self) -> None:
        if self.selected_id() == BENCHMARKS_ITEM:
            self.details.setHtml(benchmarks_html(self.benchmarks))
            self.file_button.setEnabled(False)
            self.folder_button.setEnabled(False)
            return
        row = self.rows.get(self.selected_id() or "")
        if row is None:
            return
        self.details.setHtml(known_html(row))
        importable = row["status"] == "importable"
        self.file_button.setEnabled(importable and row["id"] != "huggingface")
        self.folder_button.setEnabled(importable and row["id"] == "huggingface")

    def import_download(self, path: Path | None = None, folder: bool = False, tower: Path | None = None) -> None:
        family = self.selected_id()
        if path is None:
            if folder:
                chosen = QFileDialog.getExistingDirectory(self, "A Hugging Face model folder", str(Path.home()))
            else:
                chosen, _ = QFileDialog.getOpenFileName(self, "The downloaded file", str(Path.home()), _IMPORT_FILTER)
            if not chosen:
                return
            path = Path(chosen)
        from models.families import TOWER_FAMILIES, family_ids

        if family in TOWER_FAMILIES and tower is None:  # UnivFD: the head, then the CLIP tower it scores
            chosen, _ = QFileDialog.getOpenFileName(self, "The CLIP image tower (open_clip_pytorch_model.bin or "
                                                    "open_clip_model.safetensors)", str(path.parent), _IMPORT_FILTER)
            if not chosen:
                return
            tower = Path(chosen)
        # a state family is forced (its tensors may be shared with another family); formats speak for themselves
        forced = family if family in family_ids() and family not in ("huggingface", "onnx") else None
        self.manager.import_model(path, family=forced, tower=tower)


def status_text(row: dict[str, Any]) -> str:
    if row["installed"]:
        return "installed: " + ", ".join(row["installed"])
    if row["status"] == "trainable":
        return "trained, not imported: Models > Train a model…, recipe linear_probe"
    return "not installed" if row["status"] == "importable" else "listed; Forensight cannot import it yet"


def known_html(row: dict[str, Any]) -> str:
    e = html.escape
    facts = [("Paper", f"{row['authors']}, “{row['paper']}”, {row['venue']}" if row["paper"] else ""),
             ("Code", row["code"]), ("Licence", row["licence"]), ("Network", row["architecture"]),
             ("Input", row["input"]), ("Preprocessing from", row["preprocessing_source"]),
             ("Training data", row["training_data"]), ("Validated on", ", ".join(row["validated_on"])),
             ("Known weaknesses", row["weaknesses"]),
             ("Independent results", " ".join(f"{item['benchmark']} ({item['where']}): {item['result']}."
                                              for item in row["independent_results"])),
             ("In this library", status_text(row))]
    rows = "".join(f"<tr><td valign='top'><b>{e(k)}</b></td><td style='padding-left:8px'>{e(str(v))}</td></tr>"
                   for k, v in facts if v)
    files = "".join(f"<li><b>{e(item['file'])}</b> ({e(item['variant'])}): {e(item['download'])}"
                    + (f"<br>{e(item['headline'])}" if item["headline"] else "") + "</li>" for item in row["files"])
    return (f"<h2 style='margin:2px'>{e(row['name'])}</h2><table>{rows}</table>"
            + (f"<h3 style='margin:8px 0 2px'>Files to download</h3><ul>{files}</ul>" if files else ""))


def benchmarks_html(benchmarks: list[dict[str, Any]]) -> str:
    """The catalogue's independent benchmarks: what each measured, its findings and its results by threat."""
    e = html.escape
    parts = ["<h2 style='margin:2px'>Independent benchmarks</h2><p>Choose a detector by the threat you face, then "
             "measure it on pictures like yours (Evaluate, Calibrate).</p>"]
    for bench in benchmarks:
        findings = "".join(f"<li>{e(text)}</li>" for text in bench["findings"])
        threats = "".join(f"<tr><td valign='top'><b>{e(item['threat'])}</b></td>"
                          f"<td style='padding-left:8px'>{e(item['result'])}</td></tr>" for item in bench["by_threat"])
        parts.append(f"<h3 style='margin:8px 0 2px'>{e(bench['name'])}: {e(bench['title'])}</h3>"
                     f"<p>{e(bench['where'])} (from {e(bench['source'])}). {e(bench['scope'])}.</p>"
                     f"<ul>{findings}</ul><table>{threats}</table>"
                     + (f"<p><i>{e(bench['per_detector'])}</i></p>" if bench["per_detector"] else ""))
    return "".join(parts)
