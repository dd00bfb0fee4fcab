"""Scan throughput: the engine vs a naive one-image-at-a-time loop (like seed 003's Flask handler), same
model, same process, same files; plus the model-only bound on ready tensors.

    python benchmarks/scan_throughput.py [--arch efficientnet_lite0] [--images 48] [--batch-size 16]
                                         [--workers N] [--device cpu|cuda]

Prints images/s for each and the ratios. Weights are random: speed does not depend on what was learned.
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
import torch  # noqa: E402
from PIL import Image  # noqa: E402
from torchvision.transforms import v2  # noqa: E402

from models.card import ModelCard, default_input_spec  # noqa: E402
from models.device import describe_device, select_device  # noqa: E402
from models.engine import ScanEngine  # noqa: E402
from models.library import LoadedModel  # noqa: E402
from models.registry import build_model  # noqa: E402


def make_folder(root: Path, count: int) -> list[Path]:
    rng = np.random.default_rng(0)
    sizes = [(2000, 1500), (3000, 2000), (4000, 3000), (2400, 1600)]
    paths = []
    for i in range(count):
        w, h = sizes[i % len(sizes)]
        small = rng.integers(0, 255, (h // 8, w // 8, 3), dtype=np.uint8)  # textured, photo-like file sizes
        img = Image.fromarray(small).resize((w, h), Image.BICUBIC)
        if i % 8 == 7:
            path = root / f"{i:03d}.png"
            img.resize((w // 2, h // 2)).save(path, compress_level=1)
        else:
            path = root / f"{i:03d}.jpg"
            img.save(path, "JPEG", quality=90)
        paths.append(path)
    return paths


def naive_loop(model: LoadedModel, paths: list[Path], device: str) -> float:
    spec = model.card.input
    transform = v2.Compose([v2.Resize(spec.resize), v2.CenterCrop(spec.size), v2.PILToTensor(),
                            v2.ToDtype(torch.float32, scale=True), v2.Normalize(spec.mean, spec.std)])
    module = model.module.eval().to(device)
    start = time.perf_counter()
    with torch.inference_mode():
        for path in paths:
            x = transform(Image.open(path).convert("RGB")).unsqueeze(0).to(device)
            torch.softmax(module(x), 1).cpu()
    return len(paths) / (time.perf_counter() - start)


def engine_scan(model: LoadedModel, paths: list[Path], batch_size: int, workers: int | None, device: str) -> float:
    engine = ScanEngine(model, device=device, batch_size=batch_size, workers=workers)
    start = time.perf_counter()
    results = list(engine.scan(paths))
    elapsed = time.perf_counter() - start
    assert all(r.error is None for r in results), [r.error for r in results if r.error]
    return len(paths) / elapsed


def model_only(model: LoadedModel, count: int, batch_size: int, device: str) -> float:
    engine = ScanEngine(model, device=device, batch_size=batch_size)
    size = model.card.input.size
    batch = torch.randint(0, 256, (batch_size, 3, size, size), dtype=torch.uint8)
    engine.predict_tensors(batch)  # warm-up
    start = time.perf_counter()
    done = 0
    while done < count:
        engine.predict_tensors(batch)
        done += batch_size
    return done / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--arch", default="efficientnet_lite0")
    parser.add_argument("--images", type=int, default=48)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--workers", default=None,
                        help="decode threads; a comma list (4,8,16) measures the engine once per value")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (the naive loop runs there too)")
    args = parser.parse_args()

    worker_counts = [int(w) for w in args.workers.split(",")] if args.workers else [None]
    torch.manual_seed(0)
    card = ModelCard(id="bench", name="bench", architecture=args.arch, num_logits=2,
                     input=default_input_spec(args.arch))
    model = LoadedModel(card, build_model(args.arch, 2).eval())
    where = describe_device(select_device(args.device))
    with tempfile.TemporaryDirectory() as tmp:
        paths = make_folder(Path(tmp), args.images)
        megapixels = sum(Image.open(p).width * Image.open(p).height for p in paths) / len(paths) / 1e6
        print(f"{len(paths)} files (mean {megapixels:.1f} MP, {sum(p.suffix == '.png' for p in paths)} PNG), "
              f"{args.arch}, {torch.get_num_threads()} torch threads, batch {args.batch_size}, {where}")
        naive_loop(model, paths[:2], args.device)  # warm-up both paths on the same files (and GPU kernels)
        engine_scan(model, paths[:args.batch_size * 2], args.batch_size, worker_counts[0], args.device)
        naive = naive_loop(model, paths, args.device)
        engines = [(w, engine_scan(model, paths, args.batch_size, w, args.device)) for w in worker_counts]
        bound = model_only(model, args.images, args.batch_size, args.device)
    print(f"naive loop   {naive:7.2f} images/s")
    for workers, engine in engines:
        name = f"engine ({workers or 'default'} workers)" if len(engines) > 1 else "engine"
        print(f"{name:<12} {engine:7.2f} images/s   {engine / naive:.2f}x the naive loop, "
              f"{engine / bound:.0%} of the model-only bound")
    print(f"model only   {bound:7.2f} images/s")


if __name__ == "__main__":
    main()
