"""DINOv2 image towers (Oquab et al. 2023) for linear probes, rebuilt with timm's VisionTransformer offline.

Accepted files: timm's layout as Hugging Face distributes it (timm/vit_base_patch14_dinov2.lvd142m,
model.safetensors: cls_token, pos_embed, patch_embed.proj, blocks.N.{norm1, attn.qkv, ls1.gamma, mlp.fc1, …},
norm; `reg_token` for the variants with registers) and Meta's own checkpoints (dinov2_vitb14_pretrain.pth, the
same names plus `mask_token`; registers as `register_tokens` with a position for the class token). Meta's layout is
turned into timm's here, as timm's own converter does: the mask token is dropped, and with registers the class
token's position embedding is folded into the class token (timm's no_embed_class models give no position to
prefix tokens). Shapes give width, depth, patch, input size, MLP width and registers; heads are width / 64 (every
DINOv2 size). The features are the class token after the final norm. SwiGLU towers (ViT-g) are not rebuilt.
"""
from __future__ import annotations

import math
import re
from typing import Any

from torch import nn

from models.checkpoints import StateDict

REQUIRED = ("cls_token", "pos_embed", "patch_embed.proj.weight", "blocks.0.norm1.weight", "blocks.0.attn.qkv.weight",
            "blocks.0.mlp.fc1.weight", "norm.weight")


def is_dinov2(state: StateDict) -> bool:
    """timm/Meta ViT names with DINOv2's layer scale (ls1) or its mask token."""
    return "patch_embed.proj.weight" in state and ("blocks.0.ls1.gamma" in state or "mask_token" in state)


def timm_layout(state: StateDict) -> StateDict:
    """Meta's names → timm's (a timm-layout file passes through unchanged)."""
    state = {k: v for k, v in state.items() if k != "mask_token"}
    if "register_tokens" in state:
        state["reg_token"] = state.pop("register_tokens")
        state["cls_token"] = state["cls_token"] + state["pos_embed"][:, 0]
        state["pos_embed"] = state["pos_embed"][:, 1:]
    return state


def infer_config(state: StateDict, name: str) -> dict[str, Any]:
    from models.families.towers import TowerError

    missing = [k for k in REQUIRED if k not in state]
    if missing:
        raise TowerError(f"{name} is not a complete DINOv2 ViT image tower: missing {', '.join(missing)}")
    if "blocks.0.mlp.w12.weight" in state:
        raise TowerError(f"{name} is a DINOv2 ViT-g with SwiGLU blocks: Forensight rebuilds ViT-S, B and L")
    proj = state["patch_embed.proj.weight"]
    width, patch = int(proj.shape[0]), int(proj.shape[-1])
    registers = int(state["reg_token"].shape[1]) if "reg_token" in state else 0
    positions = int(state["pos_embed"].shape[1]) - (0 if registers else 1)  # registers: no_embed_class
    grid = math.isqrt(positions)
    if grid * grid != positions:
        raise TowerError(f"{name}: pos_embed {tuple(state['pos_embed'].shape)} is not a square grid of positions")
    blocks = {int(m.group(1)) for k in state if (m := re.match(r"blocks\.(\d+)\.", k))}
    return {"kind": "timm_vit", "image_size": grid * patch, "patch_size": patch, "width": width,
            "layers": max(blocks) + 1, "heads": max(1, width // 64),
            "mlp_ratio": int(state["blocks.0.mlp.fc1.weight"].shape[0]) / width, "output_dim": width,
            "reg_tokens": registers, "layer_scale": "blocks.0.ls1.gamma" in state}


def build(config: dict[str, Any]) -> nn.Module:
    from timm.models.vision_transformer import VisionTransformer

    registers = int(config.get("reg_tokens", 0))
    return VisionTransformer(
        img_size=int(config["image_size"]), patch_size=int(config["patch_size"]), embed_dim=int(config["width"]),
        depth=int(config["layers"]), num_heads=int(config["heads"]), mlp_ratio=float(config["mlp_ratio"]),
        init_values=1e-5 if config.get("layer_scale") else None, reg_tokens=registers,
        no_embed_class=registers > 0, num_classes=0, global_pool="token")
