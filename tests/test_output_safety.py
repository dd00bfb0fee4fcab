"""Outputs never land on evidence: the red-team findings on output paths, interrupts, the log and the report's
temporary file (issue 10, findings 1, 7, 9, 10, 12, 14). Commands run in-process through `main(argv)`, exactly as
a user types them (no -q), except where a real process is the point (signals)."""
import csv
import hashlib
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from tests.commands import run_in_process, run_python
from tests import images


forensight = run_in_process


def fingerprint(folder: Path) -> dict[str, tuple[str, int]]:
    """Every file under `folder` with its SHA-256 and mtime: what must stay identical."""
    return {str(p.relative_to(folder)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def evidence(tmp_path) -> Path:
    folder = tmp_path / "ev"
    folder.mkdir()
    for i in range(3):
        images.gradient(48, 48, seed=i).save(folder / f"img00{i}.jpg", quality=90)
    return folder


def one_line_refusal(code: int, err: str, *words: str) -> None:
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("forensight: error:"), err
    assert "Traceback" not in err
    for word in words:
        assert word in lines[0], lines[0]


def test_scan_outputs_over_or_among_evidence_are_refused_and_nothing_changes(tiny_model, evidence, tmp_path, capsys):
    before = fingerprint(evidence)
    attempts = [
        (("--csv", evidence / "img000.jpg"), "files being examined"),
        (("--csv", evidence / "results.csv"), "folder being examined"),
        (("--case", evidence / "x.sqlite"), "folder being examined"),
        (("--case", evidence / "img001.jpg"), "files being examined"),
    ]
    for extra, reason in attempts:
        code, _, err = forensight(capsys, "scan", evidence, "--recursive", *extra)
        one_line_refusal(code, err, reason)
    assert fingerprint(evidence) == before  # no byte, no mtime, no new file (no case, no -wal, no -shm)


def test_a_single_scanned_file_cannot_be_the_csv_and_its_folder_is_off_limits(tiny_model, evidence, capsys):
    target = evidence / "img002.jpg"
    before = target.read_bytes()
    code, _, err = forensight(capsys, "scan", target, "--csv", target)
    one_line_refusal(code, err, "files being examined")
    code, _, err = forensight(capsys, "scan", target, "--csv", evidence / "out.csv")
    one_line_refusal(code, err, "folder being examined")
    assert target.read_bytes() == before


def test_a_link_to_outside_evidence_protects_its_target(tiny_model, evidence, tmp_path, capsys):
    outside = tmp_path / "elsewhere" / "empty.jpg"  # an empty file: only being evidence protects it
    outside.parent.mkdir()
    outside.touch()
    (evidence / "link.jpg").symlink_to(outside)
    code, _, err = forensight(capsys, "scan", evidence, "--csv", outside)
    one_line_refusal(code, err, "files being examined")
    assert outside.stat().st_size == 0


def test_existing_files_that_are_not_our_outputs_are_not_overwritten(tiny_model, evidence, tmp_path, capsys):
    notes = tmp_path / "notes.csv"
    notes.write_text("my own notes, not a Forensight CSV\n")
    code, _, err = forensight(capsys, "scan", evidence, "--csv", notes)
    one_line_refusal(code, err, "not a Forensight CSV")
    assert notes.read_text() == "my own notes, not a Forensight CSV\n"

    out = tmp_path / "out" / "r.csv"
    out.parent.mkdir()
    assert forensight(capsys, "scan", evidence, "--csv", out)[0] == 0
    assert forensight(capsys, "scan", evidence, "--csv", out)[0] == 0  # re-running replaces our own CSV
    case = out.with_suffix(".case.sqlite")

    letter = tmp_path / "letter.pdf"
    letter.write_bytes(b"%PDF-1.4 someone else's document")
    code, _, err = forensight(capsys, "report", case, "--pdf", letter)
    one_line_refusal(code, err, "not a Forensight PDF report")
    assert letter.read_bytes() == b"%PDF-1.4 someone else's document"

    sidecar = tmp_path / "r.pdf.sha256"
    sidecar.write_text("keep me")
    code, _, err = forensight(capsys, "report", case, "--pdf", tmp_path / "r.pdf")
    one_line_refusal(code, err, "r.pdf.sha256")
    assert sidecar.read_text() == "keep me" and not (tmp_path / "r.pdf").exists()


def test_report_refuses_to_write_over_or_beside_the_cases_files(tiny_model, evidence, tmp_path, capsys):
    case = tmp_path / "c.sqlite"
    assert forensight(capsys, "scan", evidence, "--case", case)[0] == 0
    before = fingerprint(evidence)
    for target in (evidence / "img001.jpg", evidence / "report.pdf"):
        code, _, err = forensight(capsys, "report", case, "--pdf", target)
        one_line_refusal(code, err, "examined")
    code, _, err = forensight(capsys, "report", case, "--pdf", tmp_path / "r.pdf", "--csv", evidence / "img000.jpg")
    one_line_refusal(code, err, "files being examined")
    assert not (tmp_path / "r.pdf").exists()  # the CSV was checked before the PDF was built
    assert fingerprint(evidence) == before


def test_missing_output_folders_are_refused_before_the_scan(tiny_model, evidence, tmp_path, capsys, monkeypatch):
    import app.services.scanning

    def must_not_scan(*args, **kw):
        raise AssertionError("the scan started although its output cannot be written")

    monkeypatch.setattr(app.services.scanning, "run_scan", must_not_scan)
    for extra in (("--csv", tmp_path / "missing" / "x.csv"), ("--case", "/proc/missing/x.sqlite")):
        code, _, err = forensight(capsys, "scan", evidence, *extra)
        one_line_refusal(code, err, "does not exist")


def test_readme_report_command_with_progress_bar_and_csv_with_evidence(tiny_model, tmp_path, capsys):
    folder = tmp_path / "photos"
    folder.mkdir()
    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = "Canon", "EOS 5D"  # Make, Model
    images.gradient(64, 64).save(folder / "camera.jpg", exif=exif)
    images.gradient(40, 40).save(folder / "plain.png")
    case = tmp_path / "case.sqlite"
    assert forensight(capsys, "scan", folder, "--case", case)[0] == 0
    code, out, err = forensight(capsys, "report", case, "--pdf", tmp_path / "report.pdf", "--csv",
                                tmp_path / "report.csv")
    assert code == 0, err
    assert "report" in err and "Traceback" not in err  # the progress bar ran (tqdm 4.70 made it crash)
    with open(tmp_path / "report.csv", encoding="utf-8", newline="") as handle:
        rows = {Path(r["path"]).name: r for r in csv.DictReader(handle)}
    assert "Canon" in rows["camera.jpg"]["camera"]
    assert rows["plain.png"]["c2pa"] == "none"  # evidence columns are filled for every file


def test_report_leaves_no_partial_file_and_matching_permissions(tiny_model, evidence, tmp_path, capsys):
    case = tmp_path / "c.sqlite"
    assert forensight(capsys, "scan", evidence, "--case", case)[0] == 0
    dead = subprocess.Popen([sys.executable, "-c", "pass"])  # a process only for its pid, dead by the report
    dead.wait()
    stale = tmp_path / f".r.pdf.{dead.pid}.partial"  # what a report killed with -9 leaves behind
    stale.write_bytes(b"%PDF-1.4 half")
    assert forensight(capsys, "report", case, "--pdf", tmp_path / "r.pdf")[0] == 0
    assert not stale.exists()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
    pdf_mode = (tmp_path / "r.pdf").stat().st_mode & 0o777
    assert pdf_mode == (tmp_path / "r.pdf.sha256").stat().st_mode & 0o777


def run_with_patch(patch: str, *args) -> subprocess.CompletedProcess:
    """A real `forensight` process with `patch` (Python lines) applied before main() runs. A process, because the
    point is a signal (SIGINT, SIGTERM) sent to it: in the test run it would hit pytest's own handlers."""
    script = f"import os, signal, sys, time\n{patch}\nfrom app.cli.main import main\nsys.exit(main(sys.argv[1:]))\n"
    return run_python(script, *args, timeout=120)


CTRL_C = "def interrupted(*a, **k):\n    os.kill(os.getpid(), signal.SIGINT)\n    time.sleep(5)\n"


@pytest.mark.slow
@pytest.mark.parametrize("patch", [
    "import app.services.scanning\n" + CTRL_C + "app.services.scanning.list_entries = interrupted",  # while listing files
    "import models.library\n" + CTRL_C + "models.library.ModelLibrary.load = interrupted",  # loading the model
], ids=["listing", "loading"])
def test_ctrl_c_while_loading_or_listing_exits_130_quietly(tiny_model, evidence, tmp_path, patch):
    run = run_with_patch(patch, "scan", evidence, "--case", tmp_path / "c.sqlite")
    assert run.returncode == 130, run.stderr
    assert "Traceback" not in run.stderr and "KeyboardInterrupt" not in run.stderr
    assert run.stderr.strip() == "forensight: interrupted"


def test_an_unexpected_error_is_one_line_and_its_traceback_goes_to_the_log(tiny_model, evidence, tmp_path, capsys,
                                                                          monkeypatch, home):
    import app.services.scanning

    def broken(*args, **kw):
        raise RuntimeError("simulated bug deep inside")

    monkeypatch.setattr(app.services.scanning, "run_scan", broken)
    code, _, err = forensight(capsys, "scan", evidence, "--case", tmp_path / "c.sqlite")
    assert code == 1
    lines = err.strip().splitlines()
    assert "simulated bug deep inside" in lines[-1] and "forensight.log" in lines[-1]
    assert "Traceback" not in err
    log = (home / "logs" / "forensight.log").read_text()
    assert "Traceback" in log and "simulated bug deep inside" in log and "def broken" not in err


@pytest.mark.slow
def test_sigterm_during_a_report_removes_its_temporary_file(tiny_model, evidence, tmp_path, capsys):
    case = tmp_path / "c.sqlite"
    assert forensight(capsys, "scan", evidence, "--case", case)[0] == 0
    patch = ("import reportlab.platypus.doctemplate as dt\n"
             "def build(self, *a, **k):\n    self.filename.write(b'%PDF-1.4 partial')\n"
             "    os.kill(os.getpid(), signal.SIGTERM)\n    time.sleep(5)\n"
             "dt.BaseDocTemplate.build = build")
    run = run_with_patch(patch, "report", case, "--pdf", tmp_path / "r.pdf")
    assert run.returncode == 130, run.stderr
    assert not (tmp_path / "r.pdf").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".partial")] == []


def test_report_never_writes_into_a_scanned_folder_that_holds_only_sub_folders(tiny_model, tmp_path, capsys):
    tree = tmp_path / "card"
    (tree / "DCIM" / "100CANON").mkdir(parents=True)
    images.gradient(40, 40).save(tree / "DCIM" / "100CANON" / "IMG_0001.png")
    case = tmp_path / "c.sqlite"
    assert forensight(capsys, "scan", tree, "--recursive", "--case", case)[0] == 0
    code, _, err = forensight(capsys, "report", case, "--pdf", tree / "reports" / "r.pdf")
    one_line_refusal(code, err, "folder being examined")
    assert sorted(p.name for p in tree.iterdir()) == ["DCIM"]  # not even the reports/ folder was made


def test_outputs_cannot_reach_evidence_through_symbolic_links(tiny_model, tmp_path, capsys):
    real = tmp_path / "real"
    (real / "sub").mkdir(parents=True)
    images.gradient(40, 40).save(real / "sub" / "b.png")
    (tmp_path / "link").symlink_to(real)  # the examiner scans the folder under a link's name
    code, _, err = forensight(capsys, "scan", tmp_path / "link", "--recursive", "--case", real / "case.sqlite")
    one_line_refusal(code, err, "folder being examined")
    case = tmp_path / "c.sqlite"
    assert forensight(capsys, "scan", tmp_path / "link", "--recursive", "--case", case)[0] == 0
    code, _, err = forensight(capsys, "report", case, "--pdf", real / "report.pdf")
    one_line_refusal(code, err, "folder being examined")
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "photo.png").symlink_to(real / "sub" / "b.png")  # a scanned file that is a link
    code, _, err = forensight(capsys, "scan", tmp_path / "work" / "photo.png", "--csv", real / "sub" / "out.csv")
    one_line_refusal(code, err, "folder being examined")
    assert sorted(p.name for p in real.rglob("*")) == ["b.png", "sub"]


def test_files_named_like_sqlite_side_files_are_not_taken_for_ours(tiny_model, evidence, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "c.sqlite-journal").write_text("precious notes")  # SQLite would delete a journal it finds there
    code, _, err = forensight(capsys, "scan", evidence, "--case", out / "c.sqlite")
    one_line_refusal(code, err, "c.sqlite-journal")
    assert (out / "c.sqlite-journal").read_text() == "precious notes" and not (out / "c.sqlite").exists()


def test_a_first_release_case_with_relative_paths_keeps_reports_out_of_its_folders(tmp_path, capsys, monkeypatch):
    import sqlite3

    from app.case.schema import V1_SCHEMA

    (tmp_path / "t2" / "real" / "sub").mkdir(parents=True)
    case = tmp_path / "v1.sqlite"
    db = sqlite3.connect(case)
    db.executescript(V1_SCHEMA)
    db.execute("INSERT INTO meta VALUES ('schema_version', '1')")
    db.execute("INSERT INTO files (path, first_seen) VALUES ('real/sub/a.jpg', 1.0)")  # as the release stored it
    db.execute("INSERT INTO results (file_id, model_id, weights_sha256, p_fake, label, scored_at) "
               "VALUES (1, 'old', 'w', 0.2, 'real', 2.0)")
    db.commit()
    db.close()
    monkeypatch.chdir("/")  # the report runs from anywhere, not from where the scan ran
    code, _, err = forensight(capsys, "report", case, "--pdf", tmp_path / "t2" / "real" / "sub" / "r.pdf")
    one_line_refusal(code, err, "folder being examined")
    assert list((tmp_path / "t2" / "real" / "sub").iterdir()) == []


def test_training_commands_never_write_into_the_data_they_read(tiny_model, tmp_path, capsys):
    data = tmp_path / "data"
    for label in ("real", "fake"):
        (data / label).mkdir(parents=True)
        for i in range(2):
            images.gradient(32, 32, seed=i + (label == "fake") * 10).save(data / label / f"{i}.png")
    before = fingerprint(data)
    code, _, err = forensight(capsys, "data", "inspect", data, "--json", data / "real" / "0.png")
    one_line_refusal(code, err, "files being examined")
    code, _, err = forensight(capsys, "evaluate", "--model", "tiny", "--data", data, "--out", data / "eval")
    one_line_refusal(code, err, "folder being examined")
    assert fingerprint(data) == before
    code, out, err = forensight(capsys, "data", "inspect", data, "--json", tmp_path / "inspect.json")
    assert code == 0 and (tmp_path / "inspect.json").read_text().startswith("{")
