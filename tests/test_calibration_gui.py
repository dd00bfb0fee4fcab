"""Models → Manage models → Calibrate…: the same calibration as `forensight calibrate`, on a worker thread, with
the new model selected and its calibration and reliability diagram on its card; a refusal is a message box."""
from pathlib import Path

import pytestqt  # noqa: F401  a dev dependency: missing, the GUI tests must fail, not skip
from PySide6.QtWidgets import QApplication, QMessageBox

from app.services.calibration import CalibrationRequest
from app.ui.models.calibrate_dialog import CalibrateDialog
from app.ui.models.model_manager import ModelManagerDialog
from models.library import ModelLibrary
from tests.calibration_data import brightness_model, grey_photos, snapshot


def test_calibrate_from_the_model_manager(qtbot, home, tmp_path):
    brightness_model(ModelLibrary())
    real = grey_photos(tmp_path / "photos" / "real", 60, 100, seed=1)
    fake = grey_photos(tmp_path / "photos" / "fake", 30, 150, seed=2)
    before = snapshot(tmp_path / "photos")
    manager = ModelManagerDialog(ModelLibrary())
    qtbot.addWidget(manager)
    assert manager.selected_id() == "bright" and manager.calibrate_button.isEnabled()

    dialog = CalibrateDialog("bright", manager)  # what the button opens; filled in as a user would
    qtbot.addWidget(dialog)
    assert dialog.request() is None and "299" in dialog.needed.text()  # 1% by default
    dialog.real.setText(str(real))
    dialog.fake.setText(str(fake))
    dialog.target.setValue(5.0)
    request = dialog.request()
    assert request == CalibrationRequest("bright", real, fake, 0.05) and "59" in dialog.needed.text()

    with qtbot.waitSignal(manager.calibration_finished, timeout=120_000) as finished:
        manager.calibrate_selected(request)
        assert not manager.calibrate_button.isEnabled()  # busy while the worker scores
    assert finished.args == [True]
    new_id = manager.selected_id()
    assert new_id.startswith("bright-calibrated-") and set(manager.model_ids()) == {"bright", new_id}
    assert f"New model: {new_id}" in manager.status.text()
    text = manager.card_view.toPlainText()
    assert "Calibration" in text and "calibrated on 60 real and 30 AI-generated photos" in text
    assert "reliability.png" in manager.card_view.toHtml()
    assert snapshot(tmp_path / "photos") == before


def test_a_refused_calibration_is_explained_and_changes_nothing(qtbot, home, tmp_path):
    brightness_model(ModelLibrary())
    real = grey_photos(tmp_path / "real", 20, 100, seed=1)
    manager = ModelManagerDialog(ModelLibrary())
    qtbot.addWidget(manager)
    with qtbot.waitSignal(manager.calibration_finished, timeout=60_000) as finished:
        manager.calibrate_selected(CalibrationRequest("bright", Path(real), target_fpr=0.01))
    assert finished.args == [False] and manager.model_ids() == ["bright"]
    boxes = [w for w in QApplication.topLevelWidgets() if isinstance(w, QMessageBox) and w.isVisible()]
    assert boxes and "at least 299 real photos" in boxes[-1].informativeText()
    for box in boxes:
        box.close()
    assert manager.calibrate_button.isEnabled()
