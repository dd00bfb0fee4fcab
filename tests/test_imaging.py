"""Decoding: every Pillow mode becomes correct RGB, and every bad file becomes a readable reason."""
import io

import numpy as np
import pytest
from PIL import Image

from models.imaging import ImageDecodeError, decode, read_file
from tests import images


def decode_path(path, **kw):
    data, _ = read_file(path)
    return decode(data, **kw)


def test_exif_orientation_is_applied(tmp_path):
    result = decode_path(images.jpeg_with_orientation(tmp_path / "o.jpg", 6, size=(80, 40)))
    assert (result.width, result.height) == (80, 40)  # as stored in the file
    assert result.image.size == (40, 80)  # as a viewer shows it: rotated 90°


def test_cmyk_becomes_the_same_colour_in_rgb(tmp_path):
    result = decode_path(images.cmyk_jpeg(tmp_path / "c.jpg"))
    assert result.mode == "CMYK" and result.image.mode == "RGB"
    r, g, b = np.asarray(result.image).reshape(-1, 3).mean(axis=0)
    assert r > 230 and g < 25 and b < 25


def test_sixteen_bit_is_scaled_not_clipped(tmp_path):
    result = decode_path(images.png_16bit(tmp_path / "16.png"))
    assert result.mode.startswith("I")
    pixels = np.asarray(result.image)
    assert abs(int(pixels[0, 0, 0]) - 128) <= 1 and pixels[0, -1, 0] == 255


def test_palette_transparency_goes_over_the_background(tmp_path):
    result = decode_path(images.palette_with_transparency(tmp_path / "p.png"), background=(0, 255, 0))
    pixels = np.asarray(result.image)
    assert tuple(pixels[5, 2]) == (0, 255, 0)  # transparent → background
    assert tuple(pixels[5, 15]) == (255, 0, 0)  # opaque red stays red


@pytest.mark.parametrize("writer,transparent_at,opaque_at,opaque_rgb", [
    (images.la_png, (0, 0), None, None),
    (images.rgba_png, (3, 3), (3, 12), (0, 0, 255)),
])
def test_alpha_is_composited_over_white(tmp_path, writer, transparent_at, opaque_at, opaque_rgb):
    pixels = np.asarray(decode_path(writer(tmp_path / "a.png")).image)
    assert tuple(pixels[transparent_at]) == (255, 255, 255)
    if opaque_at:
        assert tuple(pixels[opaque_at]) == opaque_rgb


def test_animated_uses_first_frame(tmp_path):
    result = decode_path(images.animated_gif(tmp_path / "a.gif"))
    assert result.frames == 3 and "first frame" in result.notes[0]
    r, g, b = np.asarray(result.image)[12, 12]
    assert g > 200 and r < 50 and b < 50


@pytest.mark.parametrize("make,reason", [
    (lambda p: p.write_bytes(b""), "empty file"),
    (images.truncated_jpeg, "truncated"),
    (lambda p: p.write_text("hello"), "not a recognised image format"),
    (images.png_bomb, "decompression bomb"),
])
def test_bad_files_give_reasons(tmp_path, make, reason):
    path = tmp_path / "bad.png"
    make(path)
    with pytest.raises(ImageDecodeError, match=reason):
        decode_path(path)


def test_bomb_message_names_the_size_and_limit(tmp_path):
    with pytest.raises(ImageDecodeError) as info:
        decode_path(images.png_bomb(tmp_path / "b.png", 30000, 20000))
    assert "30000×20000" in str(info.value) and "600 megapixels" in str(info.value)


def test_160_megapixel_jpeg_decodes_small_with_draft():
    # A real 160 MP JPEG (14600×11000, grey, so it is quick to write) must scan, and draft decoding must
    # hand back a picture near the model's size rather than 160 million pixels.
    buffer = io.BytesIO()
    Image.new("L", (14600, 11000), 128).save(buffer, "JPEG", quality=80)
    result = decode(buffer.getvalue(), draft_size=256)
    assert (result.width, result.height) == (14600, 11000)
    assert min(result.image.size) >= 256 and result.image.size[0] <= 14600 // 8 + 1


def test_unreadable_file_reason(tmp_path):
    with pytest.raises(ImageDecodeError, match="disappeared"):
        read_file(tmp_path / "gone.jpg")
    with pytest.raises(ImageDecodeError, match="folder"):
        read_file(tmp_path)
