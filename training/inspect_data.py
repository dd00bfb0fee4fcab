"""Look at a dataset before training on it: counts, corrupt files, sizes, formats, JPEG quality, shortcuts.

A detector learns whatever separates the classes most easily. When every fake is a square PNG and every
real a 4:3 JPEG, "PNG means fake" is all it will learn. `inspect_dataset` measures, for each trivial
feature on its own, how well it tells real from fake, and warns in plain words when it does.

Every file is opened for reading only; the report holds plain Python types so it can be saved as JSON.
"""
from __future__ import annotations

import io
import math
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PIL import Image
from sklearn.metrics import roc_auc_score

from models.imaging import ImageDecodeError, decode, read_file
from models.jpeg_tables import estimate_jpeg_quality
from training.data import CLASS_NAMES, FAKE, REAL, Sample, discover_dataset

# A single trivial feature that scores this well (ROC-AUC, or balanced accuracy for categories) is a shortcut.
SHORTCUT_THRESHOLD = 0.8
# Below this many usable images in either class a score is noise (two images always give AUC 0 or 1).
MIN_SHORTCUT_SAMPLES = 5
IMBALANCE_RATIO = 1.5
MIN_CLASS_IMAGES = 10
SQUARE_TOLERANCE = 0.01  # aspect ratio within 1% of 1.0 counts as square
MAX_LISTED_CORRUPT = 10

# Shared bin edges so that the two classes' histograms can be compared bar by bar.
# 17 log-spaced aspect bins from 1:4 to 4:1; the middle bin is centred on 1.0 (square).
ASPECT_EDGES = np.geomspace(0.25, 4.0, 18)
MEGAPIXEL_EDGES = np.array([0.0, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0])
QUALITY_EDGES = np.arange(0, 101, 5, dtype=float)

# ---------------------------------------------------------------- reading files

@dataclass
class _Facts:
    """What one file tells us; `problem` is set when the file cannot be decoded."""
    sample: Sample
    file_bytes: int = 0
    width: int = 0
    height: int = 0
    format: str = ""
    quality: int | None = None
    problem: str | None = None

    @property
    def megapixels(self) -> float:
        return self.width * self.height / 1e6

    @property
    def aspect(self) -> float:
        return self.width / self.height


def _inspect_file(sample: Sample) -> _Facts:
    try:
        data, _ = read_file(sample.path)
        decode(data)  # a full load: truncated or damaged pixel data passes a header read but fails here
    except ImageDecodeError as exc:
        return _Facts(sample, _size_on_disk(sample.path), problem=str(exc))
    try:
        with Image.open(io.BytesIO(data)) as img:  # header only: size, format and quantisation tables
            quality = estimate_jpeg_quality(getattr(img, "quantization", None) or {})
            return _Facts(sample, len(data), img.width, img.height, img.format or "unknown", quality)
    except Exception as exc:  # decoded once already, so this is unexpected; report rather than crash
        return _Facts(sample, len(data), problem=f"unreadable header ({type(exc).__name__}: {exc})")


def _size_on_disk(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


# ---------------------------------------------------------------- small statistics helpers

def _class_counter() -> dict[str, int]:
    return {name: 0 for name in CLASS_NAMES.values()}


def _stats(values: Sequence[float]) -> dict[str, float] | None:
    if not len(values):
        return None
    v = np.asarray(values, dtype=float)
    numbers = {"min": v.min(), "max": v.max(), "mean": v.mean(), "median": np.median(v),
               "p5": np.percentile(v, 5), "p95": np.percentile(v, 95)}
    return {key: round(float(value), 6) for key, value in numbers.items()}


def _histogram(values: Sequence[float], edges: np.ndarray) -> list[int]:
    """Counts per bin; values beyond the outer edges land in the outer bins so nothing is dropped."""
    clipped = np.clip(np.asarray(values, dtype=float), edges[0], edges[-1])
    return [int(c) for c in np.histogram(clipped, bins=edges)[0]]


def _edges(edges: np.ndarray) -> list[float]:
    return [round(float(e), 4) for e in edges]


def _by_class(facts: list[_Facts]) -> dict[str, list[_Facts]]:
    return {name: [f for f in facts if f.sample.label == label] for label, name in CLASS_NAMES.items()}


def _square_fraction(facts: list[_Facts]) -> float | None:
    if not facts:
        return None
    return round(sum(_is_square(f) for f in facts) / len(facts), 6)


def _is_square(f: _Facts) -> bool:
    return abs(f.aspect - 1.0) <= SQUARE_TOLERANCE


# ---------------------------------------------------------------- report sections

def _counts(samples: list[Sample], usable: list[_Facts]) -> dict[str, Any]:
    per_class, per_split, per_group = _class_counter(), {}, {}
    for s in samples:
        name = CLASS_NAMES[s.label]
        per_class[name] += 1
        if s.split:
            per_split.setdefault(s.split, _class_counter())[name] += 1
        per_group.setdefault(s.group, _class_counter())[name] += 1
    usable_per_class = _class_counter()
    for f in usable:
        usable_per_class[CLASS_NAMES[f.sample.label]] += 1
    return {"total": len(samples), "per_class": per_class, "usable_per_class": usable_per_class,
            "per_split": dict(sorted(per_split.items())), "per_group": dict(sorted(per_group.items()))}


def _sizes(usable: list[_Facts]) -> dict[str, Any]:
    per_class, aspect_counts, size_counts = {}, {}, {}
    for name, facts in _by_class(usable).items():
        per_class[name] = {
            "n": len(facts),
            "width": _stats([f.width for f in facts]),
            "height": _stats([f.height for f in facts]),
            "megapixels": _stats([f.megapixels for f in facts]),
            "aspect_ratio": _stats([f.aspect for f in facts]),
            "square_fraction": _square_fraction(facts),
            "common_dimensions": [[f"{w}×{h}", n] for (w, h), n in
                                  Counter((f.width, f.height) for f in facts).most_common(3)],
        }
        aspect_counts[name] = _histogram([f.aspect for f in facts], ASPECT_EDGES)
        size_counts[name] = _histogram([f.megapixels for f in facts], MEGAPIXEL_EDGES)
    return {"per_class": per_class,
            "aspect_histogram": {"edges": _edges(ASPECT_EDGES), "counts": aspect_counts},
            "size_histogram": {"edges": _edges(MEGAPIXEL_EDGES), "counts": size_counts}}


def _formats(usable: list[_Facts]) -> dict[str, dict[str, int]]:
    return {name: dict(Counter(f.format for f in facts).most_common())
            for name, facts in _by_class(usable).items()}


def _jpeg_quality(usable: list[_Facts]) -> dict[str, Any]:
    per_class = {}
    for name, facts in _by_class(usable).items():
        qualities = [f.quality for f in facts if f.quality is not None]
        summary = _stats(qualities)
        per_class[name] = {"n": len(qualities),
                           **({k: summary[k] for k in ("mean", "median", "min", "max")} if summary else {}),
                           "histogram": _histogram(qualities, QUALITY_EDGES)}
    return {"edges": _edges(QUALITY_EDGES), "per_class": per_class}


# ---------------------------------------------------------------- shortcut detection

def _auc(labels: np.ndarray, values: Sequence[float]) -> float:
    """How well a number alone ranks fakes above reals or below them: 0.5 is chance, 1.0 perfect."""
    auc = roc_auc_score(labels, np.asarray(values, dtype=float))
    return float(max(auc, 1.0 - auc))


def _shares(categories: Sequence[str]) -> dict[str, float]:
    return {k: v / len(categories) for k, v in Counter(categories).items()} if categories else {}


def _categorical_score(real: Sequence[str], fake: Sequence[str]) -> float:
    """Balanced accuracy of calling each category by its majority class (class-normalised, so an
    imbalanced dataset cannot fake separation): 0.5 when both classes share one mix, 1.0 when disjoint."""
    real_share, fake_share = _shares(real), _shares(fake)
    return 0.5 * sum(max(real_share.get(c, 0.0), fake_share.get(c, 0.0)) for c in {*real_share, *fake_share})


def _pool_rare(values: list[str], min_count: int) -> list[str]:
    """Rare categories become 'other': else photos that each have a unique size would look 'separable'."""
    counts = Counter(values)
    return [v if counts[v] >= min_count else "other" for v in values]


def _mix(shares: dict[str, float], limit: int = 2) -> str:
    top = sorted(shares.items(), key=lambda kv: -kv[1])[:limit]
    return ", ".join(f"{share:.0%} {name}" for name, share in top)


def _most_telling(real_share: dict[str, float], fake_share: dict[str, float]) -> tuple[str, str]:
    """The category whose share differs most between the classes, and the class it points to."""
    def telling(c: str) -> tuple[float, bool, str]:  # ties go to a category pointing at fakes, then by name
        gap = fake_share.get(c, 0.0) - real_share.get(c, 0.0)
        return abs(gap), gap > 0, c

    best = max(sorted({*real_share, *fake_share} - {"other"}), key=telling)
    return best, ("fake" if fake_share.get(best, 0.0) > real_share.get(best, 0.0) else "real")


def _warning(feature: str, score: float, metric: str, message: str) -> dict[str, Any]:
    return {"feature": feature, "score": round(score, 3), "metric": metric, "message": message}


def _format_shortcut(real: list[_Facts], fake: list[_Facts]) -> tuple[float, str]:
    real_share, fake_share = _shares([f.format for f in real]), _shares([f.format for f in fake])
    score = _categorical_score([f.format for f in real], [f.format for f in fake])
    if len({*real_share, *fake_share}) < 2:
        return score, ""
    fmt, side = _most_telling(real_share, fake_share)
    return score, (f"file format alone tells the classes apart: fakes are {_mix(fake_share)}, reals are "
                   f"{_mix(real_share)} — a detector may learn '{fmt} means {side}' instead of looking at "
                   "the picture; convert both classes to the same format")


def _size_shortcut(real: list[_Facts], fake: list[_Facts], labels: np.ndarray) -> tuple[float, str]:
    auc = _auc(labels, [f.megapixels for f in real + fake])
    dims = [f"{f.width}×{f.height}" for f in real + fake]
    pooled = _pool_rare(dims, max(3, math.ceil(0.01 * len(dims))))
    real_dims, fake_dims = pooled[:len(real)], pooled[len(real):]
    categorical = _categorical_score(real_dims, fake_dims)
    advice = " — a detector may learn the image size instead of the content; resize or crop both classes alike"
    if categorical >= auc and {*real_dims, *fake_dims} - {"other"}:  # "N% are 512×512" beats a median
        real_share, fake_share = _shares(real_dims), _shares(fake_dims)
        dim, side = _most_telling(real_share, fake_share)
        this, that = (fake_share, real_share) if side == "fake" else (real_share, fake_share)
        other = "real" if side == "fake" else "fake"
        return categorical, (f"image size alone tells the classes apart: {this.get(dim, 0):.0%} of {side}s are "
                             f"{dim} pixels vs {that.get(dim, 0):.0%} of {other}s{advice}")
    med_real = float(np.median([f.megapixels for f in real]))
    med_fake = float(np.median([f.megapixels for f in fake]))
    return auc, (f"image size alone tells the classes apart: fakes have a median of {med_fake:.3g} megapixels, "
                 f"reals {med_real:.3g}{advice}")


def _aspect_shortcut(real: list[_Facts], fake: list[_Facts], labels: np.ndarray) -> tuple[float, str]:
    aspects = [f.aspect for f in real + fake]
    # Distance from square as well as the raw ratio: square fakes among landscape AND portrait reals
    # do not separate on the raw ratio, yet "square means fake" is just as easy to learn.
    score = max(_auc(labels, aspects), _auc(labels, np.abs(np.log(aspects))))
    sq_real, sq_fake = _square_fraction(real), _square_fraction(fake)
    advice = " — a detector may learn the picture's shape instead of its content; crop both classes alike"
    if abs(sq_fake - sq_real) >= 0.5:
        side, this, that, other = ("fake", sq_fake, sq_real, "real") if sq_fake > sq_real else \
            ("real", sq_real, sq_fake, "fake")
        return score, f"{side}s are mostly square ({this:.0%} vs {that:.0%} of {other}s){advice}"
    med_real, med_fake = float(np.median([f.aspect for f in real])), float(np.median([f.aspect for f in fake]))
    return score, (f"aspect ratio alone tells the classes apart: median width/height is {med_fake:.2f} for fakes, "
                   f"{med_real:.2f} for reals{advice}")


def _quality_shortcut(real: list[_Facts], fake: list[_Facts]) -> tuple[float, str] | None:
    q_real = [f.quality for f in real if f.quality is not None]
    q_fake = [f.quality for f in fake if f.quality is not None]
    if min(len(q_real), len(q_fake)) < MIN_SHORTCUT_SAMPLES:
        return None  # not both classes have JPEGs: the format check covers that
    score = _auc(np.array([REAL] * len(q_real) + [FAKE] * len(q_fake)), q_real + q_fake)
    return score, (f"JPEG quality alone tells the classes apart: fake JPEGs were saved at a median quality of "
                   f"{np.median(q_fake):.0f}, real ones at {np.median(q_real):.0f} — a detector may learn "
                   "compression strength instead of generation traces; re-save both classes at one quality")


def _file_size_score(real: list[_Facts], fake: list[_Facts], labels: np.ndarray) -> tuple[float, str]:
    score = _auc(labels, [f.file_bytes for f in real + fake])
    med_real = float(np.median([f.file_bytes for f in real]))
    med_fake = float(np.median([f.file_bytes for f in fake]))
    return score, (f"file size alone tells the classes apart: fakes have a median of {_human_bytes(med_fake)}, "
                   f"reals {_human_bytes(med_real)}")


def _file_size_note(score: float, message: str) -> str:
    """Bytes that differ while format, pixel size and JPEG quality match are no processing shortcut: a
    pixel-based detector never sees the byte count, only the content that compresses differently."""
    return (f"{message} (score {score:.2f}) although formats, pixel sizes and JPEG qualities do not — the classes "
            "compress differently, so they differ in fine detail or noise: that may be the generation trace "
            "itself, or a content bias (e.g. smoother scenes in one class) worth checking")


def _shortcuts(usable: list[_Facts]) -> tuple[list[dict[str, Any]], dict[str, float], list[str]]:
    """Shortcut warnings, every feature's score, and notes that belong with the plain warnings."""
    groups = _by_class(usable)
    real, fake = groups[CLASS_NAMES[REAL]], groups[CLASS_NAMES[FAKE]]
    if min(len(real), len(fake)) < MIN_SHORTCUT_SAMPLES:
        return [], {}, []
    labels = np.array([REAL] * len(real) + [FAKE] * len(fake))
    results = {"format": (*_format_shortcut(real, fake), "balanced_accuracy"),
               "size": (*_size_shortcut(real, fake, labels), "auc_or_balanced_accuracy"),
               "aspect_ratio": (*_aspect_shortcut(real, fake, labels), "auc")}
    quality = _quality_shortcut(real, fake)
    if quality:
        results["jpeg_quality"] = (*quality, "auc")
    processing_differs = any(score >= SHORTCUT_THRESHOLD for name, (score, _, _) in results.items()
                             if name in ("format", "size", "jpeg_quality"))
    size_score, size_message = _file_size_score(real, fake, labels)
    notes = []
    if processing_differs:  # the byte count then echoes a visible processing difference: a shortcut too
        results["file_size"] = (size_score, size_message, "auc")
    elif size_score >= SHORTCUT_THRESHOLD:
        notes.append(_file_size_note(size_score, size_message))
    warnings = [_warning(name, score, metric, message) for name, (score, message, metric) in results.items()
                if score >= SHORTCUT_THRESHOLD]
    scores = {name: round(score, 3) for name, (score, _, _) in results.items()}
    scores["file_size"] = round(size_score, 3)
    return warnings, scores, notes


# ---------------------------------------------------------------- other warnings

def _plain_warnings(counts: dict[str, Any], corrupt_count: int) -> list[str]:
    warnings = _balance_warnings(counts["usable_per_class"], "the dataset")
    for split, per_class in counts["per_split"].items():
        warnings += _balance_warnings(per_class, f"the {split} split")
    if corrupt_count:
        warnings.append(f"{corrupt_count} file{'s' if corrupt_count != 1 else ''} cannot be decoded and will be "
                        "skipped by training (see the corrupt list)")
    return warnings


def _balance_warnings(per_class: dict[str, int], where: str) -> list[str]:
    warnings = [f"{where} has only {n} {name} image{'s' if n != 1 else ''}: too few to train or measure reliably "
                f"(at least {MIN_CLASS_IMAGES} needed)" for name, n in per_class.items() if n < MIN_CLASS_IMAGES]
    (big, n_big), (small, n_small) = sorted(per_class.items(), key=lambda kv: -kv[1])
    if n_small and n_big / n_small > IMBALANCE_RATIO:
        warnings.append(f"{where} is imbalanced: {n_big} {big} vs {n_small} {small} images "
                        f"({n_big / n_small:.1f}:1) — plain accuracy will flatter a detector that favours "
                        f"'{big}'; use balanced accuracy or a balanced subset")
    return warnings


# ---------------------------------------------------------------- public API

def inspect_dataset(root: Path, workers: int = 4) -> dict:
    """Read every image of the dataset at `root` and describe it; raises LayoutError when no layout fits."""
    dataset = discover_dataset(Path(root))
    with ThreadPoolExecutor(max(1, workers)) as pool:  # Pillow decodes with the GIL released
        facts = list(pool.map(_inspect_file, dataset.samples))
    usable = [f for f in facts if f.problem is None]
    corrupt = [{"path": str(f.sample.path), "reason": f.problem} for f in facts if f.problem is not None]
    counts = _counts(dataset.samples, usable)
    shortcuts, scores, notes = _shortcuts(usable)
    return {
        "root": str(dataset.root),
        "layout": {"splits": sorted(dataset.splits), "groups": dataset.groups},
        "counts": counts,
        "corrupt": corrupt,
        "corrupt_count": len(corrupt),
        "sizes": _sizes(usable),
        "formats": _formats(usable),
        "jpeg_quality": _jpeg_quality(usable),
        "shortcut_threshold": SHORTCUT_THRESHOLD,
        "shortcut_scores": scores,  # every feature's score, warned or not, so the verdict can be checked
        "shortcuts": shortcuts,
        "warnings": _plain_warnings(counts, len(corrupt)) + notes,
    }


def format_report(report: dict) -> str:
    """The report as readable text for a terminal."""
    sections = [_header_text(report), _counts_text(report["counts"]), _corrupt_text(report),
                _sizes_text(report["sizes"]), _formats_text(report), _warnings_text(report["warnings"]),
                _shortcuts_text(report)]
    return "\n\n".join(s for s in sections if s) + "\n"


# ---------------------------------------------------------------- text rendering

def _header_text(report: dict) -> str:
    layout = report["layout"]
    lines = [f"Dataset: {report['root']}"]
    lines.append(f"Splits: {', '.join(layout['splits']) if layout['splits'] else 'none (one pool of images)'}")
    lines.append(f"Groups: {', '.join(layout['groups'])}")
    return "\n".join(lines)


def _table(rows: list[tuple[str, dict[str, int]]]) -> list[str]:
    width = max(len(label) for label, _ in rows) + 2
    lines = [f"  {'':<{width}}{'real':>8}{'fake':>8}{'total':>8}"]
    for label, per_class in rows:
        real, fake = per_class.get("real", 0), per_class.get("fake", 0)
        lines.append(f"  {label:<{width}}{real:>8}{fake:>8}{real + fake:>8}")
    return lines


def _counts_text(counts: dict) -> str:
    rows = [("all", counts["per_class"]), ("usable", counts["usable_per_class"])]
    rows += [(f"split {name}", per_class) for name, per_class in counts["per_split"].items()]
    if len(counts["per_group"]) > 1:
        rows += [(f"group {name}", per_class) for name, per_class in counts["per_group"].items()]
    return "\n".join([f"Images: {counts['total']}"] + _table(rows))


def _corrupt_text(report: dict) -> str:
    if not report["corrupt_count"]:
        return "Corrupt files: none (every file decoded fully)"
    lines = [f"Corrupt files: {report['corrupt_count']}"]
    for item in report["corrupt"][:MAX_LISTED_CORRUPT]:
        lines.append(f"  {_relative(item['path'], report['root'])}: {item['reason']}")
    if report["corrupt_count"] > MAX_LISTED_CORRUPT:
        lines.append(f"  ... and {report['corrupt_count'] - MAX_LISTED_CORRUPT} more")
    return "\n".join(lines)


def _relative(path: str, root: str) -> str:
    try:
        return Path(path).relative_to(root).as_posix()
    except ValueError:
        return path


def _spread(stats: dict | None, digits: int) -> str:
    if stats is None:
        return "-"
    return f"{stats['median']:.{digits}f} ({stats['p5']:.{digits}f}–{stats['p95']:.{digits}f})"


def _sizes_text(sizes: dict) -> str:
    lines = ["Sizes: median (5th–95th percentile)"]
    rows = [("width", "width", 0), ("height", "height", 0), ("megapixels", "megapixels", 3),
            ("aspect w/h", "aspect_ratio", 2)]
    per_class = sizes["per_class"]
    lines.append(f"  {'':<12}{'real':<26}fake")
    for label, key, digits in rows:
        cells = [_spread(per_class[name][key], digits) for name in ("real", "fake")]
        lines.append(f"  {label:<12}{cells[0]:<26}{cells[1]}")
    squares = [per_class[name]["square_fraction"] for name in ("real", "fake")]
    cells = ["-" if s is None else f"{s:.0%}" for s in squares]
    lines.append(f"  {'square':<12}{cells[0]:<26}{cells[1]}")
    for name in ("real", "fake"):
        common = ", ".join(f"{dim} ({n})" for dim, n in per_class[name]["common_dimensions"])
        lines.append(f"  most common {name} sizes: {common or '-'}")
    return "\n".join(lines)


def _formats_text(report: dict) -> str:
    lines = ["Formats and estimated JPEG quality"]
    for name in ("real", "fake"):
        formats = report["formats"][name]
        total = sum(formats.values())
        mix = ", ".join(f"{fmt} {n} ({n / total:.0%})" for fmt, n in formats.items()) if total else "-"
        lines.append(f"  {name}: {mix}")
    for name in ("real", "fake"):
        q = report["jpeg_quality"]["per_class"][name]
        if q["n"]:
            lines.append(f"  {name} JPEG quality: median {q['median']:.0f}, mean {q['mean']:.1f}, "
                         f"range {q['min']:.0f}–{q['max']:.0f} ({q['n']} JPEGs)")
        else:
            lines.append(f"  {name} JPEG quality: no JPEGs")
    return "\n".join(lines)


def _warnings_text(warnings: list[str]) -> str:
    return "\n".join(["Warnings:"] + [f"  - {w}" for w in warnings]) if warnings else ""


def _shortcuts_text(report: dict) -> str:
    shortcuts = report["shortcuts"]
    if not report["shortcut_scores"]:
        return (f"Shortcut check skipped: each class needs at least {MIN_SHORTCUT_SAMPLES} readable images.")
    if not shortcuts:
        return ("No shortcut found: no size, format, aspect-ratio or JPEG-quality difference tells the classes "
                "apart on its own.")
    count = "1 trivial feature alone tells" if len(shortcuts) == 1 else f"{len(shortcuts)} trivial features alone tell"
    lines = [f"!! SHORTCUT WARNING: {count} real from fake — a detector could learn these instead of the content"]
    for item in shortcuts:
        lines.append(f"!! [{item['feature']}, score {item['score']:.2f}] {item['message']}")
    return "\n".join(lines)


def _human_bytes(n: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"
