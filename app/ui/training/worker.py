"""Training on a QThread: the trainer's events become signals, the Stop button becomes its cancel token."""
from __future__ import annotations

import time

from PySide6.QtCore import QObject, Signal, Slot

from app.services.training import TrainingJob, TrainingOutcome, run_training
from app.ui.tasks import describe_exception
from models.engine import CancelToken
from models.library import ModelLibrary
from training.trainer import TrainingEvent

BATCH_EVENTS_PER_S = 10  # batch events arrive hundreds a second on a GPU; the window needs a few


class TrainingWorker(QObject):
    """Lives in its own QThread (start_worker_thread). stop() may be called from any thread: training stops
    within the current batch and keeps the best checkpoint so far."""
    event = Signal(object)  # TrainingEvent
    failed = Signal(str)  # training could not run or broke off: a sentence for the user
    finished = Signal(object)  # TrainingOutcome, or None when it failed

    def __init__(self, job: TrainingJob, resume: bool = False) -> None:
        super().__init__()
        self.job, self.resume = job, resume
        self.cancel_token = CancelToken()
        self._last_batch_event = 0.0

    def stop(self) -> None:
        self.cancel_token.cancel()

    @Slot()
    def run(self) -> None:
        outcome: TrainingOutcome | None = None
        try:
            outcome = run_training(self.job, ModelLibrary(), on_event=self._relay, cancel=self.cancel_token,
                                   resume=self.resume)
        except Exception as exc:  # bad data, a full disk, out of memory: one message, no traceback
            self.failed.emit(describe_exception(exc))
        finally:
            self.finished.emit(outcome)

    def _relay(self, event: TrainingEvent) -> None:
        if event.kind == "batch" and event.batch < event.batches:
            now = time.monotonic()
            if now - self._last_batch_event < 1.0 / BATCH_EVENTS_PER_S:
                return
            self._last_batch_event = now
        self.event.emit(event)
