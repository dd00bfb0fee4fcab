"""The window's scan as a job for a worker: the one scan path (app.services.scanning, the same as `forensight
scan`) as a generator that yields the number of files found, then each batch as the case stored it."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Generator, Iterator

from app.case.store import Case, CaseRow
from app.services.scanning import ScanSummary, iter_scan, list_entries
from models.engine import CancelToken, MultiScanEngine, ScanEngine, ScanResult
from models.ensemble import build_scorers
from models.labels import Thresholds
from models.library import ModelLibrary


@dataclass(frozen=True)
class ScanRequest:
    case_path: Path
    model_id: str
    paths: tuple[Path, ...]
    recursive: bool
    thresholds: Thresholds
    batch_size: int = 16
    device: str = "auto"
    also: tuple[str, ...] = ()  # more models scored in the same pass, each at its card's thresholds

    @property
    def model_ids(self) -> tuple[str, ...]:
        return (self.model_id, *(m for m in dict.fromkeys(self.also) if m != self.model_id))


@dataclass(frozen=True)
class ScanProgress:
    done: int
    total: int
    elapsed: float

    @property
    def rate(self) -> float:
        return self.done / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def seconds_left(self) -> float | None:
        return (self.total - self.done) / self.rate if self.rate > 0 else None


@dataclass(frozen=True)
class ScanListed:
    total: int  # files found, before the first batch


@dataclass(frozen=True)
class StoredBatch:
    rows_by_model: dict[str, list[CaseRow]]  # as stored in the case
    progress: ScanProgress


def scan_job(request: ScanRequest, cancel: CancelToken) -> Generator[ScanListed | StoredBatch, None, ScanSummary]:
    """Stops before the next batch once `cancel` is set; every batch already scored is in the case and has been
    yielded, and the summary says how far it got."""
    library = ModelLibrary()
    # the toolbar's thresholds are the first model's; the others (an ensemble's members too) keep their cards'
    thresholds_for = lambda card: request.thresholds if card.id == request.model_id else None  # noqa: E731
    scorers = build_scorers([library.load(model_id) for model_id in request.model_ids],
                            lambda model: ScanEngine(model, device=request.device, batch_size=request.batch_size,
                                                     thresholds=thresholds_for(model.card)), thresholds_for)
    entries = list_entries(list(request.paths), request.recursive)
    yield ScanListed(len(entries))
    with Case(request.case_path) as case:  # this thread's own connection: SQLite objects stay put
        scan = iter_scan(case, MultiScanEngine(scorers), entries, cancel=cancel, roots=request.paths)
        return (yield from _as_stored(case, scan, request.model_ids))


def _as_stored(case: Case, scan: Iterator[tuple[list[ScanResult], ScanSummary]],
               model_ids: tuple[str, ...]) -> Generator[StoredBatch, None, ScanSummary]:
    while True:
        try:
            batch, summary = next(scan)
        except StopIteration as end:
            return end.value
        paths = list(dict.fromkeys(result.path for result in batch))
        stored = {model_id: case.rows_for_paths(model_id, paths) for model_id in model_ids}
        yield StoredBatch(stored, ScanProgress(summary.done, summary.total, summary.elapsed))
