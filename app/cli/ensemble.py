"""`forensight ensemble create`: a thin printer over app/services/ensemble.py."""
from __future__ import annotations

import argparse
from pathlib import Path

from app.cli.options import add_scoring_options, run_reference_job
from models.ensemble import COMBINE_RULES  # plain data: no torch, no library


def add_command(sub) -> None:
    ensemble = sub.add_parser("ensemble", help="combine several detectors into one library model")
    esub = ensemble.add_subparsers(dest="ensemble_command", metavar="ACTION", required=True)
    p = esub.add_parser(
        "create", help="a new ensemble of library models",
        description="Make ID, a library model that scores each file with every --member in one pass and combines "
        "their P(fake): mean_logit (the mean of the members' logits, each after its own calibration) or logistic "
        "(a logistic regression on those logits, fitted on --real and --fake, measured by 5-fold "
        "cross-validation against each member). The members are unchanged; the pictures are only read.")
    p.add_argument("id", metavar="ID", help="id of the new ensemble")
    p.add_argument("--member", action="append", required=True, metavar="MODEL", help="a library model; repeat "
                   "it (2 to 8 members, none of them an ensemble)")
    p.add_argument("--combine", choices=COMBINE_RULES, default="mean_logit", help="how the members' logits are "
                   "combined (default mean_logit)")
    p.add_argument("--real", type=Path, metavar="FOLDER", help="pictures known to be real (sub-folders included): "
                   "required by logistic; with mean_logit the combination is measured on them")
    p.add_argument("--fake", type=Path, metavar="FOLDER", help="pictures known to be AI-generated (at least 20, "
                   "and 20 real)")
    p.add_argument("--name", metavar="TEXT", help="display name (default: Ensemble of A + B)")
    add_scoring_options(p)
    p.set_defaults(run=cmd_ensemble_create)


def cmd_ensemble_create(args: argparse.Namespace) -> int:
    from app.services.ensemble import EnsembleRequest, run_ensemble
    from models.ensemble import EnsembleError

    request = EnsembleRequest(args.id, tuple(args.member), args.combine, args.real, args.fake, args.name,
                              args.device, args.batch_size)
    return run_reference_job(args, run_ensemble, request, unit="picture", refusals=(EnsembleError,),
                             failing=f"cannot create {args.id}: ")
