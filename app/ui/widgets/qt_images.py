"""PIL images and numpy arrays into Qt images. QImage (unlike QPixmap) may be built in a worker thread."""
from __future__ import annotations

from PIL import Image
from PySide6.QtGui import QImage


def pil_to_qimage(image: Image.Image) -> QImage:
    rgb = image.convert("RGB")
    data = rgb.tobytes()
    wrapped = QImage(data, rgb.width, rgb.height, 3 * rgb.width, QImage.Format.Format_RGB888)
    return wrapped.copy()  # own the pixels: `data` is freed when this function returns


def pil_rgba_to_qimage(image: Image.Image) -> QImage:
    """With its transparency (a layer laid over a picture)."""
    rgba = image.convert("RGBA")
    data = rgba.tobytes()
    wrapped = QImage(data, rgba.width, rgba.height, 4 * rgba.width, QImage.Format.Format_RGBA8888)
    return wrapped.copy()
