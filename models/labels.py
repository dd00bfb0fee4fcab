"""The outcome words, defined once for the scan summary, the results table, the CSV and the report.

A model's label turns P(fake) into real / AI-generated / inconclusive (seed 000's 0.3–0.7 ambiguous zone);
a file without a label is unreadable (the model could not score it) or not scored (no result of that model).
"""
from __future__ import annotations

import math
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


# Seed 000's inconclusive zone is 0.3–0.7 around 0.5: ±0.847 in log-odds. Measured in log-odds, the same zone
# fits any threshold and never reaches 0 or 1: a band of ±0.2 in probability around 0.987 would reach 1, and no
# score could then read AI-generated.
BAND_LOG_ODDS = math.log(0.7 / 0.3)


def band_around(threshold: float) -> tuple[float, float]:
    """The default inconclusive band of a threshold: seed 000's 0.3–0.7 at 0.5, the same width in log-odds
    elsewhere (0.9 → 0.794–0.955, 0.987 → 0.970–0.994), so that both verdicts stay reachable."""
    if not 0.0 < threshold < 1.0:
        return threshold, threshold  # a threshold of 0 or 1: no room for a band
    log_odds = math.log(threshold / (1.0 - threshold))
    low, high = (1.0 / (1.0 + math.exp(-(log_odds + step))) for step in (-BAND_LOG_ODDS, BAND_LOG_ODDS))
    return low, high


@dataclass(frozen=True)
class Thresholds:
    threshold: float = 0.5
    low: float = 0.3  # inconclusive band, inclusive; low == high disables it
    high: float = 0.7

    def __post_init__(self) -> None:
        if not 0.0 <= self.low <= self.threshold <= self.high <= 1.0:
            raise ValueError(f"need 0 ≤ band low ({self.low}) ≤ threshold ({self.threshold}) ≤ "
                             f"band high ({self.high}) ≤ 1")
        if self.low < self.high and (self.high >= 1.0 or self.low <= 0.0):
            verdict = FAKE if self.high >= 1.0 else REAL
            raise ValueError(f"an inconclusive band of {self.low:g}–{self.high:g} leaves no score that reads "
                             f"{verdict}: keep it inside 0–1, e.g. "
                             + ",".join(f"{v:.4g}" for v in band_around(self.threshold)))

    def label(self, p_fake: float) -> str:
        if not 0.0 <= p_fake <= 1.0:  # NaN too: it compares false with everything, so it would read as real
            raise ValueError(f"cannot label {p_fake}: a score must be a probability from 0 to 1")
        if self.low < self.high and self.low <= p_fake <= self.high:
            return INCONCLUSIVE
        return FAKE if p_fake >= self.threshold else REAL

    @classmethod
    def around(cls, threshold: float, band: tuple[float, float] | None = None) -> "Thresholds":
        """A band given explicitly, or the default band around the threshold (`band_around`)."""
        low, high = band if band is not None else band_around(threshold)
        return cls(threshold, low, high)


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
