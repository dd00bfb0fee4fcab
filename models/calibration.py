"""A card's calibration: plain data that maps the model's own P(fake) to a calibrated one.

`forensight calibrate` fits it on the examiner's known-real (and known-AI-generated) photos and stores it on a
new card (training/calibration.py does the fitting). Every scan applies it here, in one function, to the
picture's score and to each tile's, so the CLI, the desktop app, the CSV and the reports all show the same
calibrated P(fake). The map works on the logit of the model's P(fake) and never decreases, so it keeps the
model's ranking of pictures: calibration changes what a score means, not which picture looks more generated.

Methods:
  none         the model's own P(fake); only the threshold was set (no known fakes to fit a probability on)
  temperature  sigmoid(a·z), a > 0                       (z = logit of the model's P(fake))
  platt        sigmoid(a·z + b), a > 0
  isotonic     piecewise linear through points (x = z, y = P(fake)), x increasing, y never decreasing
"""
from __future__ import annotations

import bisect
import math
from typing import Any

METHODS = ("none", "temperature", "platt", "isotonic")
MAX_ISOTONIC_POINTS = 10_000  # far more than any calibration set needs; keeps a card small
# P(fake) is clipped this far from 0 and 1 before its logit: a float64 sigmoid gives exactly 1.0 from a logit
# of 37 on, and the logit of 1.0 is infinite
_EDGE = 1e-15


def logit(p: float) -> float:
    p = min(max(p, _EDGE), 1.0 - _EDGE)
    return math.log(p) - math.log1p(-p)


def sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)  # never overflows for z < 0
    return e / (1.0 + e)


def calibrated(calibration: dict[str, Any] | None, p_fake: float) -> float:
    """The calibrated P(fake) of the model's P(fake); the score as it is for a card without calibration, and
    NaN stays NaN (the engine reports it as an error)."""
    if not calibration or calibration.get("method", "none") == "none" or math.isnan(p_fake):
        return p_fake
    params = calibration["params"]
    z = logit(p_fake)
    if calibration["method"] == "temperature":
        return sigmoid(params["a"] * z)
    if calibration["method"] == "platt":
        return sigmoid(params["a"] * z + params["b"])
    return _interpolate(params["x"], params["y"], z)


def _interpolate(xs: list[float], ys: list[float], z: float) -> float:
    """np.interp of one value (what scikit-learn's IsotonicRegression predicts, clipped at both ends)."""
    if z <= xs[0]:
        return float(ys[0])
    if z >= xs[-1]:
        return float(ys[-1])
    i = bisect.bisect_right(xs, z)
    x0, x1, y0, y1 = xs[i - 1], xs[i], ys[i - 1], ys[i]
    return float(y0 + (y1 - y0) * (z - x0) / (x1 - x0))


def calibration_problem(value: Any) -> tuple[str, Any, str] | None:
    """(field, value, what it must be) for the first wrong part of a card's calibration, None when it is
    usable. An empty object means no calibration (every card written before calibration existed)."""
    if not isinstance(value, dict):
        return "calibration", value, "an object ({} for none)"
    if not value:
        return None
    method, params = value.get("method"), value.get("params", {})
    if method not in METHODS:
        return "calibration.method", method, "one of " + ", ".join(METHODS)
    if not isinstance(params, dict):
        return "calibration.params", params, "an object"
    if not isinstance(value.get("fitted_on", {}), dict):
        return "calibration.fitted_on", value.get("fitted_on"), "an object"
    if method in ("temperature", "platt"):
        a = params.get("a")
        if not (_finite(a) and 0 < a <= 1000):
            return "calibration.params.a", a, "a number above 0 and at most 1000 (a calibration never reverses " \
                                              "the model's ranking)"
        if method == "platt" and not (_finite(params.get("b")) and abs(params["b"]) <= 1000):
            return "calibration.params.b", params.get("b"), "a number from -1000 to 1000"
    if method == "isotonic":
        return _isotonic_problem(params.get("x"), params.get("y"))
    return None


def _isotonic_problem(xs: Any, ys: Any) -> tuple[str, Any, str] | None:
    if not (isinstance(xs, list) and 2 <= len(xs) <= MAX_ISOTONIC_POINTS and all(_finite(v) for v in xs)
            and all(a < b for a, b in zip(xs, xs[1:]))):
        return "calibration.params.x", xs, f"2 to {MAX_ISOTONIC_POINTS:,} increasing finite numbers"
    if not (isinstance(ys, list) and len(ys) == len(xs) and all(_finite(v) and 0 <= v <= 1 for v in ys)
            and all(a <= b for a, b in zip(ys, ys[1:]))):
        return "calibration.params.y", ys, "as many numbers from 0 to 1 as x has, never decreasing"
    return None


def _finite(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an int too large for a float
        return False


def describe(calibration: dict[str, Any] | None) -> str:
    """One sentence for a report, the CSV and the model manager; "" for a card without calibration."""
    if not calibration:
        return ""
    fit = calibration.get("fitted_on", {})
    fit = fit if isinstance(fit, dict) else {}  # a card read back from a damaged case: say what is there
    method = calibration.get("method", "none")
    parts = [f"calibrated on {fit.get('n_real', '?')} real and {fit.get('n_fake', 0)} AI-generated photos "
             f"(file list SHA-256 {str(fit.get('file_list_sha256', ''))[:16]})"]
    if method == "none":
        parts.append("P(fake) is the model's own (no known AI-generated photos to fit it on); only the threshold "
                     "was set")
    else:
        parts.append(f"{method} scaling, held-out log loss {_num(fit.get('log_loss_calibrated'))} "
                     f"(uncalibrated {_num(fit.get('log_loss_uncalibrated'))})")
    parts.append(f"threshold {_num(fit.get('threshold'), 6)} called {_pct(fit.get('fpr'))} of the real photos "
                 f"AI-generated (95% upper bound {_pct(fit.get('fpr_upper_95'))}, "
                 f"target {_pct(fit.get('target_fpr'))})")
    if fit.get("tpr") is not None:
        parts.append(f"{_pct(fit['tpr'])} of the AI-generated photos were called AI-generated")
    if fit.get("case_overlap"):
        parts.append(f"WARNING: {fit['case_overlap']} of these photos are also in the case")
    return "; ".join(parts)


def _num(value: Any, digits: int = 3) -> str:
    return f"{value:.{digits}g}" if _finite(value) else "?"


def _pct(value: Any) -> str:
    return f"{100 * value:.2g}%" if _finite(value) else "?"
