"""Time to build the PDF report of a 1,000-file case (thumbnails, table, a Grad-CAM page per flagged file).

    python benchmarks/report_1000.py [--images 1000] [--keep DIR]

Generates small images, scans them with a tiny simple_cnn (random weights, head scaled so P(fake) spreads
and many files are flagged), then times build_report alone and prints pages, flagged files and seconds.
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
    args = parser.parse_args()
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        run(args.keep, args.images)
    else:
        with tempfile.TemporaryDirectory() as folder:
            run(Path(folder), args.images)


def run(root: Path, count: int) -> None:
    os.environ["FORENSIGHT_HOME"] = str(root / "home")
    os.environ["FORENSIGHT_SHIPPED_MODELS"] = str(root / "shipped")
    import torch

    from app.case import Case
    from app.report import build_report
    from app.scanning import list_entries, run_scan
    from models.card import ModelCard, default_input_spec
    from models.engine import ScanEngine
    from models.library import ModelLibrary
    from models.registry import build_model
    from tests.images import gradient

    photos = root / "photos"
    photos.mkdir(exist_ok=True)
    for i in range(count):
        gradient(96 + i % 64, 72 + i % 48, seed=i).save(photos / f"img_{i:04d}.jpg", "JPEG", quality=85)

    torch.manual_seed(0)
    module = build_model("simple_cnn", 1)
    with torch.no_grad():
        module.classifier[4].weight.mul_(300)
    library = ModelLibrary()
    library.add(ModelCard(id="bench", name="benchmark model", architecture="simple_cnn", num_logits=1,
                          input=default_input_spec("simple_cnn")), module.state_dict())
    case_path = root / "case.sqlite"
    start = time.perf_counter()
    with Case(case_path) as case:
        run_scan(case, ScanEngine(library.load("bench"), device="cpu"), list_entries([photos], False))
    scanned = time.perf_counter() - start

    start = time.perf_counter()
    info = build_report(case_path, root / "report.pdf", title="Benchmark", examiner="bench")
    seconds = time.perf_counter() - start
    size = info.pdf_path.stat().st_size / 2**20
    print(f"scan: {count} files in {scanned:.1f} s")
    print(f"report: {info.files} files, {info.flagged} flagged pages, {info.pages} pages, {size:.1f} MiB "
          f"in {seconds:.1f} s")


if __name__ == "__main__":
    main()
