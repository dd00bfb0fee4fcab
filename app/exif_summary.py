"""A short, human-readable summary of the metadata a file carries, for the detail view. The reading itself
lives in app.evidence.exif, the one EXIF reader; this opens the file (read-only) and never raises."""
from __future__ import annotations

from pathlib import Path

from PIL import Image

from app.evidence.exif import exif_summary_of


def exif_summary(path: Path) -> list[tuple[str, str]]:
    """(name, value) pairs worth showing; empty when the file has none. Never raises."""
    try:
        with Image.open(path) as img:
            return exif_summary_of(img)
    except Exception:
        return []
