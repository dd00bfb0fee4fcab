"""Time to build the PDF report of a 1,000-file case (thumbnails, table, a Grad-CAM page per flagged file).

    python benchmarks/report_1000.py [--images 1000] [--keep DIR] [--arch simple_cnn] [--devices cpu,cuda]

Generates small images, scans them with a model of random weights (head scaled so P(fake) spreads and many
files are flagged), then times build_report alone and prints pages, flagged files and seconds; with several
--devices it builds the same report once per Grad-CAM device and prints their ratio.
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it (default: a temporary one)")
    parser.add_argument("--arch", default="simple_cnn", help="architecture of the random-weight model")
    parser.add_argument("--devices", default="cpu", help="Grad-CAM devices to time, comma-separated (cpu,cuda)")
    args = parser.parse_args()
    devices = args.devices.split(",")
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        run(args.keep, args.images, args.arch, devices)
    else:
        with tempfile.TemporaryDirectory() as folder:
            run(Path(folder), args.images, args.arch, devices)


def run(root: Path, count: int, arch: str, devices: list[str]) -> None:
    os.environ["FORENSIGHT_HOME"] = str(root / "home")
    os.environ["FORENSIGHT_SHIPPED_MODELS"] = str(root / "shipped")
    import torch

    from app.case.store import Case
    from app.report import build_report
    from app.services.scanning import list_entries, run_scan
    from models.card import ModelCard, default_input_spec
    from models.engine import ScanEngine
    from models.library import ModelLibrary
    from models.registry import build_model, get_architecture
    from tests.images import gradient

    photos = root / "photos"
    photos.mkdir(exist_ok=True)
    for i in range(count):
        gradient(96 + i % 64, 72 + i % 48, seed=i).save(photos / f"img_{i:04d}.jpg", "JPEG", quality=85)

    torch.manual_seed(0)
    module = build_model(arch, 1)
    with torch.no_grad():
        head = get_architecture(arch).head_weight.rsplit(".", 1)[0]
        module.get_submodule(head).weight.mul_(300)
    library = ModelLibrary()
    library.add(ModelCard(id="bench", name="benchmark model", architecture=arch, num_logits=1,
                          input=default_input_spec(arch)), module.state_dict())
    case_path = root / "case.sqlite"
    start = time.perf_counter()
    with Case(case_path) as case:
        run_scan(case, ScanEngine(library.load("bench"), device="cpu"), list_entries([photos], False))
    scanned = time.perf_counter() - start

    print(f"scan: {count} files in {scanned:.1f} s ({arch})")
    timings = {}
    for device in devices:
        start = time.perf_counter()
        info = build_report(case_path, root / f"report-{device}.pdf", title="Benchmark", examiner="bench",
                            device=device)
        timings[device] = time.perf_counter() - start
        size = info.pdf_path.stat().st_size / 2**20
        print(f"report, Grad-CAM on {device}: {info.files} files, {info.flagged} flagged pages, {info.pages} pages, "
              f"{size:.1f} MiB in {timings[device]:.1f} s")
    if len(timings) > 1:
        base = devices[0]
        for device in devices[1:]:
            print(f"{device} builds the report {timings[base] / timings[device]:.2f}x as fast as {base}")


if __name__ == "__main__":
    main()
