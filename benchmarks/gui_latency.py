"""Does the window stay responsive while it scans, and what does the GUI cost in throughput?

    python benchmarks/gui_latency.py [--arch resnet18] [--images 96] [--batch-size 16] [--tick-ms 5]

Scans a generated folder of photo-sized JPEGs in the real main window (offscreen) while a QTimer ticks every
--tick-ms on the GUI thread; a late tick is time the event loop could not answer the user. Prints the worst
and 99th-percentile gap between ticks, then images/s of the GUI scan next to the same scan through the CLI
path (app.services.scanning.run_scan without Qt), same process, same files, a fresh case each. Random weights:
speed does not depend on what was learned.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402


def make_folder(root: Path, count: int) -> Path:
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        w, h = ((1600, 1200), (2000, 1500), (1200, 1600))[i % 3]
        small = rng.integers(0, 255, (h // 8, w // 8, 3), dtype=np.uint8)  # textured, photo-like file sizes
        Image.fromarray(small).resize((w, h), Image.BICUBIC).save(root / f"{i:03d}.jpg", "JPEG", quality=90)
    return root


def add_model(arch: str) -> str:
    import torch

    from models.card import ModelCard, default_input_spec
    from models.library import ModelLibrary
    from models.registry import build_model

    torch.manual_seed(0)
    num_logits = 1 if arch == "simple_cnn" else 2
    card = ModelCard(id="bench", name="benchmark (random weights)", architecture=arch, num_logits=num_logits,
                     input=default_input_spec(arch))
    library = ModelLibrary()
    library.add(card, build_model(arch, num_logits).state_dict())
    library.set_default(card.id)
    return card.id


def cli_scan(model_id: str, folder: Path, case_path: Path, batch_size: int) -> float:
    """images/s of the CLI's scan path: the same run_scan the window uses, with no Qt around it."""
    from app.case.store import Case
    from app.services.scanning import list_entries, run_scan
    from models.engine import ScanEngine
    from models.library import ModelLibrary

    engine = ScanEngine(ModelLibrary().load(model_id), batch_size=batch_size)
    with Case(case_path) as case:
        summary = run_scan(case, engine, list_entries([folder], recursive=True))
    return summary.rate


def gui_scan(app, folder: Path, case_path: Path, batch_size: int, tick_ms: int) -> tuple[float, np.ndarray, float]:
    """(images/s, gaps between ticks in ms, wall seconds from pressing Scan to the last row shown)."""
    from PySide6.QtCore import QEventLoop, QTimer

    from app.ui.main_window import MainWindow

    window = MainWindow()
    window.resize(1400, 860)
    window.show()
    window.new_case(case_path)
    window.batch_size = batch_size
    window.open_folder(folder)
    ticks: list[float] = []
    loop = QEventLoop()

    def tick() -> None:
        ticks.append(time.perf_counter())
        if not window.is_scanning():
            loop.quit()

    timer = QTimer()
    timer.setInterval(tick_ms)
    timer.timeout.connect(tick)
    start = time.perf_counter()
    window.start_scan()
    timer.start()
    loop.exec()
    wall = time.perf_counter() - start
    timer.stop()
    rate = window.last_summary.rate if window.last_summary else 0.0
    window.close()
    return rate, np.diff(np.array(ticks)) * 1000.0, wall


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="resnet18")
    parser.add_argument("--images", type=int, default=96)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--tick-ms", type=int, default=5)
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="forensight-gui-bench-"))
    os.environ["FORENSIGHT_HOME"] = str(scratch / "home")
    os.environ["FORENSIGHT_SHIPPED_MODELS"] = str(scratch / "no-shipped-models")
    folder = make_folder(scratch / "photos", args.images)
    model_id = add_model(args.arch)

    from PySide6.QtWidgets import QApplication

    from models.device import describe_device, select_device

    app = QApplication.instance() or QApplication([sys.argv[0]])
    print(f"{args.images} JPEGs (1200-2000 px), {args.arch}, batch {args.batch_size}, "
          f"{describe_device(select_device())}; GUI timer every {args.tick_ms} ms")
    cli_scan(model_id, folder, scratch / "warm-up.sqlite", args.batch_size)  # page cache, kernels, imports

    gui_rate, gaps, wall = gui_scan(app, folder, scratch / "gui.sqlite", args.batch_size, args.tick_ms)
    cli_rate = cli_scan(model_id, folder, scratch / "cli.sqlite", args.batch_size)

    print(f"event-loop gap between {args.tick_ms} ms ticks during the GUI scan ({len(gaps)} ticks):")
    print(f"  median {np.median(gaps):6.1f} ms   p99 {np.percentile(gaps, 99):6.1f} ms   "
          f"worst {gaps.max():6.1f} ms   gaps > 50 ms: {int((gaps > 50).sum())}, > 100 ms: {int((gaps > 100).sum())}")
    print(f"GUI scan  {gui_rate:6.2f} images/s (scan loop); {args.images / wall:6.2f} images/s from pressing Scan "
          "to the last row, model loading included")
    print(f"CLI path  {cli_rate:6.2f} images/s (run_scan without Qt)")
    print(f"GUI / CLI {gui_rate / cli_rate:6.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
