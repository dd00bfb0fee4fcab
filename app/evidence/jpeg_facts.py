"""Facts about how a file was encoded: the JPEG quality its quantisation tables imply, whether those are the
standard IJG tables (libjpeg-based software) or custom ones (cameras, some apps), and signs that an editor
re-saved it. Context for the examiner, never a verdict: all findings are 'info'."""
from __future__ import annotations

import re

from PIL import Image

from app.evidence import xmp
from app.evidence.exif import exif_software
from app.evidence.findings import Finding
from models.jpeg_tables import estimate_jpeg_quality, is_libjpeg_table

EDITORS = {  # display name → pattern matched in EXIF Software, XMP CreatorTool and XMP history (first match
    # wins: "Adobe Photoshop Lightroom Classic" and "Adobe Photoshop Camera Raw" are not Photoshop)
    "Adobe Lightroom": r"lightroom",
    "Adobe Camera Raw": r"camera raw",
    "Adobe Photoshop": r"photoshop",
    "GIMP": r"\bgimp\b",
    "Snapseed": r"snapseed",
    "Affinity Photo": r"affinity",
    "Pixelmator": r"pixelmator",
    "Paint.NET": r"paint\.net",
    "Capture One": r"capture one",
    "darktable": r"darktable",
    "RawTherapee": r"rawtherapee",
    "Luminar": r"luminar",
    "Picasa": r"picasa",
    "ACDSee": r"acdsee",
}
_EDITOR_RES = {name: re.compile(pattern, re.IGNORECASE) for name, pattern in EDITORS.items()}


def check_jpeg_facts(data: bytes, image: Image.Image | None) -> list[Finding]:
    if image is None:
        return []
    findings = _quality(image) if image.format == "JPEG" else []
    for where, software in _software_mentions(data, image):
        editor = editor_name(software)
        if editor:
            findings.append(Finding("file", "resaved_by_editor", "info",
                                    f"Re-saved by {editor} ({where}: {software[:80]}): the pixels may have been "
                                    "edited since capture.", {"software": software[:200], "editor": editor,
                                                              "where": where}))
            break  # one editor finding per file; the first place that names one is the most direct
    return findings


def editor_name(software: str) -> str:
    return next((name for name, pattern in _EDITOR_RES.items() if pattern.search(software)), "")


def _quality(image: Image.Image) -> list[Finding]:
    quantization = getattr(image, "quantization", None) or {}
    quality = estimate_jpeg_quality(quantization)
    if quality is None:
        return []
    standard = is_libjpeg_table(quantization, quality)
    message = (f"JPEG quality {quality}, standard IJG tables (libjpeg-based software)." if standard
               else f"JPEG quality about {quality} (nearest equivalent): custom tables, as cameras and some apps "
                    "write.")
    return [Finding("jpeg", "jpeg_quality", "info", message,
                    {"quality": quality, "standard_tables": standard, "tables": len(quantization)})]


def _software_mentions(data: bytes, image: Image.Image) -> list[tuple[str, str]]:
    """Where the file names the software that wrote it: EXIF Software, XMP CreatorTool, and the XMP edit
    history's softwareAgent entries (Photoshop and Lightroom log every save there)."""
    found = [("EXIF Software", software)] if (software := exif_software(image)) else []
    try:
        root = xmp.read_xmp(data, image)
    except Exception:
        return found  # reported by the generator-metadata check
    if root is not None:
        found += [("XMP CreatorTool", v) for v in dict.fromkeys(xmp.values_named(root, "CreatorTool"))]
        found += [("XMP history", v) for v in dict.fromkeys(xmp.values_named(root, "softwareAgent"))]
    return found
