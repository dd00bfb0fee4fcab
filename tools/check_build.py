"""Smoke test of a PyInstaller build: the frozen `forensight` scans the bundled samples with the shipped starter
model, writes a PDF report with Grad-CAM pages, and opens the desktop window (offscreen) without crashing.

    python tools/check_build.py dist/forensight/forensight

Runs in a scratch user folder, prints what it checked and the time each step took, exits 1 on the first
failure. The build's own resources are used: nothing from this checkout is on its path.
"""
from __future__ import annotations

import csv
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__)
        return 2
    binary = Path(argv[0]).resolve()
    samples = binary.parent / "_internal" / "resources" / "samples"
    with tempfile.TemporaryDirectory() as scratch:
        env = {**os.environ, "FORENSIGHT_HOME": str(Path(scratch) / "home"), "QT_QPA_PLATFORM": "offscreen",
               "HF_HUB_OFFLINE": "1"}
        env.pop("FORENSIGHT_SHIPPED_MODELS", None)
        env.pop("PYTHONPATH", None)
        out = Path(scratch)
        checks = [
            ("models list shows the shipped starter", [binary, "models", "list"], "starter-effnet-lite0"),
            ("scan of the bundled samples", [binary, "scan", samples, "--recursive", "-q", "--csv", out / "s.csv",
                                             "--case", out / "case.sqlite"], "Scanned"),
            ("PDF report from the case", [binary, "report", out / "case.sqlite", "--pdf", out / "r.pdf", "-q"],
             "SHA-256"),
        ]
        if run_checks(checks, env):
            return 1
        with open(out / "s.csv", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
        files = [p for p in samples.rglob("*") if p.is_file()]
        if len(rows) != len(files) or any(not row["p_fake"] for row in rows):
            print(f"FAILED: the CSV has {len(rows)} rows for {len(files)} sample files, or unscored rows")
            return 1
        if any(row["c2pa"] == "unavailable" for row in rows):
            print("FAILED: the C2PA check is unavailable in the build (c2pa's native library was left out)")
            return 1
        print(f"ok  CSV: {len(rows)} scored rows; PDF {(out / 'r.pdf').stat().st_size / 1024:.0f} KiB")
        return check_new_formats(binary, env, out) or check_window(binary, env)


def check_new_formats(binary: Path, env: dict, out: Path) -> int:
    """What the build must carry beyond the scan: the detector catalogue, HEIC decoding (pillow-heif's native
    library), a Hugging Face detector (transformers builds its model class by name at run time)."""
    import pillow_heif
    from PIL import Image
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

    photos = out / "heic"
    photos.mkdir()
    pillow_heif.from_pillow(Image.new("RGB", (96, 64), (90, 140, 200))).save(photos / "phone.heic")
    config = ViTConfig(image_size=32, patch_size=8, hidden_size=24, num_hidden_layers=2, num_attention_heads=2,
                       intermediate_size=48, num_labels=2, id2label={0: "real", 1: "fake"},
                       label2id={"real": 0, "fake": 1})
    ViTForImageClassification(config).eval().save_pretrained(out / "vit")
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(out / "vit")
    tower, head = tiny_univfd(out / "univfd")
    checks = [
        ("models catalogue lists the published families", [binary, "models", "catalogue"], "cnndetection"),
        ("a Hugging Face detector imports", [binary, "models", "import", out / "vit", "--id", "tiny-vit"],
         "Imported tiny-vit"),
        ("a HEIC photo is scanned by it", [binary, "scan", photos, "--model", "tiny-vit", "-q", "--csv",
                                           out / "heic.csv"], "Scanned 1 of 1"),
        ("a UnivFD head imports with its OpenCLIP tower (open_clip builds it)",
         [binary, "models", "import", head, "--tower", tower], "Imported univfd"),
    ]
    if run_checks(checks, env):
        return 1
    with open(out / "heic.csv", encoding="utf-8") as handle:
        row = next(csv.DictReader(handle))
    if not row["p_fake"] or row["format"] != "HEIF":
        print(f"FAILED: the HEIC photo was not decoded in the build ({row['format']!r}, {row['error']!r})")
        return 1
    print("ok  HEIC decoded and scored in the build")
    return 0


def tiny_univfd(folder: Path) -> tuple[Path, Path]:
    """A tiny OpenCLIP tower file (open_clip_pytorch_model.bin) and a UnivFD head (fc_weights.pth)."""
    import open_clip
    import torch

    folder.mkdir()
    clip = open_clip.CLIP(embed_dim=768, quick_gelu=True, vision_cfg=dict(layers=1, width=64, patch_size=14,
                                                                          image_size=224),
                          text_cfg=dict(context_length=8, vocab_size=100, width=64, heads=1, layers=1))
    torch.save(clip.state_dict(), folder / "open_clip_pytorch_model.bin")
    torch.save(torch.nn.Linear(768, 1).state_dict(), folder / "fc_weights.pth")
    return folder / "open_clip_pytorch_model.bin", folder / "fc_weights.pth"


def run_checks(checks: list, env: dict) -> int:
    """Each (name, command, text expected in its output), in order; 1 at the first failure, else 0."""
    for name, command, expected in checks:
        start = time.perf_counter()
        run = subprocess.run([str(c) for c in command], env=env, capture_output=True, text=True, timeout=600)
        if run.returncode != 0 or expected not in run.stdout + run.stderr:
            print(f"FAILED: {name} (exit {run.returncode})\n{run.stdout}\n{run.stderr}")
            return 1
        print(f"ok  {name} ({time.perf_counter() - start:.1f} s)")
    return 0


def check_window(binary: Path, env: dict) -> int:
    """The window starts (offscreen) and is still running after a few seconds: no missing Qt plugin or module."""
    start = time.perf_counter()
    process = subprocess.Popen([str(binary)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.terminate()
        process.wait(timeout=10)
        print(f"ok  the desktop window started and kept running for {time.perf_counter() - start:.0f} s")
        return 0
    print(f"FAILED: the desktop window exited with {process.returncode}\n{process.stderr.read()}")
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
