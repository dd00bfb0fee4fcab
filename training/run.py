"""What every training run shares, whichever trainer runs it (the gradient-descent loop in training/trainer.py or
the linear probe in training/probe.py): the events it sends and the result it returns, seeding, the data split,
and the card's account of the data and the validation scores.

It lives apart from both trainers so that neither has to import the other to reach it."""
from __future__ import annotations

import math
import os
import random
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np
import torch

from models.card import ModelCard
from models.engine import CancelToken
from training.data import Dataset, Sample, balanced, check_integrity, discover_dataset, split_train_val
from training.recipes import Recipe

# The card's caveat for any model scored only on its own data's validation split
OWN_DATA_LIMITATIONS = ("Measured only on a validation split of its own training data; evaluate it on data like "
                        "your casework before relying on it.")
# The validation scores a card keeps: enough to compare models at a glance, the full suite is `forensight evaluate`
CARD_METRICS = ("n", "accuracy", "balanced_accuracy", "roc_auc", "average_precision", "f1_fake", "mcc", "log_loss")


@dataclass
class TrainingEvent:
    # started, message, epoch_start, batch, epoch_end, checkpoint, early_stop, cancelled, finished; progress (a
    # linear probe's feature batches: batch of batches)
    kind: str
    epoch: int = 0  # 1-based
    epochs: int = 0
    batch: int = 0
    batches: int = 0
    values: dict = field(default_factory=dict)
    message: str = ""


@dataclass
class TrainingResult:
    status: str  # finished | early_stopped | target_reached | cancelled
    run_dir: Path
    best_epoch: int | None
    history: list[dict]
    card: ModelCard | None  # complete card for the best weights (None when nothing finished an epoch)
    state: dict | None  # best weights

    @property
    def completed(self) -> bool:
        return self.status != "cancelled"


class PreparedData(NamedTuple):
    dataset: Dataset  # after the integrity check
    train: list[Sample]
    val: list[Sample]


def message_sender(on_event: Callable[[TrainingEvent], None]) -> Callable[[str], None]:
    """A plain-text note to the user, sent as a `message` event."""
    return lambda message: on_event(TrainingEvent("message", message=message))


def seed_everything(seed: int, deterministic: bool) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:
        # cuBLAS is only repeatable with a fixed workspace; it reads this when CUDA first initialises
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False


def prepare_data(recipe: Recipe, data: Dataset | Path, emit: Callable[[str], None],
                 cancel: CancelToken | None = None) -> PreparedData:
    """The checked dataset and the recipe's training and validation samples: the data's own split where it has one,
    else a seeded split; groups left out, classes balanced as the recipe asks."""
    dataset = data if isinstance(data, Dataset) else discover_dataset(Path(data))
    dataset = check_integrity(dataset, cancel=cancel)
    if dataset.excluded:
        emit(f"{len(dataset.excluded)} corrupt file(s) excluded, e.g. {dataset.excluded[0][0]}: "
             f"{dataset.excluded[0][1]}")
    if "train" in dataset.splits:
        train, val = dataset.split("train"), dataset.split("val")
        if not val:
            train, val = split_train_val(train, recipe.val_fraction, recipe.seed, recipe.split_by_group)
    else:
        pool = [s for s in dataset.samples if s.split != "test"]
        train, val = split_train_val(pool, recipe.val_fraction, recipe.seed, recipe.split_by_group)
    excluded_groups = {g.strip() for g in recipe.exclude_groups.split(",") if g.strip()}
    if excluded_groups:
        unknown = excluded_groups - {s.group for s in dataset.samples}
        if unknown:
            raise ValueError(f"exclude_groups names groups the data does not have: {', '.join(sorted(unknown))}")
        train = [s for s in train if s.group not in excluded_groups]
        val = [s for s in val if s.group not in excluded_groups]
        emit(f"left out of training and validation: {', '.join(sorted(excluded_groups))}")
    if recipe.balance or recipe.max_per_class:
        train = balanced(train, recipe.seed, recipe.max_per_class)
    if not train or not val or len({s.label for s in train}) < 2:
        raise ValueError(f"{dataset.root}: too few images to train ({len(train)} train, {len(val)} validation); "
                         "both classes are needed in each")
    return PreparedData(dataset, train, val)


def validation_metrics(labels: list[int], p_fake: list[float]) -> dict:
    """The card's validation scores (CARD_METRICS) at the 0.5 threshold."""
    from training.metrics import compute_metrics  # sklearn loads only when a card is written

    metrics = compute_metrics(labels, p_fake, threshold=0.5)
    return {k: metrics.get(k) for k in CARD_METRICS}


def describe_data(data: PreparedData) -> tuple[str, dict]:
    """The card's account of the data: its `trained_on` line (how many images, from which folder, how many of each
    class) and the provenance record (the root, what each split held, the corrupt files left out)."""
    dataset = data.dataset
    summary = dataset.summary()
    per_class = ", ".join(f"{n} {name}" for name, n in sorted(summary["per_class"].items(), reverse=True))
    trained_on = f"{summary['count']} images from {dataset.root.name} ({per_class})"
    record = {"root": str(dataset.root), "all": summary, "train": dataset.summary(data.train),
              "val": dataset.summary(data.val), "excluded": dataset.excluded[:100]}
    return trained_on, record


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def json_safe(row: dict) -> dict:
    """A learning-curve row the card can store: NaN (a loss over no images) becomes None."""
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
