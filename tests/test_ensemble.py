"""Ensembles: a library entry combining member models. Scored in the members' pass (each file decoded once),
recorded with every member's row, refused in one line when a member changed, fitted (logistic) on a labelled
reference set with held-out measures, and explained in the CSV and the PDF report."""
import dataclasses
import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pytest

from app.case.store import Case
from app.services.ensemble import EnsembleRequest, run_ensemble
from app.report import build_report
from app.services.scanning import list_entries, run_scan
from models.checkpoints import CheckpointError
from models.engine import MultiScanEngine, ScanEngine
from models.ensemble import EnsembleError, build_scorers
from models.labels import Thresholds
from models.library import CARD_NAME, ModelLibrary
from tests.calibration_data import brightness_model, grey_photos, snapshot
from tests.commands import run_in_process
from tests.needs import pdf_text
from tests.multi_model_data import FILES, add_model, read_csv
from training.ensemble import fit_ensemble


def logit(p: float) -> float:
    return math.log(p) - math.log1p(-p)


def sigmoid(z: float) -> float:
    return 1 / (1 + math.exp(-z))


def calibrated_variant(library: ModelLibrary, source_id: str, new_id: str, a: float):
    """A calibrated variant of `source_id` (temperature a), stored as `forensight calibrate` stores one."""
    source = library.get(source_id)
    card = dataclasses.replace(source.card, id=new_id, calibration={"method": "temperature", "params": {"a": a}})
    return library.add_file(card, source.weights_path)


def scan_with(library: ModelLibrary, case_path: Path, folder: Path, *model_ids: str):
    scorers = build_scorers([library.load(m) for m in model_ids],
                            lambda model: ScanEngine(model, device="cpu", batch_size=3, workers=2), lambda card: None)
    with Case(case_path) as case:
        return run_scan(case, MultiScanEngine(scorers), list_entries([folder], False), roots=[folder])


def stored(case_path: Path, model_id: str) -> dict:
    with Case(case_path, readonly=True) as case:
        return {Path(row.path).name: row for row in case.rows(model_id)}


def alone(library: ModelLibrary, model_id: str, folder: Path) -> dict[str, float | None]:
    engine = ScanEngine(library.load(model_id), device="cpu", batch_size=3, workers=2)
    return {Path(r.path).name: r.p_fake for r in engine.scan(list_entries([folder], False))}


def test_mean_logit_is_the_mean_of_the_members_calibrated_logits_and_each_file_is_decoded_once(
        two_models, folder, tmp_path, decodes):
    calibrated_variant(two_models, "beta", "beta-cal", a=0.5)  # members on different scales
    entry = run_ensemble(EnsembleRequest("ens", ("alpha", "beta-cal")), two_models).entry
    assert entry.card.architecture == "ensemble" and entry.card.threshold == 0.5
    assert entry.card.weights_sha256 == hashlib.sha256((entry.directory / "ensemble.json").read_bytes()).hexdigest()
    assert [m["id"] for m in entry.card.ensemble["members"]] == ["alpha", "beta-cal"]
    assert entry.card.ensemble["members"][1]["calibrated"]
    assert "Each member's own calibration is applied first" in entry.card.description

    decodes.clear()
    summary = scan_with(two_models, tmp_path / "case.sqlite", folder, "ens")
    assert len(decodes) == FILES  # one decode per file for the two members
    assert list(summary.tallies) == ["ens", "alpha", "beta-cal"]

    # independently: each member scored alone (beta uncalibrated, its temperature applied here by hand)
    p_alpha, p_beta = alone(two_models, "alpha", folder), alone(two_models, "beta", folder)
    ens, alpha, beta = (stored(tmp_path / "case.sqlite", m) for m in ("ens", "alpha", "beta-cal"))
    assert len(ens) == len(alpha) == len(beta) == FILES
    for name, row in ens.items():
        if p_alpha[name] is None:
            assert row.p_fake is None and "not a recognised image" in row.error and beta[name].error
            continue
        want = sigmoid((logit(p_alpha[name]) + 0.5 * logit(p_beta[name])) / 2)
        assert row.p_fake == pytest.approx(want, abs=1e-6), name
        assert beta[name].p_fake == pytest.approx(sigmoid(0.5 * logit(p_beta[name])), abs=1e-6)
        assert row.label == Thresholds.around(0.5, (0.3, 0.7)).label(row.p_fake)
    assert ens["p0.png"].weights_sha256 == entry.card.weights_sha256


def test_rescanning_recombines_reused_member_scores(two_models, folder, tmp_path, decodes):
    run_ensemble(EnsembleRequest("ens", ("alpha", "beta")), two_models)
    case_path = tmp_path / "case.sqlite"
    scan_with(two_models, case_path, folder, "ens")
    first = {name: row.p_fake for name, row in stored(case_path, "ens").items()}
    decodes.clear()
    again = scan_with(two_models, case_path, folder, "alpha", "ens")  # a member named first keeps its place
    assert decodes == [len(b"not an image\n")] and list(again.tallies) == ["alpha", "ens", "beta"]
    assert again.tallies["ens"].reused == FILES - 1
    assert {name: row.p_fake for name, row in stored(case_path, "ens").items()} == first


def test_logistic_fit_recovers_a_known_combination_and_beats_its_best_member_held_out():
    rng = np.random.default_rng(0)
    n = 4000
    z = rng.normal(0, 2, (n, 2))  # two members, each carrying part of the signal
    truth_w, truth_b = np.array([1.5, 0.7]), 0.0
    y = rng.random(n) < 1 / (1 + np.exp(-(truth_b + z @ truth_w)))
    p = 1 / (1 + np.exp(-z))
    fit = fit_ensemble("logistic", ["a", "b"], p[~y], p[y])
    assert fit.params["coefficients"] == pytest.approx(truth_w.tolist(), abs=0.15)
    assert fit.params["intercept"] == pytest.approx(truth_b, abs=0.15)
    held = fit.held_out
    best, best_loss = fit.best_member()
    assert best == "a" and held["ensemble"]["log_loss"] < best_loss - 0.02
    assert held["ensemble"]["average_precision"] > held["members"]["a"]["average_precision"]
    assert (fit.n_real, fit.n_fake) == (int((~y).sum()), int(y.sum()))


def test_mean_logit_on_a_reference_set_is_measured_not_fitted():
    rng = np.random.default_rng(1)
    real, fake = rng.uniform(0.05, 0.6, (30, 2)), rng.uniform(0.4, 0.95, (30, 2))
    fit = fit_ensemble("mean_logit", ["a", "b"], real, fake)
    assert fit.params == {} and not fit.fitted
    z = np.log(np.vstack([real, fake]) / (1 - np.vstack([real, fake])))
    p = 1 / (1 + np.exp(-z.mean(axis=1)))
    y = np.r_[np.zeros(30), np.ones(30)]
    loss = -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))  # 30 + 30: equal weights are plain weights
    assert fit.held_out["ensemble"]["log_loss"] == pytest.approx(loss, abs=1e-9)


@pytest.fixture
def reference(tmp_path) -> Path:
    root = tmp_path / "reference"
    grey_photos(root / "real", 40, 105, seed=1)
    grey_photos(root / "fake", 40, 145, seed=2)
    return root


def test_cli_logistic_ensemble_records_its_fit_and_scans_with_its_coefficients(home, reference, tmp_path, capsys):
    library = ModelLibrary()
    brightness_model(library, "b1", scale=3.0)
    brightness_model(library, "b2", scale=0.5)
    before = snapshot(reference)
    code, out, err = run_in_process(capsys, "ensemble", "create", "fit", "--member", "b1", "--member", "b2",
                                    "--combine", "logistic", "--real", reference / "real", "--fake",
                                    reference / "fake", "-q")
    assert code == 0, err
    assert "Created fit" in out and "Best member:" in out and "member b1: log loss" in out
    entry = library.get("fit")
    ensemble = entry.card.ensemble
    fitted = ensemble["fitted_on"]
    assert (fitted["n_real"], fitted["n_fake"], fitted["cross_validation_folds"]) == (40, 40, 5)
    manifest = (entry.directory / "ensemble_files.tsv").read_bytes()
    assert fitted["file_list_sha256"] == hashlib.sha256(manifest).hexdigest() and manifest.count(b"\n") == 81
    assert set(fitted["held_out"]["members"]) == {"b1", "b2"} and "log_loss" in fitted["held_out"]["ensemble"]
    assert len(ensemble["params"]["coefficients"]) == 2 and snapshot(reference) == before  # only read

    csv_path = tmp_path / "out" / "scan.csv"
    csv_path.parent.mkdir()
    code, out, err = run_in_process(capsys, "scan", reference / "real", "--model", "fit", "--csv", csv_path, "-q")
    assert code == 0, err
    b, (w1, w2) = ensemble["params"]["intercept"], ensemble["params"]["coefficients"]
    rows = {name: stored(csv_path.with_suffix(".case.sqlite"), m) for m, name in
            (("fit", "fit"), ("b1", "b1"), ("b2", "b2"))}
    for name, row in rows["fit"].items():
        want = sigmoid(b + w1 * logit(rows["b1"][name].p_fake) + w2 * logit(rows["b2"][name].p_fake))
        assert row.p_fake == pytest.approx(want, abs=1e-9)


def test_cli_csv_and_pdf_show_the_ensemble_and_its_members_without_duplicates(two_models, folder, tmp_path, capsys,
                                                                               poppler):
    assert run_in_process(capsys, "ensemble", "create", "ens", "--member", "alpha", "--member", "beta", "-q")[0] == 0
    csv_path = tmp_path / "out" / "scan.csv"
    csv_path.parent.mkdir()
    code, out, err = run_in_process(capsys, "scan", folder, "--model", "ens", "--model", "alpha", "--csv", csv_path,
                                    "-q")
    assert code == 0, err
    assert "Model ens (ensemble of alpha, beta, mean_logit)" in err and "  ens:" in out and "  beta:" in out
    header, rows = read_csv(csv_path)
    assert [h for h in header if h.startswith("p_fake[")] == ["p_fake[ens]", "p_fake[alpha]", "p_fake[beta]"]
    assert len(rows) == FILES
    first = next(row for row in rows if row["file_name"] == "p0.png")
    assert first["calibration[ens]"].startswith("ensemble of 2 models: alpha (weights")
    assert "mean of the members' logits" in first["calibration[ens]"]
    want = sigmoid((logit(float(first["p_fake[alpha]"])) + logit(float(first["p_fake[beta]"]))) / 2)
    assert float(first["p_fake[ens]"]) == pytest.approx(want, abs=1e-5)  # the CSV's six decimals

    info = build_report(csv_path.with_suffix(".case.sqlite"), tmp_path / "report.pdf", device="cpu")
    text = pdf_text(info.pdf_path, "-layout")
    flat = " ".join(text.split())
    assert "Combination" in text and "ensemble of 2 models: alpha (weights" in flat
    assert "mean of the members' logits: P(fake) = sigmoid(mean of z)" in flat
    for model_id in ("alpha", "beta"):
        assert f"Model {model_id} ({model_id})" in text  # each member's own method entry
    assert "Ensemble of alpha + beta (ens)" in flat


def test_a_member_changed_since_the_ensemble_was_made_is_refused_in_one_line(two_models, folder, tmp_path, capsys):
    run_ensemble(EnsembleRequest("ens", ("alpha", "beta")), two_models)
    two_models.remove("alpha")
    add_model(two_models, "alpha", seed=5)  # the same id, other weights
    with pytest.raises(CheckpointError, match="member 'alpha' has other weights"):
        two_models.load("ens")
    code, out, err = run_in_process(capsys, "scan", folder, "--model", "ens", "--case", tmp_path / "c.sqlite", "-q")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "member 'alpha' has other weights" in err
    assert not (tmp_path / "c.sqlite").exists()

    run_ensemble(EnsembleRequest("ens2", ("alpha", "beta")), two_models)
    code, _, err = run_in_process(capsys, "models", "set", "beta", "input.policy=resize")
    assert code == 0, err
    with pytest.raises(CheckpointError, match="member 'beta' has other input settings"):
        two_models.load("ens2")


def test_a_hand_edited_combination_is_refused(two_models):
    entry = run_ensemble(EnsembleRequest("ens", ("alpha", "beta")), two_models).entry
    card = json.loads((entry.directory / CARD_NAME).read_text())
    card["ensemble"]["combine"] = "logistic"
    card["ensemble"]["params"] = {"intercept": 0.0, "coefficients": [5.0, -5.0]}
    (entry.directory / CARD_NAME).write_text(json.dumps(card))
    with pytest.raises(CheckpointError, match="combination differs from the stored ensemble.json"):
        two_models.load("ens")


@pytest.mark.parametrize("args, message", [
    (["--member", "alpha"], "needs 2 to 8 different members"),
    (["--member", "alpha", "--member", "alpha"], "needs 2 to 8 different members"),
    (["--member", "alpha", "--member", "nope"], "no model 'nope' in the library"),
    (["--member", "alpha", "--member", "ens"], "ens is itself an ensemble"),
    (["--member", "alpha", "--member", "beta", "--combine", "logistic"], "give --real FOLDER and --fake FOLDER"),
    (["--member", "alpha", "--member", "beta", "--real", "REF/real"], "needs both --real and --fake"),
    (["--member", "alpha", "--member", "beta", "--real", "REF/real", "--fake", "REF/few"],
     "holds 40 real and 5 fake pictures"),
    (["--member", "alpha", "--member", "beta", "--real", "REF/real", "--fake", "REF/empty"],
     "holds 40 real and 0 fake pictures"),
])
def test_refusals_are_one_line_and_write_nothing(two_models, reference, capsys, args, message):
    run_ensemble(EnsembleRequest("ens", ("alpha", "beta")), two_models)
    grey_photos(reference / "few", 5, 145, seed=3)
    (reference / "empty").mkdir()
    before = sorted(p.name for p in two_models.user_dir.iterdir())
    args = [str(a).replace("REF", str(reference)) for a in args]
    code, out, err = run_in_process(capsys, "ensemble", "create", "new", *args, "-q")
    assert code == 2 and len(err.strip().splitlines()) == 1 and message in err, err
    assert sorted(p.name for p in two_models.user_dir.iterdir()) == before


def folder_of_two(root: Path) -> Path:
    """A labelled folder evaluate would accept for a single model."""
    from tests.images import gradient

    for label in ("real", "fake"):
        (root / "data" / label).mkdir(parents=True, exist_ok=True)
        gradient(64, 64, seed=len(label)).save(root / "data" / label / "a.png")
    return root / "data"


def test_an_ensemble_has_no_input_or_calibration_of_its_own(two_models, capsys, tmp_path):
    run_ensemble(EnsembleRequest("ens", ("alpha", "beta")), two_models)
    code, _, err = run_in_process(capsys, "models", "set", "ens", "input.policy=tiles")
    assert code == 2 and "is an ensemble" in err
    with pytest.raises(ValueError, match="is an ensemble"):
        ScanEngine(two_models.load("ens"), device="cpu")
    with pytest.raises(CheckpointError, match="not imported"):
        two_models.import_path(two_models.get("ens").directory, model_id="copy")
    with pytest.raises(EnsembleError):
        run_ensemble(EnsembleRequest("ens", ("alpha", "beta")), two_models)  # the id is taken
    code, _, err = run_in_process(capsys, "evaluate", "--model", "ens", "--data", folder_of_two(tmp_path),
                                  "--out", tmp_path / "eval")
    assert code == 2 and "is an ensemble: measure it by scanning" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "eval" / "report.json").exists()
