"""The outcome words, defined once for the scan summary, the results table, the CSV and the report.

A model's label turns P(fake) into real / AI-generated / inconclusive (seed 000's 0.3–0.7 ambiguous zone);
a file without a label is unreadable (the model could not score it) or not scored (no result of that model).
"""
from __future__ import annotations

from dataclasses import dataclass

REAL, FAKE, INCONCLUSIVE = "real", "AI-generated", "inconclusive"
LABELS = (REAL, FAKE, INCONCLUSIVE)
UNREADABLE, NOT_SCORED = "unreadable", "not scored"
OUTCOMES = (*LABELS, UNREADABLE, NOT_SCORED)  # every word a file's outcome can be, in the order they are listed
FLAGGED_LABELS = (FAKE, INCONCLUSIVE)  # what an examiner should look at: the report's --only flagged


def outcome(label: str | None, error: str | None) -> str:
    """The word for one file's result: its label, or why there is none (an error makes it unreadable)."""
    if error:
        return UNREADABLE
    return label or NOT_SCORED


@dataclass(frozen=True)
class Thresholds:
    threshold: float = 0.5
    low: float = 0.3  # inconclusive band, inclusive; low == high disables it
    high: float = 0.7

    def __post_init__(self) -> None:
        if not 0.0 <= self.low <= self.threshold <= self.high <= 1.0:
            raise ValueError(f"need 0 ≤ band low ({self.low}) ≤ threshold ({self.threshold}) ≤ "
                             f"band high ({self.high}) ≤ 1")

    def label(self, p_fake: float) -> str:
        if not 0.0 <= p_fake <= 1.0:  # NaN too: it compares false with everything, so it would read as real
            raise ValueError(f"cannot label {p_fake}: a score must be a probability from 0 to 1")
        if self.low < self.high and self.low <= p_fake <= self.high:
            return INCONCLUSIVE
        return FAKE if p_fake >= self.threshold else REAL

    @classmethod
    def around(cls, threshold: float, band: tuple[float, float] | None = None,
               half_width: float = 0.2) -> "Thresholds":
        """A band given explicitly, or one of the default half-width centred on the threshold."""
        if band is not None:
            return cls(threshold, band[0], band[1])
        return cls(threshold, max(0.0, threshold - half_width), min(1.0, threshold + half_width))


AGREE, DIFFER = "agree", "differ"


def agreement(results) -> str:
    """Whether several models labelled one file alike: AGREE, DIFFER, or "" when there are fewer than two or
    some model has no label for it (an error, or None: not scored by that model). `results`: anything with
    .label and .error (ScanResult, CaseRow, ModelScore); one rule for the summary, CSV, table and report."""
    results = list(results)
    labels = [r.label if r is not None and not r.error else None for r in results]
    if len(labels) < 2 or None in labels:
        return ""
    return AGREE if len(set(labels)) == 1 else DIFFER
