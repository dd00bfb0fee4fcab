"""`forensight calibrate` and the model manager's Calibrate…: score the examiner's known-real (and known
AI-generated) photos with a model, fit its calibration (training/calibration.py) and store the result as a new,
calibrated variant in the library, with a copy of the original's weights, its reliability diagram and the list
of the photos it was fitted on. The original card is never written, and the photos are only read (they are
evidence-like: an examiner's reference set), never written beside.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

from app.services.reference_set import Progress, Scored, check_one_label, list_folders, manifest_text, score_folders
from models.calibration import describe
from models.card import NAME_CHARS, TEXT_CHARS, is_valid_model_id
from models.discovery import Entry, absolute
from models.library import LibraryEntry, LoadedModel, ModelLibrary
from models.paths import readable
from training.calibration import CalibrationFit, card_calibration, check_enough_reals, fit_calibration, reliability_png

DIAGRAM_NAME = "reliability.png"
MANIFEST_NAME = "calibration_files.tsv"


class CalibrationError(ValueError):
    """The calibration was refused (a sentence for the user, saying what to do)."""


@dataclass(frozen=True)
class CalibrationRequest:
    model_id: str
    real: Path
    fake: Path | None = None
    target_fpr: float = 0.01
    name: str | None = None  # the variant's id (default: MODEL-calibrated-YYYYMMDD)
    case: Path | None = None  # a scanned case whose files must not be among the calibration photos
    allow_case_overlap: bool = False
    device: str = "auto"
    batch_size: int = 16


@dataclass
class CalibrationOutcome:
    entry: LibraryEntry  # the new variant
    source_id: str
    fit: CalibrationFit
    skipped: int  # files in the folders that could not be scored (not images, unreadable)
    overlap: list[str]  # calibration photos that are also in the case (allowed only on request)

    def lines(self) -> list[str]:
        fit, t, fitted = self.fit, self.fit.threshold, self.entry.card.calibration["fitted_on"]
        out = [f"Calibrated {self.source_id} on {t.n_real} real and {t.n_fake} AI-generated photos"
               + (f" ({self.skipped} files skipped: not readable as images)" if self.skipped else "")]
        if fit.method == "none" and fit.note:
            out.append(f"Method: none ({fit.note})")
        else:
            out.append(f"Method: {fit.method}, chosen by {fitted['cross_validation_folds']}-fold held-out log loss: "
                       f"{fit.log_loss_calibrated:.4f} (uncalibrated {fit.log_loss_uncalibrated:.4f}); calibration "
                       f"error (ECE) {fit.ece_calibrated:.4f} (uncalibrated {fit.ece_uncalibrated:.4f})")
        out.append(f"Threshold: {t.threshold:.6g}: {t.false_positives} of {t.n_real} real photos above it, FPR "
                   f"{100 * t.fpr:.2g}% (95% upper bound {100 * t.fpr_upper:.2g}%, target {100 * fit.target_fpr:g}%)")
        if t.tpr is not None:
            out.append(f"TPR: {t.true_positives} of {t.n_fake} AI-generated photos above it ({100 * t.tpr:.3g}%)")
        if self.overlap:
            out.append(f"WARNING: {len(self.overlap)} calibration photos are also in the case: {self.overlap[0]} …")
        out.append(f"Reliability diagram: {readable(self.entry.directory / DIAGRAM_NAME)}")
        out.append(f"File list SHA-256: {fitted['file_list_sha256']} ({MANIFEST_NAME})")
        out.append(f"New model: {self.entry.card.id} (the original {self.source_id} is unchanged)")
        return out


def run_calibration(request: CalibrationRequest, library: ModelLibrary | None = None,
                    progress: Progress | None = None) -> CalibrationOutcome:
    """Every refusal (too few real photos, photos of the case, a taken id) comes before anything is written."""
    library = library or ModelLibrary()
    source = library.get(request.model_id)
    if source.card.architecture == "ensemble":
        raise CalibrationError(f"{source.card.id} is an ensemble: calibrate its members, then create the ensemble "
                               "from the calibrated variants (each member's calibration is applied before combining)")
    new_id = variant_id(library, source.card.id, request.name)
    case_files = case_hashes(request.case) if request.case else {}
    folders = {"real": request.real, **({"fake": request.fake} if request.fake else {})}
    listed = list_folders(folders, CalibrationError)
    _check_size(len(listed["real"]), request.target_fpr)  # before the model loads: a second, not a scan
    scored, skipped = score_photos(library.load(source), listed, request, progress)
    _check_size(len(scored["real"]), request.target_fpr)
    check_one_label(scored, CalibrationError)
    overlap = sorted(path for label in scored for _, sha, path in scored[label] if sha in case_files)
    if overlap and not request.allow_case_overlap:
        raise CalibrationError(
            f"{len(overlap)} of the calibration photos are also in the case {readable(request.case)} (first: "
            f"{overlap[0]}): calibrating on the evidence sets the threshold on the very photos it is meant to "
            "judge. Remove them from the calibration folders, or pass --allow-case-overlap to calibrate anyway "
            "(the card and the reports then say so)")
    fit = fit_calibration([p[0] for p, _, _ in scored["real"]], [p[0] for p, _, _ in scored.get("fake", [])],
                          request.target_fpr)
    manifest = manifest_text(scored, folders)
    fitted_on = {"model": source.card.id, "model_weights_sha256": source.card.weights_sha256,
                 "folders": {label: readable(absolute(folder)) for label, folder in folders.items()},
                 "file_list_sha256": hashlib.sha256(manifest).hexdigest(), "files_manifest": MANIFEST_NAME,
                 "reliability_diagram": DIAGRAM_NAME, "skipped_files": skipped, "case_overlap": len(overlap),
                 "case": readable(request.case) if request.case else "",
                 "calibrated_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    card = variant_card(source, new_id, card_calibration(fit, fitted_on), fit.threshold.band)
    diagram = reliability_png(fit, f"{card.id}: calibrated on {fit.threshold.n_real} real and "
                                   f"{fit.threshold.n_fake} AI-generated photos")
    entry = library.add_file(card, source.weights_path, {DIAGRAM_NAME: diagram, MANIFEST_NAME: manifest})
    return CalibrationOutcome(entry, source.card.id, fit, skipped, overlap)


def _check_size(n_real: int, target: float) -> None:
    from training.calibration import CalibrationTooSmall

    if not 0 < target < 1:
        raise CalibrationError(f"--target-fpr must be between 0 and 1 (0.01 is 1%), not {target:g}")
    try:
        check_enough_reals(n_real, target)
    except CalibrationTooSmall as exc:
        raise CalibrationError(str(exc)) from None


def variant_id(library: ModelLibrary, source_id: str, name: str | None) -> str:
    taken = {entry.card.id for entry in library.entries()}
    if name:
        if not is_valid_model_id(name):
            raise CalibrationError(f"--name {name!r} is not a model id: 1-64 characters of a-z, 0-9, '.', '_' "
                                   "or '-', starting with a letter or digit")
        if name in taken:
            raise CalibrationError(f"a model with id {name!r} already exists; choose another --name")
        return name
    suffix = f"-calibrated-{datetime.now(timezone.utc):%Y%m%d}"
    base = source_id[:64 - len(suffix) - 3] + suffix  # room for "-99"
    candidates = [base] + [f"{base}-{n}" for n in range(2, 100)]
    return next(c for c in candidates if c not in taken)


def case_hashes(case_path: Path) -> dict[str, str]:
    """SHA-256 → path of every file of a scanned case, read from a read-only snapshot (never written)."""
    from app.case.store import Case, CaseError

    try:
        with Case(case_path, readonly=True) as case:
            return {row.sha256: row.path for row in case.rows() if row.sha256}
    except CaseError as exc:
        raise CalibrationError(str(exc)) from None


def score_photos(model: LoadedModel, listed: dict[str, list[Entry]], request: CalibrationRequest,
                 progress: Progress | None) -> tuple[Scored, int]:
    """Each photo's P(fake) through the one scan engine with the model's own input policy, uncalibrated (a
    variant of a variant is fitted on the model's own scores); and how many files could not be scored."""
    from models.engine import ScanEngine

    raw = LoadedModel(replace(model.card, calibration={}), model.module)
    return score_folders([ScanEngine(raw, device=request.device, batch_size=request.batch_size)], listed, progress)


def variant_card(source: LibraryEntry, new_id: str, calibration: dict, band: tuple[float, float]):
    """The original's card with the calibration, its threshold and band (inconclusive just below the threshold,
    so the band never adds a false positive), a new id and name; the same weights."""
    fitted = calibration["fitted_on"]
    summary = describe(calibration)
    return replace(
        source.card, id=new_id, default=False, calibration=calibration,
        name=f"{source.card.name} (calibrated {fitted['calibrated_at'][:10]})"[:NAME_CHARS],
        threshold=fitted["threshold"], inconclusive_band=band,
        description=f"Calibrated variant of {source.card.id}: {summary}. {source.card.description}"[:TEXT_CHARS],
        provenance=source.card.provenance | {"calibrated_from": source.card.id})
