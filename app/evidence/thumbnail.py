"""The EXIF thumbnail against the picture it is meant to preview.

A camera writes both at the moment of capture. When the picture was later cropped, retouched or replaced by an
editor that kept the old EXIF, or when a generated image was given EXIF copied from a real photo, the thumbnail
still shows the original: a mismatch is moderate evidence that this is not the file the camera wrote. A match
proves little (local edits are too small to show at 160 pixels), so it is only noted.
"""
from __future__ import annotations

import numpy as np
from PIL import ExifTags, Image

from app.evidence.findings import Finding
from models.imaging import MAX_PIXELS, ImageDecodeError, check_size, loading, open_image

# Mean absolute grey-level difference (of 255). Measured on a real photo: its own thumbnail 3, the same photo
# cropped by 10% 34-36, mirrored 78, another photo 104; brightened by 30 levels 26 (not flagged).
MISMATCH = 30.0
MAX_THUMBNAIL_BYTES = 1 << 20  # EXIF must fit in one 64 KiB segment; anything bigger is not a thumbnail
# A camera's IFD1 thumbnail is about 160×120. A few kilobytes can claim 20,000×20,000 (9-15 GB to decode),
# so the claimed size is refused from the header, far above any real thumbnail.
MAX_THUMBNAIL_PIXELS = 1_000_000


def exif_thumbnail(image: Image.Image) -> bytes | None:
    """The JPEG thumbnail stored in IFD1 of the image's EXIF, or None."""
    raw = image.info.get("exif")
    if not isinstance(raw, bytes) or not raw:
        return None
    tiff = raw[6:] if raw.startswith(b"Exif\x00\x00") else raw
    try:
        ifd1 = image.getexif().get_ifd(ExifTags.IFD.IFD1)
    except Exception:
        return None  # damaged EXIF is reported by the EXIF check
    offset, length = ifd1.get(0x0201), ifd1.get(0x0202)  # JPEGInterchangeFormat, ...Length
    if not isinstance(offset, int) or not isinstance(length, int) or not 0 < length <= MAX_THUMBNAIL_BYTES:
        return None
    return tiff[offset:offset + length] or None


def check_thumbnail(data: bytes, image: Image.Image | None) -> list[Finding]:
    if image is None or image.format not in ("JPEG", "MPO"):
        return []
    thumbnail_bytes = exif_thumbnail(image)
    if thumbnail_bytes is None:
        return []
    try:
        thumbnail = open_image(thumbnail_bytes)  # header only: its claimed size is judged before any pixel
    except ImageDecodeError as exc:
        return [_unreadable(str(exc))]
    if thumbnail.width * thumbnail.height > MAX_THUMBNAIL_PIXELS:
        return [Finding("exif", "oversized_thumbnail", "info",
                        f"The EXIF thumbnail claims {thumbnail.width}×{thumbnail.height} pixels, far more than a "
                        "camera's preview (about 160×120); it was not decoded or compared.",
                        {"thumbnail_size": f"{thumbnail.width}×{thumbnail.height}"})]
    try:
        small = grey_pixels(thumbnail, MAX_THUMBNAIL_PIXELS)
    except ImageDecodeError as exc:
        return [_unreadable(str(exc))]
    try:
        difference = picture_difference(data, small)
    except ImageDecodeError:
        return []  # an undecodable picture is the scan's error row, not a metadata finding
    size = f"{small.shape[1]}×{small.shape[0]}"
    details = {"difference": round(difference, 1), "thumbnail_size": size}
    if difference > MISMATCH:
        return [Finding("exif", "thumbnail_mismatch", "moderate",
                        f"The EXIF thumbnail shows a different picture (mean difference {difference:.0f} of 255): "
                        "the image was cropped, edited or replaced after the thumbnail was written, or its EXIF "
                        "was copied from another file.", details)]
    return [Finding("exif", "thumbnail_matches", "info",
                    f"The EXIF thumbnail matches the picture (mean difference {difference:.0f} of 255); small "
                    "local edits would not show at this size.", details)]


def _unreadable(reason: str) -> Finding:
    return Finding("exif", "unreadable_thumbnail", "info", f"The EXIF thumbnail cannot be decoded ({reason}).")


def grey_pixels(img: Image.Image, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """The image as a float grey array, decoded within the pixel limits and released at once."""
    with loading(img, max_pixels):
        return np.asarray(img.convert("L"), dtype=np.float32)


def picture_difference(data: bytes, thumbnail: np.ndarray) -> float:
    """The picture decoded near twice the thumbnail's size (a cheap DCT-domain reduction) and compared to it.
    The thumbnail is already decoded and released, so this thread never holds two reservations at once."""
    th, tw = thumbnail.shape
    picture = open_image(data)
    check_size(picture.width, picture.height)  # the stored size, before draft makes it look small
    picture.draft("RGB", (tw * 2, th * 2))
    with loading(picture):
        return grey_difference(picture, thumbnail)


def grey_difference(picture: Image.Image, small: np.ndarray) -> float:
    """Mean absolute grey-level difference between the thumbnail's grey pixels and the picture scaled to them,
    the smaller of stretched and fitted (cameras often letterbox a 3:2 picture into a 4:3 thumbnail with black
    bars)."""
    th, tw = small.shape
    grey = picture.convert("L")
    stretched = np.asarray(grey.resize((tw, th), Image.BILINEAR), dtype=np.float32)
    scale = min(tw / grey.width, th / grey.height)
    fw, fh = max(1, round(grey.width * scale)), max(1, round(grey.height * scale))
    left, top = (tw - fw) // 2, (th - fh) // 2
    fitted = np.asarray(grey.resize((fw, fh), Image.BILINEAR), dtype=np.float32)
    return float(min(np.abs(stretched - small).mean(), np.abs(fitted - small[top:top + fh, left:left + fw]).mean()))
