"""Real image files of every awkward kind, written by the tests themselves."""
from __future__ import annotations

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
