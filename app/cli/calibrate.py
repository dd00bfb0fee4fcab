"""`forensight calibrate`: a thin printer over app/services/calibration.py."""
from __future__ import annotations

import argparse
from pathlib import Path

from app.cli.options import add_scoring_options, run_reference_job


def add_command(sub) -> None:
    p = sub.add_parser(
        "calibrate", help="calibrate a detector on your own real (and AI-generated) photos: a new library model",
        description="Score photos you know are real (and, with --fake, photos you know are AI-generated) with "
        "MODEL, fit a calibration of its P(fake) (temperature, Platt or isotonic, chosen by held-out log loss; "
        "only the threshold without --fake) and set the threshold where the false-positive rate on your real "
        "photos has a 95% upper bound at or below --target-fpr. The result is a new model in the library; "
        "MODEL is unchanged and the photos are only read.")
    p.add_argument("model", metavar="MODEL", help="model id from `forensight models list`")
    p.add_argument("--real", required=True, type=Path, metavar="FOLDER", help="photos known to be real "
                   "(sub-folders included), from cameras and processing like your casework's")
    p.add_argument("--fake", type=Path, metavar="FOLDER", help="pictures known to be AI-generated (sub-folders "
                   "included); without them only the threshold is set")
    p.add_argument("--target-fpr", type=float, default=0.01, metavar="RATE", help="the false-positive rate to "
                   "hold on real photos, as a fraction (default 0.01 = 1%%: needs at least 299 real photos)")
    p.add_argument("--name", metavar="ID", help="id of the new model (default: MODEL-calibrated-YYYYMMDD)")
    p.add_argument("--case", type=Path, metavar="CASE.sqlite", help="a scanned case: calibration photos that "
                   "are also in it (same SHA-256) are refused; the case is only read")
    p.add_argument("--allow-case-overlap", action="store_true", help="calibrate even when photos of --case "
                   "are among the calibration photos (the new card says how many)")
    add_scoring_options(p)
    p.set_defaults(run=cmd_calibrate)


def cmd_calibrate(args: argparse.Namespace) -> int:
    from app.services.calibration import CalibrationError, CalibrationRequest, run_calibration

    request = CalibrationRequest(args.model, args.real, args.fake, args.target_fpr, args.name, args.case,
                                 args.allow_case_overlap, args.device, args.batch_size)
    return run_reference_job(args, run_calibration, request, unit="photo", refusals=(CalibrationError,),
                             failing=f"cannot calibrate {args.model}: ")
