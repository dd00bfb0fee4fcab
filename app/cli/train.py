"""`forensight train`: train or fine-tune a detector with a named recipe (training/ does the work; this prints
its events and adds the result to the library)."""
from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from app.cli.options import DEVICE_HELP, metric_text
from app.errors import UsageError


def add_command(sub) -> None:
    """`forensight train`: its recipe, data, overrides and run folder."""
    from training.recipes import RECIPES

    p = sub.add_parser("train", help="train or fine-tune a detector with a named recipe",
                       description="Recipes: " + "; ".join(f"{r.name}: {r.description}" for r in RECIPES.values()))
    p.add_argument("--recipe", required=True, choices=sorted(RECIPES))
    p.add_argument("--data", required=True, type=Path, help="dataset folder with real/ and fake/ (optionally "
                   "under train/, val/, test/; see README)")
    p.add_argument("--name", required=True, help="id of the new model in the library")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="override any recipe field, e.g. --set lr=3e-4 --set blur_prob=0.1, or how the trained "
                        "model's scans look at a picture: --set input.policy=tiles --set input.aggregation=max "
                        "(repeatable)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--arch", help="architecture (overrides the recipe's)")
    p.add_argument("--from", dest="start_from", metavar="MODEL", help="fine-tune from a library model")
    p.add_argument("--tower", metavar="FILE|MODEL", help="linear_probe: the frozen image tower, an OpenCLIP weights "
                   "file (open_clip_pytorch_model.bin, open_clip_model.safetensors) or a library model that has one")
    p.add_argument("--seed", type=int)
    p.add_argument("--deterministic", action="store_true", help="deterministic kernels (slower)")
    p.add_argument("--workers", type=int, help="data-loading processes")
    p.add_argument("--device", default="auto", help=DEVICE_HELP)
    p.add_argument("--run-dir", type=Path, help="checkpoints (default: the user data folder's runs/NAME)")
    p.add_argument("--resume", action="store_true", help="continue a cancelled run in its run folder")
    p.set_defaults(run=cmd_train)


def _recipe_from_args(args: argparse.Namespace):
    from app.services.training import TrainingSetupError, make_recipe

    overrides: dict = {}
    for item in args.set:
        if "=" not in item:
            raise UsageError(f"--set expects FIELD=VALUE, not {item!r}")
        key, value = item.split("=", 1)
        overrides[key.strip()] = value.strip()
    for field, value in (("epochs", args.epochs), ("lr", args.lr), ("batch_size", args.batch_size),
                         ("architecture", args.arch), ("pretrained", args.start_from), ("seed", args.seed),
                         ("workers", args.workers), ("tower", args.tower)):
        if value is not None:
            overrides[field] = value
    if args.deterministic:
        overrides["deterministic"] = True
    try:
        return make_recipe(args.recipe, overrides)
    except TrainingSetupError as exc:
        raise UsageError(str(exc)) from None


def cmd_train(args: argparse.Namespace) -> int:
    from app.services.training import TrainingSetupError, plan_training, run_training
    from models.card import CardError
    from models.engine import CancelToken
    from models.library import ModelLibrary
    from training.data import LayoutError

    recipe = _recipe_from_args(args)
    library = ModelLibrary()
    try:
        job = plan_training(recipe, args.data, args.name, library=library, run_dir=args.run_dir, device=args.device)
    except TrainingSetupError as exc:
        raise UsageError(str(exc)) from None
    run_dir = job.run_dir
    cancel = CancelToken()
    previous = signal.signal(signal.SIGINT, lambda *_: cancel.cancel())
    on_event = _training_printer(recipe)
    try:
        outcome = run_training(job, library, on_event=on_event, cancel=cancel, resume=args.resume)
    except (LayoutError, FileNotFoundError, ValueError, CardError) as exc:
        raise UsageError(str(exc)) from None
    finally:
        signal.signal(signal.SIGINT, previous)
    result, entry = outcome.result, outcome.entry
    if entry is None:
        print(f"Stopped. Checkpoints in {run_dir}; continue with the same command and --resume.")
        return 130
    v = entry.card.metrics.get("validation", {})
    print(f"Added {entry.card.id} to the library (best epoch {result.best_epoch}, {result.status}): validation "
          f"accuracy {metric_text(v.get('accuracy'))}, AP {metric_text(v.get('average_precision'))}, "
          f"ROC-AUC {metric_text(v.get('roc_auc'))} on {v.get('n')} images")
    return 0


def _training_printer(recipe):
    """The training events as `forensight train` prints them: messages and epochs, progress bars on stderr."""
    from tqdm import tqdm

    bar = None

    def on_event(event) -> None:
        nonlocal bar
        if event.kind == "message":
            print(event.message, file=sys.stderr)
        elif event.kind == "started":
            v = event.values
            print(f"Training {recipe.architecture} with {recipe.name}: {v['train']} train / {v['val']} validation "
                  f"images on {v['device']}; Ctrl-C stops cleanly", file=sys.stderr)
        elif event.kind == "progress":  # a linear probe's feature batches
            if bar is None or bar.total != event.batches:
                bar = tqdm(total=event.batches, desc=event.message or "progress", unit="batch", file=sys.stderr,
                           leave=False, dynamic_ncols=True)
            bar.update(event.batch - bar.n)
            if event.batch >= event.batches:
                bar.close()
        elif event.kind == "epoch_start":
            bar = tqdm(total=event.batches, desc=f"epoch {event.epoch}/{event.epochs}", unit="batch",
                       file=sys.stderr, leave=False, dynamic_ncols=True)
        elif event.kind == "batch" and bar is not None:
            bar.set_postfix(loss=f"{event.values['loss']:.3f}", acc=f"{event.values['accuracy']:.3f}",
                            img_s=f"{event.values['images_per_s']:.1f}")
            bar.update(1)
        elif event.kind == "epoch_end":
            if bar is not None:
                bar.close()
            v = event.values
            print(f"epoch {event.epoch}/{event.epochs}: train loss {v['train_loss']:.4f} acc {v['train_accuracy']:.3f}"
                  f" | val loss {v['val_loss']:.4f} acc {v['val_accuracy']:.3f} | lr {v['lr']:.2e}")
        elif event.kind in ("early_stop", "cancelled", "checkpoint"):
            if bar is not None and event.kind == "cancelled":
                bar.close()
            print(event.message, file=sys.stderr if event.kind == "checkpoint" else sys.stdout)

    return on_event
