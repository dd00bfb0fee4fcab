"""One multi-model pass against one scan per model, in one process: makes a folder of camera-sized JPEGs, scans
it with every model in one pass (each file read, hashed, analysed and decoded once) and then with each model
alone, each into a fresh case through the real scan path, and prints the wall times and their ratio.

    python benchmarks/multi_model_scan.py [--files 60] [--archs efficientnet_lite0,resnet18] [--size 2000x1500]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from app.case.store import Case  # noqa: E402
from app.services.scanning import list_entries, run_scan  # noqa: E402
from models.card import ModelCard, default_input_spec  # noqa: E402
from models.engine import MultiScanEngine, ScanEngine  # noqa: E402
from models.library import LoadedModel  # noqa: E402
from models.registry import build_model  # noqa: E402


def make_photos(folder: Path, count: int, width: int, height: int) -> None:
    """Smooth gradients with noise: JPEGs that cost a camera photo's decode and hash, not a flat colour's."""
    folder.mkdir()
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x * 255 // width, y * 255 // height, (x + y) * 255 // (width + height)], -1)
    for i in range(count):
        noise = rng.integers(0, 40, size=base.shape)
        Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8)).save(folder / f"{i:04d}.jpg", quality=90)


def timed_scan(tmp: Path, name: str, folder: Path, engine) -> float:
    entries = list_entries([folder], recursive=False)
    start = time.perf_counter()
    with Case(tmp / f"{name}.sqlite") as case:
        run_scan(case, engine, entries, roots=[folder])
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=60)
    parser.add_argument("--archs", default="efficientnet_lite0,resnet18")
    parser.add_argument("--size", default="2000x1500")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    models = []
    for arch in args.archs.split(","):
        card = ModelCard(id=f"bench-{arch}", name=arch, architecture=arch, num_logits=1,
                         input=default_input_spec(arch))
        models.append(LoadedModel(card, build_model(arch, 1).eval()))

    def engine(model: LoadedModel) -> ScanEngine:
        return ScanEngine(model, device=args.device, batch_size=16)

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        make_photos(tmp / "photos", args.files, width, height)
        timed_scan(tmp, "warm-up", tmp / "photos", engine(models[0]))  # page cache, thread pools, kernels
        together = timed_scan(tmp, "together", tmp / "photos", MultiScanEngine([engine(m) for m in models]))
        alone = [timed_scan(tmp, f"alone-{i}", tmp / "photos", engine(m)) for i, m in enumerate(models)]
    print(f"{args.files} JPEGs {width}×{height}, models {args.archs}, device {args.device}")
    print(f"one pass with {len(models)} models: {together:.1f} s")
    print(f"separate scans: {' + '.join(f'{t:.1f}' for t in alone)} = {sum(alone):.1f} s")
    print(f"ratio one pass / separate scans: {together / sum(alone):.2f}")


if __name__ == "__main__":
    main()
