"""Any Hugging Face image classifier saved as a folder (config.json + model.safetensors or pytorch_model.bin, and
usually preprocessor_config.json), loaded offline with transformers.

Import: `AutoModelForImageClassification.from_pretrained(folder, local_files_only=True)` (never remote code: a
config that needs the publisher's Python, `auto_map`, is refused; a pickled .bin is first read with
torch.load(weights_only=True), which refuses code). The weights are re-saved as safetensors in the library and
the config is kept on the card (family_config), so loading later needs only the card and that file.

Output: which labels mean 'fake' comes from config.id2label (artificial / AI / fake / generated ... against
human / real / authentic ...), or from --fake-label. The network's logits are reduced to two, log-sum-exp of
the real labels and of the fake labels, so softmax gives exactly the summed probability of the fake labels.

Input: the folder's preprocessor_config.json mapped onto the card's InputSpec (resize or shortest edge + centre
crop, ConvNeXt's crop_pct, interpolation, rescale factor, mean and std). Pillow does the resampling, as the
processors' Pillow backend does.
"""
from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from models.card import MAX_CARD_BYTES, InputSpec, ModelCard, model_id_from, sha256_file
from models.labels import band_around
from models.checkpoints import MAX_CHECKPOINT_BYTES, CheckpointError, check_checkpoint_file, read_torch_object

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
SHARD_INDEXES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")
FAKE_WORDS = {"fake", "ai", "artificial", "generated", "synthetic", "deepfake", "aigenerated", "aigc", "gan",
              "diffusion", "machine", "computer", "sd", "midjourney", "dalle"}
REAL_WORDS = {"real", "human", "authentic", "natural", "genuine", "photo", "photograph", "camera", "original",
              "pristine", "nature", "hum"}
NEGATIONS = {"not", "non", "no"}
# PIL's resampling numbers, as processors store them
_RESAMPLE = {0: "nearest", 1: "lanczos", 2: "bilinear", 3: "bicubic", 4: "bilinear", 5: "bilinear"}


class NeedsFakeLabel(CheckpointError):
    """The labels do not say which output means 'fake': the user must choose (GUI) or pass --fake-label."""

    def __init__(self, message: str, labels: list[str]) -> None:
        super().__init__(message)
        self.labels = labels


def is_model_folder(path: Path) -> bool:
    return (Path(path) / "config.json").is_file()


def read_config(folder: Path) -> dict[str, Any]:
    path = Path(folder) / "config.json"
    if not path.is_file():
        raise CheckpointError(f"{folder} holds neither card.json (a Forensight model) nor config.json (a Hugging "
                              "Face model folder)")
    return _read_json(path)


def _read_json(path: Path) -> dict[str, Any]:
    check_checkpoint_file(path)
    if path.stat().st_size > MAX_CARD_BYTES:
        raise CheckpointError(f"{path.name} is {path.stat().st_size:,} bytes: too large for a configuration")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as exc:
        raise CheckpointError(f"{path.name} is not readable JSON ({exc})") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path.name} is not a JSON object")
    return data


def labels_of(config: dict[str, Any]) -> list[str]:
    id2label = config.get("id2label") or {}
    count = len(id2label) or int(config.get("num_labels", 2))
    return [str(id2label.get(str(i), id2label.get(i, f"LABEL_{i}"))) for i in range(count)]


def label_kind(label: str) -> str | None:
    """'fake', 'real' or None (cannot tell) for one label."""
    words = re.findall(r"[a-z0-9]+", label.lower())
    joined = "".join(words)
    fake = any(w in FAKE_WORDS for w in words) or joined in FAKE_WORDS
    real = any(w in REAL_WORDS for w in words) or joined in REAL_WORDS
    kind = "fake" if fake and not real else "real" if real and not fake else None
    if kind and any(w in NEGATIONS for w in words):  # "not AI", "non-human"
        kind = "real" if kind == "fake" else "fake"
    return kind


def fake_labels(labels: list[str], fake_label: str | None = None, model: str = "this model") -> list[int]:
    """Indices of the labels that mean 'fake'. An empty list for a one-label model means its logit means real."""
    if fake_label:
        chosen = []
        for part in (p.strip() for p in str(fake_label).split(",") if p.strip()):
            lower = [label.lower() for label in labels]
            if part.lower() in lower:
                chosen.append(lower.index(part.lower()))
            elif part.isdigit() and int(part) < len(labels):
                chosen.append(int(part))
            else:
                raise CheckpointError(f"--fake-label {part!r} is not one of {model}'s labels ({_show(labels)})")
        if len(labels) > 1 and len(set(chosen)) == len(labels):
            raise CheckpointError("--fake-label names every label: at least one must mean real")
        return sorted(set(chosen))
    kinds = [label_kind(label) for label in labels]
    fakes = [i for i, k in enumerate(kinds) if k == "fake"]
    reals = [i for i, k in enumerate(kinds) if k == "real"]
    if len(labels) == 1 and (fakes or reals):
        return fakes
    if len(labels) > 1:
        if fakes and reals and len(fakes) + len(reals) == len(labels):
            return fakes
        if len(labels) == 2 and len(fakes) == 1:
            return fakes
        if len(labels) == 2 and len(reals) == 1:
            return [1 - reals[0]]
    raise NeedsFakeLabel(f"cannot tell which output of {model} means 'fake' from its labels ({_show(labels)}); "
                         "pass --fake-label LABEL (a label or its index; several separated by commas)", labels)


def _show(labels: list[str]) -> str:
    text = ", ".join(f"{i}: {label}" for i, label in enumerate(labels[:8]))
    return text + (f", … {len(labels)} in all" if len(labels) > 8 else "")


# ---- preprocessing ----------------------------------------------------------------------------------------
def input_spec(folder: Path, config: dict[str, Any], policy: str | None = None) -> tuple[InputSpec, str]:
    """The card's input from preprocessor_config.json, and a note of what could not be matched exactly."""
    notes: list[str] = []  # each step adds what it had to approximate, in the order the user reads them
    proc, source = _processor_config(folder, config, notes)
    interpolation = _interpolation(proc, notes)
    geometry = _geometry(proc, source, notes)
    mean, std = _normalisation(proc)
    spec = InputSpec(mean=mean, std=std, interpolation=interpolation, jpeg_draft=False, **geometry)
    if policy:
        spec = InputSpec(**{**spec.__dict__, "policy": policy})
        notes.append(f"Input policy {policy} chosen on import instead of the processor's.")
    return spec, " ".join([f"Input from {source}."] + notes)


def _processor_config(folder: Path, config: dict[str, Any], notes: list[str]) -> tuple[dict[str, Any], str]:
    """The folder's image-processor settings and where they came from; a square resize with mean and std 0.5 (the
    transformers default) when the folder has none."""
    path = Path(folder) / "preprocessor_config.json"
    if path.is_file():
        proc = _read_json(path)
        return proc, f"preprocessor_config.json ({proc.get('image_processor_type', 'image processor')})"
    size = int(config.get("image_size", 224) if isinstance(config.get("image_size", 224), int) else 224)
    notes.append(f"The folder has no preprocessor_config.json: Forensight assumed a {size}×{size} resize "
                 "with mean and std 0.5; check the publisher's instructions.")
    proc = {"size": {"height": size, "width": size}, "image_mean": [0.5] * 3, "image_std": [0.5] * 3}
    return proc, "no preprocessor_config.json in the folder"


def _interpolation(proc: dict[str, Any], notes: list[str]) -> str:
    resample = proc.get("resample", 2)
    if isinstance(resample, int) and resample in (4, 5):
        notes.append("The processor's box/hamming resampling is approximated by bilinear.")
    return _RESAMPLE.get(resample, "bilinear") if isinstance(resample, int) else "bilinear"


def _side(value: dict | None, label: str, notes: list[str]) -> int | None:
    """One side of a processor size ({height, width}, {shortest_edge} or {longest_edge}); a non-square size is
    widened to a square of its longer side, with a note."""
    if not value:
        return None
    if "height" in value and "width" in value:
        if value["height"] != value["width"]:
            notes.append(f"The processor's {label} {value['height']}×{value['width']} is not square: Forensight "
                         f"uses {max(value['height'], value['width'])}×{max(value['height'], value['width'])}.")
        return int(max(value["height"], value["width"]))
    return int(value.get("shortest_edge") or value.get("longest_edge") or 0) or None


def _geometry(proc: dict[str, Any], source: str, notes: list[str]) -> dict[str, Any]:
    """The processor's resize and crop as the card's policy, size and resize."""
    size, crop = proc.get("size", 224), proc.get("crop_size")
    do_resize, do_crop = proc.get("do_resize", True), proc.get("do_center_crop", False)
    if isinstance(size, int):
        size = {"height": size, "width": size}
    if isinstance(crop, int):
        crop = {"height": crop, "width": crop}
    if not do_resize:
        crop_side = _side(crop, "crop", notes) if do_crop else None
        geometry = {"policy": "center_crop", "size": crop_side or _side(size, "size", notes) or 224}
    elif "shortest_edge" in (size or {}) and proc.get("crop_pct") is not None and "ConvNext" in source:
        edge = int(size["shortest_edge"])  # ConvNeXt: below 384, resize to edge/crop_pct then crop edge
        if edge < 384:
            geometry = {"policy": "resize_center_crop", "size": edge, "resize": int(edge / proc["crop_pct"])}
        else:
            geometry = {"policy": "resize", "size": edge}
    elif "shortest_edge" in (size or {}):
        edge = int(size["shortest_edge"])
        crop_side = _side(crop, "crop", notes) if do_crop else None
        if crop_side:
            geometry = {"policy": "resize_center_crop", "size": crop_side, "resize": max(edge, crop_side)}
        else:
            notes.append("The processor keeps the aspect ratio without cropping; Forensight resizes the shorter side "
                         f"to {edge} and takes the centre {edge}×{edge} square.")
            geometry = {"policy": "resize_center_crop", "size": edge, "resize": edge}
    else:
        resized = _side(size, "size", notes) or 224
        crop_side = _side(crop, "crop", notes) if do_crop else None
        if crop_side and crop_side < resized:
            notes.append(f"The processor squashes to {resized}×{resized} and crops {crop_side}: Forensight resizes "
                         f"the shorter side to {resized} and crops {crop_side} (the same for square pictures).")
            geometry = {"policy": "resize_center_crop", "size": crop_side, "resize": resized}
        else:
            geometry = {"policy": "resize", "size": resized}
    geometry["resize"] = max(geometry.get("resize", geometry["size"]), geometry["size"])
    return geometry


def _normalisation(proc: dict[str, Any]) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The processor's rescale and normalisation as the card's mean and std, which apply to x/255."""
    factor = float(proc.get("rescale_factor", 1 / 255)) if proc.get("do_rescale", True) else 1.0
    if proc.get("do_normalize", True):
        mean = [float(v) for v in proc.get("image_mean", [0.5] * 3)]
        std = [float(v) for v in proc.get("image_std", [0.5] * 3)]
    else:
        mean, std = [0.0] * 3, [1.0] * 3
    if len(mean) == 1:
        mean, std = mean * 3, std * 3
    # Forensight normalises x/255: (x·factor − m)/s = (x/255 − m/(255·factor)) / (s/(255·factor))
    scale = 255.0 * factor
    return tuple(m / scale for m in mean), tuple(s / scale for s in std)


# ---- the network ------------------------------------------------------------------------------------------
class HFClassifier(nn.Module):
    """A transformers classifier as Forensight runs it: image tensor in, one logit (sigmoid) or two logits
    [real, fake] (softmax) out."""

    def __init__(self, model: nn.Module, fake: list[int], num_labels: int) -> None:
        super().__init__()
        self.model = model
        self.single = num_labels == 1
        self.negate = self.single and not fake  # a lone logit that means 'real'
        real = [i for i in range(num_labels) if i not in fake]
        self.register_buffer("fake_ids", torch.tensor(fake or [0], dtype=torch.long), persistent=False)
        self.register_buffer("real_ids", torch.tensor(real or [0], dtype=torch.long), persistent=False)

    @property
    def weights_module(self) -> nn.Module:
        return self.model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.model(pixel_values=x).logits
        if self.single:
            return -logits if self.negate else logits
        return torch.stack([torch.logsumexp(logits.index_select(1, self.real_ids), dim=1),
                            torch.logsumexp(logits.index_select(1, self.fake_ids), dim=1)], dim=1)


def build_module(card: ModelCard) -> HFClassifier:
    """The card's network, untrained (library.load fills in the weights)."""
    from transformers import AutoConfig, AutoModelForImageClassification

    config_dict = dict(card.family_config.get("config") or {})
    model_type = config_dict.pop("model_type", None)
    if not model_type:
        raise CheckpointError("the card's Hugging Face config has no model_type")
    try:
        config = AutoConfig.for_model(model_type, **config_dict)
        model = AutoModelForImageClassification.from_config(config)
    except (ValueError, KeyError, TypeError, ImportError) as exc:
        raise CheckpointError(f"transformers cannot build a {model_type} image classifier ({exc})") from None
    fake = [int(i) for i in card.family_config.get("fake_labels", [1])]
    return HFClassifier(model.eval(), fake, int(config.num_labels))


def prepare(folder: Path, *, model_id: str | None = None, name: str | None = None,
            fake_label: str | None = None, threshold: float | None = None,
            policy: str | None = None) -> tuple[ModelCard, dict[str, torch.Tensor]]:
    """The card and the weights of a Hugging Face folder, checked by loading them with transformers."""
    from models import families

    folder = Path(folder)
    config = _safe_config(folder)
    files = _weight_files(folder)
    labels = labels_of(config)
    fake = fake_labels(labels, fake_label, folder.name)
    model = _load_pretrained(folder)
    if model.config.num_labels != len(labels):  # the loaded network is the truth when config.json's labels disagree
        labels = labels_of(json.loads(model.config.to_json_string(use_diff=False)))
        fake = fake_labels(labels, fake_label, folder.name)
    spec, input_note = input_spec(folder, config, policy)
    state = _unshared(model.state_dict())
    config_dict = json.loads(model.config.to_json_string(use_diff=False))
    config_dict.pop("_name_or_path", None)
    explain = explain_target(model, fake, len(labels), spec.size)
    sha256 = sha256_file(files[0])
    known = families.known_file_by_sha256(sha256)
    stem = model_id_from(folder.name)
    card = ModelCard(
        id=model_id or stem or "huggingface", name=name or folder.name, architecture="hf_image_classifier",
        num_logits=1 if len(labels) == 1 else 2, fake_index=1, input=spec,
        threshold=0.5 if threshold is None else threshold, family="huggingface",
        family_config={"config": config_dict, "labels": labels, "fake_labels": fake, "explain": explain,
                       "weights_files": [f.name for f in files]},
    )
    if threshold is not None:
        card.inconclusive_band = band_around(threshold)
    fake_text = ", ".join(labels[i] for i in fake) if fake else f"not {labels[0]}"
    note = (f"Hugging Face {config.get('model_type', '?')} classifier "
            f"({', '.join(config.get('architectures') or ['?'])}); labels {_show(labels)}; "
            f"P(fake) = P({fake_text}). {input_note}")
    card = families.apply_catalogue(card, families.catalogue_entry("huggingface"),
                                    known.file if known else None, path=folder, sha256=sha256,
                                    how="sha256" if known else "folder contents", note=note)
    card.validate()
    return card, state


def _safe_config(folder: Path) -> dict[str, Any]:
    """config.json of a model folder, refused when the model needs its publisher's code to run."""
    if not folder.is_dir():
        raise CheckpointError(f"{folder} is not a folder: a Hugging Face model is a folder holding config.json")
    config = read_config(folder)
    if config.get("auto_map"):
        raise CheckpointError(f"{folder.name} needs its publisher's own Python code (config.json auto_map); "
                              "Forensight never runs code from a model")
    return config


def _weight_files(folder: Path) -> list[Path]:
    """The folder's weights file, or its shards, checked before transformers opens them: within the size
    Forensight reads, and no pickle that would run code."""
    weights = next((folder / f for f in WEIGHT_FILES if (folder / f).is_file()), None)
    index = next((folder / f for f in SHARD_INDEXES if (folder / f).is_file()), None)
    if weights is None and index is None:
        present = ", ".join(sorted(p.name for p in folder.iterdir())[:8]) or "nothing"
        raise CheckpointError(f"{folder.name} has config.json but no weights (model.safetensors or "
                              f"pytorch_model.bin); it holds {present}")
    files = [weights] if weights else sorted({folder / name for name in
                                              _read_json(index).get("weight_map", {}).values()})
    total = sum(check_checkpoint_file(f) for f in files)
    if total > MAX_CHECKPOINT_BYTES:
        raise CheckpointError(f"{folder.name}'s weights hold {total:,} bytes, more than Forensight reads")
    for f in files:
        if f.suffix == ".bin":
            read_torch_object(f)  # refuses a pickle that would run code before transformers opens it
    return files


def _load_pretrained(folder: Path) -> nn.Module:
    import transformers
    from transformers import AutoModelForImageClassification

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()  # no progress bar in the CLI's output or the GUI's log
    try:
        model = AutoModelForImageClassification.from_pretrained(folder, local_files_only=True,
                                                                trust_remote_code=False)
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"transformers cannot load {folder.name} as an image classifier ({first})") from None
    return model.float().eval()


def _unshared(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """safetensors refuses tensors that share memory (tied weights): give each its own copy."""
    seen: set[tuple[int, int]] = set()
    out = {}
    for key, value in state.items():
        where = (value.untyped_storage().data_ptr(), value.storage_offset())
        out[key] = value.detach().clone() if where in seen else value.detach()
        seen.add(where)
    return out


# ---- where Grad-CAM looks ---------------------------------------------------------------------------------
def explain_target(model: nn.Module, fake: list[int], num_labels: int, size: int) -> dict[str, Any]:
    """The layer Grad-CAM should use, found by one probe forward: a CNN's last spatial feature map, or, in a
    transformer, the input norm of its last block (token maps reshaped to a grid). Occlusion when neither."""
    wrapper = HFClassifier(model, fake, num_labels)
    order: list[tuple[str, tuple[int, ...], str]] = []
    hooks = []
    for name, module in wrapper.named_modules():
        if not name or name.startswith(("model.classifier", "model.head", "model.score")):
            continue

        def record(mod, args, output, name=name):
            if isinstance(output, torch.Tensor):
                order.append((name, tuple(output.shape), type(mod).__name__))

        hooks.append(module.register_forward_hook(record))
    try:
        with torch.no_grad():
            wrapper(torch.zeros(1, 3, size, size))
    except Exception:  # a model that needs other inputs: no Grad-CAM layer, occlusion still works
        return {"method": "occlusion"}
    finally:
        for hook in hooks:
            hook.remove()
    spatial = [i for i, (_, shape, kind) in enumerate(order)
               if len(shape) == 4 and "Norm" not in kind and min(shape[2:]) >= 2 and shape[1] >= shape[2]]
    tokens = [i for i, (_, shape, kind) in enumerate(order)
              if len(shape) == 3 and "LayerNorm" in kind and _grid_prefix(shape[1]) is not None]
    if tokens and (not spatial or tokens[-1] > spatial[-1]):
        # the last block's input norm (ViT layernorm_before, DINOv2 norm1, CLIP/SigLIP layer_norm1): after it
        # every patch token still reaches the class token or the pooled features; else the third norm from the end
        firsts = [i for i in tokens if order[i][0].endswith(("layernorm_before", "norm1", "layer_norm1", "ln_1"))]
        pick = firsts[-1] if firsts else tokens[-3] if len(tokens) >= 3 else tokens[0]
        return {"method": "gradcam", "layer": order[pick][0], "tokens": True}
    if spatial:
        return {"method": "gradcam", "layer": order[spatial[-1]][0], "tokens": False}
    return {"method": "occlusion"}


def _grid_prefix(count: int) -> int | None:
    side = math.isqrt(count)
    prefix = count - side * side
    return prefix if side >= 2 and prefix <= 8 else None
