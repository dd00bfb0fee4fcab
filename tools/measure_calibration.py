"""Measure `forensight calibrate` on the shipped starter's held-out subset (tests/data/starter_holdout): fit on one
half, measure on the other (real photos split by source photograph, so no crop of a calibration photo is
measured), then the other way round. Prints calibration error and log loss before and after on the measured
half, and the false-positive rate at the calibrated threshold on its real photos against the target.

    .venv/bin/python tools/measure_calibration.py [--target-fpr 0.1] [--device cpu]
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from models.engine import ScanEngine  # noqa: E402
from models.library import LoadedModel, ModelLibrary  # noqa: E402
from training.calibration import (CalibrationFit, balanced_weights, clopper_pearson_upper,  # noqa: E402
                                  expected_calibration_error, fit_calibration, log_loss, predict)

HOLDOUT = REPO / "tests" / "data" / "starter_holdout"


def source(path: Path) -> str:
    """The photograph a real crop was cut from (its native, ×2 and ×4 crops stay on one side)."""
    return re.sub(r"-(native|x2|x4)-\d+$", "", path.stem)


def halves() -> list[dict[str, list[Path]]]:
    reals = sorted((HOLDOUT / "real").rglob("*.*"))
    counts: dict[str, int] = {}
    for path in reals:
        counts[source(path)] = counts.get(source(path), 0) + 1
    first: set[str] = set()
    size = [0, 0]
    for name in sorted(counts, key=lambda n: (-counts[n], n)):  # the larger sources first, to the smaller half
        side = int(size[1] < size[0])
        size[side] += counts[name]
        if side == 0:
            first.add(name)
    fakes = sorted((HOLDOUT / "fake").rglob("*.*"))
    return [{"real": [p for p in reals if (source(p) in first) == side], "fake": fakes[int(not side)::2]}
            for side in (True, False)]


def before_after(fit: CalibrationFit, y: np.ndarray, p: np.ndarray) -> dict[str, list[float]]:
    """Calibration error and log loss of pictures the fit never saw, with the model's own P(fake) and then the
    calibrated one (both classes weighing the same, as in the fit)."""
    w = balanced_weights(y)
    after = predict(fit.method, fit.params, p)
    return {"ece": [expected_calibration_error(y, p, w), expected_calibration_error(y, after, w)],
            "log_loss": [log_loss(y, p, w), log_loss(y, after, w)]}


def measure(args: argparse.Namespace) -> None:
    from dataclasses import replace

    library = ModelLibrary()
    model = library.load("starter-effnet-lite0")
    engine = ScanEngine(LoadedModel(replace(model.card, calibration={}), model.module), device=args.device)
    scored = [{label: np.array([r.p_fake for r in engine.scan(paths)]) for label, paths in half.items()}
              for half in halves()]
    for fit_on, measure_on in ((0, 1), (1, 0)):
        fitted, held = scored[fit_on], scored[measure_on]
        fit = fit_calibration(fitted["real"], fitted["fake"], args.target_fpr)
        p = np.concatenate([held["real"], held["fake"]])
        y = np.concatenate([np.zeros(len(held["real"])), np.ones(len(held["fake"]))])
        change = before_after(fit, y, p)
        false_positives = int((predict(fit.method, fit.params, held["real"]) > fit.threshold.threshold).sum())
        n = len(held["real"])
        print(f"fit on half {fit_on + 1} ({len(fitted['real'])} real, {len(fitted['fake'])} fake), measured on "
              f"half {measure_on + 1} ({n} real, {len(held['fake'])} fake): method {fit.method}")
        print(f"  ECE {change['ece'][0]:.4f} -> {change['ece'][1]:.4f}; "
              f"log loss {change['log_loss'][0]:.4f} -> {change['log_loss'][1]:.4f}")
        print(f"  threshold {fit.threshold.threshold:.4g}: on the fitting half FPR {fit.threshold.fpr:.3f} "
              f"(95% upper {fit.threshold.fpr_upper:.3f}), TPR {fit.threshold.tpr:.3f}")
        print(f"  on the measured half's real photos: {false_positives}/{n} above it, FPR {false_positives / n:.3f} "
              f"(95% upper {clopper_pearson_upper(false_positives, n):.3f}), target {args.target_fpr}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target-fpr", type=float, default=0.1)
    parser.add_argument("--device", default="cpu")
    measure(parser.parse_args())
