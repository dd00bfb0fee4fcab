"""Reading weights safely. Nothing here unpickles with code execution: safetensors, or torch.load with
weights_only=True, which refuses any pickle that would build an object other than tensors and containers."""
from __future__ import annotations

import os
import pickle
import stat
import zipfile
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from models.card import CardError, ModelCard, file_kind
from models.registry import ARCHITECTURES, build_model, get_architecture

StateDict = dict[str, torch.Tensor]
_PREFIXES = ("module.", "_orig_mod.", "model.")
_CONTAINER_KEYS = ("state_dict", "model_state_dict", "model", "net", "netC")
# Reading a checkpoint holds all of it in memory. The largest architecture Forensight builds (ConvNeXt V2
# Base, 88 M parameters) is 350 MB in float32 and about 1 GB with a training script's optimizer state, so
# 4 GiB leaves room for float64 and extras while keeping a mislabelled disk image from exhausting memory.
MAX_CHECKPOINT_BYTES = 4 << 30


class CheckpointError(ValueError):
    """A file that is not the checkpoint it claims to be, with the reason."""


def check_checkpoint_file(path: Path) -> int:
    """The size of a checkpoint file, checked before anything opens it: a regular file (a FIFO would block
    forever, /dev/zero never ends) of at most MAX_CHECKPOINT_BYTES."""
    path = Path(path)
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise CheckpointError(f"{path} does not exist") from None
    except OSError as exc:
        raise CheckpointError(f"cannot read {path}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(info.st_mode):
        raise CheckpointError(f"{path} is {file_kind(info.st_mode)}, not a checkpoint file")
    _check_size(path.name, info.st_size)
    return info.st_size


def _check_size(name: str, size: int) -> None:
    if size > MAX_CHECKPOINT_BYTES:
        limit = f"{MAX_CHECKPOINT_BYTES:,} bytes ({MAX_CHECKPOINT_BYTES / (1 << 30):g} GiB)"
        raise CheckpointError(f"{name} holds {size:,} bytes, more than the {limit} Forensight reads as a "
                              "checkpoint; refusing to load it into memory")


def read_safetensors(path: Path) -> StateDict:
    check_checkpoint_file(path)
    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{Path(path).name} is not a valid safetensors file ({exc})") from None


def write_safetensors(state: StateDict, path: Path) -> None:
    save_file({k: v.detach().cpu().contiguous() for k, v in state.items()}, str(path))


def read_torch_checkpoint(path: Path) -> StateDict:
    """A .pth/.pt/.bin file as a flat state dict, refusing anything that is not plain tensors."""
    return flatten_state(read_torch_object(path), Path(path).name)


def read_torch_object(path: Path) -> object:
    """What a .pth/.pt/.bin file holds (dicts, lists, numbers and tensors only), before any unwrapping."""
    path = Path(path)
    check_checkpoint_file(path)
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as archive:  # what it unpacks to, not what it occupies on disk
                unpacked = sum(member.file_size for member in archive.infolist())
        except (zipfile.BadZipFile, OSError, ValueError) as exc:
            raise CheckpointError(f"{path.name} is not a readable PyTorch checkpoint ({exc})") from None
        _check_size(path.name, unpacked)
    elif not _looks_like_pickle(path):
        raise CheckpointError(f"{path.name} is not a PyTorch checkpoint (neither a torch zip archive nor a pickle)")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"refused {path.name}: it holds Python objects other than tensors, which could run code when "
            f"loaded. Export a plain state_dict or safetensors file instead. ({str(exc).splitlines()[0]})"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as exc:
        raise CheckpointError(f"{path.name} is not a readable PyTorch checkpoint ({exc})") from None
    return obj


def _looks_like_pickle(path: Path) -> bool:
    with open(path, "rb") as handle:
        head = handle.read(2)
    return len(head) == 2 and head[0] == 0x80 and 2 <= head[1] <= 5


def flatten_state(obj: object, name: str) -> StateDict:
    for _ in range(3):  # unwrap {'model': {...}} / {'state_dict': {...}} as training scripts save them
        if isinstance(obj, dict) and not _is_tensor_dict(obj):
            inner = next((obj[k] for k in _CONTAINER_KEYS if isinstance(obj.get(k), dict)), None)
            if inner is None:
                break
            obj = inner
    if not isinstance(obj, dict) or not _is_tensor_dict(obj):
        raise CheckpointError(f"{name} holds no state dict of tensors")
    state = dict(obj)
    for prefix in _PREFIXES:
        renamed = {key.removeprefix(prefix): value for key, value in state.items()}
        if len(renamed) == len(state):  # a wrapper's prefix goes only when no two tensors would share a name
            state = renamed
    return state


def _is_tensor_dict(obj: dict) -> bool:
    return bool(obj) and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())


def infer_architecture(state: StateDict) -> tuple[str, int]:
    """The registry architecture whose parameter names and shapes match, and its number of logits."""
    for name, arch in ARCHITECTURES.items():
        head = state.get(arch.head_weight)
        if arch.external or head is None or head.ndim != 2 or head.shape[0] not in (1, 2):
            continue  # an external network (a foundation-model tower) is rebuilt from its card, never guessed
        with torch.device("meta"):  # shapes only: no memory, no initialisation cost
            reference = build_model(name, head.shape[0]).state_dict()
        if reference.keys() == state.keys() and all(reference[k].shape == state[k].shape for k in reference):
            return name, int(head.shape[0])
    raise CheckpointError("its weights match none of the known architectures "
                          f"({', '.join(ARCHITECTURES)}); pass --arch to see what differs")


def describe_mismatch(expected: dict[str, tuple], state: StateDict) -> str | None:
    """What keeps `state` from loading into a network with these tensor shapes, in one phrase (None: it fits)."""
    missing = sorted(expected.keys() - state.keys(), key=list(expected).index)
    unexpected = sorted(state.keys() - expected.keys())
    wrong = [k for k in expected if k in state and tuple(state[k].shape) != tuple(expected[k])]
    parts = []
    if missing:
        parts.append(f"{len(missing)} tensor(s) missing (e.g. {', '.join(missing[:3])})")
    if wrong:
        k = wrong[0]
        parts.append(f"{len(wrong)} of the wrong shape (e.g. {k}: {tuple(state[k].shape)} instead of "
                     f"{tuple(expected[k])})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected (e.g. {', '.join(unexpected[:3])})")
    return "; ".join(parts) or None


def module_from_state(card: ModelCard, state: StateDict) -> torch.nn.Module:
    """Build the card's architecture and load the weights strictly, explaining any mismatch."""
    arch = get_architecture(card.architecture)
    if arch.external:  # rebuilt from the card (a Hugging Face config): the file holds the wrapped model's weights
        from models.families import external_module

        module = external_module(card)
    else:
        head = state.get(arch.head_weight)
        if head is not None and head.ndim == 2 and head.shape[0] != card.num_logits:
            raise CardError(f"the weights have {head.shape[0]} output logit(s) but the card says {card.num_logits}")
        module = build_model(card.architecture, card.num_logits)
    target = getattr(module, "weights_module", module)
    expected = target.state_dict()
    mismatch = describe_mismatch({k: tuple(v.shape) for k, v in expected.items()}, state)
    if mismatch:
        raise CheckpointError(f"the weights do not fit {card.architecture}: {mismatch}")
    state = {k: v.to(expected[k].dtype) for k, v in state.items()}  # float64 beyond float32's range → inf
    broken = first_non_finite(state)
    if broken is not None:
        raise CheckpointError(f"weights hold NaN or infinite values (e.g. in {broken}): refusing a model that "
                              "would score NaN")
    target.load_state_dict(state, strict=True)
    return module.eval()


def first_non_finite(state: StateDict) -> str | None:
    """The first tensor holding NaN or ±inf: such weights turn every score into NaN."""
    for key, value in state.items():
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            return key
    return None
