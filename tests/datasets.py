"""Small datasets on disk whose classes differ by a real, low-level generation trace."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def texture(rng: np.random.Generator, size: int) -> np.ndarray:
    """Photo-like content: smooth colour fields plus fine sensor-like noise."""
    coarse = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
    smooth = np.asarray(Image.fromarray(coarse).resize((size, size), Image.BICUBIC), dtype=np.int16)
    return np.clip(smooth + rng.normal(0, 12, smooth.shape), 0, 255).astype(np.uint8)


def upsampled_fake(rng: np.random.Generator, size: int) -> np.ndarray:
    """The same kind of content rendered at half resolution and enlarged with a nearest-neighbour upsampler,
    the trace a GAN's upsampling layer leaves: every pixel repeated in 2×2 blocks."""
    half = texture(rng, size // 2)
    return np.asarray(Image.fromarray(half).resize((size, size), Image.NEAREST))


def make_trace_dataset(root: Path, per_class: int = 120, size: int = 32, seed: int = 0,
                       layout: tuple[str, str] = ("real", "fake")) -> Path:
    rng = np.random.default_rng(seed)
    for name, make in zip(layout, (texture, upsampled_fake)):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            Image.fromarray(make(rng, size)).save(folder / f"{i:04d}.png")
    return root
