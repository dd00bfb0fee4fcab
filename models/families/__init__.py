"""Published detector families: recognising a downloaded file, rebuilding the authors' exact network and input,
and writing a full card from the catalogue (resources/detector_catalogue.json).

A *state family* is a published PyTorch checkpoint for one network in models/registry.py (CNNDetection, NPR,
the GRIP-UNINA ResNet-50 "nodown" models): it matches when the file's tensor names and shapes are exactly the
network's. A *format family* is a file format that carries its own network: a Hugging Face folder
(models/families/huggingface.py) or an ONNX graph (models/families/onnx_graph.py).

Some published files hold the very same tensors (CNNDetection and the GRIP models are all torchvision-shaped
ResNet-50s with one logit); then the file's SHA-256 or name in the catalogue, or the user's --family, decides.
"""
from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from models.card import InputSpec, ModelCard
from models.checkpoints import CheckpointError, StateDict, describe_mismatch
from models.labels import band_around
from models.registry import ARCHITECTURES, build_model

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
CATALOGUE_FORMAT = "forensight-detector-catalogue"


def catalogue_path() -> Path:
    return Path(os.environ.get("FORENSIGHT_CATALOGUE") or REPO_ROOT / "resources" / "detector_catalogue.json")


@functools.lru_cache(maxsize=4)
def _read_catalogue(path: str) -> dict[str, Any]:
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(data, dict) or data.get("format") != CATALOGUE_FORMAT:
        raise ValueError(f"{path} is not a Forensight detector catalogue")
    return data


def catalogue() -> list[dict[str, Any]]:
    """Every family in the catalogue (plain dicts, as written in the JSON file)."""
    return [dict(entry) for entry in _read_catalogue(str(catalogue_path()))["families"]]


def catalogue_benchmarks() -> list[dict[str, Any]]:
    """Independent studies that compared published detectors: what each measured, its findings, results by threat
    and, where it reports them per detector, each family's results."""
    return [dict(entry) for entry in _read_catalogue(str(catalogue_path())).get("benchmarks", [])]


def independent_results(family_id: str) -> list[dict[str, str]]:
    """What the catalogue's independent benchmarks say of one family: [{benchmark, where, result}]."""
    return [{"benchmark": bench["name"], "where": bench["where"], "result": item["result"]}
            for bench in catalogue_benchmarks() for item in bench.get("results", []) if item["family"] == family_id]


def catalogue_entry(family_id: str) -> dict[str, Any]:
    for entry in catalogue():
        if entry["id"] == family_id:
            return entry
    raise KeyError(family_id)


@dataclass(frozen=True)
class KnownFile:
    family: str
    file: dict[str, Any]  # the catalogue's entry for one published file


def known_file_by_sha256(sha256: str) -> KnownFile | None:
    for entry in catalogue():
        for item in entry.get("files", []):
            if sha256 in item.get("sha256", []):
                return KnownFile(entry["id"], item)
    return None


def known_file_by_name(path: Path) -> KnownFile | None:
    """A catalogue file whose published name is this file's name ('NPR.pth') or its last folder and name
    ('Grag2021_latent/model_epoch_best.pth')."""
    path = Path(path)
    names = {path.name.lower(), f"{path.parent.name}/{path.name}".lower()}
    for entry in catalogue():
        for item in entry.get("files", []):
            if item["file"].lower() in names:
                return KnownFile(entry["id"], item)
    return None


# ---- state families -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class StateFamily:
    id: str
    architecture: str  # models/registry.py name
    input: InputSpec
    num_logits: int = 1
    fake_index: int = 1
    signature: tuple[str, ...] = ()  # keys whose presence alone says "this family" (for a partial file)
    threshold: float = 0.5

    def reference(self) -> dict[str, torch.Size]:
        return _reference_shapes(self.architecture, self.num_logits)

    def matches(self, state: StateDict) -> bool:
        ref = self.reference()
        return ref.keys() == state.keys() and all(ref[k] == state[k].shape for k in ref)

    def missing(self, state: StateDict) -> str | None:
        """Why a file that looks like this family does not fit it, or None when it does not look like it."""
        ref = self.reference()
        common = ref.keys() & state.keys()
        if not (self.signature and all(k in state for k in self.signature)) and len(common) < len(ref) // 2:
            return None
        return describe_mismatch(ref, state)


@functools.lru_cache(maxsize=16)
def _reference_shapes(architecture: str, num_logits: int) -> dict[str, torch.Size]:
    with torch.device("meta"):
        return {k: v.shape for k, v in build_model(architecture, num_logits).state_dict().items()}


def _imagenet(policy: str, size: int, **extra: Any) -> InputSpec:
    return InputSpec(policy=policy, size=size, resize=max(size, extra.pop("resize", size)),
                     mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), interpolation="bilinear", **extra)


def _whole_image(max_pixels: int = 4_194_304, size: int = 64) -> InputSpec:
    """The whole picture at its own resolution ('full' policy) when this Forensight has it; else a centre crop,
    which is the same input for pictures of exactly size×size and is said on the card. `size` is only the
    smallest side: a picture with a shorter side is padded (the authors' networks would take it as it is), so it
    is kept small."""
    from models.card import INPUT_POLICIES

    if "full" in INPUT_POLICIES:
        spec = _imagenet("full", size)
        if hasattr(spec, "full_max_pixels"):
            spec = replace(spec, full_max_pixels=max(size * size, max_pixels))
        return replace(spec, jpeg_draft=False)
    return replace(_imagenet("center_crop", size), jpeg_draft=False)


def state_families() -> list[StateFamily]:
    # built on each call: the whole-image policy depends on what models/card.py offers
    return [
        # CNNDetection: demo.py / demo_dir.py feed the image uncropped and unresized (ToTensor + Normalize)
        StateFamily("cnndetection", "resnet50", _whole_image(), signature=()),
        # NPR: test.py / data/datasets.py resize to 256×256 (bilinear), no crop
        StateFamily("npr", "npr_resnet50", _imagenet("resize", 256), signature=("fc1.weight", "layer2.3.bn3.weight")),
        # GRIP-UNINA: main.py / resnet50nodown.py feed the whole image (ToTensor + Normalize). The stride-1 stem
        # costs 16× a ResNet-50 per pixel: the card keeps the picture's central 1024×1024 pixels at most
        StateFamily("corvi2023", "resnet50_nodown", _whole_image(1 << 20)),
        StateFamily("gragnaniello2021", "resnet50_nodown", _whole_image(1 << 20)),
        # DRCT (models/families/drct.py): data/transform.py pads to 224 and takes the central 224 pixels, the
        # offset rounded down as albumentations does; two logits, P(fake) = softmax[1]
        StateFamily("drct", "drct_convnext_base", replace(_imagenet("center_crop", 224), crop_offset="floor",
                                                          jpeg_draft=False),
                    num_logits=2, fake_index=1, signature=("fc.weight", "head.fc.weight", "stages.2.blocks.26.gamma")),
        # B-Free (models/families/vit_detectors.py): the whole picture, unresized, up to the 16.7 megapixels a view
        # may hold; the network cuts its five 504-pixel windows itself (a smaller picture is tiled, not padded,
        # so the policy's smallest side is kept at the minimum)
        StateFamily("b-free", "bfree_vitb14_reg4", _whole_image(1 << 24, size=16),
                    signature=("reg_token", "blocks.0.ls1.gamma")),
        # Community Forensics: models.py / dataloader.py resize the short side to 440 (256), centre-crop 384 (224)
        *[StateFamily(family_id, architecture, replace(_imagenet("resize_center_crop", size, resize=resize),
                                                       jpeg_draft=False), signature=("vit.cls_token", "vit.pos_embed"))
          for family_id, architecture, size, resize in (
              ("community-forensics", "commfor_vit_small_384", 384, 440),
              ("community-forensics-224", "commfor_vit_small_224", 224, 256))],
    ]


def state_family(family_id: str) -> StateFamily:
    for family in state_families():
        if family.id == family_id:
            return family
    raise KeyError(family_id)


FORMAT_FAMILIES = ("huggingface", "onnx")
# a head imported together with the foundation-model tower it reads (--tower FILE): models/families/univfd.py, rine.py
TOWER_FAMILIES = ("univfd", "rine")


def family_ids() -> list[str]:
    """Every family an import can be told to use (--family)."""
    return [f.id for f in state_families()] + list(FORMAT_FAMILIES) + list(TOWER_FAMILIES)


class FamilyError(CheckpointError):
    """A file that no family takes, or that a family's rules refuse, with what the user can do."""


@dataclass
class Identified:
    family: StateFamily
    how: str  # "sha256", "file name", "contents", "--family"
    known: KnownFile | None = None
    note: str = ""


def identify(state: StateDict, path: Path, sha256: str, family: str | None = None) -> Identified | None:
    """The state family of a checkpoint, or None when none fits (the caller then tries the registry)."""
    if family:
        if family in FORMAT_FAMILIES:
            raise FamilyError(f"--family {family} is for a {'folder' if family == 'huggingface' else '.onnx file'}, "
                              f"not a PyTorch checkpoint")
        try:
            chosen = state_family(family)
        except KeyError:
            raise FamilyError(f"unknown family {family!r}; known: {', '.join(family_ids())}") from None
        if not chosen.matches(state):
            why = chosen.missing(state) or f"its tensors are not those of {chosen.architecture}"
            raise FamilyError(f"this file is not a {family} checkpoint: {why}")
        known = known_file_by_sha256(sha256) or known_file_by_name(path)
        return Identified(chosen, "--family", known if known and known.family == family else None)
    fitting = [f for f in state_families() if f.matches(state)]
    if not fitting:
        return None
    for how, known in (("sha256", known_file_by_sha256(sha256)), ("file name", known_file_by_name(path))):
        if known is not None:
            chosen = next((f for f in fitting if f.id == known.family), None)
            if chosen is not None:
                return Identified(chosen, how, known)
    if len(fitting) == 1:
        return Identified(fitting[0], "contents")
    return None  # the same tensors as several families: a plain architecture import, with a note


def ambiguous_families(state: StateDict) -> list[str]:
    return [f.id for f in state_families() if f.matches(state)]


def partial_match(state: StateDict) -> str | None:
    """'looks like NPR, but ...' for a checkpoint that one family almost fits."""
    for family in state_families():
        why = family.missing(state)
        if why:
            return f"it looks like a {family.id} checkpoint but does not fit it: {why}"
    return None


def card_for(identified: Identified, *, model_id: str, name: str | None, path: Path, sha256: str,
             threshold: float | None = None) -> ModelCard:
    """The card of a published checkpoint: exact input and output, and the catalogue's facts."""
    family = identified.family
    entry = catalogue_entry(family.id)
    known = identified.known.file if identified.known else None
    card = ModelCard(
        id=model_id, name=name or f"{entry['name']}" + (f" — {known['variant']}" if known else f" ({path.name})"),
        architecture=family.architecture, num_logits=family.num_logits, fake_index=family.fake_index,
        input=family.input, threshold=family.threshold if threshold is None else threshold,
        family=family.id,
    )
    return apply_catalogue(card, entry, known, path=path, sha256=sha256, how=identified.how, note=identified.note)


def known_head_file(path: Path, family: str) -> tuple[str, KnownFile | None, str]:
    """A downloaded head's SHA-256, its catalogue file when it is one of `family`'s published files, and how that
    was told ('sha256', 'file name' or 'contents')."""
    from models.card import sha256_file

    sha256 = sha256_file(path)
    by_sha256 = known_file_by_sha256(sha256)
    known = by_sha256 or known_file_by_name(path)
    if known is None or known.family != family:
        return sha256, None, "contents"
    return sha256, known, "sha256" if known is by_sha256 else "file name"


def finish_head_card(card: ModelCard, known: KnownFile | None, *, head_path: Path, head_sha256: str, how: str,
                     note: str, tower_path: Path, tower_sha256: str, policy: str | None) -> ModelCard:
    """The card of a head read on a tower the user brought (UnivFD, RINE): the catalogue's words, both files'
    names and hashes, and an input policy the user chose over the authors' test input, said as such."""
    if card.threshold != 0.5:
        card.inconclusive_band = band_around(card.threshold)
    card = apply_catalogue(card, catalogue_entry(card.family), known.file if known else None, path=head_path,
                           sha256=head_sha256, how=how, note=note)
    card = replace(card, provenance=card.provenance | {"tower_file": tower_path.name, "tower_sha256": tower_sha256})
    if policy:
        card = replace(card, input=replace(card.input, policy=policy), provenance=card.provenance | {
            "input_policy": f"{policy}, chosen on import instead of the authors' test input"})
    card.validate()
    return card


def apply_catalogue(card: ModelCard, entry: dict[str, Any], known: dict[str, Any] | None, *, path: Path,
                    sha256: str, how: str, note: str = "") -> ModelCard:
    """Description, training data, limitations and provenance from the catalogue."""
    paper = f"{entry['authors']}, \"{entry['paper']}\", {entry['venue']}" if entry.get("paper") else ""
    description = " ".join(part for part in (
        f"{entry['name']}" + (f", variant {known['variant']}" if known else "") + ".",
        f"Paper: {paper}." if paper else "",
        f"Network: {entry['architecture']}." if entry.get("architecture") else "",
        f"Input: {entry['input']}." if entry.get("input") else "",
        note) if part)
    limitations = " ".join(part for part in (
        entry.get("weaknesses", ""),
        "Forensight has not measured this detector: evaluate it on data like your casework before relying on it.",
    ) if part)
    provenance = {
        "family": entry["id"], "paper": paper, "code": entry.get("code", ""), "licence": entry.get("licence", ""),
        "published_file": known["file"] if known else "", "download": known["download"] if known else "",
        "headline_result": known["headline"] if known else "",
        "validated_on": ", ".join(entry.get("validated_on", [])),
        "preprocessing_source": entry.get("preprocessing_source", ""),
        "recognised_by": how, "imported_from": path.name, "source_sha256": sha256,
        "imported_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    if threshold_note := _band_note(card):
        provenance["threshold"] = threshold_note
    return replace(card, description=description[:20_000], limitations=limitations,
                   trained_on=(known or {}).get("trained_on") or entry.get("training_data", ""),
                   provenance={k: v for k, v in provenance.items() if v not in ("", None)})


def _band_note(card: ModelCard) -> str:
    return "" if card.threshold == 0.5 else f"threshold set on import to {card.threshold:g}"


# ---- what a file holds, for a refusal ---------------------------------------------------------------------
def describe(obj: Any, limit: int = 3) -> str:
    """'top-level keys a, b, c; first tensors x (1, 2), ...' for a checkpoint no family takes."""
    parts = []
    if isinstance(obj, dict):
        keys = [str(k) for k in obj]
        shown = ", ".join(repr(k) for k in keys[:6]) + (f" (+{len(keys) - 6} more)" if len(keys) > 6 else "")
        parts.append(f"top-level keys {shown}" if keys else "an empty dict")
    else:
        parts.append(f"a {type(obj).__name__}, not a dict of tensors")
    tensors = list(_tensors(obj, limit))
    if tensors:
        parts.append("first tensors " + ", ".join(f"{name} {tuple(value.shape)}" for name, value in tensors))
    else:
        parts.append("no tensors")
    return "; ".join(parts)


def _tensors(obj: Any, limit: int, prefix: str = "", depth: int = 0):
    found = 0
    if isinstance(obj, dict):
        items = obj.items()
    elif isinstance(obj, (list, tuple)):
        items = enumerate(obj)
    else:
        return
    for key, value in items:
        if found >= limit:
            return
        name = f"{prefix}{key}"
        if isinstance(value, torch.Tensor):
            found += 1
            yield name, value
        elif depth < 3 and isinstance(value, (dict, list, tuple)):
            for item in _tensors(value, limit - found, f"{name}.", depth + 1):
                found += 1
                yield item


def known_families_text() -> str:
    families = ", ".join(family_ids())
    return (f"known families: {families} (a Hugging Face folder, an .onnx file, a UnivFD or RINE head with "
            f"--tower FILE), and plain checkpoints of "
            f"{', '.join(a for a, spec in ARCHITECTURES.items() if not spec.external)}")


# ---- networks described by their card ---------------------------------------------------------------------
def external_module(card: ModelCard) -> torch.nn.Module:
    """The untrained network of a card whose architecture the registry cannot build alone."""
    if card.architecture == "hf_image_classifier":
        from models.families.huggingface import build_module

        return build_module(card)
    if card.architecture == "tower_linear":  # UnivFD, linear probes: an image tower + one linear logit
        from models.families.tower_linear import build_module as build_tower_linear

        return build_tower_linear(card)
    if card.architecture == "clip_rine":
        from models.families.rine import build_module as build_rine

        return build_rine(card)
    if card.architecture == "drct_clip":
        from models.families.drct import build_clip_module

        return build_clip_module(card)
    raise FamilyError(f"{card.architecture} models are not stored as a state dict")


def tower_head_module(path: Path, family: str | None):
    """The module (univfd or rine) that imports a head given with the tower it reads: the --family when given,
    else what the head file holds."""
    from models.families import rine, univfd

    if family in (None, ""):
        return rine if rine.is_head_file(path) else univfd
    modules = {"univfd": univfd, "rine": rine}
    if family not in modules:
        raise FamilyError(f"--tower goes with a UnivFD or RINE head, not with --family {family}")
    return modules[family]


def catalogue_status(library) -> list[dict[str, Any]]:
    """The catalogue's families with the ids of the library's models of each family (`models catalogue`, the
    model manager's Known detectors)."""
    installed: dict[str, list[str]] = {}
    for entry in library.entries():
        family = entry.card.family or entry.card.provenance.get("family", "")
        if family:
            installed.setdefault(family, []).append(entry.card.id)
    rows = []
    for entry in catalogue():
        rows.append({key: entry.get(key, "") for key in (
            "id", "name", "status", "paper", "authors", "venue", "year", "code", "licence", "architecture", "input",
            "preprocessing_source", "training_data", "validated_on", "weaknesses")}
                    | {"files": [{k: item.get(k, "") for k in ("file", "variant", "download", "headline")}
                                 for item in entry.get("files", [])],
                       "installed": installed.get(entry["id"], []),
                       "independent_results": independent_results(entry["id"])})
    return rows
