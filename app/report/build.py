"""build_report: case database in, PDF plus its `.sha256` beside it out."""
from __future__ import annotations

import hashlib
import os
import platform
import socket
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import Callable

from reportlab.platypus import SimpleDocTemplate

from app import __version__
from app.case import Case, CaseError
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
        with Case(case_path) as case:
            data = load_report_data(case, model_id, only_flagged)
    except CaseError as exc:
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
    pdf_path.parent.mkdir(parents=True, exist_ok=True)
    # written beside the target and renamed: a failed build never leaves half a PDF under the real name
    handle, temporary = tempfile.mkstemp(prefix=".report-", suffix=".pdf", dir=pdf_path.parent)
    os.close(handle)
    try:
        doc = SimpleDocTemplate(temporary, pagesize=PAGE, leftMargin=MARGIN, rightMargin=MARGIN,
                                topMargin=MARGIN + HEADER_GAP, bottomMargin=MARGIN, title=title,
                                author=examiner, creator=f"Forensight {__version__}",
                                subject=f"Case {case_path.name}")
        doc.build(story, canvasmaker=numbered_canvas(title, case_path.name, page_counts))
        os.replace(temporary, pdf_path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
    digest, sidecar = write_sha256(pdf_path)
    return ReportInfo(pdf_path, digest, sidecar, page_counts[-1] if page_counts else 0, len(data.rows),
                      len(data.flagged), time.perf_counter() - start)


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
