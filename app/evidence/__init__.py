"""Evidence beyond the pixels: what a file says about itself (EXIF and its thumbnail, generator metadata,
IPTC-IIM, whether its dates agree, C2PA, JPEG facts).

Each finding names its source and strength and is shown beside the model's score, never folded into it.
`analyse` works on bytes already in memory (the ones the scan hashed), so evidence files are never reopened.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Callable

from PIL import Image

from app.evidence.findings import STRENGTHS, Finding

__all__ = ["Finding", "STRENGTHS", "analyse"]

Check = Callable[[bytes, "Image.Image | None"], list[Finding]]


def _checks() -> list[tuple[str, Check]]:
    # Imported here so that `from app.evidence import Finding` stays light (the case imports it).
    from app.evidence.c2pa_check import check_c2pa
    from app.evidence.dates import check_dates
    from app.evidence.exif import check_exif
    from app.evidence.generator_metadata import check_generator_metadata
    from app.evidence.iptc import check_iptc
    from app.evidence.jpeg_facts import check_jpeg_facts
    from app.evidence.thumbnail import check_thumbnail

    return [("EXIF", check_exif), ("EXIF thumbnail", check_thumbnail), ("generator metadata",
            check_generator_metadata), ("IPTC-IIM", check_iptc), ("dates", check_dates),
            ("Content Credentials", check_c2pa), ("JPEG facts", check_jpeg_facts)]


def analyse(data: bytes, path: Path | str | None = None) -> list[Finding]:
    """Every check's findings for one file's bytes; a failing check becomes one 'info' finding."""
    findings: list[Finding] = []
    checks = _checks()  # first: importing them registers HEIC/AVIF and quiets Pillow's warnings (models.imaging)
    try:
        image = open_metadata(data)
    except Exception as exc:
        image = None
        findings.append(Finding("file", "not_an_image", "info",
                                f"Metadata not checked: not a readable image ({type(exc).__name__})."))
    try:
        for name, check in checks:
            try:
                findings += check(data, image)
            except Exception as exc:
                findings.append(Finding("file", "check_failed", "info",
                                        f"Could not check {name}: {type(exc).__name__}: {str(exc)[:200]}"))
    finally:
        if image is not None:
            image.close()
    return findings


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_TEXT_AND_EXIF = {b"tEXt", b"zTXt", b"iTXt", b"eXIf"}


def open_metadata(data: bytes) -> Image.Image:
    """The file's headers and metadata, parsed; its pixels are never decoded here.

    Pillow reads the PNG chunks that follow the pixel data only by decoding every pixel first (a PNG's
    getexif() does so, and a header claiming 60,000×60,000 made that gigabytes). So those chunks are moved in
    front of the pixel data, where Pillow parses them with the header, and Pillow is told that no EXIF remains
    to be found ("Raw profile type exif" text is still read by getexif)."""
    image = Image.open(io.BytesIO(png_metadata_first(data)))
    if image.format == "PNG":
        image.info.setdefault("exif", None)
    return image


_MAX_PNG_CHUNKS = 100_000  # real PNGs have tens to thousands (8 KiB IDATs); the list stays a few MB


def png_metadata_first(data: bytes) -> bytes:
    """A PNG with its text and EXIF chunks from after the first IDAT moved before it; anything else as it is.
    Only offsets are kept while walking, the walk stops at the first chunk that is not one (its type must be
    four ASCII letters) and after _MAX_PNG_CHUNKS, so a hostile file cannot make the list itself large."""
    if not data.startswith(_PNG_SIGNATURE):
        return data
    chunks: list[tuple[bytes, int, int]] = []  # (type, start, end) of each chunk as stored, CRC included
    at = len(_PNG_SIGNATURE)
    while at + 12 <= len(data) and len(chunks) < _MAX_PNG_CHUNKS:
        kind = data[at + 4:at + 8]
        end = at + 12 + int.from_bytes(data[at:at + 4], "big")
        if end > len(data) or not kind.isalpha() or not kind.isascii():
            break  # a truncated or damaged chunk stays in the tail, as it was
        chunks.append((kind, at, end))
        at = end
        if kind == b"IEND":
            break
    first_idat = next((i for i, (kind, _, _) in enumerate(chunks) if kind == b"IDAT"), None)
    if first_idat is None:
        return data
    late = [i for i, (kind, _, _) in enumerate(chunks) if i > first_idat and kind in _PNG_TEXT_AND_EXIF]
    if not late:
        return data
    moved = [data[chunks[i][1]:chunks[i][2]] for i in late]
    late_set = set(late)
    kept = [data[start:end] for i, (_, start, end) in enumerate(chunks) if i not in late_set]
    return b"".join([_PNG_SIGNATURE, *kept[:first_idat], *moved, *kept[first_idat:], data[at:]])
