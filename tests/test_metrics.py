"""The metric suite against values worked out by hand, and the plots as real PNG files."""
import json
import math

import numpy as np
import pytest
from PIL import Image

from training import plots
from training.metrics import compute_metrics, confusion_outcomes, per_group_metrics

# Any warning (sklearn's UndefinedMetricWarning above all) fails the test.
pytestmark = pytest.mark.filterwarnings("error")

# The worked example: label 1 = fake, threshold 0.5, fake when p >= 0.5.
Y = [0, 0, 1, 1, 1]
P = [0.1, 0.6, 0.4, 0.8, 0.9]
# predictions   0    1    0    1    1   -> TN, FP, FN, TP, TP


@pytest.fixture(scope="module")
def worked() -> dict:
    return compute_metrics(Y, P, threshold=0.5)


def test_confusion_and_threshold_metrics_by_hand(worked):
    assert worked["confusion_matrix"] == {"tn": 1, "fp": 1, "fn": 1, "tp": 2}
    assert (worked["n"], worked["n_real"], worked["n_fake"]) == (5, 2, 3)
    assert worked["accuracy"] == pytest.approx(3 / 5)
    # fake class: precision tp/(tp+fp) = 2/3, recall tp/(tp+fn) = 2/3, F1 = 2/3
    assert worked["precision_fake"] == pytest.approx(2 / 3)
    assert worked["recall_fake"] == pytest.approx(2 / 3)
    assert worked["f1_fake"] == pytest.approx(2 / 3)
    # real class: precision tn/(tn+fn) = 1/2, recall tn/(tn+fp) = 1/2
    assert worked["precision_real"] == pytest.approx(1 / 2)
    assert worked["recall_real"] == pytest.approx(1 / 2)
    assert worked["f1_real"] == pytest.approx(1 / 2)
    # balanced accuracy = (TPR + TNR) / 2 = (2/3 + 1/2) / 2 = 7/12
    assert worked["balanced_accuracy"] == pytest.approx(7 / 12)


def test_correlation_and_agreement_by_hand(worked):
    # MCC = (tp*tn - fp*fn) / sqrt((tp+fp)(tp+fn)(tn+fp)(tn+fn)) = (2*1 - 1*1) / sqrt(3*3*2*2) = 1/6
    assert worked["mcc"] == pytest.approx(1 / 6)
    # kappa: po = 3/5; pe = P(true fake)P(pred fake) + P(true real)P(pred real) = 3/5*3/5 + 2/5*2/5 = 13/25
    #        (po - pe) / (1 - pe) = (2/25) / (12/25) = 1/6
    assert worked["cohen_kappa"] == pytest.approx(1 / 6)


def test_ranking_metrics_by_hand(worked):
    # ROC-AUC = share of (fake, real) pairs ranked correctly: fakes {.4,.8,.9} vs reals {.1,.6}
    # .4 beats .1 only; .8 and .9 beat both -> 1 + 2 + 2 = 5 of 6 pairs
    assert worked["roc_auc"] == pytest.approx(5 / 6)
    # AP = sum over fakes, in descending score order, of (recall step) * precision there:
    # .9 F: P=1/1, R=1/3 | .8 F: P=2/2, R=2/3 | .6 R | .4 F: P=3/4, R=1
    # AP = 1/3*1 + 1/3*1 + 1/3*3/4 = 11/12
    assert worked["average_precision"] == pytest.approx(11 / 12)


def test_log_loss_by_hand(worked):
    # -mean log P(true class): reals p=.1 -> ln .9, p=.6 -> ln .4; fakes ln .4, ln .8, ln .9
    expected = -(2 * math.log(0.9) + 2 * math.log(0.4) + math.log(0.8)) / 5
    assert worked["log_loss"] == pytest.approx(expected)  # about 0.4533


def test_log_loss_clips_certain_mistakes():
    # A confident wrong answer costs -ln(1e-7), not infinity.
    metrics = compute_metrics([0, 1], [1.0, 1.0])
    assert metrics["log_loss"] == pytest.approx(-math.log(1e-7) / 2, rel=1e-4)


def test_ece_on_the_worked_example(worked):
    # one image per bin: |fraction fake - mean p| = .1 (bin .1), .6 (bin .4), .6 (bin .6), .2 (bin .8), .1 (bin .9)
    # ECE = (.1 + .6 + .6 + .2 + .1) / 5 = 0.32
    assert worked["calibration"]["ece"] == pytest.approx(0.32)


def test_ece_and_reliability_bins_with_shared_bins():
    # bin [.2,.3): p .22 real, .28 fake -> mean .25, fraction .5, gap .25, weight 2/4
    # bin [.7,.8): p .71 fake, .79 real -> mean .75, fraction .5, gap .25, weight 2/4 -> ECE .25
    calibration = compute_metrics([0, 1, 1, 0], [0.22, 0.28, 0.71, 0.79])["calibration"]
    assert calibration["ece"] == pytest.approx(0.25)
    bins = calibration["bins"]
    assert len(bins) == 10 and bins[0]["low"] == 0.0 and bins[-1]["high"] == 1.0
    assert [b["count"] for b in bins] == [0, 0, 2, 0, 0, 0, 0, 2, 0, 0]
    assert bins[2]["mean_confidence"] == pytest.approx(0.25)
    assert bins[7]["fraction_fake"] == pytest.approx(0.5)
    assert bins[0]["mean_confidence"] is None and bins[0]["fraction_fake"] is None


def test_perfectly_calibrated_bins_have_zero_ece():
    # bin [.2,.3): 5 images at p=.2, one fake -> fraction .2 == mean p; bin [.8,.9]: 5 at .8, 4 fakes
    y = [1, 0, 0, 0, 0] + [1, 1, 1, 1, 0]
    p = [0.2] * 5 + [0.8] * 5
    assert compute_metrics(y, p)["calibration"]["ece"] == pytest.approx(0.0, abs=1e-12)


def test_bins_are_lower_inclusive_and_one_is_in_the_last_bin():
    calibration = compute_metrics([0, 1, 1], [0.3, 0.7, 1.0])["calibration"]
    counts = [b["count"] for b in calibration["bins"]]
    assert counts == [0, 0, 0, 1, 0, 0, 0, 1, 0, 1]


def test_histogram_places_scores_and_sums_per_class(worked):
    histogram = worked["histogram"]
    assert len(histogram["bins"]) == 21 and histogram["bins"][0] == 0.0 and histogram["bins"][-1] == 1.0
    assert len(histogram["real"]) == len(histogram["fake"]) == 20
    # bins are 0.05 wide: .1 -> 2, .6 -> 12 (reals); .4 -> 8, .8 -> 16, .9 -> 18 (fakes)
    assert [i for i, c in enumerate(histogram["real"]) if c] == [2, 12]
    assert [i for i, c in enumerate(histogram["fake"]) if c] == [8, 16, 18]

    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 1000)
    p = rng.random(1000)
    p[:3] = [0.0, 1.0, 0.5]
    histogram = compute_metrics(y, p)["histogram"]
    assert sum(histogram["real"]) == int((y == 0).sum())
    assert sum(histogram["fake"]) == int((y == 1).sum())


def test_predicted_fake_includes_the_threshold_itself():
    assert confusion_outcomes([1, 0], [0.5, 0.5], threshold=0.5) == ["TP", "FP"]
    assert confusion_outcomes([1, 0], [0.4999, 0.4999], threshold=0.5) == ["FN", "TN"]


def test_confusion_outcomes_on_the_worked_example():
    assert confusion_outcomes(Y, P) == ["TN", "FP", "FN", "TP", "TP"]
    # a stricter threshold: only .9 is called fake
    assert confusion_outcomes(np.array(Y), np.array(P), threshold=0.85) == ["TN", "TN", "FN", "FN", "TP"]


def test_threshold_moves_the_threshold_metrics_only():
    strict = compute_metrics(Y, P, threshold=0.85)
    assert strict["threshold"] == 0.85
    assert strict["confusion_matrix"] == {"tn": 2, "fp": 0, "fn": 2, "tp": 1}
    assert strict["precision_fake"] == pytest.approx(1.0)
    assert strict["recall_fake"] == pytest.approx(1 / 3)
    assert strict["roc_auc"] == pytest.approx(5 / 6)  # ranking does not depend on the threshold


def test_result_is_plain_json(worked):
    text = json.dumps(worked, allow_nan=False)  # raises on NaN/inf; numpy scalars would raise too
    assert json.loads(text) == worked


def test_one_class_gives_none_not_errors():
    metrics = compute_metrics([1, 1, 1], [0.2, 0.7, 0.9])
    for key in ("roc_auc", "average_precision", "mcc", "cohen_kappa", "balanced_accuracy",
                "roc_curve", "pr_curve"):
        assert metrics[key] is None, key
    assert metrics["accuracy"] == pytest.approx(2 / 3)
    assert metrics["recall_fake"] == pytest.approx(2 / 3)
    assert metrics["recall_real"] is None  # no real images: 0/0
    assert metrics["thresholds_suggested"] == {"youden_j": None, "at_fpr_1pct": None, "at_fpr_5pct": None}
    assert metrics["baselines"]["random"]["roc_auc"] is None
    json.dumps(metrics, allow_nan=False)

    real_only = compute_metrics(np.zeros(4, dtype=int), np.array([0.1, 0.2, 0.3, 0.9]))
    assert real_only["roc_auc"] is None and real_only["mcc"] is None
    assert real_only["precision_fake"] == 0.0  # one image called fake, wrongly
    assert real_only["recall_fake"] is None
    assert real_only["log_loss"] == pytest.approx(-(math.log(0.9) + math.log(0.8) + math.log(0.7)
                                                    + math.log(0.1)) / 4)


def test_nothing_called_fake_leaves_precision_undefined():
    metrics = compute_metrics([0, 1], [0.1, 0.2])
    assert metrics["precision_fake"] is None  # 0 / 0
    assert metrics["recall_fake"] == 0.0
    assert metrics["roc_auc"] == pytest.approx(1.0)


def test_bad_input_is_refused():
    with pytest.raises(ValueError):
        compute_metrics([], [])
    with pytest.raises(ValueError):
        compute_metrics([0, 1], [0.5])
    with pytest.raises(ValueError):
        compute_metrics([0, 2], [0.5, 0.5])
    with pytest.raises(ValueError):
        compute_metrics([0, 1], [0.5, 1.5])
    with pytest.raises(ValueError):
        compute_metrics([0, 1], [0.5, float("nan")])


def test_youden_picks_the_separating_cut():
    # reals at .1 .2 .3, fakes at .6 .7 .8: cutting at .6 catches every fake and no real (J = 1)
    youden = compute_metrics([0, 0, 0, 1, 1, 1], [0.1, 0.2, 0.3, 0.6, 0.7, 0.8])["thresholds_suggested"]["youden_j"]
    assert youden["threshold"] == pytest.approx(0.6)
    assert youden["j"] == pytest.approx(1.0)
    assert (youden["fpr"], youden["tpr"]) == (0.0, 1.0)


def test_fpr_targets_by_hand():
    # 100 reals at 0.00 .. 0.99 and fakes at .5 .985 .995 1.0
    # FPR <= 1%: at most one real >= cut. Cut .985 lets only .99 through; .98 would let two. TPR 3/4.
    # FPR <= 5%: at most five reals (.95 .. .99): cut .95; the next score down (.94) lets six. TPR 3/4.
    y = [0] * 100 + [1] * 4
    p = list(np.arange(100) / 100) + [0.5, 0.985, 0.995, 1.0]
    suggested = compute_metrics(y, p)["thresholds_suggested"]
    assert suggested["at_fpr_1pct"]["threshold"] == pytest.approx(0.985)
    assert suggested["at_fpr_1pct"]["fpr"] == pytest.approx(0.01)
    assert suggested["at_fpr_1pct"]["tpr"] == pytest.approx(0.75)
    assert suggested["at_fpr_5pct"]["threshold"] == pytest.approx(0.95)
    assert suggested["at_fpr_5pct"]["fpr"] == pytest.approx(0.05)
    assert suggested["at_fpr_5pct"]["tpr"] == pytest.approx(0.75)


@pytest.mark.parametrize("key, target", [("at_fpr_1pct", 0.01), ("at_fpr_5pct", 0.05)])
def test_fpr_target_cut_is_the_lowest_that_respects_it(key, target):
    rng = np.random.default_rng(7)
    y = rng.integers(0, 2, 3000)
    p = np.clip(rng.normal(0.35 + 0.3 * y, 0.15), 0, 1)
    cut = compute_metrics(y, p)["thresholds_suggested"][key]["threshold"]
    reals = p[y == 0]
    assert (reals >= cut).mean() <= target
    next_lower = p[p < cut].max()  # the next candidate cut down breaks the target
    assert (reals >= next_lower).mean() > target


def test_curves_are_downsampled_keeping_the_ends():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 5000)
    p = np.clip(rng.normal(0.4 + 0.2 * y, 0.2), 0, 1)
    metrics = compute_metrics(y, p)
    roc, pr = metrics["roc_curve"], metrics["pr_curve"]
    assert 2 < len(roc["fpr"]) <= 200 and len(roc["fpr"]) == len(roc["tpr"]) == len(roc["thresholds"])
    assert (roc["fpr"][0], roc["tpr"][0]) == (0.0, 0.0) and (roc["fpr"][-1], roc["tpr"][-1]) == (1.0, 1.0)
    assert 2 < len(pr["recall"]) <= 200 and len(pr["recall"]) == len(pr["precision"]) == len(pr["thresholds"])
    assert pr["recall"][0] == 1.0 and pr["recall"][-1] == 0.0
    assert all(math.isfinite(t) for t in roc["thresholds"] + pr["thresholds"])


def test_small_curves_keep_every_point(worked):
    # cuts .9 .8 .6 .4 .1 plus "nothing is fake" -> 6 points
    roc = worked["roc_curve"]
    assert roc["fpr"] == [0.0, 0.0, 0.0, 0.5, 0.5, 1.0]
    assert roc["tpr"] == pytest.approx([0.0, 1 / 3, 2 / 3, 2 / 3, 1.0, 1.0])


def test_baselines():
    baselines = compute_metrics(Y, P)["baselines"]
    assert baselines["random"] == {"accuracy": 0.5, "balanced_accuracy": 0.5, "roc_auc": 0.5,
                                   "average_precision": pytest.approx(3 / 5)}  # prevalence of fakes
    assert baselines["majority"]["label"] == "fake"
    assert baselines["majority"]["accuracy"] == pytest.approx(3 / 5)
    assert baselines["majority"]["balanced_accuracy"] == 0.5

    mostly_real = compute_metrics([0, 0, 0, 1], [0.1, 0.2, 0.3, 0.4])["baselines"]
    assert mostly_real["majority"] == {"label": "real", "accuracy": 0.75, "balanced_accuracy": 0.5}
    assert mostly_real["random"]["average_precision"] == pytest.approx(0.25)


def test_per_group_metrics_by_hand():
    # group a: y [0,1], p [.2,.7] -> both right: accuracy 1, AUC 1, AP 1, F1 1
    # group b: y [1,1,0], p [.3,.9,.6] -> preds [0,1,1]: accuracy 1/3; tp 1, fp 1, fn 1 -> F1 = 2/(2+1+1) = 1/2
    #          AUC: fakes {.3,.9} vs real {.6} -> 1 of 2 pairs; AP: .9 F (P 1, R 1/2), .6 R, .3 F (P 2/3, R 1)
    #          -> 1/2*1 + 1/2*2/3 = 5/6
    # group c: one fake only -> ranking metrics undefined
    y = [0, 1, 1, 1, 0, 1]
    p = [0.2, 0.7, 0.3, 0.9, 0.6, 0.8]
    groups = ["a", "a", "b", "b", "b", "c"]
    result = per_group_metrics(y, p, groups)
    assert list(result) == ["a", "b", "c"]
    assert result["a"] == {"n": 2, "n_real": 1, "n_fake": 1, "accuracy": 1.0, "average_precision": 1.0,
                           "roc_auc": 1.0, "f1_fake": 1.0}
    b = result["b"]
    assert (b["n"], b["n_real"], b["n_fake"]) == (3, 1, 2)
    assert b["accuracy"] == pytest.approx(1 / 3)
    assert b["f1_fake"] == pytest.approx(1 / 2)
    assert b["roc_auc"] == pytest.approx(1 / 2)
    assert b["average_precision"] == pytest.approx(5 / 6)
    assert result["c"]["roc_auc"] is None and result["c"]["average_precision"] is None
    assert result["c"]["accuracy"] == 1.0
    json.dumps(result, allow_nan=False)

    with pytest.raises(ValueError):
        per_group_metrics(y, p, groups[:-1])


# ---------------------------------------------------------------- plots

def _assert_png(path, min_size=(300, 250)):
    assert path.is_file() and path.stat().st_size > 2000
    with Image.open(path) as image:
        assert image.format == "PNG"
        width, height = image.size
        assert width >= min_size[0] and height >= min_size[1]
        assert width <= 2000 and height <= 1000
        # a drawn figure, not a blank canvas: many distinct colours (lines, text, antialiasing)
        colours = image.convert("RGB").getcolors(maxcolors=100_000)
        assert colours is None or len(colours) > 20


@pytest.fixture(scope="module")
def realistic() -> dict:
    rng = np.random.default_rng(5)
    y = rng.integers(0, 2, 400)
    p = np.clip(rng.normal(0.3 + 0.4 * y, 0.2), 0, 1)
    return compute_metrics(y, p)


@pytest.mark.parametrize("save", [plots.save_confusion_matrix, plots.save_roc, plots.save_pr,
                                  plots.save_histogram, plots.save_reliability])
def test_metric_plots_write_pngs(save, realistic, tmp_path):
    path = save(realistic, tmp_path / "out" / f"{save.__name__}.png")
    _assert_png(path)
    with Image.open(path) as image:
        assert image.size == (500, 400)  # 5 x 4 inches at 100 dpi


@pytest.mark.parametrize("save", [plots.save_confusion_matrix, plots.save_roc, plots.save_pr,
                                  plots.save_histogram, plots.save_reliability])
def test_metric_plots_survive_one_class(save, tmp_path):
    metrics = compute_metrics([1, 1, 1], [0.2, 0.7, 0.9])
    _assert_png(save(metrics, tmp_path / "one_class.png"))


def test_learning_curve_png_with_missing_values(tmp_path):
    curve = [
        {"epoch": 1, "train_loss": 0.69, "val_loss": 0.65, "train_accuracy": 0.55, "val_accuracy": None},
        {"epoch": 2, "train_loss": 0.50, "val_loss": None, "train_accuracy": 0.75, "val_accuracy": 0.70},
        {"epoch": 3, "train_loss": 0.35, "val_loss": 0.40, "train_accuracy": 0.86, "val_accuracy": 0.80},
    ]
    _assert_png(plots.save_learning_curve(curve, tmp_path / "learning.png"))
    _assert_png(plots.save_learning_curve([{"epoch": 1, "train_loss": None}], tmp_path / "empty.png"))


def test_robustness_png(tmp_path):
    sweeps = {
        "jpeg_quality": [{"value": q, "average_precision": 0.5 + q / 250, "accuracy": 0.5 + q / 300}
                         for q in (30, 50, 70, 90, 100)],
        "blur_sigma": [{"value": s, "average_precision": 0.95 - 0.1 * s, "accuracy": 0.9 - 0.1 * s}
                       for s in (0, 1, 2, 3)],
        "downscale": [{"value": 0.5, "average_precision": None, "accuracy": 0.6},
                      {"value": 1.0, "average_precision": 0.9, "accuracy": 0.85}],
    }
    path = plots.save_robustness(sweeps, tmp_path / "robustness.png")
    _assert_png(path)
    with Image.open(path) as image:
        assert image.size[0] > image.size[1]  # panels side by side
