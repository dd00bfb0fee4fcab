"""The shipped starter model: in the library with no step, honestly labelled, and its card's numbers hold."""
import re

import pytest

from training.evaluate import evaluate
from training.inspect_data import inspect_dataset
from tests.commands import run_cli
from tests.conftest import HOLDOUT, REPO, TOLERANCE

STARTER = "starter-effnet-lite0"


def test_the_older_starter_stays_in_the_library_as_a_named_older_version(shipped_library):
    """Cases scanned with it stay reproducible: same id, same weights, no longer the default."""
    from models.card import sha256_file

    entry = shipped_library.get(STARTER)
    assert entry.shipped and not entry.card.default and "older version" in entry.card.name
    assert sha256_file(entry.weights_path) == entry.card.weights_sha256
    assert entry.weights_path.stat().st_size < 30 * 2**20
    card = entry.card
    assert "diffusion" in card.limitations and "social networks" in card.limitations
    assert "stronger detector" in card.limitations
    assert card.metrics["test"]["n"] > 0 and set(card.metrics["test_per_generator"]) == {
        "dcgan_faces", "painted_eyes", "realesrgan"}


def test_card_numbers_hold_on_the_shipped_holdout(shipped_library, tmp_path):
    model = shipped_library.load(STARTER)
    report = evaluate(model, HOLDOUT, tmp_path / "eval", split="all", device="cpu", sweeps=False)
    expected = model.card.metrics["holdout_subset"]
    got = report["metrics"]
    assert got["n"] == expected["n"] == 120
    for key in ("accuracy", "average_precision", "roc_auc", "balanced_accuracy"):
        assert got[key] == pytest.approx(expected[key], abs=TOLERANCE), key
    assert got["accuracy"] > 0.75  # well above the 0.5 of chance on this balanced subset


def test_holdout_has_no_format_size_or_aspect_shortcut():
    report = inspect_dataset(HOLDOUT)
    assert report["shortcuts"] == [], report["shortcuts"]


def test_readme_first_command_scans_the_samples(tmp_path, monkeypatch):
    monkeypatch.setenv("FORENSIGHT_HOME", str(tmp_path / "home"))  # a new user's: the shipped models only
    monkeypatch.delenv("FORENSIGHT_SHIPPED_MODELS", raising=False)
    run = run_cli("scan", "resources/samples", "--recursive", "-q", cwd=REPO)
    assert run.returncode == 0, run.stderr
    assert "Model modern-effnet-lite1" in run.stderr  # the default since the modern detector shipped
    samples = [p for p in (REPO / "resources" / "samples").rglob("*") if p.is_file()]
    assert f"Scanned {len(samples)} of {len(samples)} files" in run.stdout
    assert re.search(r"unreadable\s+0\n", run.stdout)


@pytest.mark.slow
@pytest.mark.parametrize("policy", ["tiles/max", "ten_crop/mean_logit"])
def test_the_cards_policy_comparison_holds_on_the_shipped_holdout(shipped_library, tmp_path, policy):
    """The card ships the policy its measurement chose, and the numbers it gives for the others can be re-checked."""
    from dataclasses import replace

    from models.library import LoadedModel
    from tools.measure_policies import POLICIES

    model = shipped_library.load(STARTER)
    comparison = model.card.metrics["input_policy_comparison"]
    assert comparison["shipped"] == model.card.input.policy == "center_crop"
    assert {"test", "holdout_subset", "logo_dcgan_faces", "logo_painted_eyes", "logo_realesrgan"} <= set(
        comparison["results"][policy])
    card = replace(model.card, input=replace(model.card.input, **dict(POLICIES)[policy]))
    report = evaluate(LoadedModel(card, model.module), HOLDOUT, tmp_path / "eval", split="all", device="cpu",
                      sweeps=False)
    expected = comparison["results"][policy]["holdout_subset"]
    for key in ("accuracy", "average_precision", "roc_auc"):
        assert report["metrics"][key] == pytest.approx(expected[key], abs=TOLERANCE), key
