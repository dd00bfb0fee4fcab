"""The one scan path shared by the CLI and the desktop app: discover files, stream them through the engine,
commit each batch to the case, report progress, and summarise."""
from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Generator, Iterable, Sequence

from app.case.store import Case
from app.evidence import analyse
from app.output_guard import CASE, check_output, scan_evidence
from models.device import describe_device
from models.discovery import Entry, absolute, discover
from models.engine import CancelToken, MultiScanEngine, ScanEngine, ScanResult
from models.labels import AGREE, LABELS, UNREADABLE, agreement


@dataclass
class ModelTally:
    """One model's outcomes over a scan."""
    by_label: Counter = field(default_factory=Counter)
    errors: Counter = field(default_factory=Counter)  # reason → count
    reused: int = 0

    def add(self, result: ScanResult) -> None:
        if result.error:
            self.errors[error_kind(result.error)] += 1
        else:
            self.by_label[result.label] += 1
            self.reused += result.reused

    def lines(self, indent: str = "  ") -> list[str]:
        out = [f"{indent}{label:<14}{self.by_label.get(label, 0):>7}" for label in LABELS]
        out.append(f"{indent}{UNREADABLE:<14}{sum(self.errors.values()):>7}")
        for reason, count in self.errors.most_common():
            out.append(f"{indent}    {count:>5} × {reason}")
        if self.reused:
            out.append(f"{indent}({self.reused} scores reused from the case: same content, same model)")
        return out


@dataclass
class ScanSummary:
    total: int = 0
    done: int = 0  # files (each scored by every model of the scan)
    elapsed: float = 0.0
    cancelled: bool = False
    paths: list[str] = field(default_factory=list)
    tallies: dict[str, ModelTally] = field(default_factory=dict)  # model id → outcomes, in the scan's order
    agreed: int = 0  # files that every model labelled, all with the same label
    compared: int = 0  # files that every model labelled

    def add(self, results: Sequence[ScanResult]) -> None:
        """One file's results, one per model."""
        self.done += 1
        self.paths.append(results[0].path)
        for result in results:
            self.tallies.setdefault(result.model_id, ModelTally()).add(result)
        verdict = agreement(results)
        self.compared += bool(verdict)
        self.agreed += verdict == AGREE

    # the first model's outcomes: the only model's in a single-model scan
    @property
    def by_label(self) -> Counter:
        return self._first().by_label

    @property
    def errors(self) -> Counter:
        return self._first().errors

    @property
    def reused(self) -> int:
        return self._first().reused

    def _first(self) -> ModelTally:
        return next(iter(self.tallies.values()), ModelTally())

    @property
    def rate(self) -> float:
        return self.done / self.elapsed if self.elapsed > 0 else 0.0

    def lines(self) -> list[str]:
        state = "Stopped after" if self.cancelled else "Scanned"
        out = [f"{state} {self.done} of {self.total} files in {self.elapsed:.1f} s ({self.rate:.1f} files/s)"]
        if len(self.tallies) <= 1:
            return out + self._first().lines()
        for model_id, tally in self.tallies.items():
            out += [f"  {model_id}:"] + tally.lines("    ")
        out.append(f"  Agreement: {self.agreed} of {self.compared} files labelled by all {len(self.tallies)} "
                   f"models get the same label from each ({self.compared - self.agreed} differ)")
        return out


def error_kind(reason: str) -> str:
    """Group errors by their reason without the per-file detail in brackets."""
    return reason.split(" (", 1)[0].split(":", 1)[0] if reason else reason


def list_entries(paths: Iterable[Path], recursive: bool) -> list[Entry]:
    return list(discover(paths, recursive))


def run_scan(case: Case, engine: ScanEngine | MultiScanEngine, entries: list[Entry], *,
             cancel: CancelToken | None = None,
             on_batch: Callable[[list[ScanResult], ScanSummary], None] | None = None,
             evidence: bool = True, roots: Iterable[Path] = ()) -> ScanSummary:
    """Scan `entries` (found under `roots`, the folders and files the user named) into `case` with one model
    (a ScanEngine) or several in one pass (a MultiScanEngine, ensembles and their members included); with
    `evidence`, each file's metadata findings are stored beside its scores. on_batch gets every result the
    batch stored (file by file, each file's models in order) and the summary so far."""
    batches = iter_scan(case, engine, entries, cancel=cancel, evidence=evidence, roots=roots)
    while True:
        try:
            results, summary = next(batches)
        except StopIteration as end:
            return end.value
        if on_batch:
            on_batch(results, summary)


def iter_scan(case: Case, engine: ScanEngine | MultiScanEngine, entries: list[Entry], *,
              cancel: CancelToken | None = None, evidence: bool = True,
              roots: Iterable[Path] = ()) -> Generator[tuple[list[ScanResult], ScanSummary], None, ScanSummary]:
    """run_scan as a generator (the desktop app's scan worker): yields each stored batch's results with the
    summary so far, and returns the final summary."""
    roots = list(roots)
    # the last word for the CLI and the app alike: with every file found, the case must not be among them
    check_output(case.path, CASE, scan_evidence(roots, entries))
    multi = engine if isinstance(engine, MultiScanEngine) else MultiScanEngine([engine])
    summary = ScanSummary(total=len(entries), tallies={card.id: ModelTally() for card in multi.cards})
    case.record_scanned_paths(absolute(root) for root in roots)
    priors = []
    for card in multi.cards:  # a model whose input settings changed since the case saw it rescores everything
        same_input = case.register_model(card)
        ensemble = card.architecture == "ensemble"  # recombined from its members' scores: nothing to reuse
        priors.append(case.prior_scores(card.id, card.weights_sha256) if same_input and not ensemble else {})
    device = describe_device(multi.engines[0].device)
    start = time.perf_counter()
    cancel = cancel or CancelToken()
    analyzer = analyse if evidence else None
    for batch in multi.scan_batches(entries, priors=priors, cancel=cancel, analyzer=analyzer):
        # every model's scores and the findings, one commit; the first model's written last, so that it is the
        # case's most recently used model, whose results reports and the app show when not told which
        per_model = [([results[i] for results in batch], limits) for i, limits in enumerate(multi.thresholds)]
        case.record_models(per_model[::-1], device=device)
        for results in batch:
            summary.add(results)
        summary.elapsed = time.perf_counter() - start
        yield [result for results in batch for result in results], summary
    summary.elapsed = time.perf_counter() - start
    summary.cancelled = cancel.cancelled and summary.done < summary.total
    return summary
