"""Calibrating a detector on an examiner's own photos: the maths, from scores to a card's calibration.

Plain numbers in, plain data out (no Qt, no case, no library). The decisions, and why:

* The threshold is the lowest one whose false-positive rate on the examiner's real photos has a one-sided 95%
  Clopper–Pearson upper bound at or below the target, so the stated rate holds with 95% confidence and not only
  on these photos. A set too small for that even with no false positive is refused with the size it needs:
  with none flagged the bound is 1 - 0.05^(1/n), so 1% needs 299 real photos.
* A probability calibration needs known AI-generated photos: with only real ones there is nothing to say how
  likely a high score is to be a fake, so P(fake) stays the model's own and only the threshold is set.
* Candidates (the model's own P(fake), temperature, Platt, and isotonic with 100 photos of each class or more)
  are compared by their log loss on photos they were not fitted on (stratified 5-fold cross-validation); the
  model's own P(fake) is a candidate, so a calibration is used only when it does better there.
* Both classes weigh the same in every fit and measure, so the calibrated P(fake) means "as if real and
  AI-generated pictures were equally common", whatever the ratio of the examiner's folders; the threshold,
  not the probability, carries the false-positive rate.
"""
from __future__ import annotations

import io
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from models.calibration import MAX_ISOTONIC_POINTS, calibrated, logit
from models.labels import band_around

CONFIDENCE = 0.95
FOLDS = 5
MIN_FAKES = 20  # five folds of four known fakes at least; fewer cannot say which calibration generalises
# Isotonic regression has a step per group of photos and overfits small sets (Niculescu-Mizil & Caruana 2005; on
# the starter's held-out subset, chosen on 30 + 30 photos, it raised the log loss on the other half from 0.31 to
# 0.45): it is a candidate only with this many photos of each class.
MIN_PER_CLASS_ISOTONIC = 100
_EPS = 1e-15


class CalibrationTooSmall(ValueError):
    """The real photos cannot show the requested false-positive rate (a sentence with the size needed)."""


# ---- the false-positive rate and its upper bound ---------------------------------------------------------
def clopper_pearson_upper(k: int, n: int, confidence: float = CONFIDENCE) -> float:
    """One-sided upper confidence bound of a rate seen k times in n (exact binomial, Clopper–Pearson)."""
    from scipy.stats import beta

    if n <= 0 or not 0 <= k <= n:
        raise ValueError(f"need 0 ≤ k ≤ n and n > 0, not k={k}, n={n}")
    return 1.0 if k == n else float(beta.ppf(confidence, k + 1, n - k))


def reals_needed(target: float, confidence: float = CONFIDENCE) -> int:
    """The fewest real photos whose upper bound can reach `target` (none of them flagged)."""
    n = max(1, math.ceil(math.log(1 - confidence) / math.log1p(-target)))
    while clopper_pearson_upper(0, n, confidence) > target:  # guard the closed form against rounding
        n += 1
    while n > 1 and clopper_pearson_upper(0, n - 1, confidence) <= target:
        n -= 1
    return n


def check_enough_reals(n_real: int, target: float, confidence: float = CONFIDENCE) -> None:
    needed = reals_needed(target, confidence)
    if n_real < needed:
        raise CalibrationTooSmall(
            f"{n_real} real photos cannot show a false-positive rate of {100 * target:g}%: even with none "
            f"flagged, its {100 * confidence:g}% upper bound would be "
            f"{100 * clopper_pearson_upper(0, max(n_real, 1), confidence):.2g}%. It needs at least {needed} "
            f"real photos ({needed - n_real} more), or a higher --target-fpr")


def allowed_false_positives(n: int, target: float, confidence: float = CONFIDENCE) -> int:
    """The most real photos that may score above the threshold while the upper bound stays ≤ target."""
    check_enough_reals(n, target, confidence)
    k = 0
    while k < n and clopper_pearson_upper(k + 1, n, confidence) <= target:
        k += 1
    return k


@dataclass
class Threshold:
    threshold: float
    band: tuple[float, float]  # inconclusive from band[0] up to the threshold
    n_real: int
    false_positives: int  # real photos scoring above the threshold (called AI-generated)
    fpr: float
    fpr_upper: float
    n_fake: int = 0
    true_positives: int | None = None
    tpr: float | None = None


def threshold_for_fpr(real_p: np.ndarray, fake_p: np.ndarray | None, target: float,
                      confidence: float = CONFIDENCE) -> Threshold:
    """The threshold at the (k+1)-th highest real score, k = allowed_false_positives: a picture is called
    AI-generated above it, so at most k real photos are. The inconclusive band lies below it, so it never
    turns a real photo into a false positive."""
    real_p = np.asarray(real_p, dtype=float)
    k = allowed_false_positives(len(real_p), target, confidence)
    threshold = max(float(np.sort(real_p)[::-1][k]), 1e-12)  # > 0, so the band below it is never empty
    false_positives = int((real_p > threshold).sum())
    result = Threshold(threshold, (band_around(threshold)[0], threshold), len(real_p), false_positives,
                       false_positives / len(real_p), clopper_pearson_upper(false_positives, len(real_p), confidence))
    if fake_p is not None and len(fake_p):
        hits = int((np.asarray(fake_p, dtype=float) > threshold).sum())
        result.n_fake, result.true_positives, result.tpr = len(fake_p), hits, hits / len(fake_p)
    return result


# ---- measures -------------------------------------------------------------------------------------------
def balanced_weights(y: np.ndarray) -> np.ndarray:
    """Each class weighs half of the total, whatever its count."""
    y = np.asarray(y)
    counts = {label: max(1, int((y == label).sum())) for label in (0, 1)}
    return np.where(y == 1, len(y) / (2 * counts[1]), len(y) / (2 * counts[0]))


def log_loss(y: np.ndarray, p: np.ndarray, w: np.ndarray | None = None) -> float:
    """Mean negative log-likelihood of labels y (1 = AI-generated) under P(fake) p, weighted by w (None: plain
    mean); the project's one log loss (calibration, ensembles, linear probes)."""
    y = np.asarray(y, dtype=float)
    p = np.clip(np.asarray(p, dtype=float), _EPS, 1 - _EPS)
    w = np.ones(len(y)) if w is None else np.asarray(w, dtype=float)
    return float(-(w * (y * np.log(p) + (1 - y) * np.log1p(-p))).sum() / w.sum())


def reliability_bins(y: np.ndarray, p: np.ndarray, w: np.ndarray, bins: int = 10) -> list[dict[str, float]]:
    """Per P(fake) bin: mean P(fake), weighted fraction of fakes, and the bin's share of the weight."""
    index = np.clip((np.asarray(p) * bins).astype(int), 0, bins - 1)
    out = []
    for b in range(bins):
        inside = index == b
        if inside.any():
            weight = w[inside].sum()
            out.append({"low": b / bins, "high": (b + 1) / bins,
                        "confidence": float(np.average(p[inside], weights=w[inside])),
                        "fraction_fake": float((w[inside] * y[inside]).sum() / weight),
                        "share": float(weight / w.sum())})
    return out


def expected_calibration_error(y: np.ndarray, p: np.ndarray, w: np.ndarray, bins: int = 10) -> float:
    return float(sum(b["share"] * abs(b["fraction_fake"] - b["confidence"]) for b in reliability_bins(y, p, w, bins)))


# ---- the candidates -------------------------------------------------------------------------------------
def predict(method: str, params: dict[str, Any], p: np.ndarray) -> np.ndarray:
    """Through models.calibration.calibrated itself, so what is measured here is what a scan will give."""
    calibration = {"method": method, "params": params}
    return np.array([calibrated(calibration, float(v)) for v in p])


def fit_method(method: str, z: np.ndarray, y: np.ndarray, w: np.ndarray) -> dict[str, Any]:
    """The parameters of one method, fitted by weighted maximum likelihood (isotonic: weighted least squares)."""
    if method == "none":
        return {}
    if method == "isotonic":
        return _fit_isotonic(z, y, w)
    from scipy.optimize import minimize

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        a, b = theta[0], theta[1] if method == "platt" else 0.0
        s = a * z + b
        nll = float((w * (np.logaddexp(0.0, s) - y * s)).sum())
        g = w * (1.0 / (1.0 + np.exp(-s)) - y)
        grad = np.array([(g * z).sum(), g.sum()])
        return nll, grad if method == "platt" else grad[:1]

    start = np.array([1.0, 0.0] if method == "platt" else [1.0])
    bounds = [(1e-3, 1000.0), (-1000.0, 1000.0)][:len(start)]  # a > 0: never reverse the model's ranking
    theta = minimize(loss, start, jac=True, method="L-BFGS-B", bounds=bounds).x
    return {"a": float(theta[0]), "b": float(theta[1])} if method == "platt" else {"a": float(theta[0])}


def _fit_isotonic(z: np.ndarray, y: np.ndarray, w: np.ndarray) -> dict[str, Any]:
    from sklearn.isotonic import IsotonicRegression

    eps = 1.0 / (len(y) + 2)  # no calibrated certainty from a finite set: Laplace's rule of succession
    model = IsotonicRegression(y_min=eps, y_max=1 - eps, increasing=True, out_of_bounds="clip")
    model.fit(z, y, sample_weight=w)
    xs, ys = model.X_thresholds_.astype(float), model.y_thresholds_.astype(float)
    if len(xs) > MAX_ISOTONIC_POINTS:  # thin evenly, keeping both ends
        keep = np.unique(np.linspace(0, len(xs) - 1, MAX_ISOTONIC_POINTS).round().astype(int))
        xs, ys = xs[keep], ys[keep]
    if len(xs) < 2:
        raise ValueError("isotonic regression needs at least two distinct scores")
    return {"x": xs.tolist(), "y": np.maximum.accumulate(ys).tolist()}


METHOD_ORDER = ("none", "temperature", "platt", "isotonic")  # simplest first: a tie keeps the simpler one


def held_out_predictions(method: str, p: np.ndarray, y: np.ndarray, w: np.ndarray) -> np.ndarray | None:
    """Each photo's calibrated P(fake) from the calibration fitted on the other folds; None if it cannot fit."""
    from sklearn.model_selection import StratifiedKFold

    z = np.array([logit(float(v)) for v in p])
    out = np.empty(len(p))
    for train, test in StratifiedKFold(FOLDS, shuffle=True, random_state=0).split(z, y):
        try:
            params = fit_method(method, z[train], y[train], w[train])
        except ValueError:
            return None
        out[test] = predict(method, params, p[test])
    return out


# ---- the whole fit --------------------------------------------------------------------------------------
@dataclass
class CalibrationFit:
    method: str
    params: dict[str, Any]
    threshold: Threshold
    target_fpr: float
    note: str = ""  # why no probability calibration was fitted, when none was
    held_out_log_loss: dict[str, float] = field(default_factory=dict)  # candidate → log loss (with fakes)
    ece_uncalibrated: float | None = None
    ece_calibrated: float | None = None
    raw: tuple[np.ndarray, np.ndarray] = (np.empty(0), np.empty(0))  # the model's own P(fake): reals, fakes
    held_out: np.ndarray | None = None  # the chosen method's held-out P(fake), reals then fakes

    @property
    def log_loss_uncalibrated(self) -> float | None:
        return self.held_out_log_loss.get("none")

    @property
    def log_loss_calibrated(self) -> float | None:
        return self.held_out_log_loss.get(self.method)


def fit_calibration(real_p, fake_p=None, target_fpr: float = 0.01,
                    confidence: float = CONFIDENCE) -> CalibrationFit:
    """Choose and fit the calibration of the model's P(fake), then the threshold on the calibrated reals."""
    if not 0 < target_fpr < 1:
        raise ValueError(f"the target false-positive rate must be between 0 and 1, not {target_fpr}")
    real_p = np.asarray(real_p, dtype=float)
    fake_p = np.asarray(fake_p if fake_p is not None else [], dtype=float)
    check_enough_reals(len(real_p), target_fpr, confidence)  # before any fitting: the cheap refusal first
    fit = CalibrationFit("none", {}, None, target_fpr, raw=(real_p, fake_p))
    if len(fake_p) < MIN_FAKES or len(real_p) < FOLDS:
        fit.note = ("no known AI-generated photos" if not len(fake_p) else
                    f"{len(fake_p)} known AI-generated and {len(real_p)} real photos (a calibration needs "
                    f"{MIN_FAKES} and {FOLDS})") + ": P(fake) stays the model's own and only the threshold is set"
    else:
        _choose(fit, real_p, fake_p)
    fit.threshold = threshold_for_fpr(predict(fit.method, fit.params, real_p),
                                      predict(fit.method, fit.params, fake_p) if len(fake_p) else None,
                                      target_fpr, confidence)
    return fit


def _choose(fit: CalibrationFit, real_p: np.ndarray, fake_p: np.ndarray) -> None:
    p = np.concatenate([real_p, fake_p])
    y = np.concatenate([np.zeros(len(real_p)), np.ones(len(fake_p))])
    w = balanced_weights(y)
    held_out = {}
    small = min(len(real_p), len(fake_p)) < MIN_PER_CLASS_ISOTONIC
    for method in [m for m in METHOD_ORDER if not (m == "isotonic" and small)]:
        predictions = p if method == "none" else held_out_predictions(method, p, y, w)
        if predictions is not None:
            held_out[method] = predictions
            fit.held_out_log_loss[method] = log_loss(y, predictions, w)
    fit.method = min(fit.held_out_log_loss, key=lambda m: (round(fit.held_out_log_loss[m], 12),
                                                           METHOD_ORDER.index(m)))
    fit.params = fit_method(fit.method, np.array([logit(float(v)) for v in p]), y, w)
    fit.held_out = held_out[fit.method]
    fit.ece_uncalibrated = expected_calibration_error(y, p, w)
    fit.ece_calibrated = expected_calibration_error(y, fit.held_out, w)


def card_calibration(fit: CalibrationFit, fitted_on: dict[str, Any]) -> dict[str, Any]:
    """The card's calibration field: the map, and what it was fitted on and achieved (`fitted_on` adds the
    caller's facts: model, file list hash, dates)."""
    t = fit.threshold
    facts = {"n_real": t.n_real, "n_fake": len(fit.raw[1]), "target_fpr": fit.target_fpr,
             "confidence": CONFIDENCE, "threshold": t.threshold, "false_positives": t.false_positives,
             "fpr": t.fpr, "fpr_upper_95": t.fpr_upper, "true_positives": t.true_positives, "tpr": t.tpr,
             "held_out_log_loss": fit.held_out_log_loss, "log_loss_uncalibrated": fit.log_loss_uncalibrated,
             "log_loss_calibrated": fit.log_loss_calibrated, "ece_uncalibrated": fit.ece_uncalibrated,
             "ece_calibrated": fit.ece_calibrated, "cross_validation_folds": FOLDS if fit.held_out_log_loss else 0,
             "classes_weighted_equally": True, "note": fit.note}
    return {"method": fit.method, "params": fit.params, "fitted_on": facts | fitted_on}


# ---- the reliability diagram ----------------------------------------------------------------------------
def reliability_png(fit: CalibrationFit, title: str) -> bytes:
    """Left: reliability before and after (held-out), when there are fakes; right: the calibrated scores of
    the reals (and fakes) with the threshold. Drawn on a bare Agg figure: no window, safe on any thread."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(10, 4.2), dpi=100)
    FigureCanvasAgg(figure)
    left, right = figure.subplots(1, 2)
    _draw_reliability(left, fit)
    real, fake = (predict(fit.method, fit.params, scores) for scores in fit.raw)
    edges = np.linspace(0, 1, 41)
    right.hist(real, bins=edges, color="tab:blue", alpha=0.6, label=f"real ({len(real)})")
    if len(fake):
        right.hist(fake, bins=edges, color="tab:red", alpha=0.6, label=f"AI-generated ({len(fake)})")
    t = fit.threshold
    right.axvline(t.threshold, color="black", linestyle="--",
                  label=f"threshold {t.threshold:.4g}: FPR {100 * t.fpr:.2g}% (≤ {100 * t.fpr_upper:.2g}%)")
    right.set_xlabel("calibrated P(fake)" if fit.method != "none" else "P(fake) (the model's own)")
    right.set_ylabel("photos")
    right.set_yscale("log")
    right.legend(fontsize="small")
    figure.suptitle(title, fontsize="medium")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def _draw_reliability(ax, fit: CalibrationFit) -> None:
    ax.plot([0, 1], [0, 1], linestyle="--", color="gray", label="perfect calibration")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("P(fake)")
    ax.set_ylabel("fraction AI-generated (classes weighted equally)")
    if fit.held_out is None:
        ax.text(0.5, 0.5, "no known AI-generated photos:\nreliability cannot be measured", ha="center",
                va="center", color="dimgray", transform=ax.transAxes)
        return
    real, fake = fit.raw
    p = np.concatenate([real, fake])
    y = np.concatenate([np.zeros(len(real)), np.ones(len(fake))])
    w = balanced_weights(y)
    for scores, name, colour in ((p, f"uncalibrated (ECE {fit.ece_uncalibrated:.3f})", "tab:orange"),
                                 (fit.held_out, f"{fit.method}, held out (ECE {fit.ece_calibrated:.3f})", "tab:green")):
        bins = reliability_bins(y, scores, w)
        ax.plot([b["confidence"] for b in bins], [b["fraction_fake"] for b in bins], "o-", color=colour,
                markersize=4, label=name)
    ax.legend(fontsize="small", loc="upper left")
