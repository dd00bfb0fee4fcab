"""Model cards: every field is checked with its allowed range, on import and on load, and a wrong one is refused
with one sentence naming the field, the value and what is allowed — never a traceback, never a card that
breaks every later scan."""
import json
import os

import pytest
from safetensors.torch import save_file

from models.card import CardError, ModelCard
from models.library import ModelLibrary
from models.registry import build_model
from tests.commands import run_cli
from tests.conftest import REPO, make_model


def valid_card() -> dict:
    return {
        "format": "forensight-model-card", "format_version": 1, "id": "good", "name": "A good card",
        "architecture": "simple_cnn", "num_logits": 1, "fake_index": 1,
        "input": {"policy": "resize", "size": 32, "resize": 32, "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5],
                  "interpolation": "bilinear", "background": [255, 255, 255], "jpeg_draft": True},
        "threshold": 0.5, "inconclusive_band": [0.3, 0.7], "weights_file": "weights.safetensors",
        "weights_sha256": "", "description": "", "trained_on": "", "limitations": "",
        "provenance": {}, "metrics": {}, "learning_curve": [], "default": False,
    }


def with_field(path: str, value) -> dict:
    card = valid_card()
    *parents, last = path.split(".")
    target = card
    for key in parents:
        target = target[key]
    target[last] = value
    return card


NAN = float("nan")

# field, bad value, a fragment of the allowed range the message must state
BAD_FIELDS = [
    # the examples of issue 10, finding 13 (and finding 5's std 0)
    ("inconclusive_band", [0.3, 0.5, 0.7], "two numbers"),
    ("input", [1, 2], "an object"),
    ("threshold", "0.5", "a number from 0 to 1"),
    ("input.interpolation", "x", "bilinear, bicubic, lanczos, nearest"),
    ("input.mean", [0.5, 0.5], "three numbers"),
    ("input.size", 20000, "from 16 to 1024"),
    ("input.std", [0, 0, 0], "three numbers"),
    # found in review: math.isfinite(10**400) raised OverflowError, which took down every listing
    ("threshold", 10 ** 400, "a number from 0 to 1"),
    ("input.mean", [10 ** 400, 0.5, 0.5], "three numbers"),
    # and the rest of the card
    ("id", "Not An Id", "1-64 characters"),
    ("id", 7, "1-64 characters"),
    ("name", "", "1 to 256 characters"),
    ("name", ["a list"], "1 to 256 characters"),
    ("name", "n" * 300, "1 to 256 characters"),
    ("architecture", "resnet9000", "efficientnet_lite0, "),  # the known architectures are listed
    ("architecture", ["resnet18"], "one of"),
    ("num_logits", 3, "1 (sigmoid) or 2 (softmax)"),
    ("num_logits", True, "1 (sigmoid) or 2 (softmax)"),
    ("fake_index", 2, "0 or 1"),
    ("input.policy", "stretch", "one of resize, resize_center_crop, center_crop"),
    ("input.size", 8, "from 16 to 1024"),
    ("input.size", "224", "an integer"),
    ("input.size", 32.5, "an integer"),
    ("input.resize", 16, "from input.size (32) to 2048"),
    ("input.resize", 100000, "to 2048"),
    ("input.mean", [0.5, 0.5, NAN], "three numbers"),
    ("input.mean", "0.5", "three numbers"),
    ("input.std", [0.5, 0.5, -0.5], "from 0.001 to 1"),
    ("input.background", [256, 0, 0], "three integers (R, G, B) from 0 to 255"),
    ("input.background", [0.5, 0, 0], "three integers"),
    ("input.jpeg_draft", "yes", "true or false"),
    # issue 12: tiles, full picture, five/ten crops
    ("input.policy", "tiled", "tiles, full, five_crop, ten_crop"),
    ("input.policy", "full", "simple_cnn takes only its own input size (use tiles)"),
    ("input.tile_stride", 0, "null (the tile size) or an integer from 1 to input.size (32)"),
    ("input.tile_stride", 33, "from 1 to input.size (32), so tiles leave no gaps"),
    ("input.tile_stride", "16", "an integer"),
    ("input.max_tiles", 0, "an integer from 1 to 256"),
    ("input.max_tiles", 100_000, "at most 256 tiles"),
    ("input.max_tiles", 2.5, "an integer from 1 to 256"),
    ("input.aggregation", "median", "one of max, mean_logit, top_k_mean"),
    ("input.top_k", 0, "an integer from 1 to input.max_tiles (64)"),
    ("input.top_k", 65, "from 1 to input.max_tiles (64)"),
    ("input.full_max_pixels", 1000, "from input.size² (1,024) to 16,777,216"),
    ("input.full_max_pixels", 10 ** 9, "to 16,777,216"),
    ("input.small_image", "stretch", "one of pad, upscale"),
    ("input.small_image", None, "one of pad, upscale"),
    ("threshold", True, "a number from 0 to 1"),
    ("threshold", 1.5, "a number from 0 to 1"),
    ("threshold", NAN, "a number from 0 to 1"),
    ("inconclusive_band", [0.6, 0.8], "low ≤ threshold (0.5) ≤ high"),
    ("inconclusive_band", "0.3-0.7", "two numbers"),
    ("weights_file", "../outside.safetensors", "a plain file name"),
    ("weights_file", "/etc/passwd", "a plain file name"),
    ("weights_file", ".hidden", "a plain file name"),
    ("weights_sha256", "abc", "64 lowercase hexadecimal digits"),
    ("description", 42, "text of 0 to 20,000 characters"),
    ("limitations", "x" * 20001, "text of 0 to 20,000 characters"),
    ("provenance", ["imported"], "an object"),
    ("metrics", "excellent", "an object"),
    ("learning_curve", {"epoch": 1}, "a list"),
    ("default", "yes", "true or false"),
    ("format_version", "1", "an integer"),
    # issue 11: published detector families
    ("family", "NPR family", "empty or a family name"),
    ("family", 3, "empty or a family name"),
    ("family_config", ["config"], "an object"),
    ("family_config", None, "an object"),
]


@pytest.mark.parametrize("field,value,allowed", BAD_FIELDS, ids=[f"{f}={v!r}"[:40] for f, v, _ in BAD_FIELDS])
def test_a_bad_field_is_refused_naming_field_value_and_range(field, value, allowed):
    with pytest.raises(CardError) as caught:
        ModelCard.from_dict(with_field(field, value))
    message = str(caught.value)
    assert f"card field {field} is " in message
    assert allowed in message
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value == value:
        assert str(value)[:40] in message  # the value the user wrote (its start), so they can find it in the file


def test_a_valid_card_loads_and_unknown_fields_are_ignored():
    data = valid_card()
    data["added_by_a_later_version"] = {"anything": [1, 2]}
    data["input"]["also_new"] = "ignored"
    card = ModelCard.from_dict(data)
    assert (card.input.size, card.inconclusive_band, card.input.mean) == (32, (0.3, 0.7), (0.5, 0.5, 0.5))


def test_a_card_missing_a_required_field_says_which():
    data = valid_card()
    del data["architecture"]
    with pytest.raises(CardError, match="missing the required field.* architecture"):
        ModelCard.from_dict(data)


def test_the_shipped_model_card_validates():
    cards = sorted((REPO / "resources" / "models").glob("*/card.json"))
    assert cards
    for path in cards:
        ModelCard.load(path).validate()


def test_a_card_that_is_not_a_regular_file_is_refused_without_opening_it(tmp_path):
    os.mkfifo(tmp_path / "card.json")  # opening a FIFO for reading blocks until someone writes: never here
    with pytest.raises(CardError, match="is a FIFO"):
        ModelCard.load(tmp_path / "card.json")


@pytest.mark.parametrize("text", ["[" * 100_000, '{"format": 1' + "0" * 5000 + "}"])
def test_pathological_json_is_a_card_error(tmp_path, text):
    (tmp_path / "card.json").write_text(text)
    with pytest.raises(CardError, match="cannot read model card"):
        ModelCard.load(tmp_path / "card.json")


def _forensight(home, *args):
    return run_cli(*args, home=home)  # in-process, as typed (tests/commands.py)


def _card_folder(tmp_path, card: dict):
    folder = tmp_path / "export"
    folder.mkdir()
    save_file(build_model("simple_cnn", 1).state_dict(), folder / "weights.safetensors")
    (folder / "card.json").write_text(json.dumps(card))
    return folder


@pytest.mark.parametrize("field,value", [("input.size", 20000), ("input", [1, 2]), ("threshold", "0.5")])
def test_models_import_of_a_bad_card_exits_2_with_one_line(home, tmp_path, field, value):
    folder = _card_folder(tmp_path, with_field(field, value))
    run = _forensight(home, "models", "import", folder)
    assert run.returncode == 2, run.stderr
    assert "Traceback" not in run.stderr and len(run.stderr.strip().splitlines()) == 1, run.stderr
    assert f"card field {field} is" in run.stderr
    assert ModelLibrary().entries() == []


def test_the_same_card_with_good_fields_imports(home, tmp_path):
    folder = _card_folder(tmp_path, valid_card())
    assert ModelLibrary().import_path(folder).card.id == "good"


def test_a_card_edited_after_import_is_skipped_by_the_listing_and_show_says_why(home):
    library = ModelLibrary()
    make_model(library, "broken")
    make_model(library, "fine")
    card_path = home / "models" / "broken" / "card.json"
    data = json.loads(card_path.read_text())
    data["input"]["std"] = [0, 0, 0]  # would divide by zero: every score NaN
    card_path.write_text(json.dumps(data))

    assert [e.card.id for e in ModelLibrary().entries()] == ["fine"]
    with pytest.raises(CardError, match="model 'broken' cannot be used: card field input.std is"):
        ModelLibrary().load("broken")
    run = _forensight(home, "models", "show", "broken")
    assert run.returncode == 2 and "Traceback" not in run.stderr, run.stderr
    assert "card field input.std is [0, 0, 0]" in run.stderr
    listing = _forensight(home, "models", "list")
    assert listing.returncode == 0 and "fine" in listing.stdout and "broken" not in listing.stdout


def test_a_card_is_validated_before_it_is_saved(home):
    card = ModelCard(id="unsaved", name="x", architecture="simple_cnn", num_logits=1, threshold=2.0)
    with pytest.raises(CardError, match="card field threshold is 2.0"):
        ModelLibrary().add(card, build_model("simple_cnn", 1).state_dict())
    assert not (home / "models" / "unsaved").exists()
