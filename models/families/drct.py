"""DRCT: Chen et al., "DRCT: Diffusion Reconstruction Contrastive Training towards Universal Detection of Diffusion
Generated Images", ICML 2024 (github.com/beibuwandeluori/DRCT).

The published Conv-B detectors (network/models.py, ContrastiveModels with get_convnext): timm's
convnext_base_in22k (timm 0.6.12, requirements.txt) whose classifier `head.fc` is replaced by a 1024 → 1024
embedding layer, then `fc`, a Linear(1024, 2). train_contrastive.py saves `model.state_dict()` as it is, so the
file is a plain state dict: 'model.stem.0.weight' … 'model.head.fc.weight' [1024, 1024], 'fc.weight' [2, 1024].
P(fake) = 1 − softmax(logits)[0] (eval_model), which for two classes is softmax[1].

The CLIP variant (CLIPModelV2 'clip-ViT-L-14', --freeze_extractor): OpenAI's CLIP loaded with the `clip` package
under `model.model` (both towers: the file holds them all), `model.fc` = Linear(768, 1024) on encode_image's
768-d output, then `fc` = Linear(1024, 2). Only the image tower is kept; it is rebuilt with open-clip-torch from
the tensors' shapes (models/families/towers.py), QuickGELU as OpenAI's weights need.

Test input (data/transform.py create_val_transforms(224, is_crop=True), scripts/test_*.sh pass --is_crop):
albumentations PadIfNeeded(224, black, centred) then CenterCrop(224) — the crop's offset is rounded down, not
to even as in torchvision — then Normalize with the ImageNet mean and std; no resize.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from models.card import ModelCard, model_id_from
from models.checkpoints import CheckpointError, StateDict
from models.families import towers

FAMILY = "drct"
CLIP_ARCHITECTURE = "drct_clip"
EMBEDDING = 1024  # --embedding_size of every published command line
_CLIP_VISUAL = "model.model.visual."  # ContrastiveModels.model (CLIPModelV2) .model (OpenAI's CLIP) .visual


def drct_convnext(num_logits: int = 2) -> nn.Module:
    """ConvNeXt-Base with the 1024-d embedding as its classifier, and `fc` on top. Forensight's checkpoint reader
    drops the 'model.' prefix (as for any training script's wrapper; no name collides in these files), so it is
    timm's ConvNeXt itself with one more layer: the authors' tensors load under their own names less that prefix."""
    from timm.models.convnext import ConvNeXt

    class DrctConvNeXt(ConvNeXt):
        def __init__(self) -> None:
            # timm's convnext_base: the in22k weights differ only in the (replaced) classifier
            super().__init__(depths=(3, 3, 27, 3), dims=(128, 256, 512, 1024), num_classes=EMBEDDING)
            self.fc = nn.Linear(EMBEDDING, num_logits)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(super().forward(x))

    return DrctConvNeXt()


# ---- the CLIP ViT-L/14 variant: the tower travels inside the file -------------------------------------------
class DrctClip(nn.Module):
    def __init__(self, tower: nn.Module, features: int, num_logits: int = 2) -> None:
        super().__init__()
        self.tower = tower  # encode_image: the class token through ln_post and proj
        self.embed = nn.Linear(features, EMBEDDING)  # the authors' model.fc
        self.fc = nn.Linear(EMBEDDING, num_logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.embed(self.tower(x)))


def is_clip_file(state: StateDict) -> bool:
    return f"{_CLIP_VISUAL}conv1.weight" in state and "model.fc.weight" in state and "fc.weight" in state


def build_clip_module(card: ModelCard) -> DrctClip:
    config = card.family_config.get("tower")
    if not isinstance(config, dict):
        raise CheckpointError("the card's family_config has no DRCT CLIP tower description")
    return DrctClip(towers.build_tower(config), int(config["output_dim"]), card.num_logits).eval()


def prepare_clip(path: Path, state: StateDict, *, model_id: str | None = None, name: str | None = None,
                 threshold: float | None = None, policy: str | None = None) -> tuple[ModelCard, StateDict]:
    """The card and weights (image tower, embedding, fc) of the authors' CLIP variant file."""
    from models import families

    visual = {k[len(_CLIP_VISUAL):]: v for k, v in state.items() if k.startswith(_CLIP_VISUAL)}
    config = towers.infer_config(visual, path.name) | {"activation": "quick_gelu"}
    towers.check_fits(visual, config, path.name)
    embed_w, fc_w = state["model.fc.weight"], state["fc.weight"]
    if tuple(embed_w.shape) != (EMBEDDING, config["output_dim"]) or tuple(fc_w.shape) != (2, EMBEDDING) or not {
            "model.fc.bias", "fc.bias"} <= state.keys():
        raise CheckpointError(f"{path.name} is not a complete DRCT CLIP detector: expected model.fc "
                              f"[{EMBEDDING}, {config['output_dim']}] and fc [2, {EMBEDDING}] with their biases, "
                              f"found model.fc {tuple(embed_w.shape)} and fc {tuple(fc_w.shape)}")
    sha256, known, how = families.known_head_file(path, FAMILY)
    variant = known.file.get("variant_id") if known else path.stem
    spec = families.state_family(FAMILY).input  # the same albumentations crop and ImageNet statistics
    card = ModelCard(
        id=model_id or model_id_from(FAMILY, variant),
        name=name or "DRCT (Chen et al. 2024) — " + (known.file["variant"] if known else f"CLIP ({path.name})"),
        architecture=CLIP_ARCHITECTURE, num_logits=2, fake_index=1, input=spec,
        threshold=0.5 if threshold is None else threshold, family=FAMILY,
        family_config={"tower": config, "explain": towers.explain_layer(config)})
    note = f"CLIP variant; image tower: {towers.describe_tower(config)}."
    if not towers.is_vit_l14(config):
        note += " This is not CLIP ViT-L/14, the tower of the published file: its scores are not the authors'."
    card = families.finish_head_card(card, known, head_path=path, head_sha256=sha256, how=how, note=note,
                                     tower_path=path, tower_sha256=sha256, policy=policy)
    weights = {f"tower.{k}": v for k, v in visual.items()} | {
        "embed.weight": embed_w, "embed.bias": state["model.fc.bias"], "fc.weight": fc_w, "fc.bias": state["fc.bias"]}
    return card, weights
