"""A flagged file's page in the PDF shows its tile map, with the colour scale and the strongest tile."""
import subprocess

import numpy as np
import pytest
import torch
from PIL import Image

from app.case.store import Case
from app.report import build_report
from app.services.scanning import list_entries, run_scan
from models import tilemap
from models.engine import ScanEngine
from models.input_settings import set_model_input
from models.library import ModelLibrary
from tests.conftest import make_model
from tests.needs import pdf_text

# poppler reads the PDF back: skipped on a developer's machine without it, a failure under CI (tests/needs.py)
pytestmark = pytest.mark.usefixtures("poppler")


@pytest.fixture
def tiled_case(home, tmp_path):
    """One 128×96 picture of 32-pixel flat squares of random colours, scanned in 32-pixel tiles by a CNN whose
    scores spread over 0..1. Flat squares survive the report's JPEG, so their colours can be checked."""
    library = ModelLibrary()
    make_model(library, "spread", "simple_cnn", num_logits=1, seed=0)
    set_model_input(library, "spread", {"policy": "tiles", "aggregation": "max"})
    model = library.load("spread")
    with torch.no_grad():
        model.module.classifier[4].weight.mul_(300)
    (tmp_path / "photos").mkdir()
    rng = np.random.default_rng(0)
    squares = rng.integers(0, 256, (3, 4, 3), dtype=np.uint8)
    picture = np.repeat(np.repeat(squares, 32, axis=0), 32, axis=1)
    Image.fromarray(picture).save(tmp_path / "photos" / "a.png")
    path = tmp_path / "case.sqlite"
    with Case(path) as case:
        run_scan(case, ScanEngine(model, device="cpu", workers=1), list_entries([tmp_path / "photos"], False))
        (row,) = case.rows("spread")
        tiles = case.tiles_for(row.file_id, "spread")
    return path, row, tiles, picture


def test_the_flagged_page_shows_the_tile_map_with_its_scale(tiled_case, tmp_path):
    path, row, tiles, picture = tiled_case
    if row.label == "real":
        pytest.fail(f"the test needs a flagged file; P(fake) {row.p_fake}")
    pdf = tmp_path / "report.pdf"
    build_report(path, pdf, device="cpu")
    text = pdf_text(pdf)
    flat = " ".join(text.split())
    best = max(tiles, key=lambda t: t.p_fake)
    assert "Tile map: each tile's P(fake)" in flat and "Tile map scale: P(fake) 0" in flat
    assert f"the strongest of 12 tiles: at x {best.x}, y {best.y}, 32×32 pixels, P(fake) {best.p_fake:.4f}" in flat
    assert "native-resolution 32×32 tiles every 32 pixels" in flat  # what the model looks at, in Method

    out = tmp_path / "images"
    out.mkdir()
    subprocess.run(["pdfimages", "-png", str(pdf), str(out / "img")], check=True)
    pictures = [np.asarray(Image.open(p).convert("RGB")) for p in sorted(out.glob("img-*.png"))]
    maps = [p for p in pictures if p.shape == (96, 128, 3)]
    shown = maps[-1]  # the flagged page's third picture: image, Grad-CAM, tile map
    for tile in tiles:  # inside each tile: the picture blended with the tile's own colour on the scale
        inside = shown[tile.y + 8:tile.y + 24, tile.x + 8:tile.x + 24].reshape(-1, 3).mean(axis=0)
        colour = tilemap.colours(np.array([tile.p_fake]))[0].astype(float)
        expected = 0.45 * picture[tile.y + 16, tile.x + 16] + 0.55 * colour
        assert np.abs(inside - expected).max() <= 12, (tile, inside, expected)
    assert any(p.shape[0] <= 20 and p.shape[1] >= 300 for p in pictures)  # the colour scale

    pages = tmp_path / "pages"
    pages.mkdir()
    subprocess.run(["pdftoppm", "-png", "-r", "72", str(pdf), str(pages / "p")], check=True)
    strongest = 0.45 * picture[best.y + 16, best.x + 16] + 0.55 * tilemap.colours(np.array([best.p_fake]))[0]
    rendered = [np.asarray(Image.open(p).convert("RGB")).astype(float) for p in sorted(pages.glob("p-*.png"))]
    # drawn on a page: the strongest tile's blended colour covers a patch of it (a 32-pixel tile is ~15 px here)
    assert any((np.abs(page - strongest).max(axis=2) <= 12).sum() > 50 for page in rendered)
