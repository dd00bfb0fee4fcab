"""Measure an ensemble against its best member on the shipped starter's held-out subset (tests/data/starter_holdout):
fit on one half, measure on the other (real photos split by source photograph, as tools/measure_calibration.py
does), then the other way round.

The members are the shipped starter-effnet-lite0 (its card: the 112-pixel centre crop) and a copy of it that looks
at the five 112-pixel crops (corners and centre) and averages their logits: the same weights looking at more of
the picture. Both are scored in one MultiScanEngine pass, as `forensight ensemble create` and `forensight scan`
score them. Printed per measured half: balanced log loss, average precision and the rates at 0.5 for each
member as it is, each member Platt-refitted on the other half, mean_logit, and logistic fitted on the other half.

    .venv/bin/python tools/measure_ensemble.py [--device cpu]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tools"))

from measure_calibration import halves  # noqa: E402

MEMBERS = ("starter-effnet-lite0", "starter-five-crop")


def members(library) -> None:
    from models.input_settings import set_model_input

    shipped = library.get(MEMBERS[0])
    library.import_path(shipped.directory, model_id=MEMBERS[1])
    set_model_input(library, MEMBERS[1], {"policy": "five_crop", "aggregation": "mean_logit"})


def score(library, device: str) -> list[dict[str, np.ndarray]]:
    """Per half and label, (pictures, members) P(fake)."""
    from models.engine import MultiScanEngine, ScanEngine

    multi = MultiScanEngine([ScanEngine(library.load(m), device=device, batch_size=32) for m in MEMBERS])
    out = []
    for half in halves():
        scored = {}
        for label, paths in half.items():
            rows = [[r.p_fake for r in results] for batch in multi.scan_batches(paths) for results in batch]
            scored[label] = np.array(rows, dtype=float)
        out.append(scored)
    return out


def measure_half(fit_on: dict[str, np.ndarray], held: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    from training.ensemble import fit_logistic, measures, member_logits, predict

    def arrays(half):
        p = np.concatenate([half["real"], half["fake"]])
        return member_logits(p), np.r_[np.zeros(len(half["real"])), np.ones(len(half["fake"]))], p

    z_fit, y_fit, _ = arrays(fit_on)
    z, y, p = arrays(held)
    rows = {}
    for j, member in enumerate(MEMBERS):
        rows[f"{member} (as it is)"] = measures(y, p[:, j])
        rows[f"{member} (Platt, fitted on the other half)"] = measures(
            y, predict("logistic", fit_logistic(z_fit[:, [j]], y_fit), z[:, [j]]))
    rows["ensemble mean_logit"] = measures(y, predict("mean_logit", {}, z))
    params = fit_logistic(z_fit, y_fit)
    rows["ensemble logistic (fitted on the other half)"] = measures(y, predict("logistic", params, z))
    rows["_params"] = params
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        os.environ["FORENSIGHT_HOME"] = home  # the copy goes to a scratch library, not the user's
        from models.library import ModelLibrary

        library = ModelLibrary()
        members(library)
        scored = score(library, args.device)
    for fit_on, held in ((0, 1), (1, 0)):
        counts = {label: len(v) for label, v in scored[held].items()}
        print(f"\nFitted on half {fit_on + 1}, measured on half {held + 1} ({counts['real']} real, "
              f"{counts['fake']} AI-generated):")
        rows = measure_half(scored[fit_on], scored[held])
        params = rows.pop("_params")
        print(f"  logistic: intercept {params['intercept']:.3f}, coefficients "
              + ", ".join(f"{m} {w:.3f}" for m, w in zip(MEMBERS, params["coefficients"])))
        print(f"  {'':<56}{'log loss':>9}{'AP':>8}{'FPR@0.5':>9}{'TPR@0.5':>9}")
        for name, m in rows.items():
            print(f"  {name:<56}{m['log_loss']:>9.4f}{m['average_precision']:>8.4f}"
                  f"{m['fpr_at_threshold']:>9.3f}{m['tpr_at_threshold']:>9.3f}")


if __name__ == "__main__":
    main()
