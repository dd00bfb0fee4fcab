"""Labelled reference folders for `forensight calibrate` and `forensight ensemble create`: pictures known to be
real (and known to be AI-generated), listed, scored by every model in one pass, checked for a picture given both
labels, and listed in a manifest whose SHA-256 identifies the set. The folders are only read (they are
evidence-like: an examiner's reference set), never written beside.

The folders are two separate --real/--fake folders (sub-folders included), not a training layout, so they are
listed like a scan's folders (models.discovery), and a file no model can read counts as skipped, not as an error.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

from models.discovery import Entry, absolute, discover
from models.paths import readable

if TYPE_CHECKING:  # the engine (and torch) loads when a set is scored, not when a dialog imports a request
    from models.engine import ScanEngine

Progress = Callable[[int, int], None]
# label → one row per picture every model scored: (each model's P(fake), in the engines' order; SHA-256; path)
Scored = dict[str, list[tuple[list[float], str, str]]]


def list_folders(folders: dict[str, Path], error: type[Exception]) -> dict[str, list[Entry]]:
    """Every file under each labelled folder; `error` (the job's own) for a folder that is not there."""
    listed = {}
    for label, folder in folders.items():
        if not Path(folder).is_dir():
            raise error(f"the {label} folder {readable(folder)} does not exist or is not a folder")
        listed[label] = list(discover([Path(folder)], recursive=True))
    return listed


def score_folders(engines: Sequence["ScanEngine"], listed: dict[str, list[Entry]],
                  progress: Progress | None = None) -> tuple[Scored, int]:
    """Each picture scored by every engine in one pass (read, hashed and decoded once, each model under its own
    input policy and calibration: what a scan gives), and how many files not every engine could score."""
    from models.engine import MultiScanEngine

    multi = MultiScanEngine(list(engines))
    total, done, skipped = sum(len(v) for v in listed.values()), 0, 0
    scored: Scored = {}
    for label, entries in listed.items():
        scored[label] = []
        for batch in multi.scan_batches(entries):
            for results in batch:
                done += 1
                if all(r.ok and r.p_fake is not None for r in results):
                    scored[label].append(([r.p_fake for r in results], results[0].sha256, results[0].path))
                else:
                    skipped += 1
            if progress is not None:
                progress(done, total)
    return scored, skipped


def check_one_label(scored: Scored, error: type[Exception]) -> None:
    """The same picture in the real and the AI-generated folder is a labelling mistake no fit can resolve."""
    both = {sha for _, sha, _ in scored["real"]} & {sha for _, sha, _ in scored.get("fake", [])}
    if both:
        example = next(path for _, sha, path in scored["real"] if sha in both)
        raise error(f"{len(both)} pictures are both in the real and the AI-generated folder (same SHA-256; e.g. "
                    f"{example}): each picture needs one label")


def manifest_text(scored: Scored, folders: dict[str, Path]) -> bytes:
    """One line per picture used, sorted: label, SHA-256, path inside its folder. Its SHA-256 identifies the set."""
    lines = []
    for label, rows in scored.items():
        root = absolute(folders[label])
        lines += [f"{label}\t{sha}\t{readable(os.path.relpath(path, root))}" for _, sha, path in rows]
    return ("label\tsha256\tpath\n" + "".join(line + "\n" for line in sorted(lines))).encode("utf-8")
