"""The one way to run work off the GUI thread: superqt's workers, started on bounded pools of our own.

A plain function becomes a FunctionWorker (a thumbnail, a preview, a Grad-CAM map, a model import, a report, a
CSV file, a training run); a generator function becomes a GeneratorWorker, whose every yielded value reaches the
GUI thread as it comes (a scan yields each batch the case has stored). Results, errors and progress arrive on the
GUI thread, where widgets may change; workers themselves never touch widgets or QPixmaps.

Three changes to superqt 0.9.0, each measured with this project's PySide6 6.11.3 (tests/test_gui_workers.py):
- Its run() swaps the process-wide warnings.showwarning inside warnings.catch_warnings, which is not thread-safe:
  two workers that overlap (a thumbnail and a scan) leave it pointing at a finished worker, and every later
  warning of the process vanishes. Ours leaves warnings alone.
- A generator job that raises RuntimeError (torch's error for a full GPU) ends with neither `errored` nor
  `finished`, so the window would wait for that scan forever. Ours reports it like any other error.
- Its workers all share QThreadPool.globalInstance(), as many threads as cores (2 on the project's laptops), so a
  burst of thumbnails would queue a scan behind it. Each owner here has a WorkerPool of its own.

Each worker's signal object lives on the GUI thread and is deleted there (deleteLater once `finished` has been
delivered), whichever thread lets go of the worker last: a Python-made QObject deleted on a worker thread as that
thread ends takes the GIL while holding Qt's connection lock, and a GUI thread holding the GIL (drawing a chart)
then waits for that lock for ever (seen once: a scan that never ended).
"""
from __future__ import annotations

import inspect
import logging
from typing import Any, Callable

from PySide6.QtCore import QObject, QThreadPool, Signal
from superqt.utils import FunctionWorker, GeneratorWorker, WorkerBase

from models.engine import CancelToken


class _Signals(QObject):
    """superqt's worker signals (its workers find them by name), and progress."""
    started = Signal()
    finished = Signal()
    returned = Signal(object)
    errored = Signal(object)
    warned = Signal(tuple)
    yielded = Signal(object)
    paused = Signal()
    resumed = Signal()
    aborted = Signal()
    progressed = Signal(tuple)  # the values a function job passed to its report callable


class _EndsCleanly:
    """superqt's WorkerBase.run without the warnings swap, and always ending with `finished`."""

    cancel_token: CancelToken | None = None

    def run(self) -> None:
        self.started.emit()
        self._running = True
        try:
            result = self.work()
            if not self.abort_requested:
                self.returned.emit(result)
        except Exception as exc:  # noqa: BLE001  the GUI thread turns it into a sentence and a log entry
            self.errored.emit(exc)
        finally:
            self._running = False
            self.finished.emit()

    def stop(self) -> None:
        """Ask the job to wind down through its cancel token; unlike quit(), what it returns still arrives (how
        far a stopped scan got, the checkpoint a stopped training kept)."""
        if self.cancel_token is not None:
            self.cancel_token.cancel()


class FunctionJob(_EndsCleanly, FunctionWorker):
    def __init__(self, func: Callable[..., Any], reports: bool = False) -> None:
        super().__init__(func)
        self.signals = _Signals()
        self._reports = reports

    def work(self) -> Any:
        return self._func(self.report) if self._reports else self._func()

    def report(self, *values: Any) -> None:
        """Progress from the job, on its own thread; reaches the pool's progress callback on the GUI thread."""
        self.signals.progressed.emit(values)


class GeneratorJob(_EndsCleanly, GeneratorWorker):
    def __init__(self, func: Callable[..., Any]) -> None:
        super().__init__(func, SignalsClass=_Signals)

    def work(self) -> Any:
        try:
            result = super().work()
        finally:
            self._gen.close()  # aborted between yields: the job's own clean-up (a case connection) runs here
        if isinstance(result, RuntimeError):  # superqt hands back a RuntimeError the job raised as its result
            raise result
        return result


Worker = FunctionJob | GeneratorJob
_OUTLIVING: set[QObject] = set()


class WorkerPool(QObject):
    """The workers of one owner (the scan, the thumbnails, a dialog) on `threads` threads of its own."""

    def __init__(self, threads: int, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(threads)
        self._workers: set[WorkerBase] = set()  # alive until their last signal has been delivered
        self._detached = False  # the owner is gone: results are dropped unseen

    def start(self, work: Callable[..., Any], *, done: Callable[[Any], None] | None = None,
              failed: Callable[[str], None] | None = None, yielded: Callable[[Any], None] | None = None,
              progress: Callable[..., None] | None = None, cancel: CancelToken | None = None) -> Worker:
        """Run `work` on the pool: a generator function (each value it yields goes to `yielded`) or a function
        (called with a report(*values) callable when `progress` is given, its calls reaching progress(*values)).
        Its result goes to `done`; an exception to `failed` as one sentence (the traceback to the log). `cancel`
        is the job's own token, set by the worker's stop()."""
        worker: Worker = (GeneratorJob(work) if inspect.isgeneratorfunction(work)
                          else FunctionJob(work, reports=progress is not None))
        worker.cancel_token = cancel
        worker.setAutoDelete(False)  # Python owns it, so the pool never deletes it under a pending signal
        worker.signals.setParent(self)  # owned here: deleted on the GUI thread, never by a worker thread
        if done is not None:
            worker.returned.connect(self._unless_detached(done))
        worker.errored.connect(lambda exc: _fail(exc, self._unless_detached(failed) if failed else None))
        if yielded is not None:
            worker.yielded.connect(self._unless_detached(yielded))
        if progress is not None:
            worker.progressed.connect(self._unless_detached(lambda values: progress(*values)))
        worker.finished.connect(lambda: self._forget(worker))  # delivered after returned or errored
        self._workers.add(worker)
        self._pool.start(worker)
        return worker

    def busy(self) -> bool:
        """True until the last result has been delivered, not merely computed."""
        return bool(self._workers)

    def wait(self, timeout_ms: int) -> bool:
        """Block until every started worker has returned (its signals may still be on their way)."""
        return self._pool.waitForDone(timeout_ms)

    def shutdown(self, wait_ms: int = 10_000) -> None:
        """The owner is closing: drop queued work, abort generator jobs between yields, wait for the rest a
        while; what is still running then finishes unseen (detach)."""
        for worker in list(self._workers):
            if self._pool.tryTake(worker):  # never started: nothing will ever come from it
                self._forget(worker)
            else:
                worker.quit()
        if not self._pool.waitForDone(wait_ms):
            self.detach()

    def detach(self) -> None:
        """Let the work still running finish unseen after its owner has gone, without waiting for it: nothing
        more reaches the owner, and destroying a busy pool would block until its work is done. A pool kept this
        way costs a few bytes for the life of the process."""
        self._detached = True
        if self.busy():
            self.setParent(None)
            _OUTLIVING.add(self)

    def _unless_detached(self, callback: Callable[..., None]) -> Callable[..., None]:
        return lambda *args: None if self._detached else callback(*args)

    def _forget(self, worker: WorkerBase) -> None:
        self._workers.discard(worker)
        worker.signals.deleteLater()


def _fail(exc: BaseException, failed: Callable[[str], None] | None) -> None:
    reason = describe_exception(exc)
    if failed is not None:
        failed(reason)


def describe_exception(exc: BaseException) -> str:
    """One sentence for the user; the traceback goes to the log file for a bug report."""
    logging.getLogger("app.ui").error("background work failed", exc_info=exc)
    text = str(exc).strip().strip("'\"")
    return text or type(exc).__name__
