"""Grad-CAM maps computed on a worker and kept per (file content, model), so going back to an image shows its
map at once."""
from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QImage

from app.ui.widgets.qt_images import pil_to_qimage
from app.ui.workers import WorkerPool
from models.explain import Explainer, ModelViewMap, colorize
from models.imaging import decoding, read_file
from models.library import ModelLibrary
from models.preprocess import draft_size


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
        self._workers = WorkerPool(threads=1, parent=self)
        self._lock = threading.Lock()
        self._maps: OrderedDict[tuple[str, str], ModelViewMap] = OrderedDict()  # small: model-input sized
        self._explainers: dict[tuple[str, str], Explainer] = {}
        self._latest: ExplainRequest | None = None

    def request(self, request: ExplainRequest) -> None:
        self._latest = request
        self._workers.start(lambda: self._compute(request), done=self._deliver,
                            failed=lambda reason: self.failed.emit(request, reason))

    def is_cached(self, request: ExplainRequest) -> bool:
        with self._lock:
            return request.key in self._maps

    def busy(self) -> bool:
        return self._workers.busy()

    def shutdown(self) -> None:
        self._workers.shutdown()

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
