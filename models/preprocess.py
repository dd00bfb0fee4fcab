"""From a decoded RGB image to the tensor a card asks for: geometry on the CPU (uint8, in the decode
workers), normalisation on the device as one batched operation."""
from __future__ import annotations

from typing import Callable

import torch
from PIL import Image
from torchvision.transforms import InterpolationMode, v2

from models.card import InputSpec

_INTERPOLATION = {
    "nearest": InterpolationMode.NEAREST, "bilinear": InterpolationMode.BILINEAR,
    "bicubic": InterpolationMode.BICUBIC, "lanczos": InterpolationMode.LANCZOS,
}


def geometry_transform(spec: InputSpec) -> Callable[[Image.Image], torch.Tensor]:
    """PIL RGB image → uint8 tensor (3, size, size) following the card's input policy."""
    interpolation = _INTERPOLATION[spec.interpolation]
    steps: list = []
    if spec.policy == "resize":
        steps.append(v2.Resize((spec.size, spec.size), interpolation=interpolation, antialias=True))
    elif spec.policy == "resize_center_crop":
        steps.append(v2.Resize(spec.resize, interpolation=interpolation, antialias=True))
    steps += [v2.CenterCrop(spec.size), v2.PILToTensor()]
    return v2.Compose(steps)


def draft_size(spec: InputSpec) -> int | None:
    """The smallest decoded side the policy needs, when it resizes anyway (else decode at full size)."""
    if not spec.jpeg_draft or not spec.resizes:
        return None
    return spec.size if spec.policy == "resize" else spec.resize


class Normalizer:
    """uint8 batch on any device → normalised float batch, in one fused step."""

    def __init__(self, spec: InputSpec, device: torch.device, dtype: torch.dtype = torch.float32) -> None:
        self.mean = torch.tensor(spec.mean, device=device, dtype=dtype).view(1, 3, 1, 1) * 255.0
        self.std = torch.tensor(spec.std, device=device, dtype=dtype).view(1, 3, 1, 1) * 255.0
        self.dtype = dtype

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        return (batch.to(self.dtype) - self.mean) / self.std
