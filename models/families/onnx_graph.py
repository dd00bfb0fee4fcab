"""Any ONNX image classifier, run by onnxruntime (the CUDA provider when onnxruntime-gpu offers it and the scan
runs on CUDA, else the CPU).

An ONNX file carries its network but not its preprocessing, so the input is given on import (--policy, --size,
--resize, --mean, --std, --interpolation, or --input-json FILE with the same fields) and kept on the card; what
was not given is said on the card. The .onnx file itself is the card's weights file (its SHA-256 on the card).
The graph must take one float tensor N×3×H×W and return one logit (sigmoid) or two (softmax) per image.
ONNX graphs have no gradients here, so their explanation is an occlusion map (models/explain.py).
"""
from __future__ import annotations

import threading
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from models.card import CardError, InputSpec, ModelCard, model_id_from, sha256_file
from models.labels import band_around
from models.checkpoints import CheckpointError, check_checkpoint_file

SPEC_FIELDS = ("policy", "size", "resize", "mean", "std", "interpolation")
IMAGENET = {"mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225)}


def _providers(device_type: str) -> list[str]:
    import onnxruntime as ort

    available = ort.get_available_providers()
    if device_type == "cuda" and "CUDAExecutionProvider" in available:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def _session(path: Path, device_type: str = "cpu"):
    try:
        import onnxruntime as ort
    except ImportError:
        raise CheckpointError("onnxruntime is not installed: run the README's install command") from None
    options = ort.SessionOptions()
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), sess_options=options, providers=_providers(device_type))
    except Exception as exc:  # onnxruntime raises its own exception types for a file that is not a graph
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise CheckpointError(f"{Path(path).name} is not an ONNX graph onnxruntime can run ({first})") from None


class OnnxModule(nn.Module):
    """An ONNX graph behind a torch module: normalised float batch in, logits out (on the batch's device)."""

    def __init__(self, path: Path, input_name: str, output_name: str) -> None:
        super().__init__()
        self.path = Path(path)
        self.input_name, self.output_name = input_name, output_name
        self._sessions: dict[str, Any] = {}
        self._lock = threading.Lock()

    def session(self, device_type: str = "cpu"):
        with self._lock:
            if device_type not in self._sessions:
                self._sessions[device_type] = _session(self.path, device_type)
            return self._sessions[device_type]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        session = self.session(x.device.type)
        batch = x.detach().float().cpu().numpy()
        fixed = session.get_inputs()[0].shape[0]
        chunk = fixed if isinstance(fixed, int) and fixed > 0 else len(batch)
        outputs = [session.run([self.output_name], {self.input_name: batch[i:i + chunk]})[0]
                   for i in range(0, len(batch), chunk)]
        logits = np.concatenate(outputs, axis=0).reshape(len(batch), -1)
        return torch.from_numpy(logits.astype(np.float32)).to(x.device)

    def __deepcopy__(self, memo) -> "OnnxModule":
        return OnnxModule(self.path, self.input_name, self.output_name)

    def __getstate__(self):  # sessions and locks stay behind
        state = self.__dict__.copy()
        state["_sessions"], state["_lock"] = {}, None
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._lock = threading.Lock()


def _shown(value: Any) -> str:
    return str(list(value)) if isinstance(value, tuple) else str(value)


def load_module(card: ModelCard, weights: Path) -> OnnxModule:
    config = card.family_config
    module = OnnxModule(weights, config.get("input_name", ""), config.get("output_name", ""))
    session = module.session("cpu")
    if not module.input_name:
        module.input_name = session.get_inputs()[0].name
    if not module.output_name:
        module.output_name = session.get_outputs()[0].name
    return module.eval()


def spec_from_options(given: dict[str, Any] | None, graph_side: int | None) -> tuple[InputSpec, list[str]]:
    """The card's input from what the user gave; names what was assumed instead."""
    given = {k: v for k, v in (given or {}).items() if v is not None}
    unknown = sorted(set(given) - set(SPEC_FIELDS) - {f.name for f in fields(InputSpec)})
    if unknown:
        raise CardError(f"unknown input setting(s) {', '.join(unknown)}; known: {', '.join(SPEC_FIELDS)}")
    size = int(given.get("size") or graph_side or 224)
    if graph_side and size != graph_side:
        raise CheckpointError(f"the graph takes {graph_side}×{graph_side} pixels, not --size {size}")
    values: dict[str, Any] = {"policy": "resize", "size": size, **IMAGENET, "jpeg_draft": False}
    values.update({k: tuple(v) if isinstance(v, list) else v for k, v in given.items()})
    values["size"] = size
    values["resize"] = max(int(values.get("resize") or size), size)
    assumed = [name for name in ("policy", "mean", "std") if name not in given]
    spec = InputSpec(**values)
    spec.validate()
    return spec, assumed


def prepare(path: Path, *, model_id: str | None = None, name: str | None = None, fake_index: int | None = None,
            threshold: float | None = None, policy: str | None = None,
            input_spec: dict[str, Any] | None = None) -> ModelCard:
    from models import families

    path = Path(path)
    check_checkpoint_file(path)
    session = _session(path)
    inputs, outputs = session.get_inputs(), session.get_outputs()
    if len(inputs) != 1 or len(inputs[0].shape) != 4 or isinstance(inputs[0].shape[1], int) and inputs[0].shape[1] != 3:
        shown = ", ".join(f"{i.name} {i.shape}" for i in inputs)
        raise CheckpointError(f"{path.name} takes {shown}; Forensight needs one image tensor N×3×H×W")
    if "float" not in inputs[0].type:
        raise CheckpointError(f"{path.name} takes {inputs[0].type}; Forensight feeds normalised float pixels")
    height, width = inputs[0].shape[2:]
    graph_side = height if isinstance(height, int) and height == width else None
    if isinstance(height, int) and isinstance(width, int) and height != width:
        raise CheckpointError(f"{path.name} takes {height}×{width} pictures; Forensight feeds square inputs")
    given = dict(input_spec or {})
    if policy:
        given["policy"] = policy
    spec, assumed = spec_from_options(given, graph_side)
    module = OnnxModule(path, inputs[0].name, outputs[0].name)
    probe = torch.zeros(1, 3, spec.size, spec.size)
    try:
        result = module(probe)
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise CheckpointError(f"{path.name} does not run on a 1×3×{spec.size}×{spec.size} input ({first})") from None
    num_logits = int(result.shape[1])
    if num_logits not in (1, 2):
        raise CheckpointError(f"{path.name} returns {num_logits} values per image; Forensight needs 1 logit "
                              "(sigmoid) or 2 logits (softmax)")
    sha256 = sha256_file(path)
    stem = model_id_from(path.stem)
    card = ModelCard(
        id=model_id or stem or "onnx", name=name or path.stem, architecture="onnx", num_logits=num_logits,
        fake_index=1 if fake_index is None else fake_index, input=spec,
        threshold=0.5 if threshold is None else threshold, weights_file="model.onnx", family="onnx",
        family_config={"input_name": inputs[0].name, "output_name": outputs[0].name,
                       "input_shape": [d if isinstance(d, int) else str(d) for d in inputs[0].shape],
                       "input_given": {k: list(v) if isinstance(v, tuple) else v for k, v in given.items()}},
    )
    if threshold is not None:
        card.inconclusive_band = band_around(threshold)
    given_text = ", ".join(f"{k} {v}" for k, v in given.items()) or "nothing"
    note = (f"ONNX graph: input {inputs[0].name} {inputs[0].shape}, output {outputs[0].name} {outputs[0].shape}; "
            f"preprocessing given on import: {given_text}"
            + (f"; assumed (not given): {', '.join(assumed)}" if assumed else "") + ".")
    card = families.apply_catalogue(card, families.catalogue_entry("onnx"), None, path=path, sha256=sha256,
                                    how="file format", note=note)
    if assumed:
        card = replace(card, limitations=card.limitations + " Not given on import, so assumed: "
                       + ", ".join(f"{name} {_shown(getattr(spec, name))}" for name in assumed)
                       + "; check them against the model's documentation.")
    card.validate()
    return card

