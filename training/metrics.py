"""Metrics for a binary real/fake detector, as plain JSON-ready dicts.

Conventions: label 1 = fake (AI-generated), 0 = real; scores are P(fake) in [0, 1];
an image is called fake when P(fake) >= threshold. Anything a metric cannot define
(one class only, a 0/0 ratio) comes back as None, never NaN and never an exception.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
from sklearn import metrics as skm

REAL, FAKE = 0, 1
LOG_LOSS_EPS = 1e-7
MAX_CURVE_POINTS = 200
HISTOGRAM_BINS = 20
CALIBRATION_BINS = 10
# A threshold above every possible score: nothing is called fake (sklearn's +inf, kept JSON-safe).
ABOVE_ALL = math.nextafter(1.0, 2.0)

ArrayLike = Sequence[float] | np.ndarray


# ---------------------------------------------------------------- input and small helpers

def _as_arrays(y_true: ArrayLike, p_fake: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Validated (labels as int 0/1, scores as float) arrays of the same length."""
    y = np.asarray(y_true).reshape(-1)
    p = np.asarray(p_fake, dtype=float).reshape(-1)
    if y.size == 0:
        raise ValueError("no samples: metrics of an empty set are meaningless")
    if y.size != p.size:
        raise ValueError(f"{y.size} labels but {p.size} scores")
    if not np.isin(y, (REAL, FAKE)).all():
        raise ValueError("labels must be 0 (real) or 1 (fake)")
    if not np.isfinite(p).all() or p.min() < 0.0 or p.max() > 1.0:
        raise ValueError("scores must be probabilities in [0, 1]")
    return y.astype(int), p


def _predict(p: np.ndarray, threshold: float) -> np.ndarray:
    return (p >= threshold).astype(int)


def _num(value: Any) -> float | None:
    """A plain float, or None for NaN/inf (undefined) values."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _both_classes(y: np.ndarray) -> bool:
    return bool((y == REAL).any() and (y == FAKE).any())


def _safe_div(num: float, den: float) -> float | None:
    return num / den if den else None


def _downsample(*columns: np.ndarray, limit: int = MAX_CURVE_POINTS) -> list[list[float]]:
    """Evenly thin parallel columns to at most `limit` rows, always keeping the first and last."""
    n = len(columns[0])
    keep = np.unique(np.round(np.linspace(0, n - 1, min(n, limit))).astype(int))
    return [[float(v) for v in col[keep]] for col in columns]


# ---------------------------------------------------------------- metric groups

def _confusion(y: np.ndarray, pred: np.ndarray) -> dict[str, int]:
    tn, fp, fn, tp = skm.confusion_matrix(y, pred, labels=[REAL, FAKE]).ravel()
    return {"tn": int(tn), "fp": int(fp), "fn": int(fn), "tp": int(tp)}


def _per_class(y: np.ndarray, pred: np.ndarray) -> dict[str, float | None]:
    # zero_division=nan: a 0/0 precision or recall is undefined (-> None), not silently 0.
    precision, recall, f1, _ = skm.precision_recall_fscore_support(
        y, pred, labels=[REAL, FAKE], average=None, zero_division=np.nan)
    out: dict[str, float | None] = {}
    for index, name in ((FAKE, "fake"), (REAL, "real")):
        out[f"precision_{name}"] = _num(precision[index])
        out[f"recall_{name}"] = _num(recall[index])
        out[f"f1_{name}"] = _num(f1[index])
    return out


def _ranking(y: np.ndarray, p: np.ndarray) -> dict[str, float | None]:
    """Threshold-free metrics; they need both classes to rank against each other."""
    if not _both_classes(y):
        return {"roc_auc": None, "average_precision": None}
    return {"roc_auc": _num(skm.roc_auc_score(y, p)),
            "average_precision": _num(skm.average_precision_score(y, p))}


def _agreement(y: np.ndarray, pred: np.ndarray) -> dict[str, float | None]:
    """Chance-corrected agreement; meaningless (and warned about by sklearn) with one true class."""
    if not _both_classes(y):
        return {"balanced_accuracy": None, "mcc": None, "cohen_kappa": None}
    return {"balanced_accuracy": _num(skm.balanced_accuracy_score(y, pred)),
            "mcc": _num(skm.matthews_corrcoef(y, pred)),
            "cohen_kappa": _num(skm.cohen_kappa_score(y, pred))}


def _log_loss(y: np.ndarray, p: np.ndarray) -> float | None:
    clipped = np.clip(p, LOG_LOSS_EPS, 1.0 - LOG_LOSS_EPS)
    # labels= keeps it defined when only one class is present.
    return _num(skm.log_loss(y, clipped, labels=[REAL, FAKE]))


def _roc_curve(y: np.ndarray, p: np.ndarray) -> dict[str, list[float]] | None:
    if not _both_classes(y):
        return None
    fpr, tpr, thresholds = skm.roc_curve(y, p, drop_intermediate=True)
    thresholds = np.minimum(thresholds, ABOVE_ALL)  # the leading +inf is not valid JSON
    fpr, tpr, thresholds = _downsample(fpr, tpr, thresholds)
    return {"fpr": fpr, "tpr": tpr, "thresholds": thresholds}


def _pr_curve(y: np.ndarray, p: np.ndarray) -> dict[str, list[float]] | None:
    if not _both_classes(y):
        return None
    precision, recall, thresholds = skm.precision_recall_curve(y, p)
    # sklearn's last point (recall 0, precision 1) has no threshold: it is "call nothing fake".
    thresholds = np.append(thresholds, ABOVE_ALL)
    precision, recall, thresholds = _downsample(precision, recall, thresholds)
    return {"precision": precision, "recall": recall, "thresholds": thresholds}


def _bin_index(p: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bins are [low, high); the last one also takes p == 1."""
    return np.clip(np.searchsorted(edges, p, side="right") - 1, 0, len(edges) - 2)


def _histogram(y: np.ndarray, p: np.ndarray) -> dict[str, list]:
    # k/n rather than linspace, so that edges like 0.3 are the exact floats users type.
    edges = np.arange(HISTOGRAM_BINS + 1) / HISTOGRAM_BINS
    index = _bin_index(p, edges)
    counts = {name: np.bincount(index[y == label], minlength=HISTOGRAM_BINS)
              for name, label in (("real", REAL), ("fake", FAKE))}
    return {"bins": [float(e) for e in edges],
            "real": [int(c) for c in counts["real"]],
            "fake": [int(c) for c in counts["fake"]]}


def _calibration(y: np.ndarray, p: np.ndarray) -> dict[str, Any]:
    """Reliability of P(fake): per bin, mean predicted P(fake) against the observed fraction of fakes.

    ECE = sum over bins of (bin count / n) * |fraction_fake - mean_confidence|.
    """
    edges = np.arange(CALIBRATION_BINS + 1) / CALIBRATION_BINS
    index = _bin_index(p, edges)
    bins, ece = [], 0.0
    for b in range(CALIBRATION_BINS):
        inside = index == b
        count = int(inside.sum())
        confidence = float(p[inside].mean()) if count else None
        fraction = float(y[inside].mean()) if count else None
        if count:
            ece += count / y.size * abs(fraction - confidence)
        bins.append({"low": float(edges[b]), "high": float(edges[b + 1]), "count": count,
                     "mean_confidence": confidence, "fraction_fake": fraction})
    return {"ece": float(ece), "bins": bins}


def _at_fpr(fpr: np.ndarray, tpr: np.ndarray, thresholds: np.ndarray, target: float) -> dict[str, float]:
    # thresholds fall and FPR rises along the curve, so the last point within the target is the
    # lowest threshold that respects it (and so the one with the highest TPR).
    last = int(np.flatnonzero(fpr <= target)[-1])
    return {"threshold": float(thresholds[last]), "fpr": float(fpr[last]), "tpr": float(tpr[last])}


def _suggested_thresholds(y: np.ndarray, p: np.ndarray) -> dict[str, Any]:
    if not _both_classes(y):
        return {"youden_j": None, "at_fpr_1pct": None, "at_fpr_5pct": None}
    # Full curve: every distinct score is a candidate cut, so the suggestions are exact.
    fpr, tpr, thresholds = skm.roc_curve(y, p, drop_intermediate=False)
    thresholds = np.minimum(thresholds, ABOVE_ALL)
    best = int(np.argmax(tpr - fpr))  # first maximum = the highest (most conservative) such cut
    return {
        "youden_j": {"threshold": float(thresholds[best]), "j": float(tpr[best] - fpr[best]),
                     "fpr": float(fpr[best]), "tpr": float(tpr[best])},
        "at_fpr_1pct": _at_fpr(fpr, tpr, thresholds, 0.01),
        "at_fpr_5pct": _at_fpr(fpr, tpr, thresholds, 0.05),
    }


def _baselines(y: np.ndarray) -> dict[str, Any]:
    """What a detector must beat: a fair coin, and always answering the commoner class."""
    n_fake = int(y.sum())
    n_real = int(y.size - n_fake)
    both = _both_classes(y)
    return {
        "random": {"accuracy": 0.5, "balanced_accuracy": 0.5 if both else None,
                   "roc_auc": 0.5 if both else None,
                   # a random ranking's expected precision at any recall is the prevalence
                   "average_precision": n_fake / y.size if both else None},
        # ties go to "real": the conservative answer for a forensic tool
        "majority": {"label": "fake" if n_fake > n_real else "real",
                     "accuracy": max(n_real, n_fake) / y.size,
                     "balanced_accuracy": 0.5 if both else None},
    }


# ---------------------------------------------------------------- public API

def compute_metrics(y_true: ArrayLike, p_fake: ArrayLike, threshold: float = 0.5) -> dict[str, Any]:
    """The full metric suite (scalars, curves, histogram, calibration, suggestions, baselines)."""
    y, p = _as_arrays(y_true, p_fake)
    pred = _predict(p, threshold)
    result: dict[str, Any] = {
        "n": int(y.size), "n_real": int((y == REAL).sum()), "n_fake": int((y == FAKE).sum()),
        "threshold": float(threshold),
        "accuracy": float(skm.accuracy_score(y, pred)),
    }
    result.update(_agreement(y, pred))
    result.update(_per_class(y, pred))
    result.update(_ranking(y, p))
    result["log_loss"] = _log_loss(y, p)
    result["confusion_matrix"] = _confusion(y, pred)
    result["roc_curve"] = _roc_curve(y, p)
    result["pr_curve"] = _pr_curve(y, p)
    result["histogram"] = _histogram(y, p)
    result["calibration"] = _calibration(y, p)
    result["thresholds_suggested"] = _suggested_thresholds(y, p)
    result["baselines"] = _baselines(y)
    return result


def per_group_metrics(y_true: ArrayLike, p_fake: ArrayLike, groups: Sequence[str],
                      threshold: float = 0.5) -> dict[str, dict[str, Any]]:
    """A compact metric subset for each group (e.g. generator or category), groups sorted by name."""
    y, p = _as_arrays(y_true, p_fake)
    names = np.asarray([str(g) for g in groups])
    if names.size != y.size:
        raise ValueError(f"{y.size} labels but {names.size} group names")
    out: dict[str, dict[str, Any]] = {}
    for name in sorted(set(names.tolist())):
        mask = names == name
        gy, gp = y[mask], p[mask]
        pred = _predict(gp, threshold)
        out[name] = {
            "n": int(gy.size), "n_real": int((gy == REAL).sum()), "n_fake": int((gy == FAKE).sum()),
            "accuracy": float(skm.accuracy_score(gy, pred)),
            **_ranking(gy, gp),
            "f1_fake": _per_class(gy, pred)["f1_fake"],
        }
    return out


def confusion_outcomes(y_true: ArrayLike, p_fake: ArrayLike, threshold: float = 0.5) -> list[str]:
    """Per image "TP", "TN", "FP" or "FN" (positive = fake), e.g. to fill galleries of mistakes."""
    y, p = _as_arrays(y_true, p_fake)
    pred = _predict(p, threshold)
    names = {(FAKE, FAKE): "TP", (REAL, REAL): "TN", (REAL, FAKE): "FP", (FAKE, REAL): "FN"}
    return [names[(int(t), int(q))] for t, q in zip(y, pred)]
