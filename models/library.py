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
from typing import TYPE_CHECKING

import torch

from models.card import (CardError, ModelCard, default_input_spec, file_kind, is_valid_model_id,
                         model_id_from, sha256_file)
from models.labels import band_around
from models.checkpoints import (CheckpointError, StateDict, check_checkpoint_file, flatten_state, infer_architecture,
                                module_from_state, read_safetensors, read_torch_object, write_safetensors)

if TYPE_CHECKING:
    from models.ensemble import LoadedEnsemble
    from models.families import Identified

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
        return self._store(card, lambda weights: write_safetensors(state, weights))

    def add_file(self, card: ModelCard, source: Path, extra_files: dict[str, bytes] | None = None) -> LibraryEntry:
        """Store a weights file as it is (an ONNX graph, a calibrated variant's copy of its original's weights)
        with its card, and `extra_files` (name → bytes: a reliability diagram) beside them; the weights are
        checked by loading them."""
        card.validate()
        if any(e.card.id == card.id for e in self.entries()):
            raise CardError(f"a model with id {card.id!r} already exists; choose another id")

        def copy_and_check(weights: Path) -> None:
            shutil.copyfile(source, weights)
            _load_module(card, weights)
            _write_beside(weights, extra_files)

        return self._store(card, copy_and_check)

    def add_ensemble(self, card: ModelCard, extra_files: dict[str, bytes] | None = None) -> LibraryEntry:
        """Store an ensemble (models/ensemble.py): its card and, as its weights file, the canonical combination,
        whose SHA-256 becomes the ensemble's weights_sha256. Its members are checked before anything is written."""
        from models.ensemble import COMBINATION_FILE, combination_bytes, member_entries

        card = replace(card, weights_file=COMBINATION_FILE)
        card.validate()
        if any(e.card.id == card.id for e in self.entries()):
            raise CardError(f"a model with id {card.id!r} already exists; choose another id")
        member_entries(self, card)

        def write(weights: Path) -> None:
            weights.write_bytes(combination_bytes(card.ensemble))
            _write_beside(weights, extra_files)

        return self._store(card, write)

    def _store(self, card: ModelCard, write_weights) -> LibraryEntry:
        self.user_dir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".import-", dir=self.user_dir))
        try:
            weights = staging / card.weights_file
            write_weights(weights)
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
                    policy: str | None = None, threshold: float | None = None, family: str | None = None,
                    fake_label: str | None = None, input_spec: dict | None = None,
                    tower: Path | None = None) -> LibraryEntry:
        """Import a Forensight model folder/card, a published detector (models/families: a PyTorch checkpoint
        of a known family, a Hugging Face folder, an ONNX graph, a UnivFD head with its CLIP `tower` file), a
        safetensors file or a plain state dict."""
        path = Path(path).expanduser()
        mode = _model_file_mode(path)
        is_dir = stat.S_ISDIR(mode)
        # which kind of model this is: the explicit family first, then what the path itself shows
        from models.families import TOWER_FAMILIES, tower_head_module

        if tower is not None or family in TOWER_FAMILIES:  # a head and the foundation-model tower it reads
            card, state = tower_head_module(path, family).prepare(
                path, Path(tower).expanduser() if tower else None, model_id=model_id, name=name, threshold=threshold,
                policy=policy)
            return self.add(card, state)
        if family == "huggingface" or is_dir and not (path / CARD_NAME).exists():
            from models.families import huggingface

            card, state = huggingface.prepare(path, model_id=model_id, name=name, fake_label=fake_label,
                                              threshold=threshold, policy=policy)
            return self.add(card, state)
        if family == "onnx" or path.suffix.lower() == ".onnx":
            from models.families import onnx_graph

            card = onnx_graph.prepare(path, model_id=model_id, name=name, fake_index=fake_index,
                                      threshold=threshold, policy=policy, input_spec=input_spec)
            return self.add_file(card, path)
        if is_dir or path.suffix.lower() == ".json":
            card, weights = _forensight_card(path / CARD_NAME if is_dir else path, model_id)
            if card.architecture == "onnx":
                return self.add_file(card, weights)
            return self.add(card, read_safetensors(weights))
        state = _read_state_dict(path)
        from models.families import drct

        if architecture is None and family in (None, drct.FAMILY) and drct.is_clip_file(state):
            card, state = drct.prepare_clip(path, state, model_id=model_id, name=name, threshold=threshold,
                                            policy=policy)  # a detector that carries its CLIP tower
            return self.add(card, state)
        card = _checkpoint_card(path, state, architecture=architecture, family=family, model_id=model_id, name=name,
                                fake_index=fake_index, policy=policy, threshold=threshold)
        return self.add(card, state)

    # ---- loading -------------------------------------------------------------------------------
    def load(self, entry: LibraryEntry | str) -> "LoadedModel | LoadedEnsemble":
        """The model with its weights checked against its card; an ensemble with each of its members (a member
        missing or changed since the ensemble was made is refused: EnsembleError)."""
        if isinstance(entry, str):
            entry = self.get(entry)
        if not entry.weights_path.exists():
            raise CheckpointError(f"model {entry.card.id!r}: weights file {entry.weights_path} is missing")
        try:
            check_checkpoint_file(entry.weights_path)
            if entry.card.weights_sha256 and sha256_file(entry.weights_path) != entry.card.weights_sha256:
                raise CheckpointError("the weights file does not match its card's SHA-256 (altered or "
                                      "corrupted); re-import it")
            if entry.card.architecture == "ensemble":
                from models.ensemble import EnsembleError, load_ensemble

                try:
                    return load_ensemble(self, entry)
                except EnsembleError as exc:  # a member missing or changed: one line, like altered weights
                    raise CheckpointError(str(exc)) from None
            module = _load_module(entry.card, entry.weights_path)
        except CheckpointError as exc:
            raise CheckpointError(f"model {entry.card.id!r}: {exc}") from None
        return LoadedModel(entry.card, module)


def _model_file_mode(path: Path) -> int:
    """The path's file mode, refusing what is neither a folder nor a regular file. It is asked before anything is
    opened: a FIFO would block, /dev/zero never ends."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise CheckpointError(f"{path} does not exist") from None
    except OSError as exc:
        raise CheckpointError(f"cannot read {path}: {exc.strerror or exc}") from None
    if not (stat.S_ISDIR(mode) or stat.S_ISREG(mode)):
        raise CheckpointError(f"{path} is {file_kind(mode)}, not a model file or folder")
    return mode


def _forensight_card(card_path: Path, model_id: str | None) -> tuple[ModelCard, Path]:
    """A Forensight card and the weights file beside it, checked against the SHA-256 the card records."""
    card = ModelCard.load(card_path)
    if card.architecture == "ensemble":  # its members are this library's models, not files beside it
        raise CheckpointError("an ensemble is made from the models of this library with `forensight "
                              "ensemble create`, not imported")
    weights = card_path.parent / card.weights_file
    if not weights.exists():
        raise CheckpointError(f"the card names {card.weights_file}, which is not beside it")
    check_checkpoint_file(weights)
    if card.weights_sha256 and sha256_file(weights) != card.weights_sha256:
        raise CheckpointError(f"{weights.name} does not match the SHA-256 recorded in its card "
                              "(altered or truncated)")
    if model_id:
        card = replace(card, id=model_id)
    return card, weights


def _read_state_dict(path: Path) -> StateDict:
    """The checkpoint's tensors, flattened; a file that holds none is described with the families we know."""
    from models import families

    raw = read_safetensors(path) if path.suffix.lower() == ".safetensors" else read_torch_object(path)
    try:
        return flatten_state(raw, path.name)
    except CheckpointError:
        raise CheckpointError(f"{path.name} holds no state dict of tensors: {families.describe(raw)}; "
                              f"{families.known_families_text()}") from None


def _checkpoint_card(path: Path, state: StateDict, *, architecture: str | None, family: str | None,
                     model_id: str | None, name: str | None, fake_index: int | None, policy: str | None,
                     threshold: float | None) -> ModelCard:
    """The card of a PyTorch or safetensors checkpoint: a published detector's own card when a family recognises
    it, else a plain card for the registry architecture it fits (or the one given)."""
    from models import families

    if architecture is None and family is None:
        from models.families import rine, univfd

        for head_family in (univfd, rine):  # a head is useless without its tower: say which file to add, in one line
            if head_family.is_head(state):
                raise CheckpointError(head_family.needs_tower_message(path, state))
    source_sha256 = sha256_file(path)
    stem = model_id_from(path.stem)
    if architecture is None:
        identified = families.identify(state, path, source_sha256, family)
        if identified is not None:
            return _published_card(identified, path, source_sha256, stem, model_id=model_id, name=name,
                                   policy=policy, threshold=threshold)
    elif family:
        raise CheckpointError("--arch and --family exclude each other: a family fixes its architecture")
    return _plain_card(path, state, source_sha256, stem, architecture=architecture, model_id=model_id, name=name,
                       fake_index=fake_index, policy=policy, threshold=threshold)


def _published_card(identified: Identified, path: Path, source_sha256: str, stem: str, *, model_id: str | None,
                    name: str | None, policy: str | None, threshold: float | None) -> ModelCard:
    """A recognised published detector's card, with the user's input policy and threshold where they chose one."""
    from models import families

    default_id = (identified.known.file.get("variant_id") or identified.known.file["variant"]) if identified.known \
        else stem
    default_id = model_id_from(identified.family.id, default_id)
    card = families.card_for(identified, model_id=model_id or default_id, name=name, path=path,
                             sha256=source_sha256, threshold=threshold)
    if policy:
        spec = replace(card.input, policy=policy)
        if card.input.policy == "full" and policy != "full":  # its size was only a smallest side
            default = default_input_spec(card.architecture)
            spec = replace(spec, size=max(default.size, 224), resize=max(default.resize, 256))
        card = replace(card, input=spec,
                       provenance=card.provenance | {"input_policy": f"{policy}, chosen on import "
                                                     "instead of the authors'"})
    if threshold is not None:
        card.inconclusive_band = band_around(threshold)
    card.validate()
    return card


def _plain_card(path: Path, state: StateDict, source_sha256: str, stem: str, *, architecture: str | None,
                model_id: str | None, name: str | None, fake_index: int | None, policy: str | None,
                threshold: float | None) -> ModelCard:
    """The card of a checkpoint no family claims: the registry architecture it fits (or the one given), its
    default input, and a caveat that Forensight has not measured it."""
    from models import families

    if architecture is None:
        try:
            architecture, num_logits = infer_architecture(state)
        except CheckpointError:
            partial = families.partial_match(state)
            raise CheckpointError(f"{path.name} fits no known detector: "
                                  f"{partial or 'it holds ' + families.describe(state)}; "
                                  f"{families.known_families_text()}") from None
    else:
        from models.registry import get_architecture
        head = state.get(get_architecture(architecture).head_weight)
        num_logits = int(head.shape[0]) if head is not None and head.ndim == 2 else 2
    spec = default_input_spec(architecture)
    if policy:
        spec = replace(spec, policy=policy)
    same_tensors = families.ambiguous_families(state)
    card = ModelCard(
        id=model_id or stem or "imported", name=name or path.stem, architecture=architecture,
        num_logits=num_logits, fake_index=1 if fake_index is None else fake_index, input=spec,
        threshold=0.5 if threshold is None else threshold,
        description=f"Imported from {path.name}",
        provenance={"imported_from": path.name, "source_sha256": source_sha256,
                    "imported_at": datetime.now(timezone.utc).isoformat(timespec="seconds")},
        limitations="Imported checkpoint: Forensight has not measured it. Evaluate it on data like "
                    "your casework before relying on it."
                    + (f" Its tensors are exactly those of the published {' and '.join(same_tensors)} "
                       f"detectors: if it is one of them, import it with --family {same_tensors[0]} (or "
                       "another) to get the authors' network, input and card." if same_tensors else ""),
    )
    if threshold is not None:
        card.inconclusive_band = band_around(threshold)
    card.validate()
    return card


def _write_beside(weights: Path, extra_files: dict[str, bytes] | None) -> None:
    """A new entry's other files (a reliability diagram, a file list), beside its weights in the staging folder,
    so the entry is stored with all of them or not at all; only a bare file name is used."""
    for name, data in (extra_files or {}).items():
        (weights.parent / Path(name).name).write_bytes(data)


def _load_module(card: ModelCard, weights: Path) -> torch.nn.Module:
    """The card's network with its weights: an ONNX graph runs in onnxruntime, everything else is a state dict."""
    if card.architecture == "onnx":
        from models.families.onnx_graph import load_module

        return load_module(card, weights)
    return module_from_state(card, read_safetensors(weights))
