"""What a report says, read from the case database: the rows, the models behind them, the counts."""
from __future__ import annotations

import sqlite3
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from app.case.store import Case, CaseRow, ModelScore
from app.evidence.findings import Finding
from models.engine import Tile
from models.labels import FLAGGED_LABELS, NOT_SCORED, OUTCOMES, agreement, outcome


class ReportError(ValueError):
    """The report cannot be made from this case (a sentence for the user)."""


@dataclass
class ModelUse:
    """One model (id + weights) as the case used it, with the settings its results were given under."""
    model_id: str
    weights_sha256: str
    name: str
    architecture: str
    card: dict  # the card JSON stored in the case ({} when absent or unreadable)
    settings: list[tuple[float | None, float | None, float | None, str]]  # threshold, band low/high, device
    files: int


@dataclass
class ReportData:
    case_path: Path
    model_id: str | None
    rows: list[CaseRow]  # the rows the report shows (all, or only the flagged ones)
    all_rows: list[CaseRow]  # every file of the case for that model: counts and histogram
    models: list[ModelUse]
    evidence: dict[int, list[Finding]] = field(default_factory=dict)  # file id → findings (may be empty)
    only_flagged: bool = False
    tiles: dict[int, list[Tile]] = field(default_factory=dict)  # file id → its tile scores (flagged files)
    # file id → every model's latest score, the reported model's first; only when several models scored the case
    scores: dict[int, list[ModelScore]] = field(default_factory=dict)

    def agreement(self, file_id: int) -> str:
        """Whether every model of the case labelled this file alike: agree, differ, or "" (a single model, or
        one that has no label for the file)."""
        scores = self.scores.get(file_id, [])
        return agreement(scores) if len(scores) == len({use.model_id for use in self.models}) else ""

    @property
    def counts(self) -> Counter:
        return Counter(counted_outcome(row) for row in self.all_rows)

    @property
    def flagged(self) -> list[CaseRow]:
        return [row for row in self.rows if is_flagged(row)]

    @property
    def unreadable(self) -> list[CaseRow]:
        return [row for row in self.all_rows if row.error]


def counted_outcome(row: CaseRow) -> str:
    """The row's word in the report's counts; a label outside the vocabulary (a hand-edited case) counts as not
    scored, so that every file is counted under a word the summary lists."""
    word = outcome(row.label, row.error)
    return word if word in OUTCOMES else NOT_SCORED


def is_flagged(row: CaseRow) -> bool:
    return not row.error and row.label in FLAGGED_LABELS


def select_rows(case: Case, model_id: str | None, only_flagged: bool) -> list[CaseRow]:
    """The rows a report (and its CSV) covers; one shared rule for the CLI and the desktop app."""
    rows = case.rows(model_id)
    return [row for row in rows if is_flagged(row)] if only_flagged else rows


def model_uses(case: Case) -> list[ModelUse]:
    cards = {(m.model_id, m.weights_sha256): (m.name or m.model_id, m.architecture or "", m.card)
             for m in case.models()}
    settings: dict[tuple[str, str], list] = {}
    files: Counter = Counter()
    for used in case.result_settings():
        key = (used.model_id, used.weights_sha256)
        settings.setdefault(key, []).append((used.threshold, used.band_low, used.band_high, used.device))
        files[key] += used.results
    uses = []
    for key in sorted(set(settings) | set(cards)):
        name, arch, card = cards.get(key, (key[0], "", {}))
        uses.append(ModelUse(key[0], key[1], name, arch or str(card.get("architecture", "")), card,
                             settings.get(key, []), files.get(key, 0)))
    return [use for use in uses if use.files]  # "used in the case": registered but never scored is left out


def load_report_data(case: Case, model_id: str | None, only_flagged: bool) -> ReportData:
    try:
        return _load(case, model_id, only_flagged)
    except sqlite3.DatabaseError as exc:  # damage below what opening the case checks (a malformed page)
        raise ReportError(f"{case.shown} cannot be read: {exc}") from None


def _load(case: Case, model_id: str | None, only_flagged: bool) -> ReportData:
    all_rows = case.rows(model_id)
    if model_id is not None and not any(row.model_id == model_id for row in all_rows):
        known = ", ".join(sorted({use.model_id for use in model_uses(case)})) or "none"
        raise ReportError(f"model {model_id!r} has no results in this case (models used: {known})")
    model_id = next((row.model_id for row in all_rows if row.model_id), model_id)
    rows = [row for row in all_rows if is_flagged(row)] if only_flagged else all_rows
    evidence = {row.file_id: case.evidence_for(row.file_id) for row in rows}
    tiles = {row.file_id: case.tiles_for(row.file_id, row.model_id, row.weights_sha256)
             for row in rows if is_flagged(row) and row.model_id}
    uses = model_uses(case)
    return ReportData(Path(case.path), model_id, rows, all_rows, uses, evidence, only_flagged, tiles,
                      every_models_scores(case, all_rows, model_id, uses))


def every_models_scores(case: Case, rows: list[CaseRow], model_id: str | None,
                        uses: list[ModelUse]) -> dict[int, list[ModelScore]]:
    """Per file, each model's latest score (the reported model's first, then by model id), when the case holds
    more than one model's results; {} otherwise, so a single-model report stays as it was."""
    model_ids = sorted({use.model_id for use in uses}, key=lambda m: (m != model_id, m))
    if len(model_ids) < 2:
        return {}
    found = {}
    for row in rows:
        latest: dict[str, ModelScore] = {}
        for score in case.scores_for_file(row.file_id):  # newest first
            latest.setdefault(score.model_id, score)
        found[row.file_id] = [latest[m] for m in model_ids if m in latest]
    return found
