"""The model card: what a checkpoint is, how it wants its input, and how its output becomes P(fake).

A card is JSON stored beside a safetensors weights file. It is plain data, so loading one never runs code.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from models.registry import get_architecture

CARD_FORMAT = "forensight-model-card"
CARD_VERSION = 1
INPUT_POLICIES = ("resize", "resize_center_crop", "center_crop")
_ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
ID_RULE = "1-64 characters of a-z, 0-9, '.', '_' or '-', starting with a letter or digit"


def is_valid_model_id(model_id: str) -> bool:
    return bool(_ID_PATTERN.match(model_id or ""))


class CardError(ValueError):
    """A card that cannot be used, with a reason a user can act on."""


@dataclass
class InputSpec:
    policy: str = "resize_center_crop"  # resize (squash to size×size) | resize_center_crop | center_crop
    size: int = 224
    resize: int = 256  # shorter side before the crop (resize_center_crop only)
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    interpolation: str = "bilinear"  # bilinear | bicubic | lanczos | nearest
    background: tuple[int, int, int] = (255, 255, 255)  # transparent pixels are composited over this
    jpeg_draft: bool = True  # decode big JPEGs at reduced size when the policy resizes anyway

    @property
    def resizes(self) -> bool:
        return self.policy != "center_crop"


@dataclass
class ModelCard:
    id: str
    name: str
    architecture: str
    num_logits: int = 2
    fake_index: int = 1  # which logit means "fake" when there are two
    input: InputSpec = field(default_factory=InputSpec)
    threshold: float = 0.5
    inconclusive_band: tuple[float, float] = (0.3, 0.7)
    weights_file: str = "weights.safetensors"
    weights_sha256: str = ""
    description: str = ""
    trained_on: str = ""
    limitations: str = ""
    provenance: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    learning_curve: list[dict[str, Any]] = field(default_factory=list)
    default: bool = False  # a shipped model that the library selects when the user chose none

    @property
    def output(self) -> str:
        return "sigmoid" if self.num_logits == 1 else "softmax"

    def validate(self) -> None:
        if not _ID_PATTERN.match(self.id or ""):
            raise CardError(f"model id {self.id!r} must be 1-64 characters of a-z, 0-9, '.', '_' or '-'")
        get_architecture(self.architecture)  # raises with the list of known names
        if self.num_logits not in (1, 2):
            raise CardError(f"num_logits must be 1 (sigmoid) or 2 (softmax), not {self.num_logits}")
        if self.num_logits == 2 and self.fake_index not in (0, 1):
            raise CardError("fake_index must be 0 or 1 for a two-logit model")
        if self.input.policy not in INPUT_POLICIES:
            raise CardError(f"input policy {self.input.policy!r} is not one of {', '.join(INPUT_POLICIES)}")
        if not 0.0 <= self.threshold <= 1.0:
            raise CardError(f"threshold {self.threshold} is outside 0..1")
        low, high = self.inconclusive_band
        if not 0.0 <= low <= self.threshold <= high <= 1.0:
            raise CardError(f"inconclusive band {low}-{high} must lie in 0..1 and contain the threshold")
        if "/" in self.weights_file or "\\" in self.weights_file or self.weights_file.startswith("."):
            raise CardError("weights_file must be a plain file name beside the card")

    def to_json(self) -> str:
        data = {"format": CARD_FORMAT, "format_version": CARD_VERSION, **asdict(self)}
        return json.dumps(data, indent=2, ensure_ascii=False) + "\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelCard":
        if data.get("format") != CARD_FORMAT:
            raise CardError("not a Forensight model card (missing \"format\": \"forensight-model-card\")")
        if int(data.get("format_version", 0)) > CARD_VERSION:
            raise CardError("this card was written by a newer Forensight; update the application")
        known = {f for f in cls.__dataclass_fields__}
        fields = {k: v for k, v in data.items() if k in known}
        try:
            spec = InputSpec(**{k: (tuple(v) if isinstance(v, list) else v)
                                for k, v in fields.pop("input", {}).items()
                                if k in InputSpec.__dataclass_fields__})
            if "inconclusive_band" in fields:
                fields["inconclusive_band"] = tuple(fields["inconclusive_band"])
            card = cls(input=spec, **fields)
        except TypeError as exc:
            raise CardError(f"card is missing a required field: {exc}") from None
        card.validate()
        return card

    @classmethod
    def load(cls, path: Path) -> "ModelCard":
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise CardError(f"cannot read model card {path}: {exc}") from None
        if not isinstance(data, dict):
            raise CardError(f"{path} is not a JSON object")
        return cls.from_dict(data)

    def save(self, path: Path) -> None:
        self.validate()
        Path(path).write_text(self.to_json(), encoding="utf-8")


def default_input_spec(architecture: str) -> InputSpec:
    arch = get_architecture(architecture)
    return InputSpec(policy=arch.default_policy, size=arch.input_size, resize=arch.resize_size,
                     mean=arch.mean, std=arch.std)


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()
