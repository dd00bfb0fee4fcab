"""The two classes every dataset and case speaks of: their numbers, their names, the folder names that mean
each, and which file suffixes are pictures. Shared by training, the case's ground truth and the GUI."""
from __future__ import annotations

REAL, FAKE = 0, 1
CLASS_NAMES = {REAL: "real", FAKE: "fake"}
_CLASS_SYNONYMS = {
    REAL: {"real", "0_real", "0-real", "authentic", "genuine", "nature", "natural", "photo", "photos", "human",
           "reals"},
    FAKE: {"fake", "1_fake", "1-fake", "ai", "ai_generated", "ai-generated", "generated", "synthetic", "fakes",
           "gen"},
}
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif", ".heic", ".heif", ".avif"}


def class_of(name: str) -> int | None:
    lowered = name.lower()
    return next((label for label, names in _CLASS_SYNONYMS.items() if lowered in names), None)
