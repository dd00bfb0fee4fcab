"""Fitting and measuring an ensemble's combination: plain numbers in, plain data out (no Qt, no library).

Input: each reference picture's P(fake) from every member, as a scan gives it (after the member's own
calibration), and its label (0 real, 1 AI-generated). The decisions, and why:

* `logistic`: P(fake) = sigmoid(b + Σ w_i z_i) on the members' logits z_i, scikit-learn's LogisticRegression
  with its default L2 penalty (C = 1): on a few hundred pictures an unpenalised fit runs to huge coefficients
  as soon as one member separates the reference set, and those would not hold on other pictures.
* Both classes weigh the same (as in training/calibration.py), so P(fake) = 0.5 is the point where a real and an
  AI-generated picture are equally likely whatever the folders' ratio; the card's threshold stays 0.5.
* Everything reported is held out: stratified 5-fold cross-validation, the combination fitted on four folds
  and scored on the fifth. Each member is reported as it is (its own P(fake)) and refitted the same way (a
  one-member logistic regression, i.e. Platt scaling, in the same folds): an ensemble that only recalibrates
  its best member must not look better than that member refitted.
* mean_logit fits nothing: on a reference set it is only measured (on every picture).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from models.calibration import logit
from models.ensemble import MAX_COEFFICIENT, combine_logits
from training.calibration import balanced_weights, log_loss

FOLDS = 5
MIN_PER_CLASS = 20  # four pictures of each class per held-out fold at least
PENALTY_C = 1.0
THRESHOLD = 0.5


def member_logits(p_fake: np.ndarray) -> np.ndarray:
    """(pictures, members) P(fake) → their logits, as models.ensemble computes them in a scan."""
    p_fake = np.asarray(p_fake, dtype=float)
    return np.vectorize(logit, otypes=[float])(p_fake) if p_fake.size else p_fake.reshape(p_fake.shape)


def fit_logistic(z: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    """The card's params: intercept and one coefficient per member (classes weighted equally)."""
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=PENALTY_C, max_iter=2000)
    model.fit(z, y, sample_weight=balanced_weights(y))
    clip = lambda v: float(np.clip(v, -MAX_COEFFICIENT, MAX_COEFFICIENT))  # noqa: E731  the card's bound
    return {"intercept": clip(model.intercept_[0]), "coefficients": [clip(w) for w in model.coef_[0]]}


def predict(combine: str, params: dict[str, Any], z: np.ndarray) -> np.ndarray:
    """Through models.ensemble.combine_logits itself, so what is measured here is what a scan will give."""
    ensemble = {"combine": combine, "params": params}
    return np.array([combine_logits(ensemble, list(row)) for row in z])


def held_out_predictions(combine: str, z: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Each picture's ensemble P(fake) from a combination it was not fitted on (mean_logit: fitted on none)."""
    if combine == "mean_logit":
        return predict(combine, {}, z)
    out = np.empty(len(y))
    for train, test in _folds(z, y):
        out[test] = predict(combine, fit_logistic(z[train], y[train]), z[test])
    return out


def _folds(z: np.ndarray, y: np.ndarray):
    from sklearn.model_selection import StratifiedKFold

    return StratifiedKFold(FOLDS, shuffle=True, random_state=0).split(z, y)


def measures(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """Log loss (classes weighted equally), average precision, and the rates at the card's threshold."""
    from sklearn.metrics import average_precision_score

    called = p >= THRESHOLD
    return {"log_loss": log_loss(y, p, balanced_weights(y)), "average_precision": float(average_precision_score(y, p)),
            "fpr_at_threshold": float(called[y == 0].mean()), "tpr_at_threshold": float(called[y == 1].mean())}


@dataclass
class EnsembleFit:
    combine: str
    params: dict[str, Any]
    n_real: int
    n_fake: int
    held_out: dict[str, Any] = field(default_factory=dict)  # {"ensemble": measures, "members": {id: measures}}

    @property
    def fitted(self) -> bool:
        return self.combine == "logistic"

    def best_member(self) -> tuple[str, float]:
        """The member with the lowest held-out log loss, as it is or refitted, and that log loss."""
        members = self.held_out["members"]
        best = min(members, key=lambda m: min(members[m]["log_loss"], members[m]["log_loss_refit"]))
        return best, min(members[best]["log_loss"], members[best]["log_loss_refit"])


def fit_ensemble(combine: str, member_ids: list[str], real_p: np.ndarray, fake_p: np.ndarray) -> EnsembleFit:
    """Fit (logistic) or measure (mean_logit) the combination on reference pictures: (pictures, members)
    arrays of the members' P(fake) for the real and the AI-generated ones."""
    real_p, fake_p = np.asarray(real_p, dtype=float), np.asarray(fake_p, dtype=float)
    z = member_logits(np.concatenate([real_p, fake_p]))
    y = np.concatenate([np.zeros(len(real_p)), np.ones(len(fake_p))])
    params = fit_logistic(z, y) if combine == "logistic" else {}
    fit = EnsembleFit(combine, params, len(real_p), len(fake_p))
    fit.held_out["ensemble"] = measures(y, held_out_predictions(combine, z, y))
    members = {}
    for j, member in enumerate(member_ids):
        own = measures(y, np.concatenate([real_p[:, j], fake_p[:, j]]))
        refit = measures(y, held_out_predictions("logistic", z[:, [j]], y))
        members[member] = own | {"log_loss_refit": refit["log_loss"]}
    fit.held_out["members"] = members
    return fit


def fitted_on(fit: EnsembleFit) -> dict[str, Any]:
    """The facts of the fit for the card's `fitted_on` (the caller adds folders, file list hash, dates)."""
    return {"n_real": fit.n_real, "n_fake": fit.n_fake, "fitted": fit.fitted,
            "cross_validation_folds": FOLDS if fit.fitted else 0, "classes_weighted_equally": True,
            "penalty": f"L2, C={PENALTY_C:g}" if fit.fitted else "", "held_out": fit.held_out,
            "threshold": THRESHOLD}
