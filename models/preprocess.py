"""From a decoded RGB image to the tensors a card asks for: geometry on the CPU (uint8, in the decode
workers), normalisation on the device as one batched operation.

A policy turns one picture into views: one square for resize / resize_center_crop / center_crop, several
native-resolution squares for tiles / five_crop / ten_crop, or the whole picture for full. Each view comes
with the box of the picture it shows, so that a score can be placed back where it came from (the tile map).
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Callable, Iterator, NamedTuple

import numpy as np
import torch
from PIL import Image
from torchvision.transforms import InterpolationMode, v2

from models.card import MULTI_VIEW_POLICIES, InputSpec

_INTERPOLATION = {
    "nearest": InterpolationMode.NEAREST, "bilinear": InterpolationMode.BILINEAR,
    "bicubic": InterpolationMode.BICUBIC, "lanczos": InterpolationMode.LANCZOS,
}
_PIL_RESAMPLE = {"nearest": Image.NEAREST, "bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC,
                 "lanczos": Image.LANCZOS}


class Box(NamedTuple):
    """The part of the picture a view shows, in the picture's pixels (EXIF orientation applied), clipped to
    the picture: padding around a small picture is not part of it."""
    x: int
    y: int
    w: int
    h: int


def geometry_transform(spec: InputSpec) -> Callable[[Image.Image], torch.Tensor]:
    """PIL RGB image → uint8 tensor (3, size, size): the card's single view. Policies with several views
    (tiles, five_crop, ten_crop) and full are given their native-resolution centre square here, which is what
    Grad-CAM and a training run's validation look at; scans use image_views()."""
    interpolation = _INTERPOLATION[spec.interpolation]
    steps: list = []
    if spec.policy == "resize":
        steps.append(v2.Resize((spec.size, spec.size), interpolation=interpolation, antialias=True))
    elif spec.policy == "resize_center_crop":
        steps.append(v2.Resize(spec.resize, interpolation=interpolation, antialias=True))
    elif _floor_crop(spec):
        return functools.partial(_planned_view, spec)  # a partial, not a lambda: DataLoader workers pickle it
    steps += [v2.CenterCrop(spec.size), v2.PILToTensor()]
    return v2.Compose(steps)


def _planned_view(spec: InputSpec, image: Image.Image) -> torch.Tensor:
    return plan_views(spec, image.width, image.height)[0].render(image, _PIL_RESAMPLE[spec.interpolation])


def _floor_crop(spec: InputSpec) -> bool:
    """A centre crop placed as albumentations places it (offsets rounded down), planned like the multi-view
    policies rather than by torchvision's CenterCrop (which rounds half to even)."""
    return spec.policy == "center_crop" and spec.crop_offset == "floor"


def draft_size(spec: InputSpec) -> int | None:
    """The smallest decoded side the policy needs, when it resizes anyway (else decode at full size)."""
    if not spec.jpeg_draft or not spec.resizes:
        return None
    return spec.size if spec.policy == "resize" else spec.resize


def view_box(spec: InputSpec, width: int, height: int) -> tuple[float, float, float, float]:
    """Where the single view of geometry_transform() comes from in a width×height picture: (left, top, right,
    bottom) in its pixels, reaching outside it where a centre crop of a small picture pads."""
    if spec.policy == "resize":
        return 0.0, 0.0, float(width), float(height)
    if _floor_crop(spec):
        return plan_views(spec, width, height)[0].source
    # resize_center_crop scales the short side to spec.resize first; the others keep the scale
    scale = spec.resize / min(width, height) if spec.policy == "resize_center_crop" else 1.0
    side = spec.size / scale
    left, top = (width - side) / 2, (height - side) / 2
    return left, top, left + side, top + side


def image_views(spec: InputSpec, image: Image.Image) -> Iterator[tuple[torch.Tensor, Box]]:
    """The card's views of a decoded RGB picture, one at a time: (uint8 tensor (3, h, w), Box)."""
    planned_crop = spec.policy == "center_crop" and (
        _floor_crop(spec) or spec.small_image == "upscale" and min(image.size) < spec.size)
    if spec.policy not in MULTI_VIEW_POLICIES and not planned_crop:
        yield geometry_transform(spec)(image), _clip(view_box(spec, image.width, image.height), image.size)
        return
    resample = _PIL_RESAMPLE[spec.interpolation]
    for plan in plan_views(spec, image.width, image.height):
        yield plan.render(image, resample), _clip(plan.source, image.size)


# ---- planning views at native resolution ---------------------------------------------------------------
@dataclass(frozen=True)
class _Canvas:
    """The picture as the views see it: scaled up (small_image=upscale) or padded (pad), in whole pixels.
    Canvas pixel (x, y) is picture pixel ((x + left) / scale, (y + top) / scale)."""
    scale: float
    left: int
    top: int
    width: int
    height: int


@dataclass(frozen=True)
class ViewPlan:
    source: tuple[float, float, float, float]  # (left, top, right, bottom) in picture pixels
    out: tuple[int, int]  # width, height of the view
    flip: bool = False  # mirrored left-right (ten_crop)

    def render(self, image: Image.Image, resample: int) -> torch.Tensor:
        left, top, right, bottom = self.source
        if (right - left, bottom - top) == self.out:  # native resolution; crop() pads outside with black
            view = image.crop((round(left), round(top), round(right), round(bottom)))
        else:  # an upscaled small picture: only this view's pixels are enlarged, never the whole picture
            inside = (max(0.0, left), max(0.0, top), min(float(image.width), right), min(float(image.height), bottom))
            view = image.resize(self.out, resample, box=inside)
        if self.flip:
            view = view.transpose(Image.FLIP_LEFT_RIGHT)
        return torch.from_numpy(np.asarray(view, dtype=np.uint8).copy()).permute(2, 0, 1).contiguous()


def plan_views(spec: InputSpec, width: int, height: int) -> list[ViewPlan]:
    """The views of a multi-view policy for a width×height picture (computed from the size alone)."""
    canvas = _canvas(spec, width, height)
    size = spec.size
    if spec.policy == "full":
        w, h = _fit_area(canvas.width, canvas.height, spec.full_max_pixels, size)
        return [_plan(canvas, (canvas.width - w) // 2, (canvas.height - h) // 2, w, h)]
    if spec.policy == "tiles":
        xs = _starts(canvas.width, size, spec.stride)
        ys = _starts(canvas.height, size, spec.stride)
        xs, ys = _spread(xs, ys, canvas.width, canvas.height, size, spec.max_tiles)
        return [_plan(canvas, x, y, size, size) for y in ys for x in xs]
    right, bottom = canvas.width - size, canvas.height - size
    if spec.policy == "center_crop":  # a small picture enlarged by the card's small-image rule, or a floor crop
        return [_plan(canvas, right // 2, bottom // 2, size, size)]
    # torchvision's five_crop: the corners, and the centre at int(round(margin / 2)) (Python rounds half to even)
    corners = [(0, 0), (right, 0), (0, bottom), (right, bottom), (round(right / 2), round(bottom / 2))]
    plans = [_plan(canvas, x, y, size, size) for x, y in corners]
    if spec.policy == "ten_crop":
        # torchvision's TenCrop crops the mirrored picture: the same five places counted from the right, so with an
        # odd margin its mirrored centre crop sits one pixel from the unmirrored one
        plans += [ViewPlan(_plan(canvas, right - x, y, size, size).source, (size, size), flip=True)
                  for x, y in corners]
    return plans


def _canvas(spec: InputSpec, width: int, height: int) -> _Canvas:
    size = spec.size
    if spec.small_image == "upscale" and min(width, height) < size:
        scale = size / min(width, height)
        return _Canvas(scale, 0, 0, max(size, round(width * scale)), max(size, round(height * scale)))
    padded_w, padded_h = max(width, size), max(height, size)
    return _Canvas(1.0, -((padded_w - width) // 2), -((padded_h - height) // 2), padded_w, padded_h)


def _plan(canvas: _Canvas, x: int, y: int, w: int, h: int) -> ViewPlan:
    s = canvas.scale
    source = ((x + canvas.left) / s, (y + canvas.top) / s, (x + w + canvas.left) / s, (y + h + canvas.top) / s)
    return ViewPlan(source, (w, h))


def _starts(length: int, tile: int, stride: int) -> list[int]:
    """Tile origins along one side: every `stride` pixels, the last one flush with the end so that nothing
    is left out."""
    if length <= tile:
        return [0]
    count = math.ceil((length - tile) / stride) + 1
    return [min(i * stride, length - tile) for i in range(count)]


def _spread(xs: list[int], ys: list[int], width: int, height: int, tile: int,
            most: int) -> tuple[list[int], list[int]]:
    """At most `most` tiles: fewer columns and rows, in proportion, spread evenly from edge to edge."""
    if len(xs) * len(ys) <= most:
        return xs, ys
    factor = math.sqrt(most / (len(xs) * len(ys)))
    columns = min(len(xs), max(1, math.floor(len(xs) * factor)))
    rows = min(len(ys), max(1, most // columns))
    columns = min(len(xs), max(1, most // rows))
    return _even(width - tile, columns), _even(height - tile, rows)


def _even(span: int, count: int) -> list[int]:
    if count == 1:
        return [span // 2]
    return [round(i * span / (count - 1)) for i in range(count)]


def _fit_area(width: int, height: int, most: int, side: int) -> tuple[int, int]:
    """The central part of a width×height canvas to analyse: all of it, or the same shape with at most
    `most` pixels, never narrower than `side` (the canvas is at least side×side)."""
    if width * height <= most:
        return width, height
    factor = math.sqrt(most / (width * height))
    w = min(width, max(side, math.floor(width * factor)), most // side)
    return w, min(height, most // w)


def _clip(source: tuple[float, float, float, float], size: tuple[int, int]) -> Box:
    left, top, right, bottom = source
    x0, y0 = max(0, math.floor(left + 1e-6)), max(0, math.floor(top + 1e-6))
    x1, y1 = min(size[0], math.ceil(right - 1e-6)), min(size[1], math.ceil(bottom - 1e-6))
    return Box(x0, y0, max(1, x1 - x0), max(1, y1 - y0))


def describe_policy(spec: InputSpec) -> str:
    """What the model looks at, in one sentence (cards, reports, the model manager)."""
    size = f"{spec.size}×{spec.size}"
    small = ("a side shorter than that is padded with black" if spec.small_image == "pad"
             else "a smaller picture is enlarged until its short side is that size")
    rule = {"max": "the strongest view's P(fake)", "mean_logit": "the mean of the views' logits",
            "top_k_mean": f"the mean P(fake) of the {spec.top_k} strongest views"}[spec.aggregation]
    return {
        "resize": f"the whole picture squashed to {size}",
        "resize_center_crop": f"a centre crop of {size} after scaling the short side to {spec.resize}",
        "center_crop": f"the central {size} pixels at native resolution ({small})",
        "tiles": f"native-resolution {size} tiles every {spec.stride} pixels over the whole picture (at most "
                 f"{spec.max_tiles}, spread evenly beyond that; {small}); the picture's score is {rule}",
        "full": f"the whole picture at native resolution, up to {spec.full_max_pixels / 1e6:.1f} megapixels (a "
                f"bigger one is analysed on its central part; {small})",
        "five_crop": f"five {size} crops at native resolution (the corners and the centre; {small}); the "
                     f"picture's score is {rule}",
        "ten_crop": f"ten {size} crops at native resolution (the corners and the centre, and their mirror images; "
                    f"{small}); the picture's score is {rule}",
    }[spec.policy]


class Normalizer:
    """uint8 batch on any device → normalised float batch, in one fused step."""

    def __init__(self, spec: InputSpec, device: torch.device, dtype: torch.dtype = torch.float32) -> None:
        self.mean = torch.tensor(spec.mean, device=device, dtype=dtype).view(1, 3, 1, 1) * 255.0
        self.std = torch.tensor(spec.std, device=device, dtype=dtype).view(1, 3, 1, 1) * 255.0
        self.dtype = dtype

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        return (batch.to(self.dtype) - self.mean) / self.std
