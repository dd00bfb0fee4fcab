"""The scan toolbar's choices: the detector (and more models for the same pass), where inference runs, the
threshold and inconclusive band, and whether sub-folders are scanned."""
from __future__ import annotations

from PySide6.QtCore import QSettings, Qt, Signal
from PySide6.QtGui import QAction, QStandardItem, QStandardItemModel
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDoubleSpinBox, QLabel, QListView, QMenu, QToolBar, QToolButton,
                               QWidget, QWidgetAction)

from app.ui.widgets.settings import read_bool, read_float
from models.device import DeviceError, describe_device, select_device
from models.labels import Thresholds
from models.library import LibraryEntry, ModelLibrary


class ProbabilityBox(QDoubleSpinBox):
    """A probability with the card's own precision (a calibrated threshold such as 0.9081 must not become 0.91,
    or the window's verdicts would differ from the command line's), shown without trailing zeros."""

    def __init__(self) -> None:
        super().__init__()
        self.setRange(0.0, 1.0)
        self.setDecimals(6)
        self.setSingleStep(0.01)

    def textFromValue(self, value: float) -> str:
        return f"{value:.6f}".rstrip("0").rstrip(".") if value else "0"


class ScanToolbar(QToolBar):
    model_picked = Signal(str)  # the detector for the next scan changed (its card's thresholds are set)
    also_changed = Signal()  # models ticked or unticked for the same pass
    thresholds_changed = Signal()  # thresholds() may raise: the values may not fit together

    def __init__(self, library: ModelLibrary, settings: QSettings, device: str, leading: list[QAction],
                 trailing: list[QAction], parent: QWidget | None = None) -> None:
        super().__init__("Scan", parent)
        self.setObjectName("scanToolbar")
        self.setMovable(False)
        self.library, self.settings, self.device = library, settings, device
        self.model_picker = QComboBox()
        self.model_picker.setMinimumContentsLength(18)
        self.model_picker.setToolTip("The detector used for the next scan")
        self.model_picker.currentIndexChanged.connect(self._model_picked)
        self.device_label = QLabel("")
        self.device_label.setToolTip("Where inference runs")
        self.threshold_box = self._probability_box("P(fake) at or above which a picture is called AI-generated")
        self.band_low_box = self._probability_box("Lower end of the inconclusive band")
        self.band_high_box = self._probability_box("Upper end of the inconclusive band (equal ends: no band)")
        self.recursive_box = QCheckBox("Sub-folders")
        self.recursive_box.setToolTip("Also scan the folders inside the chosen folder")
        self.recursive_box.setChecked(True)
        self.addActions(leading)
        self.addSeparator()
        for widget in (QLabel(" Model "), self.model_picker, self._build_also_picker(), self.device_label):
            self.addWidget(widget)
        self.addSeparator()
        for widget in (QLabel(" Threshold "), self.threshold_box, QLabel(" Inconclusive "), self.band_low_box,
                       QLabel("–"), self.band_high_box, self.recursive_box):
            self.addWidget(widget)
        self.addSeparator()
        self.addActions(trailing)

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
        box = ProbabilityBox()
        box.setToolTip(tip)
        box.valueChanged.connect(lambda _value: self.thresholds_changed.emit())
        return box

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

    def pick_model(self, model_id: str) -> None:
        self.model_picker.setCurrentIndex(self.model_picker.findData(model_id))

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

    def card_thresholds(self, model_id: str | None) -> Thresholds | None:
        entry = next((e for e in self.library.entries() if e.card.id == model_id), None)
        return None if entry is None else Thresholds.around(entry.card.threshold, entry.card.inconclusive_band)

    def _fill_model_choices(self, entries: list[LibraryEntry]) -> None:
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
        self.also_changed.emit()

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
            self.set_thresholds(card.threshold, *card.inconclusive_band)
            self.settings.setValue("scan/model", model_id)
        self._update_also_button()  # the picker's model never counts twice
        self.model_picked.emit(model_id)

    def _update_device_label(self) -> None:
        try:
            self.device_label.setText(f"  {describe_device(select_device(self.device))}  ")
        except DeviceError as exc:
            self.device_label.setText(f"  device: {exc}  ")

    # ---- thresholds and the rest -----------------------------------------------------------------
    def set_thresholds(self, threshold: float, low: float, high: float) -> None:
        for box, value in ((self.threshold_box, threshold), (self.band_low_box, low), (self.band_high_box, high)):
            box.blockSignals(True)
            box.setValue(value)
            box.blockSignals(False)
        self.thresholds_changed.emit()

    def thresholds(self) -> Thresholds:
        """The thresholds in the toolbar; ValueError with the rule when they do not make sense."""
        return Thresholds(self.threshold_box.value(), self.band_low_box.value(), self.band_high_box.value())

    def recursive(self) -> bool:
        return self.recursive_box.isChecked()

    def set_scanning(self, scanning: bool) -> None:
        """The next scan's choices are fixed while one runs."""
        for widget in (self.model_picker, self.also_button, self.threshold_box, self.band_low_box,
                       self.band_high_box, self.recursive_box):
            widget.setEnabled(not scanning)

    def restore(self) -> None:
        s = self.settings
        self.recursive_box.setChecked(read_bool(s, "scan/recursive", True))
        if s.contains("scan/threshold"):
            self.set_thresholds(read_float(s, "scan/threshold", 0.5),
                                read_float(s, "scan/band_low", 0.3), read_float(s, "scan/band_high", 0.7))

    def save(self) -> None:
        s = self.settings
        s.setValue("scan/recursive", self.recursive_box.isChecked())
        s.setValue("scan/threshold", self.threshold_box.value())
        s.setValue("scan/band_low", self.band_low_box.value())
        s.setValue("scan/band_high", self.band_high_box.value())
        if model_id := self.picked_model_id():
            s.setValue("scan/model", model_id)
        s.setValue("scan/also_models", self.picked_model_ids()[1:])
