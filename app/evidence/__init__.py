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
    try:
        image = Image.open(io.BytesIO(data))  # headers and metadata only: pixels are never decoded here
    except Exception as exc:
        image = None
        findings.append(Finding("file", "not_an_image", "info",
                                f"Metadata not checked: not a readable image ({type(exc).__name__})."))
    try:
        for name, check in _checks():
            try:
                findings += check(data, image)
            except Exception as exc:
                findings.append(Finding("file", "check_failed", "info",
                                        f"Could not check {name}: {type(exc).__name__}: {str(exc)[:200]}"))
    finally:
        if image is not None:
            image.close()
    return findings
