"""Damaged and hostile files through the real scan path (issue 10, item 5).

Real JPEG, PNG, TIFF, WebP, GIF and HEIC files written by Pillow are mutated deterministically — truncated,
bit-flipped, given lying header sizes, injected with EXIF, XMP, ICC and thumbnail segments, spliced — and
scanned into a case in a separate process, exactly as `forensight scan` does. Every file must come out as one
row, no decoder or evidence bug may surface (as a 'could not be processed' row or a failed check), and the
process's memory must stay bounded.
"""
import io
import json
import random
import struct
import sys
import zlib

import numpy as np
import pytest
from PIL import Image

import models.imaging  # noqa: F401  (registers HEIF, for writing the HEIC original too)
from tests import images
from tests.commands import run_python
from tests.conftest import REPO

SEED = 10  # the number: change it to explore other cases, keep it fixed in the suite
MUTANTS_PER_FILE = 14
# Claimed sizes: over the per-image limit, at it, a thin strip, a big photo, and zero
CLAIMS = [(60000, 60000), (20000, 20000), (16000, 16000), (1, 65535), (6000, 4000), (0, 100)]


# ---- the real files the mutants start from ------------------------------------------------------------------
def _saved(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def originals() -> dict[str, bytes]:
    picture = images.gradient(96, 64, seed=3)
    thumbnail = _saved(picture.resize((32, 21)), "JPEG", quality=70)
    frames = [images.gradient(32, 24, seed=s).convert("P") for s in range(3)]
    return {
        "camera.jpg": _saved(picture, "JPEG", quality=90, exif=images.exif_with_thumbnail(thumbnail)),
        "progressive.jpg": _saved(picture, "JPEG", quality=80, progressive=True, optimize=True),
        "text.png": _png_with_chunk(_saved(picture, "PNG"), b"tEXt", b"parameters\x00a cat, Steps: 20"),
        "grey16.png": _saved(Image.fromarray((np.arange(48 * 32, dtype="uint16") * 40).reshape(32, 48)),
                             "PNG"),
        "photo.tif": _saved(picture, "TIFF", compression="tiff_deflate"),
        "photo.webp": _saved(picture, "WEBP", quality=80),
        "animated.gif": _saved(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=40),
        "iphone.heic": _saved(picture, "HEIF", quality=60),
    }


# ---- mutations ----------------------------------------------------------------------------------------------
def truncate(data: bytes, rng: random.Random) -> bytes:
    return data[:rng.randrange(1, len(data))]


def flip_bits(data: bytes, rng: random.Random) -> bytes:
    out = bytearray(data)
    near_header = rng.random() < 0.5  # headers are where decoders trust the file most
    for _ in range(rng.randint(1, 16)):
        at = rng.randrange(min(len(out), 200) if near_header else len(out))
        out[at] ^= 1 << rng.randrange(8)
    return bytes(out)


def splice(data: bytes, rng: random.Random) -> bytes:
    start = rng.randrange(len(data))
    piece = data[start:start + rng.randint(1, 4096)]
    at = rng.randrange(len(data))
    return data[:at] + piece * rng.randint(1, 4) + data[at:]


def claim_size(data: bytes, rng: random.Random) -> bytes:
    """Rewrite the pixel size the header claims, where this format's header is easy to find."""
    width, height = rng.choice(CLAIMS)
    out = bytearray(data)
    if data[:2] == b"\xff\xd8":
        for marker, at in images.jpeg_segments(data):
            if marker in (0xC0, 0xC1, 0xC2):
                struct.pack_into(">HH", out, at + 5, height, width)
    elif data[:8] == b"\x89PNG\r\n\x1a\n":
        struct.pack_into(">II", out, 16, width, height)
        if rng.random() < 0.8:  # mostly with a valid CRC, so the lie gets past the chunk check
            struct.pack_into(">I", out, 29, zlib.crc32(bytes(out[12:29])) & 0xFFFFFFFF)
    elif data[:3] == b"GIF":
        struct.pack_into("<HH", out, 6, min(width, 65535), min(height, 65535))
    elif data[:4] == b"II*\x00":
        _patch_tiff_size(out, width, height)
    else:
        return flip_bits(data, rng)
    return bytes(out)


def _patch_tiff_size(out: bytearray, width: int, height: int) -> None:
    """ImageWidth and ImageLength in the first IFD, as far as an earlier mutation left it readable."""
    try:
        ifd = struct.unpack_from("<I", out, 4)[0]
        for i in range(struct.unpack_from("<H", out, ifd)[0]):
            entry = ifd + 2 + 12 * i
            tag, kind = struct.unpack_from("<HH", out, entry)
            if tag in (256, 257) and kind in (3, 4):
                value = width if tag == 256 else height
                struct.pack_into("<H" if kind == 3 else "<I", out, entry + 8, min(value, 65535) if kind == 3 else value)
    except struct.error:
        pass  # the IFD was cut off or moved by an earlier mutation


def inject_metadata(data: bytes, rng: random.Random) -> bytes:
    """One more EXIF, XMP, ICC or thumbnail block, well-formed or not, where the format keeps metadata."""
    payload = rng.choice([
        images.exif_with_thumbnail(images.jpeg_claiming(*rng.choice(CLAIMS[:3]), real=(16, 16))),
        images.exif_with_thumbnail(bytes(rng.randrange(256) for _ in range(200))),
        b"Exif\x00\x00MM\x00*" + bytes(rng.randrange(256) for _ in range(300)),
        b"http://ns.adobe.com/xap/1.0/\x00" + _xmp(rng),
        b"ICC_PROFILE\x00\x01\x01" + bytes(rng.randrange(256) for _ in range(400)),
    ])
    if data[:2] == b"\xff\xd8":
        marker = b"\xff\xe2" if payload.startswith(b"ICC") else b"\xff\xe1"
        return data[:2] + marker + struct.pack(">H", len(payload) + 2) + payload + data[2:]
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        if payload.startswith(b"Exif"):
            return _png_with_chunk(data, b"eXIf", payload[6:])
        if payload.startswith(b"ICC"):
            return _png_with_chunk(data, b"iCCP", b"icc\x00\x00" + zlib.compress(payload[14:]))
        return _png_with_chunk(data, b"iTXt", b"XML:com.adobe.xmp\x00\x00\x00\x00\x00" + payload[29:])
    return data + payload  # trailing bytes after the image, as some editors leave


def _xmp(rng: random.Random) -> bytes:
    body = rng.choice([
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmp:CreatorTool="Midjourney"/></rdf:RDF>'
        '</x:xmpmeta>',
        '<!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]><x:xmpmeta>&b;</x:xmpmeta>',
        '<x:xmpmeta><rdf:RDF><unclosed',
    ])
    return body.encode()


def _png_with_chunk(data: bytes, kind: bytes, body: bytes) -> bytes:
    chunk = struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
    end = data.rfind(b"IEND") - 4
    return data[:end] + chunk + data[end:] if end > 8 else data + chunk


MUTATIONS = [truncate, flip_bits, splice, claim_size, inject_metadata]


def known_hostile() -> dict[str, bytes]:
    """Files that broke the scan before (issue 10), kept in every run whatever the seed."""
    gif = originals()["animated.gif"]
    second_frame = gif.index(b"\x21\xf9\x04", gif.index(b"\x21\xf9\x04") + 1)  # its graphic control block
    png = bytearray(originals()["text.png"])
    struct.pack_into(">II", png, 16, 60000, 60000)
    struct.pack_into(">I", png, 29, zlib.crc32(bytes(png[12:29])) & 0xFFFFFFFF)
    return {
        # cut after the second frame's descriptor (8 + 10 bytes): Pillow's frame count raised IndexError
        "known-gif-cut-in-a-later-frame.gif": gif[:second_frame + 18],
        "known-png-claims-60000x60000.png": bytes(png),  # its metadata check decoded 3.4 GB of pixels
        "known-exif-thumbnail-bomb.jpg": images.thumbnail_bomb(20000, 20000),  # 9 GB for the thumbnail
        "known-jpeg-claims-16000x16000.jpg": images.jpeg_claiming(16000, 16000),
    }


def mutants(seed: int = SEED) -> dict[str, bytes]:
    """Name → bytes: each original, and MUTANTS_PER_FILE mutants of it, each mutated once or twice."""
    rng = random.Random(seed)
    files = {}
    for name, data in originals().items():
        files[name] = data
        stem, suffix = name.rsplit(".", 1)
        for index in range(MUTANTS_PER_FILE):
            steps = [rng.choice(MUTATIONS) for _ in range(rng.randint(1, 2))]
            mutated = data
            for step in steps:
                mutated = step(mutated, rng) or mutated
            files[f"{stem}-{index}-{'+'.join(s.__name__ for s in steps)}.{suffix}"] = mutated
    return files


# ---- the scan, in its own process so that its memory can be measured ---------------------------------------
_SCAN = """
import json, resource, sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from app.case.store import Case
from app.services.scanning import list_entries, run_scan
from models.engine import ScanEngine
from models.library import ModelLibrary

folder, case_path = Path(sys.argv[2]), Path(sys.argv[3])
engine = ScanEngine(ModelLibrary().load("tiny"), device="cpu", workers=2, batch_size=8)
entries = list_entries([folder], True)
problems = []

def on_batch(batch, summary):
    for result in batch:
        name = Path(result.path).name
        if result.error and result.error.startswith("could not be processed"):
            problems.append(f"{name}: {result.error}")
        problems.extend(f"{name}: {note}" for note in result.notes if note.startswith("analysis failed"))
        problems.extend(f"{name}: {f.message}" for f in result.evidence or [] if f.kind == "check_failed")

before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
case = Case(case_path)
summary = run_scan(case, engine, entries, on_batch=on_batch)
growth = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
rows = case.rows()
print(json.dumps({"entries": len(entries), "done": summary.done, "rows": len(rows),
                  "paths": sorted(Path(r.path).name for r in rows),
                  "scored": sorted(Path(r.path).name for r in rows if r.p_fake is not None),
                  "problems": problems, "growth_mb": growth}))
"""


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux", reason="ru_maxrss in KiB as on Linux")
def test_fuzzed_files_each_become_one_row_without_crashes_or_runaway_memory(tiny_model, tmp_path):
    folder = tmp_path / "fuzzed"
    folder.mkdir()
    files = {**mutants(), **known_hostile()}
    for name, data in files.items():
        (folder / name).write_bytes(data)
    assert len(files) == 8 * (1 + MUTANTS_PER_FILE) + 4

    # a real process: its peak memory (ru_maxrss) is measured, and a decoder crash must not end the test run
    run = run_python(_SCAN, REPO, folder, tmp_path / "c.sqlite", timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]  # no exception escaped the scan
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["entries"] == result["done"] == result["rows"] == len(files)
    assert result["paths"] == sorted(files)  # one row per file, every file
    assert result["problems"] == []  # no decoder or evidence check failed on its own bug
    assert result["growth_mb"] < 1536, result["growth_mb"]
    assert set(originals()) <= set(result["scored"])  # the undamaged files among them still get a score


def test_mutants_are_the_same_on_every_run():
    assert mutants() == mutants()
    assert len(set(mutants().values())) > 8 * MUTANTS_PER_FILE * 0.9  # nearly all different
