"""What some tests need beyond the Python standard library: project dependencies (installed by the README's
install line) and poppler-utils (installed by .ci/run). On a developer's machine a missing one skips the tests
that need it; under CI (the CI environment variable set) it fails them, so nothing is skipped silently there."""
from __future__ import annotations

import importlib
import os
import shutil
import subprocess
from pathlib import Path
from types import ModuleType

import pytest

IN_CI = os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")
POPPLER = ("pdftotext", "pdftoppm", "pdfimages", "pdffonts")


def missing(what: str) -> None:
    """Skip (locally) or fail (CI) the current test or module because `what` is not installed."""
    if IN_CI:
        pytest.fail(f"{what} is missing, and CI must have it (README install line, .ci/run)", pytrace=False)
    pytest.skip(f"needs {what}", allow_module_level=True)


def dependency(name: str) -> ModuleType:
    """Import a project dependency by module name (transformers, onnxruntime, open_clip, c2pa...)."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        error = exc
    missing(f"the Python package {name} ({error})")


def poppler(*tools: str) -> None:
    """The poppler-utils programs the test reads PDFs back with (all of them when none are named)."""
    absent = [tool for tool in tools or POPPLER if shutil.which(tool) is None]
    if absent:
        missing(f"poppler-utils ({', '.join(absent)})")


def pdf_text(pdf: Path, *options: str) -> str:
    """The PDF's text as pdftotext reads it (options such as -layout or -bbox-layout before the file)."""
    return subprocess.run(["pdftotext", *options, str(pdf), "-"], check=True, capture_output=True,
                          text=True).stdout


def pdf_pages(pdf: Path, out: Path, dpi: int = 50) -> list[Path]:
    """Every page of the PDF drawn to a PNG in `out` (created), in page order."""
    out.mkdir(parents=True, exist_ok=True)
    subprocess.run(["pdftoppm", "-png", "-r", str(dpi), str(pdf), str(out / "page")], check=True)
    return sorted(out.glob("page-*.png"))
