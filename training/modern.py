"""The modern set: real photographs and modern generators' images copied byte for byte from public repositories
(`../shared/datasets/modern/`, described by its MANIFEST.csv), prepared for training so that nothing but the
pixels' own traces can tell the classes apart.

Why a preparation step: in the copied files the classes differ in shape (67 % of fakes are square, 26 % of reals),
metadata (camera Make/Model almost only on reals, prompts in the fakes' EXIF), chroma subsampling (4:4:4 on 21 % of
real JPEGs, 4 % of fake ones) and size. A detector trained on them as they are learns those. So every image, real
or fake, goes through the same `normalise`:
  decode the pixels only (EXIF orientation applied, every metadata block dropped)
  → with probability 1/2, downscale by a random factor in [0.5, 1) (the sources' resolutions differ)
  → square crops of CROP pixels at native resolution, taken before any resize (never a whole image squashed)
  → JPEG at a random quality in [70, 95] with 4:2:0 chroma, identical for both classes.
The prepared set is all CROP×CROP JPEGs with one quality distribution: `data inspect` finds no shortcut in it.

Splits are by source repository, never by file: several sources share a scene or a prompt across files (SD.Next
preview prompts, Laboratoriet categories), so a file-level split would leak near-duplicates into the test.

The project keeps the manifest (resources/datasets/modern/MANIFEST.csv), never the images: `rebuild` recreates
the files byte for byte from local clones of the public repositories, checking every file's SHA-256.
"""
from __future__ import annotations

import csv
import hashlib
import io
import random
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from PIL import Image

CROP = 256
QUALITY = (70, 95)
MANIFEST = "MANIFEST.csv"
PROJECT_MANIFEST = Path(__file__).resolve().parent.parent / "resources" / "datasets" / "modern" / MANIFEST
DEFAULT_LOCATION = Path(__file__).resolve().parent.parent.parent / "shared" / "datasets" / "modern"

# Held-out sources, chosen so the test covers paintings and photoreal images, Midjourney, GPT-4o, Gemini and
# Kandinsky fakes, and camera-sample, quiz-game and stock reals, none of which the model trains on. The
# validation sources (early stopping) are small, mixed ones. The training sources are the big ones.
TEST_SOURCES = {
    "kurlyto/ai-or-not", "skvarcaleks/spot-the-ai-image", "drewnoakes/metadata-extractor-images",
    "ai-or-human/ai-or-human.github.io", "brockwebb/ai-or-not", "jcraigk/blog", "z23cc/gpt4o-image-prompt",
    "PicoTrex/Awesome-Nano-Banana-images", "ai-forever/Kandinsky-3",
}
VAL_SOURCES = {
    "clovaai/stargan-v2", "cszn/FFDNet", "pjreddie/darknet", "IDEA-Research/Grounded-Segment-Anything",
    "dcsan/imagen", "jyoung105/yetter", "Kwai-Kolors/Kolors", "leejet/stable-diffusion.cpp",
    "apple/ml-stable-diffusion",
}
TRAIN_SOURCES = {
    "EliSchwartz/imagenet-sample-images", "Laboratoriet/real-or-ai-game", "serengil/deepface", "CompVis/stable-diffusion",
    "vladmandic/sdnext", "gebaltso/SDFD", "HackTheW2d/AI-Images",
}
# Generator labels grouped into the families the README counts (leave-one-generator-out needs ≥ 10 images each)
_FAMILIES = (("sd-2.1", ("sd-2.1",)), ("sd-1.x", ("stable-diffusion", "sd-1.", "stable-diffusion-1.")),
             ("sdxl", ("sdxl",)), ("sd-3", ("sd-3",)), ("midjourney", ("midjourney",)),
             ("gpt-4o", ("gpt-4o",)), ("qwen-image", ("qwen-image",)), ("kolors", ("kolors",)),
             ("kandinsky", ("kandinsky",)), ("gemini", ("gemini",)), ("dall-e", ("dall-e",)),
             ("flux", ("flux", "chroma", "flex", "shuttle", "krea", "ultraflux")), ("unknown", ("unknown",)))


class ModernSetError(ValueError):
    """A manifest or a set that cannot be used, said in one line."""


@dataclass(frozen=True)
class Item:
    file: str  # path inside the set: real/<source>/... or fake/<generator>/...
    label: str  # real | fake
    generator: str  # 'none' for real photographs
    source_repo: str
    source_path: str
    source_commit: str
    sha256: str

    @property
    def source(self) -> str:
        """The short source name the set's file names start with ('sdnext-reference')."""
        name = Path(self.file).name
        return name.split("__", 1)[0] if "__" in name else Path(self.file).parent.name

    @property
    def family(self) -> str:
        return generator_family(self.generator)


def generator_family(generator: str) -> str:
    if generator == "none":
        return "none"
    for family, prefixes in _FAMILIES:
        if any(generator.startswith(prefix) for prefix in prefixes):
            return family
    return "other"


def read_manifest(path: Path) -> list[Item]:
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
    except OSError as exc:
        raise ModernSetError(f"cannot read the modern set's manifest {path}: {exc.strerror or exc}") from None
    needed = {"file", "label", "generator", "source_repo", "source_path", "source_commit", "sha256"}
    if not rows or not needed <= set(rows[0]):
        raise ModernSetError(f"{path} is not a modern-set manifest (columns needed: {', '.join(sorted(needed))})")
    items = [Item(*(row[k] for k in ("file", "label", "generator", "source_repo", "source_path", "source_commit",
                                     "sha256"))) for row in rows]
    bad = [i.file for i in items if i.label not in ("real", "fake") or Path(i.file).is_absolute() or ".." in
           Path(i.file).parts]
    if bad:
        raise ModernSetError(f"{path}: {len(bad)} row(s) with a bad label or path, e.g. {bad[0]!r}")
    return items


def split_of(source_repo: str) -> str:
    if source_repo in TEST_SOURCES:
        return "test"
    if source_repo in VAL_SOURCES:
        return "val"
    if source_repo in TRAIN_SOURCES:
        return "train"
    # a source this module does not know (a user's own manifest): a stable choice from its name, ~20 % test
    bucket = hashlib.sha256(source_repo.encode("utf-8")).digest()[0] % 10
    return "test" if bucket < 2 else "val" if bucket == 2 else "train"


def normalise(image: Image.Image, rng: random.Random, crops: int = 1, crop: int = CROP) -> list[bytes]:
    """`crops` JPEG-encoded square crops of one decoded picture, made the same way whatever its class."""
    image = image.convert("RGB")
    short = min(image.size)
    if short < crop:
        raise ModernSetError(f"the short side is {short} px, under the {crop} px crop")
    if rng.random() < 0.5:
        factor = rng.uniform(max(0.5, crop / short), 1.0)
        if factor < 1.0:
            size = (max(crop, round(image.width * factor)), max(crop, round(image.height * factor)))
            image = image.resize(size, Image.Resampling.LANCZOS)
    out = []
    for _ in range(crops):
        x, y = rng.randint(0, image.width - crop), rng.randint(0, image.height - crop)
        buffer = io.BytesIO()
        # a fresh image without info: no EXIF, ICC, XMP or comment is carried into the file
        Image.frombytes("RGB", (crop, crop), image.crop((x, y, x + crop, y + crop)).tobytes()).save(
            buffer, "JPEG", quality=rng.randint(*QUALITY), subsampling=2)
        out.append(buffer.getvalue())
    return out


def _decode(path: Path) -> Image.Image:
    from models.imaging import decode, read_file

    return decode(read_file(path)[0]).image  # the product's decoder: pixel budget, EXIF orientation, RGB


def prepare(modern: Path, out: Path, *, train_crops: int = 3, seed: int = 0,
            progress: Callable[[str], None] = print) -> dict:
    """Write OUT/{train,val,test}/real/<source>/… and OUT/{split}/fake/<generator family>/…, plus
    OUT/modern-prepared.csv (each prepared file's split, source, generator and original), and return counts."""
    modern, out = Path(modern), Path(out)
    items = read_manifest(modern / MANIFEST)
    missing = [i.file for i in items if not (modern / i.file).is_file()]
    if missing:
        raise ModernSetError(f"{len(missing)} of the manifest's {len(items)} files are missing from {modern}, e.g. "
                             f"{missing[0]} (rebuild them with `forensight data rebuild-modern`)")
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    rows, counts, skipped = [], {}, []
    for index, item in enumerate(items):
        split = split_of(item.source_repo)
        try:
            crops = normalise(_decode(modern / item.file), rng, train_crops if split == "train" else 1)
        except Exception as exc:  # one bad file is a line in the summary, not the end of the build
            skipped.append(f"{item.file}: {exc}")
            continue
        group = item.source if item.label == "real" else item.family
        stem = Path(item.file).stem
        for k, data in enumerate(crops):
            relative = Path(split) / item.label / group / f"{item.source}__{stem}-{k}.jpg"
            (out / relative).parent.mkdir(parents=True, exist_ok=True)
            (out / relative).write_bytes(data)
            rows.append([relative.as_posix(), split, item.label, item.source_repo, item.generator, item.family,
                         item.file, item.sha256])
        key = f"{split}/{item.label}"
        counts[key] = counts.get(key, 0) + 1
        if (index + 1) % 200 == 0:
            progress(f"  modern: {index + 1}/{len(items)} pictures")
    with open(out / "modern-prepared.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "split", "label", "source_repo", "generator", "family", "original", "sha256"])
        writer.writerows(rows)
    return {"pictures": dict(sorted(counts.items())), "crops": len(rows), "skipped": skipped}


def rebuild(clones: Path, out: Path, manifest: Path = PROJECT_MANIFEST,
            progress: Callable[[str], None] = print) -> dict:
    """Recreate the set's files from local git clones of its public repositories (CLONES/<owner>/<name>), each
    file read at the manifest's commit and checked against its SHA-256. Nothing is downloaded."""
    clones, out = Path(clones), Path(out)
    items = read_manifest(manifest)
    written, problems = 0, []
    for item in items:
        repo = clones / item.source_repo
        if not (repo / ".git").exists() and not (repo / "HEAD").is_file():
            problems.append(f"{item.source_repo}: no clone at {repo}")
            continue
        shown = subprocess.run(["git", "-C", str(repo), "cat-file", "blob", f"{item.source_commit}:{item.source_path}"],
                               capture_output=True)
        if shown.returncode != 0:
            problems.append(f"{item.file}: {shown.stderr.decode('utf-8', 'replace').strip().splitlines()[-1:]}")
            continue
        if hashlib.sha256(shown.stdout).hexdigest() != item.sha256:
            problems.append(f"{item.file}: SHA-256 differs from the manifest's")
            continue
        target = out / item.file
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(shown.stdout)
        written += 1
    (out / MANIFEST).write_bytes(Path(manifest).read_bytes())
    unique = sorted(set(problems))
    progress(f"rebuilt {written} of {len(items)} files in {out}" + (f"; {len(unique)} problem(s)" if unique else ""))
    return {"written": written, "total": len(items), "problems": unique}
