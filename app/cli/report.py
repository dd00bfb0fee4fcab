"""`forensight report`: the case's PDF report (and optionally its CSV), the same document as the desktop app's."""
from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

from app.cli.options import DEVICE_HELP
from app.errors import UsageError


def add_command(sub) -> None:
    p = sub.add_parser("report", help="write a PDF report of a case (with its SHA-256 beside it)",
                       description="Build a PDF report from a case database: method, summary, every file, "
                       "a page per flagged image, unreadable files and the models' limitations.")
    p.add_argument("case", type=Path, metavar="CASE", help="case database (.sqlite) written by `forensight scan`")
    p.add_argument("--pdf", required=True, type=Path, metavar="FILE", help="the PDF to write (its SHA-256 goes "
                   "beside it, in FILE.sha256)")
    p.add_argument("--csv", type=Path, metavar="FILE", help="also write the same rows as CSV")
    p.add_argument("--title", default="Forensight report", help="the title on the cover")
    p.add_argument("--examiner", default="", metavar="NAME", help="who made the examination (on the cover)")
    p.add_argument("--only", choices=("flagged",), help="list only AI-generated and inconclusive files")
    p.add_argument("--model", metavar="ID", help="whose results to report (default: the most recently used)")
    p.add_argument("--device", default="auto", help=f"where Grad-CAM overlays are computed: {DEVICE_HELP}")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=cmd_report)


def cmd_report(args: argparse.Namespace) -> int:
    if not args.case.is_file():
        raise UsageError(f"case file {args.case} does not exist")
    from models.device import DeviceError, select_device

    try:
        select_device(args.device)  # a device that is not there is a usage error, not a report without overlays
    except DeviceError as exc:
        raise UsageError(str(exc)) from None

    with contextlib.ExitStack() as stack:
        # opened once: the CSV's place is checked before the PDF (a refused CSV must not cost a long report),
        # and the same read-only snapshot then gives its rows
        csv_case = stack.enter_context(open_checked_for_csv(args)) if args.csv else None
        info = write_pdf(args)
        print(f"PDF: {info.pdf_path} ({info.pages} pages, {info.files} files, {info.flagged} flagged)")
        print(f"SHA-256: {info.sha256}  ({info.sha256_path.name})")
        if csv_case is not None:
            print(f"CSV: {args.csv} ({write_report_csv(args, csv_case)} rows)")
    return 0


def write_pdf(args: argparse.Namespace):
    from app.report import ReportError, build_report

    bars = []  # made on the first progress call, so a refused report prints no empty bar

    def progress(done: int, total: int) -> None:
        if not bars:
            from tqdm import tqdm

            bars.append(tqdm(total=total, unit="file", file=sys.stderr, dynamic_ncols=True, mininterval=0.5,
                             desc="report"))
        bars[0].total, bars[0].n = total, done
        bars[0].refresh()

    try:
        return build_report(args.case, args.pdf, title=args.title, examiner=args.examiner,
                            only_flagged=args.only == "flagged", model_id=args.model,
                            progress=None if args.quiet else progress, device=args.device)
    except ReportError as exc:
        raise UsageError(str(exc)) from None
    except OSError as exc:
        raise UsageError(f"cannot write {args.pdf}: {exc.strerror or exc}") from None
    finally:
        for bar in bars:
            bar.close()


def open_checked_for_csv(args: argparse.Namespace):
    """The case, read-only, once the CSV's place is known to be allowed (not among its evidence)."""
    from app.case.store import Case, CaseError
    from app.output_guard import CSV, OutputRefused, case_evidence, check_output

    try:
        case = Case(args.case, readonly=True)
    except CaseError as exc:
        raise UsageError(str(exc)) from None
    try:
        check_output(args.csv, CSV, case_evidence(case))
    except OutputRefused as exc:
        case.close()
        raise UsageError(str(exc)) from None
    return case


def write_report_csv(args: argparse.Namespace, case) -> int:
    from app.case.csv_export import model_calibrations, write_csv
    from app.report.data import select_rows

    try:  # the place was checked when the case was opened
        return write_csv(select_rows(case, args.model, args.only == "flagged"), args.csv, case.evidence_for,
                         model_calibrations(case))
    except OSError as exc:
        raise UsageError(f"cannot write {args.csv}: {exc.strerror or exc}") from None
