"""Where a detector looks: Grad-CAM heat maps for any architecture in the registry.

The heat map answers "which regions pushed this image towards *AI-generated*": the target is the fake
class (the raw logit for a one-logit model, the fake_index logit for a two-logit model) at the layer the
registry names for the architecture. The model sees exactly what a scan gives it (the card's geometry and
normalisation), and the map is placed back where the model's input came from in the full picture:

* policy ``resize``: the whole image was squashed to a square, so the map is stretched over the whole image;
* ``resize_center_crop`` / ``center_crop``: the model saw only a centred square, so the map covers that
  square and everything outside it is 0 (the model never saw it, so it cannot have looked there);
* ``tiles``, ``full``, ``five_crop``, ``ten_crop``: Grad-CAM explains the native-resolution centre square (one
  forward and backward pass); where the tiles' evidence lies is the tile map's job.

Like every Grad-CAM, the map is scaled to 0..1 per image: it says *where* the evidence for "fake" is
strongest, not how strong it is (that is P(fake)). A map of zeros means no region raised P(fake).
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, replace

import numpy as np
import torch
from PIL import Image
from torch import nn

from models.card import InputSpec, ModelCard
from models.library import LoadedModel
from models.preprocess import Normalizer, geometry_transform, view_box
from models.registry import get_architecture


EXPLAIN_FULL_PIXELS = 1 << 20  # policy full: Grad-CAM over the central megapixel at most


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
    left, top, right, bottom = view_box(spec, width, height)
    return CropBox(left / width, top / height, right / width, bottom / height)


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
    one backward pass.

    A published detector's card may name its own layer (family_config["explain"]: a Hugging Face model's last
    block, with tokens reshaped to a grid). A network without gradients (an ONNX graph) or without a usable layer
    gets an occlusion map instead: P(fake) is recomputed with each cell of an 8×8 grid greyed out, and the map
    shows how much each cell raised it (method = "occlusion")."""

    def __init__(self, model: LoadedModel, device: str | torch.device | None = None) -> None:
        self.card: ModelCard = model.card
        self.device = torch.device(device) if device is not None else _module_device(model.module)
        self.architecture = get_architecture(self.card.architecture)
        chosen = dict(self.card.family_config.get("explain") or {})
        layer = chosen.get("layer") or self.architecture.gradcam_layer
        self.method = "occlusion" if chosen.get("method") == "occlusion" or not layer else "gradcam"
        self.own_layer = bool(chosen.get("layer"))  # the card's, not the registry's
        self.tokens = bool(chosen.get("tokens")) if self.own_layer else self.architecture.is_vit
        self.module = (_explainable_copy(model.module) if self.method == "gradcam"
                       else copy.deepcopy(model.module).eval()).to(self.device)
        self.geometry = geometry_transform(self.card.input)
        self.normalize = Normalizer(self.card.input, self.device)
        self.target_layer = self.module.get_submodule(layer) if self.method == "gradcam" else None
        self.target_index = 0 if self.card.num_logits == 1 else self.card.fake_index

    def model_view_map(self, image: Image.Image) -> ModelViewMap:
        image = image.convert("RGB")
        if self.card.input.policy == "full":
            return self._whole_picture_map(image)
        batch = self.normalize(self.geometry(image).unsqueeze(0).to(self.device))
        crop_map = self._map(batch)
        return ModelViewMap(crop_map, model_view_box(self.card.input, *image.size))

    def _whole_picture_map(self, image: Image.Image) -> ModelViewMap:
        """Policy full (published detectors that take the picture as it is): the map covers what the scan's view
        covers, the whole picture or its central part, at most EXPLAIN_FULL_PIXELS (a backward pass over a
        4-megapixel picture would need gigabytes)."""
        from models.preprocess import image_views

        spec = self.card.input
        spec = replace(spec, full_max_pixels=max(spec.size ** 2, min(spec.full_max_pixels, EXPLAIN_FULL_PIXELS)))
        view, box = next(image_views(spec, image))
        crop_map = self._map(self.normalize(view.unsqueeze(0).to(self.device)))
        top, left = (crop_map.shape[0] - box.h) // 2, (crop_map.shape[1] - box.w) // 2  # padding of a small picture
        crop_map = crop_map[top:top + box.h, left:left + box.w]
        width, height = image.size
        return ModelViewMap(crop_map, CropBox(box.x / width, box.y / height, (box.x + box.w) / width,
                                              (box.y + box.h) / height))

    def _map(self, batch: torch.Tensor) -> np.ndarray:
        if self.method == "occlusion":
            crop_map = occlusion_map(self.module, batch, self.card.num_logits, self.target_index)
        else:
            from pytorch_grad_cam import GradCAM
            from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

            reshape = (None if not self.tokens else _tokens_to_grid() if self.own_layer
                       else _vit_tokens_to_grid(self.module))
            # a network that cuts its own windows out of the picture (B-Free's five token crops) knows where each
            # window's tokens lie on the picture: it maps them back itself
            reshape = getattr(self.module, "gradcam_reshape", None) or reshape
            with torch.enable_grad(), GradCAM(self.module, [self.target_layer], reshape_transform=reshape) as cam:
                crop_map = cam(batch, targets=[ClassifierOutputTarget(self.target_index)])[0]
        return np.clip(np.nan_to_num(crop_map), 0.0, 1.0).astype(np.float32)

    def heat_map(self, image: Image.Image, output_size: tuple[int, int] | None = None) -> np.ndarray:
        """float32 (H, W) in [0, 1] for output_size (width, height; default the image's own size)."""
        return self.model_view_map(image).render(output_size or image.size)


def occlusion_map(module: nn.Module, batch: torch.Tensor, num_logits: int, fake_index: int, grid: int = 8,
                  chunk: int = 16) -> np.ndarray:
    """How much greying out each cell of a grid×grid partition of the input lowers P(fake), scaled to 0..1
    (the normalised batch's 0 is the card's mean colour)."""
    _, _, height, width = batch.shape
    ys = np.linspace(0, height, grid + 1).round().astype(int)
    xs = np.linspace(0, width, grid + 1).round().astype(int)
    cells = [(ys[i], ys[i + 1], xs[j], xs[j + 1]) for i in range(grid) for j in range(grid)]

    def p_fake(x: torch.Tensor) -> torch.Tensor:
        logits = module(x).float()
        return torch.sigmoid(logits.reshape(-1)) if num_logits == 1 else torch.softmax(logits, 1)[:, fake_index]

    with torch.inference_mode():
        base = float(p_fake(batch)[0])
        drops = []
        for start in range(0, len(cells), chunk):
            views = batch.repeat(len(cells[start:start + chunk]), 1, 1, 1)
            for k, (y0, y1, x0, x1) in enumerate(cells[start:start + chunk]):
                views[k, :, y0:y1, x0:x1] = 0
            drops += (base - p_fake(views)).clamp(min=0).tolist()
    heat = np.zeros((height, width), dtype=np.float32)
    for drop, (y0, y1, x0, x1) in zip(drops, cells):
        heat[y0:y1, x0:x1] = drop
    top = float(heat.max())
    return heat / top if top > 0 else heat


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


def _tokens_to_grid():
    """Tokens (B, prefix + side², C) → (B, C, side, side) for any prefix shorter than the grid's side (a class
    token, registers): the prefix is what is left over above the largest square."""
    def reshape(tokens: torch.Tensor) -> torch.Tensor:
        side = math.isqrt(tokens.shape[1])
        patches = tokens[:, tokens.shape[1] - side * side:, :]
        return patches.reshape(tokens.shape[0], side, side, tokens.shape[2]).permute(0, 3, 1, 2)

    return reshape


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
