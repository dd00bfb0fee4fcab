"""Models → Train a model… with the linear_probe recipe: the wizard asks for the image tower, hides what a probe
does not use, and fits the probe through the same path as `forensight train`."""
import pytestqt  # noqa: F401  a dev dependency: missing, the GUI tests must fail, not skip

from tests.needs import dependency

open_clip = dependency("open_clip")  # a project dependency: skipped locally, a failure in CI when missing

from models.library import ModelLibrary  # noqa: E402
from tests.test_linear_probe import tiny_tower, tinted_dataset  # noqa: E402
from tests.test_training_wizard import TRAIN_TIMEOUT_MS, choose_data  # noqa: E402
from tests.test_gui import open_window  # noqa: E402


def test_wizard_fits_a_linear_probe_on_a_tower_file(qtbot, home, tmp_path):
    tower = tmp_path / "tiny_openclip.bin"
    tiny_tower(tower)
    data = tinted_dataset(tmp_path / "data", 30, seed=0)
    window = open_window(qtbot)
    wizard = window.train_model()
    choose_data(qtbot, wizard, data)
    page = wizard.recipe_page
    page.recipe.setCurrentText("linear_probe")
    assert page.form.isRowVisible(page.tower_row) and not page.form.isRowVisible(page.epochs)
    page.name.setText("wizard-probe")
    page.workers.setValue(0)
    page.device.setCurrentText("cpu")
    wizard.next()  # no tower yet: refused on the page, nothing starts
    assert wizard.currentPage() is page and "needs a tower" in page.error.text()

    page.tower.setText(str(tower))
    wizard.next()
    train_page = wizard.train_page
    qtbot.waitUntil(train_page.isComplete, timeout=TRAIN_TIMEOUT_MS)
    assert "features: 60 computed, 0 reused from the cache" in train_page.log.toPlainText()
    assert len(train_page.chart.points("val_accuracy")) == 1
    card = ModelLibrary().get("wizard-probe").card
    assert (card.family, card.architecture) == ("probe", "tower_linear")
    assert card.provenance["recipe"]["tower"] == str(tower)
    assert window.toolbar.model_picker.findData("wizard-probe") >= 0
    wizard.next()
    assert "Accuracy" in wizard.result_page.card_view.toPlainText()

    page.recipe.setCurrentText("cifake_cnn")  # back to a network recipe: its own rows again
    assert not page.form.isRowVisible(page.tower_row) and page.form.isRowVisible(page.epochs)
