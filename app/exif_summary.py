"""A short, human-readable summary of the metadata a file carries: camera EXIF and the text chunks some
generators write (Stable Diffusion front-ends put their prompt in a PNG 'parameters' chunk). Evidence to
read beside the score, never a verdict by itself."""
from __future__ import annotations

from pathlib import Path

from PIL import ExifTags, Image

_BASE_TAGS = ("Make", "Model", "Software", "DateTime", "Orientation", "Artist", "Copyright",
              "ImageDescription")
_EXIF_IFD_TAGS = ("DateTimeOriginal", "LensModel", "ExposureTime", "FNumber", "ISOSpeedRatings",
                  "FocalLength")
_TEXT_KEYS = ("parameters", "prompt", "workflow", "Software", "Comment", "Description", "Title", "Author",
              "Source", "XML:com.adobe.xmp")
_MAX_VALUE = 160
_TAG_IDS = {name: tag for tag, name in ExifTags.TAGS.items()}


def exif_summary(path: Path) -> list[tuple[str, str]]:
    """(name, value) pairs worth showing; empty when the file has none. Never raises."""
    try:
        with Image.open(path) as img:
            exif = img.getexif()
            facts = [(name, _short(exif.get(_tag_id(name)))) for name in _BASE_TAGS
                     if exif.get(_tag_id(name)) not in (None, "")]
            try:
                details = exif.get_ifd(ExifTags.IFD.Exif)
            except Exception:
                details = {}
            facts += [(name, _short(details.get(_tag_id(name)))) for name in _EXIF_IFD_TAGS
                      if details.get(_tag_id(name)) not in (None, "")]
            try:
                has_gps = bool(exif.get_ifd(ExifTags.IFD.GPSInfo))
            except Exception:
                has_gps = False
            if has_gps:
                facts.append(("GPS", "position recorded"))
            facts += [(f"{img.format} text '{key}'", _short(img.info[key])) for key in _TEXT_KEYS
                      if isinstance(img.info.get(key), (str, bytes))]
            return facts
    except Exception:
        return []


def _tag_id(name: str) -> int:
    return _TAG_IDS[name]


def _short(value: object) -> str:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    text = " ".join(str(value).replace("\x00", "").split())
    return text if len(text) <= _MAX_VALUE else text[:_MAX_VALUE - 1] + "…"
