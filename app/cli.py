"""The `forensight` command. With no arguments it opens the desktop app; subcommands work headless."""
from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import signal
import sys
from pathlib import Path

from app import __version__
from app.cli_progress import add_scoring_options
from app.errors import UsageError, library_errors_as_usage
from app.logs import LEVELS, setup_logging
from models.paths import readable


# models.card.INPUT_POLICIES, written out so that the parser does not load torch (a test keeps them equal)
POLICY_CHOICES = ("resize", "resize_center_crop", "center_crop", "tiles", "full", "five_crop", "ten_crop")


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for a hub, whatever a library tries
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    parser = build_parser()
    args = parser.parse_args(argv)
    log_file = setup_logging(args.log_level)
    if not getattr(args, "command", None):
        import app.ui  # here, not at the top: the subcommands never load Qt

        return app.ui.run_app([])
    previous = _terminate_as_interrupt()
    try:
        return args.run(args)
    except UsageError as exc:
        print(f"forensight: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C while loading a model or listing files: nothing half-written to explain
        print("\nforensight: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug: one sentence for the user, the traceback for the bug report
        logging.getLogger("app.cli").exception("unexpected error in `forensight %s`", args.command)
        where = f"; the details are in {log_file}" if log_file else ""
        print(f"forensight: unexpected error: {type(exc).__name__}: {str(exc)[:300]}{where}", file=sys.stderr)
        return 1
    finally:
        if previous is not _NOT_SET:
            signal.signal(signal.SIGTERM, previous)


_NOT_SET = object()


def _terminate_as_interrupt():
    """`kill` (SIGTERM) unwinds like Ctrl-C, so temporary files are removed and the case is closed cleanly."""
    def interrupt(signum, frame):
        raise KeyboardInterrupt

    try:
        return signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread (main() called from a test's worker): leave signals alone
        return _NOT_SET


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="forensight", description="Tell real photographs from AI-generated "
                                     "images, offline.")
    parser.add_argument("--version", action="version", version=f"forensight {__version__}")
    parser.add_argument("--log-level", choices=LEVELS, default="info", help="how much goes to the log file "
                        "(the user data folder's logs/forensight.log; tracebacks of unexpected errors always do)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    scan = sub.add_parser("scan", help="score every file in folders or files", description="Score every file "
                          "under PATH with a detector; write results to a case database and optionally a CSV.")
    scan.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    scan.add_argument("-r", "--recursive", action="store_true", help="descend into sub-folders")
    scan.add_argument("--model", metavar="ID", action="append", help="model id from `forensight models list` "
                      "(default: the default); repeat it to score every file with several models in one pass")
    scan.add_argument("--threshold", type=float, metavar="T", help="P(fake) at or above which an image is "
                      "called AI-generated (default: the model card's; with several models, every model's)")
    scan.add_argument("--band", metavar="LOW,HIGH", help="inconclusive band, e.g. 0.3,0.7; the threshold twice "
                      "(0.5,0.5) disables it (default: the card's, or threshold ± 0.2 when --threshold is given)")
    scan.add_argument("--csv", type=Path, metavar="FILE", help="also write the results as CSV")
    scan.add_argument("--case", type=Path, metavar="FILE", help="case database (default: beside the CSV, "
                      "else in the user data folder, named after the scanned paths)")
    add_scoring_options(scan)
    scan.add_argument("--workers", type=int, default=None, metavar="N", help="decoding threads (default: "
                      "up to 4 on the CPU, one per core on a GPU)")
    scan.set_defaults(run=cmd_scan)

    models = sub.add_parser("models", help="list, inspect, import and remove detectors")
    msub = models.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    p = msub.add_parser("list", help="models in the library")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=cmd_models_list)
    p = msub.add_parser("show", help="a model's card")
    p.add_argument("id")
    p.set_defaults(run=cmd_models_show)
    p = msub.add_parser("import", help="add a checkpoint (Forensight folder or card, .safetensors, .pth)")
    p.add_argument("path", type=Path)
    p.add_argument("--arch", help="architecture (default: inferred from the weights)")
    p.add_argument("--id", dest="model_id", help="library id (default: from the file name)")
    p.add_argument("--name", help="display name")
    p.add_argument("--fake-index", type=int, choices=(0, 1), help="which of two logits means fake (default 1)")
    p.add_argument("--policy", choices=POLICY_CHOICES, help="input policy (see README: How a scan works)")
    p.add_argument("--threshold", type=float)
    p.add_argument("--family", help="published detector family (default: recognised from the file; see "
                   "`forensight models catalogue`)")
    p.add_argument("--fake-label", metavar="LABEL", help="Hugging Face model: the label(s) that mean fake, "
                   "comma-separated (default: from id2label)")
    for option, kind, text in (("--size", int, "input side in pixels"), ("--resize", int, "shorter side before "
                               "the centre crop"), ("--mean", str, "R,G,B mean of the 0..1 pixels"),
                               ("--std", str, "R,G,B std"), ("--interpolation", str, "bilinear, bicubic, lanczos "
                               "or nearest")):
        p.add_argument(option, type=kind, help=f"ONNX model: {text}")
    p.add_argument("--tower", type=Path, metavar="FILE", help="UnivFD head (fc_weights.pth): the CLIP ViT-L/14 "
                   "image tower it scores, as OpenCLIP distributes it (open_clip_pytorch_model.bin or "
                   "open_clip_model.safetensors)")
    p.add_argument("--input-json", type=Path, metavar="FILE", help="ONNX model: the input settings as a JSON "
                   'object, e.g. {"policy": "resize", "size": 224, "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]}')
    p.set_defaults(run=cmd_models_import)
    p = msub.add_parser("catalogue", help="published detectors Forensight can import, and which are installed")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=cmd_models_catalogue)
    p = msub.add_parser("remove", help="delete a model you imported or trained")
    p.add_argument("id")
    p.set_defaults(run=cmd_models_remove)
    p = msub.add_parser("default", help="make a model the default for scans")
    p.add_argument("id")
    p.set_defaults(run=cmd_models_default)
    p = msub.add_parser("set", help="change how one of your models analyses a picture (its input policy)")
    p.add_argument("id")
    p.add_argument("settings", nargs="+", metavar="input.FIELD=VALUE",
                   help="e.g. input.policy=tiles input.tile_stride=112 input.max_tiles=64 input.aggregation=max")
    p.set_defaults(run=cmd_models_set)

    from app.cli_training import add_training_commands

    add_training_commands(sub)
    from app.cli_report import add_report_command

    add_report_command(sub)
    from app.cli_calibrate import add_calibrate_command

    add_calibrate_command(sub)
    from app.cli_ensemble import add_ensemble_command

    add_ensemble_command(sub)
    return parser


# ---- scan ------------------------------------------------------------------------------------------
def parse_band(text: str) -> tuple[float, float]:
    try:
        low, high = (float(part) for part in text.replace(":", ",").replace("-", ",", 1).split(","))
    except ValueError:
        raise UsageError(f"--band expects LOW,HIGH such as 0.3,0.7, not {text!r}") from None
    return low, high


def default_case_path(paths: list[Path], csv: Path | None) -> Path:
    if csv is not None:
        return csv.with_suffix(".case.sqlite")
    from models.library import data_home

    key = "\n".join(str(p.resolve()) for p in paths)
    stem = "".join(c if c.isalnum() or c in "-_" else "-" for c in paths[0].resolve().name)[:40] or "scan"
    return data_home() / "cases" / f"{stem}-{hashlib.sha256(key.encode(errors='surrogateescape')).hexdigest()[:10]}.sqlite"


def check_scan_outputs(args: argparse.Namespace, entries=()) -> tuple[Path, Path | None]:
    """The case and CSV paths, refused before any work when they would land on or among the evidence (the
    scanned paths, and every file found under them), in a missing folder, or over a file that is not ours."""
    from app.output_guard import CASE, CSV, OutputRefused, check_output, scan_evidence

    evidence = scan_evidence(args.paths, entries)
    try:
        csv = check_output(args.csv, CSV, evidence) if args.csv else None
        case = check_output(args.case or default_case_path(args.paths, csv), CASE, evidence,
                            create_folder=args.case is None)
    except OutputRefused as exc:
        raise UsageError(str(exc)) from None
    return case, csv


def cmd_scan(args: argparse.Namespace) -> int:
    if args.batch_size < 1 or (args.workers is not None and args.workers < 1):
        raise UsageError("--batch-size and --workers must be at least 1")
    for path in args.paths:
        if not path.exists() and not path.is_symlink():
            raise UsageError(f"{readable(path)} does not exist")
    check_scan_outputs(args)  # before the model loads: a mistyped --csv costs a second, not a scan

    from app.case import Case, CaseError
    from app.scanning import list_entries
    from models.device import describe_device
    from models.engine import MultiScanEngine, ScanEngine
    from models.ensemble import EnsembleScorer, build_scorers

    models, device = load_scan_models(args)
    for model in models:
        scan_thresholds(args, model.card)  # a bad --band: refused before any case exists
    entries = list_entries(args.paths, args.recursive)
    case_path, csv_path = check_scan_outputs(args, entries)  # again with every file found (links included)
    try:
        case = Case(case_path)
    except CaseError as exc:
        raise UsageError(str(exc)) from None
    # --threshold and --band are the named models'; an ensemble's members that were not named keep their cards'
    named = {model.card.id for model in models}

    def thresholds_for(card):
        return scan_thresholds(args, card) if card.id in named else None

    scorers = build_scorers(models, lambda model: ScanEngine(
        model, device=device, batch_size=args.batch_size, workers=args.workers,
        thresholds=thresholds_for(model.card)), thresholds_for)
    for scorer in scorers:
        card, thresholds = scorer.card, scorer.thresholds
        what = (f"ensemble of {', '.join(m.card.id for m in scorer.members)}, {card.ensemble['combine']}"
                if isinstance(scorer, EnsembleScorer) else f"{card.architecture}, weights {card.weights_sha256[:12]}")
        print(f"Model {card.id} ({what}) on {describe_device(device)}; threshold {thresholds.threshold:g}, "
              f"inconclusive {thresholds.low:g}-{thresholds.high:g}", file=sys.stderr)
    print(f"{len(entries)} files; case {readable(case_path)}", file=sys.stderr)
    model_ids = [scorer.card.id for scorer in scorers]
    with case:
        summary = scan_with_progress(case, MultiScanEngine(scorers), entries, args)  # one model: the same path
        if summary is None:
            counts = {model_id: case.count_results(model_id) for model_id in model_ids}
            saved = str(sum(counts.values())) + ("" if len(counts) == 1 else
                                                 f" ({', '.join(f'{m}: {n}' for m, n in counts.items())})")
            print(f"\nInterrupted. {saved} results are saved in {readable(case_path)}; "
                  "run the same command to finish.", file=sys.stderr)
            return 130
        for line in summary.lines():
            print(line)
        print(f"Case: {readable(case_path)}")
        if csv_path:
            print(f"CSV: {readable(csv_path)} ({write_scan_csv(case, model_ids, summary, csv_path)} rows)")
    return 0


def load_scan_models(args: argparse.Namespace):
    """Every --model (once each, in the order given; the default model without one) and the device. An
    ensemble comes loaded with its members (refused when one is missing or changed)."""
    from models.card import CardError
    from models.checkpoints import CheckpointError
    from models.device import DeviceError, select_device
    from models.library import ModelLibrary, ModelNotFoundError, NoModelError

    library = ModelLibrary()
    try:
        entries = [library.resolve(model_id) for model_id in dict.fromkeys(args.model or [None])]
        device = select_device(args.device)
        return [library.load(entry) for entry in entries], device
    except (ModelNotFoundError, NoModelError, DeviceError, CheckpointError, CardError) as exc:
        raise UsageError(str(exc).strip("'\"")) from None


def scan_thresholds(args: argparse.Namespace, card):
    from models.labels import Thresholds

    try:
        if args.threshold is None and args.band is None:
            return Thresholds.around(card.threshold, card.inconclusive_band)
        threshold = card.threshold if args.threshold is None else args.threshold
        return Thresholds.around(threshold, parse_band(args.band) if args.band else None)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def scan_with_progress(case, engine, entries, args: argparse.Namespace):
    """The scan's summary, or None when it was interrupted (what was scored is kept in the case)."""
    from app.output_guard import OutputRefused
    from app.scanning import run_scan

    progress = None
    if not args.quiet:
        from tqdm import tqdm

        progress = tqdm(total=len(entries), unit="file", file=sys.stderr, dynamic_ncols=True, mininterval=0.5,
                        smoothing=0.1)
    # by files done, not results: a file scored by several models is one step
    on_batch = (lambda _batch, summary: progress.update(summary.done - progress.n)) if progress is not None else None
    try:
        return run_scan(case, engine, entries, on_batch=on_batch, roots=args.paths)
    except KeyboardInterrupt:
        return None
    except OutputRefused as exc:
        raise UsageError(str(exc)) from None
    finally:
        if progress is not None:
            progress.close()


def write_scan_csv(case, model_ids: list[str], summary, csv_path: Path) -> int:
    from app.csv_export import export_models_csv

    try:  # one model: the same CSV as ever; several: their columns side by side
        return export_models_csv(case, model_ids, csv_path, paths=summary.paths)
    except OSError as exc:
        raise UsageError(f"cannot write {readable(csv_path)}: {exc.strerror or exc}; the results are safe "
                         f"in the case {readable(case.path)}") from None


# ---- models ----------------------------------------------------------------------------------------
def _library():
    from models.library import ModelLibrary

    return ModelLibrary()


def cmd_models_list(args: argparse.Namespace) -> int:
    library = _library()
    entries = library.entries()
    default = library.default_id()
    if args.json:
        print(json.dumps([{"id": e.card.id, "name": e.card.name, "architecture": e.card.architecture,
                           "shipped": e.shipped, "default": e.card.id == default,
                           "weights_sha256": e.card.weights_sha256} for e in entries], indent=2))
        return 0
    if not entries:
        print("No models installed. Import one with `forensight models import PATH`.")
        return 0
    for e in entries:
        mark = "*" if e.card.id == default else " "
        origin = "shipped" if e.shipped else "yours"
        print(f"{mark} {e.card.id:<28} {e.card.architecture:<22} {origin:<8} {e.card.name}")
    print("(* = default)")
    return 0


def cmd_models_show(args: argparse.Namespace) -> int:
    with library_errors_as_usage():
        entry = _library().get(args.id)
    print(f"# {entry.directory}")
    print(entry.card.to_json(), end="")
    return 0


def cmd_models_import(args: argparse.Namespace) -> int:
    spec = _input_options(args)
    with library_errors_as_usage(f"cannot import {args.path}: "):
        entry = _library().import_path(args.path, architecture=args.arch, model_id=args.model_id,
                                       name=args.name, fake_index=args.fake_index, policy=args.policy,
                                       threshold=args.threshold, family=args.family, fake_label=args.fake_label,
                                       input_spec=spec, tower=args.tower)
    card = entry.card
    family = f" [{card.family}]" if card.family else ""
    print(f"Imported {card.id}{family}: {card.architecture}, {card.num_logits} logit(s) ({card.output}), "
          f"input {card.input.policy} {card.input.size}, weights {card.weights_sha256[:12]}")
    return 0


def _input_options(args: argparse.Namespace) -> dict | None:
    """--input-json and --size/--resize/--mean/--std/--interpolation as one dict (the options win)."""
    spec: dict = {}
    if args.input_json:
        try:
            spec = json.loads(args.input_json.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise UsageError(f"cannot read --input-json {args.input_json}: {exc}") from None
        if not isinstance(spec, dict):
            raise UsageError("--input-json must hold a JSON object of input settings")
    for name in ("size", "resize", "interpolation"):
        if getattr(args, name) is not None:
            spec[name] = getattr(args, name)
    for name in ("mean", "std"):
        if getattr(args, name) is not None:
            try:
                values = [float(v) for v in getattr(args, name).split(",")]
            except ValueError:
                raise UsageError(f"--{name} expects three numbers R,G,B such as 0.5,0.5,0.5") from None
            spec[name] = values * 3 if len(values) == 1 else values
    return spec or None


def cmd_models_catalogue(args: argparse.Namespace) -> int:
    from models.families import catalogue_status

    rows = catalogue_status(_library())
    if args.json:
        print(json.dumps(rows, indent=2, ensure_ascii=False))
        return 0
    for row in rows:
        installed = ", ".join(row["installed"]) or "not installed"
        print(f"{row['id']:<20} {row['name']}  [{row['status']}; {installed}]")
        if row["paper"]:
            print(f"    {row['paper']} ({row['venue']})")
        for item in row["files"]:
            print(f"    file {item['file']}: {item['download']}")
        if row["licence"]:
            print(f"    licence: {row['licence']}")
    print("Import a downloaded file with `forensight models import FILE` (a Hugging Face model: its folder).")
    return 0


def cmd_models_remove(args: argparse.Namespace) -> int:
    with library_errors_as_usage():
        _library().remove(args.id)
    print(f"Removed {args.id}")
    return 0


def cmd_models_set(args: argparse.Namespace) -> int:
    from models.input_settings import parse_settings, set_model_input
    from models.preprocess import describe_policy

    try:
        changes = parse_settings(args.settings)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    with library_errors_as_usage(f"cannot change {args.id}: "):
        entry = set_model_input(_library(), args.id, changes)
    print(f"{args.id} now looks at {describe_policy(entry.card.input)}")
    return 0


def cmd_models_default(args: argparse.Namespace) -> int:
    with library_errors_as_usage():
        _library().set_default(args.id)
    print(f"Default model: {args.id}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
