"""The P(fake) histogram as PNG bytes (matplotlib's Agg canvas: no display, no pyplot state)."""
from __future__ import annotations

import io

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def histogram_png(p_fakes: list[float], threshold: float | None, band: tuple[float, float] | None) -> bytes:
    figure = Figure(figsize=(6.0, 2.4), dpi=150)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    if band is not None and band[0] < band[1]:
        axes.axvspan(band[0], band[1], color="#f0c36d", alpha=0.35, label="inconclusive band")
    axes.hist(p_fakes, bins=20, range=(0.0, 1.0), color="#4a78b5", edgecolor="white")
    if threshold is not None:
        axes.axvline(threshold, color="#b23b3b", linestyle="--", label=f"threshold {threshold:g}")
    axes.set_xlim(0, 1)
    axes.set_xlabel("P(fake)")
    axes.set_ylabel("files")
    if threshold is not None or band is not None:
        axes.legend(loc="upper center", fontsize=7, frameon=False)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
