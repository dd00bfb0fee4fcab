"""`forensight scan`: score every file under the given paths into a case, and optionally a CSV."""
from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

from app.cli.options import add_scoring_options
from app.errors import UsageError
from models.paths import readable


def add_command(sub) -> None:
    """The scan subcommand and its options."""
    scan = sub.add_parser("scan", help="score every file in folders or files", description="Score every file "
                          "under PATH with a detector; write results to a case database and optionally a CSV.")
    scan.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    scan.add_argument("-r", "--recursive", action="store_true", help="descend into sub-folders")
    scan.add_argument("--model", metavar="ID", action="append", help="model id from `forensight models list` "
                      "(default: the default model, `forensight models default`); repeat it to score every file "
                      "with several models in one pass")
    scan.add_argument("--threshold", type=float, metavar="T", help="P(fake) at or above which an image is "
                      "called AI-generated (default: the model card's; with several models, every model's)")
    scan.add_argument("--band", metavar="LOW,HIGH", help="inconclusive band around the threshold (LOW ≤ threshold "
                      "≤ HIGH), e.g. 0.3,0.7; the threshold twice, e.g. 0.5,0.5, disables it, so 0,0 is refused "
                      "(default: the card's, or 0.3-0.7's width in log-odds around --threshold); a band reaching 0 or 1 is "
                      "refused")
    scan.add_argument("--csv", type=Path, metavar="FILE", help="also write the results as CSV")
    scan.add_argument("--case", type=Path, metavar="FILE", help="case database (default: beside the CSV, "
                      "else in the user data folder, named after the scanned paths)")
    add_scoring_options(scan)
    scan.add_argument("--workers", type=int, default=None, metavar="N", help="decoding threads (default: "
                      "up to 4 on the CPU; on a GPU one per core, up to 32)")
    scan.set_defaults(run=cmd_scan)


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

    from app.case.store import Case, CaseError
    from app.services.scanning import list_entries
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
    from app.services.scanning import run_scan

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
    from app.case.csv_export import export_models_csv

    try:  # one model: the same CSV as ever; several: their columns side by side
        return export_models_csv(case, model_ids, csv_path, paths=summary.paths)
    except OSError as exc:
        raise UsageError(f"cannot write {readable(csv_path)}: {exc.strerror or exc}; the results are safe "
                         f"in the case {readable(case.path)}") from None
