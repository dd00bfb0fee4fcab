"""Training a detector into the library: the one path behind `forensight train` and the desktop training wizard.

Both build a recipe from a name plus overrides, check the new model's id before any work, run
training.trainer.fit (events out, cancel in) and add the best weights with their card to the library.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from models.card import ID_RULE, is_valid_model_id
from models.engine import CancelToken
from models.library import LibraryEntry, ModelLibrary, data_home
from training.recipes import Recipe, get_recipe
from training.trainer import LAST, TrainingEvent, TrainingResult, fit


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
    run_dir = Path(run_dir) if run_dir else data_home() / "runs" / name
    return TrainingJob(recipe, Path(data), name, run_dir, device)


def can_resume(job: TrainingJob) -> bool:
    return (job.run_dir / LAST).is_file()


def run_training(job: TrainingJob, library: ModelLibrary, *, on_event: Callable[[TrainingEvent], None] | None = None,
                 cancel: CancelToken | None = None, resume: bool = False) -> TrainingOutcome:
    """Train; a run that was not cancelled lands in the library under job.name with its complete card."""
    result = fit(job.recipe, job.data, run_dir=job.run_dir, on_event=on_event, cancel=cancel, resume=resume,
                 device=job.device, model_id=job.name, library=library)
    entry = library.add(result.card, result.state) if result.completed else None
    return TrainingOutcome(result, entry)
