"""Foundation-model image towers, rebuilt offline from the user's own weights file: CLIP / OpenCLIP ViTs with
open-clip-torch (open_clip.transformer.VisionTransformer, never `pretrained=`: nothing is downloaded), and DINOv2
ViTs with timm (models/families/dinov2.py).

A tower file is what OpenCLIP distributes (open_clip_pytorch_model.bin, open_clip_model.safetensors: the whole
CLIP model's state dict, image tower under `visual.`), a training checkpoint holding it ({'state_dict': ...},
'module.' prefixes), or the image tower's state dict alone. The tower's shape (width, layers, patch, image size,
output dimension, MLP width, layer scale, pre-norm) is read from the tensors' shapes, so a tiny tower written by a
test goes through exactly the code path of a real ViT-L/14. Two things are not in the shapes: the number of
attention heads (OpenCLIP's rule: width / 64, or the head width of the big towers below) and the activation
(OpenAI's CLIP was trained with QuickGELU, OpenCLIP's own towers with GELU): both are kept in the config.

OpenAI's own ViT-L-14.pt is a TorchScript archive, i.e. code: it is refused, with the file to use instead.
"""
from __future__ import annotations

import math
import re
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from models.card import InputSpec, sha256_file
from models.checkpoints import (CheckpointError, StateDict, check_checkpoint_file, describe_mismatch,
                                read_safetensors, read_torch_object)
from models.families import dinov2
from models.registry import CLIP_MEAN, CLIP_STD

ACTIVATIONS = ("quick_gelu", "gelu")
# OpenCLIP's head width is 64 except in its biggest towers (model_configs/ViT-H-14, ViT-g-14, ViT-bigG-14.json)
_HEAD_WIDTH = {1280: 80, 1408: 88, 1664: 104}
# what a CLIP ViT image tower must hold (OpenAI's and OpenCLIP's names); block 0 stands for every block
REQUIRED = ("conv1.weight", "class_embedding", "positional_embedding", "proj", "ln_post.weight",
            "transformer.resblocks.0.ln_1.weight", "transformer.resblocks.0.attn.in_proj_weight",
            "transformer.resblocks.0.mlp.c_fc.weight")
OPENAI_FILE_HINT = ("use the OpenCLIP copy of the same weights instead: open_clip_pytorch_model.bin or "
                    "open_clip_model.safetensors from huggingface.co/timm/vit_large_patch14_clip_224.openai")


class TowerError(CheckpointError):
    """A file that holds no image tower Forensight can rebuild, with what is missing."""


# ---- reading a tower file ---------------------------------------------------------------------------------
def read_tower(path: Path, activation: str | None = None) -> tuple[StateDict, dict[str, Any], str]:
    """(the image tower's state dict, its config, the file's SHA-256) of an OpenCLIP/CLIP or DINOv2 file."""
    path = Path(path)
    check_checkpoint_file(path)
    if _is_torchscript(path):
        raise TowerError(f"{path.name} is a TorchScript archive (OpenAI's original CLIP file): it holds code, and "
                         f"Forensight never runs code from an imported file; {OPENAI_FILE_HINT}")
    raw = read_safetensors(path) if path.suffix.lower() == ".safetensors" else read_torch_object(path)
    state = _unwrap(raw, path.name)
    del raw
    if dinov2.is_dinov2(state):
        visual = dinov2.timm_layout(state)
        config = dinov2.infer_config(visual, path.name)
    else:
        visual = vision_state(state, path.name)
        config = infer_config(visual, path.name)
        config["activation"] = activation or default_activation(path)
        if config["activation"] not in ACTIVATIONS:
            raise TowerError(f"tower activation {config['activation']!r}: choose one of {', '.join(ACTIVATIONS)}")
    check_fits(visual, config, path.name)
    return visual, config, sha256_file(path)


def _is_torchscript(path: Path) -> bool:
    """A TorchScript zip carries its Python code (code/…) and constants.pkl beside the tensors."""
    if not zipfile.is_zipfile(path):
        return False
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError):
        return False
    return any(n.endswith("constants.pkl") or "/code/" in n for n in names)


def default_activation(path: Path) -> str:
    """QuickGELU for OpenAI's weights (OpenCLIP names them '…openai…', e.g. vit_large_patch14_clip_224.openai),
    GELU for the towers OpenCLIP trained itself."""
    path = Path(path)
    return "quick_gelu" if "openai" in f"{path.parent.name}/{path.name}".lower() else "gelu"


def vision_state(state: StateDict, name: str) -> StateDict:
    """The CLIP image tower's tensors, keys relative to the tower ('conv1.weight', 'transformer.resblocks.0…')."""
    for prefix in ("visual.", ""):
        if f"{prefix}conv1.weight" in state or f"{prefix}class_embedding" in state:
            return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    if any(k.startswith("visual.layer1.") or k.startswith("visual.attnpool.") for k in state):
        raise TowerError(f"{name} holds a CLIP ResNet image tower (RN50 …): Forensight rebuilds CLIP ViT towers")
    if "patch_embed.proj.weight" in state or "visual.trunk.patch_embed.proj.weight" in state:
        raise TowerError(f"{name} holds a timm-layout ViT (patch_embed, blocks …) that is not DINOv2, and no "
                         "OpenCLIP state dict; for a CLIP tower use open_clip_pytorch_model.bin or "
                         "open_clip_model.safetensors")
    from models.families import describe

    missing = ", ".join(f"visual.{k}" for k in REQUIRED[:4])
    raise TowerError(f"{name} holds no CLIP image tower: missing {missing} …; it holds {describe(state)}")


def _unwrap(raw: Any, name: str) -> StateDict:
    """A flat state dict from OpenCLIP's containers ({'state_dict': …} from training, 'module.' from DDP)."""
    for _ in range(2):
        if isinstance(raw, dict) and isinstance(raw.get("state_dict"), dict):
            raw = raw["state_dict"]
    if not isinstance(raw, dict) or not raw:
        raise TowerError(f"{name} holds no state dict of tensors")
    state = {}
    for key, value in raw.items():
        if isinstance(key, str) and isinstance(value, torch.Tensor):
            state[key[len("module."):] if key.startswith("module.") else key] = value
    if not state:
        raise TowerError(f"{name} holds no tensors")
    return state


def infer_config(visual: StateDict, name: str = "the tower") -> dict[str, Any]:
    """The ViT's hyper-parameters from its tensors' shapes; a missing tensor is named."""
    missing = [k for k in REQUIRED if k not in visual]
    if missing:
        raise TowerError(f"{name} is not a complete CLIP ViT image tower: missing "
                         + ", ".join(f"visual.{k}" for k in missing))
    conv, pos = visual["conv1.weight"], visual["positional_embedding"]
    width, patch = int(conv.shape[0]), int(conv.shape[-1])
    grid = math.isqrt(max(int(pos.shape[0]) - 1, 0))
    if conv.ndim != 4 or conv.shape[1] != 3 or pos.ndim != 2 or grid * grid + 1 != pos.shape[0] or grid < 1:
        raise TowerError(f"{name}: visual.conv1.weight {tuple(conv.shape)} and visual.positional_embedding "
                         f"{tuple(pos.shape)} are not a square ViT's patch embedding and class + grid² positions")
    blocks = {int(m.group(1)) for k in visual if (m := re.match(r"transformer\.resblocks\.(\d+)\.", k))}
    mlp = int(visual["transformer.resblocks.0.mlp.c_fc.weight"].shape[0])
    return {
        "kind": "openclip_vit", "image_size": grid * patch, "patch_size": patch, "width": width,
        "layers": max(blocks) + 1, "heads": max(1, width // _HEAD_WIDTH.get(width, 64)), "mlp_ratio": mlp / width,
        "output_dim": int(visual["proj"].shape[1]),
        "layer_scale": "transformer.resblocks.0.ls_1.gamma" in visual, "ln_pre": "ln_pre.weight" in visual,
    }


def check_fits(visual: StateDict, config: dict[str, Any], name: str) -> None:
    """The rebuilt tower takes exactly these tensors; else one line naming what differs."""
    with torch.device("meta"):
        expected = {k: tuple(v.shape) for k, v in build_tower(config).state_dict().items()}
    mismatch = describe_mismatch(expected, visual)
    if mismatch:
        raise TowerError(f"{name} does not fit a {_kind_name(config)} image tower of width {config['width']}, "
                         f"{config['layers']} layers: {mismatch}")


# ---- building ---------------------------------------------------------------------------------------------
def _kind_name(config: dict[str, Any]) -> str:
    return "DINOv2 ViT" if config.get("kind") == "timm_vit" else "CLIP ViT"


def build_tower(config: dict[str, Any]) -> nn.Module:
    """The untrained image tower of a config (weights come from the library's safetensors file)."""
    if config.get("kind") == "timm_vit":
        return dinov2.build(config)
    if config.get("kind") != "openclip_vit":
        raise TowerError(f"unknown image tower kind {config.get('kind')!r}")
    try:
        from open_clip.transformer import LayerNorm, QuickGELU, VisionTransformer
    except ImportError:
        raise TowerError("open-clip-torch is not installed: run the README's install command") from None
    return VisionTransformer(
        image_size=int(config["image_size"]), patch_size=int(config["patch_size"]), width=int(config["width"]),
        layers=int(config["layers"]), heads=int(config["heads"]), mlp_ratio=float(config["mlp_ratio"]),
        ls_init_value=1e-5 if config.get("layer_scale") else None, output_dim=int(config["output_dim"]),
        no_ln_pre=not config.get("ln_pre", True),
        act_layer=QuickGELU if config.get("activation") == "quick_gelu" else nn.GELU, norm_layer=LayerNorm)


def describe_tower(config: dict[str, Any]) -> str:
    """'CLIP ViT (width 1024, 24 layers, 16 heads, patch 14, 224×224, 768 features, QuickGELU)'."""
    act = "QuickGELU" if config.get("activation") == "quick_gelu" else "GELU"
    if config.get("kind") == "timm_vit":
        act = f"{config.get('reg_tokens', 0)} registers"
    return (f"{_kind_name(config)} (width {config['width']}, {config['layers']} layers, {config['heads']} heads, patch "
            f"{config['patch_size']}, {config['image_size']}×{config['image_size']}, {config['output_dim']} "
            f"features, {act})")


def is_vit_l14(config: dict[str, Any]) -> bool:
    shape = tuple(config[k] for k in ("width", "layers", "patch_size", "image_size", "output_dim"))
    return config.get("kind") == "openclip_vit" and shape == (1024, 24, 14, 224, 768)


def explain_layer(config: dict[str, Any], prefix: str = "tower.") -> dict[str, Any]:
    """Grad-CAM on the last block's input norm: its patch tokens still reach the class token (the features)."""
    last = int(config["layers"]) - 1
    layer = f"blocks.{last}.norm1" if config.get("kind") == "timm_vit" else f"transformer.resblocks.{last}.ln_1"
    return {"method": "gradcam", "layer": prefix + layer, "tokens": True}


def native_crop_input(config: dict[str, Any]) -> InputSpec:
    """UnivFD's test input (validate.py): the central image_size² pixels at native resolution (a smaller picture
    padded with black, as torchvision's CenterCrop does), the tower's mean and std (CLIP's; ImageNet's for
    DINOv2)."""
    size = int(config["image_size"])
    mean, std = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)) if config.get("kind") == "timm_vit" else (
        CLIP_MEAN, CLIP_STD)
    return InputSpec(policy="center_crop", size=size, resize=size, mean=mean, std=std,
                     interpolation="bicubic", jpeg_draft=False, small_image="pad")
