"""Pictures for the screen, made in worker threads with the engine's own safe decoder (so a decompression
bomb or a truncated file costs a message, never the app): table thumbnails and detail-view previews."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image
from PySide6.QtGui import QImage

from app.evidence import open_metadata
from app.evidence.exif import exif_summary_of
from app.ui.widgets.qt_images import pil_to_qimage
from models.imaging import decoding, read_file

PREVIEW_MAX_SIDE = 4096  # bigger photos are shown reduced; the scan itself never depends on this


@dataclass
class Preview:
    path: str
    image: QImage  # EXIF orientation applied, at most PREVIEW_MAX_SIDE on its long side
    stored_size: tuple[int, int]  # the file's own pixel size
    reduced: bool
    exif: list[tuple[str, str]] = field(default_factory=list)


def make_thumbnail(path: str, side: int) -> QImage:
    data, _ = read_file(Path(path))
    with decoding(data, draft_size=side) as decoded:  # the full picture counts in the decode budget until shrunk
        image = decoded.image
        image.thumbnail((side, side), Image.BILINEAR)
        return pil_to_qimage(image)


def make_preview(path: str) -> Preview:
    data, _ = read_file(Path(path))
    with decoding(data, draft_size=PREVIEW_MAX_SIDE) as decoded:
        image = decoded.image
        image.thumbnail((PREVIEW_MAX_SIDE, PREVIEW_MAX_SIDE), Image.LANCZOS)
        reduced = max(image.size) < max(decoded.width, decoded.height)  # draft decoding or the size cap
        shown, stored = pil_to_qimage(image), (decoded.width, decoded.height)
    return Preview(path, shown, stored, reduced, exif_rows(data))


def exif_rows(data: bytes) -> list[tuple[str, str]]:
    """The EXIF worth showing, read from the same bytes as the picture (the file is not opened twice) and
    without decoding pixels: for a PNG, Pillow's own EXIF reading decodes the whole picture again."""
    try:
        with open_metadata(data) as image:
            return exif_summary_of(image)
    except Exception:  # damaged metadata costs the EXIF rows, never the preview
        return []
