import os
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
REPO = Path(__file__).resolve().parent.parent


def pytest_collection_modifyitems(config, items):
    """`gui` on every test that drives Qt (it asks for qtbot); `gpu` on the CUDA tests. Markers only select:
    the README's `pytest -q` runs everything, `-m "not slow and not gui"` is a quick loop."""
    for item in items:
        if "qtbot" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.gui)
        if item.path.name == "test_cuda.py":
            item.add_marker(pytest.mark.gpu)


@pytest.fixture
def poppler():
    """poppler-utils, to read the PDF reports back: skips without it locally, fails under CI (tests/needs.py)."""
    from tests import needs

    needs.poppler()


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """An isolated user data folder and an empty shipped-models folder for each test."""
    home = tmp_path / "home"
    shipped = tmp_path / "shipped"
    shipped.mkdir()
    monkeypatch.setenv("FORENSIGHT_HOME", str(home))
    monkeypatch.setenv("FORENSIGHT_SHIPPED_MODELS", str(shipped))
    return home


def make_model(library, model_id: str = "tiny", architecture: str = "simple_cnn", num_logits: int = 1,
               seed: int = 0, **card_fields):
    """A small detector built and saved by the test (random weights: for plumbing, not accuracy)."""
    import torch

    from models.card import ModelCard, default_input_spec
    from models.registry import build_model

    torch.manual_seed(seed)
    module = build_model(architecture, num_logits)
    card = ModelCard(id=model_id, name=f"test {model_id}", architecture=architecture, num_logits=num_logits,
                     input=default_input_spec(architecture), **card_fields)
    return library.add(card, module.state_dict())


@pytest.fixture
def tiny_model(home):
    from models.library import ModelLibrary

    return make_model(ModelLibrary())


# ---- several models in one pass (tests/multi_model_data.py) -------------------------------------------------
@pytest.fixture
def two_models(home):
    """A library of two small detectors with different input policies and JPEG draft sizes."""
    from tests.multi_model_data import two_models_library

    return two_models_library()


@pytest.fixture
def folder(tmp_path) -> Path:
    """Pictures of several shapes, a JPEG, a formula-looking name and one file that is not an image."""
    from tests.multi_model_data import fill_folder

    return fill_folder(tmp_path / "photos")


@pytest.fixture
def decodes(monkeypatch) -> list[int]:
    """Every decode the engine makes (one per picture decoded, whatever the number of models)."""
    import models.engine

    calls: list[int] = []
    real = models.engine.decoding

    def counting(data, **kw):
        calls.append(len(data))
        return real(data, **kw)

    monkeypatch.setattr(models.engine, "decoding", counting)
    return calls


# The offline held-out subset shipped with the tests, on which the shipped models' cards are re-checked
HOLDOUT = REPO / "tests" / "data" / "starter_holdout"
TOLERANCE = 0.01  # CPU kernels may differ in the last bits between machines; the subset has 120 images


@pytest.fixture
def shipped_library(tmp_path, monkeypatch):
    """The library as a new user has it: the shipped models and an empty user folder."""
    from models.library import ModelLibrary

    monkeypatch.setenv("FORENSIGHT_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("FORENSIGHT_SHIPPED_MODELS", raising=False)
    return ModelLibrary()
