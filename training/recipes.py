"""Training recipes as plain data, reproducing the seeds. Any field can be overridden (CLI: --set k=v)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from models.input_settings import coerce_input


@dataclass(frozen=True)
class Recipe:
    name: str
    architecture: str
    num_logits: int = 2  # 2 → cross-entropy over softmax; 1 → binary cross-entropy over a sigmoid
    optimizer: str = "adam"  # adam | adamw | sgd
    lr: float = 1e-4
    weight_decay: float = 0.0
    batch_size: int = 32
    epochs: int = 10
    scheduler: str = "none"  # none | cosine
    select_on: str = "val_loss"  # val_loss | val_accuracy: which epoch is "best"
    patience: int | None = None  # early stopping: epochs without improvement of select_on
    target_accuracy: float | None = None  # stop once validation accuracy reaches this (seed 001)
    input_size: int | None = None  # default: the architecture's
    resize: int | None = None  # shorter side before a random crop (resize_random_crop)
    train_policy: str = "resize_random_crop"  # random_crop | resize_random_crop | resize
    blur_prob: float = 0.0
    jpeg_prob: float = 0.0
    blur_sigma_max: float = 3.0
    jpeg_quality_min: int = 30
    jpeg_quality_max: int = 100
    flip: bool = True
    pretrained: str = "imagenet"  # imagenet (where weights exist offline) | none | a library model id
    val_fraction: float = 0.1
    split_by_group: bool = False  # keep each group (source photo, scene) on one side of the split
    balance: bool = False
    max_per_class: int | None = None
    seed: int = 0
    deterministic: bool = False
    amp: bool = True  # mixed precision on CUDA
    workers: int = 2
    max_batches_per_epoch: int | None = None  # for quick runs on big data
    exclude_groups: str = ""  # comma-separated groups left out of training (leave-one-generator-out runs)
    description: str = ""
    # linear_probe (training/probe.py): the frozen image tower, as an OpenCLIP weights file or the id of a library
    # model that has one (an imported UnivFD, an earlier probe); its activation when the file does not say
    # (auto: QuickGELU for OpenAI's weights, GELU for OpenCLIP's); the logistic regression's inverse L2 strength
    # (None: chosen on the validation split)
    tower: str = ""
    tower_activation: str = "auto"
    probe_c: float | None = None
    # How the trained model's card analyses a scan: input.* overrides (--set input.policy=tiles), e.g. policy,
    # tile_stride, max_tiles, aggregation, top_k, full_max_pixels, small_image. Training itself is unchanged.
    scan_input: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def with_overrides(self, overrides: dict[str, Any]) -> "Recipe":
        known = {f.name: f for f in fields(self)}
        cleaned: dict[str, Any] = {}
        scan_input = dict(self.scan_input)
        for key, value in overrides.items():
            key = key.replace("-", "_")
            if key.startswith("input."):
                name = key.split(".", 1)[1]
                scan_input[name] = coerce_input(name, value)
                cleaned["scan_input"] = scan_input
                continue
            if key not in known:
                raise ValueError(f"unknown recipe field {key!r}; fields: {', '.join(sorted(known))}")
            cleaned[key] = _coerce(value, getattr(self, key), key) if isinstance(value, str) else value
        return replace(self, **cleaned)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Recipe":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def _coerce(text: str, current: Any, key: str) -> Any:
    if isinstance(current, str):  # text fields take text: pretrained=none means "from scratch", not None
        return text
    if text.lower() in ("none", "null"):
        return None
    if isinstance(current, bool):
        if text.lower() in ("1", "true", "yes", "on"):
            return True
        if text.lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"{key} expects true or false, not {text!r}")
    try:
        if isinstance(current, int) or key in ("patience", "input_size", "resize", "max_per_class",
                                                 "max_batches_per_epoch"):
            return int(text)
        if isinstance(current, float) or key in ("target_accuracy", "probe_c"):
            return float(text)
    except ValueError:
        raise ValueError(f"{key} expects a number, not {text!r}") from None
    return text


RECIPES: dict[str, Recipe] = {r.name: r for r in [
    Recipe("wang2020", "resnet50", num_logits=1, optimizer="adam", lr=1e-4, batch_size=32, epochs=20,
           scheduler="cosine", train_policy="random_crop", blur_prob=0.5, jpeg_prob=0.5, select_on="val_loss",
           description="Wang et al. CVPR 2020 (seed 003): ResNet-50, one logit, blur σ~U[0,3] and JPEG "
                       "q~U[30,100] each with p=0.5, random 224 crop, Adam 1e-4, batch 32, cosine schedule"),
    Recipe("deepdetect_baseline", "resnet50", num_logits=2, optimizer="adam", lr=1e-4, batch_size=32, epochs=60,
           train_policy="resize", select_on="val_accuracy",
           description="Seed 000: ResNet-50, fc 2048→2, cross-entropy, Adam 1e-4, 224×224, best on val accuracy"),
    Recipe("cifake_cnn", "simple_cnn", num_logits=1, optimizer="adam", lr=1e-3, batch_size=32, epochs=20,
           train_policy="resize", flip=True, target_accuracy=0.95, select_on="val_accuracy", pretrained="none",
           balance=True,
           description="Seed 001: the 3-conv simple CNN at 32×32, BCE, Adam, stop at target accuracy or max "
                       "epochs, balanced classes"),
    Recipe("convnextv2", "convnextv2_tiny", num_logits=2, optimizer="adamw", lr=2e-5, weight_decay=1e-5,
           batch_size=32, epochs=20, patience=3, select_on="val_loss", train_policy="resize",
           description="Seed 002: ConvNeXtV2-Tiny, AdamW 2e-5, weight decay 1e-5, early stopping patience 3 "
                       "on val loss"),
    Recipe("vit_b16", "vit_base_patch16_224", num_logits=2, optimizer="adamw", lr=2e-5, weight_decay=1e-5,
           batch_size=32, epochs=20, patience=3, select_on="val_loss", train_policy="resize",
           description="Seed 002: ViT-B/16, AdamW 2e-5, weight decay 1e-5, early stopping patience 3 on val loss"),
    Recipe("efficientnet_lite0", "efficientnet_lite0", num_logits=2, optimizer="adamw", lr=3e-4,
           weight_decay=1e-5, batch_size=32, epochs=8, scheduler="cosine", patience=3, select_on="val_loss",
           train_policy="random_crop", blur_prob=0.5, jpeg_prob=0.5,
           description="EfficientNet-Lite0 from the ImageNet weights that exist offline, Wang et al.'s blur+JPEG "
                       "augmentation, random 224 crops, AdamW with a cosine schedule"),
    Recipe("efficientnet_lite1", "efficientnet_lite1", num_logits=2, optimizer="adamw", lr=3e-4,
           weight_decay=1e-5, batch_size=32, epochs=8, scheduler="cosine", patience=3, select_on="val_loss",
           train_policy="random_crop", blur_prob=0.5, jpeg_prob=0.5,
           description="EfficientNet-Lite1 (deeper and wider than Lite0, 240-pixel input) from its offline ImageNet "
                       "weights; otherwise as efficientnet_lite0"),
    Recipe("efficientnet_lite2", "efficientnet_lite2", num_logits=2, optimizer="adamw", lr=3e-4,
           weight_decay=1e-5, batch_size=32, epochs=8, scheduler="cosine", patience=3, select_on="val_loss",
           train_policy="random_crop", blur_prob=0.5, jpeg_prob=0.5,
           description="EfficientNet-Lite2 (260-pixel input, about twice Lite0's compute) from its offline "
                       "ImageNet weights; otherwise as efficientnet_lite0"),
    Recipe("linear_probe", "tower_linear", num_logits=1, epochs=1, batch_size=32, pretrained="none",
           train_policy="random_crop", val_fraction=0.2, flip=False,
           description="A linear probe (UnivFD's method) on a frozen foundation-model image tower (--set tower=FILE "
                       "or a library model with a tower): image embeddings computed once and cached, a logistic "
                       "regression (balanced classes, L2 strength chosen on the validation split) fitted in "
                       "seconds; input: the tower's size, centre pixels at native resolution, CLIP mean/std"),
]}


def is_probe(recipe: Recipe) -> bool:
    """A recipe that fits a linear head on a frozen tower's cached features instead of training a network."""
    return recipe.architecture == "tower_linear"


def get_recipe(name: str) -> Recipe:
    try:
        return RECIPES[name]
    except KeyError:
        raise ValueError(f"unknown recipe {name!r}; known: {', '.join(RECIPES)}") from None
