"""The case file's format: the schema and its versions, the migrations between them, and how a file is
recognised as a case without a byte being written to it.

A case is evidence of an examination, and the file handed to us as one may be evidence itself (a messaging
app's store is an SQLite file too). So an existing file is looked at read-only first and opened for writing
only when it is recognisably a Forensight case: its SQLite application id is ours, or it is a case written
before the id existed (schema version 1). Anything else is refused without a byte being written.

Versions (PRAGMA user_version; cases written before version 2 keep theirs in meta.schema_version only):
  1  the first release's schema (V1_SCHEMA)
  2  files.path_bytes holds the exact file name (names need not be valid UTF-8), files.path its readable form;
     results.notes; scanned_paths (the folders and files a scan was asked to examine: nothing is ever written
     there); the application id
  3  tiles: every view's score and the part of the picture it showed (tiles, crops, the whole picture), per
     result, so the tile map can be drawn and the strongest tile reported
A new case is made by creating version 1 and applying every migration, so new and upgraded cases are the same.
"""
from __future__ import annotations

import os
import sqlite3
import time
from functools import lru_cache
from pathlib import Path
from typing import Callable
from urllib.parse import quote

from models.paths import readable, to_bytes

APPLICATION_ID = 0x46534754  # "FSGT" in the SQLite header: tells a Forensight case from any other database
SCHEMA_VERSION = 3
SQLITE_MAGIC = b"SQLite format 3\x00"

V1_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS files (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL UNIQUE,
    sha256 TEXT,
    size INTEGER,
    width INTEGER,
    height INTEGER,
    format TEXT,
    modified REAL,
    first_seen REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS files_sha ON files(sha256);
CREATE TABLE IF NOT EXISTS models (
    model_id TEXT NOT NULL,
    weights_sha256 TEXT NOT NULL,
    name TEXT, architecture TEXT, card_json TEXT,
    PRIMARY KEY (model_id, weights_sha256)
);
CREATE TABLE IF NOT EXISTS results (
    id INTEGER PRIMARY KEY,
    file_id INTEGER NOT NULL REFERENCES files(id),
    sha256 TEXT,
    model_id TEXT NOT NULL,
    weights_sha256 TEXT NOT NULL,
    p_fake REAL,
    label TEXT,
    threshold REAL,
    band_low REAL,
    band_high REAL,
    error TEXT,
    device TEXT,
    scored_at REAL NOT NULL,
    reused INTEGER NOT NULL DEFAULT 0,
    UNIQUE (file_id, model_id, weights_sha256)
);
CREATE INDEX IF NOT EXISTS results_score ON results(model_id, weights_sha256, sha256);
CREATE TABLE IF NOT EXISTS evidence (
    id INTEGER PRIMARY KEY,
    file_id INTEGER NOT NULL REFERENCES files(id),
    sha256 TEXT,
    source TEXT NOT NULL,
    kind TEXT NOT NULL,
    strength TEXT NOT NULL,
    points_to TEXT NOT NULL DEFAULT '',
    message TEXT NOT NULL,
    details TEXT NOT NULL DEFAULT '{}',
    found_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS evidence_file ON evidence(file_id);
"""


def run_script(db: sqlite3.Connection, script: str) -> None:
    """Statement by statement: executescript() would commit the migration's transaction half-way."""
    for statement in script.split(";"):
        if statement.strip():
            db.execute(statement)


def _v1_to_v2(db: sqlite3.Connection) -> None:
    # files is rebuilt, not altered: the readable path can no longer be UNIQUE (two different byte names can
    # read the same), and SQLite cannot drop a constraint in place. Rows keep their ids, so results and
    # evidence still point at them. Names of version 1 were valid text (others crashed the scan), so their
    # bytes follow from the text.
    db.create_function("fs_bytes", 1, to_bytes, deterministic=True)
    run_script(db, """
        CREATE TABLE files_v2 (
            id INTEGER PRIMARY KEY,
            path TEXT NOT NULL,
            path_bytes BLOB NOT NULL UNIQUE,
            sha256 TEXT,
            size INTEGER,
            width INTEGER,
            height INTEGER,
            format TEXT,
            modified REAL,
            first_seen REAL NOT NULL
        );
        INSERT INTO files_v2 (id, path, path_bytes, sha256, size, width, height, format, modified, first_seen)
            SELECT id, path, fs_bytes(path), sha256, size, width, height, format, modified, first_seen FROM files;
        DROP TABLE files;
        ALTER TABLE files_v2 RENAME TO files;
        CREATE INDEX files_sha ON files(sha256);
        ALTER TABLE results ADD COLUMN notes TEXT;
        CREATE TABLE scanned_paths (
            path TEXT NOT NULL,
            path_bytes BLOB NOT NULL UNIQUE,
            first_scanned REAL NOT NULL
        )
    """)
    db.execute(f"PRAGMA application_id = {APPLICATION_ID}")


def _v2_to_v3(db: sqlite3.Connection) -> None:
    # Older results have no tiles: their rows keep an empty strongest tile and no map until rescanned.
    run_script(db, """
        CREATE TABLE tiles (
            result_id INTEGER NOT NULL REFERENCES results(id) ON DELETE CASCADE,
            x INTEGER NOT NULL,
            y INTEGER NOT NULL,
            w INTEGER NOT NULL,
            h INTEGER NOT NULL,
            p_fake REAL NOT NULL
        );
        CREATE INDEX tiles_result ON tiles(result_id, p_fake)
    """)


# version n → the function that turns a version-n case into version n+1, inside one transaction
MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {1: _v1_to_v2, 2: _v2_to_v3}


class CaseError(RuntimeError):
    """A file that is not a usable case: not ours, damaged, or newer than this version (a sentence for the user)."""


# ---- opening: version, upgrade, columns -----------------------------------------------------------
def upgrade(db: sqlite3.Connection, shown: str, in_memory: bool) -> None:
    """Create the schema of a new case, or migrate an older one to SCHEMA_VERSION (`in_memory`: a read-only
    snapshot, whose upgrade is never written back). `shown`: the case's name in messages."""
    if schema_version(db, shown) == SCHEMA_VERSION:
        return  # nothing to write: a case on read-only media opens too
    # foreign keys stay off until the schema is current: rebuilding a table must not cascade
    db.execute("BEGIN" if in_memory else "BEGIN IMMEDIATE")  # IMMEDIATE: one process migrates
    try:
        version = schema_version(db, shown)  # again under the lock: another process may have done it meanwhile
        if version == 0:
            run_script(db, V1_SCHEMA)
            db.execute("INSERT INTO meta VALUES ('schema_version', '1')")
            db.execute("INSERT INTO meta VALUES ('created', ?)", (str(time.time()),))
            version = 1
        while version < SCHEMA_VERSION:
            MIGRATIONS[version](db)
            version += 1
        db.execute(f"PRAGMA user_version = {version}")
        # kept in step so that the previous release, which reads only this, refuses the case as newer
        db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(version),))
        db.commit()
        if not in_memory:  # the new version and id into the file itself, where identify reads them
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    except BaseException:
        db.rollback()
        raise


def schema_version(db: sqlite3.Connection, shown: str) -> int:
    """The case's schema version; 0 for an empty database. CaseError for what is not ours or is damaged."""
    tables = tables_of(db)
    if not tables:
        return 0
    app_id = db.execute("PRAGMA application_id").fetchone()[0]
    refusal = _not_ours(shown, app_id, tables, db)
    if refusal:
        raise CaseError(refusal)
    if "meta" not in tables:
        raise CaseError(f"{shown} is a damaged Forensight case: its meta table is missing")
    row = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    if row is None:
        raise CaseError(f"{shown} is a damaged Forensight case: it records no schema version")
    text = str(row[0])
    if not text.isdigit() or not text.isascii():
        raise CaseError(f"{shown} is a damaged Forensight case: its schema version is {text[:40]!r}, "
                        "not a number")
    user_version = db.execute("PRAGMA user_version").fetchone()[0]
    version = user_version or int(text)  # before version 2 it was kept in meta only
    if version > SCHEMA_VERSION:
        raise CaseError(f"{shown} was written by a newer Forensight (case version {version}; this "
                        f"version reads up to {SCHEMA_VERSION}): open it with that version")
    if user_version and int(text) != user_version:
        raise CaseError(f"{shown} is a damaged Forensight case: its schema versions disagree "
                        f"({user_version} and {text})")
    return version


def check_columns(db: sqlite3.Connection, shown: str) -> None:
    """Every table and column this version reads must be there with its type, or the case is refused
    now, in one line, rather than failing half-way through a report."""
    for table, expected in expected_columns().items():
        have = {name: kind for _, name, kind, *_ in db.execute(f"PRAGMA table_info({table})")}
        if not have:
            raise CaseError(f"{shown} is a damaged Forensight case: table {table} is missing")
        for name, kind in expected.items():
            if name not in have:
                raise CaseError(f"{shown} is a damaged Forensight case: column {name} of table "
                                f"{table} is missing")
            if have[name].upper() != kind.upper():
                raise CaseError(f"{shown} is a damaged Forensight case: column {name} of table {table} "
                                f"is declared {have[name] or 'without a type'}, not {kind}")


# ---- recognising a case without writing to it -----------------------------------------------------
def identify(path: Path) -> bool:
    """True for a path where a new case may be made (nothing there, an empty file, an SQLite database without
    tables); False for a Forensight case; CaseError for anything else. Reads only: opening an SQLite file
    for writing (or just in WAL mode) can already change it."""
    shown = readable(path)
    try:
        if not path.exists():
            return True
        if not path.is_file():
            raise CaseError(f"{shown} is not a file, so it cannot be a case")
        with open(path, "rb") as handle:
            header = handle.read(100)
    except OSError as exc:
        raise CaseError(f"cannot read {shown}: {exc.strerror or exc}") from None
    if not header:
        return True
    if not header.startswith(SQLITE_MAGIC) or len(header) < 100:
        raise CaseError(f"{shown} is not a Forensight case (it is not an SQLite database); refusing to open it "
                        "so that it is not changed")
    app_id = int.from_bytes(header[68:72], "big")
    if app_id == APPLICATION_ID:
        return False
    refusal = _not_ours(shown, app_id, set(), None)
    if refusal:
        raise CaseError(refusal)
    try:  # the file as it is on disk, ignoring any write-ahead log: reading a log creates an -shm file
        db = connect_readonly(path, immutable=True)
        try:
            tables = tables_of(db)
            refusal = _not_ours(shown, app_id, tables, db)
        finally:
            db.close()
    except sqlite3.DatabaseError as exc:
        raise CaseError(f"{shown} is not a Forensight case (SQLite cannot read it: {exc}); refusing to open it "
                        "so that it is not changed") from None
    if refusal:
        raise CaseError(refusal)
    if not tables and (int.from_bytes(header[60:64], "big") or _has_log(path)):
        # a case is made with its tables in the file itself; a versioned or logged "empty" database is
        # someone else's, whose tables may wait in its log
        raise CaseError(f"{shown} is not a Forensight case (an SQLite database with a version or a write-ahead "
                        "log of its own); refusing to open it so that it is not changed")
    return not tables


def _has_log(path: Path) -> bool:
    try:
        return os.path.getsize(f"{path}-wal") > 0
    except OSError:
        return False


def _not_ours(shown: str, app_id: int, tables: set[str], db: sqlite3.Connection | None) -> str | None:
    """Why a database is not a Forensight case, or None when it is one (or may still be: no tables read)."""
    refuse = "refusing to open it so that it is not changed"
    if app_id not in (0, APPLICATION_ID):
        return f"{shown} is not a Forensight case (it belongs to another application, SQLite application id " \
               f"{app_id:#010x}); {refuse}"
    if app_id == APPLICATION_ID or not tables:
        return None
    # application id 0: a case of version 1 (which set none) has exactly its tables and a schema version
    if tables == _v1_tables() and db is not None and \
            db.execute("SELECT 1 FROM meta WHERE key = 'schema_version'").fetchone() is not None:
        return None
    listed = ", ".join(sorted(tables)[:8]) + (", …" if len(tables) > 8 else "")
    return f"{shown} is not a Forensight case (it holds tables: {listed}); {refuse}"


def connect_readonly(path: Path, immutable: bool = False) -> sqlite3.Connection:
    """A connection that cannot change the file. `immutable` (and any file without a write-ahead log beside
    it) also keeps SQLite from creating -wal and -shm files next to it, which it does even for a read-only
    connection to a WAL database; only a file already known to be our case has its log read."""
    uri = "file:" + quote(os.fsencode(os.path.abspath(path)))  # any bytes: the name need not be UTF-8
    mode = "?mode=ro" if not immutable and _has_log(path) else "?mode=ro&immutable=1"
    return sqlite3.connect(uri + mode, uri=True, timeout=30)


def snapshot(path: Path) -> sqlite3.Connection:
    """The case copied into memory through a read-only connection: reports read a consistent picture, and an
    older case can be upgraded there without touching the file."""
    source = connect_readonly(path)
    try:
        copy = sqlite3.connect(":memory:")
        source.backup(copy)
    finally:
        source.close()
    return copy


def tables_of(db: sqlite3.Connection) -> set[str]:
    return {name for (name,) in db.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")}


@lru_cache(maxsize=None)
def _v1_tables() -> frozenset[str]:
    db = sqlite3.connect(":memory:")
    run_script(db, V1_SCHEMA)
    return frozenset(tables_of(db))


@lru_cache(maxsize=None)
def expected_columns() -> dict[str, dict[str, str]]:
    """table → column → declared type, of a new case: made the way a case is made, so it cannot drift."""
    db = sqlite3.connect(":memory:")
    run_script(db, V1_SCHEMA)
    for version in range(1, SCHEMA_VERSION):
        MIGRATIONS[version](db)
    return {table: {name: kind for _, name, kind, *_ in db.execute(f"PRAGMA table_info({table})")}
            for table in sorted(tables_of(db))}
