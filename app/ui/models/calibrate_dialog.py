"""Models → Manage models → Calibrate…: which photos to calibrate the selected model on, and the rate to hold.
The work itself is app/services/calibration.py, the same as `forensight calibrate`."""
from __future__ import annotations

from PySide6.QtWidgets import (QCheckBox, QDialog, QDialogButtonBox, QDoubleSpinBox, QFormLayout, QLabel, QLineEdit,
                               QWidget)

from app.services.calibration import CalibrationRequest
from app.ui.widgets.path_fields import CASE_FILTER, browse_row, path_of
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
        form.addRow("Real photos:", browse_row(self, self.real))
        form.addRow("AI-generated:", browse_row(self, self.fake))
        form.addRow("False positives at most:", self.target)
        form.addRow("", self.needed)
        form.addRow("Scanned case:", browse_row(self, self.case, CASE_FILTER))
        form.addRow("", self.allow_overlap)
        form.addRow("New model id:", self.name)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)
        self._show_needed()

    def _show_needed(self) -> None:
        self.needed.setText(f"needs at least {reals_needed(self.target.value() / 100):,} real photos")

    def request(self) -> CalibrationRequest | None:
        """What the fields ask for; None without a real folder."""
        real = path_of(self.real)
        if real is None:
            return None
        return CalibrationRequest(self.model_id, real, path_of(self.fake), self.target.value() / 100,
                                  self.name.text().strip() or None, path_of(self.case), self.allow_overlap.isChecked())
