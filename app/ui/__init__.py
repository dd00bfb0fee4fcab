"""The desktop app: the only package that imports PySide6. `run_app` opens the main window."""
from __future__ import annotations

import os
import sys

# superqt (app/ui/workers.py) reaches Qt through qtpy, which would take PyQt5 if one were installed: never mix two
os.environ.setdefault("QT_API", "pyside6")


def run_app(argv: list[str] | None = None) -> int:
    if not _display_available():
        print("forensight: the desktop window needs a display (none found). Scan from the command line with "
              "`forensight scan PATH`, or see `forensight --help`.", file=sys.stderr)
        return 2
    from PySide6.QtWidgets import QApplication

    from app.ui.main_window import MainWindow
    from app.ui.widgets.palette import apply_palette
    from app.ui.widgets.settings import APPLICATION, ORGANISATION, open_settings, read_bool

    app = QApplication.instance() or QApplication([sys.argv[0], *(argv or [])])
    app.setOrganizationName(ORGANISATION)
    app.setApplicationName(APPLICATION)
    apply_palette(app, read_bool(open_settings(), "view/dark", False))
    window = MainWindow()
    window.show()
    return app.exec()


def _display_available() -> bool:
    """On Linux without X11 or Wayland, Qt would abort the process; Windows and macOS always have one."""
    if not sys.platform.startswith("linux"):
        return True
    return any(os.environ.get(name) for name in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"))
