"""The record every evidence check returns."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from app.evidence.text import metadata_text

# How much a finding weighs on the question "was this image generated?", in the examiner's words.
STRENGTHS = ("strong", "moderate", "weak", "info")


@dataclass(frozen=True)
class Finding:
    source: str  # exif | png_text | xmp | iptc | dates | c2pa | jpeg | file
    kind: str  # short machine name, e.g. camera, no_camera_data, generator_parameters, c2pa_invalid
    strength: str  # one of STRENGTHS
    message: str  # one sentence for the examiner
    details: dict[str, Any] = field(default_factory=dict)  # JSON-serialisable facts behind the message
    points_to: str = ""  # "generated", "camera" or "" when neutral

    def __post_init__(self) -> None:
        if self.strength not in STRENGTHS:
            raise ValueError(f"strength must be one of {STRENGTHS}, not {self.strength!r}")
        # messages quote metadata the file's author wrote: no control or direction characters reach a screen
        object.__setattr__(self, "message", metadata_text(self.message))

    def details_json(self) -> str:
        return json.dumps(self.details, ensure_ascii=False, sort_keys=True, default=str)
