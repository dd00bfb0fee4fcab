"""Models → Manage models → Calibrate…: which photos to calibrate the selected model on, and the rate to hold.
The work itself is app/calibration_job.py, the same as `forensight calibrate`."""
from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import (QCheckBox, QDialog, QDialogButtonBox, QDoubleSpinBox, QFileDialog, QFormLayout,
                               QHBoxLayout, QLabel, QLineEdit, QPushButton, QWidget)

from app.calibration_job import CalibrationRequest
from training.calibration import reals_needed


class CalibrateDialog(QDialog):
    def __init__(self, model_id: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model_id = model_id
        self.setWindowTitle(f"Calibrate {model_id}")
        self.real = QLineEdit()
        self.fake = QLineEdit()
        self.fake.setPlaceholderText("optional: without it only the threshold is set")
        self.case = QLineEdit()
        self.case.setPlaceholderText("optional: a case whose photos must not be among these")
        self.name = QLineEdit()
        self.name.setPlaceholderText(f"{model_id}-calibrated-YYYYMMDD")
        self.target = QDoubleSpinBox()
        self.target.setRange(0.1, 50.0)
        self.target.setDecimals(1)
        self.target.setSuffix(" %")
        self.target.setValue(1.0)
        self.allow_overlap = QCheckBox("Calibrate even if some photos are in the case (the card says so)")
        self.needed = QLabel()
        self.target.valueChanged.connect(lambda _: self._show_needed())
        form = QFormLayout(self)
        form.addRow(QLabel("Photos you know are real, from cameras and processing like your casework's (night "
                           "mode, retouching, re-encoding …). The threshold is set so that at most the target rate "
                           "of them would be called AI-generated, with 95% confidence."))
        form.addRow("Real photos:", self._with_browse(self.real, folder=True))
        form.addRow("AI-generated:", self._with_browse(self.fake, folder=True))
        form.addRow("False positives at most:", self.target)
        form.addRow("", self.needed)
        form.addRow("Scanned case:", self._with_browse(self.case, folder=False))
        form.addRow("", self.allow_overlap)
        form.addRow("New model id:", self.name)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)
        self._show_needed()

    def _with_browse(self, line: QLineEdit, folder: bool) -> QWidget:
        button = QPushButton("Browse…")
        button.clicked.connect(lambda: self._browse(line, folder))
        row = QWidget()
        layout = QHBoxLayout(row)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(line, 1)
        layout.addWidget(button)
        return row

    def _browse(self, line: QLineEdit, folder: bool) -> None:
        if folder:
            chosen = QFileDialog.getExistingDirectory(self, "Choose a folder", str(Path.home()))
        else:
            chosen, _ = QFileDialog.getOpenFileName(self, "Choose a case", str(Path.home()),
                                                    "Forensight cases (*.sqlite);;All files (*)")
        if chosen:
            line.setText(chosen)

    def _show_needed(self) -> None:
        self.needed.setText(f"needs at least {reals_needed(self.target.value() / 100):,} real photos")

    def request(self) -> CalibrationRequest | None:
        """What the fields ask for; None without a real folder."""
        def path(line: QLineEdit) -> Path | None:
            return Path(line.text().strip()) if line.text().strip() else None

        real = path(self.real)
        if real is None:
            return None
        return CalibrationRequest(self.model_id, real, path(self.fake), self.target.value() / 100,
                                  self.name.text().strip() or None, path(self.case), self.allow_overlap.isChecked())
