"""A path typed or chosen with Browse…: the folders (and the case) the Calibrate… and Create ensemble… dialogs
ask for."""
from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QFileDialog, QHBoxLayout, QLineEdit, QPushButton, QWidget

CASE_FILTER = "Forensight cases (*.sqlite);;All files (*)"


def browse_row(owner: QWidget, line: QLineEdit, file_filter: str | None = None) -> QWidget:
    """`line` with a Browse… button beside it: a folder, or with `file_filter` a file."""
    def browse() -> None:
        if file_filter is None:
            chosen = QFileDialog.getExistingDirectory(owner, "Choose a folder", str(Path.home()))
        else:
            chosen, _ = QFileDialog.getOpenFileName(owner, "Choose a file", str(Path.home()), file_filter)
        if chosen:
            line.setText(chosen)

    button = QPushButton("Browse…")
    button.clicked.connect(browse)
    row = QWidget()
    layout = QHBoxLayout(row)
    layout.setContentsMargins(0, 0, 0, 0)
    layout.addWidget(line, 1)
    layout.addWidget(button)
    return row


def path_of(line: QLineEdit) -> Path | None:
    """The typed path; None when the field is empty."""
    text = line.text().strip()
    return Path(text) if text else None
