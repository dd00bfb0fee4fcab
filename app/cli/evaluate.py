"""`forensight evaluate`: measure a library model on a labelled dataset (metrics, plots, robustness sweeps) and
print the summary of the report training/evaluate.py writes."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from app.cli.options import DEVICE_HELP, metric_text, output_outside_data
from app.errors import UsageError, library_errors_as_usage
from app.output_guard import JSON


def add_command(sub) -> None:
    """`forensight evaluate`: the model, the labelled data and where the report goes."""
    p = sub.add_parser("evaluate", help="measure a model on a labelled dataset: metrics, plots, sweeps")
    p.add_argument("--model", required=True, help="library model id")
    p.add_argument("--data", required=True, type=Path, help="dataset folder with real/ and fake/ (optionally "
                   "under train/, val/, test/; see README)")
    p.add_argument("--out", required=True, type=Path, help="folder for report.json, plots and predictions")
    p.add_argument("--split", default="auto", help="auto (test if present, else all), test, val, train, all")
    p.add_argument("--threshold", type=float, help="decision threshold (default: the card's)")
    p.add_argument("--no-sweeps", action="store_true", help="skip the robustness sweeps")
    p.add_argument("--sweep-images", type=int, default=400, help="images used by the sweeps (stratified)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--device", default="auto", help=DEVICE_HELP)
    p.set_defaults(run=cmd_evaluate)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from models.library import ModelLibrary
    from training.data import LayoutError
    from training.evaluate import evaluate

    output_outside_data(args.out / "report.json", JSON, args.data)  # the report folder is never among the data
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
        lines.append(f"  {key:<18} {metric_text(m.get(key))}")
    cm = m["confusion_matrix"]
    lines.append(f"  confusion          TN {cm['tn']}  FP {cm['fp']}  FN {cm['fn']}  TP {cm['tp']}")
    if m.get("calibration"):
        lines.append(f"  ECE                {metric_text(m['calibration'].get('ece'))}")
    base = m.get("baselines", {})
    if base:
        lines.append(f"  baselines          random AP {metric_text(base['random'].get('average_precision'))}, "
                     f"majority accuracy {metric_text(base['majority'].get('accuracy'))}")
    if len(report["per_group"]) > 1:
        lines.append("  per group (AP / accuracy / n):")
        for group, g in report["per_group"].items():
            lines.append(f"    {group:<24} {metric_text(g['average_precision'])} / {metric_text(g['accuracy'])} / {g['n']}")
    for sweep, rows in report.get("robustness", {}).items():
        cells = ", ".join(f"{r['value']:g}: AP {metric_text(r['average_precision'])} acc {metric_text(r['accuracy'])}"
                          for r in rows)
        lines.append(f"  {sweep:<18} {cells}")
    if report["excluded"]:
        lines.append(f"  {len(report['excluded'])} file(s) excluded as unreadable")
    return lines
