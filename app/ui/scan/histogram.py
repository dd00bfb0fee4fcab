"""The P(fake) histogram: one stacked bar per score bin, coloured by label, or by true class when the folder
names say what each file really is (real/, fake/, 0_real/, 1_fake/ ...), with the threshold and the
inconclusive band drawn over it. It follows the results table's model: a scan's batch costs its own size, not
the case's."""
from __future__ import annotations

import math
from functools import lru_cache
from PySide6.QtCharts import (QBarCategoryAxis, QBarSet, QChart, QChartView, QLineSeries, QStackedBarSeries,
                              QValueAxis)
from PySide6.QtCore import QEvent, QMargins, QModelIndex, QPointF, Qt
from PySide6.QtGui import QColor, QPainter, QPen

from app.case.store import CaseRow
from app.case.ground_truth import true_class
from app.ui.scan.results_model import ResultsModel
from app.ui.widgets.palette import LABEL_COLOURS, TRUE_CLASS_COLOURS, is_dark
from models.labels import LABELS, Thresholds

BINS = 20
_TRUE_NAMES = {"real": "real (folder name)", "fake": "fake (folder name)", None: "no folder label"}


@lru_cache(maxsize=100_000)
def _true_class(path: str) -> str | None:
    return true_class(path)


class ScoreCounts:
    """Scored files per bin, by label and by true class at once, kept file by file: a file counted again (a
    rescan) first leaves the bin it was in."""

    def __init__(self, bins: int = BINS) -> None:
        self.bins = bins
        self.clear()

    def clear(self) -> None:
        self._placed: dict[int, tuple[str | None, str | None, int]] = {}  # file id → label, true class, bin
        self._by_label = {label: [0] * self.bins for label in LABELS}
        self._by_truth = {truth: [0] * self.bins for truth in _TRUE_NAMES}

    def put(self, file_id: int, row: CaseRow | None) -> None:
        """The file's row now (None: no row of this model any more)."""
        self._move(file_id, -1)
        if row is not None and row.p_fake is not None and not row.error:
            self._placed[file_id] = (row.label, _true_class(row.path), min(int(row.p_fake * self.bins), self.bins - 1))
            self._move(file_id, +1)

    def _move(self, file_id: int, step: int) -> None:
        if (place := self._placed.get(file_id)) is None:
            return
        label, truth, at = place
        if label in self._by_label:
            self._by_label[label][at] += step
        self._by_truth[truth][at] += step
        if step < 0:
            del self._placed[file_id]

    def by_truth(self) -> bool:
        # Both classes must appear: one folder called "photos" (a synonym of real) is not a labelled data set.
        return any(self._by_truth["real"]) and any(self._by_truth["fake"])

    def counts(self) -> dict[str, list[int]]:
        """Series name → files per bin, the empty series left out."""
        if self.by_truth():
            named = {_TRUE_NAMES[truth]: values for truth, values in self._by_truth.items()}
        else:
            named = self._by_label
        return {name: list(values) for name, values in named.items() if any(values)}


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
        self._scores = ScoreCounts()
        self._source: ResultsModel | None = None
        self._model_id: str | None = None  # whose scores: None, the table's own model

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
        self._show_counts()

    # ---- public ------------------------------------------------------------------------------
    def follow(self, source: ResultsModel) -> None:
        """Count the scores of the results table's model as rows arrive, change or are all replaced."""
        self._source = source
        source.rowsInserted.connect(self._rows_inserted)
        source.dataChanged.connect(self._rows_changed)
        source.modelReset.connect(self._recount)
        self._recount()

    def show_model(self, model_id: str | None) -> None:
        """Whose scores: one of the table's models (None or the table's own: its P(fake) column)."""
        if model_id != self._model_id:
            self._model_id = model_id
            self._recount()

    def set_thresholds(self, thresholds: Thresholds) -> None:
        self._thresholds = thresholds
        self._rescale()

    def counts(self) -> dict[str, list[int]]:
        return {name: list(values) for name, values in self._counts.items()}

    def total(self) -> int:
        return sum(sum(values) for values in self._counts.values())

    # ---- counting ----------------------------------------------------------------------------
    def _recount(self) -> None:
        self._scores.clear()
        self._recount_rows(0, (self._source.rowCount() if self._source is not None else 0) - 1)

    def _rows_inserted(self, _parent: QModelIndex, first: int, last: int) -> None:
        self._recount_rows(first, last)

    def _rows_changed(self, top_left: QModelIndex, bottom_right: QModelIndex, roles: list = ()) -> None:
        if roles and Qt.ItemDataRole.DisplayRole not in roles:
            return  # a thumbnail arrived: no score changed
        self._recount_rows(top_left.row(), bottom_right.row())

    def _recount_rows(self, first: int, last: int) -> None:
        source = self._source
        for number in range(first, last + 1):
            self._scores.put(source.row_at(number).file_id, source.model_row(self._model_id, number))
        self._show_counts()

    def _show_counts(self) -> None:
        by_truth, counts = self._scores.by_truth(), self._scores.counts()
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
