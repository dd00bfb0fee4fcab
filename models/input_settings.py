"""Choosing how a model looks at a picture, after the fact: the card's input policy and its tile settings,
from `FIELD=VALUE` text (the CLI's `--set`, `models set`) to a validated card."""
from __future__ import annotations

from dataclasses import replace
from typing import Any, Iterable

from models.card import CardError, InputSpec, ModelCard

# The input fields a user may change on an existing model: how it analyses a picture, not what it was trained
# to see (size, mean and std belong to the weights).
SETTABLE = ("policy", "tile_stride", "max_tiles", "aggregation", "top_k", "full_max_pixels", "small_image",
            "interpolation", "jpeg_draft")


def coerce_input(name: str, value: Any) -> Any:
    """A settable input field's value from text ("64" → 64, "none" → None, "off" → False)."""
    if name not in SETTABLE:
        raise ValueError(f"input.{name} cannot be set; settable: " + ", ".join(f"input.{n}" for n in SETTABLE))
    if not isinstance(value, str):
        return value
    text = value.strip()
    if name == "tile_stride" and text.lower() in ("none", "null", ""):
        return None
    current = getattr(InputSpec(), name)
    if isinstance(current, bool):
        if text.lower() in ("1", "true", "yes", "on"):
            return True
        if text.lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"input.{name} expects true or false, not {text!r}")
    if isinstance(current, str):
        return text
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"input.{name} expects a whole number, not {text!r}") from None


def parse_settings(items: Iterable[str]) -> dict[str, Any]:
    """["input.policy=tiles", "max_tiles=32"] → {"policy": "tiles", "max_tiles": 32}."""
    changes: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"expected FIELD=VALUE such as input.policy=tiles, not {item!r}")
        key, value = (part.strip() for part in item.split("=", 1))
        name = key.removeprefix("input.").replace("-", "_")
        changes[name] = coerce_input(name, value)
    return changes


def with_input(card: ModelCard, changes: dict[str, Any]) -> ModelCard:
    """The card with its input changed, validated as a whole (CardError names the wrong field)."""
    for name in changes:
        coerce_input(name, None)  # refuses fields that are not settable
    changed = replace(card, input=replace(card.input, **changes))
    changed.validate()
    return changed


def set_model_input(library, model_id: str, changes: dict[str, Any]):
    """Rewrite the card of a model in the user's library; shipped models are read-only (import a copy)."""
    from models.library import CARD_NAME

    entry = library.get(model_id)
    if entry.shipped:
        raise CardError(f"{model_id} ships with Forensight and is read-only: import a copy with "
                        f"`forensight models import {entry.directory} --id my-{model_id}` and change that")
    if entry.card.architecture == "ensemble":
        raise CardError(f"{model_id} is an ensemble: it looks at each picture through its members, whose own "
                        "settings apply")
    if entry.card.calibration and any(getattr(entry.card.input, k) != v for k, v in changes.items()):
        # its calibration and threshold were fitted on the scores of the old settings
        source = entry.card.calibration.get("fitted_on", {}).get("model", "the original model")
        raise CardError(f"{model_id} was calibrated on the scores of its current input settings; give a copy "
                        f"of {source} the new settings and calibrate that (`forensight calibrate ID --real FOLDER`)")
    card = with_input(entry.card, changes)
    card.save(entry.directory / CARD_NAME)
    return library.get(model_id)
