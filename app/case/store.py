"""The case database: one SQLite file (WAL mode) per case, holding every file seen and every score given, and
all the SQL that reads and writes it (its format, versions and migrations: schema.py).

Results are committed batch by batch, so a killed scan loses at most the batch in flight, and a re-run
reuses any score already given to the same content (SHA-256) by the same model and weights. An existing file
is opened for writing only once schema.py has recognised it as a Forensight case.
"""
from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, NamedTuple

from app.case.schema import CaseError, check_columns, identify, snapshot, upgrade
from models.engine import PriorScore, ScanResult, Tile
from models.paths import from_bytes, is_exact_text, readable, to_bytes

if TYPE_CHECKING:  # annotations only: the evidence package loads when findings are read
    from app.evidence.findings import Finding

__all__ = ["Case", "CaseError", "CaseRow", "ModelScore", "ResultSettings", "StoredModel"]


@dataclass
class CaseRow:
    """One file with its result for one model: what the CSV, the results panel and reports show."""
    file_id: int
    path: str  # readable: an undecodable byte in the name shows as \xNN
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
    path_bytes: bytes | None = None  # the exact name on disk
    notes: str | None = None  # e.g. "symbolic link to …", "animated (12 frames): scored on the first frame"
    tile_x: int | None = None  # the strongest tile (the view with the highest P(fake)) and its score
    tile_y: int | None = None
    tile_w: int | None = None
    tile_h: int | None = None
    tile_p_fake: float | None = None

    @property
    def strongest_tile(self) -> Tile | None:
        if self.tile_p_fake is None:
            return None
        return Tile(self.tile_x, self.tile_y, self.tile_w, self.tile_h, self.tile_p_fake)

    @property
    def fs_path(self) -> str:
        """The name to open the file by (the readable `path` differs from it when the name is not UTF-8)."""
        return from_bytes(self.path_bytes) if self.path_bytes is not None else self.path


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
    architecture: str = ""  # "ensemble": the score combines other models' (no Grad-CAM of its own)


class StoredModel(NamedTuple):
    """A model as the case registered it: the card it scanned with, as JSON (None or anything, when damaged)."""
    model_id: str
    weights_sha256: str
    name: str | None
    architecture: str | None
    card_json: str | None

    @property
    def card(self) -> dict:
        """The card as a dict; {} when absent or unreadable (a damaged card must not hide the results)."""
        try:
            card = json.loads(self.card_json) if self.card_json else {}
        except (TypeError, ValueError):
            return {}
        return card if isinstance(card, dict) else {}


class ResultSettings(NamedTuple):
    """The settings one model's results were given under, and how many results each combination has."""
    model_id: str
    weights_sha256: str
    threshold: float | None
    band_low: float | None
    band_high: float | None
    device: str
    results: int


_ROW_SQL = """SELECT f.id, f.path, f.sha256, f.size, f.width, f.height, f.format, f.modified,
                     r.model_id, r.weights_sha256, r.p_fake, r.label, r.threshold, r.error, r.scored_at,
                     f.path_bytes, r.notes, t.x, t.y, t.w, t.h, t.p_fake
              FROM files f LEFT JOIN results r ON r.file_id = f.id AND r.model_id = ?
              LEFT JOIN tiles t ON t.rowid = (SELECT rowid FROM tiles WHERE result_id = r.id
                                              ORDER BY p_fake DESC, rowid LIMIT 1)"""
_NUMBER, _TEXT = (int, float), (str,)
# What each CaseRow column may hold besides NULL. SQLite stores whatever it is given (text in a REAL column,
# say), so a hand-edited or damaged case is caught here instead of as a traceback in a report.
_ROW_TYPES = {"file_id": (int,), "path": _TEXT, "sha256": _TEXT, "size": (int,), "width": (int,),
              "height": (int,), "format": _TEXT, "modified": _NUMBER, "model_id": _TEXT, "weights_sha256": _TEXT,
              "p_fake": _NUMBER, "label": _TEXT, "threshold": _NUMBER, "error": _TEXT, "scored_at": _NUMBER,
              "path_bytes": (bytes,), "notes": _TEXT, "tile_x": (int,), "tile_y": (int,), "tile_w": (int,),
              "tile_h": (int,), "tile_p_fake": _NUMBER}
_NOT_NULL = {"file_id", "path", "path_bytes"}


class Case:
    """A case database. `readonly` (reports) reads a snapshot and never writes to the file, whatever its
    version: an older case is upgraded in memory only."""

    def __init__(self, path: Path, *, readonly: bool = False) -> None:
        self.path = Path(path)
        self.readonly = readonly
        self.shown = readable(self.path)
        is_new = identify(self.path)  # refuses anything that is not a case, before anything is written
        try:
            if readonly:
                if is_new:
                    state = "holds no Forensight case" if self.path.exists() else "does not exist"
                    raise CaseError(f"{self.shown} {state}")
                self.db = snapshot(self.path)
                upgrade(self.db, self.shown, in_memory=True)
                self.db.execute("PRAGMA query_only = ON")  # a write to the snapshot would be lost: refuse it
            else:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self.db = sqlite3.connect(self.path, timeout=30)
                upgrade(self.db, self.shown, in_memory=False)
                self.db.execute("PRAGMA journal_mode=WAL")
                self.db.execute("PRAGMA synchronous=NORMAL")
                self.db.execute("PRAGMA foreign_keys=ON")
            check_columns(self.db, self.shown)
        except sqlite3.DatabaseError as exc:
            self._close_quietly()
            raise CaseError(f"{self.shown} is not a usable case database ({exc})") from None
        except CaseError:
            self._close_quietly()
            raise

    def close(self) -> None:
        self.db.close()

    def _close_quietly(self) -> None:
        if getattr(self, "db", None) is not None:
            self.db.close()

    def __enter__(self) -> "Case":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- writing -----------------------------------------------------------------------------
    def register_model(self, card) -> bool:
        """Record the model; False when the case knew these weights with other input settings (a policy
        changed with `models set`) or another calibration: scores given under the old ones must then not be
        reused."""
        with self.db:
            row = self.db.execute("SELECT card_json FROM models WHERE model_id = ? AND weights_sha256 = ?",
                                  (card.id, card.weights_sha256)).fetchone()
            if row is None:
                self.db.execute("INSERT INTO models VALUES (?, ?, ?, ?, ?)",
                                (card.id, card.weights_sha256, card.name, card.architecture, card.to_json()))
                return True
            current = json.loads(card.to_json())
            if _stored_input(row[0]) == current["input"] and \
                    _stored_calibration(row[0]) == (current.get("calibration") or {}):  # scores stored calibrated
                return True
            self.db.execute("UPDATE models SET card_json = ? WHERE model_id = ? AND weights_sha256 = ?",
                            (card.to_json(), card.id, card.weights_sha256))
            return False

    def record(self, results: Iterable[ScanResult], *, thresholds=None, device: str = "") -> None:
        """Write a batch of results, and the findings of those that carry evidence, in one transaction."""
        self.record_models([(results, thresholds)], device=device)

    def record_models(self, batches: Iterable[tuple[Iterable[ScanResult], object]], *, device: str = "") -> None:
        """Several models' results of one batch of files, each with its model's thresholds, in one transaction:
        a multi-model scan stopped at any moment leaves every model's rows for the same files."""
        now = time.time()
        with self.db:
            for results, thresholds in batches:
                for r in results:
                    self._record_result(r, thresholds, device, now)

    def _record_result(self, r: ScanResult, thresholds, device: str, now: float) -> None:
        file_id = self._upsert_file(r, now)
        if r.evidence is not None:
            self._replace_evidence(file_id, r.sha256, r.evidence, now)
        # texts may quote the file name, which may hold undecodable bytes SQLite cannot store
        error = readable(r.error) if r.error is not None else None
        notes = "; ".join(readable(note) for note in r.notes) or None
        written = self.db.execute(
            """INSERT INTO results (file_id, sha256, model_id, weights_sha256, p_fake, label, threshold,
                   band_low, band_high, error, device, scored_at, reused, notes)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
               ON CONFLICT (file_id, model_id, weights_sha256) DO UPDATE SET
                   sha256=excluded.sha256, p_fake=excluded.p_fake, label=excluded.label,
                   threshold=excluded.threshold, band_low=excluded.band_low,
                   band_high=excluded.band_high, error=excluded.error, device=excluded.device,
                   scored_at=excluded.scored_at, reused=excluded.reused, notes=excluded.notes
               WHERE excluded.reused = 0 OR results.error IS NOT NULL
                   OR results.sha256 IS NOT excluded.sha256""",
            (file_id, r.sha256, r.model_id, r.weights_sha256, r.p_fake, r.label,
             thresholds.threshold if thresholds else None, thresholds.low if thresholds else None,
             thresholds.high if thresholds else None, error, device, now, int(r.reused), notes))
        if written.rowcount:  # a new or replaced result: its tiles are replaced with it
            self._replace_tiles(file_id, r)

    def _replace_tiles(self, file_id: int, r: ScanResult) -> None:
        """The result's tiles; a score reused from the case takes the tiles of the result it came from."""
        (result_id,) = self.db.execute("SELECT id FROM results WHERE file_id = ? AND model_id = ? AND "
                                       "weights_sha256 = ?", (file_id, r.model_id, r.weights_sha256)).fetchone()
        self.db.execute("DELETE FROM tiles WHERE result_id = ?", (result_id,))
        if r.tiles:
            self.db.executemany("INSERT INTO tiles (result_id, x, y, w, h, p_fake) VALUES (?, ?, ?, ?, ?, ?)",
                                [(result_id, *tile) for tile in r.tiles])
        elif r.reused and r.sha256:
            self.db.execute(
                """INSERT INTO tiles (result_id, x, y, w, h, p_fake)
                   SELECT ?, x, y, w, h, p_fake FROM tiles WHERE result_id = (
                       SELECT r.id FROM results r WHERE r.sha256 = ? AND r.model_id = ? AND r.weights_sha256 = ?
                       AND r.id != ? AND EXISTS (SELECT 1 FROM tiles WHERE result_id = r.id) LIMIT 1)
                   ORDER BY rowid""", (result_id, r.sha256, r.model_id, r.weights_sha256, result_id))

    def record_scanned_paths(self, paths: Iterable[str | Path]) -> None:
        """Remember what a scan was asked to examine (absolute), so reports never write among it."""
        with self.db:
            self.db.executemany("INSERT OR IGNORE INTO scanned_paths VALUES (?, ?, ?)",
                                [(readable(p), to_bytes(p), time.time()) for p in paths])

    def file_paths(self) -> list[str]:
        """Every file of the case by its exact name (for the output guard: no scores, no checks)."""
        return [from_bytes(raw) for (raw,) in self.db.execute("SELECT path_bytes FROM files ORDER BY id")]

    def scanned_paths(self) -> list[str]:
        """The folders and files scans of this case were asked to examine, by their exact names."""
        return [from_bytes(raw) for (raw,) in self.db.execute("SELECT path_bytes FROM scanned_paths ORDER BY rowid")]

    def _upsert_file(self, r: ScanResult, now: float) -> int:
        exact = to_bytes(r.path)
        row = self.db.execute("SELECT id FROM files WHERE path_bytes = ?", (exact,)).fetchone()
        values = (r.sha256, r.size, r.width, r.height, r.format, r.modified)
        if row is None:
            cur = self.db.execute(
                "INSERT INTO files (path, path_bytes, sha256, size, width, height, format, modified, first_seen) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", (readable(r.path), exact, *values, now))
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

    def models(self) -> list[StoredModel]:
        """Every model the case registered, by id and weights (used or not: see result_settings)."""
        return [StoredModel(*row) for row in self.db.execute(
            "SELECT model_id, weights_sha256, name, architecture, card_json FROM models "
            "ORDER BY model_id, weights_sha256")]

    def result_settings(self) -> list[ResultSettings]:
        """Each model's results grouped by the settings they were given under (threshold, band, device), by
        model id and weights: what the report's method section says about each model."""
        found = []
        for row in self.db.execute(
                """SELECT model_id, weights_sha256, threshold, band_low, band_high, COALESCE(device, ''), COUNT(*)
                   FROM results GROUP BY model_id, weights_sha256, threshold, band_low, band_high, device
                   ORDER BY model_id, weights_sha256"""):
            if not all(value is None or isinstance(value, _NUMBER) for value in row[2:5]):
                raise CaseError(f"{self.shown} is a damaged Forensight case: the threshold or inconclusive band "
                                f"of model {row[0]!r} holds text")
            found.append(ResultSettings(*row))
        return found

    def rows(self, model_id: str | None = None, paths: Iterable[str] | None = None) -> list[CaseRow]:
        """Every file with its result for one model (the most recently used one when not given); with
        `paths` (names as scanned), only those files."""
        if model_id is None:
            last = self.db.execute("SELECT model_id FROM results ORDER BY scored_at DESC, id DESC LIMIT 1").fetchone()
            model_id = last[0] if last else None
        if paths is not None:
            return self.rows_for_paths(model_id, paths)
        return self._select_rows(model_id)

    def rows_for_paths(self, model_id: str | None, paths: Iterable[str]) -> list[CaseRow]:
        """Like rows(), for just these paths, looked up by index (cheap per batch, whatever the case size)."""
        wanted = list(dict.fromkeys(to_bytes(p) for p in paths))
        found: list[CaseRow] = []
        for start in range(0, len(wanted), 500):  # stay far below SQLite's limit on bound parameters
            found += self._select_rows(model_id, wanted[start:start + 500])
        return sorted(found, key=lambda row: row.file_id)

    def _select_rows(self, model_id: str | None, path_bytes: list[bytes] | None = None) -> list[CaseRow]:
        """The one query behind rows(): every file (or those with these exact names) with its result for the
        model and that result's strongest tile, in the order the files were first seen."""
        where = "" if path_bytes is None else f" WHERE f.path_bytes IN ({', '.join('?' * len(path_bytes))})"
        return self._case_rows(self.db.execute(f"{_ROW_SQL}{where} ORDER BY f.id", (model_id, *(path_bytes or ()))))

    def _case_rows(self, cursor: sqlite3.Cursor) -> list[CaseRow]:
        names = [f.name for f in fields(CaseRow)]
        rows = []
        for values in cursor:
            for name, value in zip(names, values):
                if (value is None and name not in _NOT_NULL) or isinstance(value, _ROW_TYPES[name]):
                    continue
                raise CaseError(f"{self.shown} is a damaged Forensight case: column {name} of file "
                                f"{values[0]} holds {_describe(value)}")
            row = CaseRow(*values)
            if row.p_fake is not None and not 0 <= row.p_fake <= 1:
                raise CaseError(f"{self.shown} is a damaged Forensight case: column p_fake of file "
                                f"{row.file_id} holds {row.p_fake}, not a probability")
            rows.append(row)
        return rows

    def tiles_for(self, file_id: int, model_id: str, weights_sha256: str | None = None) -> list[Tile]:
        """Every tile of one file's result for a model (its latest weights unless given), in scan order: the
        tile map."""
        rows = self.db.execute(
            """SELECT t.x, t.y, t.w, t.h, t.p_fake FROM tiles t JOIN results r ON r.id = t.result_id
               WHERE r.file_id = ? AND r.model_id = ? AND (? IS NULL OR r.weights_sha256 = ?)
                 AND r.id = (SELECT id FROM results WHERE file_id = ? AND model_id = ?
                             AND (? IS NULL OR weights_sha256 = ?) ORDER BY scored_at DESC, id DESC LIMIT 1)
               ORDER BY t.rowid""",
            (file_id, model_id, weights_sha256, weights_sha256, file_id, model_id, weights_sha256,
             weights_sha256)).fetchall()
        tiles = []
        for row in rows:
            if not (all(isinstance(v, int) for v in row[:4]) and isinstance(row[4], _NUMBER) and 0 <= row[4] <= 1):
                raise CaseError(f"{self.shown} is a damaged Forensight case: a tile of file {file_id} holds "
                                f"{_describe(row)}")
            tiles.append(Tile(*row))
        return tiles

    def scores_for_file(self, file_id: int) -> list[ModelScore]:
        """Every model's result for one file, newest first: how the detectors agree on it."""
        rows = self.db.execute(
            """SELECT r.model_id, COALESCE(m.name, r.model_id), r.weights_sha256, r.p_fake, r.label, r.error,
                      r.scored_at, COALESCE(m.architecture, '')
               FROM results r LEFT JOIN models m
                    ON m.model_id = r.model_id AND m.weights_sha256 = r.weights_sha256
               WHERE r.file_id = ? ORDER BY r.scored_at DESC, r.id DESC""", (file_id,)).fetchall()
        for row in rows:
            if row[3] is not None and not isinstance(row[3], _NUMBER):
                raise CaseError(f"{self.shown} is a damaged Forensight case: column p_fake of file {file_id} "
                                f"holds {_describe(row[3])}")
        return [ModelScore(*row) for row in rows]

    def record_evidence(self, path: str, sha256: str | None, findings: "Iterable[Finding]") -> None:
        """Replace the findings of one file (the file row must exist: record its result first)."""
        row = self.db.execute("SELECT id FROM files WHERE path_bytes = ?", (to_bytes(path),)).fetchone()
        if row is None:
            raise CaseError(f"{readable(path)} is not in the case yet")
        with self.db:
            self._replace_evidence(row[0], sha256, findings, time.time())

    def _replace_evidence(self, file_id: int, sha256: str | None, findings: "Iterable[Finding]", now: float) -> None:
        self.db.execute("DELETE FROM evidence WHERE file_id = ?", (file_id,))
        self.db.executemany(
            "INSERT INTO evidence (file_id, sha256, source, kind, strength, points_to, message, details, "
            "found_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(file_id, sha256, f.source, f.kind, f.strength, f.points_to, readable(f.message),
              _storable_json(f.details_json()), now) for f in findings])

    def evidence_for(self, file_id: int) -> "list[Finding]":
        rows = self.db.execute("SELECT source, kind, strength, message, details, points_to FROM evidence "
                               "WHERE file_id = ? ORDER BY id", (file_id,)).fetchall()
        return self._findings(file_id, rows)

    def has_evidence(self, sha256: str) -> bool:
        return self.db.execute("SELECT 1 FROM evidence WHERE sha256 = ? LIMIT 1", (sha256,)).fetchone() is not None

    def count_results(self, model_id: str | None = None) -> int:
        if model_id is None:
            return self.db.execute("SELECT COUNT(*) FROM results").fetchone()[0]
        return self.db.execute("SELECT COUNT(*) FROM results WHERE model_id = ?", (model_id,)).fetchone()[0]

    def evidence_by_file(self) -> "Iterable[tuple[int, list[Finding]]]":
        """Every file's findings, file by file in file-id order, from one query: an export reads them beside
        rows() (in the same order) instead of asking evidence_for once per row."""
        from itertools import groupby

        rows = self.db.execute("SELECT file_id, source, kind, strength, message, details, points_to FROM evidence "
                               "ORDER BY file_id, id")
        for file_id, group in groupby(rows, key=lambda row: row[0]):
            yield file_id, self._findings(file_id, [row[1:] for row in group])

    def _findings(self, file_id: int, rows: "Iterable[tuple]") -> "list[Finding]":
        """Stored evidence rows (source, kind, strength, message, details, points_to) of one file as Findings."""
        from app.evidence.findings import Finding

        try:
            return [Finding(source, kind, strength, message, json.loads(details), points_to)
                    for source, kind, strength, message, details, points_to in rows]
        except (TypeError, ValueError) as exc:  # ValueError: bad JSON or an unknown strength
            raise CaseError(f"{self.shown} is a damaged Forensight case: a finding of file {file_id} cannot be "
                            f"read ({exc})") from None


def _stored_input(card_json: object) -> object:
    """The input settings of a card stored in the case (None when unreadable). A card stored before the
    policies with views existed lacks their fields: those are filled in as the defaults it was scanned with."""
    from dataclasses import asdict

    from models.card import InputSpec

    try:
        stored = json.loads(card_json)["input"]
    except (TypeError, ValueError, KeyError):
        return None
    if not isinstance(stored, dict):
        return None
    return json.loads(json.dumps(asdict(InputSpec()) | stored))


def _stored_calibration(card_json: object) -> object:
    """The calibration of a card stored in the case ({} for a card written before calibration existed)."""
    try:
        stored = json.loads(card_json)
    except (TypeError, ValueError):
        return None
    return stored.get("calibration") or {} if isinstance(stored, dict) else None


def _storable_json(text: str) -> str:
    """JSON that SQLite can store: a lone surrogate (an undecodable byte of a quoted file name) is written as
    the escape \\udcNN, which reads back as the same string."""
    return text if is_exact_text(text) else json.dumps(json.loads(text), sort_keys=True)


def _describe(value: object) -> str:
    """A stored value in words, for the line that names the damage: text ('high'), nothing (NULL), …"""
    if value is None:
        return "nothing (NULL)"
    kind = {str: "text", bytes: "binary data", int: "a whole number", float: "a number"}.get(type(value), "a value")
    shown = repr(readable(value) if isinstance(value, str) else value)
    return f"{kind} ({shown[:40]})"
