"""Table thumbnails: made lazily (only for rows the table actually paints) on a worker thread, cached."""
from __future__ import annotations

from collections import OrderedDict

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QPixmap

from app.ui.scan.previews import make_thumbnail
from app.ui.workers import WorkerPool


class ThumbnailCache(QObject):
    ready = Signal(object)  # path whose thumbnail has just arrived (object: Qt strings drop undecodable bytes)

    def __init__(self, side: int = 40, capacity: int = 3000, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.side = side
        self.capacity = capacity
        self._pixmaps: OrderedDict[str, QPixmap] = OrderedDict()
        self._pending: set[str] = set()
        self._failed: set[str] = set()
        self._workers = WorkerPool(threads=1, parent=self)  # one thread: the scan needs the other core

    def get(self, path: str) -> QPixmap | None:
        """The cached thumbnail, or None while it is being made (ready(path) follows) or cannot be made."""
        pixmap = self._pixmaps.get(path)
        if pixmap is not None:
            self._pixmaps.move_to_end(path)
            return pixmap
        if path not in self._pending and path not in self._failed:
            self._pending.add(path)
            self._workers.start(lambda: make_thumbnail(path, self.side), done=lambda image: self._arrived(path, image),
                                failed=lambda _reason: self._gave_up(path))
        return None

    def shutdown(self) -> None:
        self._workers.shutdown()

    def _arrived(self, path: str, image) -> None:
        self._pending.discard(path)
        self._pixmaps[path] = QPixmap.fromImage(image)  # QPixmap only on the GUI thread
        while len(self._pixmaps) > self.capacity:
            self._pixmaps.popitem(last=False)
        self.ready.emit(path)

    def _gave_up(self, path: str) -> None:
        self._pending.discard(path)
        self._failed.add(path)
