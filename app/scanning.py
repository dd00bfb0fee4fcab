"""The one scan path shared by the CLI and the desktop app: discover files, stream them through the engine,
commit each batch to the case, report progress, and summarise."""
from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from app.case import Case
from app.evidence import analyse
from app.output_guard import CASE, check_output, scan_evidence
from models.device import describe_device
from models.discovery import Entry, absolute, discover
from models.engine import CancelToken, ScanEngine, ScanResult
from models.labels import LABELS


@dataclass
class ScanSummary:
    total: int = 0
    done: int = 0
    by_label: Counter = field(default_factory=Counter)
    errors: Counter = field(default_factory=Counter)  # reason → count
    reused: int = 0
    elapsed: float = 0.0
    cancelled: bool = False
    paths: list[str] = field(default_factory=list)

    def add(self, result: ScanResult) -> None:
        self.done += 1
        self.paths.append(result.path)
        if result.error:
            self.errors[error_kind(result.error)] += 1
        else:
            self.by_label[result.label] += 1
            self.reused += result.reused

    @property
    def rate(self) -> float:
        return self.done / self.elapsed if self.elapsed > 0 else 0.0

    def lines(self) -> list[str]:
        state = "Stopped after" if self.cancelled else "Scanned"
        out = [f"{state} {self.done} of {self.total} files in {self.elapsed:.1f} s ({self.rate:.1f} files/s)"]
        for label in LABELS:
            out.append(f"  {label:<14}{self.by_label.get(label, 0):>7}")
        out.append(f"  {'unreadable':<14}{sum(self.errors.values()):>7}")
        for reason, count in self.errors.most_common():
            out.append(f"      {count:>5} × {reason}")
        if self.reused:
            out.append(f"  ({self.reused} scores reused from the case: same content, same model)")
        return out


def error_kind(reason: str) -> str:
    """Group errors by their reason without the per-file detail in brackets."""
    return reason.split(" (", 1)[0].split(":", 1)[0] if reason else reason


def list_entries(paths: Iterable[Path], recursive: bool) -> list[Entry]:
    return list(discover(paths, recursive))


def run_scan(case: Case, engine: ScanEngine, entries: list[Entry], *, cancel: CancelToken | None = None,
             on_batch: Callable[[list[ScanResult], ScanSummary], None] | None = None,
             evidence: bool = True, roots: Iterable[Path] = ()) -> ScanSummary:
    """Scan `entries` (found under `roots`, the folders and files the user named) into `case`; with
    `evidence`, each file's metadata findings are stored beside its score."""
    roots = list(roots)
    # the last word for the CLI and the app alike: with every file found, the case must not be among them
    check_output(case.path, CASE, scan_evidence(roots, entries))
    summary = ScanSummary(total=len(entries))
    card = engine.card
    case.record_scanned_paths(absolute(root) for root in roots)
    same_input = case.register_model(card)
    prior = case.prior_scores(card.id, card.weights_sha256) if same_input else {}  # else rescore everything
    device = describe_device(engine.device)
    start = time.perf_counter()
    cancel = cancel or CancelToken()
    analyzer = analyse if evidence else None
    for batch in engine.scan_batches(entries, prior=prior, cancel=cancel, analyzer=analyzer):
        case.record(batch, thresholds=engine.thresholds, device=device)  # scores and findings, one commit
        for result in batch:
            summary.add(result)
        summary.elapsed = time.perf_counter() - start
        if on_batch:
            on_batch(batch, summary)
    summary.elapsed = time.perf_counter() - start
    summary.cancelled = cancel.cancelled and summary.done < summary.total
    return summary
