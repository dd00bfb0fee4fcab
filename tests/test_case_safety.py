"""The case database as evidence: a file that is not a Forensight case is refused without a byte changing,
a case of the previous release still opens, a damaged or newer case costs one line, file names that are not
UTF-8 are kept exactly, and the same files named differently are one row each."""
import csv
import io
import os
import sqlite3
import sys
from pathlib import Path

import pytest

from app.case.schema import APPLICATION_ID, SCHEMA_VERSION, V1_SCHEMA
from app.case.store import Case, CaseError
from app.evidence import Finding
from models.engine import ScanResult
from tests.commands import run_cli
from tests import images
from tests.needs import pdf_text


forensight = run_cli  # in-process, as typed (tests/commands.py)


def one_line_error(run) -> str:
    assert run.returncode == 2, (run.stdout, run.stderr)
    assert "Traceback" not in run.stderr and len(run.stderr.strip().splitlines()) == 1, run.stderr
    return run.stderr.strip()


def fingerprint(path: Path) -> tuple:
    """Everything an examiner would compare: the bytes, the modification time, its side files (-wal, -shm)."""
    return path.read_bytes(), path.stat().st_mtime_ns, sorted(p.name for p in path.parent.glob(path.name + "*"))


def messaging_store(path: Path, wal: bool = False) -> Path:
    db = sqlite3.connect(path)
    if wal:
        db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE messages (id INTEGER PRIMARY KEY, body TEXT)")
    db.execute("CREATE TABLE contacts (id INTEGER PRIMARY KEY, name TEXT)")
    db.execute("INSERT INTO messages (body) VALUES ('see you at 8')")
    db.commit()
    db.close()
    os.utime(path, ns=(1_000_000_000_000_000_000, 1_000_000_000_000_000_000))  # a recognisable mtime
    return path


def png_bytes(seed: int) -> bytes:
    buffer = io.BytesIO()
    images.gradient(40, 40, seed).save(buffer, "PNG")
    return buffer.getvalue()


def v1_case(path: Path, photo: Path) -> None:
    """A case exactly as the previous release wrote it: schema version 1 in meta, no application id."""
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=WAL")
    db.executescript(V1_SCHEMA)
    db.execute("INSERT INTO meta VALUES ('schema_version', '1')")
    db.execute("INSERT INTO files (path, sha256, size, width, height, format, modified, first_seen) "
               "VALUES (?, 'ab', 10, 40, 40, 'PNG', 1.0, 1.0)", (str(photo),))
    db.execute("INSERT INTO results (file_id, sha256, model_id, weights_sha256, p_fake, label, threshold, "
               "scored_at) VALUES (1, 'ab', 'old', 'w', 0.125, 'real', 0.5, 2.0)")
    db.commit()
    db.close()


# ---- finding 2: only Forensight's own databases are opened --------------------------------------------
@pytest.mark.parametrize("wal", [False, True], ids=["rollback-journal", "wal"])
def test_report_refuses_another_apps_database_and_leaves_it_untouched(tmp_path, wal):
    store = messaging_store(tmp_path / "someone.db", wal)
    before = fingerprint(store)
    message = one_line_error(forensight("report", store, "--pdf", tmp_path / "x.pdf", "-q"))
    assert "not a Forensight case" in message and "contacts, messages" in message
    assert fingerprint(store) == before  # no tables added, not switched to WAL, no -wal or -shm beside it
    assert not (tmp_path / "x.pdf").exists()


def test_scan_refuses_another_apps_database_as_its_case(tiny_model, tmp_path):
    store = messaging_store(tmp_path / "someone.db")
    photos = tmp_path / "photos"
    photos.mkdir()
    images.gradient(40, 40).save(photos / "a.png")
    before = fingerprint(store)
    message = one_line_error(forensight("scan", photos, "--case", store, "-q"))
    assert "not a Forensight case" in message and "contacts, messages" in message
    assert fingerprint(store) == before


def test_what_is_not_a_case_is_refused_and_what_is_empty_becomes_one(tmp_path):
    text = tmp_path / "notes.db"
    text.write_text("not a database at all\n" * 10)
    other = tmp_path / "other.db"
    db = sqlite3.connect(other)
    db.execute("PRAGMA application_id = 1234")
    db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")  # even with our table names
    db.commit()
    db.close()
    for path, reason in ((text, "not an SQLite database"), (other, "another application")):
        before = fingerprint(path)
        for readonly in (False, True):
            with pytest.raises(CaseError, match=reason):
                Case(path, readonly=readonly)
        assert fingerprint(path) == before

    empty = tmp_path / "empty.sqlite"
    empty.touch()
    with Case(empty) as case:
        case.record([ScanResult("/x/a.png", "ab", 1, 1, 1, "PNG", 0.2, "real", "m", "w")])
    db = sqlite3.connect(empty)
    assert db.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_report_never_writes_to_the_case(tiny_model, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    images.gradient(40, 40).save(photos / "a.png")
    case = tmp_path / "case.sqlite"
    assert forensight("scan", photos, "--case", case, "-q").returncode == 0
    before = fingerprint(case)
    run = forensight("report", case, "--pdf", tmp_path / "r.pdf", "--csv", tmp_path / "r.csv", "-q")
    assert run.returncode == 0, run.stderr
    assert fingerprint(case) == before


# ---- versions: the previous release's cases open; newer ones are refused --------------------------------
def test_a_case_of_the_previous_release_is_reported_unchanged_and_upgraded_when_scanned_into(tmp_path):
    photo = tmp_path / "photos" / "old.png"
    photo.parent.mkdir()
    photo.write_bytes(png_bytes(0))
    case = tmp_path / "v1.sqlite"
    v1_case(case, photo)
    before = fingerprint(case)

    run = forensight("report", case, "--pdf", tmp_path / "r.pdf", "--device", "cpu", "-q")
    assert run.returncode == 0, run.stderr
    assert "1 files" in run.stdout
    assert fingerprint(case) == before  # reading an old case does not upgrade it

    with Case(case) as opened:  # opening it to write upgrades it, keeping every row
        rows = opened.rows("old")
        opened.record([ScanResult(str(tmp_path / "photos" / "new.png"), "cd", 1, 1, 1, "PNG", 0.9,
                                  "AI-generated", "old", "w")])
    assert [(r.path, r.fs_path, r.p_fake, r.label) for r in rows] == [(str(photo), str(photo), 0.125, "real")]
    db = sqlite3.connect(case)
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert db.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    assert db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0] == str(SCHEMA_VERSION)
    assert db.execute("SELECT path_bytes FROM files WHERE id = 1").fetchone()[0] == os.fsencode(photo)
    assert db.execute("SELECT COUNT(*) FROM results").fetchone()[0] == 2
    assert db.execute("PRAGMA foreign_key_check").fetchall() == []


def test_a_case_from_a_newer_forensight_is_refused_in_one_line(tmp_path):
    case = tmp_path / "case.sqlite"
    Case(case).close()
    db = sqlite3.connect(case)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),))
    db.commit()
    db.close()
    message = one_line_error(forensight("report", case, "--pdf", tmp_path / "r.pdf", "-q"))
    assert "newer Forensight" in message


# ---- finding 6: a damaged case is one line, never a traceback --------------------------------------------
def scored_case(path: Path) -> Path:
    with Case(path) as case:
        case.record([ScanResult(str(path.parent / "photos" / f"{name}.png"), name * 32, 10, 4, 4, "PNG", p, label, "m",
                                "w" * 64) for name, p, label in (("a", 0.1, "real"), ("b", 0.2, "real"))])
    return path


@pytest.mark.parametrize("damage,says", [
    ("ALTER TABLE results DROP COLUMN label", "column label of table results is missing"),
    ("ALTER TABLE files DROP COLUMN format", "column format of table files is missing"),
    ("UPDATE meta SET value = 'two' WHERE key = 'schema_version'", "schema version is 'two'"),
    ("UPDATE results SET p_fake = 'high' WHERE file_id = 2", "column p_fake of file 2 holds text ('high')"),
    ("UPDATE results SET p_fake = 7.5 WHERE file_id = 1", "holds 7.5, not a probability"),
    ("UPDATE files SET size = 'big' WHERE id = 1", "column size of file 1 holds text"),
    ("UPDATE results SET band_low = 'low' WHERE file_id = 1", "inconclusive band of model 'm' holds text"),
    ("DROP TABLE evidence", "table evidence is missing"),
])
def test_a_damaged_case_is_one_line_naming_the_damage(tmp_path, damage, says):
    case = scored_case(tmp_path / "case.sqlite")
    with Case(case, readonly=True) as intact:
        assert len(intact.rows()) == 2
    db = sqlite3.connect(case)
    db.execute(damage)
    db.commit()
    db.close()
    message = one_line_error(forensight("report", case, "--pdf", tmp_path / "r.pdf", "--device", "cpu", "-q"))
    assert "damaged Forensight case" in message and says in message
    assert not (tmp_path / "r.pdf").exists()


# ---- finding 4: names that are not UTF-8 -----------------------------------------------------------------
@pytest.mark.skipif(sys.platform in ("darwin", "win32"), reason="the file system must accept any bytes")
def test_a_name_that_is_not_utf8_is_scored_shown_readably_and_reused(tiny_model, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    handle = os.open(os.fsencode(photos) + b"/bad\xff\xfe.png", os.O_WRONLY | os.O_CREAT, 0o644)
    os.write(handle, png_bytes(1))
    os.close(handle)
    (photos / "good.png").write_bytes(png_bytes(2))
    out, case = tmp_path / "out.csv", tmp_path / "out.case.sqlite"

    first = forensight("scan", photos, "--csv", out, "-q")
    assert first.returncode == 0, first.stderr
    with open(out, encoding="utf-8", newline="") as handle:
        rows = {row["file_name"]: row for row in csv.DictReader(handle)}
    assert sorted(rows) == ["bad\\xff\\xfe.png", "good.png"]  # shown readably, the other file scored too
    assert all(0 <= float(row["p_fake"]) <= 1 and not row["error"] for row in rows.values())

    second = forensight("scan", photos, "--csv", out, "-q")
    assert second.returncode == 0, second.stderr
    assert "2 scores reused" in second.stdout
    db = sqlite3.connect(case)
    assert db.execute("SELECT COUNT(*) FROM files").fetchone()[0] == 2  # the same row, no duplicate
    assert db.execute("SELECT COUNT(*) FROM results").fetchone()[0] == 2
    with Case(case, readonly=True) as opened:
        bad = next(row for row in opened.rows() if row.path.endswith("bad\\xff\\xfe.png"))
    assert bad.path_bytes == os.fsencode(photos) + b"/bad\xff\xfe.png"
    assert Path(bad.fs_path).read_bytes() == png_bytes(1)  # the exact name opens the real file again


def test_rows_and_evidence_are_found_by_the_exact_name(tmp_path):
    exact = os.fsdecode(b"/evidence/caf\xe9.png")  # Latin-1 é: not UTF-8
    lookalike = "/evidence/caf\\xe9.png"  # a real file name that reads the same
    with Case(tmp_path / "case.sqlite") as case:
        case.record([ScanResult(exact, "ab", 1, 1, 1, "PNG", 0.2, "real", "m", "w"),
                     ScanResult(lookalike, "cd", 1, 1, 1, "PNG", 0.9, "AI-generated", "m", "w")])
        assert [r.fs_path for r in case.rows("m", paths=[exact])] == [exact]
        assert [r.label for r in case.rows_for_paths("m", [lookalike, exact])] == ["real", "AI-generated"]
        assert [r.path for r in case.rows("m")] == [lookalike, lookalike]  # shown alike, stored apart
        finding = Finding("exif", "camera", "weak", "Camera: Canon EOS 5D", {"make": "Canon"}, "camera")
        case.record_evidence(exact, "ab", [finding])
        first, second = case.rows("m")
        assert case.evidence_for(first.file_id) == [finding] and case.evidence_for(second.file_id) == []


# ---- finding 8: one row per file however it is named ----------------------------------------------------
def test_one_folder_named_three_ways_is_one_row_per_file_and_a_link_says_where_it_points(tiny_model, tmp_path,
                                                                                          poppler):
    base = tmp_path.resolve() / "work"
    small5, links, elsewhere = base / "small5", base / "links", base / "elsewhere"
    for folder in (small5, links, elsewhere):
        folder.mkdir(parents=True)
    for i in range(5):
        images.gradient(30, 30, i).save(small5 / f"{i}.png")
    (links / "alias.png").symlink_to("../small5/0.png")
    case = tmp_path / "case.sqlite"
    for name, cwd in (("small5", base), (small5, base), ("../small5", elsewhere)):
        run = forensight("scan", name, "--case", case, "-q", cwd=cwd)
        assert run.returncode == 0, run.stderr
    run = forensight("scan", "links", "--case", case, "--csv", tmp_path / "links.csv", "-q", cwd=base)
    assert run.returncode == 0, run.stderr

    with Case(case, readonly=True) as opened:
        paths = [row.path for row in opened.rows()]
    assert sorted(paths) == sorted([str(small5 / f"{i}.png") for i in range(5)] + [str(links / "alias.png")])
    with open(tmp_path / "links.csv", encoding="utf-8", newline="") as handle:
        (alias,) = csv.DictReader(handle)
    assert alias["path"] == str(links / "alias.png")  # the link's own name, not its target's
    assert alias["notes"] == f"symbolic link to {small5 / '0.png'}" and alias["p_fake"]

    report = forensight("report", case, "--pdf", tmp_path / "r.pdf", "--device", "cpu", "-q", cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    text = pdf_text(tmp_path / "r.pdf")
    assert "6 files" in report.stdout and "disappeared" not in text  # found from any working folder


# ---- found in review: what the first version of these checks let through -------------------------------
def store_with_pending_log(folder: Path) -> Path:
    """A WAL database copied off a phone as it was: its newest writes still in `-wal`, no `-shm` beside it."""
    live = folder / "live"
    live.mkdir()
    db = sqlite3.connect(live / "msgstore.db")
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA wal_autocheckpoint=0")  # keep every write in the log, as a running app does
    db.execute("CREATE TABLE messages (id INTEGER PRIMARY KEY, body TEXT)")
    db.execute("INSERT INTO messages (body) VALUES ('see you at 8')")
    db.commit()
    for name in ("msgstore.db", "msgstore.db-wal"):  # copied while the app still held it open
        (folder / name).write_bytes((live / name).read_bytes())
    db.close()
    return folder / "msgstore.db"


def test_a_database_with_its_log_pending_is_refused_without_creating_side_files(tmp_path):
    store = store_with_pending_log(tmp_path)
    assert (tmp_path / "msgstore.db-wal").stat().st_size > 0
    before = sorted(p.name for p in tmp_path.iterdir())
    for args in (("report", store, "--pdf", tmp_path / "x.pdf", "-q"),
                 ("scan", tmp_path / "live", "--case", store, "-q")):
        assert "not a Forensight case" in one_line_error(forensight(*args))
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no msgstore.db-shm, no x.pdf


def test_an_empty_database_with_a_version_of_its_own_is_not_taken_as_a_new_case(tmp_path):
    other = tmp_path / "settings.db"
    db = sqlite3.connect(other)
    db.execute("PRAGMA user_version = 7")
    db.close()
    before = other.read_bytes()
    with pytest.raises(CaseError, match="not a Forensight case"):
        Case(other)
    assert other.read_bytes() == before


def test_a_case_at_a_path_that_is_not_utf8_opens_for_reports(tiny_model, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "a.png").write_bytes(png_bytes(1))
    case = os.fsdecode(os.fsencode(str(tmp_path)) + b"/case\xff.sqlite")
    assert forensight("scan", folder, "--case", case, "-q").returncode == 0
    run = forensight("report", case, "--pdf", tmp_path / "r.pdf", "-q")
    assert run.returncode == 0, run.stderr


def test_an_upgraded_case_opens_again_while_the_first_connection_is_still_open(tmp_path):
    photo = tmp_path / "a.png"
    photo.write_bytes(png_bytes(2))
    v1_case(tmp_path / "old.sqlite", photo)
    first = Case(tmp_path / "old.sqlite")  # migrates; the app keeps it open (File > Open case)
    try:
        with Case(tmp_path / "old.sqlite") as second:  # what the scan worker and a report then do
            assert [row.p_fake for row in second.rows("old")] == [0.125]
        with Case(tmp_path / "old.sqlite", readonly=True) as report:
            assert len(report.rows("old")) == 1
    finally:
        first.close()
