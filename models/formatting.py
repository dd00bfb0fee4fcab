"""How values are written for the people who read them: timestamps and file sizes, one rule each, for the
desktop app, the command line, the CSV, the PDF report and the log file alike."""
from __future__ import annotations

from datetime import datetime, timezone


def format_timestamp(when: float | datetime | None, timespec: str = "seconds") -> str:
    """A timestamp as every reader sees it: ISO 8601 with the offset from UTC written out, e.g.
    2024-05-01T12:03:22+00:00, so that no reader (an examiner, a court, a spreadsheet in another country) can
    mistake the zone.

    The rule:
    - a moment the tool recorded as seconds since the epoch (a file's modification time, when a result was
      scored, a log line) is written in UTC, so the app, the CSV and the PDF show the same figures for one file;
    - a datetime that carries its zone keeps it: the report's creation time is the examiner's clock, with its
      offset;
    - a datetime without a zone is refused (ValueError): it is the ambiguity the rule exists to prevent;
    - None (an unknown moment) is written as "".
    `timespec` is datetime.isoformat's: "seconds" for people, "milliseconds" for the log file."""
    if when is None:
        return ""
    if isinstance(when, datetime):
        if when.utcoffset() is None:
            raise ValueError(f"{when} has no time zone, so it cannot be written unambiguously")
        return when.isoformat(timespec=timespec)
    return datetime.fromtimestamp(when, tz=timezone.utc).isoformat(timespec=timespec)


def human_size(size: int | None) -> str:
    """A file size for people: 512 bytes, 1.5 KB, 3.2 MB (powers of 1024); "" when unknown."""
    if size is None:
        return ""
    for unit in ("bytes", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    return ""
