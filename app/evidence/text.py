"""Text read from a file's metadata, made safe to show: the file's author controls every byte of it.

Control characters (a NUL-padded camera name, escape sequences that would drive a terminal) and Unicode
direction overrides (which make "gpj.exe" read as "exe.jpg") are removed, runs of white space become one space,
and bytes are decoded as UTF-8, else as Latin-1 (older cameras and IPTC blocks), so decoding never fails.
Every reader of metadata text (EXIF, IPTC, XMP, generator prompts, findings' messages) goes through
metadata_text, so the rule is the same wherever the text is shown.
"""
from __future__ import annotations

import unicodedata

_DIRECTION_CONTROLS = {chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A))}


def metadata_text(value: object, limit: int | None = None) -> str:
    """The value as one clean line of text ("" for None, or when nothing printable is left); with `limit`, at
    most that many characters, the last one an ellipsis when the text was cut."""
    if value is None:
        return ""
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError:
            value = value.decode("latin-1")
    text = " ".join("".join(" " if _is_control(c) else c for c in str(value)).split())
    if limit is not None and len(text) > limit:
        return text[:limit - 1] + "…"
    return text


def _is_control(char: str) -> bool:
    return char in _DIRECTION_CONTROLS or unicodedata.category(char) in ("Cc", "Cs")
