"""Linear probes on a frozen foundation-model image tower: the `linear_probe` recipe (UnivFD's method, on any
tower and the user's own data).

training.trainer.fit hands such a recipe here, so `forensight train` and the training wizard run the very same
steps: load the tower (an OpenCLIP weights file, or the tower of a library model such as an imported UnivFD) →
its image embeddings of every picture, cached on disk (training/features.py) → a logistic regression on the
training split, its L2 strength chosen on the validation split → a `tower_linear` library model (tower + head in
one safetensors file) that scans, explains and is evaluated like any other.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from models.card import InputSpec, ModelCard
from models.checkpoints import StateDict
from models.device import select_device
from models.engine import CancelToken
from models.families import tower_linear, towers
from models.library import ModelLibrary
from training.calibration import log_loss
from training.data import Dataset
from training.features import Extracted, FeatureCache, Throttle, cache_key, extract
from training.recipes import Recipe
from training.run import (OWN_DATA_LIMITATIONS, PreparedData, TrainingEvent, TrainingResult, describe_data,
                          json_safe, message_sender, prepare_data, seed_everything, utc_now, validation_metrics)

C_GRID = (0.01, 0.1, 1.0, 10.0)  # inverse L2 strengths tried on the validation split (features standardised)


@dataclass
class Tower:
    state: StateDict  # the image tower's tensors
    config: dict[str, Any]  # models/families/towers.py config
    sha256: str  # the tower file's SHA-256: what the feature cache is keyed by
    source: str  # the file's name, or "library model ID"


def load_tower(recipe: Recipe, library: ModelLibrary) -> Tower:
    """The recipe's tower: a weights file, or the tower inside a library model (UnivFD, an earlier probe)."""
    if not recipe.tower:
        raise ValueError("the linear_probe recipe needs a tower: --set tower=FILE (an OpenCLIP weights file such as "
                         "open_clip_pytorch_model.bin) or the id of a library model that has one")
    path = Path(recipe.tower).expanduser()
    activation = None if recipe.tower_activation == "auto" else recipe.tower_activation
    if path.is_file():
        visual, config, sha = towers.read_tower(path, activation)
        return Tower(visual, config, sha, path.name)
    try:
        entry = library.get(recipe.tower)
    except LookupError:
        raise ValueError(f"tower {recipe.tower!r} is neither a file nor a library model") from None
    if entry.card.architecture != "tower_linear":
        raise ValueError(f"library model {entry.card.id} ({entry.card.architecture}) has no foundation-model tower")
    module = library.load(entry).module
    config = dict(entry.card.family_config["tower"])
    sha = entry.card.family_config.get("tower_sha256") or entry.card.weights_sha256
    return Tower(module.tower.state_dict(), config, sha, f"library model {entry.card.id}")


def probe_input(recipe: Recipe, config: dict[str, Any]) -> InputSpec:
    """UnivFD's input (the tower's size, central pixels at native resolution, CLIP mean/std), with the recipe's
    input.* overrides; the features are computed with exactly what scans will use."""
    spec = replace(towers.native_crop_input(config), **recipe.scan_input)
    ModelCard(id="probe", name="probe", architecture="tower_linear", num_logits=1, input=spec).validate()
    return spec


def fit_probe(recipe: Recipe, data: Dataset | Path, *, run_dir: Path, on_event: Callable | None = None,
              cancel: CancelToken | None = None, device: str | None = None, model_id: str | None = None,
              library: ModelLibrary | None = None) -> TrainingResult:
    cancel, on_event = cancel or CancelToken(), on_event or (lambda event: None)
    emit = message_sender(on_event)
    library = library or ModelLibrary()
    run_dir = Path(run_dir)
    seed_everything(recipe.seed, recipe.deterministic)
    dev = select_device(device)
    prepared = prepare_data(recipe, data, emit, cancel)
    train, val = prepared.train, prepared.val
    tower = load_tower(recipe, library)
    spec = probe_input(recipe, tower.config)
    on_event(TrainingEvent("started", epochs=1, values={"train": len(train), "val": len(val), "device": str(dev),
                                                        "start_from": tower.source}))
    emit(f"tower: {towers.describe_tower(tower.config)} from {tower.source}")
    cache = FeatureCache(library.home / "cache" / "features", cache_key(tower.sha256, tower.config, spec))
    module = towers.build_tower(tower.config)
    module.load_state_dict(tower.state)
    progress = Throttle(lambda done, total: on_event(TrainingEvent("progress", batch=done, batches=total,
                                                                   message="image features")))
    got = extract(module, train + val, spec, cache, device=dev, batch_size=recipe.batch_size,
                  workers=recipe.workers, progress=progress, cancelled=lambda: cancel.cancelled)
    emit(f"features: {got.computed} computed, {got.cached} reused from the cache ({cache.path})")
    if got.cancelled:
        on_event(TrainingEvent("cancelled", message="cancelled while computing features; those done are cached "
                                                    "and the next run reuses them"))
        return TrainingResult("cancelled", run_dir, None, [], None, None)
    x = got.features.double().numpy()
    y = np.array([s.label for s in train + val])
    head = fit_head(x[:len(train)], y[:len(train)], x[len(train):], y[len(train):], recipe)
    row = {"epoch": 1, **head.scores, "lr": 0.0}
    on_event(TrainingEvent("epoch_end", 1, 1, values=row))
    card = probe_card(recipe, model_id=model_id or recipe.name, spec=spec, tower=tower, data=prepared, head=head,
                      features=got, cache=cache, device=dev)
    on_event(TrainingEvent("finished", 1, 1, values=card.metrics["validation"],
                           message=f"probe fitted (C = {head.c:g})"))
    state = tower_linear.combined_state(tower.state, torch.from_numpy(head.weight), torch.from_numpy(head.bias))
    return TrainingResult("finished", run_dir, 1, [row], card, state)


@dataclass
class Head:
    weight: np.ndarray  # (D,) float32, on the raw features
    bias: np.ndarray  # (1,)
    c: float
    val_p: np.ndarray
    scores: dict[str, float]


def fit_head(x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray, y_val: np.ndarray,
             recipe: Recipe) -> Head:
    """Logistic regression on centred, scaled features (balanced classes); centring and scale are folded into
    the linear layer so the library model applies it to raw tower outputs. One scale for all dimensions, not one
    per dimension: a nearly constant dimension would otherwise get a huge weight, and the tiny differences of
    another device or of half precision in its feature would swing P(fake)."""
    from sklearn.linear_model import LogisticRegression

    mean = x_train.mean(0)
    std = np.full_like(mean, float(np.sqrt((x_train.std(0) ** 2).mean())) + 1e-6)
    z_train, z_val = (x_train - mean) / std, (x_val - mean) / std
    best = None
    for c in ([recipe.probe_c] if recipe.probe_c else C_GRID):
        model = LogisticRegression(C=c, class_weight="balanced", max_iter=5000, random_state=recipe.seed)
        model.fit(z_train, y_train)
        loss = log_loss(y_val, model.predict_proba(z_val)[:, 1])
        if best is None or loss < best[0] - 1e-9:
            best = (loss, c, model)
    _, c, model = best
    weight = model.coef_[0] / std
    bias = np.array([model.intercept_[0] - float((model.coef_[0] * mean / std).sum())])
    p_train, p_val = _sigmoid(x_train @ weight + bias[0]), _sigmoid(x_val @ weight + bias[0])
    scores = {"train_loss": log_loss(y_train, p_train), "train_accuracy": float(((p_train >= 0.5) == y_train).mean()),
              "val_loss": log_loss(y_val, p_val), "val_accuracy": float(((p_val >= 0.5) == y_val).mean())}
    return Head(weight.astype(np.float32), bias.astype(np.float32), float(c), p_val, scores)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -60, 60)))


def probe_card(recipe: Recipe, *, model_id: str, spec: InputSpec, tower: Tower, data: PreparedData, head: Head,
               features: Extracted, cache: FeatureCache, device: torch.device) -> ModelCard:
    """The probe's card: tower and head provenance, validation scores, and how the features were obtained."""
    trained_on, data_record = describe_data(data)
    return ModelCard(
        id=model_id, name=model_id, architecture="tower_linear", num_logits=1, input=spec, family="probe",
        family_config={**tower_linear.tower_provenance(tower.config, tower.source, tower.sha256),
                       "explain": towers.explain_layer(tower.config)},
        description=f"Linear probe on {towers.describe_tower(tower.config)} from {tower.source}: {recipe.description}",
        trained_on=trained_on, limitations=OWN_DATA_LIMITATIONS,
        provenance={
            "recipe": recipe.to_dict(), "start_from": tower.source, "status": "finished", "best_epoch": 1,
            "trained_at": utc_now(), "device": str(device),
            "probe": {"c": head.c, "features": int(head.weight.shape[0]), "computed": features.computed,
                      "cached": features.cached, "feature_cache": str(cache.path)},
            "data": data_record,
        },
        metrics={"validation": validation_metrics([s.label for s in data.val], head.val_p.tolist())},
        learning_curve=[json_safe({"epoch": 1, **head.scores})],
    )
