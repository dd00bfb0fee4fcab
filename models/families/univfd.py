"""UnivFD: Ojha, Li, Lee, "Towards Universal Fake Image Detectors that Generalize Across Generative Models",
CVPR 2023 (github.com/WisconsinAIVision/UniversalFakeDetect).

The detector (models/clip_models.py): OpenAI CLIP ViT-L/14's image encoder, frozen, and one linear layer
`fc = nn.Linear(768, 1)` on `model.encode_image(x)` (the projected 768-d image embedding); the published head
`pretrained_weights/fc_weights.pth` is that layer's state dict {'weight' [1, 768], 'bias' [1]} (validate.py:
`model.fc.load_state_dict(torch.load(ckpt))`), and P(fake) = sigmoid(fc(features)). Test input (validate.py,
RealFakeDataset): `CenterCrop(224)` of the picture as it is (no resize), ToTensor, Normalize with CLIP's mean and
std.

The user brings both files: the head, and the CLIP tower as OpenCLIP distributes OpenAI's weights (the authors
load them with `clip.load("ViT-L/14")`, which builds QuickGELU blocks). The library keeps both in one
safetensors file (models/families/tower_linear.py).
"""
from __future__ import annotations

from pathlib import Path

from models.card import ModelCard, model_id_from
from models.checkpoints import (CheckpointError, StateDict, check_checkpoint_file, flatten_state, read_safetensors,
                                read_torch_object)
from models.families import tower_linear, towers

FAMILY = "univfd"
NEEDS_TOWER = ("{name} is a UnivFD linear head ({features} features → 1 logit): it scores the image embedding of "
               "the CLIP ViT-L/14 tower it was trained on, so import it together with that tower: "
               "forensight models import {name} --tower open_clip_pytorch_model.bin (OpenAI's ViT-L/14 weights as "
               "OpenCLIP distributes them, huggingface.co/timm/vit_large_patch14_clip_224.openai)")


def is_head(state: StateDict) -> bool:
    """The authors' container: exactly a one-logit nn.Linear's state dict."""
    weight, bias = state.get("weight"), state.get("bias")
    return (set(state) == {"weight", "bias"} and weight is not None and weight.ndim == 2 and weight.shape[0] == 1
            and bias is not None and tuple(bias.shape) == (1,))


def read_head(path: Path) -> StateDict:
    path = Path(path)
    check_checkpoint_file(path)
    raw = read_safetensors(path) if path.suffix.lower() == ".safetensors" else read_torch_object(path)
    state = flatten_state(raw, path.name)
    state = {k[len("fc."):] if k.startswith("fc.") else k: v for k, v in state.items()}
    if not is_head(state):
        from models.families import describe

        raise CheckpointError(f"{path.name} is not a UnivFD head (the state dict of nn.Linear(768, 1): 'weight' "
                              f"[1, 768], 'bias' [1]); it holds {describe(state)}")
    return state


def needs_tower_message(path: Path, state: StateDict) -> str:
    return NEEDS_TOWER.format(name=Path(path).name, features=int(state["weight"].shape[1]))


def prepare(head_path: Path, tower_path: Path | None, *, model_id: str | None = None, name: str | None = None,
            threshold: float | None = None, policy: str | None = None) -> tuple[ModelCard, StateDict]:
    """The card and weights (tower + head) of a UnivFD head and its CLIP tower."""
    from models import families

    head_path = Path(head_path)
    head = read_head(head_path)
    if tower_path is None:
        raise CheckpointError(needs_tower_message(head_path, head))
    visual, config, tower_sha = towers.read_tower(Path(tower_path), activation="quick_gelu")
    if config["kind"] != "openclip_vit":
        raise CheckpointError(f"{Path(tower_path).name} holds a {towers.describe_tower(config)}; UnivFD's head scores "
                              "the CLIP ViT-L/14 tower (open_clip_pytorch_model.bin)")
    features = int(head["weight"].shape[1])
    if features != config["output_dim"]:
        raise CheckpointError(f"{head_path.name} takes {features} features but {Path(tower_path).name} gives "
                              f"{config['output_dim']} ({towers.describe_tower(config)}); UnivFD's head needs the "
                              "CLIP ViT-L/14 tower (768 features)")
    head_sha, known, how = families.known_head_file(head_path, FAMILY)
    card = ModelCard(
        id=model_id or _default_id(head_path, known), name=name or "UnivFD (Ojha et al. 2023)"
        + (f" — {known.file['variant']}" if known else f" ({head_path.name})"),
        architecture="tower_linear", num_logits=1, input=towers.native_crop_input(config),
        threshold=0.5 if threshold is None else threshold, family=FAMILY,
        family_config={**tower_linear.tower_provenance(config, Path(tower_path).name, tower_sha),
                       "explain": towers.explain_layer(config)},
    )
    card = families.finish_head_card(card, known, head_path=head_path, head_sha256=head_sha, how=how,
                                     note=_note(config, Path(tower_path).name), tower_path=Path(tower_path),
                                     tower_sha256=tower_sha, policy=policy)
    return card, tower_linear.combined_state(visual, head["weight"], head["bias"])


def _default_id(head_path: Path, known) -> str:
    if known is not None:
        return FAMILY
    return model_id_from(FAMILY, head_path.stem)


def _note(config: dict, tower_name: str) -> str:
    note = f"Image tower from {tower_name}: {towers.describe_tower(config)}."
    if not towers.is_vit_l14(config):
        note += (" This is not CLIP ViT-L/14 (width 1024, 24 layers, patch 14, 224×224, 768 features), the tower "
                 "the published head was trained on: its scores are not the authors'.")
    return note

