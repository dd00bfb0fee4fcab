"""`forensight ensemble create` and the model manager's Create ensemble…: check the members, score a labelled
reference folder with all of them in one pass (when given), fit or measure the combination
(training/ensemble.py) and store the ensemble in the library (models/ensemble.py). The members' cards are never
written, and the reference pictures are only read.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from app.services.reference_set import Progress, Scored, check_one_label, list_folders, manifest_text, score_folders
from models.card import NAME_CHARS, TEXT_CHARS, InputSpec, ModelCard, is_valid_model_id
from models.discovery import Entry, absolute
from models.ensemble import COMBINE_RULES, MAX_MEMBERS, MIN_MEMBERS, EnsembleError, describe, is_ensemble, member_record
from models.library import LibraryEntry, ModelLibrary, ModelNotFoundError
from models.paths import readable
from training.ensemble import MIN_PER_CLASS, EnsembleFit, fit_ensemble, fitted_on

MANIFEST_NAME = "ensemble_files.tsv"


@dataclass(frozen=True)
class EnsembleRequest:
    model_id: str  # the new ensemble's id
    members: tuple[str, ...]
    combine: str = "mean_logit"
    real: Path | None = None  # a labelled reference set: required by logistic, measured on by mean_logit
    fake: Path | None = None
    name: str | None = None  # display name (default: "Ensemble of A + B")
    device: str = "auto"
    batch_size: int = 16


@dataclass
class EnsembleOutcome:
    entry: LibraryEntry
    fit: EnsembleFit | None  # None without a reference set
    skipped: int = 0  # reference files some member could not score

    def lines(self) -> list[str]:
        card = self.entry.card
        out = [f"Created {card.id}: {describe(card.ensemble)}"]
        if self.fit is not None:
            own = self.fit.held_out["ensemble"]
            held = "held out, 5-fold" if self.fit.fitted else "nothing fitted"
            out.append(f"Ensemble ({held}): log loss {own['log_loss']:.4f}, average precision "
                       f"{own['average_precision']:.4f}; at threshold 0.5: FPR {100 * own['fpr_at_threshold']:.3g}%, "
                       f"TPR {100 * own['tpr_at_threshold']:.3g}%")
            for member, m in self.fit.held_out["members"].items():
                out.append(f"  member {member}: log loss {m['log_loss']:.4f} (refitted, held out "
                           f"{m['log_loss_refit']:.4f}), average precision {m['average_precision']:.4f}")
            best, loss = self.fit.best_member()
            out.append(f"Best member: {best} (log loss {loss:.4f}); the ensemble's is {own['log_loss']:.4f}")
            if self.skipped:
                out.append(f"({self.skipped} reference files skipped: not scored by every member)")
            fitted = card.ensemble["fitted_on"]
            out.append(f"File list SHA-256: {fitted['file_list_sha256']} ({MANIFEST_NAME})")
        out.append(f"Scan with it: forensight scan FOLDER --model {card.id}")
        return out


def run_ensemble(request: EnsembleRequest, library: ModelLibrary | None = None,
                 progress: Progress | None = None) -> EnsembleOutcome:
    """Every refusal (members, id, reference folders) comes before anything is written."""
    library = library or ModelLibrary()
    members = check_request(library, request)
    ensemble: dict = {"combine": request.combine, "members": [member_record(e.card) for e in members], "params": {}}
    fit, skipped, extra = None, 0, {}
    if request.real is not None:
        folders = {"real": request.real, "fake": request.fake}
        listed = list_folders(folders, EnsembleError)
        _check_counts({label: len(found) for label, found in listed.items()})  # before the models load
        scored, skipped = score_reference(library, members, listed, request, progress)
        _check_counts({label: len(rows) for label, rows in scored.items()}, scored=True)
        check_one_label(scored, EnsembleError)
        fit = fit_ensemble(request.combine, [e.card.id for e in members],
                           [p for p, _, _ in scored["real"]], [p for p, _, _ in scored["fake"]])
        manifest = manifest_text(scored, folders)
        extra = {MANIFEST_NAME: manifest}
        ensemble["params"] = fit.params
        ensemble["fitted_on"] = fitted_on(fit) | {
            "folders": {label: readable(absolute(folder)) for label, folder in folders.items()},
            "file_list_sha256": hashlib.sha256(manifest).hexdigest(), "files_manifest": MANIFEST_NAME,
            "skipped_files": skipped}
    ensemble["created_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    try:
        entry = library.add_ensemble(ensemble_card(request, members, ensemble), extra)
    except EnsembleError as exc:
        raise EnsembleError(f"cannot create {request.model_id}: {exc}") from None
    return EnsembleOutcome(entry, fit, skipped)


def check_request(library: ModelLibrary, request: EnsembleRequest) -> list[LibraryEntry]:
    """The members' entries; EnsembleError (one line) for anything that would make a wrong ensemble."""
    if not is_valid_model_id(request.model_id):
        raise EnsembleError(f"{request.model_id!r} is not a model id: 1-64 characters of a-z, 0-9, '.', '_' or "
                            "'-', starting with a letter or digit")
    ids = list(dict.fromkeys(request.members))
    if not MIN_MEMBERS <= len(ids) <= MAX_MEMBERS:
        raise EnsembleError(f"an ensemble needs {MIN_MEMBERS} to {MAX_MEMBERS} different members (--member A "
                            f"--member B), not {len(ids)}")
    if request.combine not in COMBINE_RULES:
        raise EnsembleError(f"--combine must be one of {', '.join(COMBINE_RULES)}, not {request.combine!r}")
    if (request.real is None) != (request.fake is None):
        raise EnsembleError("a reference set needs both --real and --fake folders (pictures known to be real and "
                            "known to be AI-generated)")
    if request.combine == "logistic" and request.real is None:
        raise EnsembleError("--combine logistic is fitted on a labelled reference set: give --real FOLDER and "
                            "--fake FOLDER")
    entries = []
    for member in ids:
        try:
            entry = library.get(member)
        except ModelNotFoundError as exc:
            raise EnsembleError(str(exc).strip("'\"")) from None
        if is_ensemble(entry.card):  # kept flat: a member's members would be combined twice, opaquely
            raise EnsembleError(f"{member} is itself an ensemble; combine its members directly (ensembles are "
                                "kept flat)")
        entries.append(entry)
    if request.model_id in {e.card.id for e in library.entries()}:
        raise EnsembleError(f"a model with id {request.model_id!r} already exists; choose another id")
    return entries


def _check_counts(counts: dict[str, int], scored: bool = False) -> None:
    """Enough pictures of both classes for five folds: too few, or one class only, is refused."""
    if any(n < MIN_PER_CLASS for n in counts.values()):
        found = " and ".join(f"{n} {label}" for label, n in counts.items())
        raise EnsembleError(f"the reference set holds {found} pictures{' scored by every member' if scored else ''}; "
                            f"fitting and measuring an ensemble needs at least {MIN_PER_CLASS} of each class (real "
                            "and AI-generated)")


def score_reference(library: ModelLibrary, members: list[LibraryEntry], listed: dict[str, list[Entry]],
                    request: EnsembleRequest, progress: Progress | None) -> tuple[Scored, int]:
    """Every member's P(fake) per picture, in one pass, under each member's own input policy and calibration
    (what a scan gives); and how many files not every member could score."""
    from models.engine import ScanEngine

    return score_folders([ScanEngine(library.load(entry), device=request.device, batch_size=request.batch_size)
                          for entry in members], listed, progress)


def ensemble_card(request: EnsembleRequest, members: list[LibraryEntry], ensemble: dict) -> ModelCard:
    ids = [e.card.id for e in members]
    rule = ("the mean of the members' fake logits" if request.combine == "mean_logit" else
            "a logistic regression on the members' fake logits, fitted on a labelled reference set")
    return ModelCard(
        id=request.model_id, name=(request.name or f"Ensemble of {' + '.join(ids)}")[:NAME_CHARS],
        architecture="ensemble", num_logits=1, input=InputSpec(), ensemble=ensemble,
        description=(f"Combines {', '.join(ids)}: {rule}. Each member's own calibration is applied first when it "
                     "has one, so members on different scales are comparable (calibrate members with `forensight "
                     "calibrate` before combining them).")[:TEXT_CHARS],
        trained_on=_trained_on(members),
        limitations=("An ensemble has every limitation of its members (see their cards). A file that one member "
                     "cannot score gets no ensemble score. The threshold is 0.5 (classes weighted equally), not "
                     "set for a false-positive rate." + (" The coefficients were fitted on the reference set named "
                     "on this card and hold for pictures like it." if request.combine == "logistic" else
                     " The members weigh the same whatever their accuracy."))[:TEXT_CHARS],
        provenance={"members": ", ".join(ids), "combine": request.combine, "created_at": ensemble["created_at"]})


def _trained_on(members: list[LibraryEntry]) -> str:
    """What the members were trained on, each text once with the members it belongs to."""
    texts: dict[str, list[str]] = {}
    for entry in members:
        texts.setdefault(entry.card.trained_on or "not stated", []).append(entry.card.id)
    return " | ".join(f"{', '.join(ids)}: {text}" for text, ids in texts.items())[:TEXT_CHARS]
