"""The trainer: fit(recipe, data, on_event, cancel). Events out, cancel in — the CLI prints the events, the
desktop wizard turns them into signals. The loop is generic; the recipe is plain data.

Laid out like torchvision's classification reference: `train_one_epoch` and `evaluate` are separate steps, the
checkpoint (model, optimiser, scheduler, epoch, RNG states, recipe) is saved and restored in one place, the stop
rule is its own function, and `fit` only sets up the run and orchestrates them."""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, NamedTuple

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
from training.data import Dataset, Sample
from training.probe import fit_probe
from training.recipes import Recipe, is_probe
# TrainingEvent and TrainingResult are part of the trainer's interface: callers import them from here
from training.run import (OWN_DATA_LIMITATIONS, PreparedData, TrainingEvent, TrainingResult, describe_data,
                          json_safe, message_sender, prepare_data, seed_everything, utc_now, validation_metrics)

LAST, BEST = "last.pt", "best.safetensors"


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


def build_start_model(recipe: Recipe, emit: Callable[[str], None],
                      library: ModelLibrary | None) -> tuple[nn.Module, str]:
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


LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class Trainee:
    """The network under training and everything that steps it: what the epoch and evaluation steps use, and what
    the checkpoint saves and restores."""
    module: nn.Module
    spec: InputSpec  # the normalisation every batch gets
    num_logits: int
    loss_fn: LossFn
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler | None
    scaler: torch.amp.GradScaler
    device: torch.device
    use_amp: bool


@dataclass
class Progress:
    """Where a run stands after its last whole epoch. The checkpoint keeps it, so a resumed run carries on exactly
    where the interrupted one was."""
    epochs_done: int = 0
    history: list[dict] = field(default_factory=list)  # one row per epoch: train and validation scores, lr
    best_value: float | None = None  # the selection score of the best epoch; lower is better
    best_epoch: int | None = None  # 1-based
    stale: int = 0  # epochs since the best one


@dataclass
class Loop:
    """The fixed parts of one training run, set up once by `fit` and used by every epoch."""
    recipe: Recipe
    run_dir: Path
    trainee: Trainee
    train_loader: DataLoader
    val_loader: DataLoader
    generator: torch.Generator  # the training loader's shuffle order: checkpointed so a resume replays it
    on_event: Callable[[TrainingEvent], None]
    cancel: CancelToken


class Validation(NamedTuple):
    loss: float
    accuracy: float
    labels: list[int]
    p_fake: list[float]


def fit(recipe: Recipe, data: Dataset | Path, *, run_dir: Path, on_event: Callable[[TrainingEvent], None] | None = None,
        cancel: CancelToken | None = None, resume: bool = False, device: str | None = None,
        model_id: str | None = None, library: ModelLibrary | None = None) -> TrainingResult:
    """Train the recipe on `data`, keeping checkpoints in run_dir (resume: carry on from its last.pt). The result
    holds the best epoch's weights and their card."""
    if is_probe(recipe):  # a linear head on a frozen tower's cached features: the same entry point for CLI and GUI
        return fit_probe(recipe, data, run_dir=run_dir, on_event=on_event, cancel=cancel, device=device,
                         model_id=model_id, library=library)
    cancel = cancel or CancelToken()
    on_event = on_event or (lambda event: None)
    emit = message_sender(on_event)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    seed_everything(recipe.seed, recipe.deterministic)
    dev = select_device(device)
    prepared = prepare_data(recipe, data, emit, cancel)
    if cancel.cancelled:  # stopped while the files were being checked: nothing was trained
        on_event(TrainingEvent("cancelled", message="cancelled while checking the data; nothing was trained"))
        return TrainingResult("cancelled", run_dir, None, [], None, None)
    spec = input_spec_for(recipe)
    # its initial weights come from the seeded global RNG: keep it ahead of anything else that draws from it
    module, start_from = build_start_model(recipe, emit, library)
    module.to(dev)
    generator = torch.Generator().manual_seed(recipe.seed)
    train_loader, val_loader = make_loaders(recipe, spec, prepared, dev, generator)
    loop = Loop(recipe, run_dir, make_trainee(recipe, module, spec, dev), train_loader, val_loader, generator,
                on_event, cancel)
    progress = Progress()
    if resume:
        progress = restore_checkpoint(run_dir / LAST, loop.trainee, generator)
        emit(f"resuming at epoch {progress.epochs_done + 1} of {recipe.epochs}")
    on_event(TrainingEvent("started", epochs=recipe.epochs, values={
        "train": len(prepared.train), "val": len(prepared.val), "device": str(dev), "start_from": start_from}))
    status = "finished"
    for epoch in range(progress.epochs_done, recipe.epochs):
        ended = run_epoch(loop, progress, epoch)
        if ended:
            status = ended
            break
    return finish(loop, progress, status, model_id=model_id or recipe.name, data=prepared, start_from=start_from)


def make_loaders(recipe: Recipe, spec: InputSpec, data: PreparedData, dev: torch.device,
                 generator: torch.Generator) -> tuple[DataLoader, DataLoader]:
    """The training loader (augmented, shuffled by `generator`) and the validation loader (the scan's geometry)."""
    augment = BlurJpeg(recipe.blur_prob, recipe.jpeg_prob, recipe.blur_sigma_max, recipe.jpeg_quality_min,
                       recipe.jpeg_quality_max) if (recipe.blur_prob or recipe.jpeg_prob) else None
    draft = spec.resize if recipe.train_policy != "random_crop" else None
    train_set = ImageFolderSet(data.train, train_transform(recipe.train_policy, spec.size, spec.resize, augment,
                                                           recipe.flip, spec.small_image), draft)
    val_set = ImageFolderSet(data.val, geometry_transform(spec), draft)
    loader_args = dict(batch_size=recipe.batch_size, num_workers=recipe.workers,
                       pin_memory=dev.type == "cuda", persistent_workers=False)
    train_loader = DataLoader(train_set, shuffle=True, generator=generator,
                              drop_last=len(data.train) > recipe.batch_size, **loader_args)
    return train_loader, DataLoader(val_set, shuffle=False, **loader_args)


def make_trainee(recipe: Recipe, module: nn.Module, spec: InputSpec, dev: torch.device) -> Trainee:
    optimizer = _optimizer(recipe, module)
    scheduler = (torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, recipe.epochs))
                 if recipe.scheduler == "cosine" else None)
    use_amp = recipe.amp and dev.type == "cuda"
    return Trainee(module, spec, recipe.num_logits, _loss(recipe.num_logits), optimizer, scheduler,
                   torch.amp.GradScaler("cuda", enabled=use_amp), dev, use_amp)


def run_epoch(loop: Loop, progress: Progress, epoch: int) -> str | None:
    """Trains and validates epoch `epoch` (0-based), keeps the best weights and the checkpoint. Returns the run's
    final status when it ends here (cancelled, early_stopped, target_reached), else None."""
    recipe, on_event, number = loop.recipe, loop.on_event, epoch + 1
    batches = len(loop.train_loader) if recipe.max_batches_per_epoch is None else min(
        len(loop.train_loader), recipe.max_batches_per_epoch)
    on_event(TrainingEvent("epoch_start", number, recipe.epochs, batches=batches))
    replay_from = loop.generator.get_state()
    scores = train_one_epoch(loop.trainee, loop.train_loader, batches, loop.cancel, lambda batch, values: on_event(
        TrainingEvent("batch", number, recipe.epochs, batch, batches, values=values)))
    validation = None if loop.cancel.cancelled else evaluate(loop.trainee, loop.val_loader, loop.cancel)
    if validation is None:  # stopped while training or validating this epoch
        loop.generator.set_state(replay_from)  # a resumed run replays this epoch from its start
        save_checkpoint(loop.run_dir / LAST, loop.trainee, progress, loop.generator, recipe)
        kept = f" (epoch {progress.best_epoch})" if progress.best_epoch else ""
        on_event(TrainingEvent("cancelled", number, recipe.epochs, message=(
            f"cancelled during epoch {number}; best checkpoint kept{kept}; resume from {loop.run_dir}")))
        return "cancelled"
    lr = loop.trainee.optimizer.param_groups[0]["lr"]  # the rate this epoch trained at, before the schedule steps
    if loop.trainee.scheduler:
        loop.trainee.scheduler.step()
    row = {"epoch": number, **scores, "val_loss": validation.loss, "val_accuracy": validation.accuracy, "lr": lr}
    progress.history.append(row)
    on_event(TrainingEvent("epoch_end", number, recipe.epochs, values=row))
    if track_best(progress, row, recipe.select_on):
        write_safetensors(loop.trainee.module.state_dict(), loop.run_dir / BEST)
        on_event(TrainingEvent("checkpoint", number, recipe.epochs, message=f"best so far: epoch {number}"))
    progress.epochs_done = number
    save_checkpoint(loop.run_dir / LAST, loop.trainee, progress, loop.generator, recipe)
    stop = stop_rule(recipe, progress, validation.accuracy)
    if stop is None:
        return None
    status, reason = stop
    on_event(TrainingEvent("early_stop", number, recipe.epochs, message=reason))
    return status


def train_one_epoch(trainee: Trainee, loader: DataLoader, batches: int, cancel: CancelToken,
                    on_batch: Callable[[int, dict], None]) -> dict[str, float]:
    """One pass over the first `batches` batches, stopping between batches once `cancel` is set. `on_batch` gets
    the 1-based batch number and the running scores; returns the epoch's train_loss and train_accuracy."""
    trainee.module.train()
    seen, loss_sum, correct, started = 0, 0.0, 0, time.perf_counter()
    for index, (images, labels) in enumerate(loader):
        if index >= batches or cancel.cancelled:
            break
        x = to_float(images.to(trainee.device, non_blocking=True), trainee.spec.mean, trainee.spec.std)
        y = labels.to(trainee.device)
        with torch.autocast("cuda", dtype=torch.float16, enabled=trainee.use_amp):
            logits = trainee.module(x)
            loss = trainee.loss_fn(logits, y)
        trainee.optimizer.zero_grad(set_to_none=True)
        trainee.scaler.scale(loss).backward()
        trainee.scaler.step(trainee.optimizer)
        trainee.scaler.update()
        with torch.no_grad():
            predicted = (probabilities(logits.float(), trainee.num_logits) >= 0.5).long()
            correct += int((predicted == y).sum())
        seen += len(y)
        loss_sum += float(loss.detach()) * len(y)
        on_batch(index + 1, {"loss": loss_sum / seen, "accuracy": correct / seen,
                             "images_per_s": seen / max(time.perf_counter() - started, 1e-9)})
    return {"train_loss": loss_sum / max(seen, 1), "train_accuracy": correct / max(seen, 1)}


@torch.no_grad()
def evaluate(trainee: Trainee, loader: DataLoader, cancel: CancelToken | None = None) -> Validation | None:
    """Loss, accuracy, labels and P(fake) over the loader; None when `cancel` is set midway."""
    trainee.module.eval()
    losses, y_true, p_fake = 0.0, [], []
    for images, labels in loader:
        if cancel is not None and cancel.cancelled:
            return None
        x = to_float(images.to(trainee.device), trainee.spec.mean, trainee.spec.std)
        y = labels.to(trainee.device)
        with torch.autocast("cuda", dtype=torch.float16, enabled=trainee.use_amp):
            logits = trainee.module(x)
        losses += float(trainee.loss_fn(logits, y)) * len(y)
        p_fake += probabilities(logits.float(), trainee.num_logits).cpu().tolist()
        y_true += labels.tolist()
    n = max(len(y_true), 1)
    accuracy = sum(int(p >= 0.5) == t for p, t in zip(p_fake, y_true)) / n
    return Validation(losses / n, accuracy, y_true, p_fake)


def finish(loop: Loop, progress: Progress, status: str, *, model_id: str, data: PreparedData,
           start_from: str) -> TrainingResult:
    """The run's result: the best epoch's weights and, when the run was not cancelled, their card, with the
    validation scores measured again on those weights."""
    best_path = loop.run_dir / BEST
    if progress.best_epoch is None or not best_path.is_file():
        return TrainingResult(status, loop.run_dir, None, progress.history, None, None)
    best_state = read_safetensors(best_path)
    loop.trainee.module.load_state_dict(best_state)
    card = None
    if status != "cancelled":
        card = training_card(loop.recipe, model_id=model_id, spec=loop.trainee.spec, data=data, status=status,
                             progress=progress, validation=evaluate(loop.trainee, loop.val_loader),
                             start_from=start_from, device=loop.trainee.device)
        loop.on_event(TrainingEvent("finished", progress.best_epoch, loop.recipe.epochs,
                                    values=card.metrics.get("validation", {}),
                                    message=f"{status}: best epoch {progress.best_epoch}"))
    return TrainingResult(status, loop.run_dir, progress.best_epoch, progress.history, card,
                          {k: v.cpu() for k, v in best_state.items()})


def track_best(progress: Progress, row: dict, select_on: str) -> bool:
    """Records the epoch's selection score; True when it is the best so far (by more than rounding noise)."""
    value = row["val_loss"] if select_on == "val_loss" else -row["val_accuracy"]
    if progress.best_value is None or value < progress.best_value - 1e-6:
        progress.best_value, progress.best_epoch, progress.stale = value, row["epoch"], 0
        return True
    progress.stale += 1
    return False


def stop_rule(recipe: Recipe, progress: Progress, val_accuracy: float) -> tuple[str, str] | None:
    """(status, reason) when the run should end after this epoch: validation accuracy reached the recipe's target,
    or the selection score has not improved for `patience` epochs; None to go on."""
    if recipe.target_accuracy is not None and val_accuracy >= recipe.target_accuracy:
        return "target_reached", (f"validation accuracy {val_accuracy:.3f} reached the target "
                                  f"{recipe.target_accuracy:.3f}")
    if recipe.patience is not None and progress.stale >= recipe.patience:
        return "early_stopped", f"no improvement of {recipe.select_on} for {progress.stale} epochs"
    return None


def save_checkpoint(path: Path, trainee: Trainee, progress: Progress, generator: torch.Generator,
                    recipe: Recipe) -> None:
    """last.pt: model, optimiser, scheduler, progress, the shuffle and global RNG states, and the recipe."""
    torch.save({"model": trainee.module.state_dict(), "optimizer": trainee.optimizer.state_dict(),
                "scheduler": trainee.scheduler.state_dict() if trainee.scheduler else None,
                "epoch": progress.epochs_done, "history": progress.history, "best_value": progress.best_value,
                "best_epoch": progress.best_epoch, "stale": progress.stale, "generator": generator.get_state(),
                "torch_rng": torch.get_rng_state(), "recipe": recipe.to_dict()}, path)


def restore_checkpoint(path: Path, trainee: Trainee, generator: torch.Generator) -> Progress:
    """Loads last.pt into the trainee and the shuffle generator; returns the progress it recorded."""
    if not path.is_file():
        raise FileNotFoundError(f"nothing to resume in {path.parent}: {path.name} is missing")
    state = torch.load(path, map_location="cpu", weights_only=True)
    trainee.module.load_state_dict(state["model"])
    trainee.optimizer.load_state_dict(state["optimizer"])
    if trainee.scheduler and state.get("scheduler"):
        trainee.scheduler.load_state_dict(state["scheduler"])
    generator.set_state(state["generator"])
    torch.set_rng_state(state["torch_rng"])
    return Progress(epochs_done=int(state["epoch"]), history=list(state["history"]), best_value=state["best_value"],
                    best_epoch=state["best_epoch"], stale=int(state["stale"]))


def _optimizer(recipe: Recipe, module: nn.Module) -> torch.optim.Optimizer:
    params = [p for p in module.parameters() if p.requires_grad]
    if recipe.optimizer == "adam":
        return torch.optim.Adam(params, lr=recipe.lr, weight_decay=recipe.weight_decay)
    if recipe.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=recipe.lr, weight_decay=recipe.weight_decay)
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(params, lr=recipe.lr, momentum=0.9, weight_decay=recipe.weight_decay)
    raise ValueError(f"unknown optimizer {recipe.optimizer!r}: adam, adamw or sgd")


def _loss(num_logits: int) -> LossFn:
    if num_logits == 1:
        bce = nn.BCEWithLogitsLoss()
        return lambda logits, y: bce(logits.reshape(-1).float(), y.float())
    ce = nn.CrossEntropyLoss()
    return lambda logits, y: ce(logits.float(), y)


def training_card(recipe: Recipe, *, model_id: str, spec: InputSpec, data: PreparedData, status: str,
                  progress: Progress, validation: Validation, start_from: str, device: torch.device) -> ModelCard:
    """The complete card for the best weights: input, validation scores, learning curve, and how they were made."""
    trained_on, data_record = describe_data(data)
    return ModelCard(
        id=model_id, name=model_id, architecture=recipe.architecture, num_logits=recipe.num_logits, fake_index=1,
        input=spec, threshold=0.5, inconclusive_band=(0.3, 0.7),
        description=recipe.description or f"Trained with the {recipe.name} recipe",
        trained_on=trained_on, limitations=OWN_DATA_LIMITATIONS,
        provenance={
            "recipe": recipe.to_dict(), "start_from": start_from, "status": status, "best_epoch": progress.best_epoch,
            "trained_at": utc_now(), "device": str(device), "data": data_record,
        },
        metrics={"validation": validation_metrics(validation.labels, validation.p_fake)},
        learning_curve=[json_safe(row) for row in progress.history],
    )
