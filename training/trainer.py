"""The trainer: fit(recipe, data, on_event, cancel). Events out, cancel in — the CLI prints the events, the
desktop wizard turns them into signals. The loop is generic; the recipe is plain data."""
from __future__ import annotations

import math
import os
import random
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from torch.utils.data import Dataset as TorchDataset

from models.card import InputSpec, ModelCard
from models.checkpoints import read_safetensors, write_safetensors
from models.device import select_device
from models.engine import CancelToken, probabilities
from models.imaging import ImageDecodeError, decode, read_file
from models.library import LoadedModel, ModelLibrary
from models.pretrained import load_imagenet
from models.preprocess import geometry_transform
from models.registry import build_model, get_architecture
from training.augment import BlurJpeg, eval_policy_for, to_float, train_transform
from training.data import Dataset, Sample, balanced, check_integrity, discover_dataset, split_train_val
from training.recipes import Recipe, is_probe

LAST, BEST = "last.pt", "best.safetensors"


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


class ImageFolderSet(TorchDataset):
    """Samples → (uint8 image tensor, label). Decoding is the scan's, so training sees what scanning sees."""

    def __init__(self, samples: list[Sample], transform: Callable, draft: int | None = None) -> None:
        self.samples, self.transform, self.draft = samples, transform, draft

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        sample = self.samples[index]
        try:
            image = decode(read_file(sample.path)[0], draft_size=self.draft).image
        except ImageDecodeError as exc:  # vanished or changed since the integrity check
            raise RuntimeError(f"{sample.path}: {exc}") from None
        return self.transform(image), sample.label


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
                 cancel: CancelToken | None = None) -> tuple[Dataset, list, list]:
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
    return dataset, train, val


def input_spec_for(recipe: Recipe) -> InputSpec:
    arch = get_architecture(recipe.architecture)
    size = recipe.input_size or arch.input_size
    resize = recipe.resize or (arch.resize_size if size == arch.input_size else round(size * 8 / 7))
    spec = InputSpec(policy=eval_policy_for(recipe.train_policy), size=size, resize=resize, mean=arch.mean,
                     std=arch.std)
    spec = replace(spec, **recipe.scan_input)  # how scans of the trained model look at a picture
    if spec.policy == "full":  # a size the network refuses must stop the job before training, not after it
        ModelCard(id="recipe", name="recipe", architecture=recipe.architecture, num_logits=recipe.num_logits,
                  input=spec).validate()
    return spec


def build_start_model(recipe: Recipe, emit: Callable[[str], None], library: ModelLibrary | None) -> tuple[nn.Module, str]:
    if recipe.pretrained not in ("imagenet", "none"):
        loaded: LoadedModel = (library or ModelLibrary()).load(recipe.pretrained)
        if loaded.card.architecture != recipe.architecture or loaded.card.num_logits != recipe.num_logits:
            raise ValueError(f"cannot fine-tune {recipe.pretrained}: it is {loaded.card.architecture} with "
                             f"{loaded.card.num_logits} logit(s), the recipe asks for {recipe.architecture} with "
                             f"{recipe.num_logits}; pass --set architecture=... num_logits=...")
        emit(f"fine-tuning from library model {recipe.pretrained}")
        return loaded.module, f"library:{recipe.pretrained}:{loaded.card.weights_sha256}"
    module = build_model(recipe.architecture, recipe.num_logits)
    if recipe.pretrained == "imagenet":
        if load_imagenet(module, recipe.architecture):
            emit(f"starting from the ImageNet weights of {recipe.architecture} found offline")
            return module, "imagenet"
        emit(f"no ImageNet weights for {recipe.architecture} exist offline: training from scratch")
    return module, "none"


def fit(recipe: Recipe, data: Dataset | Path, *, run_dir: Path, on_event: Callable[[TrainingEvent], None] | None = None,
        cancel: CancelToken | None = None, resume: bool = False, device: str | None = None,
        model_id: str | None = None, library: ModelLibrary | None = None) -> TrainingResult:
    if is_probe(recipe):  # a linear head on a frozen tower's cached features: the same entry point for CLI and GUI
        from training.probe import fit_probe

        return fit_probe(recipe, data, run_dir=run_dir, on_event=on_event, cancel=cancel, device=device,
                         model_id=model_id, library=library)
    cancel = cancel or CancelToken()
    on_event = on_event or (lambda event: None)

    def emit(message: str) -> None:
        on_event(TrainingEvent("message", message=message))

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    seed_everything(recipe.seed, recipe.deterministic)
    dev = select_device(device)
    dataset, train, val = prepare_data(recipe, data, emit, cancel)
    if cancel.cancelled:  # stopped while the files were being checked: nothing was trained
        on_event(TrainingEvent("cancelled", message="cancelled while checking the data; nothing was trained"))
        return TrainingResult("cancelled", run_dir, None, [], None, None)
    spec = input_spec_for(recipe)
    module, start_from = build_start_model(recipe, emit, library)
    module.to(dev)

    augment = BlurJpeg(recipe.blur_prob, recipe.jpeg_prob, recipe.blur_sigma_max, recipe.jpeg_quality_min,
                       recipe.jpeg_quality_max) if (recipe.blur_prob or recipe.jpeg_prob) else None
    draft = spec.resize if recipe.train_policy != "random_crop" else None
    train_set = ImageFolderSet(train, train_transform(recipe.train_policy, spec.size, spec.resize, augment,
                                                      recipe.flip, spec.small_image), draft)
    val_set = ImageFolderSet(val, geometry_transform(spec), draft)
    generator = torch.Generator().manual_seed(recipe.seed)
    loader_args = dict(batch_size=recipe.batch_size, num_workers=recipe.workers,
                       pin_memory=dev.type == "cuda", persistent_workers=False)
    train_loader = DataLoader(train_set, shuffle=True, generator=generator, drop_last=len(train) > recipe.batch_size,
                              **loader_args)
    val_loader = DataLoader(val_set, shuffle=False, **loader_args)

    optimizer = _optimizer(recipe, module)
    scheduler = (torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, recipe.epochs))
                 if recipe.scheduler == "cosine" else None)
    use_amp = recipe.amp and dev.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    loss_fn = _loss(recipe.num_logits)

    start_epoch, history, best_value, best_epoch, stale = 0, [], None, None, 0
    last_path, best_path = run_dir / LAST, run_dir / BEST
    if resume:
        if not last_path.is_file():
            raise FileNotFoundError(f"nothing to resume in {run_dir}: {LAST} is missing")
        state = torch.load(last_path, map_location="cpu", weights_only=True)
        module.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if scheduler and state.get("scheduler"):
            scheduler.load_state_dict(state["scheduler"])
        start_epoch, history = int(state["epoch"]), list(state["history"])
        best_value, best_epoch, stale = state["best_value"], state["best_epoch"], int(state["stale"])
        generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        emit(f"resuming at epoch {start_epoch + 1} of {recipe.epochs}")

    def save_last(epoch_done: int) -> None:
        torch.save({"model": module.state_dict(), "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict() if scheduler else None, "epoch": epoch_done,
                    "history": history, "best_value": best_value, "best_epoch": best_epoch, "stale": stale,
                    "generator": generator.get_state(), "torch_rng": torch.get_rng_state(),
                    "recipe": recipe.to_dict()}, last_path)

    on_event(TrainingEvent("started", epochs=recipe.epochs, values={
        "train": len(train), "val": len(val), "device": str(dev), "start_from": start_from}))
    status = "finished"
    for epoch in range(start_epoch, recipe.epochs):
        batches = len(train_loader) if recipe.max_batches_per_epoch is None else min(
            len(train_loader), recipe.max_batches_per_epoch)
        on_event(TrainingEvent("epoch_start", epoch + 1, recipe.epochs, batches=batches))
        generator_state = generator.get_state()
        module.train()
        seen, loss_sum, correct, started = 0, 0.0, 0, time.perf_counter()
        for index, (images, labels) in enumerate(train_loader):
            if index >= batches:
                break
            if cancel.cancelled:
                break
            x = to_float(images.to(dev, non_blocking=True), spec.mean, spec.std)
            y = labels.to(dev)
            with torch.autocast("cuda", dtype=torch.float16, enabled=use_amp):
                logits = module(x)
                loss = loss_fn(logits, y)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            with torch.no_grad():
                predicted = (probabilities(logits.float(), recipe.num_logits) >= 0.5).long()
                correct += int((predicted == y).sum())
            seen += len(y)
            loss_sum += float(loss.detach()) * len(y)
            on_event(TrainingEvent("batch", epoch + 1, recipe.epochs, index + 1, batches, values={
                "loss": loss_sum / seen, "accuracy": correct / seen,
                "images_per_s": seen / max(time.perf_counter() - started, 1e-9)}))
        validated = None if cancel.cancelled else _validate(module, val_loader, loss_fn, recipe.num_logits, spec,
                                                            dev, use_amp, cancel)
        if validated is None:  # stopped while training or validating this epoch
            generator.set_state(generator_state)  # a resumed run replays this epoch from its start
            save_last(epoch)
            status = "cancelled"
            on_event(TrainingEvent("cancelled", epoch + 1, recipe.epochs, message=(
                f"cancelled during epoch {epoch + 1}; best checkpoint kept"
                + (f" (epoch {best_epoch})" if best_epoch else "") + f"; resume from {run_dir}")))
            break
        val_loss, val_acc, _, _ = validated
        lr = optimizer.param_groups[0]["lr"]
        if scheduler:
            scheduler.step()
        row = {"epoch": epoch + 1, "train_loss": loss_sum / max(seen, 1), "train_accuracy": correct / max(seen, 1),
               "val_loss": val_loss, "val_accuracy": val_acc, "lr": lr}
        history.append(row)
        on_event(TrainingEvent("epoch_end", epoch + 1, recipe.epochs, values=row))
        value = val_loss if recipe.select_on == "val_loss" else -val_acc
        if best_value is None or value < best_value - 1e-6:
            best_value, best_epoch, stale = value, epoch + 1, 0
            write_safetensors(module.state_dict(), best_path)
            on_event(TrainingEvent("checkpoint", epoch + 1, recipe.epochs, message=f"best so far: epoch {epoch + 1}"))
        else:
            stale += 1
        save_last(epoch + 1)
        if recipe.target_accuracy is not None and val_acc >= recipe.target_accuracy:
            status = "target_reached"
            on_event(TrainingEvent("early_stop", epoch + 1, recipe.epochs,
                                   message=f"validation accuracy {val_acc:.3f} reached the target "
                                           f"{recipe.target_accuracy:.3f}"))
            break
        if recipe.patience is not None and stale >= recipe.patience:
            status = "early_stopped"
            on_event(TrainingEvent("early_stop", epoch + 1, recipe.epochs,
                                   message=f"no improvement of {recipe.select_on} for {stale} epochs"))
            break

    if best_epoch is None or not best_path.is_file():
        return TrainingResult(status, run_dir, None, history, None, None)
    best_state = read_safetensors(best_path)
    module.load_state_dict(best_state)
    card = None
    if status != "cancelled":
        _, _, y_true, p_fake = _validate(module, val_loader, loss_fn, recipe.num_logits, spec, dev, use_amp)
        card = _card(recipe, model_id or recipe.name, spec, dataset, train, val, best_epoch, status, history,
                     y_true, p_fake, start_from, dev)
        on_event(TrainingEvent("finished", best_epoch, recipe.epochs, values=card.metrics.get("validation", {}),
                               message=f"{status}: best epoch {best_epoch}"))
    return TrainingResult(status, run_dir, best_epoch, history, card, {k: v.cpu() for k, v in best_state.items()})


def _optimizer(recipe: Recipe, module: nn.Module) -> torch.optim.Optimizer:
    params = [p for p in module.parameters() if p.requires_grad]
    if recipe.optimizer == "adam":
        return torch.optim.Adam(params, lr=recipe.lr, weight_decay=recipe.weight_decay)
    if recipe.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=recipe.lr, weight_decay=recipe.weight_decay)
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(params, lr=recipe.lr, momentum=0.9, weight_decay=recipe.weight_decay)
    raise ValueError(f"unknown optimizer {recipe.optimizer!r}: adam, adamw or sgd")


def _loss(num_logits: int) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    if num_logits == 1:
        bce = nn.BCEWithLogitsLoss()
        return lambda logits, y: bce(logits.reshape(-1).float(), y.float())
    ce = nn.CrossEntropyLoss()
    return lambda logits, y: ce(logits.float(), y)


@torch.no_grad()
def _validate(module, loader, loss_fn, num_logits, spec, dev, use_amp, cancel: CancelToken | None = None):
    """(loss, accuracy, labels, P(fake)) over the loader; None when `cancel` is set midway."""
    module.eval()
    losses, y_true, p_fake = 0.0, [], []
    for images, labels in loader:
        if cancel is not None and cancel.cancelled:
            return None
        x = to_float(images.to(dev), spec.mean, spec.std)
        y = labels.to(dev)
        with torch.autocast("cuda", dtype=torch.float16, enabled=use_amp):
            logits = module(x)
        losses += float(loss_fn(logits, y)) * len(y)
        p_fake += probabilities(logits.float(), num_logits).cpu().tolist()
        y_true += labels.tolist()
    n = max(len(y_true), 1)
    accuracy = sum(int(p >= 0.5) == t for p, t in zip(p_fake, y_true)) / n
    return losses / n, accuracy, y_true, p_fake


def _card(recipe, model_id, spec, dataset, train, val, best_epoch, status, history, y_true, p_fake, start_from,
          dev) -> ModelCard:
    from training.metrics import compute_metrics

    metrics = compute_metrics(y_true, p_fake, threshold=0.5)
    compact = {k: metrics.get(k) for k in ("n", "accuracy", "balanced_accuracy", "roc_auc", "average_precision",
                                           "f1_fake", "mcc", "log_loss")}
    summary = dataset.summary()
    return ModelCard(
        id=model_id, name=model_id, architecture=recipe.architecture, num_logits=recipe.num_logits, fake_index=1,
        input=spec, threshold=0.5, inconclusive_band=(0.3, 0.7),
        description=recipe.description or f"Trained with the {recipe.name} recipe",
        trained_on=f"{summary['count']} images from {dataset.root.name} ("
                   + ", ".join(f"{n} {name}" for name, n in sorted(summary["per_class"].items(), reverse=True)) + ")",
        limitations="Measured only on a validation split of its own training data; evaluate it on data like "
                    "your casework before relying on it.",
        provenance={
            "recipe": recipe.to_dict(), "start_from": start_from, "status": status, "best_epoch": best_epoch,
            "trained_at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "device": str(dev),
            "data": {"root": str(dataset.root), "all": summary, "train": dataset.summary(train),
                     "val": dataset.summary(val), "excluded": dataset.excluded[:100]},
        },
        metrics={"validation": compact},
        learning_curve=[{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
                        for row in history],
    )
