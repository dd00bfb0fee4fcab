"""The case database: one SQLite file (WAL mode) per case, holding every file seen and every score given.

Results are committed batch by batch, so a killed scan loses at most the batch in flight, and a re-run
reuses any score already given to the same content (SHA-256) by the same model and weights.
"""
from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from models.engine import PriorScore, ScanResult

SCHEMA_VERSION = 1
_SCHEMA = """
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


class CaseError(RuntimeError):
    pass


@dataclass
class CaseRow:
    """One file with its result for one model: what the CSV, the results panel and reports show."""
    file_id: int
    path: str
    sha256: str | None
    size: int | None
    width: int | None
    height: int | None
    format: str | None
    modified: float | None
    model_id: str | None
    weights_sha256: str | None
    p_fake: float | None
    label: str | None
    threshold: float | None
    error: str | None
    scored_at: float | None


@dataclass
class ModelScore:
    """One model's result for one file."""
    model_id: str
    model_name: str
    weights_sha256: str
    p_fake: float | None
    label: str | None
    error: str | None
    scored_at: float


class Case:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.db = sqlite3.connect(self.path, timeout=30)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.execute("PRAGMA foreign_keys=ON")
            self.db.executescript(_SCHEMA)
            version = self.db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            if version is None:
                with self.db:
                    self.db.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
                    self.db.execute("INSERT OR IGNORE INTO meta VALUES ('created', ?)", (str(time.time()),))
            elif int(version[0]) > SCHEMA_VERSION:
                raise CaseError(f"{self.path} was written by a newer Forensight")
        except sqlite3.DatabaseError as exc:
            raise CaseError(f"{self.path} is not a usable case database ({exc})") from None

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> "Case":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- writing -----------------------------------------------------------------------------
    def register_model(self, card) -> None:
        with self.db:
            self.db.execute("INSERT OR IGNORE INTO models VALUES (?, ?, ?, ?, ?)",
                            (card.id, card.weights_sha256, card.name, card.architecture, card.to_json()))

    def record(self, results: Iterable[ScanResult], *, thresholds=None, device: str = "") -> None:
        """Write a batch of results, and the findings of those that carry evidence, in one transaction."""
        now = time.time()
        with self.db:
            for r in results:
                file_id = self._upsert_file(r, now)
                if r.evidence is not None:
                    self._replace_evidence(file_id, r.sha256, r.evidence, now)
                self.db.execute(
                    """INSERT INTO results (file_id, sha256, model_id, weights_sha256, p_fake, label, threshold,
                           band_low, band_high, error, device, scored_at, reused)
                       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                       ON CONFLICT (file_id, model_id, weights_sha256) DO UPDATE SET
                           sha256=excluded.sha256, p_fake=excluded.p_fake, label=excluded.label,
                           threshold=excluded.threshold, band_low=excluded.band_low,
                           band_high=excluded.band_high, error=excluded.error, device=excluded.device,
                           scored_at=excluded.scored_at, reused=excluded.reused
                       WHERE excluded.reused = 0 OR results.error IS NOT NULL
                           OR results.sha256 IS NOT excluded.sha256""",
                    (file_id, r.sha256, r.model_id, r.weights_sha256, r.p_fake, r.label,
                     thresholds.threshold if thresholds else None, thresholds.low if thresholds else None,
                     thresholds.high if thresholds else None, r.error, device, now, int(r.reused)))

    def _upsert_file(self, r: ScanResult, now: float) -> int:
        row = self.db.execute("SELECT id FROM files WHERE path = ?", (r.path,)).fetchone()
        values = (r.sha256, r.size, r.width, r.height, r.format, r.modified)
        if row is None:
            cur = self.db.execute(
                "INSERT INTO files (path, sha256, size, width, height, format, modified, first_seen) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", (r.path, *values, now))
            return int(cur.lastrowid)
        self.db.execute("UPDATE files SET sha256=?, size=?, width=COALESCE(?, width), "
                        "height=COALESCE(?, height), format=COALESCE(?, format), modified=? WHERE id=?",
                        (*values, row[0]))
        return int(row[0])

    # ---- reading -----------------------------------------------------------------------------
    def prior_scores(self, model_id: str, weights_sha256: str) -> dict[str, PriorScore]:
        """Content already scored by this model and weights: SHA-256 → score (errors are retried)."""
        rows = self.db.execute(
            """SELECT r.sha256, r.p_fake, f.width, f.height, f.format FROM results r JOIN files f
               ON f.id = r.file_id WHERE r.model_id = ? AND r.weights_sha256 = ? AND r.error IS NULL
               AND r.p_fake IS NOT NULL AND r.sha256 IS NOT NULL""", (model_id, weights_sha256))
        return {sha: PriorScore(p, w, h, fmt) for sha, p, w, h, fmt in rows}

    def models(self) -> list[tuple[str, str, str]]:
        return self.db.execute("SELECT model_id, weights_sha256, name FROM models ORDER BY model_id").fetchall()

    def rows(self, model_id: str | None = None, paths: Iterable[str] | None = None) -> list[CaseRow]:
        """Every file with its result for one model (the most recently used one when not given)."""
        if model_id is None:
            last = self.db.execute("SELECT model_id FROM results ORDER BY scored_at DESC, id DESC LIMIT 1").fetchone()
            model_id = last[0] if last else None
        rows = self.db.execute(
            """SELECT f.id, f.path, f.sha256, f.size, f.width, f.height, f.format, f.modified,
                      r.model_id, r.weights_sha256, r.p_fake, r.label, r.threshold, r.error, r.scored_at
               FROM files f LEFT JOIN results r ON r.file_id = f.id AND r.model_id = ?
               ORDER BY f.id""", (model_id,)).fetchall()
        result = [CaseRow(*row) for row in rows]
        if paths is not None:
            wanted = set(paths)
            result = [row for row in result if row.path in wanted]
        return result

    def rows_for_paths(self, model_id: str, paths: Iterable[str]) -> list[CaseRow]:
        """Like rows(), for just these paths, looked up by index (cheap per batch, whatever the case size)."""
        wanted = list(dict.fromkeys(paths))
        found: list[CaseRow] = []
        for start in range(0, len(wanted), 500):  # stay far below SQLite's limit on bound parameters
            chunk = wanted[start:start + 500]
            marks = ", ".join("?" * len(chunk))
            found += [CaseRow(*row) for row in self.db.execute(
                f"""SELECT f.id, f.path, f.sha256, f.size, f.width, f.height, f.format, f.modified,
                           r.model_id, r.weights_sha256, r.p_fake, r.label, r.threshold, r.error, r.scored_at
                    FROM files f LEFT JOIN results r ON r.file_id = f.id AND r.model_id = ?
                    WHERE f.path IN ({marks})""", (model_id, *chunk))]
        return sorted(found, key=lambda row: row.file_id)

    def scores_for_file(self, file_id: int) -> list[ModelScore]:
        """Every model's result for one file, newest first: how the detectors agree on it."""
        rows = self.db.execute(
            """SELECT r.model_id, COALESCE(m.name, r.model_id), r.weights_sha256, r.p_fake, r.label, r.error,
                      r.scored_at
               FROM results r LEFT JOIN models m
                    ON m.model_id = r.model_id AND m.weights_sha256 = r.weights_sha256
               WHERE r.file_id = ? ORDER BY r.scored_at DESC, r.id DESC""", (file_id,)).fetchall()
        return [ModelScore(*row) for row in rows]

    def record_evidence(self, path: str, sha256: str | None, findings: "Iterable[Finding]") -> None:
        """Replace the findings of one file (the file row must exist: record its result first)."""
        row = self.db.execute("SELECT id FROM files WHERE path = ?", (path,)).fetchone()
        if row is None:
            raise CaseError(f"{path} is not in the case yet")
        with self.db:
            self._replace_evidence(row[0], sha256, findings, time.time())

    def _replace_evidence(self, file_id: int, sha256: str | None, findings: "Iterable[Finding]", now: float) -> None:
        self.db.execute("DELETE FROM evidence WHERE file_id = ?", (file_id,))
        self.db.executemany(
            "INSERT INTO evidence (file_id, sha256, source, kind, strength, points_to, message, details, "
            "found_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(file_id, sha256, f.source, f.kind, f.strength, f.points_to, f.message, f.details_json(), now)
             for f in findings])

    def evidence_for(self, file_id: int) -> "list[Finding]":
        from app.evidence.findings import Finding

        rows = self.db.execute("SELECT source, kind, strength, message, details, points_to FROM evidence "
                               "WHERE file_id = ? ORDER BY id", (file_id,)).fetchall()
        return [Finding(source, kind, strength, message, json.loads(details), points_to)
                for source, kind, strength, message, details, points_to in rows]

    def has_evidence(self, sha256: str) -> bool:
        return self.db.execute("SELECT 1 FROM evidence WHERE sha256 = ? LIMIT 1", (sha256,)).fetchone() is not None

    def count_results(self, model_id: str | None = None) -> int:
        if model_id is None:
            return self.db.execute("SELECT COUNT(*) FROM results").fetchone()[0]
        return self.db.execute("SELECT COUNT(*) FROM results WHERE model_id = ?", (model_id,)).fetchone()[0]
