"""The P(fake) histogram: one stacked bar per score bin, coloured by label, or by true class when the folder
names say what each file really is (real/, fake/, 0_real/, 1_fake/ ...), with the threshold and the
inconclusive band drawn over it."""
from __future__ import annotations

import math
from functools import lru_cache
from typing import Iterable

from PySide6.QtCharts import (QBarCategoryAxis, QBarSet, QChart, QChartView, QLineSeries, QStackedBarSeries,
                              QValueAxis)
from PySide6.QtCore import QEvent, QMargins, QPointF, Qt
from PySide6.QtGui import QColor, QPainter, QPen

from app.case.store import CaseRow
from app.case.ground_truth import true_class
from app.ui.widgets.palette import LABEL_COLOURS, TRUE_CLASS_COLOURS, is_dark
from models.labels import LABELS, Thresholds

BINS = 20
_TRUE_NAMES = {"real": "real (folder name)", "fake": "fake (folder name)", None: "no folder label"}


@lru_cache(maxsize=100_000)
def _true_class(path: str) -> str | None:
    return true_class(path)


def count_scores(rows: Iterable[CaseRow], bins: int = BINS) -> tuple[bool, dict[str, list[int]]]:
    """(by_true_class, series name → counts per bin) for the rows that have a score."""
    scored = [row for row in rows if row.p_fake is not None and not row.error]
    # Both classes must appear: one folder called "photos" (a synonym of real) is not a labelled data set.
    by_truth = {_true_class(row.path) for row in scored} >= {"real", "fake"}
    names = ([_TRUE_NAMES[c] for c in ("real", "fake", None)] if by_truth else list(LABELS))
    counts = {name: [0] * bins for name in names}
    for row in scored:
        name = _TRUE_NAMES[_true_class(row.path)] if by_truth else row.label
        if name in counts:
            counts[name][min(int(row.p_fake * bins), bins - 1)] += 1
    return by_truth, {name: values for name, values in counts.items() if any(values)}


def nice_step(peak: int, ticks: int = 5) -> int:
    """A round tick interval (1, 2, 5, 10, 20, 50 ...) giving about `ticks` ticks up to peak."""
    raw = max(1.0, peak / ticks)
    magnitude = 10 ** math.floor(math.log10(raw))
    return int(next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw))


class HistogramView(QChartView):
    def __init__(self, parent=None) -> None:
        chart = QChart()
        chart.setMargins(QMargins(4, 4, 4, 4))
        chart.legend().setAlignment(Qt.AlignmentFlag.AlignBottom)
        chart.setAnimationOptions(QChart.AnimationOption.NoAnimation)  # redrawn per batch: no tweening
        super().__init__(chart, parent)
        self.setRenderHint(QPainter.RenderHint.Antialiasing)
        self.setMinimumHeight(160)
        self._counts: dict[str, list[int]] = {}
        self._thresholds = Thresholds()

        self._bars = QStackedBarSeries()
        self._bars.setBarWidth(1.0)  # bins touch, as in any histogram
        self._bins_axis = QBarCategoryAxis()
        self._bins_axis.append([f"{i / BINS:.2f}" for i in range(BINS)])
        self._bins_axis.setVisible(False)  # the value axis below shows P(fake) itself
        self._score_axis = QValueAxis()
        self._score_axis.setRange(0.0, 1.0)
        self._score_axis.setTickCount(11)
        self._score_axis.setLabelFormat("%.1f")
        self._score_axis.setTitleText("P(fake)")
        self._count_axis = QValueAxis()
        self._count_axis.setLabelFormat("%d")
        self._count_axis.setTickType(QValueAxis.TickType.TicksDynamic)
        self._count_axis.setTickAnchor(0)
        self._count_axis.setTruncateLabels(False)
        self._count_axis.setTitleText("files")
        chart.addSeries(self._bars)
        for axis, side in ((self._bins_axis, Qt.AlignmentFlag.AlignBottom),
                           (self._score_axis, Qt.AlignmentFlag.AlignBottom),
                           (self._count_axis, Qt.AlignmentFlag.AlignLeft)):
            chart.addAxis(axis, side)
        self._bars.attachAxis(self._bins_axis)
        self._bars.attachAxis(self._count_axis)

        self._threshold_line = self._marker_line("threshold", Qt.PenStyle.SolidLine, 2)
        self._band_lines = [self._marker_line("inconclusive band", Qt.PenStyle.DashLine, 1),
                            self._marker_line(None, Qt.PenStyle.DashLine, 1)]
        self._by_truth = False
        self._follow_palette()
        self.update_rows([])

    # ---- public ------------------------------------------------------------------------------
    def update_rows(self, rows: Iterable[CaseRow]) -> None:
        by_truth, counts = count_scores(rows)
        if list(counts) != list(self._counts) or by_truth != self._by_truth:
            self._by_truth = by_truth
            self._rebuild_sets(counts)
        else:
            for bar_set, values in zip(self._bars.barSets(), counts.values()):
                for i, value in enumerate(values):
                    if bar_set.at(i) != value:
                        bar_set.replace(i, value)
        self._counts = counts
        total = sum(sum(values) for values in counts.values())
        title = "P(fake) by true class (from folder names)" if by_truth else "P(fake) by label"
        self.chart().setTitle(f"{title} — {total} scored")
        self._rescale()

    def set_thresholds(self, thresholds: Thresholds) -> None:
        self._thresholds = thresholds
        self._rescale()

    def counts(self) -> dict[str, list[int]]:
        return {name: list(values) for name, values in self._counts.items()}

    def total(self) -> int:
        return sum(sum(values) for values in self._counts.values())

    # ---- drawing -----------------------------------------------------------------------------
    def _rebuild_sets(self, counts: dict[str, list[int]]) -> None:
        self._bars.clear()
        for name, values in counts.items():
            bar_set = QBarSet(name)
            bar_set.append([float(v) for v in values])
            self._bars.append(bar_set)
        self._colour_sets()

    def _colour_sets(self) -> None:
        colours = ({_TRUE_NAMES[k]: c for k, c in TRUE_CLASS_COLOURS.items()} if self._by_truth
                   else LABEL_COLOURS)
        for bar_set in self._bars.barSets():
            colour = QColor(colours.get(bar_set.label(), QColor("#8a8a8a")))
            bar_set.setColor(colour)
            bar_set.setBorderColor(colour.darker(130))

    def changeEvent(self, event: QEvent) -> None:
        super().changeEvent(event)
        if event.type() == QEvent.Type.PaletteChange:
            self._follow_palette()

    def _follow_palette(self) -> None:
        """Light or dark chart to match the window; a theme resets colours, so ours are set again."""
        dark = is_dark(self)
        chart = self.chart()
        chart.setTheme(QChart.ChartTheme.ChartThemeDark if dark else QChart.ChartTheme.ChartThemeLight)
        chart.setBackgroundBrush(self.palette().base())
        chart.setBackgroundRoundness(0)
        ink = self.palette().text().color()
        chart.setTitleBrush(ink)
        chart.legend().setLabelColor(ink)
        for axis in (self._score_axis, self._count_axis):
            axis.setLabelsColor(ink)
            axis.setTitleBrush(ink)
        for line, width, style in ((self._threshold_line, 2, Qt.PenStyle.SolidLine),
                                   *((band, 1, Qt.PenStyle.DashLine) for band in self._band_lines)):
            line.setPen(QPen(ink, width, style))
        self._colour_sets()

    def _marker_line(self, name: str | None, style: Qt.PenStyle, width: int) -> QLineSeries:
        line = QLineSeries()
        line.setPen(QPen(self.palette().text().color(), width, style))
        self.chart().addSeries(line)
        line.attachAxis(self._score_axis)
        line.attachAxis(self._count_axis)
        if name:
            line.setName(name)
        else:
            for marker in self.chart().legend().markers(line):
                marker.setVisible(False)
        return line

    def _rescale(self) -> None:
        peak = max((sum(column) for column in zip(*self._counts.values())), default=0)
        step = nice_step(peak)
        top = step * max(1, math.ceil(peak * 1.05 / step))
        self._count_axis.setRange(0, top)
        self._count_axis.setTickInterval(step)  # whole-number ticks: 0, 5, 10 ... never 0, 2.6, 5.2
        t = self._thresholds
        self._threshold_line.replace([QPointF(t.threshold, 0), QPointF(t.threshold, top)])
        band_on = t.low < t.high
        for line, x in zip(self._band_lines, (t.low, t.high)):
            line.setVisible(band_on)
            line.replace([QPointF(x, 0), QPointF(x, top)])
