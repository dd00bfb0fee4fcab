"""The tile map: every view's P(fake) laid over the picture where that view came from, for the desktop app and
the PDF report alike (no Qt here).

Unlike Grad-CAM, which is scaled per image and says only *where*, the tile map shows each tile's own P(fake)
on a fixed scale (green 0, yellow 0.5, red 1), so two pictures' maps can be compared. Where tiles overlap, a
pixel shows the strongest tile over it; parts of the picture no view looked at stay uncoloured.
"""
from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np
from PIL import Image, ImageDraw

from models.engine import Tile


def colours(p: np.ndarray) -> np.ndarray:
    """P(fake) → RGB uint8 on the map's scale: green (0) through yellow (0.5) to red (1)."""
    p = np.clip(np.asarray(p, dtype=np.float32), 0.0, 1.0)
    red = np.clip(2.0 * p, 0.0, 1.0)
    green = np.clip(2.0 * (1.0 - p), 0.0, 1.0) * 0.8  # a darker green reads better over bright pictures
    return (np.stack([red, green, np.zeros_like(p)], axis=-1) * 255).round().astype(np.uint8)


def strongest_map(tiles: Sequence[Tile], picture_size: tuple[int, int],
                  output_size: tuple[int, int]) -> np.ndarray:
    """float32 (H, W) of output_size: the highest P(fake) of the tiles over each pixel, NaN where none."""
    out_w, out_h = output_size
    sx, sy = out_w / max(1, picture_size[0]), out_h / max(1, picture_size[1])
    heat = np.full((out_h, out_w), np.nan, dtype=np.float32)
    for t in sorted(tiles, key=lambda t: t.p_fake):  # stronger tiles are painted last, over weaker ones
        x0, y0 = int(t.x * sx), int(t.y * sy)
        x1, y1 = max(x0 + 1, int(round((t.x + t.w) * sx))), max(y0 + 1, int(round((t.y + t.h) * sy)))
        heat[y0:y1, x0:x1] = t.p_fake
    return heat


def render(tiles: Sequence[Tile], picture_size: tuple[int, int], output_size: tuple[int, int],
           opacity: float = 0.55, outline: bool = True) -> Image.Image:
    """The map as an RGBA layer of output_size to lay over the picture (transparent where no tile looked)."""
    heat = strongest_map(tiles, picture_size, output_size)
    rgba = np.zeros((*heat.shape, 4), dtype=np.uint8)
    seen = ~np.isnan(heat)
    rgba[seen, :3] = colours(heat[seen])
    rgba[seen, 3] = int(round(255 * np.clip(opacity, 0.0, 1.0)))
    layer = Image.fromarray(rgba, "RGBA")
    if outline and tiles:
        _outline(layer, strongest(tiles), picture_size, output_size)
    return layer


def over_picture(picture: Image.Image, tiles: Sequence[Tile], picture_size: tuple[int, int],
                 opacity: float = 0.55) -> Image.Image:
    """The picture (any size, e.g. a thumbnail) with the map blended over it, as RGB."""
    base = picture.convert("RGBA")
    return Image.alpha_composite(base, render(tiles, picture_size, base.size, opacity)).convert("RGB")


def oriented_size(stored: tuple[int, int], shown: tuple[int, int]) -> tuple[int, int]:
    """The scanned picture's size with its EXIF orientation applied (tiles are placed in it), from the size its
    file stores and the shape of a (possibly reduced) copy shown upright."""
    width, height = stored
    turned = width != height and (width > height) != (shown[0] > shown[1]) and shown[0] != shown[1]
    return (height, width) if turned else (width, height)


def strongest(tiles: Iterable[Tile]) -> Tile | None:
    return max(tiles, key=lambda t: t.p_fake, default=None)


def tile_at(tiles: Sequence[Tile], x: float, y: float) -> Tile | None:
    """The strongest tile over picture pixel (x, y): the one whose colour the map shows there."""
    over = [t for t in tiles if t.x <= x < t.x + t.w and t.y <= y < t.y + t.h]
    return strongest(over)


def scale_bar(width: int = 200, height: int = 14) -> Image.Image:
    """The colour scale from P(fake) 0 (left) to 1 (right), for a legend."""
    ramp = colours(np.linspace(0.0, 1.0, width, dtype=np.float32))
    return Image.fromarray(np.repeat(ramp[None, :, :], height, axis=0), "RGB")


def _outline(layer: Image.Image, tile: Tile, picture_size: tuple[int, int], output_size: tuple[int, int]) -> None:
    """A frame around the strongest tile, so it can be found at a glance."""
    sx, sy = output_size[0] / max(1, picture_size[0]), output_size[1] / max(1, picture_size[1])
    box = (int(tile.x * sx), int(tile.y * sy), max(int(tile.x * sx) + 1, int(round((tile.x + tile.w) * sx)) - 1),
           max(int(tile.y * sy) + 1, int(round((tile.y + tile.h) * sy)) - 1))
    width = max(1, round(min(output_size) / 150))
    ImageDraw.Draw(layer).rectangle(box, outline=(255, 255, 255, 255), width=width)
