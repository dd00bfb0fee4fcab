"""Models → Manage models → Add a known detector…: the catalogue with what is installed, importing a downloaded
file of a family, and asking which label means fake when a Hugging Face model's labels do not say."""
import json

import torch

import pytestqt  # noqa: E402,F401  a dev dependency: missing, the GUI tests must fail, not skip

from app.ui.models.model_manager import ModelManagerDialog  # noqa: E402
from models.library import ModelLibrary  # noqa: E402
from models.registry import build_model  # noqa: E402
from tests.needs import dependency  # noqa: E402  transformers: skipped locally, a failure in CI when missing


def test_known_detectors_show_the_catalogue_and_import_a_family(qtbot, home, tmp_path):
    manager = ModelManagerDialog(ModelLibrary())
    qtbot.addWidget(manager)
    known = manager.show_known_detectors()
    statuses = known.statuses()
    assert statuses["npr"] == statuses["cnndetection"] == "not installed"
    assert statuses["univfd"] == "not installed"
    assert statuses["probe"] == "trained, not imported: Models > Train a model…, recipe linear_probe"
    known.detector_list.setCurrentRow(known.detector_list.count() - 1)  # the studies that compared them
    assert "Independent benchmarks" in known.details.toPlainText()
    assert "Flux Dev, Firefly v4, Midjourney v7" in known.details.toPlainText()
    assert not known.file_button.isEnabled() and not known.folder_button.isEnabled()
    known.detector_list.setCurrentRow(list(known.rows).index("probe"))
    assert "Independent results" in known.details.toPlainText() and "Zhou et al. 2025" in known.details.toPlainText()
    known.detector_list.setCurrentRow(list(known.rows).index("npr"))
    assert "Tan et al." in known.details.toPlainText() and "NPR.pth" in known.details.toPlainText()
    assert known.file_button.isEnabled() and not known.folder_button.isEnabled()

    torch.save(build_model("npr_resnet50", 1).state_dict(), tmp_path / "downloaded.pth")  # renamed on the way
    with qtbot.waitSignal(manager.import_finished, timeout=60_000) as finished:
        known.import_download(tmp_path / "downloaded.pth")  # the family chosen in the list decides
    assert finished.args == [True]
    assert known.statuses()["npr"] == "installed: npr-downloaded"
    card_text = manager.card_view.toPlainText()
    assert "Family" in card_text and "NPR (Tan et al. 2024)" in card_text
    assert "the whole picture squashed to 256×256" in card_text


def test_hugging_face_labels_that_say_nothing_are_asked(qtbot, home, tmp_path, monkeypatch):
    transformers = dependency("transformers")
    torch.manual_seed(0)
    config = transformers.ViTConfig(image_size=32, patch_size=8, hidden_size=16, num_hidden_layers=1,
                                    num_attention_heads=2, intermediate_size=32, num_labels=2)
    transformers.ViTForImageClassification(config).save_pretrained(tmp_path / "anonymous")
    manager = ModelManagerDialog(ModelLibrary())
    qtbot.addWidget(manager)
    asked = []
    monkeypatch.setattr(manager, "ask_fake_label", lambda name, labels: asked.append(labels) or "LABEL_1")
    with qtbot.waitSignal(manager.import_finished, timeout=60_000) as finished:
        manager.import_model(tmp_path / "anonymous")
    assert finished.args == [True] and asked == [["LABEL_0", "LABEL_1"]]
    card = json.loads((home / "models" / "anonymous" / "card.json").read_text())
    assert card["family"] == "huggingface" and card["family_config"]["fake_labels"] == [1]


def test_the_manager_changes_how_one_of_your_models_looks_at_a_picture(qtbot, home):
    from PySide6.QtWidgets import QMessageBox

    from tests.conftest import make_model

    make_model(ModelLibrary(), "mine")  # simple_cnn: tiles fit it, the whole picture does not
    manager = ModelManagerDialog(ModelLibrary())
    qtbot.addWidget(manager)
    assert manager.policy_box.isEnabled() and manager.policy_box.currentText() == "resize"  # simple_cnn's own
    manager.set_selected_policy("tiles")
    assert ModelLibrary().get("mine").card.input.policy == "tiles"  # written to the card, as `models set` does
    assert "rescores" in manager.status.text()
    manager.set_selected_policy("full")
    assert manager.findChild(QMessageBox, "errorBox") is not None
    assert ModelLibrary().get("mine").card.input.policy == "tiles" == manager.policy_box.currentText()
