"""Light and dark colour schemes, and the colours that mean the same thing everywhere in the app."""
from __future__ import annotations

from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication

from models.labels import FAKE, INCONCLUSIVE, REAL

# A verdict always has the same colour, in the table, the histogram and the detail view.
LABEL_COLOURS = {REAL: QColor("#2e9d4f"), FAKE: QColor("#d64541"), INCONCLUSIVE: QColor("#e0a526")}
TRUE_CLASS_COLOURS = {"real": QColor("#3a7bd5"), "fake": QColor("#b04ac0"), None: QColor("#8a8a8a")}
ERROR_COLOUR = QColor("#8a8a8a")


def is_dark(widget) -> bool:
    """Whether the widget is drawn on a dark background (charts pick their theme from it)."""
    return widget.palette().window().color().lightness() < 128


def apply_palette(app: QApplication, dark: bool) -> None:
    app.setStyle("Fusion")  # the one style that follows a custom palette on every platform
    app.setPalette(dark_palette() if dark else app.style().standardPalette())


def dark_palette() -> QPalette:
    palette = QPalette()
    roles = {
        QPalette.ColorRole.Window: "#2b2b2b", QPalette.ColorRole.WindowText: "#e6e6e6",
        QPalette.ColorRole.Base: "#1f1f1f", QPalette.ColorRole.AlternateBase: "#272727",
        QPalette.ColorRole.ToolTipBase: "#3a3a3a", QPalette.ColorRole.ToolTipText: "#e6e6e6",
        QPalette.ColorRole.Text: "#e6e6e6", QPalette.ColorRole.Button: "#353535",
        QPalette.ColorRole.ButtonText: "#e6e6e6", QPalette.ColorRole.BrightText: "#ff6b6b",
        QPalette.ColorRole.Highlight: "#3d6fb4", QPalette.ColorRole.HighlightedText: "#ffffff",
        QPalette.ColorRole.Link: "#7aa7e6", QPalette.ColorRole.PlaceholderText: "#8c8c8c",
    }
    for role, colour in roles.items():
        palette.setColor(role, QColor(colour))
    for role in (QPalette.ColorRole.Text, QPalette.ColorRole.ButtonText, QPalette.ColorRole.WindowText):
        palette.setColor(QPalette.ColorGroup.Disabled, role, QColor("#7a7a7a"))
    return palette
