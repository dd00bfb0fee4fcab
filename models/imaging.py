"""Decoding any file a user may point us at into an RGB image, or a readable reason why not.

Nothing here may take the process down: every failure becomes an ImageDecodeError with a sentence a user
understands. Evidence files are only ever opened for reading.
"""
from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

# Our own guard replaces Pillow's: it allows the 160-megapixel photos seen in seed 002 (JPEGs are then
# decoded at reduced size with draft) and refuses anything bigger with a clear message.
MAX_PIXELS = 256_000_000
MAX_FILE_BYTES = 1 << 30  # 1 GiB: bigger than any real photo, small enough to hash in memory
Image.MAX_IMAGE_PIXELS = None
warnings.simplefilter("ignore", Image.DecompressionBombWarning)


class ImageDecodeError(Exception):
    """The file cannot be scored; str() is the reason shown to the user."""


@dataclass
class DecodedImage:
    image: Image.Image  # RGB, EXIF orientation applied, maybe draft-reduced
    width: int  # stored pixel size, as in the file header
    height: int
    format: str
    mode: str  # the file's own colour mode before conversion (CMYK, I;16, P, ...)
    frames: int = 1
    notes: list[str] = field(default_factory=list)


def read_file(path: Path) -> tuple[bytes, str]:
    """The file's bytes and their SHA-256, read once so that what we hash is what we decode."""
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise ImageDecodeError(f"file too large to be an image we can scan ({size / 2**30:.1f} GiB)")
        with open(path, "rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except PermissionError:
        raise ImageDecodeError("cannot read the file: permission denied") from None
    except IsADirectoryError:
        raise ImageDecodeError("is a folder, not a file") from None
    except FileNotFoundError:
        raise ImageDecodeError("the file disappeared before it could be read") from None
    except OSError as exc:
        raise ImageDecodeError(f"cannot read the file: {exc.strerror or exc}") from None
    return data, hashlib.sha256(data).hexdigest()


def decode(data: bytes, *, draft_size: int | None = None, background: tuple[int, int, int] = (255, 255, 255),
           max_pixels: int = MAX_PIXELS) -> DecodedImage:
    """Decode image bytes to RGB. draft_size: the smallest side the caller needs (JPEG may decode smaller)."""
    if not data:
        raise ImageDecodeError("empty file (0 bytes)")
    try:
        img = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise ImageDecodeError("not a recognised image format") from None
    except Image.DecompressionBombError as exc:
        raise ImageDecodeError(f"refused as a decompression bomb: {exc}") from None
    except Exception as exc:  # a malformed header can raise nearly anything inside a plugin
        raise ImageDecodeError(f"corrupt image header ({type(exc).__name__}: {exc})") from None

    width, height = img.size
    fmt, mode = img.format or "unknown", img.mode
    if width <= 0 or height <= 0:
        raise ImageDecodeError(f"invalid image size {width}×{height}")
    if width * height > max_pixels:
        raise ImageDecodeError(
            f"refused as a possible decompression bomb: {width}×{height} = {width * height / 1e6:.0f} "
            f"megapixels exceeds the {max_pixels / 1e6:.0f}-megapixel limit")
    frames = int(getattr(img, "n_frames", 1) or 1)
    notes = [f"animated ({frames} frames): scored on the first frame"] if frames > 1 else []
    try:
        if draft_size and fmt == "JPEG":
            img.draft(None, (draft_size, draft_size))  # DCT-domain downscale, never below draft_size
        img.load()
    except Exception as exc:
        text = str(exc)
        if "truncated" in text.lower() or isinstance(exc, EOFError):
            raise ImageDecodeError(f"truncated image: the file ends before the picture does ({text})") from None
        raise ImageDecodeError(f"corrupt image data ({type(exc).__name__}: {text})") from None

    try:
        img = ImageOps.exif_transpose(img)
    except Exception:
        notes.append("EXIF orientation unreadable: shown as stored")
    return DecodedImage(to_rgb(img, background), width, height, fmt, mode, frames, notes)


def to_rgb(img: Image.Image, background: tuple[int, int, int] = (255, 255, 255)) -> Image.Image:
    """Any Pillow mode as 8-bit RGB; transparency composited over `background`, 16/32-bit scaled down."""
    mode = img.mode
    if mode == "RGB":
        return img
    if mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
        mode = img.mode
        if mode == "RGB":
            return img
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (*background, 255))
        return Image.alpha_composite(canvas, rgba).convert("RGB")
    if mode.startswith("I;16") or mode in ("I", "F"):
        return Image.fromarray(_scale_to_uint8(np.asarray(img)), "L").convert("RGB")
    try:
        return img.convert("RGB")  # L, 1, CMYK, YCbCr, RGBX, HSV ...
    except (ValueError, OSError) as exc:
        raise ImageDecodeError(f"unsupported colour mode {mode} ({exc})") from None


def _scale_to_uint8(values: np.ndarray) -> np.ndarray:
    values = values.astype(np.float64)
    finite = values[np.isfinite(values)]
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    if values.dtype.kind == "f" and 0.0 <= low and high <= 1.0:
        scaled = values * 255.0  # float images in 0..1
    elif low >= 0 and high <= 65535:
        scaled = values / 257.0  # 16-bit range
    else:
        scaled = (values - low) / max(high - low, 1e-12) * 255.0
    return np.clip(np.nan_to_num(scaled), 0, 255).round().astype(np.uint8)
