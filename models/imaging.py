"""Decoding any file a user may point us at into an RGB image, or a readable reason why not.

Nothing here may take the process down: every failure becomes an ImageDecodeError with a sentence a user
understands. Evidence files are only ever opened for reading.

Every decode of pixels goes through two limits: the per-image limit (MAX_PIXELS, checked on the header before
anything is allocated) and one process-wide PixelBudget that caps the pixels all threads hold decoded at once,
so that a scan with many workers, a preview and a report together cannot exhaust memory.
"""
from __future__ import annotations

import hashlib
import io
import os
import threading
import warnings
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError, features

# Our own guard replaces Pillow's: it allows the 160-megapixel photos seen in seed 002 (JPEGs are then
# decoded at reduced size with draft) and refuses anything bigger with a clear message.
MAX_PIXELS = 256_000_000
MAX_FILE_BYTES = 1 << 30  # 1 GiB: bigger than any real photo, small enough to hash in memory
Image.MAX_IMAGE_PIXELS = None
warnings.simplefilter("ignore", Image.DecompressionBombWarning)
# Pillow (and pillow-heif) warn on stderr about damaged metadata ("Possibly corrupt EXIF data", "Truncated
# File Read", ...) from deep inside Image.open; a scan of a thousand files under -q must not print them, and
# catch_warnings is not thread-safe, so one filter for their modules is installed once. What matters about
# such files reaches the user as findings and notes (the EXIF check, truncation reasons), not as warnings.
warnings.filterwarnings("ignore", module=r"(PIL|pillow_heif)(\.|$)")


def _register_extra_formats() -> None:
    """HEIC/HEIF (every iPhone's default) through pillow-heif, and AVIF where this Pillow lacks it."""
    try:
        import pillow_heif
    except ImportError:  # an installation without it reads every other format as before
        return
    pillow_heif.register_heif_opener()
    try:
        native_avif = features.check_module("avif")
    except ValueError:  # a Pillow older than 11.2 does not know the module
        native_avif = False
    if not native_avif and hasattr(pillow_heif, "register_avif_opener"):
        pillow_heif.register_avif_opener()


_register_extra_formats()


class PixelBudget:
    """A weighted semaphore counted in decoded pixels, shared by every thread of the process.

    `reserve(n)` waits until n more pixels fit, holds them for the `with` block, and gives them back. Requests
    are served first come, first served, so a big picture is not starved by a stream of small ones; a single
    request larger than the whole budget (possible only with a budget below MAX_PIXELS) waits until it is
    alone. `peak` is the most pixels ever held at once, for tests and diagnostics.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = max(1, int(capacity))
        self.used = 0
        self.peak = 0
        self._changed = threading.Condition()
        self._queue: deque[object] = deque()

    @contextmanager
    def reserve(self, pixels: int) -> Iterator[None]:
        pixels = max(0, int(pixels))
        ticket = object()
        with self._changed:
            self._queue.append(ticket)
            try:
                self._changed.wait_for(lambda: self._queue[0] is ticket and self._fits(pixels))
            finally:
                self._queue.remove(ticket)
                self._changed.notify_all()  # the next in line may fit now
            self.used += pixels
            self.peak = max(self.peak, self.used)
        try:
            yield
        finally:
            with self._changed:
                self.used -= pixels
                self._changed.notify_all()

    @property
    def waiting(self) -> int:
        """Requests waiting for room now."""
        with self._changed:
            return len(self._queue)

    def _fits(self, pixels: int) -> bool:
        return self.used == 0 or self.used + pixels <= self.capacity


# A decoded pixel costs 4 bytes in Pillow, and up to about 16 at the peak of a decode (the loaded picture, its
# rotated copy, its RGB conversion). The budget lets decoding use about a quarter of the computer's memory at
# that rate — never less than one largest image (or big photos could not be scanned at all) and never more
# than two, so that a scan's worst case stays near 8 GB on any machine: four 16,000² pictures (1,024 MP) are
# never decoded at once, while ordinary photos (a few megapixels, far less after JPEG draft decoding) never
# wait for each other.
BYTES_PER_PIXEL_AT_PEAK = 16


def physical_memory() -> int:
    """Bytes of RAM, or 0 where the system does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # Windows has no sysconf: the floor applies
        return 0


def default_budget_pixels(memory: int | None = None) -> int:
    memory = physical_memory() if memory is None else memory
    return max(MAX_PIXELS, min(memory // (4 * BYTES_PER_PIXEL_AT_PEAK), 2 * MAX_PIXELS))


BUDGET = PixelBudget(default_budget_pixels())


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


def open_image(data: bytes) -> Image.Image:
    """The image's header, parsed: size, mode and metadata, no pixels yet."""
    if not data:
        raise ImageDecodeError("empty file (0 bytes)")
    try:
        return Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise ImageDecodeError("not a recognised image format") from None
    except Image.DecompressionBombError as exc:
        raise ImageDecodeError(f"refused as a decompression bomb: {exc}") from None
    except Exception as exc:  # a malformed header can raise nearly anything inside a plugin
        raise ImageDecodeError(f"corrupt image header ({type(exc).__name__}: {exc})") from None


def check_size(width: int, height: int, max_pixels: int = MAX_PIXELS) -> None:
    if width <= 0 or height <= 0:
        raise ImageDecodeError(f"invalid image size {width}×{height}")
    if width * height > max_pixels:
        raise ImageDecodeError(
            f"refused as a possible decompression bomb: {width}×{height} = {width * height / 1e6:.0f} "
            f"megapixels exceeds the {max_pixels / 1e6:.0f}-megapixel limit")


@contextmanager
def loading(img: Image.Image, max_pixels: int = MAX_PIXELS) -> Iterator[Image.Image]:
    """Load an opened image's pixels (at its size after any draft) under the per-image limit and the process
    budget; the pixels stay reserved until the `with` block ends, so keep big copies inside it."""
    check_size(img.width, img.height, max_pixels)
    with BUDGET.reserve(decode_cost(img)):
        _load_pixels(img)
        yield img


def decode_cost(img: Image.Image) -> int:
    """Pixels to reserve for loading an opened image: its size after any draft, except for a progressive JPEG,
    whose decoder keeps every DCT coefficient of the full-size picture (about 3 bytes a stored pixel) however
    small the draft output is."""
    pixels = img.width * img.height
    if img.format in ("JPEG", "MPO") and img.info.get("progressive"):
        scale = (getattr(img, "decoderconfig", None) or (1,))[0] or 1  # what draft() divided the size by
        return pixels * scale * scale
    return pixels


def _load_pixels(img: Image.Image) -> None:
    try:
        img.load()
    except Exception as exc:
        text = str(exc)
        if "truncated" in text.lower() or isinstance(exc, EOFError):
            raise ImageDecodeError(f"truncated image: the file ends before the picture does ({text})") from None
        raise ImageDecodeError(f"corrupt image data ({type(exc).__name__}: {text})") from None


@contextmanager
def decoding(data: bytes, *, draft_size: int | None = None, background: tuple[int, int, int] = (255, 255, 255),
             max_pixels: int = MAX_PIXELS) -> Iterator[DecodedImage]:
    """Decode image bytes to RGB and hold the decoded pixels' share of the budget until the block ends.
    draft_size: the smallest side the caller needs (JPEG may decode smaller)."""
    img = open_image(data)
    width, height = img.size
    fmt, mode = img.format or "unknown", img.mode
    check_size(width, height, max_pixels)
    img, frames, notes = _count_frames(img, data)
    if fmt in ("JPEG", "MPO"):
        notes += missing_jpeg_data(data)
        if draft_size:
            img.draft(None, (draft_size, draft_size))  # DCT-domain downscale, never below draft_size
    with loading(img, max_pixels):
        try:
            ImageOps.exif_transpose(img, in_place=True)  # in place: the default returns a full copy
        except Exception:
            notes.append("EXIF orientation unreadable: shown as stored")
        yield DecodedImage(to_rgb(img, background), width, height, fmt, mode, frames, notes)


def _count_frames(img: Image.Image, data: bytes) -> tuple[Image.Image, int, list[str]]:
    """The image (reopened if counting disturbed it), its frame count and a note when it has several."""
    try:
        frames = int(getattr(img, "n_frames", 1) or 1)
    except Exception:  # a damaged later frame: Pillow's count fails partway and leaves the file mid-seek
        return open_image(data), 1, ["later frames are damaged: scored on the first frame"]
    return img, frames, [f"animated ({frames} frames): scored on the first frame"] if frames > 1 else []


def decode(data: bytes, *, draft_size: int | None = None, background: tuple[int, int, int] = (255, 255, 255),
           max_pixels: int = MAX_PIXELS) -> DecodedImage:
    """decoding() for callers that keep the picture afterwards: its pixels leave the budget when this returns,
    so use it where the picture is draft-sized or soon reduced, and `decoding` where a big one is worked on."""
    with decoding(data, draft_size=draft_size, background=background, max_pixels=max_pixels) as decoded:
        return decoded


# ---- a JPEG's header against the data it holds -------------------------------------------------------------
_HUFFMAN_FRAMES = (0xC0, 0xC1, 0xC2)  # baseline, extended and progressive Huffman-coded DCT


def missing_jpeg_data(data: bytes) -> list[str]:
    """A note when the file is too small to hold the picture its header claims.

    Huffman coding spends at least one bit on every 8×8 block (its DC code is never empty), so a file of N
    bytes holds at most 8N blocks; libjpeg fills the rest with flat grey and Pillow reports nothing. Arithmetic
    coding has no such floor, so it is not judged."""
    frame = jpeg_frame(data)
    if frame is None or frame[0] not in _HUFFMAN_FRAMES:
        return []
    _, width, height, sampling = frame
    blocks = _block_count(width, height, sampling)
    present = len(data) * 8 / blocks if blocks else 1.0
    if present >= 1.0:
        return []
    return [f"the header claims {width}×{height} pixels but the file holds only {len(data):,} bytes: at most "
            f"{present:.1%} of the picture can be in it; the rest is missing and decodes as flat grey, which "
            "the score describes too"]


def jpeg_frame(data: bytes) -> tuple[int, int, int, list[tuple[int, int]]] | None:
    """(start-of-frame marker, width, height, [(h, v) sampling per component]) from a JPEG's header."""
    at = 2
    while at + 4 <= len(data) and data[at] == 0xFF:
        marker = data[at + 1]
        if marker == 0xFF:  # fill byte before a marker
            at += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:  # markers without a length
            at += 2
            continue
        length = int.from_bytes(data[at + 2:at + 4], "big")
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # SOFn, not DHT, JPG or DAC
            body = data[at + 4:at + 2 + length]
            if len(body) < 6:
                return None
            height, width, count = int.from_bytes(body[1:3], "big"), int.from_bytes(body[3:5], "big"), body[5]
            sampling = [(body[6 + 3 * i + 1] >> 4, body[6 + 3 * i + 1] & 15)
                        for i in range(count) if 6 + 3 * i + 2 < len(body)]
            return marker, width, height, sampling
        if marker == 0xDA or length < 2:  # scan data or a broken length: no frame header before it
            return None
        at += 2 + length
    return None


def _block_count(width: int, height: int, sampling: list[tuple[int, int]]) -> int:
    """8×8 blocks of all components, each subsampled by its factors against the largest ones."""
    if not sampling:
        return 0
    h_max = max(h for h, _ in sampling) or 1
    v_max = max(v for _, v in sampling) or 1
    blocks = 0
    for h, v in sampling:
        columns = -(-width * h // h_max)  # ceil division
        rows = -(-height * v // v_max)
        blocks += -(-columns // 8) * -(-rows // 8)
    return blocks


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
    """Scaled in one float32 copy, in place: float64 temporaries cost 8 bytes a pixel each on a 256 MP scan."""
    scaled = values.astype(np.float32)
    finite = scaled[np.isfinite(scaled)] if values.dtype.kind == "f" else scaled
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    del finite
    if values.dtype.kind == "f" and 0.0 <= low and high <= 1.0:
        scaled *= 255.0  # float images in 0..1
    elif low >= 0 and high <= 65535:
        scaled /= 257.0  # 16-bit range
    else:
        scaled -= low
        scaled *= 255.0 / max(high - low, 1e-12)
    np.nan_to_num(scaled, copy=False)
    np.clip(scaled, 0, 255, out=scaled)
    return np.rint(scaled, out=scaled).astype(np.uint8)
