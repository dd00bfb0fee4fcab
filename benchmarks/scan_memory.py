"""Memory over a long scan: makes a folder of N small JPEGs (10,000 by default), scans it into a case with
the real scan path, and prints the process's resident memory every N/10 files. Flat means no per-file growth.

    python benchmarks/scan_memory.py [--files 10000] [--arch simple_cnn]
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

from app.case.store import Case  # noqa: E402
from app.services.scanning import list_entries, run_scan  # noqa: E402
from models.card import ModelCard, default_input_spec  # noqa: E402
from models.engine import ScanEngine  # noqa: E402
from models.library import LoadedModel  # noqa: E402
from models.registry import build_model  # noqa: E402


def rss_mib() -> float:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--arch", default="simple_cnn")
    args = parser.parse_args()
    card = ModelCard(id="bench", name="bench", architecture=args.arch, num_logits=1,
                     input=default_input_spec(args.arch))
    model = LoadedModel(card, build_model(args.arch, 1).eval())
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "photos"
        folder.mkdir()
        for i in range(args.files):
            pixels = rng.integers(0, 255, (60, 80, 3), dtype=np.uint8)
            Image.fromarray(pixels).resize((320, 240)).save(folder / f"{i:05d}.jpg", "JPEG", quality=85)
        entries = list_entries([folder], recursive=False)
        engine = ScanEngine(model, device="cpu", batch_size=32)
        step = max(1, args.files // 10)
        marks = []

        def on_batch(_batch, summary) -> None:
            if summary.done // step > len(marks) - 1:
                marks.append((summary.done, rss_mib()))

        start = time.perf_counter()
        with Case(Path(tmp) / "case.sqlite") as case:
            summary = run_scan(case, engine, entries, on_batch=on_batch)
        elapsed = time.perf_counter() - start
    print(f"{summary.done} files in {elapsed:.0f} s ({summary.done / elapsed:.0f} files/s), {args.arch}")
    for done, rss in marks:
        print(f"  after {done:>6} files: RSS {rss:7.1f} MiB")
    growth = marks[-1][1] - marks[1][1] if len(marks) > 2 else float("nan")
    print(f"growth from the second mark to the end: {growth:+.1f} MiB")


if __name__ == "__main__":
    main()
