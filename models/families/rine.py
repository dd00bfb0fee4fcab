"""RINE: Koutlis & Papadopoulos, "Leveraging Representations from Intermediate Encoder-blocks for Synthetic Image
Detection", ECCV 2024 (github.com/mever-team/rine).

The detector (src/models.py): OpenAI CLIP ViT-L/14's image encoder, frozen; a forward hook on every block's `ln_2`
keeps that LayerNorm's output, and its class token (sequence position 0) gives one 1024-d vector per block. A
small trainable network maps them to P(fake):
    g = proj1(tokens)                      # per block: Dropout, then nproj × (Linear, ReLU, Dropout)
    z = sum over blocks of softmax(alpha, over the blocks) * g   # the Trainable Importance Estimator
    p = head(proj2(z))                     # proj2 like proj1; head: Linear, ReLU, Dropout, Linear, ReLU, Dropout,
                                           # Linear(proj_dim, 1); P(fake) = sigmoid(p) (demo/demo.py)
The published files (ckpt/model_{1class,2class,4class,ldm}_trainable.pth) are `torch.save` of the model's state
dict without the CLIP tensors (src/utils.py: train_one_experiment, store=True): 'alpha' [1, 24, proj_dim],
'proj1.1.weight' …, 'proj2.…', 'head.0/3/6.…'. nproj and proj_dim differ per file (get_our_trained_model: 4/1024,
4/128, 2/1024, 4/1024); they are read from the shapes here.

Test input (src/utils.py get_transforms, scripts/validation.py): the ProGAN-trained files take `CenterCrop(224)` of
the picture as it is (no resize), ToTensor, CLIP's mean and std; the file trained on latent diffusion is evaluated
with `TenCrop(224)`, the ten logits averaged before the sigmoid. The user brings the CLIP tower as for UnivFD
(OpenCLIP's copy of OpenAI's weights); the library keeps tower and head in one safetensors file.
"""
from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from models.card import ModelCard, model_id_from
from models.checkpoints import (CheckpointError, StateDict, check_checkpoint_file, flatten_state, read_safetensors,
                                read_torch_object)
from models.families import towers

FAMILY = "rine"
ARCHITECTURE = "clip_rine"
NEEDS_TOWER = ("{name} is a RINE head (the class tokens of {blocks} CLIP blocks of width {width} → 1 logit): it "
               "reads the intermediate blocks of the CLIP ViT-L/14 tower it was trained on, so import it together "
               "with that tower: forensight models import {name} --tower open_clip_pytorch_model.bin (OpenAI's "
               "ViT-L/14 weights as OpenCLIP distributes them, huggingface.co/timm/vit_large_patch14_clip_224.openai)")
_LINEAR = re.compile(r"^(proj1|proj2|head)\.(\d+)\.(weight|bias)$")


# ---- the network ------------------------------------------------------------------------------------------
def _projection(first: int, width: int, count: int) -> nn.Sequential:
    """Dropout, then `count` × (Linear, ReLU, Dropout): the authors' indices (Linear at 1, 4, 7 …) are kept so
    their tensor names load as they are."""
    layers: list[nn.Module] = [nn.Dropout()]
    for i in range(count):
        layers += [nn.Linear(first if i == 0 else width, width), nn.ReLU(), nn.Dropout()]
    return nn.Sequential(*layers)


class RineHead(nn.Module):
    def __init__(self, blocks: int, width: int, nproj: int, proj_dim: int) -> None:
        super().__init__()
        self.alpha = nn.Parameter(torch.zeros(1, blocks, proj_dim))
        self.proj1 = _projection(width, proj_dim, nproj)
        self.proj2 = _projection(proj_dim, proj_dim, nproj)
        self.head = nn.Sequential(nn.Linear(proj_dim, proj_dim), nn.ReLU(), nn.Dropout(),
                                  nn.Linear(proj_dim, proj_dim), nn.ReLU(), nn.Dropout(), nn.Linear(proj_dim, 1))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:  # tokens: [batch, blocks, width]
        g = self.proj1(tokens)
        z = (torch.softmax(self.alpha, dim=1) * g).sum(dim=1)
        return self.head(self.proj2(z))


class RineDetector(nn.Module):
    """The CLIP tower with the class token of each block's ln_2 output taken as it passes (forward hooks, as the
    authors do), and the RINE head on them."""

    def __init__(self, tower: nn.Module, head: RineHead) -> None:
        super().__init__()
        self.tower = tower
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outputs: list[torch.Tensor] = []
        hooks = [block.ln_2.register_forward_hook(lambda _m, _i, out: outputs.append(out))
                 for block in self.tower.transformer.resblocks]
        try:
            self.tower(x)
        finally:
            for hook in hooks:
                hook.remove()
        # OpenCLIP's blocks run batch-first ([batch, tokens, width]); OpenAI's CLIP runs [tokens, batch, width]
        batch_first = getattr(self.tower.transformer, "batch_first", True)
        tokens = torch.stack([out[:, 0] if batch_first else out[0] for out in outputs], dim=1)
        return self.head(tokens.float())


def build_module(card: ModelCard) -> RineDetector:
    config, head = card.family_config.get("tower"), card.family_config.get("head")
    if not isinstance(config, dict) or not isinstance(head, dict):
        raise CheckpointError("the card's family_config has no RINE tower and head description")
    return RineDetector(towers.build_tower(config), RineHead(**{k: int(head[k]) for k in (
        "blocks", "width", "nproj", "proj_dim")})).eval()


# ---- the published head file ------------------------------------------------------------------------------
def head_shape(state: StateDict) -> dict[str, int] | None:
    """{blocks, width, nproj, proj_dim} of a state dict in the authors' container, or None when it is not one."""
    alpha = state.get("alpha")
    if alpha is None or alpha.ndim != 3 or alpha.shape[0] != 1:
        return None
    if any(k != "alpha" and not _LINEAR.match(k) for k in state):
        return None
    linear = {(m.group(1), int(m.group(2))) for k in state if (m := _LINEAR.match(k)) and m.group(3) == "weight"}
    proj1 = sorted(i for part, i in linear if part == "proj1")
    if not proj1 or ("head", 6) not in linear:
        return None
    blocks, proj_dim = int(alpha.shape[1]), int(alpha.shape[2])
    shape = {"blocks": blocks, "width": int(state["proj1.1.weight"].shape[1]) if "proj1.1.weight" in state else 0,
             "nproj": len(proj1), "proj_dim": proj_dim}
    return shape if shape["width"] else None


def is_head(state: StateDict) -> bool:
    return head_shape(state) is not None


def read_head(path: Path) -> tuple[StateDict, dict[str, int]]:
    path = Path(path)
    check_checkpoint_file(path)
    raw = read_safetensors(path) if path.suffix.lower() == ".safetensors" else read_torch_object(path)
    state = flatten_state(raw, path.name)
    shape = head_shape(state)
    if shape is None:
        from models.families import describe

        raise CheckpointError(f"{path.name} is not a RINE head ('alpha' [1, blocks, proj_dim], 'proj1.1.weight', "
                              f"… 'head.6.weight' [1, proj_dim]); it holds {describe(state)}")
    _check_complete(path.name, state, shape)
    return state, shape


def is_head_file(path: Path) -> bool:
    """Whether a file read as a checkpoint is a RINE head (to tell it from a UnivFD head given with --tower)."""
    try:
        path = Path(path)
        raw = read_safetensors(path) if path.suffix.lower() == ".safetensors" else read_torch_object(path)
        return is_head(flatten_state(raw, path.name))
    except CheckpointError:
        return False


def _check_complete(name: str, state: StateDict, shape: dict[str, int]) -> None:
    with torch.device("meta"):
        expected = {k: tuple(v.shape) for k, v in RineHead(**shape).state_dict().items()}
    from models.checkpoints import describe_mismatch

    mismatch = describe_mismatch(expected, state)
    if mismatch:
        raise CheckpointError(f"{name} is not a complete RINE head ({shape['nproj']} projection layers of "
                              f"{shape['proj_dim']}): {mismatch}")


def needs_tower_message(path: Path, state: StateDict) -> str:
    shape = head_shape(state) or {"blocks": "?", "width": "?"}
    return NEEDS_TOWER.format(name=Path(path).name, blocks=shape["blocks"], width=shape["width"])


# ---- import -----------------------------------------------------------------------------------------------
def prepare(head_path: Path, tower_path: Path | None, *, model_id: str | None = None, name: str | None = None,
            threshold: float | None = None, policy: str | None = None) -> tuple[ModelCard, StateDict]:
    """The card and weights (tower + head) of a RINE head and its CLIP tower."""
    from models import families

    head_path = Path(head_path)
    head, shape = read_head(head_path)
    if tower_path is None:
        raise CheckpointError(needs_tower_message(head_path, head))
    tower_path = Path(tower_path)
    visual, config, tower_sha = towers.read_tower(tower_path, activation="quick_gelu")
    if config["kind"] != "openclip_vit":
        raise CheckpointError(f"{tower_path.name} holds a {towers.describe_tower(config)}; RINE reads the blocks of "
                              "the CLIP ViT-L/14 tower (open_clip_pytorch_model.bin)")
    if (shape["blocks"], shape["width"]) != (config["layers"], config["width"]):
        raise CheckpointError(f"{head_path.name} reads {shape['blocks']} blocks of width {shape['width']} but "
                              f"{tower_path.name} has {config['layers']} of width {config['width']} "
                              f"({towers.describe_tower(config)}); RINE's heads need the CLIP ViT-L/14 tower "
                              "(24 blocks of width 1024)")
    head_sha, known, how = families.known_head_file(head_path, FAMILY)
    card = ModelCard(
        id=model_id or _default_id(head_path, known),
        name=name or "RINE (Koutlis & Papadopoulos 2024)" + (f" — {known.file['variant']}" if known
                                                              else f" ({head_path.name})"),
        architecture=ARCHITECTURE, num_logits=1, input=_input(config, known),
        threshold=0.5 if threshold is None else threshold, family=FAMILY,
        family_config={"tower": config, "head": shape, "explain": towers.explain_layer(config)},
    )
    card = families.finish_head_card(card, known, head_path=head_path, head_sha256=head_sha, how=how,
                                     note=_note(config, shape, tower_path), tower_path=tower_path,
                                     tower_sha256=tower_sha, policy=policy)
    return card, combined_state(visual, head)


def _input(config: dict[str, Any], known) -> Any:
    """The authors' centre crop; ten crops with their mean logit for the file they evaluate that way (LDM)."""
    spec = towers.native_crop_input(config)
    if known is not None and known.file.get("test_input") == "ten_crop":
        return replace(spec, policy="ten_crop", aggregation="mean_logit")
    return spec


def combined_state(tower: StateDict, head: StateDict) -> StateDict:
    state = {f"tower.{k}": v.float() for k, v in tower.items()}
    state.update({f"head.{k}": v.detach().float() for k, v in head.items()})
    return state


def _default_id(head_path: Path, known) -> str:
    if known is not None:
        return f"{FAMILY}-{known.file['variant_id']}" if known.file.get("variant_id") else FAMILY
    return model_id_from(FAMILY, head_path.stem)


def _note(config: dict[str, Any], shape: dict[str, int], tower_path: Path) -> str:
    note = (f"Head: {shape['nproj']} projection layers of {shape['proj_dim']} over {shape['blocks']} blocks. "
            f"Image tower from {tower_path.name}: {towers.describe_tower(config)}.")
    if not towers.is_vit_l14(config):
        note += (" This is not CLIP ViT-L/14 (width 1024, 24 layers, patch 14, 224×224), the tower the published "
                 "head was trained on: its scores are not the authors'.")
    return note
