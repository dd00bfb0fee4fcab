"""Where a detector looks: Grad-CAM heat maps for any architecture in the registry.

The heat map answers "which regions pushed this image towards *AI-generated*": the target is the fake
class (the raw logit for a one-logit model, the fake_index logit for a two-logit model) at the layer the
registry names for the architecture. The model sees exactly what a scan gives it (the card's geometry and
normalisation), and the map is placed back where the model's input came from in the full picture:

* policy ``resize``: the whole image was squashed to a square, so the map is stretched over the whole image;
* ``resize_center_crop`` / ``center_crop``: the model saw only a centred square, so the map covers that
  square and everything outside it is 0 (the model never saw it, so it cannot have looked there).

Like every Grad-CAM, the map is scaled to 0..1 per image: it says *where* the evidence for "fake" is
strongest, not how strong it is (that is P(fake)). A map of zeros means no region raised P(fake).
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torch import nn

from models.card import InputSpec, ModelCard
from models.library import LoadedModel
from models.preprocess import Normalizer, geometry_transform
from models.registry import get_architecture


@dataclass(frozen=True)
class CropBox:
    """The part of the image the model's input shows, as fractions of the image's width and height
    (a centre crop of a small image may reach outside 0..1, where the model saw padding)."""
    left: float
    top: float
    right: float
    bottom: float


def model_view_box(spec: InputSpec, width: int, height: int) -> CropBox:
    """Where the card's geometry takes its square input from in a width×height image."""
    if spec.policy == "resize":
        return CropBox(0.0, 0.0, 1.0, 1.0)
    # resize_center_crop scales the short side to spec.resize first; center_crop keeps the scale
    scale = spec.resize / min(width, height) if spec.policy == "resize_center_crop" else 1.0
    side = spec.size / scale
    left, top = (width - side) / 2, (height - side) / 2
    return CropBox(left / width, top / height, (left + side) / width, (top + side) / height)


@dataclass(frozen=True)
class ModelViewMap:
    """Grad-CAM over the model's own input (small, cheap to keep) and where that input sits in the image.
    render() lays it on an image of any size: the full picture or a reduced preview."""
    crop_map: np.ndarray  # float32 (input size, input size), values in [0, 1]
    box: CropBox

    def render(self, output_size: tuple[int, int]) -> np.ndarray:
        return place_on_image(self.crop_map, self.box, output_size)


class Explainer:
    """Grad-CAM for one loaded model. Works on a private copy of the network, so it never disturbs a scan
    running with the original in another thread. Build once per model; each call costs one forward and
    one backward pass."""

    def __init__(self, model: LoadedModel, device: str | torch.device | None = None) -> None:
        self.card: ModelCard = model.card
        self.device = torch.device(device) if device is not None else _module_device(model.module)
        self.architecture = get_architecture(self.card.architecture)
        self.module = _explainable_copy(model.module).to(self.device)
        self.geometry = geometry_transform(self.card.input)
        self.normalize = Normalizer(self.card.input, self.device)
        self.target_layer = self.module.get_submodule(self.architecture.gradcam_layer)
        self.target_index = 0 if self.card.num_logits == 1 else self.card.fake_index

    def model_view_map(self, image: Image.Image) -> ModelViewMap:
        from pytorch_grad_cam import GradCAM
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

        image = image.convert("RGB")
        batch = self.normalize(self.geometry(image).unsqueeze(0).to(self.device))
        reshape = _vit_tokens_to_grid(self.module) if self.architecture.is_vit else None
        with torch.enable_grad(), GradCAM(self.module, [self.target_layer], reshape_transform=reshape) as cam:
            crop_map = cam(batch, targets=[ClassifierOutputTarget(self.target_index)])[0]
        crop_map = np.clip(np.nan_to_num(crop_map), 0.0, 1.0).astype(np.float32)
        return ModelViewMap(crop_map, model_view_box(self.card.input, *image.size))

    def heat_map(self, image: Image.Image, output_size: tuple[int, int] | None = None) -> np.ndarray:
        """float32 (H, W) in [0, 1] for output_size (width, height; default the image's own size)."""
        return self.model_view_map(image).render(output_size or image.size)


def explain(model: LoadedModel, image: Image.Image, device: str | torch.device | None = None,
            output_size: tuple[int, int] | None = None) -> np.ndarray:
    """One-shot Grad-CAM heat map of `image` (float32, image-sized unless output_size, values in [0, 1])."""
    return Explainer(model, device).heat_map(image, output_size)


def place_on_image(crop_map: np.ndarray, box: CropBox, output_size: tuple[int, int]) -> np.ndarray:
    """Stretch the model-input map over `box` of a zero canvas of output_size (width, height)."""
    out_w, out_h = output_size
    left, top = math.floor(box.left * out_w + 0.5), math.floor(box.top * out_h + 0.5)
    right, bottom = math.floor(box.right * out_w + 0.5), math.floor(box.bottom * out_h + 0.5)
    canvas = np.zeros((out_h, out_w), dtype=np.float32)
    x0, y0, x1, y1 = max(left, 0), max(top, 0), min(right, out_w), min(bottom, out_h)
    if x1 <= x0 or y1 <= y0:
        return canvas
    stretched = np.asarray(Image.fromarray(crop_map.astype(np.float32), "F")
                           .resize((right - left, bottom - top), Image.BILINEAR))
    canvas[y0:y1, x0:x1] = stretched[y0 - top:y1 - top, x0 - left:x1 - left]  # the part inside the image
    return np.clip(canvas, 0.0, 1.0)


# ---- showing a heat map ---------------------------------------------------------------------------------
def colorize(heat: np.ndarray) -> Image.Image:
    """The heat map as an RGB image on the 'jet' ramp (blue = cold, red = where the model looked)."""
    t = np.clip(np.asarray(heat, dtype=np.float32), 0.0, 1.0)
    # jet as three clipped triangles: each channel peaks at a different quarter of the range
    red = np.clip(1.5 - np.abs(4 * t - 3), 0, 1)
    green = np.clip(1.5 - np.abs(4 * t - 2), 0, 1)
    blue = np.clip(1.5 - np.abs(4 * t - 1), 0, 1)
    return Image.fromarray((np.stack([red, green, blue], axis=-1) * 255).round().astype(np.uint8), "RGB")


def overlay(image: Image.Image, heat: np.ndarray, opacity: float = 0.5) -> Image.Image:
    """The image with the coloured heat map blended over it (opacity 0 = image only, 1 = map only)."""
    base = image.convert("RGB")
    colours = colorize(heat)
    if colours.size != base.size:
        colours = colours.resize(base.size, Image.BILINEAR)
    return Image.blend(base, colours, float(np.clip(opacity, 0.0, 1.0)))


# ---- helpers --------------------------------------------------------------------------------------------
def _module_device(module: nn.Module) -> torch.device:
    parameter = next(module.parameters(), None)
    return parameter.device if parameter is not None else torch.device("cpu")


def _explainable_copy(module: nn.Module) -> nn.Module:
    """A private copy with gradients on and in-place activations off: an in-place ReLU right after the
    target layer would overwrite the activations Grad-CAM recorded."""
    clone = copy.deepcopy(module).eval()
    for layer in clone.modules():
        if isinstance(getattr(layer, "inplace", None), bool):  # ReLU, ReLU6, SiLU, timm's activations ...
            layer.inplace = False
    for parameter in clone.parameters():
        parameter.requires_grad_(True)
    return clone


def _vit_tokens_to_grid(module: nn.Module):
    """Token sequence (B, prefix + N, C) → feature map (B, C, √N, √N), dropping the class/register tokens."""
    prefix = int(getattr(module, "num_prefix_tokens", 1))

    def reshape(tokens: torch.Tensor) -> torch.Tensor:
        patches = tokens[:, prefix:, :]
        side = math.isqrt(patches.shape[1])
        if side * side != patches.shape[1]:
            raise ValueError(f"{patches.shape[1]} patch tokens do not form a square grid")
        return patches.reshape(tokens.shape[0], side, side, tokens.shape[2]).permute(0, 3, 1, 2)

    return reshape
