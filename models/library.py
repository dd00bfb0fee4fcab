"""The model library: shipped models (read-only, in resources/models) plus the user's own, in the user
data directory, each a folder holding card.json and a safetensors weights file."""
from __future__ import annotations

import json
import os
import shutil
import stat
import sys
import tempfile
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

import torch

from models.card import CardError, ModelCard, default_input_spec, file_kind, is_valid_model_id, sha256_file
from models.checkpoints import (CheckpointError, StateDict, check_checkpoint_file, infer_architecture,
                                module_from_state, read_safetensors, read_torch_checkpoint, write_safetensors)

CARD_NAME = "card.json"
REPO_ROOT = Path(__file__).resolve().parent.parent


def data_home() -> Path:
    """Where the user's models, cases and settings live (FORENSIGHT_HOME overrides)."""
    if env := os.environ.get("FORENSIGHT_HOME"):
        return Path(env).expanduser()
    if sys.platform == "win32":
        return Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local")) / "Forensight"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "Forensight"
    return Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share")) / "forensight"


def shipped_models_dir() -> Path:
    if env := os.environ.get("FORENSIGHT_SHIPPED_MODELS"):
        return Path(env)
    return REPO_ROOT / "resources" / "models"


class ModelNotFoundError(LookupError):
    pass


class NoModelError(LookupError):
    pass


@dataclass(frozen=True)
class LibraryEntry:
    card: ModelCard
    directory: Path
    shipped: bool

    @property
    def weights_path(self) -> Path:
        return self.directory / self.card.weights_file


@dataclass
class LoadedModel:
    card: ModelCard
    module: torch.nn.Module

    @property
    def weights_sha256(self) -> str:
        return self.card.weights_sha256


class ModelLibrary:
    def __init__(self, home: Path | None = None, shipped_dir: Path | None = None) -> None:
        self.home = Path(home) if home else data_home()
        self.shipped_dir = Path(shipped_dir) if shipped_dir else shipped_models_dir()
        self.user_dir = self.home / "models"

    # ---- listing -------------------------------------------------------------------------------
    def entries(self) -> list[LibraryEntry]:
        found: dict[str, LibraryEntry] = {}
        for root, shipped in ((self.shipped_dir, True), (self.user_dir, False)):
            if not root.is_dir():
                continue
            for folder in sorted(p for p in root.iterdir() if (p / CARD_NAME).is_file()):
                try:
                    card = ModelCard.load(folder / CARD_NAME)
                except (CardError, KeyError):
                    continue  # a broken folder is reported by `models show`, not fatal to listing
                found.setdefault(card.id, LibraryEntry(card, folder, shipped))
        return sorted(found.values(), key=lambda e: e.card.id)

    def get(self, model_id: str) -> LibraryEntry:
        for entry in self.entries():
            if entry.card.id == model_id:
                return entry
        self._explain_broken(model_id)
        known = ", ".join(e.card.id for e in self.entries()) or "none installed"
        raise ModelNotFoundError(f"no model {model_id!r} in the library (known: {known})")

    def _explain_broken(self, model_id: str) -> None:
        """A folder named model_id whose card the listing skipped: say why instead of 'no model'."""
        if not is_valid_model_id(model_id):
            return
        for root in (self.user_dir, self.shipped_dir):
            card_path = root / model_id / CARD_NAME
            if card_path.is_file():
                try:
                    ModelCard.load(card_path)
                except CardError as exc:
                    raise CardError(f"model {model_id!r} cannot be used: {exc}") from None

    # ---- the default ---------------------------------------------------------------------------
    def _settings_path(self) -> Path:
        return self.home / "settings.json"

    def _settings(self) -> dict:
        try:
            return json.loads(self._settings_path().read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return {}

    def default_id(self) -> str | None:
        entries = self.entries()
        ids = {e.card.id for e in entries}
        chosen = self._settings().get("default_model")
        if chosen in ids:
            return chosen
        shipped_default = next((e.card.id for e in entries if e.shipped and e.card.default), None)
        if shipped_default:
            return shipped_default
        return entries[0].card.id if len(entries) == 1 else None

    def set_default(self, model_id: str) -> None:
        self.get(model_id)
        settings = self._settings() | {"default_model": model_id}
        self.home.mkdir(parents=True, exist_ok=True)
        self._settings_path().write_text(json.dumps(settings, indent=2), encoding="utf-8")

    def resolve(self, model_id: str | None) -> LibraryEntry:
        if model_id:
            return self.get(model_id)
        default = self.default_id()
        if default is None:
            if self.entries():
                raise NoModelError("several models are installed and none is the default; "
                                   "pass --model ID or run `forensight models default ID`")
            raise NoModelError("no detector is installed. Import one with `forensight models import PATH` "
                               "or train one with `forensight train` (see the README)")
        return self.get(default)

    # ---- changing the library ------------------------------------------------------------------
    def remove(self, model_id: str) -> None:
        entry = self.get(model_id)
        if entry.shipped:
            raise CardError(f"{model_id!r} ships with Forensight and cannot be removed")
        shutil.rmtree(entry.directory)

    def add(self, card: ModelCard, state: StateDict) -> LibraryEntry:
        """Store weights + card (used by import and by the trainer). The card's hash is recomputed."""
        card.validate()
        if any(e.card.id == card.id for e in self.entries()):
            raise CardError(f"a model with id {card.id!r} already exists; choose another id")
        module_from_state(card, state)  # refuse weights that do not fit before writing anything
        self.user_dir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".import-", dir=self.user_dir))
        try:
            weights = staging / card.weights_file
            write_safetensors(state, weights)
            card = replace(card, weights_sha256=sha256_file(weights), default=False)
            card.save(staging / CARD_NAME)
            target = self.user_dir / card.id
            staging.rename(target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return LibraryEntry(card, target, shipped=False)

    def import_path(self, path: Path, *, architecture: str | None = None, model_id: str | None = None,
                    name: str | None = None, fake_index: int | None = None,
                    policy: str | None = None, threshold: float | None = None) -> LibraryEntry:
        """Import a Forensight model folder/card, a safetensors file or a plain PyTorch state dict."""
        path = Path(path).expanduser()
        try:
            mode = os.stat(path).st_mode  # before opening anything: a FIFO would block, /dev/zero never ends
        except FileNotFoundError:
            raise CheckpointError(f"{path} does not exist") from None
        except OSError as exc:
            raise CheckpointError(f"cannot read {path}: {exc.strerror or exc}") from None
        if not (stat.S_ISDIR(mode) or stat.S_ISREG(mode)):
            raise CheckpointError(f"{path} is {file_kind(mode)}, not a model file or folder")
        if stat.S_ISDIR(mode) or path.suffix.lower() == ".json":
            card_path = path / CARD_NAME if stat.S_ISDIR(mode) else path
            card = ModelCard.load(card_path)
            weights = card_path.parent / card.weights_file
            if not weights.exists():
                raise CheckpointError(f"the card names {card.weights_file}, which is not beside it")
            check_checkpoint_file(weights)
            if card.weights_sha256 and sha256_file(weights) != card.weights_sha256:
                raise CheckpointError(f"{weights.name} does not match the SHA-256 recorded in its card "
                                      "(altered or truncated)")
            if model_id:
                card = replace(card, id=model_id)
            return self.add(card, read_safetensors(weights))

        state = (read_safetensors(path) if path.suffix.lower() == ".safetensors"
                 else read_torch_checkpoint(path))
        if architecture is None:
            architecture, num_logits = infer_architecture(state)
        else:
            from models.registry import get_architecture
            head = state.get(get_architecture(architecture).head_weight)
            num_logits = int(head.shape[0]) if head is not None and head.ndim == 2 else 2
        spec = default_input_spec(architecture)
        if policy:
            spec = replace(spec, policy=policy)
        stem = "".join(c if c.isalnum() or c in "._-" else "-" for c in path.stem.lower()).strip("-._")
        card = ModelCard(
            id=model_id or (stem or "imported")[:64], name=name or path.stem, architecture=architecture,
            num_logits=num_logits, fake_index=1 if fake_index is None else fake_index, input=spec,
            threshold=0.5 if threshold is None else threshold,
            description=f"Imported from {path.name}",
            provenance={"imported_from": path.name, "source_sha256": sha256_file(path),
                        "imported_at": datetime.now(timezone.utc).isoformat(timespec="seconds")},
            limitations="Imported checkpoint: Forensight has not measured it. Evaluate it on data like "
                        "your casework before relying on it.",
        )
        if threshold is not None:
            half = min(0.2, threshold, 1 - threshold)
            card.inconclusive_band = (threshold - half, threshold + half)
        card.validate()
        return self.add(card, state)

    # ---- loading -------------------------------------------------------------------------------
    def load(self, entry: LibraryEntry | str) -> LoadedModel:
        if isinstance(entry, str):
            entry = self.get(entry)
        if not entry.weights_path.exists():
            raise CheckpointError(f"model {entry.card.id!r}: weights file {entry.weights_path} is missing")
        try:
            check_checkpoint_file(entry.weights_path)
            if entry.card.weights_sha256 and sha256_file(entry.weights_path) != entry.card.weights_sha256:
                raise CheckpointError("the weights file does not match its card's SHA-256 (altered or "
                                      "corrupted); re-import it")
            module = module_from_state(entry.card, read_safetensors(entry.weights_path))
        except CheckpointError as exc:
            raise CheckpointError(f"model {entry.card.id!r}: {exc}") from None
        return LoadedModel(entry.card, module)
