"""Models → Manage models → Create ensemble…: the members, the rule and (for a fitted rule) the reference
pictures. The work itself is app/services/ensemble.py, the same as `forensight ensemble create`."""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QComboBox, QDialog, QDialogButtonBox, QFormLayout, QLabel, QLineEdit, QListWidget,
                               QListWidgetItem, QWidget)

from app.services.ensemble import EnsembleRequest
from app.ui.widgets.path_fields import browse_row, path_of
from models.ensemble import COMBINE_RULES
from training.ensemble import MIN_PER_CLASS

RULE_TEXT = {"mean_logit": "mean of the members' calibrated logits (nothing to fit)",
             "logistic": "logistic regression fitted on pictures you know (real and AI-generated)"}


class EnsembleDialog(QDialog):
    def __init__(self, entries, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Create an ensemble")
        self.model_id = QLineEdit()
        self.model_id.setPlaceholderText("e.g. my-ensemble")
        self.members = QListWidget()
        for entry in entries:
            if entry.card.architecture == "ensemble":
                continue  # kept flat: an ensemble is never a member
            item = QListWidgetItem(f"{entry.card.name} ({entry.card.id})" + (" · calibrated" if entry.card.calibration
                                                                             else ""))
            item.setData(Qt.ItemDataRole.UserRole, entry.card.id)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(Qt.CheckState.Unchecked)
            self.members.addItem(item)
        self.rule = QComboBox()
        for rule in COMBINE_RULES:
            self.rule.addItem(RULE_TEXT[rule], rule)
        self.real, self.fake = QLineEdit(), QLineEdit()
        for line in (self.real, self.fake):
            line.setPlaceholderText(f"required by logistic (at least {MIN_PER_CLASS} pictures); optional otherwise")
        form = QFormLayout(self)
        form.addRow(QLabel("Each file is scored by every member in one pass; the ensemble's P(fake) and each "
                           "member's are kept in the case. Calibrate members first so that their scores are on "
                           "one scale."))
        form.addRow("Ensemble id:", self.model_id)
        form.addRow("Members (2 or more):", self.members)
        form.addRow("Combination:", self.rule)
        form.addRow("Real pictures:", browse_row(self, self.real))
        form.addRow("AI-generated:", browse_row(self, self.fake))
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)

    def tick(self, model_id: str, on: bool = True) -> None:
        for i in range(self.members.count()):
            item = self.members.item(i)
            if item.data(Qt.ItemDataRole.UserRole) == model_id:
                item.setCheckState(Qt.CheckState.Checked if on else Qt.CheckState.Unchecked)

    def request(self) -> EnsembleRequest | None:
        """What the fields ask for; None without an id. The job refuses what does not fit (one member …)."""
        if not self.model_id.text().strip():
            return None
        ticked = tuple(self.members.item(i).data(Qt.ItemDataRole.UserRole) for i in range(self.members.count())
                       if self.members.item(i).checkState() == Qt.CheckState.Checked)
        return EnsembleRequest(self.model_id.text().strip(), ticked, self.rule.currentData(), path_of(self.real),
                               path_of(self.fake))
