"""Evaluation like a forensics lab: the seeds' numbers and plots, per-group results, galleries of the four
outcomes, robustness sweeps (Wang et al. Fig. 5), and per-image predictions so anyone can recompute them.

Predictions come from the same ScanEngine that scans casework, so a number here is what a scan gives.
"""
from __future__ import annotations

import csv
import json
import random
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

from PIL import Image, ImageDraw, ImageFilter

from models.engine import CancelToken, ScanEngine
from models.imaging import decode, read_file
from models.library import LoadedModel
from training.augment import jpeg
from training.data import CLASS_NAMES, Dataset, Sample, check_integrity, discover_dataset
from training.metrics import compute_metrics, confusion_outcomes
from training import plots

SWEEPS: dict[str, list[float]] = {
    "jpeg_quality": [100, 90, 75, 60, 45, 30],
    "blur_sigma": [0, 1, 2, 3],
    "downscale": [1.0, 0.75, 0.5],
}
GROUP_KEYS = ("n", "n_real", "n_fake", "accuracy", "balanced_accuracy", "average_precision", "roc_auc", "f1_fake")
Progress = Callable[[str, int, int], None]


def perturb(image: Image.Image, sweep: str, value: float) -> Image.Image:
    if sweep == "jpeg_quality":
        return jpeg(image, int(value)) if value < 100 else jpeg(image, 100)
    if sweep == "blur_sigma":
        return image.filter(ImageFilter.GaussianBlur(radius=float(value))) if value > 0 else image
    if sweep == "downscale":
        if value >= 1:
            return image
        size = (max(1, round(image.width * value)), max(1, round(image.height * value)))
        return image.resize(size, Image.BICUBIC)
    raise ValueError(f"unknown sweep {sweep!r}")


def choose_samples(dataset: Dataset, split: str) -> tuple[list[Sample], str]:
    if split == "auto":
        return (dataset.split("test"), "test") if "test" in dataset.splits else (dataset.samples, "all")
    if split == "all":
        return dataset.samples, "all"
    chosen = dataset.split(split)
    if not chosen:
        raise ValueError(f"{dataset.root} has no {split!r} split (found: {', '.join(sorted(dataset.splits)) or 'none'})")
    return chosen, split


def evaluate(model: LoadedModel, data: Path | Dataset, out_dir: Path, *, split: str = "auto",
             device: str | None = None, batch_size: int = 32, sweeps: bool = True,
             sweep_images: int | None = 400, gallery_size: int = 8, threshold: float | None = None,
             progress: Progress | None = None, cancel: CancelToken | None = None) -> dict:
    progress = progress or (lambda stage, done, total: None)
    cancel = cancel or CancelToken()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    dataset = check_integrity(data if isinstance(data, Dataset) else discover_dataset(Path(data)))
    samples, split_used = choose_samples(dataset, split)
    engine = ScanEngine(model, device=device, batch_size=batch_size)
    cut = model.card.threshold if threshold is None else threshold

    p_fake: dict[Path, float] = {}
    errors = list(dataset.excluded)
    for result in engine.scan([s.path for s in samples], cancel=cancel):
        if result.error:
            errors.append((result.path, result.error))
        else:
            p_fake[Path(result.path)] = result.p_fake
        progress("predict", len(p_fake) + len(errors) - len(dataset.excluded), len(samples))
    scored = [s for s in samples if s.path in p_fake]
    y = [s.label for s in scored]
    p = [p_fake[s.path] for s in scored]

    metrics = compute_metrics(y, p, threshold=cut)
    report = {
        "model": {"id": model.card.id, "name": model.card.name, "architecture": model.card.architecture,
                  "weights_sha256": model.card.weights_sha256, "threshold": cut},
        "data": {"root": str(dataset.root), "split": split_used, **dataset.summary(scored)},
        "excluded": [{"path": path, "reason": reason} for path, reason in errors],
        "metrics": metrics,
        "per_group": per_group(scored, p, cut),
    }
    _write_predictions(out_dir / "predictions.csv", scored, p, cut, dataset.root)
    report["files"] = _plots(out_dir, metrics, model.card.learning_curve)
    report["files"]["galleries"] = _galleries(out_dir, scored, p, cut, gallery_size)
    if sweeps and not cancel.cancelled:
        subset = _stratified(scored, sweep_images, seed=0)
        report["robustness"] = robustness(engine, subset, cut, out_dir, progress, cancel)
        report["robustness_images"] = len(subset)
        if report["robustness"]:
            report["files"]["robustness"] = str(plots.save_robustness(report["robustness"], out_dir / "robustness.png"))
    (out_dir / "report.json").write_text(json.dumps(report, indent=2, default=str), encoding="utf-8")
    return report


def per_group(samples: list[Sample], p: list[float], threshold: float) -> dict[str, dict]:
    """Per category or generator. A group holding one class only (a generator's fakes) is measured against
    every image of the other class, so its AP answers "can this generator be told from real photos"."""
    result = {}
    for group in sorted({s.group for s in samples}):
        members = [i for i, s in enumerate(samples) if s.group == group]
        labels = {samples[i].label for i in members}
        if len(labels) == 1:
            other = 1 - labels.pop()
            members += [i for i, s in enumerate(samples) if s.label == other and s.group != group]
        full = compute_metrics([samples[i].label for i in members], [p[i] for i in members], threshold=threshold)
        result[group] = {k: full.get(k) for k in GROUP_KEYS}
    return result


def robustness(engine: ScanEngine, samples: list[Sample], threshold: float, out_dir: Path,
               progress: Progress, cancel: CancelToken) -> dict[str, list[dict]]:
    """Each perturbation applied to the decoded image before the model's own policy, as in Wang et al."""
    scores: dict[tuple[str, float], list[float]] = {(s, v): [] for s, values in SWEEPS.items() for v in values}
    spec = engine.card.input
    chunk = max(8, engine.batch_size)
    with ThreadPoolExecutor(engine.workers) as pool:
        for start in range(0, len(samples), chunk):
            if cancel.cancelled:
                return {}
            images = list(pool.map(lambda s: decode(read_file(s.path)[0], background=tuple(spec.background)).image,
                                   samples[start:start + chunk]))
            for (sweep, value), bucket in scores.items():  # the card's policy and aggregation, as a scan
                perturbed = list(pool.map(lambda im: perturb(im, sweep, value), images))
                bucket += [p for p, _tiles in engine.score_images(perturbed)]
            progress("robustness", min(start + chunk, len(samples)), len(samples))
    y = [s.label for s in samples]
    result: dict[str, list[dict]] = {}
    with open(out_dir / "robustness_predictions.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "label", "sweep", "value", "p_fake"])
        for (sweep, value), bucket in scores.items():
            for sample, prob in zip(samples, bucket):
                writer.writerow([sample.path, CLASS_NAMES[sample.label], sweep, value, f"{prob:.6f}"])
            m = compute_metrics(y, bucket, threshold=threshold)
            result.setdefault(sweep, []).append({"value": value, "average_precision": m["average_precision"],
                                                 "accuracy": m["accuracy"], "roc_auc": m["roc_auc"]})
    return result


def _stratified(samples: list[Sample], limit: int | None, seed: int) -> list[Sample]:
    if not limit or len(samples) <= limit:
        return samples
    rng = random.Random(seed)
    chosen = []
    for label in (0, 1):
        members = [s for s in samples if s.label == label]
        rng.shuffle(members)
        chosen += members[: limit * len(members) // len(samples)]
    return sorted(chosen, key=lambda s: str(s.path))


def _write_predictions(path: Path, samples: list[Sample], p: list[float], threshold: float, root: Path) -> None:
    outcomes = confusion_outcomes([s.label for s in samples], p, threshold=threshold)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "group", "split", "label", "p_fake", "predicted", "outcome"])
        for sample, prob, outcome in zip(samples, p, outcomes):
            writer.writerow([sample.path, sample.group, sample.split or "", CLASS_NAMES[sample.label],
                             f"{prob:.6f}", CLASS_NAMES[int(prob >= threshold)], outcome])


def _plots(out_dir: Path, metrics: dict, learning_curve: list[dict]) -> dict:
    files = {
        "confusion_matrix": plots.save_confusion_matrix(metrics, out_dir / "confusion_matrix.png"),
        "roc": plots.save_roc(metrics, out_dir / "roc.png"),
        "pr": plots.save_pr(metrics, out_dir / "pr.png"),
        "histogram": plots.save_histogram(metrics, out_dir / "histogram.png"),
        "reliability": plots.save_reliability(metrics, out_dir / "reliability.png"),
    }
    if learning_curve:
        files["learning_curve"] = plots.save_learning_curve(learning_curve, out_dir / "learning_curve.png")
    return {k: str(v) for k, v in files.items()}


def _galleries(out_dir: Path, samples: list[Sample], p: list[float], threshold: float, size: int) -> dict:
    """Seed 000's TP/TN/FP/FN galleries: the most confident examples of each outcome on a contact sheet."""
    outcomes = confusion_outcomes([s.label for s in samples], p, threshold=threshold)
    files = {}
    for outcome in ("TP", "TN", "FP", "FN"):
        picked = sorted((i for i, o in enumerate(outcomes) if o == outcome),
                        key=lambda i: -abs(p[i] - threshold))[:size]
        if not picked:
            continue
        tile, label_h = 160, 18
        sheet = Image.new("RGB", (tile * len(picked), tile + label_h), "white")
        draw = ImageDraw.Draw(sheet)
        for column, index in enumerate(picked):
            image = decode(read_file(samples[index].path)[0], draft_size=tile).image
            image.thumbnail((tile, tile))
            sheet.paste(image, (column * tile + (tile - image.width) // 2, (tile - image.height) // 2))
            draw.text((column * tile + 4, tile + 2), f"{outcome} p={p[index]:.2f}", fill="black")
        path = out_dir / f"gallery_{outcome}.png"
        sheet.save(path)
        files[outcome] = str(path)
    return files
