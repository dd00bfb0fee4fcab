"""The learning curve as it grows: train and validation loss (left axis) and accuracy (right axis) per epoch."""
from __future__ import annotations

import math

from PySide6.QtCharts import QChart, QChartView, QLineSeries, QValueAxis
from PySide6.QtCore import QEvent, Qt
from PySide6.QtGui import QPainter, QPen

from app.ui.widgets.palette import is_dark

SERIES = (  # key in the trainer's epoch row, legend, axis, dashed
    ("train_loss", "train loss", "loss", False),
    ("val_loss", "validation loss", "loss", True),
    ("train_accuracy", "train accuracy", "accuracy", False),
    ("val_accuracy", "validation accuracy", "accuracy", True),
)


class LearningCurveView(QChartView):
    def __init__(self, parent=None) -> None:
        chart = QChart()
        chart.setTitle("Learning curve")
        chart.setAnimationOptions(QChart.AnimationOption.NoAnimation)
        super().__init__(chart, parent)
        self.setRenderHint(QPainter.RenderHint.Antialiasing)
        self.setMinimumHeight(220)
        self.epoch_axis = QValueAxis()
        self.epoch_axis.setTitleText("epoch")
        self.epoch_axis.setLabelFormat("%d")
        self.loss_axis = QValueAxis()
        self.loss_axis.setTitleText("loss")
        self.accuracy_axis = QValueAxis()
        self.accuracy_axis.setTitleText("accuracy")
        self.accuracy_axis.setRange(0.0, 1.0)
        chart.addAxis(self.epoch_axis, Qt.AlignmentFlag.AlignBottom)
        chart.addAxis(self.loss_axis, Qt.AlignmentFlag.AlignLeft)
        chart.addAxis(self.accuracy_axis, Qt.AlignmentFlag.AlignRight)
        self.series: dict[str, QLineSeries] = {}
        for key, name, axis, dashed in SERIES:
            line = QLineSeries()
            line.setName(name)
            line.setPointsVisible(True)
            chart.addSeries(line)
            line.attachAxis(self.epoch_axis)
            line.attachAxis(self.loss_axis if axis == "loss" else self.accuracy_axis)
            self.series[key] = line
        self.set_epochs(1)
        self._apply_theme()

    def changeEvent(self, event: QEvent) -> None:
        super().changeEvent(event)
        if event.type() == QEvent.Type.PaletteChange:
            self._apply_theme()

    def _apply_theme(self) -> None:
        """Light or dark chart to match the window; a theme resets the pens, so validation is dashed again."""
        dark = is_dark(self)
        self.chart().setTheme(QChart.ChartTheme.ChartThemeDark if dark else QChart.ChartTheme.ChartThemeLight)
        for key, _name, _axis, dashed in SERIES:
            if dashed:
                pen = QPen(self.series[key].pen())
                pen.setStyle(Qt.PenStyle.DashLine)
                self.series[key].setPen(pen)

    def set_epochs(self, epochs: int) -> None:
        last = max(2, epochs)
        self.epoch_axis.setRange(1, last)
        # ticks on whole epochs (1, 2, 3… or 1, 6, 11…): evenly spread ticks would fall between epochs
        self.epoch_axis.setTickType(QValueAxis.TickType.TicksDynamic)
        self.epoch_axis.setTickAnchor(1)
        self.epoch_axis.setTickInterval(max(1, math.ceil((last - 1) / 10)))

    def clear(self) -> None:
        for line in self.series.values():
            line.clear()

    def add_epoch(self, row: dict) -> None:
        """One point per series from a trainer epoch row ({"epoch": 3, "train_loss": …, …})."""
        for key, line in self.series.items():
            value = row.get(key)
            if isinstance(value, (int, float)) and value == value:  # NaN (no validation loss) is skipped
                line.append(float(row["epoch"]), float(value))
        losses = [p.y() for key in ("train_loss", "val_loss") for p in self.series[key].points()]
        if losses:
            self.loss_axis.setRange(0.0, max(losses) * 1.1 or 1.0)

    def points(self, key: str) -> list[tuple[float, float]]:
        return [(p.x(), p.y()) for p in self.series[key].points()]
