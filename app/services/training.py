"""Training a detector into the library: the one path behind `forensight train` and the desktop training wizard.

Both build a recipe from a name plus overrides, check the new model's id before any work, run
training.trainer.fit (events out, cancel in) and add the best weights with their card to the library.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from models.card import ID_RULE, CardError, is_valid_model_id
from models.device import DeviceError, select_device
from models.engine import CancelToken
from models.library import LibraryEntry, ModelLibrary, data_home
from training.recipes import Recipe, get_recipe, is_probe
from training.trainer import LAST, TrainingEvent, TrainingResult, fit, input_spec_for


class TrainingSetupError(ValueError):
    """The job cannot start as asked; the message says what to change."""


@dataclass(frozen=True)
class TrainingJob:
    recipe: Recipe
    data: Path
    name: str  # the new model's id in the library
    run_dir: Path  # checkpoints, so a cancelled run can resume
    device: str = "auto"


@dataclass(frozen=True)
class TrainingOutcome:
    result: TrainingResult
    entry: LibraryEntry | None  # the model as added to the library; None when the run was cancelled


def make_recipe(recipe_name: str, overrides: dict[str, Any]) -> Recipe:
    try:
        return get_recipe(recipe_name).with_overrides(overrides)
    except ValueError as exc:
        raise TrainingSetupError(str(exc)) from None


def plan_training(recipe: Recipe, data: Path, name: str, *, library: ModelLibrary, run_dir: Path | None = None,
                  device: str = "auto") -> TrainingJob:
    """Check what can be checked before training starts: the id, that it is new, that the data folder exists."""
    if not is_valid_model_id(name):
        raise TrainingSetupError(f"model name {name!r} must be {ID_RULE}")
    if any(entry.card.id == name for entry in library.entries()):
        raise TrainingSetupError(f"a model named {name!r} already exists; choose another name")
    if not Path(data).is_dir():
        raise TrainingSetupError(f"dataset folder {data} does not exist")
    try:
        select_device(device)
    except DeviceError as exc:
        raise TrainingSetupError(str(exc)) from None
    if recipe.pretrained not in ("imagenet", "none"):
        check_fine_tuning(recipe, library)
    if is_probe(recipe):
        check_probe_tower(recipe, library)
    try:  # the card the model will get: a size it would refuse must stop the job now, not after training
        input_spec_for(recipe).validate()
    except (CardError, ValueError) as exc:
        raise TrainingSetupError(f"the recipe's input cannot be used: {exc}") from None
    run_dir = Path(run_dir) if run_dir else data_home() / "runs" / name
    return TrainingJob(recipe, Path(data), name, run_dir, device)


def check_fine_tuning(recipe: Recipe, library: ModelLibrary) -> None:
    """A library model can only be fine-tuned by a recipe of its own architecture and number of logits."""
    try:
        card = library.get(recipe.pretrained).card
    except LookupError as exc:
        raise TrainingSetupError(f"cannot fine-tune {recipe.pretrained!r}: {exc}") from None
    if (card.architecture, card.num_logits) != (recipe.architecture, recipe.num_logits):
        raise TrainingSetupError(
            f"cannot fine-tune {card.id}: it is {card.architecture} with {card.num_logits} logit(s), the recipe "
            f"trains {recipe.architecture} with {recipe.num_logits}; choose a matching recipe, or set "
            f"architecture and num_logits to the model's")


def check_probe_tower(recipe: Recipe, library: ModelLibrary) -> None:
    """A linear probe needs its tower before any work: a file, or a library model that has one."""
    if not recipe.tower:
        raise TrainingSetupError("the linear_probe recipe needs a tower: --tower FILE (an OpenCLIP weights file such "
                                 "as open_clip_pytorch_model.bin) or the id of a library model that has one")
    if Path(recipe.tower).expanduser().is_file():
        return
    try:
        card = library.get(recipe.tower).card
    except LookupError:
        raise TrainingSetupError(f"tower {recipe.tower!r} is neither a file nor a library model") from None
    if card.architecture != "tower_linear":
        raise TrainingSetupError(f"library model {card.id} ({card.architecture}) has no foundation-model tower")


def fine_tuning_overrides(library: ModelLibrary, model_id: str) -> dict[str, Any]:
    """Recipe fields that make any recipe fine-tune `model_id`: its architecture, logits and input size."""
    card = library.get(model_id).card
    return {"pretrained": model_id, "architecture": card.architecture, "num_logits": card.num_logits,
            "input_size": card.input.size}


def can_resume(job: TrainingJob) -> bool:
    return (job.run_dir / LAST).is_file()


def run_training(job: TrainingJob, library: ModelLibrary, *, on_event: Callable[[TrainingEvent], None] | None = None,
                 cancel: CancelToken | None = None, resume: bool = False) -> TrainingOutcome:
    """Train; a run that was not cancelled lands in the library under job.name with its complete card."""
    result = fit(job.recipe, job.data, run_dir=job.run_dir, on_event=on_event, cancel=cancel, resume=resume,
                 device=job.device, model_id=job.name, library=library)
    entry = library.add(result.card, result.state) if result.completed else None
    return TrainingOutcome(result, entry)
