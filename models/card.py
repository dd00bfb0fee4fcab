"""The model card: what a checkpoint is, how it wants its input, and how its output becomes P(fake).

A card is JSON stored beside a safetensors weights file. It is plain data, so loading one never runs code.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import re
import stat
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, NoReturn

from models.calibration import calibration_problem
from models.ensemble import ensemble_problem
from models.labels import Thresholds
from models.registry import ARCHITECTURES, get_architecture

CARD_FORMAT = "forensight-model-card"
# 2: the card may carry a calibration. A card with one is written as version 2, so that a Forensight that
# cannot apply it refuses the card instead of using its calibrated threshold on uncalibrated scores; every
# other card is still written as version 1 and reads in older versions as before.
# 3: the card may be an ensemble (models/ensemble.py): written as version 3, so that a Forensight without
# ensembles says "update the application" instead of naming an unknown architecture.
CARD_VERSION = 3
INPUT_POLICIES = ("resize", "resize_center_crop", "center_crop", "tiles", "full", "five_crop", "ten_crop")
# Policies that look at native-resolution pixels (several views or the whole picture): never draft-decoded.
MULTI_VIEW_POLICIES = ("tiles", "full", "five_crop", "ten_crop")
AGGREGATIONS = ("max", "mean_logit", "top_k_mean")
SMALL_IMAGE_RULES = ("pad", "upscale")
# where a centre crop starts when the margin is odd: round (torchvision, half to even) | floor (albumentations and
# other OpenCV-based code)
CROP_OFFSETS = ("round", "floor")
MAX_TILES = 256
# The views of one image wait as uint8 tensors for their batch: 16 M pixels (48 MB) each at most, so that the
# decode queue's images cannot fill the memory whatever max_tiles and size a card asks for.
MAX_VIEW_PIXELS = 1 << 24
INTERPOLATIONS = ("bilinear", "bicubic", "lanczos", "nearest")
_ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
ID_RULE = "1-64 characters of a-z, 0-9, '.', '_' or '-', starting with a letter or digit"
_WEIGHTS_FILE_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_SHA256_PATTERN = re.compile(r"^[0-9a-f]{64}$")
# The square the model sees. Research detectors' native inputs are 1024 pixels or less today, and every pixel
# more multiplies the memory each image needs in the decode queue and on the device (size 20000 once took
# 8.7 GB for five images), so a card may not ask for more.
MIN_INPUT_SIZE, MAX_INPUT_SIZE = 16, 1024
MAX_RESIZE = 2048  # the shorter side before a centre crop: at most twice the largest input
MIN_STD = 0.001  # std divides the pixels: 0 gives NaN scores, a tiny one overflows to infinity
NAME_CHARS, TEXT_CHARS = 256, 20_000  # name; description, trained_on and limitations
MAX_CARD_BYTES = 4 << 20  # a trained model's card with its learning curve is tens of kilobytes


def is_valid_model_id(model_id: str) -> bool:
    return isinstance(model_id, str) and bool(_ID_PATTERN.match(model_id))


def model_id_from(*parts: str) -> str:
    """A model id made from names a user chose (a file or folder name, a family, a variant): lower case, other
    characters as '-', at most 64 characters, no separator at either end; '' when nothing usable is left."""
    text = "-".join(part for part in parts if part).lower()
    return "".join(c if (c.isascii() and c.isalnum()) or c in "._-" else "-" for c in text)[:64].strip("-._")


class CardError(ValueError):
    """A card that cannot be used, with a reason a user can act on."""


@dataclass
class InputSpec:
    # resize (squash to size×size) | resize_center_crop | center_crop | tiles (native-resolution tiles over the
    # whole picture) | full (the whole picture at native resolution) | five_crop | ten_crop (corners + centre,
    # ten with their mirror images)
    policy: str = "resize_center_crop"
    size: int = 224
    resize: int = 256  # shorter side before the crop (resize_center_crop only)
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    interpolation: str = "bilinear"  # bilinear | bicubic | lanczos | nearest
    background: tuple[int, int, int] = (255, 255, 255)  # transparent pixels are composited over this
    jpeg_draft: bool = True  # decode big JPEGs at reduced size when the policy resizes anyway
    tile_stride: int | None = None  # tiles: pixels between tile origins; None = size (tiles touch)
    max_tiles: int = 64  # tiles: beyond this many, fewer tiles are spread evenly over the picture
    aggregation: str = "max"  # several views → one P(fake): max | mean_logit | top_k_mean
    top_k: int = 3  # top_k_mean: how many of the strongest views are averaged
    full_max_pixels: int = 4_194_304  # full: a bigger picture is analysed on its central part of this area
    small_image: str = "pad"  # a side shorter than size: pad (black, centred) | upscale (short side to size)
    crop_offset: str = "round"  # center_crop with an odd margin: round (torchvision) | floor (albumentations)

    @property
    def resizes(self) -> bool:
        return self.policy not in ("center_crop", *MULTI_VIEW_POLICIES)

    @property
    def stride(self) -> int:
        return self.tile_stride or self.size

    @property
    def max_views(self) -> int:
        """How many views of one image the policy gives the model at most."""
        return {"tiles": self.max_tiles, "five_crop": 5, "ten_crop": 10}.get(self.policy, 1)

    @property
    def view_pixels(self) -> int:
        """The most pixels the views of one image hold together (what waits in memory for the model)."""
        if self.policy == "full":
            return self.full_max_pixels
        return self.max_views * self.size * self.size

    def validate(self) -> None:
        _check_choice("input.policy", self.policy, INPUT_POLICIES)
        _check_int("input.size", self.size, MIN_INPUT_SIZE, MAX_INPUT_SIZE)
        _check_int("input.resize", self.resize, self.size, MAX_RESIZE,
                   f"an integer from input.size ({self.size}) to {MAX_RESIZE}")
        _check_numbers("input.mean", self.mean, 0, 1)
        _check_numbers("input.std", self.std, MIN_STD, 1)
        _check_choice("input.interpolation", self.interpolation, INTERPOLATIONS)
        _check_numbers("input.background", self.background, 0, 255, integers=True)
        _check_bool("input.jpeg_draft", self.jpeg_draft)
        if self.tile_stride is not None:
            _check_int("input.tile_stride", self.tile_stride, 1, self.size,
                       f"null (the tile size) or an integer from 1 to input.size ({self.size}), so tiles leave "
                       "no gaps")
        _check_int("input.max_tiles", self.max_tiles, 1, min(MAX_TILES, MAX_VIEW_PIXELS // self.size ** 2),
                   f"an integer from 1 to {min(MAX_TILES, MAX_VIEW_PIXELS // self.size ** 2)} (at most "
                   f"{MAX_TILES} tiles and {MAX_VIEW_PIXELS:,} tile pixels per image)")
        _check_choice("input.aggregation", self.aggregation, AGGREGATIONS)
        _check_int("input.top_k", self.top_k, 1, self.max_tiles, f"an integer from 1 to input.max_tiles "
                                                                 f"({self.max_tiles})")
        _check_int("input.full_max_pixels", self.full_max_pixels, self.size ** 2, MAX_VIEW_PIXELS,
                   f"an integer from input.size² ({self.size ** 2:,}) to {MAX_VIEW_PIXELS:,}")
        _check_choice("input.small_image", self.small_image, SMALL_IMAGE_RULES)
        _check_choice("input.crop_offset", self.crop_offset, CROP_OFFSETS)


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
    # A published detector's family (models/families: "cnndetection", "npr", "huggingface", ...; "" = none) and
    # what that family needs to rebuild the network (a Hugging Face config, an ONNX file's input name): plain data
    family: str = ""
    family_config: dict[str, Any] = field(default_factory=dict)
    # How P(fake) is calibrated (models/calibration.py; {} = the model's own P(fake)), fitted by
    # `forensight calibrate` on the examiner's photos, with what it was fitted on
    calibration: dict[str, Any] = field(default_factory=dict)
    # An ensemble's combination of other library models (architecture "ensemble"; models/ensemble.py; {} = none)
    ensemble: dict[str, Any] = field(default_factory=dict)

    @property
    def output(self) -> str:
        return "sigmoid" if self.num_logits == 1 else "softmax"

    def validate(self) -> None:
        """Every field's type and range; CardError names the first field that is wrong."""
        if not is_valid_model_id(self.id):
            _refuse("id", self.id, ID_RULE)
        _check_text("name", self.name, 1, NAME_CHARS)
        _check_choice("architecture", self.architecture, tuple(sorted(ARCHITECTURES)))
        _check_int("num_logits", self.num_logits, 1, 2, "1 (sigmoid) or 2 (softmax)")
        _check_int("fake_index", self.fake_index, 0, 1, "0 or 1 (which of two logits means fake)")
        if not isinstance(self.input, InputSpec):
            _refuse("input", self.input, "an object of input settings")
        self.input.validate()
        if self.input.policy == "full" and not _takes_any_size(self.architecture):
            _refuse("input.policy", self.input.policy, f"a policy with fixed-size views: {self.architecture} "
                                                        "takes only its own input size (use tiles)")
        if not _is_number(self.threshold) or not 0 <= self.threshold <= 1:
            _refuse("threshold", self.threshold, "a number from 0 to 1")
        band = self.inconclusive_band
        if not (isinstance(band, (list, tuple)) and len(band) == 2 and all(_is_number(v) for v in band)
                and 0 <= band[0] <= self.threshold <= band[1] <= 1):
            _refuse("inconclusive_band", band, f"two numbers [low, high] with 0 ≤ low ≤ threshold "
                                               f"({self.threshold}) ≤ high ≤ 1")
        try:
            Thresholds(self.threshold, *band)
        except ValueError as exc:  # a band reaching 0 or 1: one of the two verdicts could never be given
            _refuse("inconclusive_band", band, f"a band that leaves room for both verdicts ({exc})")
        if not (isinstance(self.weights_file, str) and _WEIGHTS_FILE_PATTERN.match(self.weights_file)):
            _refuse("weights_file", self.weights_file, "a plain file name beside the card: 1-128 letters, "
                                                       "digits, '.', '_' or '-', not starting with '.'")
        if not (self.weights_sha256 == "" or isinstance(self.weights_sha256, str)
                and _SHA256_PATTERN.match(self.weights_sha256)):
            _refuse("weights_sha256", self.weights_sha256, "empty or 64 lowercase hexadecimal digits")
        for name in ("description", "trained_on", "limitations"):
            _check_text(name, getattr(self, name), 0, TEXT_CHARS)
        for name in ("provenance", "metrics"):
            if not isinstance(getattr(self, name), dict):
                _refuse(name, getattr(self, name), "an object")
        if not isinstance(self.learning_curve, list):
            _refuse("learning_curve", self.learning_curve, "a list")
        _check_bool("default", self.default)
        if not (self.family == "" or is_valid_model_id(self.family)):
            _refuse("family", self.family, "empty or a family name such as \"npr\" (a-z, 0-9, '.', '_', '-')")
        if not isinstance(self.family_config, dict):
            _refuse("family_config", self.family_config, "an object")
        if problem := calibration_problem(self.calibration):
            _refuse(*problem)
        if problem := ensemble_problem(self.ensemble):
            _refuse(*problem)
        if bool(self.ensemble) != (self.architecture == "ensemble"):
            _refuse("ensemble", self.ensemble, "the combination of an ensemble's members, given exactly when "
                                               "architecture is \"ensemble\"")

    def to_json(self) -> str:
        version = 3 if self.ensemble else 2 if self.calibration else 1  # the oldest version that reads it
        data = {"format": CARD_FORMAT, "format_version": version, **asdict(self)}
        return json.dumps(data, indent=2, ensure_ascii=False) + "\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelCard":
        """A validated card from parsed JSON. Fields this version does not know are ignored, so a card
        written by a later version that only adds fields still loads."""
        if not isinstance(data, dict):
            raise CardError("a model card must be a JSON object")
        if data.get("format") != CARD_FORMAT:
            raise CardError("not a Forensight model card (missing \"format\": \"forensight-model-card\")")
        version = data.get("format_version", 0)
        if isinstance(version, bool) or not isinstance(version, int):
            _refuse("format_version", version, "an integer")
        if version > CARD_VERSION:
            raise CardError("this card was written by a newer Forensight; update the application")
        values = {f.name: data[f.name] for f in fields(cls) if f.name in data}
        missing = [f.name for f in fields(cls)
                   if f.default is MISSING and f.default_factory is MISSING and f.name not in values]
        if missing:
            raise CardError(f"card is missing the required field(s) {', '.join(missing)}")
        raw_input = values.pop("input", {})
        if not isinstance(raw_input, dict):
            _refuse("input", raw_input, 'an object such as {"policy": "resize", "size": 224}')
        spec = InputSpec(**{f.name: _as_tuple(raw_input[f.name]) for f in fields(InputSpec) if f.name in raw_input})
        if "inconclusive_band" in values:
            values["inconclusive_band"] = _as_tuple(values["inconclusive_band"])
        card = cls(input=spec, **values)
        card.validate()
        return card

    @classmethod
    def load(cls, path: Path) -> "ModelCard":
        path = Path(path)
        try:
            info = os.stat(path)
        except OSError as exc:
            raise CardError(f"cannot read model card {path}: {exc.strerror or exc}") from None
        if not stat.S_ISREG(info.st_mode):  # a FIFO or a device would block or never end
            raise CardError(f"{path} is {file_kind(info.st_mode)}, not a model card file")
        if info.st_size > MAX_CARD_BYTES:
            raise CardError(f"{path} is {info.st_size:,} bytes; a model card is at most {MAX_CARD_BYTES >> 20} MiB")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError) as exc:  # ValueError: not UTF-8, not JSON
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


def _takes_any_size(architecture: str) -> bool:
    """Whether the network accepts any picture size (global pooling before its head). A ViT's position
    embeddings and simple_cnn's flattening head fix the size."""
    return not get_architecture(architecture).is_vit and architecture != "simple_cnn"


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def file_kind(mode: int) -> str:
    """What a path that is not a regular file is, for a message ('a FIFO (named pipe)')."""
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


# ---- field checks: each raises CardError naming the field, the value and what is allowed --------------
def _refuse(name: str, value: Any, rule: str) -> NoReturn:
    raise CardError(f"card field {name} is {_show(value)}; it must be {rule}")


def _show(value: Any) -> str:
    if isinstance(value, str) and len(value) > 60:
        return f"a text of {len(value):,} characters"
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):  # not JSON, or an integer too long to print
        text = f"a {type(value).__name__}"
    return text if len(text) <= 60 else text[:57] + "..."


def _as_tuple(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def _is_number(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    # an int is finite whatever its size (math.isfinite(10**400) raises OverflowError)
    return isinstance(value, int) or (isinstance(value, float) and math.isfinite(value))


def _check_int(name: str, value: Any, low: int, high: int, rule: str | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        _refuse(name, value, rule or f"an integer from {low} to {high}")


def _check_numbers(name: str, value: Any, low: float, high: float, *, integers: bool = False) -> None:
    """Three numbers (one per RGB channel), each in low..high."""
    ok = isinstance(value, (list, tuple)) and len(value) == 3 and all(
        _is_number(v) and (isinstance(v, int) or not integers) and low <= v <= high for v in value)
    if not ok:
        _refuse(name, value, f"three {'integers' if integers else 'numbers'} (R, G, B) from {low} to {high}")


def _check_text(name: str, value: Any, shortest: int, longest: int) -> None:
    if not isinstance(value, str) or not shortest <= len(value) <= longest:
        _refuse(name, value, f"text of {shortest} to {longest:,} characters")


def _check_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if not isinstance(value, str) or value not in choices:
        _refuse(name, value, "one of " + ", ".join(choices))


def _check_bool(name: str, value: Any) -> None:
    if not isinstance(value, bool):
        _refuse(name, value, "true or false")
