"""Ensembles: a library entry that combines the scores of other library models ("members").

An ensemble has no network and no weights of its own. Its card (architecture "ensemble") carries the
combination as plain data in the `ensemble` field:

  combine    mean_logit  P(fake) = sigmoid(mean of z)
             logistic    P(fake) = sigmoid(intercept + Σ coefficient_i · z_i), fitted on a labelled reference
                         folder (training/ensemble.py)
  members    each member's id, its weights' SHA-256 and the SHA-256 of what else decides its score (input
             settings, output, calibration), so that a member changed since the ensemble was made is refused
             instead of being combined by coefficients fitted on other scores
  params     {} (mean_logit) or {"intercept": b, "coefficients": [w_1, ...]} (logistic)
  fitted_on  what the combination was fitted and measured on (counts, file list hash, held-out measures)

z_i is the logit of member i's P(fake) as a scan gives it, that is after the member's own calibration when its
card has one: members on different scales become comparable once calibrated, and the member's P(fake) in the
case, the CSV and the report is the very number the ensemble combined.

The library stores the combination, canonically serialised, as the ensemble's "weights" file (ensemble.json):
its SHA-256 is the ensemble's weights_sha256, so the case keys an ensemble's scores by exactly what combined
them, and a hand-edited card or file is refused like altered weights.

Scanning: an ensemble's members run as ordinary ScanEngines in the same MultiScanEngine pass (each file read,
hashed and decoded once, every member under its own input policy) and an EnsembleScorer turns their results
into the ensemble's. The case records the ensemble's row and each member's, so every member's score (and
Grad-CAM) stays visible beside the combined one.
"""
from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Sequence

from models.calibration import logit, sigmoid

if TYPE_CHECKING:
    from models.card import ModelCard
    from models.engine import ScanEngine, ScanResult
    from models.labels import Thresholds
    from models.library import LibraryEntry, LoadedModel, ModelLibrary

ARCHITECTURE = "ensemble"
COMBINE_RULES = ("mean_logit", "logistic")
COMBINATION_FILE = "ensemble.json"
MIN_MEMBERS, MAX_MEMBERS = 2, 8
MAX_COEFFICIENT = 1000.0
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


class EnsembleError(ValueError):
    """An ensemble that cannot be made or used (one sentence saying what to do)."""


# ---- the card's field ------------------------------------------------------------------------------------
def ensemble_problem(value: Any) -> tuple[str, Any, str] | None:
    """(field, value, what it must be) for the first wrong part of a card's `ensemble`, None when usable;
    {} means the card is no ensemble."""
    if not isinstance(value, dict):
        return "ensemble", value, "an object ({} for a model that is no ensemble)"
    if not value:
        return None
    if value.get("combine") not in COMBINE_RULES:
        return "ensemble.combine", value.get("combine"), "one of " + ", ".join(COMBINE_RULES)
    members = value.get("members")
    if not (isinstance(members, list) and MIN_MEMBERS <= len(members) <= MAX_MEMBERS):
        return "ensemble.members", members, f"a list of {MIN_MEMBERS} to {MAX_MEMBERS} members"
    for member in members:
        if not (isinstance(member, dict) and isinstance(member.get("id"), str) and _ID.match(member["id"])
                and all(isinstance(member.get(k), str) and _SHA256.match(member[k])
                        for k in ("weights_sha256", "scoring_sha256"))):
            return "ensemble.members", member, "objects with an id, weights_sha256 and scoring_sha256"
    if len({m["id"] for m in members}) < len(members):
        return "ensemble.members", [m["id"] for m in members], "distinct models"
    params = value.get("params", {})
    if not isinstance(params, dict):
        return "ensemble.params", params, "an object"
    if value["combine"] == "logistic":
        weights = params.get("coefficients")
        if not (isinstance(weights, list) and len(weights) == len(members) and all(_bounded(w) for w in weights)):
            return "ensemble.params.coefficients", weights, f"one number per member, each within ±{MAX_COEFFICIENT:g}"
        if not _bounded(params.get("intercept")):
            return "ensemble.params.intercept", params.get("intercept"), f"a number within ±{MAX_COEFFICIENT:g}"
    if not isinstance(value.get("fitted_on", {}), dict):
        return "ensemble.fitted_on", value.get("fitted_on"), "an object"
    return None


def _bounded(value: Any) -> bool:
    return (not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
            and abs(value) <= MAX_COEFFICIENT)


def combination_bytes(ensemble: dict[str, Any]) -> bytes:
    """The canonical file the library stores as the ensemble's weights: its SHA-256 identifies the ensemble."""
    return (json.dumps(ensemble, sort_keys=True, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")


def scoring_sha256(card: "ModelCard") -> str:
    """What decides a model's P(fake) besides its weights: input settings, output and calibration. A member
    changed in any of these (`models set`) gives other scores than the ones the ensemble was fitted on."""
    from dataclasses import asdict

    facts = {"architecture": card.architecture, "num_logits": card.num_logits, "fake_index": card.fake_index,
             "input": asdict(card.input), "calibration": card.calibration, "family_config": card.family_config}
    return hashlib.sha256(json.dumps(facts, sort_keys=True, default=list).encode("utf-8")).hexdigest()


def member_record(card: "ModelCard") -> dict[str, Any]:
    return {"id": card.id, "name": card.name, "weights_sha256": card.weights_sha256,
            "scoring_sha256": scoring_sha256(card), "calibrated": bool(card.calibration)}


def is_ensemble(card: "ModelCard | dict") -> bool:
    architecture = card.get("architecture") if isinstance(card, dict) else card.architecture
    return architecture == ARCHITECTURE


# ---- the combination: one function for scans and for fitting ------------------------------------------
def combine_logits(ensemble: dict[str, Any], z: Sequence[float]) -> float:
    """The ensemble's P(fake) from its members' (calibrated) fake logits, in the members' order."""
    if ensemble["combine"] == "mean_logit":
        return sigmoid(sum(z) / len(z))
    params = ensemble["params"]
    return sigmoid(params["intercept"] + sum(w * v for w, v in zip(params["coefficients"], z)))


def combine_probabilities(ensemble: dict[str, Any], p_fake: Sequence[float]) -> float:
    """The same from the members' P(fake) as the case stores them (float64: the logit comes back exactly for
    any score a float64 sigmoid does not round to 0 or 1)."""
    return combine_logits(ensemble, [logit(p) for p in p_fake])


def describe(ensemble: dict[str, Any] | None) -> str:
    """One paragraph for the report's method section, the CSV and the model manager."""
    if not ensemble:
        return ""
    members = [m for m in ensemble.get("members", []) if isinstance(m, dict)]
    ids = [str(m.get("id", "?")) for m in members]
    z = "z is each member's fake logit after its own calibration (members without one: their own logit)"
    if ensemble.get("combine") == "logistic":
        params = ensemble.get("params", {})
        terms = " ".join(f"{'+' if w >= 0 else '-'} {abs(w):.4g}·z[{m}]"
                         for w, m in zip(params.get("coefficients", []), ids) if isinstance(w, (int, float)))
        rule = (f"logistic regression on the members' logits: P(fake) = sigmoid({params.get('intercept', 0):.4g} "
                f"{terms}); {z}")
    else:
        rule = f"mean of the members' logits: P(fake) = sigmoid(mean of z); {z}"
    listed = ", ".join(f"{m.get('id')} (weights {str(m.get('weights_sha256', ''))[:12]}"
                       + (", calibrated" if m.get("calibrated") else "") + ")" for m in members)
    parts = [f"ensemble of {len(members)} models: {listed}", rule]
    fit = ensemble.get("fitted_on") if isinstance(ensemble.get("fitted_on"), dict) else {}
    if fit.get("n_real"):
        parts.append(_measured(fit, ids))
    return "; ".join(parts)


def _measured(fit: dict[str, Any], ids: list[str]) -> str:
    verb = "fitted and measured" if fit.get("fitted") else "measured"
    text = (f"{verb} on {fit.get('n_real')} real and {fit.get('n_fake')} AI-generated pictures (file list "
            f"SHA-256 {str(fit.get('file_list_sha256', ''))[:16]})")
    held = fit.get("held_out", {}) if isinstance(fit.get("held_out"), dict) else {}
    own = held.get("ensemble", {}) if isinstance(held.get("ensemble"), dict) else {}
    if own:
        folds = fit.get("cross_validation_folds")
        text += (f"; {'%s-fold held-out ' % folds if folds else ''}log loss {_num(own.get('log_loss'))}, "
                 f"average precision {_num(own.get('average_precision'))}")
        members = held.get("members", {}) if isinstance(held.get("members"), dict) else {}
        others = [f"{m} {_num(members[m].get('log_loss'))} (refitted {_num(members[m].get('log_loss_refit'))}) / "
                  f"{_num(members[m].get('average_precision'))}" for m in ids if isinstance(members.get(m), dict)]
        if others:
            text += " (each member alone, log loss / average precision: " + ", ".join(others) + ")"
    return text


def _num(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, (int, float)) and math.isfinite(value) else "?"


# ---- loading -----------------------------------------------------------------------------------------------
@dataclass
class LoadedEnsemble:
    card: "ModelCard"
    members: list["LoadedModel"]

    @property
    def weights_sha256(self) -> str:
        return self.card.weights_sha256


def check_combination_file(entry: "LibraryEntry") -> None:
    """The stored combination must be the card's (the SHA-256 of the file is checked by the library)."""
    try:
        stored = entry.weights_path.read_bytes()
    except OSError as exc:
        raise EnsembleError(f"cannot read {entry.weights_path}: {exc.strerror or exc}") from None
    if stored != combination_bytes(entry.card.ensemble):
        raise EnsembleError("its card's combination differs from the stored ensemble.json (altered); create the "
                            "ensemble again")


def member_entries(library: "ModelLibrary", card: "ModelCard") -> list["LibraryEntry"]:
    """Each member's library entry, refused in one line when it is missing, an ensemble, or changed since the
    ensemble was made."""
    from models.library import ModelNotFoundError

    entries = []
    for member in card.ensemble["members"]:
        try:
            entry = library.get(member["id"])
        except ModelNotFoundError:
            raise EnsembleError(f"its member {member['id']!r} is no longer in the library; "
                                "create the ensemble again from the models you have") from None
        if is_ensemble(entry.card):
            raise EnsembleError(f"its member {member['id']!r} is itself an ensemble (ensembles are kept flat)")
        if entry.card.weights_sha256 != member["weights_sha256"]:
            raise EnsembleError(
                f"its member {member['id']!r} has other weights than when the ensemble was made "
                f"({entry.card.weights_sha256[:12]}, not {member['weights_sha256'][:12]}); create the ensemble again")
        if scoring_sha256(entry.card) != member["scoring_sha256"]:
            raise EnsembleError(
                f"its member {member['id']!r} has other input settings or another calibration "
                "than when the ensemble was made; create the ensemble again")
        entries.append(entry)
    return entries


def load_ensemble(library: "ModelLibrary", entry: "LibraryEntry") -> LoadedEnsemble:
    check_combination_file(entry)
    return LoadedEnsemble(entry.card, [library.load(member) for member in member_entries(library, entry.card)])


# ---- scanning ---------------------------------------------------------------------------------------------
class EnsembleScorer:
    """The ensemble's part of a MultiScanEngine pass: no pixels; its members' results in, its own out."""

    def __init__(self, card: "ModelCard", members: Sequence["ScanEngine"],
                 thresholds: "Thresholds | None" = None) -> None:
        from models.labels import Thresholds

        if [engine.card.id for engine in members] != [m["id"] for m in card.ensemble["members"]]:
            raise ValueError(f"ensemble {card.id!r} needs the engines of its members in their order")
        self.card = card
        self.members = list(members)
        self.thresholds = thresholds or Thresholds.around(card.threshold, card.inconclusive_band)

    def combine(self, results: Sequence["ScanResult"]) -> "ScanResult":
        """The ensemble's result from its members' results for one file (in the members' order)."""
        from models.engine import ScanResult

        first = results[0]
        # notes every member carries are the file's (a link, an animation, a failed metadata check); the others
        # are about one member's input (padding) and stay on that member's row
        notes = [n for n in first.notes if all(n in r.notes for r in results[1:])]
        out = ScanResult(path=first.path, sha256=first.sha256, size=first.size, width=first.width,
                         height=first.height, format=first.format, p_fake=None, label=None, model_id=self.card.id,
                         weights_sha256=self.card.weights_sha256, modified=first.modified, notes=notes,
                         reused=all(r.reused for r in results))
        failed = [r for r in results if r.error is not None or r.p_fake is None]
        if failed:  # no combination from part of the members: the coefficients need every one
            errors = {r.error for r in failed}
            out.error = (failed[0].error if len(errors) == 1 and len(failed) == len(results) else
                         f"member {failed[0].model_id} gave no score ({failed[0].error or 'none'})")
            return out
        out.p_fake = combine_probabilities(self.card.ensemble, [r.p_fake for r in results])
        out.label = self.thresholds.label(out.p_fake)
        return out


def scan_models(loaded: Sequence["LoadedModel | LoadedEnsemble"]) -> list["LoadedModel | LoadedEnsemble"]:
    """Every model a scan of `loaded` scores, each once, in order: an ensemble is followed by those of its
    members that were not asked for before it (a member asked for later keeps the place the ensemble gave it)."""
    out: dict[str, Any] = {}
    for model in loaded:
        out.setdefault(model.card.id, model)
        for member in getattr(model, "members", []):
            out.setdefault(member.card.id, member)
    return list(out.values())


def build_scorers(models: Sequence["LoadedModel | LoadedEnsemble"],
                  engine_for: Callable[["LoadedModel"], "ScanEngine"],
                  thresholds_for: Callable[["ModelCard"], "Thresholds | None"]) -> list:
    """ScanEngines and EnsembleScorers for a MultiScanEngine, in scan_models' order: one engine per model,
    shared by the ensembles it is a member of."""
    order = scan_models(models)
    engines = {m.card.id: engine_for(m) for m in order if not isinstance(m, LoadedEnsemble)}
    return [EnsembleScorer(m.card, [engines[member.card.id] for member in m.members], thresholds_for(m.card))
            if isinstance(m, LoadedEnsemble) else engines[m.card.id] for m in order]
