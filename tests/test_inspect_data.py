"""Dataset inspection: counts, corrupt files, layouts, JPEG quality, and honest shortcut warnings."""
import hashlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from training.data import LayoutError
from models.jpeg_tables import estimate_jpeg_quality
from training.inspect_data import (SHORTCUT_THRESHOLD, format_report,
                                   inspect_dataset)
from tests.datasets import make_trace_dataset


def noisy(width: int, height: int, seed: int, smooth: bool = False) -> Image.Image:
    """Random content; `smooth` gives a flat-ish picture that compresses far better than noise."""
    rng = np.random.default_rng(seed)
    if smooth:
        pixels = np.full((height, width, 3), rng.integers(0, 256, 3), dtype=np.uint8)
    else:
        pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    return Image.fromarray(pixels, "RGB")


def write_images(folder: Path, count: int, size: tuple[int, int], fmt: str, quality: int = 90,
                 seed: int = 0, smooth: bool = False) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"{i:03d}.{'jpg' if fmt == 'JPEG' else fmt.lower()}"
        extra = {"quality": quality} if fmt == "JPEG" else {}
        noisy(*size, seed=seed * 1000 + i, smooth=smooth).save(path, fmt, **extra)
        paths.append(path)
    return paths


def features(report: dict) -> set[str]:
    return {item["feature"] for item in report["shortcuts"]}


def test_clean_dataset_has_no_shortcut(tmp_path):
    report = inspect_dataset(make_trace_dataset(tmp_path, per_class=20, size=32), workers=2)
    json.dumps(report, allow_nan=False)  # plain JSON, no numpy types or NaN
    assert report["counts"]["total"] == 40
    assert report["counts"]["per_class"] == {"real": 20, "fake": 20}
    assert report["corrupt"] == [] and report["corrupt_count"] == 0
    assert report["shortcuts"] == []
    scores = report["shortcut_scores"]
    assert scores["format"] == scores["size"] == scores["aspect_ratio"] == 0.5  # identical: pure chance
    assert report["formats"] == {"real": {"PNG": 20}, "fake": {"PNG": 20}}
    assert report["sizes"]["per_class"]["fake"]["square_fraction"] == 1.0
    assert not any("imbalanced" in w or "only" in w for w in report["warnings"])
    assert "No shortcut found" in format_report(report)


def test_jpeg_landscape_reals_and_png_square_fakes_are_flagged(tmp_path):
    write_images(tmp_path / "real", 12, (64, 48), "JPEG", seed=1)
    write_images(tmp_path / "fake", 12, (48, 48), "PNG", seed=2)
    report = inspect_dataset(tmp_path)
    by_feature = {item["feature"]: item for item in report["shortcuts"]}
    assert {"format", "aspect_ratio"} <= set(by_feature)
    assert by_feature["format"]["score"] == 1.0
    assert "PNG" in by_feature["format"]["message"] and "JPEG" in by_feature["format"]["message"]
    assert "'PNG means fake'" in by_feature["format"]["message"]
    assert "100% of fakes are 48×48 pixels vs 0% of reals" in by_feature["size"]["message"]
    assert "fakes are mostly square (100% vs 0% of reals)" in by_feature["aspect_ratio"]["message"]
    assert all(item["score"] >= SHORTCUT_THRESHOLD for item in report["shortcuts"])

    sizes = report["sizes"]
    assert sizes["per_class"]["real"]["aspect_ratio"]["median"] == pytest.approx(4 / 3, abs=1e-4)
    assert sizes["per_class"]["real"]["square_fraction"] == 0.0
    edges, counts = sizes["aspect_histogram"]["edges"], sizes["aspect_histogram"]["counts"]
    square_bin = next(i for i in range(len(edges) - 1) if edges[i] < 1.0 < edges[i + 1])
    assert counts["fake"][square_bin] == 12 and counts["real"][square_bin] == 0
    assert sum(counts["real"]) == 12 and len(counts["real"]) == len(edges) - 1
    assert report["formats"] == {"real": {"JPEG": 12}, "fake": {"PNG": 12}}
    assert report["jpeg_quality"]["per_class"]["real"]["median"] == 90
    assert report["jpeg_quality"]["per_class"]["fake"]["n"] == 0


@pytest.mark.parametrize("quality", [30, 50, 75, 90, 95])
def test_jpeg_quality_estimate_matches_the_saved_quality(quality):
    buffer = io.BytesIO()
    noisy(40, 32, seed=quality).save(buffer, "JPEG", quality=quality)
    with Image.open(io.BytesIO(buffer.getvalue())) as img:
        estimate = estimate_jpeg_quality(img.quantization)
    assert abs(estimate - quality) <= 2
    assert estimate == quality  # standard libjpeg tables: the estimate is exact


def test_jpeg_quality_estimate_edge_cases():
    assert estimate_jpeg_quality({}) is None
    assert estimate_jpeg_quality({0: [1] * 10}) is None  # not a 64-entry table
    assert estimate_jpeg_quality({0: [1] * 64}) == 100  # all ones is what quality 100 writes


def test_jpeg_quality_difference_is_a_shortcut(tmp_path):
    write_images(tmp_path / "real", 10, (48, 48), "JPEG", quality=95, seed=1)
    write_images(tmp_path / "fake", 10, (48, 48), "JPEG", quality=60, seed=2)
    report = inspect_dataset(tmp_path)
    by_feature = {item["feature"]: item for item in report["shortcuts"]}
    assert "jpeg_quality" in by_feature
    assert "60" in by_feature["jpeg_quality"]["message"] and "95" in by_feature["jpeg_quality"]["message"]
    assert "format" not in by_feature and "size" not in by_feature and "aspect_ratio" not in by_feature
    quality = report["jpeg_quality"]["per_class"]
    assert (quality["real"]["median"], quality["fake"]["median"]) == (95, 60)
    assert quality["real"]["n"] == quality["fake"]["n"] == 10


def test_same_quality_jpegs_raise_no_quality_warning(tmp_path):
    write_images(tmp_path / "real", 10, (48, 48), "JPEG", quality=85, seed=1)
    write_images(tmp_path / "fake", 10, (48, 48), "JPEG", quality=85, seed=2)
    report = inspect_dataset(tmp_path)
    assert report["shortcut_scores"]["jpeg_quality"] == 0.5
    assert report["shortcuts"] == []


def test_file_size_difference_alone_is_a_note_not_a_shortcut(tmp_path):
    # same format and pixel size; only the content's compressibility differs, which a pixel model never sees
    write_images(tmp_path / "real", 10, (48, 48), "PNG", seed=1)
    write_images(tmp_path / "fake", 10, (48, 48), "PNG", seed=2, smooth=True)
    report = inspect_dataset(tmp_path)
    assert report["shortcuts"] == []
    assert report["shortcut_scores"]["file_size"] == 1.0
    assert any(w.startswith("file size alone") and "compress differently" in w for w in report["warnings"])


def test_corrupt_files_are_listed_with_reasons(tmp_path):
    make_trace_dataset(tmp_path, per_class=12, size=32)
    buffer = io.BytesIO()
    noisy(64, 64, seed=3).save(buffer, "JPEG", quality=90)
    (tmp_path / "fake" / "truncated.jpg").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    (tmp_path / "fake" / "empty.png").write_bytes(b"")
    report = inspect_dataset(tmp_path)
    reasons = {Path(item["path"]).name: item["reason"] for item in report["corrupt"]}
    assert set(reasons) == {"truncated.jpg", "empty.png"} and report["corrupt_count"] == 2
    assert "truncated" in reasons["truncated.jpg"]
    assert "empty" in reasons["empty.png"]
    assert report["counts"]["per_class"] == {"real": 12, "fake": 14}
    assert report["counts"]["usable_per_class"] == {"real": 12, "fake": 12}
    assert report["sizes"]["per_class"]["fake"]["n"] == 12  # statistics only from files that decode
    assert any("2 files cannot be decoded" in w for w in report["warnings"])
    text = format_report(report)
    assert "Corrupt files: 2" in text and "fake/truncated.jpg" in text and "fake/empty.png" in text


def test_files_are_only_read(tmp_path):
    make_trace_dataset(tmp_path, per_class=6, size=16)
    files = sorted(tmp_path.rglob("*.png"))
    before = [(p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest()) for p in files]
    for p in files:
        p.chmod(0o444)
    inspect_dataset(tmp_path)
    assert [(p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest()) for p in files] == before
    assert sorted(tmp_path.rglob("*")) == sorted({*files, tmp_path / "real", tmp_path / "fake"})


def test_split_layout_is_reported_with_small_split_warning(tmp_path):
    write_images(tmp_path / "train" / "REAL", 12, (32, 32), "PNG", seed=1)
    write_images(tmp_path / "train" / "FAKE", 12, (32, 32), "PNG", seed=2)
    write_images(tmp_path / "test" / "real", 3, (32, 32), "PNG", seed=3)
    write_images(tmp_path / "test" / "fake", 4, (32, 32), "PNG", seed=4)
    report = inspect_dataset(tmp_path)
    assert report["layout"]["splits"] == ["test", "train"]
    assert report["counts"]["per_split"] == {"test": {"real": 3, "fake": 4}, "train": {"real": 12, "fake": 12}}
    assert any(w.startswith("the test split has only 3 real images") for w in report["warnings"])
    assert not any(w.startswith("the train split") for w in report["warnings"])
    text = format_report(report)
    assert "split test" in text and "split train" in text


def test_forensynths_layout_reports_groups(tmp_path):
    for seed, category in enumerate(("car", "cat")):
        write_images(tmp_path / category / "0_real", 6, (32, 32), "PNG", seed=2 * seed)
        write_images(tmp_path / category / "1_fake", 5, (32, 32), "PNG", seed=2 * seed + 1)
    report = inspect_dataset(tmp_path)
    assert report["layout"] == {"splits": [], "groups": ["car", "cat"]}
    assert report["counts"]["per_group"] == {"car": {"real": 6, "fake": 5}, "cat": {"real": 6, "fake": 5}}
    assert "group car" in format_report(report)


def test_folder_without_classes_raises_layout_error_naming_it(tmp_path):
    write_images(tmp_path / "holiday", 3, (16, 16), "PNG")
    write_images(tmp_path / "work", 3, (16, 16), "PNG")
    with pytest.raises(LayoutError) as excinfo:
        inspect_dataset(tmp_path)
    assert str(tmp_path) in str(excinfo.value)


def test_imbalance_is_warned_and_report_shows_counts_and_shortcuts(tmp_path):
    write_images(tmp_path / "real", 30, (40, 30), "JPEG", seed=1)
    write_images(tmp_path / "fake", 12, (32, 32), "PNG", seed=2)
    report = inspect_dataset(tmp_path, workers=1)
    assert any("imbalanced: 30 real vs 12 fake" in w for w in report["warnings"])
    text = format_report(report)
    assert "Images: 42" in text
    counts_row = next(line for line in text.splitlines() if line.strip().startswith("all"))
    assert counts_row.split()[1:] == ["30", "12", "42"]
    assert "SHORTCUT WARNING" in text
    for item in report["shortcuts"]:
        assert item["message"] in text
    assert text.rstrip().splitlines()[-1].startswith("!!")  # the shortcuts close the report
    assert "imbalanced" in text
