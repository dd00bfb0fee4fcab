"""The engine's long jobs turned into Qt signals, off the GUI thread.

ScanWorker runs the one scan path (app.services.scanning.run_scan, the same as `forensight scan`) in a QThread and
emits each batch as the case stored it. ExplainService computes Grad-CAM maps on a worker thread and keeps
them per (file content, model), so going back to an image shows its map at once.
"""
from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, Qt, QThread, Signal, Slot
from PySide6.QtGui import QImage

from app.case.store import Case
from app.services.scanning import ScanSummary, list_entries, run_scan
from app.ui.widgets.qt_images import pil_to_qimage
from app.ui.tasks import BackgroundTasks, describe_exception
from models.engine import CancelToken, MultiScanEngine, ScanEngine, ScanResult
from models.ensemble import build_scorers
from models.explain import Explainer, ModelViewMap, colorize
from models.imaging import decoding, read_file
from models.labels import Thresholds
from models.library import ModelLibrary
from models.preprocess import draft_size


# ---- scanning ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ScanRequest:
    case_path: Path
    model_id: str
    paths: tuple[Path, ...]
    recursive: bool
    thresholds: Thresholds
    batch_size: int = 16
    device: str = "auto"
    also: tuple[str, ...] = ()  # more models scored in the same pass, each at its card's thresholds

    @property
    def model_ids(self) -> tuple[str, ...]:
        return (self.model_id, *(m for m in dict.fromkeys(self.also) if m != self.model_id))


@dataclass(frozen=True)
class ScanProgress:
    done: int
    total: int
    elapsed: float

    @property
    def rate(self) -> float:
        return self.done / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def seconds_left(self) -> float | None:
        return (self.total - self.done) / self.rate if self.rate > 0 else None


class ScanWorker(QObject):
    """Lives in its own QThread. stop() may be called from any thread; the engine stops before the next batch,
    and every batch already scored is in the case and has been emitted."""
    listed = Signal(int)  # files found, before the first batch
    batch_done = Signal(object, object)  # {model id: list[CaseRow]} as stored in the case, ScanProgress
    failed = Signal(str)  # the scan could not run (model, device, case): a sentence for the user
    finished = Signal(object)  # ScanSummary, or None when it failed

    def __init__(self, request: ScanRequest) -> None:
        super().__init__()
        self.request = request
        self.cancel_token = CancelToken()

    def stop(self) -> None:
        self.cancel_token.cancel()

    @Slot()
    def run(self) -> None:
        summary = None
        try:
            summary = self._scan()
        except Exception as exc:  # model, device or case trouble: one message, no traceback
            self.failed.emit(describe_exception(exc))
        finally:
            self.finished.emit(summary)

    def _scan(self) -> ScanSummary:
        request = self.request
        library = ModelLibrary()
        # the toolbar's thresholds are the first model's; the others (an ensemble's members too) keep their cards'
        thresholds_for = lambda card: request.thresholds if card.id == request.model_id else None  # noqa: E731
        scorers = build_scorers([library.load(model_id) for model_id in request.model_ids],
                                lambda model: ScanEngine(model, device=request.device, batch_size=request.batch_size,
                                                         thresholds=thresholds_for(model.card)), thresholds_for)
        entries = list_entries(list(request.paths), request.recursive)
        self.listed.emit(len(entries))
        with Case(request.case_path) as case:  # this thread's own connection: SQLite objects stay put
            def on_batch(batch: list[ScanResult], summary: ScanSummary) -> None:
                paths = list(dict.fromkeys(result.path for result in batch))
                stored = {model_id: case.rows_for_paths(model_id, paths) for model_id in request.model_ids}
                self.batch_done.emit(stored, ScanProgress(summary.done, summary.total, summary.elapsed))

            return run_scan(case, MultiScanEngine(scorers), entries, cancel=self.cancel_token, on_batch=on_batch,
                            roots=request.paths)


def start_worker_thread(worker: QObject, parent: QObject) -> QThread:
    """Run `worker` (a QObject with a run() slot and a `finished` signal: scans, training) in a new QThread that
    ends, and cleans up, when the worker finishes."""
    thread = QThread(parent)
    worker.moveToThread(thread)
    thread.started.connect(worker.run)
    # quit from the worker's own thread: a queued quit would wait for the GUI thread, which may itself be
    # waiting for this thread to end (closing the window mid-scan)
    worker.finished.connect(thread.quit, Qt.ConnectionType.DirectConnection)
    # and hand the worker back to the GUI thread first, so it is deleted there: deleted in its own thread as that
    # thread ends, a Python-made QObject takes the GIL while holding Qt's connection lock, and the GUI thread,
    # holding the GIL in a chart update, waits for that lock (seen once: a scan that never ended)
    home = QThread.currentThread()  # the GUI thread, which starts every worker
    worker.finished.connect(lambda *_: worker.moveToThread(home), Qt.ConnectionType.DirectConnection)
    thread.finished.connect(worker.deleteLater)
    thread.start()
    return thread


# ---- explaining ----------------------------------------------------------------------------------------------
class ExplainError(RuntimeError):
    pass


@dataclass(frozen=True)
class ExplainRequest:
    path: str
    sha256: str
    model_id: str
    weights_sha256: str | None
    size: tuple[int, int]  # width, height of the picture the map will lie on

    @property
    def key(self) -> tuple[str, str]:
        return self.sha256, self.model_id


@dataclass
class ExplainResult:
    request: ExplainRequest
    heat: np.ndarray  # float32 (height, width) in [0, 1]
    colours: QImage  # the heat map on the colour ramp, same size
    seconds: float = 0.0
    cached: bool = False
    notes: list[str] = field(default_factory=list)


class ExplainService(QObject):
    ready = Signal(object)  # ExplainResult
    failed = Signal(object, str)  # ExplainRequest, reason

    def __init__(self, device: str | None = None, capacity: int = 256, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.device = device
        self.capacity = capacity
        self._tasks = BackgroundTasks(threads=1, parent=self)
        self._lock = threading.Lock()
        self._maps: OrderedDict[tuple[str, str], ModelViewMap] = OrderedDict()  # small: model-input sized
        self._explainers: dict[tuple[str, str], Explainer] = {}
        self._latest: ExplainRequest | None = None

    def request(self, request: ExplainRequest) -> None:
        self._latest = request
        self._tasks.submit(lambda: self._compute(request), self._deliver,
                           lambda reason: self.failed.emit(request, reason))

    def is_cached(self, request: ExplainRequest) -> bool:
        with self._lock:
            return request.key in self._maps

    def busy(self) -> bool:
        return self._tasks.busy()

    def shutdown(self) -> None:
        self._tasks.shutdown()

    # ---- worker thread -------------------------------------------------------------------------
    def _compute(self, request: ExplainRequest) -> ExplainResult | None:
        if request != self._latest:
            return None  # the user moved on while this waited: skip it
        start = time.perf_counter()
        with self._lock:
            view_map = self._maps.get(request.key)
        cached = view_map is not None
        if view_map is None:
            view_map = self._explain_file(request)
            with self._lock:
                self._maps[request.key] = view_map
                while len(self._maps) > self.capacity:
                    self._maps.popitem(last=False)
        heat = view_map.render(request.size)
        return ExplainResult(request, heat, pil_to_qimage(colorize(heat)), time.perf_counter() - start, cached)

    def _explain_file(self, request: ExplainRequest) -> ModelViewMap:
        explainer = self._explainer(request)
        data, sha256 = read_file(Path(request.path))
        if sha256 != request.sha256:
            raise ExplainError("the file has changed since it was scanned; scan it again first")
        spec = explainer.card.input
        # decoded exactly as the scan decoded it, so the map explains the score in the table
        with decoding(data, draft_size=draft_size(spec), background=tuple(spec.background)) as decoded:
            return explainer.model_view_map(decoded.image)  # the picture stays in the decode budget meanwhile

    def _explainer(self, request: ExplainRequest) -> Explainer:
        library = ModelLibrary()
        entry = library.get(request.model_id)
        if request.weights_sha256 and entry.card.weights_sha256 != request.weights_sha256:
            raise ExplainError(f"model {request.model_id!r} in the library now has other weights than the ones "
                               "that scored this file, so its map would explain a different model")
        if entry.card.architecture == "ensemble":  # the detail view offers its members instead
            raise ExplainError(f"{request.model_id} is an ensemble: Grad-CAM explains one of its members (choose "
                               "one beside Grad-CAM)")
        key = (entry.card.id, entry.card.weights_sha256)
        if key not in self._explainers:
            from models.device import select_device

            self._explainers[key] = Explainer(library.load(entry), select_device(self.device))
        return self._explainers[key]

    def _deliver(self, result: ExplainResult | None) -> None:
        if result is not None:
            self.ready.emit(result)
