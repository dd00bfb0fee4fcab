"""Plain functions run on a private thread pool, their results delivered back on the GUI thread.

Thumbnails, previews, Grad-CAM maps and model imports all go through here, so none of them can freeze the
window. Workers must not touch widgets or QPixmaps; they return plain data or QImages.
"""
from __future__ import annotations

import logging
from typing import Any, Callable

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal


class _Relay(QObject):
    """Lives in the GUI thread; a signal emitted from a worker reaches its slots there (queued)."""
    done = Signal(object)
    failed = Signal(str)


class _Task(QRunnable):
    def __init__(self, work: Callable[[], Any], relay: _Relay) -> None:
        super().__init__()
        self.work, self.relay = work, relay

    def run(self) -> None:
        try:
            result = self.work()
        except Exception as exc:  # becomes a message for the user, not a traceback
            self.relay.failed.emit(describe_exception(exc))
        else:
            self.relay.done.emit(result)


class ProgressRelay(QObject):
    """A progress callback for work on the pool: `report(done, total)` may be called from the worker thread;
    connect `changed` with a queued connection and its slots run on the GUI thread, where widgets may change."""
    changed = Signal(int, int)

    def report(self, done: int, total: int) -> None:
        self.changed.emit(done, total)


class BackgroundTasks(QObject):
    def __init__(self, threads: int, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(threads)
        self._in_flight: dict[int, tuple[_Relay, _Task]] = {}  # keeps both alive until delivered

    def submit(self, work: Callable[[], Any], on_done: Callable[[Any], None],
               on_failed: Callable[[str], None] | None = None) -> None:
        relay = _Relay()
        task = _Task(work, relay)
        key = id(relay)
        relay.done.connect(on_done)
        if on_failed is not None:
            relay.failed.connect(on_failed)
        relay.done.connect(lambda *_: self._in_flight.pop(key, None))
        relay.failed.connect(lambda *_: self._in_flight.pop(key, None))
        self._in_flight[key] = (relay, task)
        self.pool.start(task)

    def busy(self) -> bool:
        return bool(self._in_flight)

    def shutdown(self, wait_ms: int = 10_000) -> None:
        """Drop queued work and wait for what is running (called when the window closes)."""
        self.pool.clear()
        self.pool.waitForDone(wait_ms)


_OUTLIVING: set[QObject] = set()


def outlive_parent(obj: QObject) -> None:
    """Keep a QThread or a BackgroundTasks that is still busy alive after the window that owned it closes:
    destroying a running QThread aborts the program, and destroying a busy pool blocks until its work is done.
    Held for the life of the process; a finished one costs a few bytes."""
    obj.setParent(None)
    _OUTLIVING.add(obj)


def describe_exception(exc: BaseException) -> str:
    """One sentence for the user; the traceback goes to the log file for a bug report."""
    logging.getLogger("app.ui").error("background work failed", exc_info=exc)
    text = str(exc).strip().strip("'\"")
    return text or type(exc).__name__
