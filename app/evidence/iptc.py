"""IPTC-IIM, the pre-XMP IPTC block (Photoshop's APP13 resource in JPEG, a tag in TIFF), read with Pillow.

News agencies and some generators still write it: the originating program, the credit line (Google writes
"Made with Google AI" there), by-line, source and caption. A generator named as the originating program is
strong evidence; an AI statement in the free-text fields a person types (credit, source, caption) is moderate.
"""
from __future__ import annotations

import re

from PIL import Image, IptcImagePlugin

from app.evidence.findings import Finding
from app.evidence.generator_metadata import generator_name

FIELDS = {  # (record, dataset) → name, the IIM 4.2 application record fields worth an examiner's eye
    (2, 65): "originating_program",
    (2, 70): "program_version",
    (2, 80): "by_line",
    (2, 110): "credit",
    (2, 115): "source",
    (2, 116): "copyright",
    (2, 120): "caption",
    (2, 55): "date_created",
    (2, 60): "time_created",
}
FREE_TEXT = ("credit", "source", "caption")
AI_STATEMENT = re.compile(r"made with (google )?ai|imagined with ai|generated (with|by) ai|\bai[- ]generated\b|"
                          r"created (with|by|using) (an? )?(ai|artificial intelligence)", re.IGNORECASE)
MAX_VALUE = 200


def read_iptc(image: Image.Image) -> dict[str, str]:
    """The named IIM fields of an opened image ({} when it has no IIM block); ValueError when it is damaged."""
    try:
        raw = IptcImagePlugin.getiptcinfo(image)
    except Exception as exc:  # Pillow raises assorted errors on a damaged block
        raise ValueError(f"{type(exc).__name__}: {exc}") from None
    fields: dict[str, str] = {}
    for key, name in FIELDS.items():
        value = (raw or {}).get(key)
        values = value if isinstance(value, list) else [value] if value is not None else []
        text = "; ".join(_text(v) for v in values if _text(v))
        if text:
            fields[name] = text[:MAX_VALUE]
    return fields


def check_iptc(data: bytes, image: Image.Image | None) -> list[Finding]:
    if image is None or image.format not in ("JPEG", "TIFF"):
        return []
    try:
        fields = read_iptc(image)
    except ValueError as exc:
        return [Finding("iptc", "unreadable_iptc", "info", f"Unreadable IPTC-IIM block: {exc}.")]
    if not fields:
        return []
    findings: list[Finding] = []
    program = " ".join(filter(None, (fields.get("originating_program"), fields.get("program_version"))))
    name = generator_name(program)
    if name:
        findings.append(Finding("iptc", "generator_software", "strong",
                                f"IPTC Originating Program names an AI generator: {program[:80]}.",
                                {"originating_program": program, "generator": name}, "generated"))
    for field in FREE_TEXT:
        value = fields.get(field, "")
        if AI_STATEMENT.search(value) or generator_name(value):
            findings.append(Finding("iptc", "ai_statement", "moderate",
                                    f"IPTC {field.replace('_', ' ')} says the image involves AI: \"{value[:80]}\".",
                                    {field: value}, "generated"))
    summary = ", ".join(f"{key.replace('_', ' ')} {value[:60]!r}" for key, value in fields.items()
                        if key in ("by_line", "credit", "source", "originating_program", "date_created"))
    findings.append(Finding("iptc", "iptc_iim", "info", f"IPTC-IIM block present{': ' + summary if summary else ''}.",
                            fields))
    return findings


def _text(value: object) -> str:
    if isinstance(value, bytes):
        # IIM text is UTF-8 when 1:90 says so, Latin-1 in older files; UTF-8 first, then Latin-1, never fails
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError:
            value = value.decode("latin-1")
    return " ".join(str(value).replace("\x00", " ").split()) if value is not None else ""
