"""Find and parse an XMP packet without trusting it: the packet is located in the raw bytes (format-independent:
JPEG APP1, PNG iTXt, WebP, TIFF all store it as plain XML) or in Pillow's decoded text chunks, size-capped,
and parsed only when it declares no DTD, so no entity can be expanded or fetched."""
from __future__ import annotations

import xml.etree.ElementTree as ET
from functools import lru_cache

from PIL import Image

from app.evidence.text import metadata_text

MAX_PACKET = 1 << 20  # 1 MiB: real packets are a few KiB
_START, _END = b"<x:xmpmeta", b"</x:xmpmeta>"


class UnsafeXmp(ValueError):
    pass


def find_packet(data: bytes, image: Image.Image | None = None) -> bytes | None:
    """The first XMP packet in the file, or None."""
    if image is not None:  # compressed PNG iTXt chunks are only readable once Pillow inflated them
        for key in ("XML:com.adobe.xmp", "xmp"):
            value = image.info.get(key)
            if isinstance(value, str):
                value = value.encode("utf-8", "replace")
            if isinstance(value, bytes) and _START in value[:MAX_PACKET]:
                return _cut(value, value.find(_START))
    start = data.find(_START)
    return _cut(data, start) if start >= 0 else None


def parse_packet(packet: bytes) -> ET.Element:
    """The packet's XML tree; raises UnsafeXmp for DTDs and ValueError/ParseError for broken XML."""
    if b"<!DOCTYPE" in packet or b"<!ENTITY" in packet:
        raise UnsafeXmp("the XMP packet declares a DTD or entities, which XMP never needs")
    return ET.fromstring(packet)


def read_xmp(data: bytes, image: Image.Image | None = None) -> ET.Element | None:
    """The file's parsed XMP, or None when it has none; raises like parse_packet for an unreadable packet.
    Several checks read the same file's XMP, so a packet is parsed once (callers only read the tree)."""
    packet = find_packet(data, image)
    return None if packet is None else _parse_once(packet)


@lru_cache(maxsize=16)  # one entry per file being scanned at once (the decode threads)
def _parse_once(packet: bytes) -> ET.Element:
    return parse_packet(packet)


def values_named(root: ET.Element, local_name: str) -> list[str]:
    """Every value of a property, written as an attribute or as an element (with or without rdf:li)."""
    found: list[str] = []
    for element in root.iter():
        for key, value in element.attrib.items():
            if _local(key) == local_name and (text := metadata_text(value)):
                found.append(text)
        if _local(element.tag) == local_name:
            texts = [t for t in map(metadata_text, element.itertext()) if t]
            resource = next((v for k, v in element.attrib.items() if _local(k) == "resource"), "")
            found += texts or ([resource] if resource else [])
    return found


def _cut(data: bytes, start: int) -> bytes | None:
    end = data.find(_END, start, start + MAX_PACKET)
    return data[start:end + len(_END)] if end >= 0 else None


def _local(name: str) -> str:
    return name.rsplit("}", 1)[-1].rsplit(":", 1)[-1]
