"""The PDF report, built from a real scanned case and read back with poppler (pdftoppm, pdftotext)."""
import hashlib
import re
import subprocess
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from app.case.store import Case
from app.report import ReportError, build_report
from app.services.scanning import list_entries, run_scan
from models.card import ModelCard, default_input_spec
from models.engine import ScanEngine
from models.library import ModelLibrary
from models.registry import build_model
from tests.commands import run_cli
from tests import images, needs

# poppler reads the PDF back: skipped on a developer's machine without it, a failure under CI (tests/needs.py)
pytestmark = pytest.mark.usefixtures("poppler")


def spread_model(library: ModelLibrary):
    """simple_cnn with a scaled-up head, so the awkward folder gets real, AI-generated and inconclusive rows."""
    torch.manual_seed(0)
    module = build_model("simple_cnn", 1)
    with torch.no_grad():
        module.classifier[4].weight.mul_(300)
    card = ModelCard(id="spread", name="Spread <test> model", architecture="simple_cnn", num_logits=1,
                     input=default_input_spec("simple_cnn"), trained_on="random weights & a fixed seed",
                     limitations="Never trained: its scores mean nothing.")
    return library.add(card, module.state_dict())


@pytest.fixture
def case_file(home, tmp_path) -> tuple[Path, dict]:
    library = ModelLibrary()
    spread_model(library)
    expected = images.good_and_bad_folder(tmp_path / "photos")
    path = tmp_path / "case.sqlite"
    with Case(path) as case:
        engine = ScanEngine(library.load("spread"), device="cpu", workers=1)
        run_scan(case, engine, list_entries([tmp_path / "photos"], False))
    return path, expected


pdf_text, pdf_pages = needs.pdf_text, needs.pdf_pages


def assert_shown_with_offset(text: str, label: str, offset: timedelta) -> None:
    """The timestamp after `label` is ISO 8601 with an explicit offset (±HH:MM or Z), the one expected, and
    names the present moment (a UTC time labelled with the local offset would be hours off)."""
    found = re.search(rf"{label}\s+(\d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?)([+-]\d\d:\d\d|Z)\b", text)
    assert found, f"no ISO 8601 timestamp with an explicit offset after {label!r}"
    shown = datetime.fromisoformat(found.group(1) + found.group(2).replace("Z", "+00:00"))
    assert shown.utcoffset() == offset, found.group(0)
    assert abs(shown - datetime.now(timezone.utc)) < timedelta(minutes=10), found.group(0)


@pytest.fixture
def kathmandu_clock(monkeypatch):
    """Local time at +05:45: an offset that no default zone, truncation or rounding produces."""
    monkeypatch.setenv("TZ", "Asia/Kathmandu")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_report_holds_every_part_an_examiner_needs(case_file, tmp_path, kathmandu_clock):
    case_path, expected = case_file
    pdf = tmp_path / "out" / "report.pdf"
    calls = []
    info = build_report(case_path, pdf, title="Case <42> & co", examiner="Jane Q. Examiner",
                        progress=lambda done, total: calls.append((done, total)))

    pages = pdf_pages(pdf, tmp_path / "png")
    assert len(pages) == info.pages >= 5
    for page in pages:  # every page has something on it besides white
        assert np.asarray(Image.open(page).convert("L")).min() < 128, page.name

    text = pdf_text(pdf)
    with Case(case_path) as case:
        rows = case.rows()
        weights = case.models()[0].weights_sha256
    labels = [r.label for r in rows if not r.error]
    assert "Jane Q. Examiner" in text and "Case <42> & co" in text  # escaped markup, shown literally
    assert "Page 1 of" in text and f"Page {info.pages} of {info.pages}" in text
    assert weights in text
    assert "random weights & a fixed seed" in text and "Never trained: its scores mean nothing." in text
    flagged = [r for r in rows if r.label in ("AI-generated", "inconclusive") and not r.error]
    assert flagged and info.flagged == len(flagged)
    for row in flagged:  # flagged pages give the full hash on one line
        assert row.sha256 in text
    for row in rows:  # the table gives every hash in two halves
        assert row.sha256[:32] in text and row.sha256[32:] in text
    counts = text.split("Summary", 1)[1].split()
    for label in ("real", "AI-generated", "inconclusive"):
        assert counts[counts.index(label) + 1] == str(labels.count(label))
    assert counts[counts.index("unreadable") + 1] == str(sum(1 for v in expected.values() if v))
    appendix = text.split("Appendix: unreadable files", 1)[1]
    for name, reason in expected.items():
        if reason:
            assert name in appendix and reason in appendix.replace("\n", " ")
    assert_shown_with_offset(text, "Created", timedelta(hours=5, minutes=45))  # the examiner's clock

    sidecar = Path(str(pdf) + ".sha256")
    digest = hashlib.sha256(pdf.read_bytes()).hexdigest()
    assert info.sha256 == digest and sidecar.read_text() == f"{digest}  report.pdf\n"
    assert calls[-1][0] == calls[-1][1] == len(rows) + len(flagged)


def test_only_flagged_lists_fewer_files_and_says_so(case_file, tmp_path):
    case_path, _ = case_file
    full = build_report(case_path, tmp_path / "all.pdf", title="T", examiner="E")
    flagged = build_report(case_path, tmp_path / "flagged.pdf", title="T", examiner="E", only_flagged=True)
    assert flagged.files < full.files and flagged.pages <= full.pages
    assert flagged.flagged == full.flagged == flagged.files
    text = pdf_text(tmp_path / "flagged.pdf")
    assert "Only the flagged files" in text
    with Case(case_path) as case:
        real = [r for r in case.rows() if r.label == "real" and not r.error]
    assert real and all(r.sha256[:32] not in text for r in real)


def test_report_never_changes_the_evidence_and_notes_altered_files(case_file, tmp_path):
    case_path, _ = case_file
    photos = tmp_path / "photos"
    with Case(case_path) as case:
        flagged = next(r for r in case.rows() if r.label in ("AI-generated", "inconclusive"))
    images.gradient(30, 30, 9).save(flagged.path, format=Image.open(flagged.path).format)  # altered after scan
    before = {p.name: p.read_bytes() for p in photos.iterdir()}
    build_report(case_path, tmp_path / "r.pdf")
    assert {p.name: p.read_bytes() for p in photos.iterdir()} == before
    assert "no longer matches" in pdf_text(tmp_path / "r.pdf").replace("\n", " ")


def test_unknown_model_and_missing_case_are_errors(case_file, tmp_path):
    case_path, _ = case_file
    with pytest.raises(ReportError, match="no results"):
        build_report(case_path, tmp_path / "r.pdf", model_id="nope")
    with pytest.raises(ReportError, match="does not exist"):
        build_report(tmp_path / "missing.sqlite", tmp_path / "r.pdf")
    assert not (tmp_path / "missing.sqlite").exists() and not (tmp_path / "r.pdf").exists()




def test_cli_report_writes_pdf_hash_and_csv(case_file, tmp_path):
    case_path, expected = case_file
    pdf, csv = tmp_path / "cli.pdf", tmp_path / "cli.csv"
    done = run_cli("report", str(case_path), "--pdf", str(pdf), "--csv", str(csv), "--examiner", "CLI Person",
                   "--only", "flagged", "-q")
    assert done.returncode == 0, done.stderr
    digest = hashlib.sha256(pdf.read_bytes()).hexdigest()
    assert digest in done.stdout
    assert Path(str(pdf) + ".sha256").read_text().startswith(digest)
    assert "CLI Person" in pdf_text(pdf)
    rows = csv.read_text(encoding="utf-8").splitlines()
    assert 1 < len(rows) < 1 + len(expected)  # header + the flagged rows only

    missing = run_cli("report", str(tmp_path / "nope.sqlite"), "--pdf", str(pdf))
    assert missing.returncode == 2 and len(missing.stderr.strip().splitlines()) == 1
    assert "does not exist" in missing.stderr


NAMES = {  # file name → what pdftotext must read back for it
    "北京天安门广场.jpg": "北京天安门广场.jpg",  # Chinese
    "東京タワーの夜景.jpg": "東京タワーの夜景.jpg",  # Japanese kanji and katakana
    "서울의 거리 사진.jpg": "서울의 거리 사진.jpg",  # Korean
    "Фото из Москвы.jpg": "Фото из Москвы.jpg",  # Cyrillic, drawn by the main font
    "party \U0001F600 photo.jpg": "party [U+1F600] photo.jpg",  # no font has it: written as its code point
}


def case_of_named_files(tmp_path: Path, names) -> Path:
    """A case in which the spread model scanned one small picture under each name (PNG for .png, else JPEG)."""
    library = ModelLibrary()
    spread_model(library)
    folder = tmp_path / "photos"
    folder.mkdir()
    for seed, name in enumerate(names):
        images.gradient(64, 48, seed).save(folder / name, format="PNG" if name.endswith(".png") else "JPEG",
                                           quality=90)
    case_path = tmp_path / "case.sqlite"
    with Case(case_path) as case:
        run_scan(case, ScanEngine(library.load("spread"), device="cpu", workers=1), list_entries([folder], False))
    return case_path


def test_names_in_any_script_are_printed_exactly(home, tmp_path):
    case_path = case_of_named_files(tmp_path, NAMES)
    pdf = tmp_path / "names.pdf"
    build_report(case_path, pdf, title="事件 2026-041 报告", examiner="김민준")

    text = pdf_text(pdf)
    for shown in NAMES.values():
        assert shown in text.replace("\n", ""), shown
    assert "事件 2026-041 报告 — case case.sqlite" in text  # the running header too
    assert "김민준" in text
    fonts = subprocess.run(["pdffonts", str(pdf)], check=True, capture_output=True, text=True).stdout
    cjk = [line for line in fonts.splitlines() if "FS-CJK" in line or "WenQuanYi" in line]
    assert cjk and all(" yes " in line for line in cjk), fonts  # embedded, so any reader shows it
    assert pdf.stat().st_size < 600_000  # only the used glyphs of the 5 MB font are embedded


def test_flagged_pages_say_where_grad_cam_ran_and_a_missing_gpu_is_a_usage_error(case_file, tmp_path):
    case_path, _ = case_file
    build_report(case_path, tmp_path / "cpu.pdf", device="cpu")
    assert "computed on CPU" in pdf_text(tmp_path / "cpu.pdf").replace("\n", " ")
    if not torch.cuda.is_available():
        done = run_cli("report", str(case_path), "--pdf", str(tmp_path / "gpu.pdf"), "--device", "cuda", "-q")
        assert done.returncode == 2 and "no CUDA GPU" in done.stderr
        assert not (tmp_path / "gpu.pdf").exists()
