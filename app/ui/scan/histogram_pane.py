"""The histogram with its chooser: whose scores it shows when the table holds several models."""
from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from app.ui.scan.histogram import HistogramView
from app.ui.scan.results_model import ResultsModel


class HistogramPane(QWidget):
    model_chosen = Signal()  # chosen_model() changed: its thresholds may differ

    def __init__(self, results: ResultsModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.view = HistogramView()
        self.view.follow(results)
        self.chooser = QComboBox()
        self.chooser.setToolTip("Whose scores the histogram shows")
        self.chooser.currentIndexChanged.connect(lambda *_: self._chosen())
        row = QHBoxLayout()
        row.addWidget(QLabel("Histogram of"))
        row.addWidget(self.chooser)
        row.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(row)
        layout.addWidget(self.view, 1)

    def set_models(self, models: list[str]) -> None:
        """The table's models, its own first (chosen); one model or none leaves nothing to choose."""
        self.chooser.blockSignals(True)
        self.chooser.clear()
        for model_id in models:
            self.chooser.addItem(model_id, model_id)
        self.chooser.blockSignals(False)
        self.chooser.setEnabled(len(models) > 1)
        self._chosen()

    def chosen_model(self) -> str | None:
        return self.chooser.currentData()

    def _chosen(self) -> None:
        self.view.show_model(self.chosen_model())
        self.model_chosen.emit()
