"""Ground truth from folder names: a file under real/, fake/, 0_real/, 1_fake/ (and the other synonyms the
training data loader understands) has a known true class, which the histogram can show beside P(fake)."""
from __future__ import annotations

from pathlib import PurePath

from models.classes import CLASS_NAMES, class_of  # one list of folder-name synonyms for training and app

TRUE_REAL, TRUE_FAKE = CLASS_NAMES[0], CLASS_NAMES[1]


def true_class(path: str) -> str | None:
    """'real' or 'fake' from the nearest folder whose name says so, else None."""
    for folder in reversed(PurePath(path).parts[:-1]):
        found = class_of(folder)
        if found is not None:
            return CLASS_NAMES[found]
    return None
