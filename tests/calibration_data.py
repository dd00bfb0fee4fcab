"""A detector whose score means something, and photo folders for it, small enough to calibrate in seconds.

The detector is a simple_cnn with hand-set weights: its fake logit is `scale` times the picture's mean
brightness (centred on grey level 125), so brighter pictures look more "generated". The folders hold flat
grey pictures with a little noise: real ones darker, AI-generated ones brighter, overlapping. With a large
scale the detector is far too confident for that overlap, which is what a calibration must fix.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from models.card import ModelCard, default_input_spec
from models.registry import build_model

CENTRE = 125


def brightness_model(library, model_id: str = "bright", scale: float = 20.0):
    module = build_model("simple_cnn", 1)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.zero_()
        first, second, third = module.features[0], module.features[3], module.features[6]
        first.weight[0] = 1.0 / 27  # channel 0: mean of the 3×3×3 normalised pixels, kept positive by the bias
        first.bias[0] = 2.0
        second.weight[0, 0] = 1.0 / 9
        third.weight[0, 0] = 1.0 / 9
        module.classifier[1].weight[0, :4] = 0.25  # the 2×2 map of channel 0 (flattened first)
        centre = (CENTRE / 255 - 0.5) / 0.5
        module.classifier[4].weight[0, 0] = scale
        module.classifier[4].bias[0] = -scale * (2.0 + centre)
    card = ModelCard(id=model_id, name=f"brightness detector {model_id}", architecture="simple_cnn", num_logits=1,
                     input=default_input_spec("simple_cnn"), description="a test detector")
    return library.add(card, module.state_dict())


def grey_photos(folder: Path, count: int, mean_level: float, seed: int, spread: float = 25.0) -> Path:
    """`count` 32×32 PNGs of a flat grey level drawn around `mean_level`, each with its own noise."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        level = float(np.clip(rng.normal(mean_level, spread), 10, 245))
        pixels = np.clip(level + rng.normal(0, 3, (32, 32, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"{i:04d}.png")
    return folder


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Every file's bytes and modification time (ns), to prove a folder was only read."""
    return {str(p): (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(folder.rglob("*")) if p.is_file()}
