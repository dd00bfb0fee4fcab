"""`forensight calibrate`: a calibrated variant fitted on the examiner's own photos, whose threshold holds the
false-positive rate on their real photos (with its Clopper–Pearson bound), whose scans give calibrated scores
while the original's do not change, and which refuses sets too small for the rate and photos of the case."""
import csv
import hashlib
import json
import math

import numpy as np
import pytest
from PIL import Image

from models.calibration import calibrated
from models.card import CardError, ModelCard
from models.engine import ScanEngine
from models.library import ModelLibrary
from tests.calibration_data import brightness_model, grey_photos, snapshot
from tests import commands
from tests.commands import run_in_process
from tests.needs import pdf_text
from training.calibration import clopper_pearson_upper, fit_calibration, predict, reals_needed

TARGET = 0.05  # 59 real photos can show it; 1% would need 299


def run_cli(*args) -> tuple[int, str, str]:
    run = commands.run_cli(*args)
    return run.returncode, run.stdout, run.stderr


@pytest.fixture(scope="module")
def calibrated_once(tmp_path_factory):
    """One calibration of the brightness detector on 80 real and 40 AI-generated photos, shared by the tests
    that read its results (scoring and fitting twice would only cost time)."""
    root = tmp_path_factory.mktemp("calibration")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FORENSIGHT_HOME", str(root / "home"))
        patch.setenv("FORENSIGHT_SHIPPED_MODELS", str(root / "no-shipped"))
        library = ModelLibrary()
        original = brightness_model(library)
        real = grey_photos(root / "evidence-like" / "real", 80, 100, seed=1)
        fake = grey_photos(root / "evidence-like" / "fake", 40, 150, seed=2)
        before = snapshot(root / "evidence-like")
        card_bytes = (original.directory / "card.json").read_bytes()
        code, out, err = run_cli("calibrate", "bright", "--real", real, "--fake", fake, "--target-fpr", TARGET,
                                 "--name", "bright-cal", "-q")
        yield {"root": root, "library": library, "real": real, "fake": fake, "before": before, "code": code,
               "out": out, "err": err, "original": original, "card_bytes": card_bytes, "patch": patch}


# ---- the maths ------------------------------------------------------------------------------------------
def test_clopper_pearson_against_known_values():
    assert clopper_pearson_upper(0, 299) == pytest.approx(1 - 0.05 ** (1 / 299), rel=1e-9)  # the rule of three
    assert clopper_pearson_upper(0, 10) == pytest.approx(0.2589, abs=1e-4)
    # the two-sided 95% interval of 5 in 100 is (0.0164, 0.1128): its upper end is the one-sided 97.5% bound
    assert clopper_pearson_upper(5, 100, confidence=0.975) == pytest.approx(0.1128, abs=1e-4)
    assert clopper_pearson_upper(1, 100) == pytest.approx(0.0466, abs=1e-4)
    assert clopper_pearson_upper(7, 7) == 1.0
    assert (reals_needed(0.01), reals_needed(0.05), reals_needed(0.001)) == (299, 59, 2995)


def test_already_calibrated_scores_are_left_almost_as_they_are():
    """Scores that already mean what they say: whatever is chosen maps P(fake) to nearly itself, and gains
    next to nothing on held-out photos (the model's own P(fake) is a candidate, so it never loses)."""
    rng = np.random.default_rng(0)
    real, fake = rng.uniform(0, 1, 400), rng.uniform(0, 1, 400)
    y_real, y_fake = rng.uniform(0, 1, 400) < real, rng.uniform(0, 1, 400) < fake  # P(fake) = p, exactly
    scores = np.concatenate([real, fake])
    labels = np.concatenate([y_real, y_fake])
    fit = fit_calibration(scores[~labels], scores[labels], target_fpr=0.05)
    grid = np.linspace(0.01, 0.99, 99)
    assert np.abs(predict(fit.method, fit.params, grid) - grid).max() < 0.05
    assert fit.log_loss_uncalibrated - fit.log_loss_calibrated < 0.005
    assert fit.method in ("none", "temperature", "platt")  # isotonic's steps cost more than they gain here


def test_overconfident_scores_are_tempered():
    """The opposite case: a model whose logits are three times too large gets them shrunk back, and the
    held-out log loss says so."""
    rng = np.random.default_rng(1)
    truth = rng.uniform(0.02, 0.98, 1000)
    labels = rng.uniform(0, 1, 1000) < truth
    z = np.log(truth) - np.log1p(-truth)
    scores = 1 / (1 + np.exp(-3 * z))
    fit = fit_calibration(scores[~labels], scores[labels], target_fpr=0.05)
    assert fit.method in ("temperature", "platt", "isotonic")
    assert fit.log_loss_calibrated < fit.log_loss_uncalibrated - 0.02
    assert np.abs(predict(fit.method, fit.params, scores) - truth).mean() < 0.05


# ---- the command ----------------------------------------------------------------------------------------
def test_a_set_too_small_for_the_rate_is_refused_with_the_count_it_needs(home, tmp_path, capsys):
    brightness_model(ModelLibrary())
    real = grey_photos(tmp_path / "real", 50, 100, seed=3)
    code, out, err = run_in_process(capsys, "calibrate", "bright", "--real", real, "--target-fpr", "0.01")
    assert code == 2 and out == ""
    assert "50 real photos cannot show a false-positive rate of 1%" in err
    assert "at least 299 real photos (249 more)" in err and err.count("\n") == 1
    assert [e.card.id for e in ModelLibrary().entries()] == ["bright"]


def test_calibration_output_card_and_threshold(calibrated_once):
    run = calibrated_once
    assert run["code"] == 0, run["err"]
    lines = run["out"].splitlines()
    assert lines[0] == "Calibrated bright on 80 real and 40 AI-generated photos"
    assert lines[1].startswith("Method: ") and "held-out log loss" in lines[1] and "ECE" in lines[1]
    assert lines[2].startswith("Threshold: ") and "95% upper bound" in lines[2] and "target 5%" in lines[2]
    assert lines[3].startswith("TPR: ") and lines[-1].startswith("New model: bright-cal ")
    variant = run["library"].get("bright-cal")
    fitted = variant.card.calibration["fitted_on"]
    assert variant.card.calibration["method"] in ("temperature", "platt", "isotonic")
    assert (fitted["n_real"], fitted["n_fake"], fitted["model"]) == (80, 40, "bright")
    assert fitted["log_loss_calibrated"] < fitted["log_loss_uncalibrated"]  # the detector is overconfident
    assert fitted["ece_calibrated"] < fitted["ece_uncalibrated"]
    assert fitted["fpr"] <= TARGET and fitted["fpr_upper_95"] <= TARGET
    assert variant.card.threshold == fitted["threshold"] and variant.card.weights_sha256 == \
        run["original"].card.weights_sha256
    # the original card is kept byte for byte, and the variant is its own library entry
    assert (run["original"].directory / "card.json").read_bytes() == run["card_bytes"]
    assert variant.directory != run["original"].directory and not variant.shipped
    assert json.loads((variant.directory / "card.json").read_text())["format_version"] == 2


def test_the_threshold_holds_the_rate_on_the_calibration_reals_when_scanning(calibrated_once):
    """Scored as a scan scores them, the variant calls at most 5% of the real photos AI-generated."""
    run = calibrated_once
    engine = ScanEngine(run["library"].load("bright-cal"), device="cpu")
    labels = [r.label for r in engine.scan(sorted(run["real"].iterdir()))]
    assert len(labels) == 80 and labels.count("AI-generated") / 80 <= TARGET
    fakes = [r.label for r in engine.scan(sorted(run["fake"].iterdir()))]
    fitted = run["library"].get("bright-cal").card.calibration["fitted_on"]
    assert fakes.count("AI-generated") == fitted["true_positives"]


def test_reliability_diagram_and_file_list(calibrated_once):
    run = calibrated_once
    variant = run["library"].get("bright-cal")
    with Image.open(variant.directory / "reliability.png") as diagram:
        assert diagram.format == "PNG" and diagram.size[0] >= 600 and diagram.size[1] >= 300
        assert len(diagram.convert("L").getcolors(1 << 16) or []) > 20  # drawn, not a blank canvas
    manifest = (variant.directory / "calibration_files.tsv").read_bytes()
    assert hashlib.sha256(manifest).hexdigest() == variant.card.calibration["fitted_on"]["file_list_sha256"]
    lines = manifest.decode().splitlines()
    assert lines[0] == "label\tsha256\tpath" and len(lines) == 1 + 120 and lines[1:] == sorted(lines[1:])
    photo = run["real"] / "0007.png"
    assert f"real\t{hashlib.sha256(photo.read_bytes()).hexdigest()}\t0007.png" in lines


def test_the_photos_are_only_read(calibrated_once):
    assert snapshot(calibrated_once["root"] / "evidence-like") == calibrated_once["before"]


def test_scans_with_the_variant_are_calibrated_and_the_original_s_are_not(calibrated_once):
    run = calibrated_once
    root, photos = run["root"], run["fake"]
    for model in ("bright", "bright-cal"):
        code, _, err = run_cli("scan", photos, "--model", model, "--device", "cpu", "--csv",
                               root / f"{model}.csv", "-q")
        assert code == 0, err
    rows = {model: {r["file_name"]: r for r in csv.DictReader(open(root / f"{model}.csv", encoding="utf-8"))}
            for model in ("bright", "bright-cal")}
    calibration = run["library"].get("bright-cal").card.calibration
    own = {r.path.rsplit("/", 1)[-1]: r.p_fake for r in
           ScanEngine(run["library"].load("bright"), device="cpu").scan(sorted(photos.iterdir()))}
    changed = 0
    for name, row in rows["bright-cal"].items():
        original = rows["bright"][name]
        assert float(original["p_fake"]) == pytest.approx(own[name], abs=1e-6)  # unchanged by the variant
        assert float(row["p_fake"]) == pytest.approx(calibrated(calibration, own[name]), abs=1e-6)
        changed += abs(float(row["p_fake"]) - own[name]) > 0.01
        assert float(row["threshold"]) == pytest.approx(calibration["fitted_on"]["threshold"])
        assert row["calibration"].startswith("calibrated on 80 real and 40 AI-generated photos")
        assert original["calibration"] == ""
    assert changed >= 10


def test_the_pdf_report_names_the_calibration(calibrated_once, tmp_path, poppler):
    run = calibrated_once
    case = tmp_path / "few.sqlite"
    few = tmp_path / "few"
    few.mkdir()
    for name in ("0001.png", "0002.png"):
        (few / name).write_bytes((run["fake"] / name).read_bytes())
    assert run_cli("scan", few, "--model", "bright-cal", "--device", "cpu", "--case", case, "-q")[0] == 0
    code, _, err = run_cli("report", case, "--pdf", tmp_path / "report.pdf", "--device", "cpu", "-q")
    assert code == 0, err
    text = pdf_text(tmp_path / "report.pdf")
    assert "Calibration" in text and "calibrated on 80 real and 40 AI-generated" in " ".join(text.split())


def test_photos_of_the_case_are_refused_unless_allowed(calibrated_once, tmp_path):
    run = calibrated_once
    case = tmp_path / "case.sqlite"
    evidence = tmp_path / "evidence"
    evidence.mkdir()
    for name in ("0003.png", "0004.png", "0005.png"):  # the same bytes as three calibration photos
        (evidence / name).write_bytes((run["real"] / name).read_bytes())
    assert run_cli("scan", evidence, "--model", "bright", "--device", "cpu", "--case", case, "-q")[0] == 0
    case_bytes = case.read_bytes()
    code, out, err = run_cli("calibrate", "bright", "--real", run["real"], "--fake", run["fake"], "--target-fpr",
                             TARGET, "--name", "bright-overlap", "--case", case, "-q")
    assert code == 2 and "3 of the calibration photos are also in the case" in err and "--allow-case-overlap" in err
    assert case.read_bytes() == case_bytes
    assert "bright-overlap" not in {e.card.id for e in run["library"].entries()}
    code, out, err = run_cli("calibrate", "bright", "--real", run["real"], "--target-fpr", TARGET, "--name",
                             "bright-overlap", "--case", case, "--allow-case-overlap", "-q")
    assert code == 0, err
    assert "WARNING: 3 calibration photos are also in the case" in out
    card = run["library"].get("bright-overlap").card
    assert card.calibration["fitted_on"]["case_overlap"] == 3 and case.read_bytes() == case_bytes


def test_with_only_real_photos_only_the_threshold_is_set(calibrated_once):
    """Without known fakes nothing says how likely a high score is to be a fake: P(fake) stays the model's."""
    run = calibrated_once
    code, out, err = run_cli("calibrate", "bright", "--real", run["real"], "--target-fpr", "0.1", "--name",
                             "bright-reals", "-q")
    assert code == 0, err
    assert "Method: none (no known AI-generated photos: P(fake) stays the model's own" in out
    assert "TPR" not in out
    card = run["library"].get("bright-reals").card
    assert card.calibration["method"] == "none" and card.calibration["fitted_on"]["fpr_upper_95"] <= 0.1
    original = ScanEngine(run["library"].load("bright"), device="cpu")
    variant = ScanEngine(run["library"].load("bright-reals"), device="cpu")
    photos = sorted(run["real"].iterdir())[:10]
    assert [r.p_fake for r in variant.scan(photos)] == [r.p_fake for r in original.scan(photos)]


def test_a_calibrated_variant_keeps_its_input_settings(calibrated_once):
    from models.input_settings import set_model_input

    with pytest.raises(CardError, match="was calibrated on the scores of its current input settings"):
        set_model_input(calibrated_once["library"], "bright-cal", {"policy": "tiles"})


# ---- the card -------------------------------------------------------------------------------------------
def card_with(calibration) -> dict:
    return {"format": "forensight-model-card", "format_version": 2, "id": "c", "name": "c",
            "architecture": "simple_cnn", "num_logits": 1, "calibration": calibration}


@pytest.mark.parametrize("calibration, message", [
    ({"method": "magic", "params": {}}, "card field calibration.method is \"magic\"; it must be one of none"),
    ({"method": "platt", "params": {"a": -1.0, "b": 0.0}}, "calibration.params.a is -1.0; it must be a number above 0"),
    ({"method": "platt", "params": {"a": 1.0, "b": math.inf}}, "calibration.params.b"),
    ({"method": "isotonic", "params": {"x": [1.0, 0.0], "y": [0.1, 0.9]}}, "2 to 10,000 increasing finite numbers"),
    ({"method": "isotonic", "params": {"x": [0.0, 1.0], "y": [0.9, 0.1]}}, "never decreasing"),
    ("platt", "card field calibration is \"platt\"; it must be an object"),
])
def test_bad_calibrations_are_refused_in_one_line(calibration, message):
    with pytest.raises(CardError) as refused:
        ModelCard.from_dict(card_with(calibration))
    assert message in str(refused.value) and "\n" not in str(refused.value)


def test_cards_without_calibration_load_and_stay_version_1():
    old = card_with({})
    del old["calibration"]
    old["format_version"] = 1
    card = ModelCard.from_dict(old)
    assert card.calibration == {} and calibrated(card.calibration, 0.3) == 0.3
    assert json.loads(card.to_json())["format_version"] == 1
