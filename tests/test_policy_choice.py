"""A user chooses how each model looks at a picture: on import, with `models set`, and with --set for training;
evaluation scores with the same policy as a scan."""
import csv
import json

import pytest
from safetensors.torch import save_file

from app.cli.models import POLICY_CHOICES
from models.card import INPUT_POLICIES, CardError
from models.library import ModelLibrary
from models.registry import build_model
from tests.commands import run_in_process
from tests.conftest import make_model
from tests.datasets import make_trace_dataset
from training.evaluate import evaluate
from training.recipes import get_recipe
from training.trainer import fit, input_spec_for


forensight = run_in_process


def test_the_cli_offers_every_policy_of_the_card():
    assert POLICY_CHOICES == INPUT_POLICIES


def test_models_set_changes_the_policy_of_a_users_model(home, capsys):
    make_model(ModelLibrary(), "mine", "resnet18", num_logits=2)
    code, out, err = forensight(capsys, "models", "set", "mine", "input.policy=tiles", "input.max_tiles=16",
                                "input.aggregation=mean_logit", "input.tile_stride=112")
    assert code == 0, err
    assert "native-resolution 224×224 tiles every 112 pixels" in out
    spec = ModelLibrary().get("mine").card.input
    assert (spec.policy, spec.max_tiles, spec.aggregation, spec.tile_stride) == ("tiles", 16, "mean_logit", 112)


@pytest.mark.parametrize("setting,says", [
    ("input.max_tiles=0", "card field input.max_tiles is 0"),
    ("input.policy=zoom", "card field input.policy is \"zoom\""),
    ("input.size=64", "input.size cannot be set"),
    ("input.top_k=many", "input.top_k expects a whole number"),
    ("policy", "expected FIELD=VALUE"),
])
def test_a_bad_setting_is_one_line_and_changes_nothing(home, capsys, setting, says):
    make_model(ModelLibrary(), "mine", "resnet18", num_logits=2)
    before = ModelLibrary().get("mine").card
    code, _out, err = forensight(capsys, "models", "set", "mine", setting)
    assert code == 2 and says in err and len(err.strip().splitlines()) == 1, err
    assert ModelLibrary().get("mine").card == before


def test_a_shipped_model_is_not_changed_in_place(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FORENSIGHT_HOME", str(tmp_path / "home"))  # the shipped models stay visible
    code, _out, err = forensight(capsys, "models", "set", "starter-effnet-lite0", "input.policy=center_crop")
    assert code == 2 and "read-only: import a copy" in err


def test_import_takes_a_policy(home, tmp_path, capsys):
    save_file(build_model("resnet18", 2).state_dict(), tmp_path / "net.safetensors")
    code, _out, err = forensight(capsys, "models", "import", tmp_path / "net.safetensors", "--policy", "ten_crop")
    assert code == 0, err
    assert ModelLibrary().get("net").card.input.policy == "ten_crop"


def test_training_sets_the_cards_scan_policy_with_set(tmp_path):
    recipe = get_recipe("cifake_cnn").with_overrides({"input.policy": "tiles", "input.tile-stride": "16",
                                                      "input.aggregation": "top_k_mean", "input.top_k": "2"})
    spec = input_spec_for(recipe)
    assert (spec.policy, spec.tile_stride, spec.aggregation, spec.top_k, spec.size) == ("tiles", 16, "top_k_mean", 2, 32)
    assert recipe.to_dict()["scan_input"] == {"policy": "tiles", "tile_stride": 16, "aggregation": "top_k_mean",
                                              "top_k": 2}  # the card's provenance says how it was chosen
    with pytest.raises(ValueError, match="input.size cannot be set"):
        recipe.with_overrides({"input.size": "64"})
    with pytest.raises(CardError, match="simple_cnn takes only its own input size"):  # before any training
        input_spec_for(recipe.with_overrides({"input.policy": "full"}))


def test_evaluation_and_its_sweeps_score_with_the_cards_policy(home, tmp_path):
    data = make_trace_dataset(tmp_path / "data", per_class=12, size=64)  # 64 px: four 32-pixel tiles each
    recipe = get_recipe("cifake_cnn").with_overrides({"epochs": 1, "workers": 0, "input.policy": "tiles",
                                                      "input.aggregation": "mean_logit"})
    result = fit(recipe, data, run_dir=tmp_path / "run")
    assert result.card.input.policy == "tiles"
    model = ModelLibrary().load(ModelLibrary().add(result.card, result.state))
    report = evaluate(model, data, tmp_path / "eval", split="all", device="cpu", sweep_images=None)

    with open(tmp_path / "eval" / "predictions.csv", encoding="utf-8") as handle:
        scan = {row["path"]: float(row["p_fake"]) for row in csv.DictReader(handle)}
    with open(tmp_path / "eval" / "robustness_predictions.csv", encoding="utf-8") as handle:
        unblurred = {row["path"]: float(row["p_fake"]) for row in csv.DictReader(handle)
                     if row["sweep"] == "blur_sigma" and float(row["value"]) == 0}
    assert len(unblurred) == 24 and report["metrics"]["n"] == 24
    assert unblurred == pytest.approx(scan, abs=2e-6)  # the sweep's σ=0 point is the scan itself
    assert json.loads(json.dumps(report["model"]))["id"] == result.card.id
