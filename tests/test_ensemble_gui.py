"""The desktop app with an ensemble: created in the model manager (Create ensemble…, the same job as `forensight
ensemble create`, on a worker thread), its card listing the members, and a scan with it showing its column while
the detail view shows every member's score and offers the members' Grad-CAM (the ensemble has no network)."""
from pathlib import Path

import pytest

import pytestqt  # noqa: F401  a dev dependency: missing, the GUI tests must fail, not skip
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication, QMessageBox

from app.case.store import Case
from app.services.ensemble import EnsembleRequest
from app.ui.models.ensemble_dialog import EnsembleDialog
from app.ui.main_window import MainWindow
from app.ui.models.model_manager import ModelManagerDialog
from models.library import ModelLibrary
from tests.multi_model_data import FILES, add_model

TIMEOUT_MS = 60_000


@pytest.fixture
def library(home) -> ModelLibrary:
    library = ModelLibrary()
    add_model(library, "alpha", 0)
    add_model(library, "beta", 1, policy="resize_center_crop", resize=40)
    return library


def test_create_an_ensemble_in_the_model_manager_and_scan_with_it(qtbot, library, folder):
    manager = ModelManagerDialog(ModelLibrary())
    qtbot.addWidget(manager)
    assert manager.ensemble_button.isEnabled()
    dialog = EnsembleDialog(library.entries(), manager)  # what the button opens, filled in as a user would
    qtbot.addWidget(dialog)
    assert dialog.request() is None  # no id yet
    dialog.model_id.setText("duo")
    dialog.tick("alpha")
    dialog.tick("beta")
    request = dialog.request()
    assert request == EnsembleRequest("duo", ("alpha", "beta"), "mean_logit")

    with qtbot.waitSignal(manager.ensemble_finished, timeout=TIMEOUT_MS) as finished:
        manager.create_ensemble(request)
    assert finished.args == [True] and manager.selected_id() == "duo"
    text = manager.card_view.toPlainText()
    assert "Ensemble — mean_logit" in text and "alpha" in text and "beta" in text and "own P(fake)" in text
    assert not manager.calibrate_button.isEnabled() and not manager.policy_box.isEnabled()
    dialog = EnsembleDialog(ModelLibrary().entries(), manager)  # an ensemble is never offered as a member
    assert [dialog.members.item(i).data(Qt.ItemDataRole.UserRole) for i in range(dialog.members.count())] == \
        ["alpha", "beta"]

    window = MainWindow()
    qtbot.addWidget(window)
    window.show()
    window.toolbar.model_picker.setCurrentIndex(window.toolbar.model_picker.findData("duo"))
    window.open_folder(folder)
    window.start_scan()
    qtbot.waitUntil(lambda: not window.is_scanning(), timeout=TIMEOUT_MS)
    assert window.last_summary is not None and list(window.last_summary.tallies) == ["duo", "alpha", "beta"]
    with Case(window.case.path, readonly=True) as case:
        rows = {m: {Path(r.path).name: r for r in case.rows(m)} for m in ("duo", "alpha", "beta")}
    assert all(len(r) == FILES for r in rows.values())
    shown = {Path(row.path).name: row for row in window.results.shown_rows()}
    assert window.shown_model_id == "duo" and len(shown) == FILES
    assert all(shown[name].p_fake == row.p_fake and shown[name].model_id == "duo" for name, row in rows["duo"].items())

    row = shown["p1.png"]
    with qtbot.waitSignal(window.detail.preview_ready, timeout=TIMEOUT_MS):
        window._show_detail(row)
    facts = window.detail.facts.toPlainText()
    for model_id in ("alpha", "beta"):
        assert f"({model_id})" in facts and f"{rows[model_id]['p1.png'].p_fake:.3f}" in facts
    assert "(duo, ensemble)" in facts
    combo = window.detail.explain_model
    # Grad-CAM of an ensemble row: one of its members (the ensemble has no network), the first one chosen
    assert [combo.itemText(i) for i in range(combo.count())] == ["alpha", "beta"] and combo.isVisibleTo(window.detail)
    assert window.detail._explain_request().model_id == "alpha"
    with qtbot.waitSignal(window.detail.overlay_ready, timeout=TIMEOUT_MS):
        window.detail.overlay_box.setChecked(True)
    assert "Grad-CAM of alpha" in window.detail.status.text()
    with qtbot.waitSignal(window.detail.overlay_ready, timeout=TIMEOUT_MS):
        combo.setCurrentIndex(1)
    assert "Grad-CAM of beta" in window.detail.status.text()


def test_a_refused_ensemble_is_explained_and_changes_nothing(qtbot, library):
    manager = ModelManagerDialog(ModelLibrary())
    qtbot.addWidget(manager)
    with qtbot.waitSignal(manager.ensemble_finished, timeout=TIMEOUT_MS) as finished:
        manager.create_ensemble(EnsembleRequest("solo", ("alpha",)))
    assert finished.args == [False] and manager.model_ids() == ["alpha", "beta"]
    boxes = [w for w in QApplication.topLevelWidgets() if isinstance(w, QMessageBox) and w.isVisible()]
    assert boxes and "needs 2 to 8 different members" in boxes[-1].informativeText()
    for box in boxes:
        box.close()
