"""The log file a user attaches to a bug report: the traceback of every unexpected error the tool caught, while
the user sees one sentence. It rotates (5 × 1 MiB) in the user data folder, so it never grows without bound."""
from __future__ import annotations

import logging
import logging.handlers
from pathlib import Path

from models.formatting import format_timestamp

LEVELS = ("debug", "info", "warning", "error")
_FORMAT = "%(asctime)s %(levelname)s %(threadName)s %(name)s: %(message)s"
_handler: logging.Handler | None = None


class _Formatter(logging.Formatter):
    """Log lines stamped by format_timestamp's rule (UTC, offset written out), to the millisecond: a bug
    report's times then read the same wherever it is read, and line up with the case's and the CSV's."""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return format_timestamp(record.created, timespec="milliseconds")


def log_path() -> Path:
    from models.library import data_home

    return data_home() / "logs" / "forensight.log"


def setup_logging(level: str = "info") -> Path | None:
    """Send every logger (the app's, the engine's, the libraries' warnings) to the rotating log file. Returns
    the file, or None when it cannot be written (a read-only home must not stop a scan)."""
    global _handler
    path = log_path()
    root = logging.getLogger()
    if _handler is None or Path(_handler.baseFilename) != path.absolute():  # the user data folder may change
        if _handler is not None:
            root.removeHandler(_handler)
            _handler.close()
            _handler = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            _handler = logging.handlers.RotatingFileHandler(path, maxBytes=1 << 20, backupCount=5,
                                                            encoding="utf-8", errors="backslashreplace")
        except OSError:
            return None
        _handler.setFormatter(_Formatter(_FORMAT))
        root.addHandler(_handler)
    root.setLevel(getattr(logging, level.upper(), logging.INFO))
    logging.captureWarnings(True)  # library warnings go to the file, not over the progress bar
    return path
