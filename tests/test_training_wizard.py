"""Models → Train a model…: the wizard as a user drives it, with real training on a small dataset on disk."""
from pathlib import Path

import pytest

import pytestqt  # noqa: E402,F401  a dev dependency: missing, the GUI tests must fail, not skip
from PySide6.QtCore import Qt  # noqa: E402
from PySide6.QtWidgets import QWizard  # noqa: E402

from models.library import ModelLibrary  # noqa: E402
from tests.conftest import make_model  # noqa: E402
from tests.datasets import make_trace_dataset  # noqa: E402
from tests.test_gui import open_window  # noqa: E402

TRAIN_TIMEOUT_MS = 180_000


@pytest.fixture(scope="module")
def trace_data(tmp_path_factory):
    return make_trace_dataset(tmp_path_factory.mktemp("trace"), per_class=150)


def choose_data(qtbot, wizard, folder) -> None:
    page = wizard.data_page
    page.set_folder(folder)
    qtbot.waitUntil(page.isComplete, timeout=30_000)
    assert wizard.button(QWizard.WizardButton.NextButton).isEnabled()
    wizard.next()


def fill_recipe(wizard, name: str, epochs: int) -> None:
    page = wizard.recipe_page
    page.recipe.setCurrentText("cifake_cnn")
    page.name.setText(name)
    page.epochs.setValue(epochs)
    page.workers.setValue(0)
    page.lr.setValue(0.001)
    page.device.setCurrentText("cpu")


def start_training(qtbot, folder, name: str, epochs: int, batch_size: int | None = None):
    """Open the wizard from a fresh window, choose the data and the recipe, press Train."""
    window = open_window(qtbot)
    wizard = window.train_model()
    choose_data(qtbot, wizard, folder)
    fill_recipe(wizard, name, epochs=epochs)
    if batch_size:
        wizard.recipe_page.batch_size.setValue(batch_size)
    wizard.next()
    return window, wizard


def test_wizard_trains_a_model_into_the_library_and_makes_it_the_default(qtbot, home, trace_data):
    window = open_window(qtbot)
    wizard = window.train_model()
    choose_data(qtbot, wizard, trace_data)
    assert "300 images: 150 real, 150 fake" in wizard.data_page.summary.text()

    fill_recipe(wizard, "wizard-trace", epochs=3)
    wizard.next()  # "Train": the job starts on a worker thread
    page = wizard.train_page
    assert wizard.currentPage() is page and page.is_running()
    qtbot.waitUntil(page.isComplete, timeout=TRAIN_TIMEOUT_MS)

    assert [x for x, _ in page.chart.points("val_accuracy")] == [1.0, 2.0, 3.0]
    assert len(page.chart.points("train_loss")) == 3
    assert "epoch 3/3" in page.log.toPlainText() and "wizard-trace is in the library" in page.status.text()
    entry = ModelLibrary().get("wizard-trace")  # the same card `forensight train` writes
    assert entry.card.provenance["recipe"]["name"] == "cifake_cnn"
    assert entry.card.provenance["recipe"]["epochs"] == 3
    assert entry.card.provenance["data"]["all"]["count"] == 300
    assert entry.card.trained_on.endswith("(150 real, 150 fake)")
    assert window.toolbar.model_picker.findData("wizard-trace") >= 0  # offered for scanning at once

    wizard.next()
    assert "Accuracy" in wizard.result_page.card_view.toPlainText()
    wizard.result_page.make_default.setChecked(True)
    wizard.accept()
    assert ModelLibrary().default_id() == "wizard-trace"
    assert window.picked_model_id() == "wizard-trace"
    assert window.training_wizard is None


def test_stop_keeps_the_best_checkpoint_and_resume_finishes(qtbot, home, trace_data):
    window = open_window(qtbot)
    wizard = window.train_model()
    choose_data(qtbot, wizard, trace_data)
    fill_recipe(wizard, "stopped", epochs=4)
    page = wizard.train_page
    wizard.next()
    worker = page.worker

    def stop_after_epoch_one(values):  # runs in the training thread, so the stop lands in epoch 2 for sure
        event, = values
        if event.kind == "epoch_end" and event.epoch == 1:
            worker.stop()

    worker.progressed.connect(stop_after_epoch_one, Qt.ConnectionType.DirectConnection)
    qtbot.waitUntil(lambda: not page.is_running(), timeout=TRAIN_TIMEOUT_MS)

    assert page.outcome.result.status == "cancelled" and page.outcome.result.best_epoch == 1
    assert not page.isComplete()
    assert page.resume_button.isVisible() and "Stopped" in page.status.text()
    assert (wizard.job.run_dir / "best.safetensors").is_file()
    assert "stopped" not in [e.card.id for e in ModelLibrary().entries()]

    page.resume_button.click()
    qtbot.waitUntil(page.isComplete, timeout=TRAIN_TIMEOUT_MS)
    assert [row["epoch"] for row in page.outcome.result.history] == [1, 2, 3, 4]
    assert [x for x, _ in page.chart.points("val_loss")] == [1.0, 2.0, 3.0, 4.0]
    assert ModelLibrary().get("stopped").card.provenance["recipe"]["epochs"] == 4


def test_a_folder_without_real_and_fake_and_a_taken_name_are_refused(qtbot, home, tmp_path, trace_data):
    window = open_window(qtbot)
    wizard = window.train_model()
    (tmp_path / "cats").mkdir()
    wizard.data_page.set_folder(tmp_path)
    qtbot.waitUntil(lambda: "Not usable" in wizard.data_page.summary.text(), timeout=30_000)
    assert "real/ and fake/" in wizard.data_page.summary.text()
    assert not wizard.button(QWizard.WizardButton.NextButton).isEnabled()

    choose_data(qtbot, wizard, trace_data)
    fill_recipe(wizard, "Bad Name!", epochs=1)
    wizard.next()
    assert wizard.currentPage() is wizard.recipe_page and "must be" in wizard.recipe_page.error.text()
    make_model(ModelLibrary(), "taken")
    fill_recipe(wizard, "taken", epochs=1)
    wizard.next()
    assert wizard.currentPage() is wizard.recipe_page and "already exists" in wizard.recipe_page.error.text()


def test_check_data_shows_the_inspection_report(qtbot, home, trace_data):
    window = open_window(qtbot)
    wizard = window.train_model()
    wizard.data_page.set_folder(trace_data)
    qtbot.waitUntil(wizard.data_page.isComplete, timeout=30_000)
    wizard.data_page.check_button.click()
    qtbot.waitUntil(lambda: "Reading every file" not in wizard.data_page.report.toPlainText(), timeout=60_000)
    report = wizard.data_page.report.toPlainText()
    assert "real" in report and "fake" in report and "shortcut" in report.lower()


def test_a_run_that_fails_says_why_and_leads_back_to_the_settings(qtbot, home, tmp_path):
    for name in ("real", "fake"):  # names an image would have, contents no decoder accepts
        (tmp_path / "broken" / name).mkdir(parents=True)
        for i in range(4):
            (tmp_path / "broken" / name / f"{i}.png").write_bytes(b"not a picture")
    window, wizard = start_training(qtbot, tmp_path / "broken", "never", 1)
    page = wizard.train_page
    qtbot.waitUntil(lambda: not page.is_running(), timeout=TRAIN_TIMEOUT_MS)
    assert page.failed_reason and "Training failed" in page.status.text()
    assert page.settings_button.isVisible() and not page.resume_button.isVisible() and not page.isComplete()
    page.settings_button.click()
    assert wizard.currentPage() is wizard.data_page and wizard.data_page.dataset is not None


def test_closing_the_wizard_mid_training_stops_it_and_trains_nothing(qtbot, home, trace_data):
    window, wizard = start_training(qtbot, trace_data, "abandoned", 200)
    page = wizard.train_page
    qtbot.waitUntil(lambda: len(page.chart.points("val_loss")) >= 1, timeout=TRAIN_TIMEOUT_MS)
    runs = page.runs
    wizard.reject()
    assert window.training_wizard is None
    qtbot.waitUntil(lambda: not runs.busy(), timeout=TRAIN_TIMEOUT_MS)  # it stops on its own, within a batch
    assert "abandoned" not in [e.card.id for e in ModelLibrary().entries()]


def test_closing_never_waits_for_a_step_that_cannot_be_interrupted(qtbot, home, trace_data, monkeypatch):
    import threading

    import app.ui.training.wizard as training_wizard
    import training.inspect_data as inspect_data

    release = threading.Event()  # holds the background work in a step that ignores Stop until the test lets go
    monkeypatch.setattr(training_wizard, "run_training", lambda *args, **kwargs: release.wait(60))
    monkeypatch.setattr(inspect_data, "inspect_dataset", lambda *args, **kwargs: release.wait(60) and {})
    window, wizard = start_training(qtbot, trace_data, "stuck", 1)
    runs = wizard.train_page.runs
    wizard.reject()  # returns while the run is still busy: the window is never frozen
    assert runs.busy() and window.training_wizard is None
    release.set()
    qtbot.waitUntil(lambda: not runs.busy(), timeout=30_000)

    release.clear()
    wizard = window.train_model()
    wizard.data_page.set_folder(trace_data)
    qtbot.waitUntil(wizard.data_page.isComplete, timeout=30_000)
    wizard.data_page.check_button.click()
    tasks = wizard.tasks
    wizard.reject()
    assert tasks.busy() and window.training_wizard is None
    release.set()
    qtbot.waitUntil(lambda: not tasks.busy(), timeout=30_000)  # the check ends unseen, nothing is touched


@pytest.mark.slow
def test_the_new_model_is_evaluated_on_the_datas_own_test_split(qtbot, home, tmp_path):
    make_trace_dataset(tmp_path / "data" / "train", per_class=150, seed=0)
    make_trace_dataset(tmp_path / "data" / "test", per_class=40, seed=1)
    window, wizard = start_training(qtbot, tmp_path / "data", "with-test", 10, batch_size=16)
    qtbot.waitUntil(wizard.train_page.isComplete, timeout=TRAIN_TIMEOUT_MS)
    wizard.next()
    page = wizard.result_page
    assert page.eval_folder.text() == str(tmp_path / "data")  # its test/ split was never trained on
    page.sweeps.setChecked(True)
    page.eval_button.click()
    qtbot.waitUntil(lambda: page.evaluation is not None, timeout=TRAIN_TIMEOUT_MS)
    report = page.evaluation
    assert report["data"]["split"] == "test" and report["data"]["count"] == 80
    assert report["metrics"]["accuracy"] > 0.5  # learnt something beyond chance on unseen images
    shown = page.card_view.toPlainText()
    assert "Evaluation on held-out images" in shown and "test split: 80 images" in shown
    assert f"{report['metrics']['accuracy']:.3f}" in shown
    assert Path(report["files"]["roc"]).is_file() and Path(report["files"]["roc"]).is_relative_to(home)
    assert set(report["robustness"]) == {"jpeg_quality", "blur_sigma", "downscale"}
    assert Path(report["files"]["robustness"]).is_file() and "Robustness" in shown


def test_evaluating_on_the_training_images_is_refused(qtbot, home, trace_data):
    window, wizard = start_training(qtbot, trace_data, "no-test", 1)
    qtbot.waitUntil(wizard.train_page.isComplete, timeout=TRAIN_TIMEOUT_MS)
    wizard.next()
    page = wizard.result_page
    assert page.eval_folder.text() == ""
    page.eval_folder.setText(str(trace_data))
    page.eval_button.click()
    assert "training images" in page.eval_status.text() and page.evaluation is None
