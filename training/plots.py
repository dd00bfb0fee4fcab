"""PNG figures of the metrics from training.metrics.

Figures are drawn on bare `Figure` objects with the Agg canvas (never pyplot), so nothing here
can open a window or need a display, whether called from the CLI, a worker thread or the app.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

DPI = 100
SIZE = (5.0, 4.0)
ONE_CLASS = "undefined: one class only"
REAL_COLOR, FAKE_COLOR = "tab:blue", "tab:red"
SWEEP_LABELS = {"jpeg_quality": "JPEG quality", "blur_sigma": "Gaussian blur σ",
                "downscale": "Downscale factor"}


# ---------------------------------------------------------------- helpers

def _figure(size: tuple[float, float] = SIZE) -> Figure:
    figure = Figure(figsize=size, dpi=DPI)
    FigureCanvasAgg(figure)  # attaches itself as figure.canvas
    return figure


def _save(figure: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, format="png", dpi=DPI)
    return path


def _fmt(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _note(ax, text: str) -> None:
    """A centred message in place of a plot that cannot be drawn."""
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="dimgray")


def _unit_axes(ax) -> None:
    ax.set_xlim(0.0, 1.0)
    ax.set_ylim(0.0, 1.02)
    ax.grid(alpha=0.3)


def _series(points: Sequence[dict], x_key: str, y_key: str) -> tuple[list, list]:
    """(x, y) of the points whose y is known: None values are gaps, not zeros."""
    pairs = [(pt[x_key], pt.get(y_key)) for pt in points
             if pt.get(x_key) is not None and pt.get(y_key) is not None]
    return [x for x, _ in pairs], [y for _, y in pairs]


def _operating_point(metrics: dict) -> tuple[float | None, float | None]:
    """(FPR, TPR) at the metrics' threshold, from the confusion matrix."""
    cm = metrics["confusion_matrix"]
    negatives, positives = cm["tn"] + cm["fp"], cm["tp"] + cm["fn"]
    fpr = cm["fp"] / negatives if negatives else None
    tpr = cm["tp"] / positives if positives else None
    return fpr, tpr


# ---------------------------------------------------------------- metric figures

def save_confusion_matrix(metrics: dict[str, Any], path: str | Path) -> Path:
    """2x2 counts (rows = true class, columns = predicted), with each row's share in brackets."""
    cm = metrics["confusion_matrix"]
    grid = [[cm["tn"], cm["fp"]], [cm["fn"], cm["tp"]]]
    figure = _figure()
    ax = figure.add_subplot()
    image = ax.imshow(grid, cmap="Blues", vmin=0)
    colorbar = figure.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    colorbar.ax.yaxis.set_major_locator(MaxNLocator(integer=True))  # counts, not fractions
    peak = max(max(row) for row in grid)
    for r, row in enumerate(grid):
        total = sum(row)
        for c, count in enumerate(row):
            share = f"\n({count / total:.1%})" if total else ""
            color = "white" if peak and count > peak / 2 else "black"
            ax.text(c, r, f"{count}{share}", ha="center", va="center", color=color)
    ax.set_xticks([0, 1], labels=["Real", "Fake"])
    ax.set_yticks([0, 1], labels=["Real", "Fake"])
    ax.set_xlabel("Predicted")
    ax.set_ylabel("True")
    ax.set_title(f"Confusion matrix (threshold {metrics['threshold']:.2f})")
    return _save(figure, path)


def save_roc(metrics: dict[str, Any], path: str | Path) -> Path:
    """ROC curve with the chance diagonal and the operating point at the current threshold."""
    figure = _figure()
    ax = figure.add_subplot()
    curve = metrics.get("roc_curve")
    if curve is None:
        _note(ax, f"ROC {ONE_CLASS}")
        ax.set_title("ROC curve")
    else:
        ax.plot([0, 1], [0, 1], linestyle="--", color="gray", label="chance (AUC 0.5)")
        ax.plot(curve["fpr"], curve["tpr"], color=FAKE_COLOR, label="detector")
        fpr, tpr = _operating_point(metrics)
        if fpr is not None and tpr is not None:
            ax.plot([fpr], [tpr], "o", color="black", label=f"threshold {metrics['threshold']:.2f}")
        ax.set_title(f"ROC curve (AUC {_fmt(metrics.get('roc_auc'))})")
        ax.legend(loc="lower right", fontsize="small")
    ax.set_xlabel("False positive rate (real called fake)")
    ax.set_ylabel("True positive rate (fake caught)")
    _unit_axes(ax)
    return _save(figure, path)


def save_pr(metrics: dict[str, Any], path: str | Path) -> Path:
    """Precision-recall curve for the fake class, with the random-ranking baseline (prevalence)."""
    figure = _figure()
    ax = figure.add_subplot()
    curve = metrics.get("pr_curve")
    if curve is None:
        _note(ax, f"PR curve {ONE_CLASS}")
        ax.set_title("Precision-recall curve")
    else:
        ax.plot(curve["recall"], curve["precision"], color=FAKE_COLOR, label="detector")
        prevalence = metrics["n_fake"] / metrics["n"]
        ax.axhline(prevalence, linestyle="--", color="gray", label=f"random (AP {prevalence:.2f})")
        ax.set_title(f"Precision-recall (AP {_fmt(metrics.get('average_precision'))})")
        ax.legend(loc="lower left", fontsize="small")
    ax.set_xlabel("Recall (fake)")
    ax.set_ylabel("Precision (fake)")
    _unit_axes(ax)
    return _save(figure, path)


def save_histogram(metrics: dict[str, Any], path: str | Path) -> Path:
    """P(fake) histogram, one series per true class, with the decision threshold as a line."""
    histogram = metrics["histogram"]
    edges = histogram["bins"]
    figure = _figure()
    ax = figure.add_subplot()
    for name, color in (("real", REAL_COLOR), ("fake", FAKE_COLOR)):
        counts = histogram[name]
        ax.stairs(counts, edges, fill=True, alpha=0.45, color=color,
                  label=f"{name} images (n={sum(counts)})")
    ax.axvline(metrics["threshold"], color="black", linestyle="--",
               label=f"threshold {metrics['threshold']:.2f}")
    ax.set_xlim(0.0, 1.0)
    ax.set_xlabel("P(fake)")
    ax.set_ylabel("Images")
    ax.set_title("Score distribution by true class")
    ax.legend(fontsize="small")
    return _save(figure, path)


def save_reliability(metrics: dict[str, Any], path: str | Path) -> Path:
    """Reliability diagram: observed fraction of fakes per P(fake) bin against the diagonal."""
    calibration = metrics["calibration"]
    filled = [b for b in calibration["bins"] if b["count"]]
    figure = _figure()
    ax = figure.add_subplot()
    ax.bar([b["low"] for b in filled], [b["fraction_fake"] for b in filled],
           width=[b["high"] - b["low"] for b in filled], align="edge",
           color=FAKE_COLOR, alpha=0.5, edgecolor="black", label="fraction fake")
    ax.plot([b["mean_confidence"] for b in filled], [b["fraction_fake"] for b in filled],
            "o-", color="black", markersize=4, label="mean P(fake) in bin")
    ax.plot([0, 1], [0, 1], linestyle="--", color="gray", label="perfect calibration")
    ax.set_xlabel("Predicted P(fake)")
    ax.set_ylabel("Observed fraction of fakes")
    ax.set_title(f"Reliability diagram (ECE {_fmt(calibration['ece'])})")
    _unit_axes(ax)
    ax.legend(loc="best", fontsize="small")
    return _save(figure, path)


# ---------------------------------------------------------------- training and robustness figures

def save_learning_curve(curve: list[dict[str, Any]], path: str | Path) -> Path:
    """Loss (left) and accuracy (right) per epoch, train and validation; missing values are skipped."""
    figure = _figure((9.0, 4.0))
    panels = (("loss", "Loss"), ("accuracy", "Accuracy"))
    for column, (metric, label) in enumerate(panels, start=1):
        ax = figure.add_subplot(1, 2, column)
        drawn = False
        for split, style in (("train", "o-"), ("val", "s--")):
            epochs, values = _series(curve, "epoch", f"{split}_{metric}")
            if values:
                ax.plot(epochs, values, style, markersize=4, label=split)
                drawn = True
        if drawn:
            ax.legend(fontsize="small")
        else:
            _note(ax, f"no {metric} recorded")
        ax.set_xlabel("Epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # no "epoch 1.5"
        ax.set_ylabel(label)
        ax.set_title(f"{label} per epoch")
        ax.grid(alpha=0.3)
    return _save(figure, path)


def save_robustness(sweeps: dict[str, list[dict[str, Any]]], path: str | Path) -> Path:
    """One panel per perturbation sweep: AP and accuracy against the perturbation strength."""
    names = list(sweeps) or [""]
    figure = _figure((4.0 * len(names) + 1.0, 4.0))
    for column, name in enumerate(names, start=1):
        ax = figure.add_subplot(1, len(names), column)
        points = sorted((pt for pt in sweeps.get(name, []) if pt.get("value") is not None),
                        key=lambda pt: pt["value"])
        drawn = False
        for key, label, style in (("average_precision", "AP", "o-"), ("accuracy", "accuracy", "s--")):
            xs, ys = _series(points, "value", key)
            if ys:
                ax.plot(xs, ys, style, markersize=4, label=label)
                drawn = True
        if drawn:
            ax.legend(fontsize="small", loc="lower left")
        else:
            _note(ax, "no data")
        ax.set_xlabel(SWEEP_LABELS.get(name, name or "value"))
        ax.set_ylabel("Score")
        ax.set_ylim(0.0, 1.02)
        ax.set_title(f"Robustness: {SWEEP_LABELS.get(name, name)}" if name else "Robustness")
        ax.grid(alpha=0.3)
    return _save(figure, path)
