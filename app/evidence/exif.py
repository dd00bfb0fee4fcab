"""The one EXIF reader: camera make and model, lens, capture time and software, as findings for the case and
as (name, value) pairs for the detail view. EXIF is trivially edited, so it only ever weighs 'weak'."""
from __future__ import annotations

from dataclasses import asdict, dataclass

from PIL import ExifTags, Image

from app.evidence.findings import Finding
from app.evidence.text import metadata_text

_TAG_IDS = {name: tag for tag, name in ExifTags.TAGS.items()}
_BASE_TAGS = ("Make", "Model", "Software", "DateTime", "Orientation", "Artist", "Copyright",
              "ImageDescription")
_EXIF_IFD_TAGS = ("DateTimeOriginal", "LensModel", "ExposureTime", "FNumber", "ISOSpeedRatings",
                  "FocalLength")
_TEXT_KEYS = ("parameters", "prompt", "workflow", "Software", "Comment", "Description", "Title", "Author",
              "Source", "XML:com.adobe.xmp")
_MAX_VALUE = 160
_TIFF_HEADERS = (b"II*\x00", b"MM\x00*")


class UnreadableExif(ValueError):
    pass


@dataclass
class CameraFacts:
    make: str = ""
    model: str = ""
    lens: str = ""
    captured: str = ""  # DateTimeOriginal, with OffsetTimeOriginal appended when recorded
    software: str = ""

    @property
    def camera(self) -> str:
        # Many makers repeat the make in the model ("Canon" + "Canon EOS 5D"): say it once.
        if self.make and self.model.lower().startswith(self.make.lower()):
            return self.model
        return " ".join(part for part in (self.make, self.model) if part)


def read_exif(image: Image.Image) -> CameraFacts:
    """The camera facts of an opened image; raises UnreadableExif when an EXIF block exists but is damaged."""
    exif = load_exif(image)
    base = {name: metadata_text(exif.get(_TAG_IDS[name])) for name in ("Make", "Model", "Software")}
    try:
        details = exif.get_ifd(ExifTags.IFD.Exif)
    except Exception:
        details = {}
    captured = metadata_text(details.get(_TAG_IDS["DateTimeOriginal"]))
    offset = metadata_text(details.get(_TAG_IDS["OffsetTimeOriginal"]) or details.get(_TAG_IDS["OffsetTime"]))
    if captured and offset:
        captured = f"{captured} {offset}"
    return CameraFacts(make=base["Make"], model=base["Model"], lens=metadata_text(details.get(_TAG_IDS["LensModel"])),
                       captured=captured, software=base["Software"])


def check_exif(data: bytes, image: Image.Image | None) -> list[Finding]:
    if image is None:
        return []
    try:
        facts = read_exif(image)
    except UnreadableExif as exc:
        return [Finding("exif", "unreadable_exif", "info", f"Unreadable EXIF: {exc}.")]
    details = {key: value for key, value in asdict(facts).items() if value}
    if facts.camera:
        details["camera"] = facts.camera
        return [Finding("exif", "camera", "weak",
                        f"EXIF names a camera: {facts.camera}. EXIF is easily edited or forged, so this alone "
                        "proves nothing.", details, "camera")]
    return [Finding("exif", "no_camera_data", "weak",
                    "No camera make or model in EXIF: usual for generated images, but stripped, screenshotted "
                    "or messaged photos lack it too.", details)]


def exif_summary_of(image: Image.Image) -> list[tuple[str, str]]:
    """(name, value) pairs worth showing in the detail view; empty when there are none."""
    try:
        exif = load_exif(image)
    except UnreadableExif as exc:
        return [("EXIF", f"unreadable ({exc})")]
    facts = [(name, metadata_text(exif.get(_TAG_IDS[name]), _MAX_VALUE)) for name in _BASE_TAGS
             if exif.get(_TAG_IDS[name]) not in (None, "")]
    try:
        details = exif.get_ifd(ExifTags.IFD.Exif)
    except Exception:
        details = {}
    facts += [(name, metadata_text(details.get(_TAG_IDS[name]), _MAX_VALUE)) for name in _EXIF_IFD_TAGS
              if details.get(_TAG_IDS[name]) not in (None, "")]
    try:
        has_gps = bool(exif.get_ifd(ExifTags.IFD.GPSInfo))
    except Exception:
        has_gps = False
    if has_gps:
        facts.append(("GPS", "position recorded"))
    facts += [(f"{image.format} text '{key}'", metadata_text(image.info[key], _MAX_VALUE)) for key in _TEXT_KEYS
              if isinstance(image.info.get(key), (str, bytes))]
    return facts


def exif_software(image: Image.Image) -> str:
    """EXIF Software (IFD0), or '' when absent or unreadable (damaged EXIF is reported by check_exif)."""
    try:
        value = image.getexif().get(0x0131)
    except Exception:
        return ""
    return metadata_text(value) if isinstance(value, (str, bytes)) else ""


def load_exif(image: Image.Image) -> Image.Exif:
    """The image's EXIF; raises UnreadableExif when a block exists but is damaged."""
    raw = image.info.get("exif")
    if isinstance(raw, bytes) and raw:
        body = raw[6:] if raw.startswith(b"Exif\x00\x00") else raw
        if not body.startswith(_TIFF_HEADERS):
            raise UnreadableExif("the EXIF block has no valid TIFF header")
    try:
        return image.getexif()
    except Exception as exc:  # Pillow raises assorted errors on damaged IFDs
        raise UnreadableExif(f"{type(exc).__name__}: {exc}") from None
