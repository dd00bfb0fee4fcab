"""The modern set as a training source: normalised so that no shortcut survives, split by source, rebuilt from the
manifest byte for byte. Built here from small pictures that carry the very shortcuts the real set has."""
from __future__ import annotations

import csv
import hashlib
import io
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.commands import run_in_process
from training import modern
from training.inspect_data import inspect_dataset

REAL_SOURCES = {"EliSchwartz/imagenet-sample-images": "imagenet-samples", "kurlyto/ai-or-not": "kurlyto-aiornot",
                "clovaai/stargan-v2": "stargan2-afhq"}
FAKE_SOURCES = {"vladmandic/sdnext": ("sdnext-reference", "sd-2.1"), "jcraigk/blog": ("jcraigk-blog", "midjourney"),
                "dcsan/imagen": ("dcsan-imagen", "dall-e-2")}
COLUMNS = ["file", "label", "generator", "source_repo", "source_path", "source_commit", "width", "height", "format",
           "sha256", "label_evidence", "license_if_stated"]


def _picture(seed: int, size: tuple[int, int]) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


def _real_bytes(seed: int) -> bytes:
    """Like the set's reals: a 3:2 camera JPEG at quality 95, 4:4:4, with EXIF Make/Model."""
    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = "Canon", "EOS 5D"
    buffer = io.BytesIO()
    _picture(seed, (420, 280)).save(buffer, "JPEG", quality=95, subsampling=0, exif=exif)
    return buffer.getvalue()


def _fake_bytes(seed: int) -> bytes:
    """Like the set's fakes: a square PNG with the prompt in a text chunk."""
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("parameters", "a photo of a cat, Steps: 20")
    buffer = io.BytesIO()
    _picture(seed, (300, 300)).save(buffer, "PNG", pnginfo=info)
    return buffer.getvalue()


def make_raw_set(root: Path, per_source: int = 8) -> Path:
    """A modern-set folder (MANIFEST.csv + files) with three sources per class."""
    rows = []
    for index, (repo, short) in enumerate(REAL_SOURCES.items()):
        for i in range(per_source):
            rows.append(_write(root, f"real/{short}/{short}__img_{i}.jpg", _real_bytes(index * 100 + i), "real",
                               "none", repo))
    for index, (repo, (short, generator)) in enumerate(FAKE_SOURCES.items()):
        for i in range(per_source):
            rows.append(_write(root, f"fake/{generator}/{short}__out_{i}.png", _fake_bytes(1000 + index * 100 + i),
                               "fake", generator, repo))
    with open(root / "MANIFEST.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        writer.writerows(rows)
    return root


def _write(root: Path, relative: str, data: bytes, label: str, generator: str, repo: str) -> list[str]:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return [relative, label, generator, repo, relative.split("__", 1)[1], "0" * 40, "", "", "",
            hashlib.sha256(data).hexdigest(), "test", ""]


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> tuple[Path, Path]:
    raw = make_raw_set(tmp_path_factory.mktemp("raw"))
    out = tmp_path_factory.mktemp("prepared") / "set"
    modern.prepare(raw, out, train_crops=2, seed=0, progress=lambda message: None)
    return raw, out


def test_the_raw_set_has_shortcuts_and_the_prepared_set_has_none(prepared):
    raw, out = prepared
    raw_warnings = {w["feature"] for w in inspect_dataset(raw)["shortcuts"]}
    assert {"format", "aspect_ratio"} <= raw_warnings  # the fixture carries the shortcuts it should
    assert inspect_dataset(out)["shortcuts"] == []


def test_every_prepared_file_is_a_bare_256_jpeg(prepared):
    _, out = prepared
    files = sorted(out.rglob("*.jpg"))
    assert len(files) == 2 * 8 * 2 + 2 * 8 + 2 * 8  # train sources give two crops a picture
    for path in files:
        with Image.open(path) as image:
            assert (image.format, image.size, image.mode) == ("JPEG", (modern.CROP, modern.CROP), "RGB")
            assert not image.getexif() and "icc_profile" not in image.info and "exif" not in image.info
            assert [layer[1:3] for layer in image.layer] == [(2, 2), (1, 1), (1, 1)]  # 4:2:0 for both


def test_each_source_lands_in_one_split_only(prepared):
    _, out = prepared
    with open(out / "modern-prepared.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    splits: dict[str, set[str]] = {}
    for row in rows:
        splits.setdefault(row["source_repo"], set()).add(row["split"])
        assert (out / row["file"]).is_file() and Path(row["file"]).parts[0] == row["split"]
    assert all(len(s) == 1 for s in splits.values()), splits
    assert splits["kurlyto/ai-or-not"] == {"test"} and splits["jcraigk/blog"] == {"test"}
    assert splits["EliSchwartz/imagenet-sample-images"] == {"train"} and splits["clovaai/stargan-v2"] == {"val"}
    per_split = {split: sum(r["split"] == split for r in rows) for split in ("train", "val", "test")}
    assert per_split == {"train": 2 * 8 * 2, "val": 2 * 8, "test": 2 * 8}  # training pictures give two crops


def test_fake_groups_are_generator_families_and_real_groups_are_sources(prepared):
    _, out = prepared
    assert sorted(p.name for p in (out / "train" / "fake").iterdir()) == ["sd-2.1"]
    assert sorted(p.name for p in (out / "test" / "fake").iterdir()) == ["midjourney"]
    assert sorted(p.name for p in (out / "train" / "real").iterdir()) == ["imagenet-samples"]
    assert modern.generator_family("flux-1-dev") == "flux" and modern.generator_family("sd-1.5-finetune") == "sd-1.x"


def test_build_starter_takes_the_modern_set_and_never_writes_into_it(prepared, tmp_path, capsys):
    raw, _ = prepared
    before = {p: p.read_bytes() for p in raw.rglob("*") if p.is_file()}
    code, _out, err = run_in_process(capsys, "data", "build-starter", raw / "inside", "--modern", raw,
                                     "--without-offline")
    assert code == 2 and "inside" in err and not (raw / "inside").exists()
    code, out, err = run_in_process(capsys, "data", "build-starter", tmp_path / "set", "--modern", raw,
                                    "--without-offline")
    assert code == 0, err
    assert "modern test/real" in out and "Modern set: " in out
    assert {p: p.read_bytes() for p in raw.rglob("*") if p.is_file()} == before


def test_a_missing_file_is_one_line_naming_the_rebuild(prepared, tmp_path, capsys):
    raw, _ = prepared
    copy = tmp_path / "copy"
    for path in raw.rglob("*"):
        if path.is_file() and "img_3" not in path.name:
            (copy / path.relative_to(raw)).parent.mkdir(parents=True, exist_ok=True)
            (copy / path.relative_to(raw)).write_bytes(path.read_bytes())
    code, _out, err = run_in_process(capsys, "data", "build-starter", tmp_path / "set", "--modern", copy,
                                     "--without-offline")
    assert code == 2 and "missing" in err and "rebuild-modern" in err and len(err.strip().splitlines()) == 1


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True,
                          env={"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
                               "GIT_COMMITTER_EMAIL": "t@t", "HOME": str(repo)}).stdout.strip()


def test_rebuild_reads_each_file_at_its_commit_and_checks_its_sha256(tmp_path, capsys):
    repo = tmp_path / "clones" / "someone" / "gallery"
    repo.mkdir(parents=True)
    _git(repo, "init", "-q")
    good, changed = _fake_bytes(1), _fake_bytes(2)
    (repo / "out").mkdir()
    (repo / "out" / "a.png").write_bytes(good)
    (repo / "out" / "b.png").write_bytes(good)
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "v1")
    commit = _git(repo, "rev-parse", "HEAD")
    (repo / "out" / "a.png").write_bytes(changed)  # the working tree moved on: the commit's bytes still count
    manifest = tmp_path / "MANIFEST.csv"
    with open(manifest, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        for name, sha in (("a", hashlib.sha256(good).hexdigest()), ("b", hashlib.sha256(changed).hexdigest())):
            writer.writerow([f"fake/flux-1-dev/gallery__out__{name}.png", "fake", "flux-1-dev", "someone/gallery",
                             f"out/{name}.png", commit, "", "", "", sha, "test", ""])
    done = modern.rebuild(tmp_path / "clones", tmp_path / "set", manifest, progress=lambda message: None)
    assert done["written"] == 1 and (tmp_path / "set" / "fake/flux-1-dev/gallery__out__a.png").read_bytes() == good
    assert done["problems"] == ["fake/flux-1-dev/gallery__out__b.png: SHA-256 differs from the manifest's"]
    assert not (tmp_path / "set" / "fake/flux-1-dev/gallery__out__b.png").exists()


def test_the_project_keeps_the_manifest_and_no_image_of_the_set():
    items = modern.read_manifest(modern.PROJECT_MANIFEST)
    assert len(items) > 1000 and {i.label for i in items} == {"real", "fake"}
    root = modern.PROJECT_MANIFEST.parent
    assert sorted(p.name for p in root.iterdir()) == ["MANIFEST.csv", "README.md"]
    assert {modern.split_of(i.source_repo) for i in items} == {"train", "val", "test"}
