"""`forensight train` then `forensight evaluate` as a user runs them, on a dataset with a real trace."""
import csv
import json
import os

import pytest
from PIL import Image

from tests.commands import run_cli
from tests.datasets import make_trace_dataset


forensight = run_cli  # in-process, as typed (tests/commands.py)
pytestmark = pytest.mark.slow  # trains a detector for 10 epochs once for the module


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("evaluate")
    os.environ["FORENSIGHT_HOME"] = str(root / "home")
    os.environ["FORENSIGHT_SHIPPED_MODELS"] = str(root / "none")
    data = root / "data"
    make_trace_dataset(data / "train", per_class=150, seed=0)
    make_trace_dataset(data / "test" / "nearest", per_class=40, seed=1)
    run = forensight("train", "--recipe", "cifake_cnn", "--data", data, "--name", "trace", "--epochs", "10",
                     "--lr", "1e-3", "--workers", "0", "--set", "target_accuracy=none")
    yield root, data, run
    del os.environ["FORENSIGHT_HOME"], os.environ["FORENSIGHT_SHIPPED_MODELS"]


def test_train_adds_a_model_with_a_complete_card(trained):
    root, data, run = trained
    assert run.returncode == 0, run.stderr[-2000:]
    assert "Added trace to the library" in run.stdout and "epoch 10/10" in run.stdout
    card = json.loads((root / "home" / "models" / "trace" / "card.json").read_text())
    provenance = card["provenance"]
    assert provenance["recipe"]["name"] == "cifake_cnn" and provenance["recipe"]["epochs"] == 10
    assert provenance["data"]["train"]["count"] == 270 and provenance["data"]["val"]["count"] == 30
    assert len(provenance["data"]["all"]["file_list_sha256"]) == 64
    assert len(card["learning_curve"]) == 10 and card["metrics"]["validation"]["accuracy"] >= 0.8
    assert provenance["start_from"] == "none"


def test_evaluate_writes_numbers_plots_and_predictions(trained, tmp_path):
    root, data, _ = trained
    out = tmp_path / "report"
    run = forensight("evaluate", "--model", "trace", "--data", data, "--out", out, "--sweep-images", "40")
    assert run.returncode == 0, run.stderr[-2000:]
    report = json.loads((out / "report.json").read_text())
    metrics = report["metrics"]
    assert report["data"]["split"] == "test" and metrics["n"] == 80
    assert metrics["accuracy"] >= 0.75 and metrics["average_precision"] >= 0.8
    assert metrics["baselines"]["random"]["average_precision"] == pytest.approx(0.5)
    # every number can be recomputed from the per-image predictions
    with open(out / "predictions.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 80
    correct = sum((float(r["p_fake"]) >= 0.5) == (r["label"] == "fake") for r in rows)
    assert correct / 80 == pytest.approx(metrics["accuracy"])
    # robustness sweeps: Wang et al.'s values; blurring destroys an upsampling trace, so AP must drop
    sweeps = report["robustness"]
    assert [r["value"] for r in sweeps["jpeg_quality"]] == [100, 90, 75, 60, 45, 30]
    assert [r["value"] for r in sweeps["blur_sigma"]] == [0, 1, 2, 3]
    assert sweeps["blur_sigma"][3]["average_precision"] < sweeps["blur_sigma"][0]["average_precision"]
    for name in ("confusion_matrix", "roc", "pr", "histogram", "reliability", "learning_curve", "robustness"):
        with Image.open(out / f"{name}.png") as image:
            assert image.width >= 300 and image.height >= 200
    assert {"TP", "TN"} <= set(report["files"]["galleries"])
    assert "average_precision" in run.stdout and "blur_sigma" in run.stdout


def test_train_refuses_bad_input_in_one_line(trained, tmp_path):
    (tmp_path / "cats").mkdir()
    run = forensight("train", "--recipe", "cifake_cnn", "--data", tmp_path, "--name", "x")
    assert run.returncode == 2 and "no dataset layout fits" in run.stderr and str(tmp_path) in run.stderr
    run = forensight("train", "--recipe", "cifake_cnn", "--data", tmp_path, "--name", "trace")
    assert run.returncode == 2 and "already exists" in run.stderr
    run = forensight("train", "--recipe", "cifake_cnn", "--data", tmp_path, "--name", "y", "--set", "lr=fast")
    assert run.returncode == 2 and "lr expects a number" in run.stderr
