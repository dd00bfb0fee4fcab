"""build_report: case database in, PDF plus its `.sha256` beside it out."""
from __future__ import annotations

import glob
import hashlib
import os
import platform
import socket
import time
from dataclasses import dataclass
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import Callable

from reportlab.platypus import SimpleDocTemplate

from app import __version__
from app.case.store import Case, CaseError
from app.output_guard import PDF, OutputRefused, case_evidence, check_output
from models.paths import readable
from app.report import document
from app.report.data import ReportError, load_report_data
from app.report.layout import HEADER_GAP, MARGIN, PAGE, numbered_canvas, styles

__all__ = ["ReportError", "ReportInfo", "build_report", "write_sha256"]


@dataclass(frozen=True)
class ReportInfo:
    pdf_path: Path
    sha256: str
    sha256_path: Path
    pages: int
    files: int  # rows in the file table
    flagged: int  # pages of flagged images
    seconds: float


def build_report(case_path: Path, pdf_path: Path, *, title: str = "Forensight report", examiner: str = "",
                 only_flagged: bool = False, model_id: str | None = None,
                 progress: Callable[[int, int], None] | None = None, device: str | None = "auto") -> ReportInfo:
    """Write the PDF report of one case (results of model_id, else of the most recently used model).
    `device` computes the flagged pages' Grad-CAM overlays (auto: CUDA, then MPS, then the CPU)."""
    start = time.perf_counter()
    case_path, pdf_path = Path(case_path), Path(pdf_path)
    if not case_path.is_file():
        raise ReportError(f"case file {case_path} does not exist")
    try:
        with Case(case_path, readonly=True) as case:  # a report never writes to the case
            data = load_report_data(case, model_id, only_flagged)
            evidence = case_evidence(case)
    except CaseError as exc:
        raise ReportError(str(exc)) from None
    try:  # never over a scanned file, into a scanned folder, or over a file that is not an earlier report
        pdf_path = check_output(pdf_path, PDF, evidence, create_folder=True)
    except OutputRefused as exc:
        raise ReportError(str(exc)) from None

    created = datetime.now().astimezone()  # local time with its zone: the examiner's clock
    s = styles()
    total = len(data.rows) + len(data.flagged)
    report_progress = progress or (lambda done, total: None)
    story = document.cover(s, data, title=title, examiner=examiner, created=created, machine=machine_facts())
    story += document.method(s, data) + document.summary(s, data)
    table, done = document.file_table(s, data, report_progress, 0, total)
    pages, done = document.flagged_pages(s, data, report_progress, done, total, device)
    story += table + pages + document.unreadable_appendix(s, data) + document.limitations(s, data)

    page_counts: list[int] = []
    remove_stale_partials(pdf_path)
    temporary = partial_path(pdf_path)
    # written beside the target and renamed: a failed build never leaves half a PDF under the real name.
    # Created exclusively and never through a link, so it cannot be made to write anywhere else.
    handle = os.fdopen(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0),
                               0o666), "wb")
    try:
        with handle:
            doc = SimpleDocTemplate(handle, pagesize=PAGE, leftMargin=MARGIN, rightMargin=MARGIN,
                                    topMargin=MARGIN + HEADER_GAP, bottomMargin=MARGIN, title=title,
                                    author=examiner, creator=f"Forensight {__version__}",
                                    subject=f"Case {readable(case_path.name)}")
            doc.build(story, canvasmaker=numbered_canvas(title, readable(case_path.name), page_counts))
        os.replace(temporary, pdf_path)
    finally:
        temporary.unlink(missing_ok=True)
    digest, sidecar = write_sha256(pdf_path)
    return ReportInfo(pdf_path, digest, sidecar, page_counts[-1] if page_counts else 0, len(data.rows),
                      len(data.flagged), time.perf_counter() - start)


def partial_path(pdf_path: Path) -> Path:
    """Where a report is written before it is complete; the process id lets a later run tell a report still
    being written by another process from one left behind by a process that was killed."""
    return pdf_path.with_name(f".{pdf_path.name}.{os.getpid()}.partial")


def remove_stale_partials(pdf_path: Path) -> None:
    """Remove what killed runs (kill -9, power loss) left while writing this report: no cleanup could run."""
    prefix = f".{pdf_path.name}."
    for leftover in pdf_path.parent.glob(f"{glob.escape(prefix)}*.partial"):
        pid = leftover.name[len(prefix):-len(".partial")]
        if pid.isdigit() and (int(pid) == os.getpid() or not _process_alive(int(pid))):  # ours: not yet made
            leftover.unlink(missing_ok=True)


def _process_alive(pid: int) -> bool:
    if os.name != "posix":  # os.kill(pid, 0) would terminate the process on Windows
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        pass
    return True


def write_sha256(path: Path) -> tuple[str, Path]:
    """The file's SHA-256, also saved as `<file>.sha256` in sha256sum's format (checkable with sha256sum -c)."""
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    sidecar = path.with_name(path.name + ".sha256")
    sidecar.write_text(f"{digest}  {path.name}\n", encoding="utf-8")
    return digest, sidecar


def machine_facts() -> dict[str, str]:
    def version(package: str) -> str:
        try:
            return metadata.version(package)
        except metadata.PackageNotFoundError:
            return "not installed"

    return {"forensight": __version__, "hostname": socket.gethostname(), "os": platform.platform(),
            "python": platform.python_version(), "torch": version("torch"), "reportlab": version("reportlab")}
