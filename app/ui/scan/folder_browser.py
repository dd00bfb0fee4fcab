"""The folder tree beside the results: the computer's folders and pictures (other files hidden); selecting
folders or pictures chooses what the next scan reads."""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QDir, Signal
from PySide6.QtWidgets import QFileSystemModel, QTreeView, QWidget

from models.classes import IMAGE_SUFFIXES

_TREE_PATTERNS = sorted({f"*{s}" for s in IMAGE_SUFFIXES} | {f"*{s.upper()}" for s in IMAGE_SUFFIXES})


class FolderBrowser(QTreeView):
    chosen = Signal(list)  # the selected folders and files (Path), never empty

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.files_model = QFileSystemModel(self)
        self.files_model.setFilter(QDir.Filter.AllDirs | QDir.Filter.Files | QDir.Filter.NoDotAndDotDot)
        self.files_model.setNameFilters(_TREE_PATTERNS)
        self.files_model.setNameFilterDisables(False)  # hide non-images instead of greying them
        self.files_model.setRootPath("")
        self.setModel(self.files_model)
        for column in (1, 2, 3):
            self.hideColumn(column)
        self.setHeaderHidden(True)
        self.setSelectionMode(QTreeView.SelectionMode.ExtendedSelection)
        self.selectionModel().selectionChanged.connect(self._selection_changed)

    def reveal(self, path: Path) -> None:
        """Select, scroll to and open `path`: the selection then says `chosen` with it."""
        index = self.files_model.index(str(path))
        self.setCurrentIndex(index)
        self.scrollTo(index)
        self.expand(index)

    def _selection_changed(self, *_args) -> None:
        paths = [Path(self.files_model.filePath(i)) for i in self.selectionModel().selectedRows()]
        if paths:
            self.chosen.emit(paths)
