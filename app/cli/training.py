"""`forensight data inspect`, `forensight train` and `forensight evaluate`: thin printers over training/."""
from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path

from app.errors import UsageError, library_errors_as_usage
from app.output_guard import JSON


def add_command(sub) -> None:
    _add_data_commands(sub)
    _add_train_and_evaluate_commands(sub)


def _add_data_commands(sub) -> None:
    """`forensight data inspect | build-starter | rebuild-modern`."""
    data = sub.add_parser("data", help="inspect a training dataset")
    dsub = data.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    p = dsub.add_parser("inspect", help="counts, corrupt files, sizes, formats and shortcut warnings")
    p.add_argument("path", type=Path)
    p.add_argument("--json", type=Path, metavar="FILE", help="also write the full report as JSON")
    p.set_defaults(run=cmd_data_inspect)
    p = dsub.add_parser("build-starter", help="build the starter training set: offline photos and 3 small "
                        "generators, plus the modern set (real photos, modern generators) when present",
                        description="Build the starter training set. Sources: the offline set (photos shipped in "
                        "Debian and PyPI packages against DCGAN faces, painted eyes and Real-ESRGAN) and the modern "
                        "set (public real photos and modern generators' images, normalised so that format, size, "
                        "shape and metadata tell nothing), split by source repository.")
    p.add_argument("out", type=Path)
    p.add_argument("--install", action="store_true", help="install the Debian and PyPI packages it needs")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--crops-per-photo", type=int, default=36)
    p.add_argument("--per-generator", type=int, default=420)
    p.add_argument("--modern", type=Path, metavar="DIR",
                   help="the modern set's folder (MANIFEST.csv and its files; default: ../shared/datasets/modern "
                        "beside this checkout, when present)")
    p.add_argument("--modern-crops", type=int, default=3, help="crops per training picture of the modern set")
    p.add_argument("--without-modern", action="store_true", help="only the offline set")
    p.add_argument("--without-offline", action="store_true", help="only the modern set")
    p.set_defaults(run=cmd_build_starter)
    p = dsub.add_parser("rebuild-modern", help="recreate the modern set's files from local clones of its public "
                        "repositories (the project keeps the manifest, never the images)")
    p.add_argument("clones", type=Path, help="folder holding the clones as OWNER/NAME (git)")
    p.add_argument("out", type=Path, help="where to write the set (then: build-starter --modern OUT)")
    p.set_defaults(run=cmd_rebuild_modern)


def _add_train_and_evaluate_commands(sub) -> None:
    from training.recipes import RECIPES

    p = sub.add_parser("train", help="train or fine-tune a detector with a named recipe",
                       description="Recipes: " + "; ".join(f"{r.name}: {r.description}" for r in RECIPES.values()))
    p.add_argument("--recipe", required=True, choices=sorted(RECIPES))
    p.add_argument("--data", required=True, type=Path, help="dataset folder (real/ and fake/, see README)")
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
    p.add_argument("--device", default="auto")
    p.add_argument("--run-dir", type=Path, help="checkpoints (default: the user data folder's runs/NAME)")
    p.add_argument("--resume", action="store_true", help="continue a cancelled run in its run folder")
    p.set_defaults(run=cmd_train)

    p = sub.add_parser("evaluate", help="measure a model on a labelled dataset: metrics, plots, sweeps")
    p.add_argument("--model", required=True, help="library model id")
    p.add_argument("--data", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path, help="folder for report.json, plots and predictions")
    p.add_argument("--split", default="auto", help="auto (test if present, else all), test, val, train, all")
    p.add_argument("--threshold", type=float, help="decision threshold (default: the card's)")
    p.add_argument("--no-sweeps", action="store_true", help="skip the robustness sweeps")
    p.add_argument("--sweep-images", type=int, default=400, help="images used by the sweeps (stratified)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--device", default="auto")
    p.set_defaults(run=cmd_evaluate)


def checked_output(path: Path, kind: str, data: Path) -> Path:
    from app.output_guard import Evidence, OutputRefused, check_output

    try:
        return check_output(path, kind, Evidence(folders=[data]), create_folder=True)
    except OutputRefused as exc:
        raise UsageError(str(exc)) from None


def cmd_data_inspect(args: argparse.Namespace) -> int:
    from training.data import LayoutError
    from training.inspect_data import format_report, inspect_dataset

    if args.json:  # never into the data it inspects, never over a file that is not a JSON report
        args.json = checked_output(args.json, JSON, args.path)
    try:
        report = inspect_dataset(args.path)
    except LayoutError as exc:
        raise UsageError(str(exc)) from None
    print(format_report(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2), encoding="utf-8")
        print(f"JSON: {args.json}")
    return 0


def cmd_build_starter(args: argparse.Namespace) -> int:
    from training import modern, starter

    modern_dir = None if args.without_modern else args.modern or (
        modern.DEFAULT_LOCATION if (modern.DEFAULT_LOCATION / modern.MANIFEST).is_file() else None)
    if args.without_offline and modern_dir is None:
        raise UsageError("nothing to build: --without-offline needs the modern set (--modern DIR)")
    guard_outside_sources(args.out, [modern_dir] if modern_dir else [])
    if not args.without_offline:
        if args.install:
            starter.install_inputs()
        try:
            manifest = starter.build_starter(args.out, crops_per_photo=args.crops_per_photo,
                                             per_generator=args.per_generator, seed=args.seed)
        except RuntimeError as exc:
            raise UsageError(str(exc)) from None
        for key, count in manifest["counts"].items():
            print(f"  {key:<32} {count:>6}")
        print(f"Offline set: {len(manifest['photos'])} photographs and 3 generators")
    if modern_dir is not None:
        print(f"modern set from {modern_dir}: every picture decoded, cropped and re-encoded the same way")
        try:
            done = modern.prepare(modern_dir, args.out, train_crops=args.modern_crops, seed=args.seed)
        except modern.ModernSetError as exc:
            raise UsageError(str(exc)) from None
        for key, count in done["pictures"].items():
            print(f"  modern {key:<25} {count:>6} pictures")
        for line in done["skipped"]:
            print(f"  skipped {line}")
        print(f"Modern set: {done['crops']} crops of {modern.CROP}×{modern.CROP} (list: modern-prepared.csv)")
    print(f"Starter dataset in {args.out}; check it with `forensight data inspect {args.out}`")
    return 0


def guard_outside_sources(out: Path, sources: list[Path]) -> None:
    """The prepared set is written beside, never into, the folders it reads (they may be read-only evidence);
    output_guard's Evidence compares folders by identity too, so a link or a bind mount does not slip through."""
    from app.output_guard import Evidence
    from models.discovery import absolute

    if Evidence(folders=sources).folder_of(absolute(out) / "manifest.json") is not None:
        raise UsageError(f"{out} is inside {sources[0] if len(sources) == 1 else 'a folder it reads'}: write the "
                         "starter set elsewhere")


def cmd_rebuild_modern(args: argparse.Namespace) -> int:
    from training import modern

    guard_outside_sources(args.out, [args.clones])
    done = modern.rebuild(args.clones, args.out)
    for line in done["problems"][:20]:
        print(f"  {line}")
    return 0 if done["written"] == done["total"] else 1


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
          f"accuracy {_fmt(v.get('accuracy'))}, AP {_fmt(v.get('average_precision'))}, "
          f"ROC-AUC {_fmt(v.get('roc_auc'))} on {v.get('n')} images")
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


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def cmd_evaluate(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from models.library import ModelLibrary
    from training.data import LayoutError
    from training.evaluate import evaluate

    checked_output(args.out / "report.json", JSON, args.data)  # the report folder is never among the data
    with library_errors_as_usage():
        model = ModelLibrary().load(args.model)
    if getattr(model, "members", None) is not None:  # evaluate measures one network; an ensemble has none
        raise UsageError(f"{args.model} is an ensemble: measure it by scanning labelled folders (`forensight scan "
                         f"REAL FAKE --model {args.model} --csv out.csv` gives its and each member's P(fake)); its "
                         f"card holds its held-out numbers (`forensight models show {args.model}`)")
    bars: dict = {}

    def progress(stage: str, done: int, total: int) -> None:
        if stage not in bars:
            bars[stage] = tqdm(total=total, desc=stage, unit="img", file=sys.stderr, dynamic_ncols=True,
                               mininterval=0.5)
        bars[stage].update(done - bars[stage].n)  # update() respects mininterval; refresh() does not

    try:
        report = evaluate(model, args.data, args.out, split=args.split, device=args.device,
                          batch_size=args.batch_size, sweeps=not args.no_sweeps, sweep_images=args.sweep_images,
                          threshold=args.threshold, progress=progress)
    except (LayoutError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    finally:
        for bar in bars.values():
            bar.close()
    for line in summary_lines(report):
        print(line)
    print(f"Report: {args.out / 'report.json'}")
    return 0


def summary_lines(report: dict) -> list[str]:
    m, d = report["metrics"], report["data"]
    lines = [f"{report['model']['id']} on {d['count']} images ({d['split']} split of {d['root']}), "
             f"threshold {report['model']['threshold']:g}"]
    for key in ("accuracy", "balanced_accuracy", "average_precision", "roc_auc", "f1_fake", "mcc", "cohen_kappa",
                "log_loss"):
        lines.append(f"  {key:<18} {_fmt(m.get(key))}")
    cm = m["confusion_matrix"]
    lines.append(f"  confusion          TN {cm['tn']}  FP {cm['fp']}  FN {cm['fn']}  TP {cm['tp']}")
    if m.get("calibration"):
        lines.append(f"  ECE                {_fmt(m['calibration'].get('ece'))}")
    base = m.get("baselines", {})
    if base:
        lines.append(f"  baselines          random AP {_fmt(base['random'].get('average_precision'))}, "
                     f"majority accuracy {_fmt(base['majority'].get('accuracy'))}")
    if len(report["per_group"]) > 1:
        lines.append("  per group (AP / accuracy / n):")
        for group, g in report["per_group"].items():
            lines.append(f"    {group:<24} {_fmt(g['average_precision'])} / {_fmt(g['accuracy'])} / {g['n']}")
    for sweep, rows in report.get("robustness", {}).items():
        cells = ", ".join(f"{r['value']:g}: AP {_fmt(r['average_precision'])} acc {_fmt(r['accuracy'])}"
                          for r in rows)
        lines.append(f"  {sweep:<18} {cells}")
    if report["excluded"]:
        lines.append(f"  {len(report['excluded'])} file(s) excluded as unreadable")
    return lines
