"""Datasets on disk: layout discovery, seeded splits, balanced subsets, integrity checks.

Understood layouts (folder names in any case):
    ROOT/real, ROOT/fake                      (synonyms: 0_real/1_fake, authentic/ai, nature/ai, ...)
    ROOT/{train,val,test}/real|fake           (splits)
    ROOT/[split/]<category>/0_real|1_fake     (ForenSynths: the category becomes the group)
    ROOT/.../fake/<generator>/...             (a sub-folder under a class folder becomes the group)
"""
from __future__ import annotations

import hashlib
import random
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from models.classes import CLASS_NAMES, FAKE, IMAGE_SUFFIXES, REAL, class_of

_SPLIT_SYNONYMS = {"train": {"train", "training"}, "val": {"val", "valid", "validation", "dev"},
                   "test": {"test", "testing"}}


class LayoutError(ValueError):
    pass


@dataclass(frozen=True)
class Sample:
    path: Path
    label: int  # 0 real, 1 fake
    group: str  # category, generator or source: used for per-group metrics and leak-free splits
    split: str | None = None  # train / val / test when the folders say so


@dataclass
class Dataset:
    root: Path
    samples: list[Sample]
    excluded: list[tuple[str, str]] = field(default_factory=list)  # (path, reason) of corrupt files

    def split(self, name: str) -> list[Sample]:
        return [s for s in self.samples if s.split == name]

    @property
    def splits(self) -> set[str]:
        return {s.split for s in self.samples if s.split}

    @property
    def groups(self) -> list[str]:
        return sorted({s.group for s in self.samples})

    def summary(self, samples: list[Sample] | None = None) -> dict:
        samples = self.samples if samples is None else samples
        per_class = Counter(CLASS_NAMES[s.label] for s in samples)
        per_group: dict[str, dict[str, int]] = {}
        for s in samples:
            per_group.setdefault(s.group, Counter())[CLASS_NAMES[s.label]] += 1
        return {"root": str(self.root), "count": len(samples), "per_class": dict(per_class),
                "per_group": {g: dict(c) for g, c in sorted(per_group.items())},
                "file_list_sha256": file_list_hash(samples, self.root), "excluded": len(self.excluded)}


def _split_of(name: str) -> str | None:
    lowered = name.lower()
    return next((split for split, names in _SPLIT_SYNONYMS.items() if lowered in names), None)


def _subdirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _images_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
                  and not any(part.startswith(".") for part in p.relative_to(folder).parts))


def discover_dataset(root: Path) -> Dataset:
    root = Path(root).expanduser()
    if not root.is_dir():
        raise LayoutError(f"{root} is not a folder")
    samples = _collect(root, split=None, group_parts=[], depth=0)
    labels = {s.label for s in samples}
    if labels != {REAL, FAKE}:
        found = "only real images" if labels == {REAL} else "only fake images" if labels == {FAKE} else "no images"
        raise LayoutError(
            f"no dataset layout fits {root} ({found} found): expected real/ and fake/ folders (or 0_real/1_fake, "
            "REAL/FAKE, authentic/ai), optionally under train/ val/ test/ and per-category folders")
    return Dataset(root, samples)


def _collect(folder: Path, split: str | None, group_parts: list[str], depth: int) -> list[Sample]:
    if depth > 6:
        return []
    children = _subdirs(folder)
    class_dirs = [(c, class_of(c.name)) for c in children if class_of(c.name) is not None]
    if class_dirs:
        samples = []
        for class_dir, label in class_dirs:
            for path in _images_under(class_dir):
                inner = path.relative_to(class_dir).parts[:-1]
                group = "/".join(group_parts + ([inner[0]] if inner else [])) or "all"
                samples.append(Sample(path, label, group, split))
        return samples
    split_dirs = [(c, _split_of(c.name)) for c in children if _split_of(c.name) and split is None]
    if split_dirs:
        return [s for c, name in split_dirs for s in _collect(c, name, group_parts, depth + 1)]
    return [s for c in children for s in _collect(c, split, group_parts + [c.name], depth + 1)]


def file_list_hash(samples: list[Sample], root: Path) -> str:
    lines = sorted(f"{_relative(s.path, root)}\t{s.label}\t{s.split or ''}" for s in samples)
    return hashlib.sha256("\n".join(lines).encode("utf-8")).hexdigest()


def _relative(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


def split_train_val(samples: list[Sample], val_fraction: float = 0.1, seed: int = 0,
                    by_group: bool = False) -> tuple[list[Sample], list[Sample]]:
    """Seeded, stratified by class; with by_group, every group lands wholly on one side (no scene leaks)."""
    rng = random.Random(seed)
    train, val = [], []
    for label in (REAL, FAKE):
        members = [s for s in samples if s.label == label]
        if by_group:
            groups = sorted({s.group for s in members})
            rng.shuffle(groups)
            n_val = max(1, round(len(groups) * val_fraction)) if len(groups) > 1 else 0
            val_groups = set(groups[:n_val])
            val += [s for s in members if s.group in val_groups]
            train += [s for s in members if s.group not in val_groups]
        else:
            members = sorted(members, key=lambda s: str(s.path))
            rng.shuffle(members)
            n_val = max(1, round(len(members) * val_fraction)) if len(members) > 1 else 0
            val += members[:n_val]
            train += members[n_val:]
    return train, val


def balanced(samples: list[Sample], seed: int = 0, max_per_class: int | None = None) -> list[Sample]:
    """Equal counts per class (seed 001's balanced subsets), sampled evenly across groups."""
    rng = random.Random(seed)
    by_class = {label: [s for s in samples if s.label == label] for label in (REAL, FAKE)}
    n = min(len(v) for v in by_class.values())
    if max_per_class:
        n = min(n, max_per_class)
    chosen = []
    for members in by_class.values():
        members = sorted(members, key=lambda s: str(s.path))
        rng.shuffle(members)
        by_group: dict[str, list[Sample]] = {}
        for s in members:
            by_group.setdefault(s.group, []).append(s)
        queues = list(by_group.values())
        picked = []
        while len(picked) < n:  # round-robin over groups so no category dominates the subset
            for queue in queues:
                if queue and len(picked) < n:
                    picked.append(queue.pop())
        chosen += picked
    return sorted(chosen, key=lambda s: str(s.path))


def check_integrity(dataset: Dataset, workers: int = 4, cancel=None) -> Dataset:
    """Fully decode every file (as seed 002 did); corrupt ones are excluded and listed with the reason.
    `cancel` (anything with a `cancelled` flag) skips the remaining files: a big dataset takes minutes."""
    from models.imaging import ImageDecodeError, decode, read_file

    def problem(sample: Sample) -> str | None:
        if cancel is not None and cancel.cancelled:
            return None
        try:
            decode(read_file(sample.path)[0])
        except ImageDecodeError as exc:
            return str(exc)
        return None

    with ThreadPoolExecutor(workers) as pool:
        problems = list(pool.map(problem, dataset.samples))
    good = [s for s, p in zip(dataset.samples, problems) if p is None]
    bad = [(str(s.path), p) for s, p in zip(dataset.samples, problems) if p is not None]
    return Dataset(dataset.root, good, dataset.excluded + bad)
