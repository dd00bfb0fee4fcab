"""The `forensight` command as a user runs it: in-process through main(argv) (a real process only where it is
killed), a real case database, a real CSV."""
import csv
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from models.library import ModelLibrary
from tests.commands import run_cli
from tests import images
from tests.conftest import REPO, make_model


forensight = run_cli  # in-process, as typed (tests/commands.py)


def test_scan_writes_one_row_per_file_to_csv_and_case(tiny_model, tmp_path):
    expected = images.good_and_bad_folder(tmp_path / "photos")
    (tmp_path / "photos" / "sub dir").mkdir()
    images.gradient(50, 50).save(tmp_path / "photos" / "sub dir" / "nested.png")
    expected["nested.png"] = None
    out = tmp_path / "report" / "photos.csv"
    out.parent.mkdir()
    run = forensight("scan", tmp_path / "photos", "--recursive", "--csv", out, "--batch-size", "4")
    assert run.returncode == 0, run.stderr
    assert "unreadable" in run.stdout and "decompression bomb" in run.stdout
    assert "files/s" in run.stdout

    with open(out, encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert sorted(Path(r["path"]).name for r in rows) == sorted(expected)
    by_name = {Path(r["path"]).name: r for r in rows}
    for name, reason in expected.items():
        row = by_name[name]
        if reason is None:
            assert 0 <= float(row["p_fake"]) <= 1 and row["label"] and not row["error"], row
        else:
            assert row["p_fake"] == "" and reason in row["error"].lower(), row
    assert by_name["=HYPERLINK(evil).png"]["file_name"] == "'=HYPERLINK(evil).png"  # neutralised formula
    assert "фото ünïcødé 写真.png" in by_name

    case = out.with_suffix(".case.sqlite")
    db = sqlite3.connect(case)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("SELECT COUNT(*) FROM files").fetchone()[0] == len(expected)
    assert db.execute("SELECT COUNT(*) FROM results WHERE error IS NOT NULL").fetchone()[0] == 5


def test_rerun_reuses_scores_and_duplicates_are_not_rescored(tiny_model, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(6):
        images.gradient(40, 40, seed=i).save(folder / f"{i}.png")
    case = tmp_path / "case.sqlite"
    assert forensight("scan", folder, "--case", case, "-q").returncode == 0
    first = sqlite3.connect(case).execute("SELECT file_id, p_fake, scored_at FROM results ORDER BY file_id").fetchall()
    (folder / "copy of 0.png").write_bytes((folder / "0.png").read_bytes())
    second = forensight("scan", folder, "--case", case, "-q")
    assert second.returncode == 0
    assert "7 scores reused" in second.stdout  # six re-runs + one duplicate
    db = sqlite3.connect(case)
    after = db.execute("SELECT file_id, p_fake, scored_at FROM results ORDER BY file_id").fetchall()
    assert after[:6] == first  # untouched: neither rescored nor rewritten
    dup = db.execute("SELECT r.p_fake, r.reused FROM results r JOIN files f ON f.id = r.file_id "
                     "WHERE f.path LIKE '%copy of 0.png'").fetchone()
    assert dup == (first[0][1], 1)


@pytest.mark.slow
def test_killed_scan_resumes_without_rescoring(home, tmp_path):
    make_model(ModelLibrary(), "slow", "resnet18", num_logits=2)
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(80):  # resnet18 two at a time on the CPU: seconds in all, several batches after the 10th row
        images.gradient(96, 96, seed=i).save(folder / f"{i:03d}.jpg", "JPEG")
    case = tmp_path / "case.sqlite"
    # a real process: only one can be killed with SIGKILL midway, leaving the case as a crash leaves it
    process = subprocess.Popen([sys.executable, "-m", "app", "scan", str(folder), "--case", str(case),
                                "--batch-size", "2", "--workers", "1", "--device", "cpu", "-q"], cwd=REPO,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        scored = 0
        while time.time() < deadline and scored < 10:
            time.sleep(0.1)
            if case.exists():
                try:
                    scored = sqlite3.connect(case).execute("SELECT COUNT(*) FROM results").fetchone()[0]
                except sqlite3.OperationalError:
                    pass
        process.send_signal(signal.SIGKILL)
        process.wait()
    finally:
        if process.poll() is None:
            process.kill()
    db = sqlite3.connect(case)
    before = dict(db.execute("SELECT file_id, scored_at FROM results").fetchall())
    assert 10 <= len(before) < 80, "the scan should have been killed midway"
    db.close()

    resumed = forensight("scan", folder, "--case", case, "--batch-size", "16", "-q")
    assert resumed.returncode == 0, resumed.stderr
    db = sqlite3.connect(case)
    after = dict(db.execute("SELECT file_id, scored_at FROM results").fetchall())
    assert len(after) == 80 and db.execute("SELECT COUNT(*) FROM files").fetchone()[0] == 80
    assert all(after[k] == v for k, v in before.items())  # nothing scored twice
    assert f"{len(before)} scores reused" in resumed.stdout


@pytest.mark.parametrize("args,message", [
    (["scan", "/no/such/folder"], "does not exist"),
    (["scan", ".", "--model", "nope"], "no model 'nope'"),
    (["scan", ".", "--threshold", "0.5", "--band", "0.6,0.9"], "band low"),
    (["scan", ".", "--band", "0,0"], "band high"),  # --help: the threshold twice disables the band, not 0,0
    (["scan", ".", "--device", "cuda:7"], "cuda"),
])
def test_usage_errors_are_one_line(tiny_model, args, message):
    run = forensight(*args)
    assert run.returncode == 2
    assert message.lower() in run.stderr.lower()
    assert len(run.stderr.strip().splitlines()) == 1 and "Traceback" not in run.stderr


def test_no_model_says_how_to_get_one(home, tmp_path):
    (tmp_path / "photos").mkdir()  # not tmp_path itself: the user data folder (the default case's) is in there
    run = forensight("scan", tmp_path / "photos")
    assert run.returncode == 2 and "no detector is installed" in run.stderr and "models import" in run.stderr


def test_models_commands(home, tmp_path):
    import torch
    from models.registry import build_model

    torch.save(build_model("simple_cnn", 1).state_dict(), tmp_path / "cifake.pth")
    assert "Imported cifake" in forensight("models", "import", tmp_path / "cifake.pth").stdout
    listing = forensight("models", "list").stdout
    assert "* cifake" in listing and "simple_cnn" in listing
    assert '"architecture": "simple_cnn"' in forensight("models", "show", "cifake").stdout
    (tmp_path / "junk.pth").write_text("junk")
    bad = forensight("models", "import", tmp_path / "junk.pth")
    assert bad.returncode == 2 and "not a PyTorch checkpoint" in bad.stderr
    assert forensight("models", "remove", "cifake").returncode == 0
    assert "No models installed" in forensight("models", "list").stdout
