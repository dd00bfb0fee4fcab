"""Scan throughput: the engine vs a naive one-image-at-a-time loop (like seed 003's Flask handler), same
model, same process, same files; plus the model-only bound on ready tensors.

    python benchmarks/scan_throughput.py [--arch efficientnet_lite0] [--images 48] [--batch-size 16]
                                         [--workers N] [--device cpu|cuda]
    python benchmarks/scan_throughput.py --policy center_crop,tiles [--photo-size 4000x3000]
                                         [--peak-megapixels 100]

Prints images/s for each and the ratios. Weights are random: speed does not depend on what was learned.
With --policy, the engine scans the same photos once per input policy and prints images/s and views (tiles)/s;
--photo-size makes every photo that size (4000x3000: 12 MP), and --peak-megapixels measures, in a fresh
process, the peak memory of scanning one picture of that many megapixels with each policy.
"""
from __future__ import annotations

import argparse
import os
import subprocess
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

from dataclasses import replace  # noqa: E402

from models.card import ModelCard, default_input_spec  # noqa: E402
from models.device import describe_device, select_device  # noqa: E402
from models.engine import ScanEngine  # noqa: E402
from models.library import LoadedModel  # noqa: E402
from models.registry import build_model  # noqa: E402


def make_folder(root: Path, count: int, size: tuple[int, int] | None = None) -> list[Path]:
    rng = np.random.default_rng(0)
    sizes = [size] if size else [(2000, 1500), (3000, 2000), (4000, 3000), (2400, 1600)]
    paths = []
    for i in range(count):
        w, h = sizes[i % len(sizes)]
        small = rng.integers(0, 255, (h // 8, w // 8, 3), dtype=np.uint8)  # textured, photo-like file sizes
        img = Image.fromarray(small).resize((w, h), Image.BICUBIC)
        if i % 8 == 7 and not size:
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


def policy_scan(model: LoadedModel, policy: str, paths: list[Path], batch_size: int, workers: int | None,
                device: str) -> tuple[float, float]:
    """(images/s, views/s) of the engine with the card's input policy changed to `policy`."""
    card = replace(model.card, input=replace(model.card.input, policy=policy))
    engine = ScanEngine(LoadedModel(card, model.module), device=device, batch_size=batch_size, workers=workers)
    list(engine.scan(paths[:2]))  # warm-up
    start = time.perf_counter()
    results = list(engine.scan(paths))
    elapsed = time.perf_counter() - start
    assert all(r.error is None for r in results), [r.error for r in results if r.error]
    return len(paths) / elapsed, sum(len(r.tiles) for r in results) / elapsed


def peak_memory(arch: str, policy: str, path: Path, device: str, batch_size: int) -> str:
    """Scan one picture in a fresh process: its peak resident memory (VmHWM, which a new process starts afresh;
    ru_maxrss would carry this process's own peak across the exec)."""
    script = f"""
import sys, time
def peak_mb():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM")) / 1024
sys.path.insert(0, {str(Path(__file__).resolve().parent.parent)!r})
from dataclasses import replace
from benchmarks.scan_throughput import bench_model
from models.engine import ScanEngine
from models.library import LoadedModel
model = bench_model({arch!r})
card = replace(model.card, input=replace(model.card.input, policy={policy!r}))
engine = ScanEngine(LoadedModel(card, model.module), device={device!r}, batch_size={batch_size})
before = peak_mb()
start = time.perf_counter()
(result,) = engine.scan([{str(path)!r}])
seconds = time.perf_counter() - start
after = peak_mb()
assert result.ok, result.error
print(f"{{result.width}}x{{result.height}}: {{len(result.tiles)}} view(s) in {{seconds:.1f}} s, peak memory "
      f"{{after:.0f}} MB ({{after - before:.0f}} MB more than with the model loaded)")
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    return done.stdout.strip() or done.stderr.strip().splitlines()[-1]


def one_big_picture(folder: Path, megapixels: float) -> Path:
    """A photo-like JPEG of about `megapixels`, written without holding more than the picture itself."""
    width = int((megapixels * 1e6 * 4 / 3) ** 0.5)
    height = int(megapixels * 1e6 / width)
    small = np.random.default_rng(0).integers(0, 255, (height // 16, width // 16, 3), dtype=np.uint8)
    path = folder / "big.jpg"
    Image.fromarray(small).resize((width, height), Image.BILINEAR).save(path, "JPEG", quality=90)
    return path


def bench_model(arch: str) -> LoadedModel:
    torch.manual_seed(0)
    card = ModelCard(id="bench", name="bench", architecture=arch, num_logits=2, input=default_input_spec(arch))
    return LoadedModel(card, build_model(arch, 2).eval())


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
    parser.add_argument("--policy", help="comma list of input policies to compare (e.g. center_crop,tiles)")
    parser.add_argument("--photo-size", help="every photo WIDTHxHEIGHT (4000x3000 = 12 MP)")
    parser.add_argument("--peak-megapixels", type=float, help="also measure the peak memory of one such picture")
    args = parser.parse_args()
    if args.policy:
        compare_policies(args)
        return

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


def compare_policies(args: argparse.Namespace) -> None:
    policies = args.policy.split(",")
    size = tuple(int(v) for v in args.photo_size.lower().split("x")) if args.photo_size else None
    model = bench_model(args.arch)
    workers = int(args.workers) if args.workers else None
    where = describe_device(select_device(args.device))
    with tempfile.TemporaryDirectory() as tmp:
        paths = make_folder(Path(tmp), args.images, size)
        megapixels = sum(Image.open(p).width * Image.open(p).height for p in paths) / len(paths) / 1e6
        print(f"{len(paths)} files (mean {megapixels:.1f} MP), {args.arch}, {torch.get_num_threads()} torch threads, "
              f"batch {args.batch_size}, {where}")
        for policy in policies:
            images_per_s, views_per_s = policy_scan(model, policy, paths, args.batch_size, workers, args.device)
            print(f"{policy:<20} {images_per_s:7.2f} images/s {views_per_s:9.1f} views (tiles)/s")
    if args.peak_megapixels:
        with tempfile.TemporaryDirectory() as tmp:
            big = one_big_picture(Path(tmp), args.peak_megapixels)
            for policy in policies:
                print(f"{policy:<20} {peak_memory(args.arch, policy, big, args.device, args.batch_size)}")


if __name__ == "__main__":
    main()
