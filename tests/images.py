"""Real image files of every awkward kind, written by the tests themselves."""
from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image


def gradient(width: int, height: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x * 255 // max(width - 1, 1), y * 255 // max(height - 1, 1),
                     (x + y) * 255 // max(width + height - 2, 1)], axis=-1)
    noise = rng.integers(0, 30, size=base.shape)
    return Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8), "RGB")


def jpeg_with_orientation(path: Path, orientation: int, size=(80, 40)) -> Path:
    img = gradient(*size)
    exif = Image.Exif()
    exif[0x0112] = orientation
    img.save(path, "JPEG", quality=90, exif=exif)
    return path


def cmyk_jpeg(path: Path) -> Path:
    Image.new("CMYK", (40, 30), (0, 255, 255, 0)).save(path, "JPEG", quality=95)  # pure red in CMYK
    return path


def png_16bit(path: Path) -> Path:
    values = np.full((20, 30), 65535, dtype=np.uint16)
    values[:, :15] = 32896  # ≈ 128 × 257
    Image.fromarray(values).save(path)
    return path


def palette_with_transparency(path: Path) -> Path:
    img = Image.new("P", (20, 20), 0)
    img.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    img.paste(1, (10, 0, 20, 20))  # right half red, left half index 0 = transparent
    img.info["transparency"] = 0
    img.save(path, transparency=0)
    return path


def la_png(path: Path) -> Path:
    Image.new("LA", (16, 16), (0, 0)).save(path)  # black but fully transparent
    return path


def rgba_png(path: Path) -> Path:
    arr = np.zeros((16, 16, 4), dtype=np.uint8)
    arr[..., 2] = 255
    arr[:, 8:, 3] = 255  # right half opaque blue, left half transparent
    Image.fromarray(arr, "RGBA").save(path)
    return path


def animated_gif(path: Path) -> Path:
    frames = [Image.new("RGB", (24, 24), colour) for colour in ((0, 255, 0), (255, 0, 0), (0, 0, 255))]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=50, loop=0)
    return path


def truncated_jpeg(path: Path) -> Path:
    buffer = path.with_suffix(".full.jpg")
    gradient(256, 256).save(buffer, "JPEG", quality=95)
    data = buffer.read_bytes()
    buffer.unlink()
    path.write_bytes(data[: len(data) // 2])
    return path


def png_bomb(path: Path, width: int = 40000, height: int = 40000) -> Path:
    """A valid PNG header announcing 1.6 gigapixels over a tiny body: the classic decompression bomb."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    body = zlib.compress(b"\x00" * 1024)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b""))
    return path


def flat_png(path: Path, width: int, height: int, value: int = 128, rows_per_block: int = 500) -> Path:
    """A real greyscale PNG of one flat grey, written in a fraction of the time Pillow takes for a huge one: the
    same block of rows is compressed once (flushed, so it stands alone) and repeated; the checksum covers all."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    rows_per_block = min(rows_per_block, height)
    block = (b"\x00" + bytes([value]) * width) * rows_per_block  # filter type 0, then the row's pixels
    blocks, rest = divmod(height, rows_per_block)
    remainder = block[:rest * (width + 1)]
    deflate = zlib.compressobj(9)
    first = deflate.compress(block) + deflate.flush(zlib.Z_FULL_FLUSH)  # the zlib header, then the block
    repeated = deflate.compress(block) + deflate.flush(zlib.Z_FULL_FLUSH)
    assert first[2:] == repeated, "a fully flushed block compresses the same every time"
    end = deflate.compress(remainder) + deflate.flush()
    checksum = 1
    for _ in range(blocks):
        checksum = zlib.adler32(block, checksum)
    checksum = zlib.adler32(remainder, checksum)
    data = first + repeated * (blocks - 1) + end[:-4] + struct.pack(">I", checksum)
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b""))
    return path


def good_and_bad_folder(root: Path) -> dict[str, str | None]:
    """A folder of every case the scan must survive. Returns name → expected error word (None = scores)."""
    root.mkdir(parents=True, exist_ok=True)
    expected: dict[str, str | None] = {}

    def ok(name: str, writer) -> None:
        writer(root / name)
        expected[name] = None

    ok("plain.jpg", lambda p: gradient(64, 48).save(p, "JPEG"))
    ok("rotated exif.jpg", lambda p: jpeg_with_orientation(p, 6))
    ok("cmyk.jpg", cmyk_jpeg)
    ok("sixteen-bit.png", png_16bit)
    ok("palette-transparent.png", palette_with_transparency)
    ok("gray-alpha.png", la_png)
    ok("rgba.png", rgba_png)
    ok("animated.gif", animated_gif)
    ok("фото ünïcødé 写真.png", lambda p: gradient(40, 40, 3).save(p))
    ok("=HYPERLINK(evil).png", lambda p: gradient(32, 32, 4).save(p))
    ok("image.webp", lambda p: gradient(50, 30, 5).save(p, "WEBP"))
    ok("image.bmp", lambda p: gradient(30, 50, 6).save(p, "BMP"))
    ok("grey.tif", lambda p: gradient(30, 30, 7).convert("L").save(p, "TIFF"))

    (root / "empty.jpg").write_bytes(b"")
    expected["empty.jpg"] = "empty"
    truncated_jpeg(root / "truncated.jpg")
    expected["truncated.jpg"] = "truncated"
    (root / "notes.txt").write_text("not an image\n")
    expected["notes.txt"] = "not a recognised image"
    (root / "random.png").write_bytes(np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    expected["random.png"] = "not a recognised image"
    png_bomb(root / "bomb.png")
    expected["bomb.png"] = "decompression bomb"
    return expected


# ---- files whose headers lie about their size (issue 10) ------------------------------------------------
def jpeg_segments(data: bytes):
    """(marker, offset of the marker) for each JPEG segment up to the start of the scan data."""
    at = 2
    while at + 4 <= len(data) and data[at] == 0xFF:
        marker = data[at + 1]
        yield marker, at
        if marker == 0xDA:  # start of scan: entropy-coded data follows, not segments
            return
        at += 2 + struct.unpack(">H", data[at + 2:at + 4])[0]


def jpeg_claiming(width: int, height: int, real: tuple[int, int] = (64, 64), seed: int = 0) -> bytes:
    """A real JPEG of `real` pixels whose frame header claims width×height: a few KB that say 'decode me big'."""
    buffer = io.BytesIO()
    gradient(*real, seed=seed).save(buffer, "JPEG", quality=90)
    data = bytearray(buffer.getvalue())
    for marker, at in jpeg_segments(bytes(data)):
        if marker in (0xC0, 0xC1, 0xC2):  # start of frame: length, precision, then height and width
            struct.pack_into(">HH", data, at + 5, height, width)
            return bytes(data)
    raise AssertionError("no frame header in a JPEG Pillow wrote")


def exif_with_thumbnail(thumbnail: bytes, make: bytes = b"Canon\x00") -> bytes:
    """Raw EXIF (little-endian TIFF): IFD0 with Make, IFD1 pointing at a JPEG thumbnail, as cameras write it."""
    header = b"II*\x00" + struct.pack("<I", 8)
    ifd1_at = 8 + 2 + 12 + 4 + len(make)
    ifd0 = struct.pack("<H", 1) + struct.pack("<HHII", 0x010F, 2, len(make), 26) + struct.pack("<I", ifd1_at)
    ifd1 = (struct.pack("<H", 2) + struct.pack("<HHII", 0x0201, 4, 1, ifd1_at + 2 + 24 + 4)
            + struct.pack("<HHII", 0x0202, 4, 1, len(thumbnail)) + struct.pack("<I", 0))
    return b"Exif\x00\x00" + header + ifd0 + make + ifd1 + thumbnail


def thumbnail_bomb(width: int = 20000, height: int = 20000) -> bytes:
    """A ~6 KB camera-like JPEG whose EXIF thumbnail claims width×height pixels."""
    out = io.BytesIO()
    gradient(640, 480, seed=1).save(out, "JPEG", quality=75,
                                     exif=exif_with_thumbnail(jpeg_claiming(width, height, real=(16, 16))))
    return out.getvalue()


def jpeg_with_corrupt_exif(path: Path) -> Path:
    """A JPEG whose EXIF Make tag says 200 bytes but the block ends first: Pillow prints a UserWarning ('Tag
    data larger than file') when the EXIF is read."""
    header = b"II*\x00" + struct.pack("<I", 8)
    ifd0 = struct.pack("<H", 1) + struct.pack("<HHII", 0x010F, 2, 200, 26) + struct.pack("<I", 0)
    gradient(48, 32, seed=2).save(path, "JPEG", quality=90, exif=b"Exif\x00\x00" + header + ifd0 + b"Canon\x00")
    return path


def png_with_late_chunks(picture: Image.Image, chunks: list[tuple[bytes, bytes]]) -> bytes:
    """A PNG with extra chunks (type, body) after its image data, where some tools write text and EXIF."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    buffer = io.BytesIO()
    picture.save(buffer, "PNG")
    data = buffer.getvalue()
    end = data.rindex(b"IEND") - 4
    return data[:end] + b"".join(chunk(kind, body) for kind, body in chunks) + data[end:]
