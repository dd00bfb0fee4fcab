"""File names as the operating system gives them, which need not be valid UTF-8.

Python hands a name it cannot decode (`bad\\xff\\xfe.jpg` from an old camera card) to us as a `str` with lone
surrogates (PEP 383). Such a string cannot be written to SQLite, a CSV or a PDF as it is, and must not be
"repaired" either, or the row would name a file that does not exist. So every layer keeps the exact name
(`to_bytes`/`from_bytes` round-trip it) and shows the readable form (`readable`), where each undecodable
byte appears as `\\xNN`.
"""
from __future__ import annotations

import os
from pathlib import Path


def to_bytes(name: str | Path) -> bytes:
    """The exact bytes of a file name as the OS stores it."""
    return os.fsencode(name)


def from_bytes(raw: bytes) -> str:
    """The name Python uses to open the file whose name is `raw` (lossless inverse of to_bytes)."""
    return os.fsdecode(raw)


def is_exact_text(name: str | Path) -> bool:
    """True when the name is valid Unicode text, so its readable form is the name itself."""
    try:
        str(name).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def readable(name: str | Path) -> str:
    """The name for people, databases and reports: undecodable bytes shown as \\xNN, everything else as is."""
    text = str(name)
    if is_exact_text(text):
        return text
    return "".join(f"\\x{ord(c) - 0xDC00:02x}" if 0xDC80 <= ord(c) <= 0xDCFF else c for c in text)
