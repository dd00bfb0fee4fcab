"""Do the file's own dates agree? EXIF capture, digitised and modified times, the GPS clock (UTC), the capture
date repeated in XMP and IPTC-IIM. A camera writes them together from one clock, so a contradiction means the
metadata was edited or assembled by other software (a generated image dressed in camera EXIF, for one). Dates
that do not parse (blank, "0000:00:00 …") are ignored, not reported.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

from PIL import ExifTags, Image

from app.evidence import xmp
from app.evidence.exif import UnreadableExif, load_exif
from app.evidence.findings import Finding
from app.evidence.text import metadata_text
from app.evidence.iptc import IIM_FORMATS, read_iptc

SAME_CLOCK = timedelta(minutes=1)  # cameras write these within a second; a minute allows for slow writes
WORLD_ZONES = timedelta(hours=15)  # local time vs UTC with no offset recorded: anything from −12 to +14 hours
GPS_AFTER = timedelta(hours=1)  # a fix recorded after the shot: only the clocks' small drift
GPS_BEFORE = timedelta(days=1)  # phones write their last known fix, which can be hours old
YEARS = range(1900, 2201)  # anything else is a placeholder or a forgery, not a time to compare
_EXIF_DATE = re.compile(r"(\d{4}):(\d{2}):(\d{2})[ T](\d{2}):(\d{2}):(\d{2})")
_OFFSET = re.compile(r"^([+-])(\d{2}):?(\d{2})$")
_ISO = re.compile(r"(\d{4})-(\d{2})-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2}))?(?:\.\d+)?)?\s*(Z|[+-]\d{2}:?\d{2})?")


@dataclass(frozen=True)
class Stamp:
    """A recorded time: wall-clock, with its UTC offset when the file gives one."""
    when: datetime  # naive wall-clock time
    offset: timedelta | None = None
    text: str = ""

    def utc(self) -> datetime | None:
        return None if self.offset is None else (self.when - self.offset).replace(tzinfo=timezone.utc)

    def minus(self, other: "Stamp") -> tuple[timedelta, bool]:
        """self − other, and whether both zones were known (else wall-clock against wall-clock)."""
        mine, theirs = self.utc(), other.utc()
        if mine is not None and theirs is not None:
            return mine - theirs, True
        return self.when - other.when, False


def check_dates(data: bytes, image: Image.Image | None, now: datetime | None = None) -> list[Finding]:
    if image is None:
        return []
    try:
        exif = load_exif(image)
    except UnreadableExif:
        return []  # the EXIF check reports it
    stamps = exif_stamps(exif)
    captured, modified, digitized = stamps.get("captured"), stamps.get("modified"), stamps.get("digitized")
    if not captured:
        return []
    now = now or datetime.now(timezone.utc)
    checks = [lambda: _future(captured, now), lambda: _iptc(captured, image),
              lambda: _repeated(captured, xmp_capture(data, image), "XMP")]
    if modified:
        checks.append(lambda: _modified(captured, modified))
    if digitized:
        checks.append(lambda: _digitized(captured, digitized))
    checks.append(lambda: _gps(captured, gps) if (gps := gps_stamp(exif)) else [])
    findings: list[Finding] = []
    for check in checks:
        try:
            findings += check()
        except (OverflowError, ValueError):  # one absurd value must not hide what the other dates show
            continue
    return findings


# ---- reading --------------------------------------------------------------------------------------------
def exif_stamps(exif: Image.Exif) -> dict[str, Stamp]:
    try:
        details = exif.get_ifd(ExifTags.IFD.Exif)
    except Exception:
        details = {}
    pairs = {"captured": (details.get(0x9003), details.get(0x9011)),  # DateTimeOriginal, OffsetTimeOriginal
             "digitized": (details.get(0x9004), details.get(0x9012)),  # DateTimeDigitized, OffsetTimeDigitized
             "modified": (exif.get(0x0132), details.get(0x9010))}  # DateTime (IFD0), OffsetTime
    stamps = {}
    for name, (value, offset) in pairs.items():
        stamp = parse_exif_date(value, offset)
        if stamp:
            stamps[name] = stamp
    return stamps


def parse_exif_date(value: object, offset: object = None) -> Stamp | None:
    match = _EXIF_DATE.match(metadata_text(value))
    if not match:
        return None
    try:
        when = datetime(*map(int, match.groups()))
    except ValueError:  # "0000:00:00 00:00:00" and other placeholders
        return None
    if when.year not in YEARS:
        return None
    zone = metadata_text(offset)
    return Stamp(when, parse_offset(zone), metadata_text(value) + (f" {zone}" if zone else ""))


def parse_offset(text: str) -> timedelta | None:
    if text in ("Z", "z"):
        return timedelta(0)
    match = _OFFSET.match(text.strip())
    if not match:
        return None
    sign, hours, minutes = match.groups()
    delta = timedelta(hours=int(hours), minutes=int(minutes))
    return -delta if sign == "-" else delta


def gps_stamp(exif: Image.Exif) -> Stamp | None:
    """GPSDateStamp + GPSTimeStamp: the satellites' clock, always UTC."""
    try:
        gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
        day, clock = metadata_text(gps.get(0x001D)), gps.get(0x0007)
        if not day or not clock or len(clock) != 3:
            return None
        year, month, mday = map(int, day.replace("-", ":").split(":"))
        seconds = float(clock[0]) * 3600 + float(clock[1]) * 60 + float(clock[2])
        if year not in YEARS or not 0 <= seconds < 86_400:
            return None
        when = datetime(year, month, mday) + timedelta(seconds=int(seconds))
    except (ValueError, TypeError, ZeroDivisionError, KeyError, OverflowError):
        return None
    return Stamp(when, timedelta(0), f"{when:%Y:%m:%d %H:%M:%S} UTC")


def xmp_capture(data: bytes, image: Image.Image) -> list[tuple[str, Stamp]]:
    """Capture dates repeated in XMP (exif:DateTimeOriginal, photoshop:DateCreated). xmp:CreateDate is left
    out on purpose: editors set it to when they created their document."""
    try:
        root = xmp.read_xmp(data, image)
    except Exception:
        return []  # the generator-metadata check reports unreadable XMP
    if root is None:
        return []
    found = []
    for name in ("DateTimeOriginal", "DateCreated"):
        for value in xmp.values_named(root, name):
            stamp = parse_iso(value)
            if stamp:
                found.append((f"XMP {name}", stamp))
    return found


def parse_iso(value: str) -> Stamp | None:
    match = _ISO.match(value.strip())
    if not match or match.group(4) is None:
        return None  # a date without a time cannot be compared to the second
    year, month, day, hour, minute, second, zone = match.groups()
    try:
        when = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second or 0))
    except ValueError:
        return None
    if when.year not in YEARS:
        return None
    return Stamp(when, parse_offset(zone) if zone else None, value.strip())


# ---- checks ---------------------------------------------------------------------------------------------
def _contradiction(message: str, **details: str) -> Finding:
    return Finding("dates", "date_contradiction", "moderate",
                   message + " A camera writes these from one clock: the metadata was edited or assembled by "
                   "other software.", details)


def _future(captured: Stamp, now: datetime) -> list[Finding]:
    utc = captured.utc() or (captured.when - WORLD_ZONES).replace(tzinfo=timezone.utc)
    if utc > now + timedelta(days=1):
        return [_contradiction(f"The EXIF capture time {captured.text} lies in the future of this check "
                               f"({now:%Y-%m-%d}).", captured=captured.text)]
    return []


def _modified(captured: Stamp, modified: Stamp) -> list[Finding]:
    gap, zones_known = modified.minus(captured)
    # without offsets the editing computer's clock may run in another zone than the camera's
    if gap < -(SAME_CLOCK if zones_known else WORLD_ZONES):
        return [_contradiction(f"EXIF says the file was last changed ({modified.text}) before it was captured "
                               f"({captured.text}).", captured=captured.text, modified=modified.text)]
    if gap > SAME_CLOCK:
        return [Finding("dates", "modified_after_capture", "info",
                        f"EXIF says the file was changed {_span(gap)} after capture (captured {captured.text}, "
                        f"changed {modified.text}).", {"captured": captured.text, "modified": modified.text})]
    return []


def _digitized(captured: Stamp, digitized: Stamp) -> list[Finding]:
    gap, _ = digitized.minus(captured)
    if abs(gap) <= SAME_CLOCK:
        return []
    return [Finding("dates", "digitized_differs", "info",
                    f"EXIF capture ({captured.text}) and digitisation ({digitized.text}) times differ by "
                    f"{_span(abs(gap))}: normal for a scanned film photo, not for a digital camera.",
                    {"captured": captured.text, "digitized": digitized.text})]


def _gps(captured: Stamp, gps: Stamp) -> list[Finding]:
    gap, zones_known = captured.minus(gps)  # > 0: the fix is older than the shot, as a phone's last fix can be
    slack = timedelta(0) if zones_known else WORLD_ZONES
    if -(GPS_AFTER + slack) <= gap <= GPS_BEFORE + slack:
        return []
    return [_contradiction(f"The GPS clock ({gps.text}) and the EXIF capture time ({captured.text}) are "
                           f"{_span(abs(gap))} apart.", captured=captured.text, gps=gps.text)]


def _repeated(captured: Stamp, others: list[tuple[str, Stamp]], where: str) -> list[Finding]:
    findings = []
    for name, other in others:
        gap, zones_known = other.minus(captured)
        # an offset on one side only ("…Z" against a bare EXIF time): the two may be in different zones
        one_sided = not zones_known and (other.offset is None) != (captured.offset is None)
        if abs(gap) > (WORLD_ZONES if one_sided else SAME_CLOCK):
            findings.append(_contradiction(f"{name} ({other.text}) differs from the EXIF capture time "
                                           f"({captured.text}) by {_span(abs(gap))}.",
                                           captured=captured.text, other=other.text, where=where))
    return findings


def _iptc(captured: Stamp, image: Image.Image) -> list[Finding]:
    if image.format not in IIM_FORMATS:
        return []
    try:
        created = read_iptc(image).get("date_created", "")
    except ValueError:
        return []
    match = re.fullmatch(r"(\d{4})(\d{2})(\d{2})", created.split(";")[0].strip())
    if not match:
        return []
    try:
        day = date(*map(int, match.groups()))
    except ValueError:
        return []
    if abs((day - captured.when.date()).days) > 1:  # a day either side: time zones
        return [_contradiction(f"IPTC Date Created ({day.isoformat()}) is not the EXIF capture date "
                               f"({captured.text}).", captured=captured.text, iptc_date_created=created)]
    return []


def _span(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds >= 2 * 86400:
        return f"{seconds // 86400} days"
    if seconds >= 2 * 3600:
        return f"{seconds // 3600} hours"
    if seconds >= 120:
        return f"{seconds // 60} minutes"
    return f"{seconds} seconds"
