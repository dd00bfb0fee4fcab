"""Training-time transforms: Wang et al.'s blur + JPEG augmentation, flips, and the input policies.

Order as in Wang et al. (CVPR 2020): resize (if the policy resizes) → blur/JPEG → random crop → flip.
Evaluation uses the model card's own geometry (models.preprocess), so training and scanning agree.
"""
from __future__ import annotations

import io
import random
from dataclasses import dataclass

import torch
from PIL import Image, ImageFilter
from torchvision.transforms import InterpolationMode, v2

TRAIN_POLICIES = ("random_crop", "resize_random_crop", "resize")


@dataclass
class BlurJpeg:
    """Gaussian blur σ~U[0, blur_sigma_max] with probability blur_prob, then JPEG re-encoding at
    quality~U[jpeg_quality_min, jpeg_quality_max] with probability jpeg_prob, each decided independently."""
    blur_prob: float = 0.5
    jpeg_prob: float = 0.5
    blur_sigma_max: float = 3.0
    jpeg_quality_min: int = 30
    jpeg_quality_max: int = 100
    rng: random.Random | None = None

    def __call__(self, img: Image.Image) -> Image.Image:
        rng = self.rng or random
        if self.blur_prob and rng.random() < self.blur_prob:
            img = img.filter(ImageFilter.GaussianBlur(radius=rng.uniform(0.0, self.blur_sigma_max)))
        if self.jpeg_prob and rng.random() < self.jpeg_prob:
            img = jpeg(img, rng.randint(self.jpeg_quality_min, self.jpeg_quality_max))
        return img


def jpeg(img: Image.Image, quality: int) -> Image.Image:
    buffer = io.BytesIO()
    img.save(buffer, "JPEG", quality=int(quality))
    buffer.seek(0)
    return Image.open(buffer).convert("RGB")


def train_transform(policy: str, size: int, resize: int, augment: BlurJpeg | None, flip: bool,
                    small_image: str = "pad"):
    """PIL RGB → uint8 tensor (3, size, size). A picture smaller than the crop is treated as scans treat it (the
    card's small-image rule): padded with black or enlarged. Mirrored padding here and black padding at scan time
    taught a model a border it never met again (measured: validation AUC 0.64 on 128-pixel pictures)."""
    if policy not in TRAIN_POLICIES:
        raise ValueError(f"training input policy must be one of {', '.join(TRAIN_POLICIES)}")
    steps: list = []
    if policy == "resize":
        steps.append(v2.Resize((size, size), interpolation=InterpolationMode.BILINEAR, antialias=True))
    elif policy == "resize_random_crop":
        steps.append(v2.Resize(resize, interpolation=InterpolationMode.BILINEAR, antialias=True))
    elif small_image == "upscale":
        steps.append(_UpscaleSmall(size))
    if augment is not None:
        steps.append(augment)
    if policy != "resize":
        steps.append(v2.RandomCrop(size, pad_if_needed=True, fill=0, padding_mode="constant"))
    if flip:
        steps.append(v2.RandomHorizontalFlip())
    steps.append(v2.PILToTensor())
    return v2.Compose(steps)


class _UpscaleSmall:
    """Enlarge a picture whose short side is under `size` until it is `size` (the small-image rule "upscale")."""

    def __init__(self, size: int) -> None:
        self.size = size

    def __call__(self, img: Image.Image) -> Image.Image:
        short = min(img.size)
        if short >= self.size:
            return img
        scale = self.size / short
        return img.resize((max(self.size, round(img.width * scale)), max(self.size, round(img.height * scale))),
                          Image.BICUBIC)


def eval_policy_for(train_policy: str) -> str:
    """The card's scan-time policy that matches how a model was trained."""
    return {"random_crop": "center_crop", "resize_random_crop": "resize_center_crop", "resize": "resize"}[train_policy]


def to_float(batch: torch.Tensor, mean, std) -> torch.Tensor:
    mean_t = torch.tensor(mean, dtype=torch.float32, device=batch.device).view(1, 3, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32, device=batch.device).view(1, 3, 1, 1)
    return (batch.float() / 255.0 - mean_t) / std_t
