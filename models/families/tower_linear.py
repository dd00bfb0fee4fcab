"""A frozen foundation-model image tower with one linear head on its image embedding: UnivFD (Ojha et al. 2023,
CLIP ViT-L/14 + the authors' head) and the linear probes users fit on their own data (training/probe.py).

The card's architecture is `tower_linear` (models/registry.py, external): the network is rebuilt from the card's
family_config {"tower": config of models/families/towers.py, "explain": Grad-CAM layer}; the library's
safetensors file holds `tower.*` (the image tower) and `head.weight` [1, features], `head.bias` [1].
P(fake) = sigmoid(head(tower(x))).
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from models.card import ModelCard
from models.checkpoints import CheckpointError, StateDict
from models.families.towers import build_tower


class TowerLinear(nn.Module):
    def __init__(self, tower: nn.Module, features: int) -> None:
        super().__init__()
        self.tower = tower
        self.head = nn.Linear(features, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.tower(x))


def build_module(card: ModelCard) -> TowerLinear:
    config = card.family_config.get("tower")
    if not isinstance(config, dict):
        raise CheckpointError("the card's family_config has no image tower description")
    return TowerLinear(build_tower(config), int(config["output_dim"])).eval()


def combined_state(tower: StateDict, weight: torch.Tensor, bias: torch.Tensor) -> StateDict:
    """The library's weights: the tower's tensors under tower., the head's under head. (float32)."""
    state = {f"tower.{k}": v.float() for k, v in tower.items()}
    state["head.weight"] = weight.detach().float().reshape(1, -1)
    state["head.bias"] = bias.detach().float().reshape(1)
    return state


def tower_of(state: StateDict) -> StateDict:
    """The image tower's tensors of a tower_linear model's weights (to fit a new probe on the same tower)."""
    return {k[len("tower."):]: v for k, v in state.items() if k.startswith("tower.")}


def tower_provenance(config: dict[str, Any], file_name: str, sha256: str) -> dict[str, Any]:
    return {"tower": config, "tower_file": file_name, "tower_sha256": sha256}
