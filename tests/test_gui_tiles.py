"""The tile map in the desktop app: a toggle beside Grad-CAM, a colour scale, and the tile under the pointer."""
from pathlib import Path

import numpy as np
import pytestqt  # noqa: F401  a dev dependency: missing, the GUI tests must fail, not skip
from PySide6.QtCore import QEvent, QPointF, Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QApplication

from app.case.store import Case
from models import tilemap
from models.input_settings import set_model_input
from models.library import ModelLibrary
from tests import images
from tests.conftest import make_model
from tests.test_gui import open_window, scan


def hover(viewer, x: float, y: float) -> None:
    """The pointer over picture pixel (x, y), as a mouse would put it there (no button held)."""
    at = QPointF(viewer.mapFromScene(QPointF(x, y)))
    event = QMouseEvent(QEvent.Type.MouseMove, at, viewer.viewport().mapToGlobal(at), Qt.MouseButton.NoButton,
                        Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(viewer.viewport(), event)


def pixel(pixmap, x: int, y: int) -> tuple[int, int, int, int]:
    colour = pixmap.toImage().pixelColor(x, y)
    return colour.red(), colour.green(), colour.blue(), colour.alpha()


def test_the_tile_map_shows_each_tiles_score_where_it_lies(qtbot, home, tmp_path):
    library = ModelLibrary()
    make_model(library, "cnn", "simple_cnn", num_logits=2, seed=7)
    set_model_input(library, "cnn", {"policy": "tiles"})
    library.set_default("cnn")
    (tmp_path / "photos").mkdir()
    images.gradient(128, 96, seed=3).save(tmp_path / "photos" / "a.png")  # 4 × 3 tiles of 32 pixels
    window = open_window(qtbot)
    scan(qtbot, window, tmp_path / "photos")
    with Case(window.case.path) as case:
        (row,) = case.rows("cnn")
        tiles = case.tiles_for(row.file_id, "cnn")
    assert len(tiles) == 12

    window.results.table.selectRow(0)
    detail = window.detail
    qtbot.waitUntil(lambda: not detail.viewer.image_pixmap().isNull(), timeout=10_000)
    assert not detail.viewer.tile_map_shown() and not detail.tile_scale.isVisibleTo(detail)
    detail.tiles_box.setChecked(True)
    assert detail.viewer.tile_map_shown() and detail.tile_scale.isVisibleTo(detail)
    assert detail.overlay_box.parent() is detail.tiles_box.parent()  # beside the Grad-CAM toggle

    layer = detail.viewer.tile_map_pixmap()
    assert (layer.width(), layer.height()) == (128, 96)
    for tile in tiles:  # each tile's colour is its own P(fake) on the scale (inside, away from the frame)
        r, g, b, alpha = pixel(layer, tile.x + tile.w // 2, tile.y + tile.h // 2)
        expected = tilemap.colours(np.array([tile.p_fake]))[0].astype(int)
        assert np.abs(np.array([r, g, b]) - expected).max() <= 2 and alpha > 100  # ±2: premultiplied alpha

    weakest = min(tiles, key=lambda t: t.p_fake)
    hover(detail.viewer, weakest.x + 5, weakest.y + 5)
    assert detail.hover_label.text() == f"tile ({weakest.x}, {weakest.y}) 32×32: P(fake) {weakest.p_fake:.3f}"
    best = max(tiles, key=lambda t: t.p_fake)
    assert f"P(fake) {best.p_fake:.3f}" in detail.status.text()  # the strongest is named

    detail.tiles_box.setChecked(False)
    assert not detail.viewer.tile_map_shown() and detail.hover_label.text() == ""


def test_a_row_scanned_before_tiles_existed_says_why_it_has_no_map(qtbot, home, tmp_path):
    make_model(ModelLibrary(), "cnn", "simple_cnn", num_logits=2)
    (tmp_path / "photos").mkdir()
    images.gradient(64, 64).save(tmp_path / "photos" / "a.png")
    window = open_window(qtbot)
    scan(qtbot, window, tmp_path / "photos")
    with Case(window.case.path) as case:
        case.db.execute("DELETE FROM tiles")  # as a case upgraded from version 2
        case.db.commit()
    window.results.table.selectRow(0)
    detail = window.detail
    window._show_detail(detail.current_row())
    qtbot.waitUntil(lambda: not detail.viewer.image_pixmap().isNull(), timeout=10_000)
    detail.tiles_box.setChecked(True)
    assert not detail.viewer.tile_map_shown() and "No tile map" in detail.status.text()
    assert Path(detail.current_row().path).name == "a.png"
