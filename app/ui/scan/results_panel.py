"""The results table with its filter bar: verdict, P(fake) range, errors only, and a piece of the name."""
from __future__ import annotations

from PySide6.QtCore import QModelIndex, QSize, Qt, Signal
from PySide6.QtWidgets import (QAbstractItemView, QCheckBox, QComboBox, QDoubleSpinBox, QHBoxLayout, QHeaderView,
                               QLabel, QLineEdit, QTableView, QVBoxLayout, QWidget)

from app.case.store import CaseRow
from app.ui.scan.results_model import (COLUMNS, DIMENSIONS, ERROR, FORMAT, LABEL, NAME, SCORE, SIZE, THUMBNAIL,
                                  VERDICTS, ResultsFilter, ResultsModel)
from app.ui.scan.thumbnails import ThumbnailCache

THUMBNAIL_SIDE = 32


class ResultsPanel(QWidget):
    current_changed = Signal(object)  # CaseRow or None

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.thumbnails = ThumbnailCache(THUMBNAIL_SIDE, parent=self)
        self.model = ResultsModel(self.thumbnails, self)
        self.proxy = ResultsFilter(self)
        self.proxy.setSourceModel(self.model)
        self.title = QLabel("")
        self.title.setObjectName("resultsTitle")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.title)
        layout.addLayout(self._build_filters())
        layout.addWidget(self._build_table(), 1)

    def _build_filters(self) -> QHBoxLayout:
        """Verdict, P(fake) range, errors only, a piece of the name; and how many rows they leave."""
        self.verdict_filter = QComboBox()
        self.verdict_filter.addItem("All files", None)
        for word in VERDICTS:
            self.verdict_filter.addItem(word, word)
        self.verdict_filter.setToolTip("Show only files with this verdict")
        self.verdict_filter.currentIndexChanged.connect(
            lambda: self.proxy.set_verdict(self.verdict_filter.currentData()))
        self.score_low, self.score_high = QDoubleSpinBox(), QDoubleSpinBox()
        for box, value in ((self.score_low, 0.0), (self.score_high, 1.0)):
            box.setRange(0.0, 1.0)
            box.setSingleStep(0.05)
            box.setDecimals(2)
            box.setValue(value)
            box.valueChanged.connect(self._score_range_changed)
        self.score_low.setToolTip("Lowest P(fake) shown (a narrowed range hides files without a score)")
        self.score_high.setToolTip("Highest P(fake) shown")
        self.errors_only = QCheckBox("Errors only")
        self.errors_only.toggled.connect(self.proxy.set_errors_only)
        self.name_filter = QLineEdit()
        self.name_filter.setPlaceholderText("Filter by name")
        self.name_filter.setClearButtonEnabled(True)
        self.name_filter.textChanged.connect(self.proxy.set_name_text)
        self.shown_label = QLabel("")
        filters = QHBoxLayout()
        for widget in (self.verdict_filter, QLabel("P(fake)"), self.score_low, QLabel("to"), self.score_high,
                       self.errors_only):
            filters.addWidget(widget)
        filters.addWidget(self.name_filter, 1)
        filters.addWidget(self.shown_label)
        return filters

    def _build_table(self) -> QTableView:
        self.table = QTableView()
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(-1, Qt.SortOrder.AscendingOrder)  # scan order until the user sorts
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setAlternatingRowColors(True)
        self.table.setWordWrap(False)
        self.table.verticalHeader().hide()
        self.table.verticalHeader().setDefaultSectionSize(THUMBNAIL_SIDE + 4)
        self.table.setIconSize(QSize(THUMBNAIL_SIDE, THUMBNAIL_SIDE))
        header = self.table.horizontalHeader()
        header.setStretchLastSection(True)
        for column, width in ((THUMBNAIL, THUMBNAIL_SIDE + 8), (NAME, 220), (SCORE, 70), (LABEL, 120),
                              (SIZE, 80), (DIMENSIONS, 100), (FORMAT, 60), (ERROR, 200)):
            self.table.setColumnWidth(column, width)
        header.setSectionResizeMode(THUMBNAIL, QHeaderView.ResizeMode.Fixed)
        self.table.selectionModel().currentRowChanged.connect(self._current_row_changed)
        for signal in (self.proxy.rowsInserted, self.proxy.rowsRemoved, self.proxy.modelReset,
                       self.proxy.layoutChanged):
            signal.connect(self._count_shown)
        return self.table

    def set_rows(self, rows: list[CaseRow], models: list[str] = (), others: dict | None = None) -> None:
        """The shown model's rows; with several `models` (the shown one first), a score column per model."""
        self.model.set_rows(rows, models, others)
        for column in range(len(COLUMNS), self.model.columnCount()):  # the other models' scores, the agreement
            self.table.setColumnWidth(column, 90)
        self._count_shown()

    def add_rows(self, rows: list[CaseRow], others: dict | None = None) -> None:
        self.model.add_rows(rows, others)

    def current_row(self) -> CaseRow | None:
        index = self.table.currentIndex()
        return self.model.row_at(self.proxy.mapToSource(index).row()) if index.isValid() else None

    def shown_rows(self) -> list[CaseRow]:
        """The rows as the table shows them: filtered and in display order."""
        return [self.model.row_at(self.proxy.mapToSource(self.proxy.index(i, 0)).row())
                for i in range(self.proxy.rowCount())]

    def select_row(self, shown_position: int) -> None:
        self.table.setCurrentIndex(self.proxy.index(shown_position, NAME))

    def _score_range_changed(self) -> None:
        self.proxy.set_score_range(self.score_low.value(), self.score_high.value())

    def _current_row_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        self.current_changed.emit(self.current_row() if current.isValid() else None)

    def _count_shown(self, *_args) -> None:
        shown, total = self.proxy.rowCount(), self.model.rowCount()
        self.shown_label.setText(f"{shown} of {total} shown" if shown != total else f"{total} files")
