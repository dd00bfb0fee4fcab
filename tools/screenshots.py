"""Screenshots of the desktop app's main states, for the docs and for checking the layout by eye.

    python tools/screenshots.py OUT_DIR [--palette light|dark|both]

Runs offscreen in a throw-away user folder with a *demo detector that has random weights* (it is labelled
so in the window: its scores mean nothing) and a generated folder of pictures, so the screenshots look the
same on every machine and never touch your own library or cases.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

WINDOW_SIZE = (1440, 880)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="folder for the PNG files")
    parser.add_argument("--palette", choices=("light", "dark", "both"), default="both")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    scratch = Path(tempfile.mkdtemp(prefix="forensight-screens-"))
    os.environ["FORENSIGHT_HOME"] = str(scratch / "home")
    os.environ["FORENSIGHT_SHIPPED_MODELS"] = str(scratch / "no-shipped-models")
    add_demo_detector()
    folder = demo_folder(scratch / "evidence")

    from PySide6.QtWidgets import QApplication

    from app.ui.widgets.palette import apply_palette

    app = QApplication.instance() or QApplication([sys.argv[0]])
    palettes = ("light", "dark") if args.palette == "both" else (args.palette,)
    for palette in palettes:
        apply_palette(app, palette == "dark")
        for name in shoot(app, folder, args.out, palette):
            print(args.out / name)
    return 0


def shoot(app, folder: Path, out: Path, palette: str) -> list[str]:
    from app.ui.main_window import MainWindow

    saved = []

    def save(widget, state: str, settle_seconds: float = 0.3) -> None:
        settle(app, settle_seconds)
        name = f"{state}-{palette}.png"
        widget.grab().save(str(out / name))
        saved.append(name)

    window = MainWindow()
    window.dark_action.setChecked(palette == "dark")
    window.resize(*WINDOW_SIZE)
    window.new_case(Path(os.environ["FORENSIGHT_HOME"]) / "cases" / f"demo-{palette}.sqlite")
    window.show()
    save(window, "1-empty")

    window.open_folder(folder)
    window.batch_size = 1  # slow enough to catch the scan halfway
    window.start_scan()
    wait_until(app, lambda: window.results.model.rowCount() >= 40 or not window.is_scanning())
    save(window, "2-scanning", settle_seconds=0)  # now, before the scan ends
    wait_until(app, lambda: not window.is_scanning(), timeout=120)

    names = [Path(r.path).name for r in window.results.model.rows()]
    window.results.select_row(names.index("street-07.png") if "street-07.png" in names else 0)
    wait_until(app, lambda: not window.detail.viewer.image_pixmap().isNull())
    window.detail.overlay_box.setChecked(True)
    wait_until(app, lambda: not window.detail.viewer.overlay_pixmap().isNull(), timeout=60)
    save(window, "3-results-overlay")
    window.detail.side_by_side_box.setChecked(True)
    save(window, "4-side-by-side")

    dialog = window.manage_models()
    dialog.resize(860, 540)
    save(dialog, "5-model-manager")
    dialog.close()

    from tests.datasets import make_trace_dataset

    # a real (small) training run: 32-px textures vs the same content through a nearest-neighbour upsampler
    trace = make_trace_dataset(folder.parent / f"trace-{palette}", per_class=150)
    wizard = window.train_model()
    wizard.data_page.set_folder(trace)
    wait_until(app, wizard.data_page.isComplete)
    wizard.next()
    recipe = wizard.recipe_page
    recipe.recipe.setCurrentText("cifake_cnn")
    recipe.name.setText(f"demo-trained-{palette}")
    recipe.epochs.setValue(12)
    recipe.batch_size.setValue(16)
    recipe.workers.setValue(0)
    recipe.lr.setValue(0.001)
    save(wizard, "6-training-recipe")
    wizard.next()
    wait_until(app, wizard.train_page.isComplete, timeout=300)
    save(wizard, "7-training-curve")
    wizard.next()
    save(wizard, "8-trained-model")
    wizard.reject()
    window.close()
    return saved


def settle(app, seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        app.processEvents()
        time.sleep(0.01)


def wait_until(app, condition, timeout: float = 30) -> None:
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            raise TimeoutError("the window did not reach the expected state")
        app.processEvents()
        time.sleep(0.01)


def add_demo_detector() -> None:
    """A simple CNN with random weights, its head scaled so scores spread over 0..1. Named as what it is."""
    import torch

    from models.card import ModelCard, default_input_spec
    from models.library import ModelLibrary
    from models.registry import build_model

    torch.manual_seed(0)
    module = build_model("simple_cnn", 1)
    with torch.no_grad():
        module.classifier[4].weight.mul_(300)
    card = ModelCard(id="demo-untrained", name="Demo (random weights)", architecture="simple_cnn",
                     num_logits=1, input=default_input_spec("simple_cnn"),
                     description="Random weights, for screenshots only: its scores mean nothing.",
                     limitations="Untrained. Never use it on evidence.")
    library = ModelLibrary()
    library.add(card, module.state_dict())
    library.set_default(card.id)


def demo_folder(root: Path) -> Path:
    """Pictures of coloured shapes in real/ and fake/ folders (so the histogram shows true classes), plus the
    awkward files every scan must survive."""
    import numpy as np
    from PIL import Image, ImageDraw, ImageFilter

    from tests.images import good_and_bad_folder

    rng = np.random.default_rng(7)
    for cls, count in (("real", 60), ("fake", 60)):
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            sky, ground = rng.integers(40, 220, 3), rng.integers(20, 160, 3)
            img = Image.new("RGB", (320, 240), tuple(int(c) for c in sky))
            draw = ImageDraw.Draw(img)
            draw.rectangle((0, 150, 320, 240), fill=tuple(int(c) for c in ground))
            for _ in range(6):
                x, y, r = rng.integers(0, 320), rng.integers(0, 240), rng.integers(10, 60)
                draw.ellipse((x - r, y - r, x + r, y + r), fill=tuple(int(c) for c in rng.integers(0, 255, 3)))
            if cls == "fake":
                img = img.filter(ImageFilter.GaussianBlur(1.5))
            img.save(root / cls / f"{'street' if cls == 'real' else 'render'}-{i:02d}.png")
    good_and_bad_folder(root / "mixed")
    return root


if __name__ == "__main__":
    sys.exit(main())
