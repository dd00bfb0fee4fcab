"""The results table's data: one row per file of the case (a CaseRow), and the filters on top of it."""
from __future__ import annotations

from pathlib import PurePath
from typing import Any, Iterable, Mapping

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, QSortFilterProxyModel, Qt
from PySide6.QtGui import QColor, QIcon, QPainter, QPixmap

from app.case.store import CaseRow
from app.ui.widgets.palette import ERROR_COLOUR, LABEL_COLOURS
from app.ui.scan.thumbnails import ThumbnailCache
from models.formatting import human_size
from models.labels import AGREE, DIFFER, NOT_SCORED, OUTCOMES, agreement, outcome

COLUMNS = ("", "Name", "P(fake)", "Label", "Size", "Dimensions", "Format", "Error")
THUMBNAIL, NAME, SCORE, LABEL, SIZE, DIMENSIONS, FORMAT, ERROR = range(len(COLUMNS))
SORT_ROLE = Qt.ItemDataRole.UserRole + 1  # a value of one type per column, so numbers sort as numbers
ROW_ROLE = Qt.ItemDataRole.UserRole + 2  # the CaseRow itself

AGREEMENT_TEXT = {AGREE: "✓ agree", DIFFER: "✗ differ", "": ""}
VERDICTS = OUTCOMES  # the label column's words, in the filter's order

_Index = QModelIndex | QPersistentModelIndex


def verdict(row: CaseRow) -> str:
    """The label column's word: a model's label, or why there is none."""
    return outcome(row.label, row.error)


class ResultsModel(QAbstractTableModel):
    def __init__(self, thumbnails: ThumbnailCache | None = None, parent=None) -> None:
        super().__init__(parent)
        self._rows: list[CaseRow] = []
        self._position: dict[int, int] = {}  # file_id → row number
        self._by_path: dict[str, int] = {}
        self._icons: dict[str, QIcon] = {}
        # With several models: the shown model first (the P(fake) column), then the others, each with a column
        # of its own after the fixed ones, and an agreement column; one model (or none) adds no column.
        self._models: list[str] = []
        self._others: dict[str, dict[int, CaseRow]] = {}  # model id → file id → that model's row
        self.thumbnails = thumbnails
        if thumbnails is not None:
            thumbnails.ready.connect(self._thumbnail_ready)

    # ---- content -----------------------------------------------------------------------------
    def set_rows(self, rows: Iterable[CaseRow], models: Iterable[str] = (),
                 others: Mapping[str, Iterable[CaseRow]] | None = None) -> None:
        """The shown model's rows; with `models` (the shown one first) and their rows in `others`, a column
        per model and one for their agreement."""
        self.beginResetModel()
        self._rows = list(rows)
        self._models = list(models)
        self._others = {model_id: {} for model_id in self._models[1:]}
        self._store_others(others or {})
        self._reindex()
        self.endResetModel()

    def add_rows(self, rows: Iterable[CaseRow], others: Mapping[str, Iterable[CaseRow]] | None = None) -> None:
        """A batch from the scan (the shown model's rows, and the other models' in `others`): files already
        shown are updated in place, new ones appended at once."""
        self._store_others(others or {})
        new: list[CaseRow] = []
        changed: list[int] = []
        for row in rows:
            at = self._position.get(row.file_id)
            if at is None:
                new.append(row)
            else:
                self._rows[at] = row
                changed.append(at)
        if changed:
            self.dataChanged.emit(self.index(min(changed), 0), self.index(max(changed), self.columnCount() - 1))
        if new:
            first = len(self._rows)
            self.beginInsertRows(QModelIndex(), first, first + len(new) - 1)
            self._rows.extend(new)
            for offset, row in enumerate(new):
                self._position[row.file_id] = first + offset
                self._by_path[row.fs_path] = first + offset
            self.endInsertRows()

    def row_at(self, number: int) -> CaseRow:
        return self._rows[number]

    def model_ids(self) -> list[str]:
        return list(self._models)

    def model_row(self, model_id: str | None, number: int) -> CaseRow | None:
        """One of the models' row for the file in row `number` (the table's own model when not one of the
        others); None when that model has not scored the file."""
        row = self._rows[number]
        return self._others[model_id].get(row.file_id) if model_id in self._others else row

    def rows_of(self, model_id: str) -> list[CaseRow]:
        """Every shown file's row of one of the models (the histogram per model)."""
        if model_id not in self._others:
            return list(self._rows)
        mine = self._others[model_id]
        return [mine[row.file_id] for row in self._rows if row.file_id in mine]

    def _store_others(self, others: Mapping[str, Iterable[CaseRow]]) -> None:
        for model_id, rows in others.items():
            if model_id in self._others:
                self._others[model_id].update((row.file_id, row) for row in rows)

    def _extra(self, column: int) -> str | None:
        """The model id of an extra score column, "" for the agreement column, None for a fixed column."""
        if column < len(COLUMNS) or not self._others:
            return None
        others = self._models[1:]
        return others[column - len(COLUMNS)] if column - len(COLUMNS) < len(others) else ""

    def _agreement(self, row: CaseRow) -> str:
        return agreement([row] + [self._others[m].get(row.file_id) for m in self._models[1:]])

    def rows(self) -> list[CaseRow]:
        return list(self._rows)

    def _reindex(self) -> None:
        self._position = {row.file_id: i for i, row in enumerate(self._rows)}
        self._by_path = {row.fs_path: i for i, row in enumerate(self._rows)}  # thumbnails come by exact name

    # ---- Qt model ----------------------------------------------------------------------------
    def rowCount(self, parent: _Index = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: _Index = QModelIndex()) -> int:
        extra = len(self._others) + 1 if self._others else 0  # a score per other model, and the agreement
        return 0 if parent.isValid() else len(COLUMNS) + extra

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole):
        if orientation != Qt.Orientation.Horizontal or role != Qt.ItemDataRole.DisplayRole:
            return None
        extra = self._extra(section)
        if extra is None:  # with several models, the P(fake) column names whose it is
            return f"P(fake) {self._models[0]}" if section == SCORE and self._others else COLUMNS[section]
        return f"P(fake) {extra}" if extra else "Agreement"

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        row, column = self._rows[index.row()], index.column()
        extra = self._extra(column)
        if extra is not None:
            return self._extra_data(row, extra, role)
        if role == Qt.ItemDataRole.DisplayRole:
            return self._text(row, column)
        if role == SORT_ROLE:
            return self._sort_key(row, column)
        if role == ROW_ROLE:
            return row
        if role == Qt.ItemDataRole.DecorationRole:
            if column == THUMBNAIL and self.thumbnails is not None and not row.error:
                return self.thumbnails.get(row.fs_path)  # opened by its exact name
            if column == LABEL:
                return self._icon(verdict(row))
        if role == Qt.ItemDataRole.BackgroundRole and column == LABEL:
            colour = QColor(self._colour(verdict(row)))
            colour.setAlpha(55)  # a tint: the text stays readable in light and dark palettes
            return colour
        if role == Qt.ItemDataRole.ToolTipRole:
            if column in (NAME, THUMBNAIL):
                return row.path
            if column == ERROR:
                return row.error
        if role == Qt.ItemDataRole.TextAlignmentRole and column in (SCORE, SIZE):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    def _extra_data(self, row: CaseRow, model_id: str, role: int) -> Any:
        """Another model's score (model_id), or the models' agreement ("")."""
        if not model_id:
            verdict_ = self._agreement(row)
            if role == Qt.ItemDataRole.DisplayRole:
                return AGREEMENT_TEXT[verdict_]
            if role == SORT_ROLE:
                return ("", DIFFER, AGREE).index(verdict_)
            if role == Qt.ItemDataRole.ToolTipRole:
                rows = [row] + [self._others[m].get(row.file_id) for m in self._models[1:]]
                return "\n".join(f"{m}: {verdict(r) if r is not None else NOT_SCORED}"
                                  for m, r in zip(self._models, rows))
            return None
        other = self._others[model_id].get(row.file_id)
        if role == Qt.ItemDataRole.DisplayRole:
            return "" if other is None or other.p_fake is None else f"{other.p_fake:.3f}"
        if role == SORT_ROLE:
            return -1.0 if other is None or other.p_fake is None else float(other.p_fake)
        if role == Qt.ItemDataRole.ToolTipRole:
            return f"{model_id}: {verdict(other) if other is not None else NOT_SCORED}"
        if role == Qt.ItemDataRole.TextAlignmentRole:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    @staticmethod
    def _text(row: CaseRow, column: int) -> str:
        if column == NAME:
            return PurePath(row.path).name
        if column == SCORE:
            return "" if row.p_fake is None else f"{row.p_fake:.3f}"
        if column == LABEL:
            return verdict(row)
        if column == SIZE:
            return human_size(row.size)
        if column == DIMENSIONS:
            return f"{row.width} × {row.height}" if row.width and row.height else ""
        if column == FORMAT:
            return row.format or ""
        if column == ERROR:
            return row.error or ""
        return ""

    @staticmethod
    def _sort_key(row: CaseRow, column: int) -> Any:
        if column in (NAME, THUMBNAIL):
            return PurePath(row.path).name.casefold()
        if column == SCORE:
            return -1.0 if row.p_fake is None else float(row.p_fake)  # unscored rows after every score
        if column == LABEL:
            return VERDICTS.index(verdict(row))
        if column == SIZE:
            return -1 if row.size is None else int(row.size)
        if column == DIMENSIONS:
            return (row.width or 0) * (row.height or 0)
        if column == FORMAT:
            return (row.format or "").casefold()
        return (row.error or "").casefold()

    @staticmethod
    def _colour(word: str) -> QColor:
        return LABEL_COLOURS.get(word, ERROR_COLOUR)

    def _icon(self, word: str) -> QIcon:
        if word not in self._icons:
            pixmap = QPixmap(12, 12)
            pixmap.fill(Qt.GlobalColor.transparent)
            painter = QPainter(pixmap)
            painter.setRenderHint(QPainter.RenderHint.Antialiasing)
            painter.setBrush(self._colour(word))
            painter.setPen(Qt.PenStyle.NoPen)
            painter.drawEllipse(1, 1, 10, 10)
            painter.end()
            self._icons[word] = QIcon(pixmap)
        return self._icons[word]

    def _thumbnail_ready(self, path: str) -> None:
        at = self._by_path.get(path)
        if at is not None:
            index = self.index(at, THUMBNAIL)
            self.dataChanged.emit(index, index, [Qt.ItemDataRole.DecorationRole])


class ResultsFilter(QSortFilterProxyModel):
    """What the table shows: by verdict, P(fake) range, errors only and a piece of the file name."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setSortRole(SORT_ROLE)
        self.setDynamicSortFilter(True)
        self.verdict: str | None = None
        self.score_range = (0.0, 1.0)
        self.errors_only = False
        self.name_text = ""

    def set_verdict(self, word: str | None) -> None:
        self.beginFilterChange()
        self.verdict = word or None
        self.endFilterChange(QSortFilterProxyModel.Direction.Rows)

    def set_score_range(self, low: float, high: float) -> None:
        self.beginFilterChange()
        self.score_range = (float(low), float(high))
        self.endFilterChange(QSortFilterProxyModel.Direction.Rows)

    def set_errors_only(self, on: bool) -> None:
        self.beginFilterChange()
        self.errors_only = bool(on)
        self.endFilterChange(QSortFilterProxyModel.Direction.Rows)

    def set_name_text(self, text: str) -> None:
        self.beginFilterChange()
        self.name_text = text.strip().casefold()
        self.endFilterChange(QSortFilterProxyModel.Direction.Rows)

    def filterAcceptsRow(self, source_row: int, source_parent: _Index) -> bool:
        row: CaseRow = self.sourceModel().row_at(source_row)
        if self.errors_only and not row.error:
            return False
        if self.verdict and verdict(row) != self.verdict:
            return False
        low, high = self.score_range
        if (low, high) != (0.0, 1.0) and (row.p_fake is None or not low <= row.p_fake <= high):
            return False
        return not self.name_text or self.name_text in PurePath(row.path).name.casefold()
