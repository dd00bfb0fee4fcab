"""The streaming batched detection engine.

Files go in; one ScanResult per file comes out as soon as its batch finishes. A thread pool reads, hashes,
decodes and resizes the next batches while the current one runs on the device (Pillow and hashlib release
the GIL, so threads overlap for real and nothing needs pickling or forking — safe under a Qt thread too).
"""
from __future__ import annotations

import math
import os
import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, NamedTuple, Sequence

import torch
from PIL import Image

from models.calibration import calibrated
from models.device import select_device
from models.discovery import Entry
from models.imaging import DecodedImage, ImageDecodeError, decoding, read_file
from models.labels import Thresholds
from models.library import LoadedModel
from models.preprocess import Box, Normalizer, draft_size, geometry_transform, image_views
from models.registry import get_architecture


class CancelToken:
    """Set from any thread; the engine stops before the next batch."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()


@dataclass(frozen=True)
class PriorScore:
    """A score already in the case for this content and model: reused instead of recomputed."""
    p_fake: float
    width: int | None = None
    height: int | None = None
    format: str | None = None


class Tile(NamedTuple):
    """One view's score and the part of the picture it showed (pixels, EXIF orientation applied)."""
    x: int
    y: int
    w: int
    h: int
    p_fake: float


@dataclass
class ScanResult:
    path: str
    sha256: str | None
    size: int | None
    width: int | None
    height: int | None
    format: str | None
    p_fake: float | None
    label: str | None
    model_id: str
    weights_sha256: str
    error: str | None = None
    modified: float | None = None
    reused: bool = False  # score taken from the case, not recomputed
    notes: list[str] = field(default_factory=list)
    evidence: Any = None  # what the scan's analyzer returned for the file's bytes (None without one)
    tiles: list[Tile] = field(default_factory=list)  # every view's score (one for single-view policies)

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class _Prepared:
    entry: Entry
    result: ScanResult
    views: list[torch.Tensor] = field(default_factory=list)  # uint8 (3, H, W) each, ready to batch
    boxes: list[Box] = field(default_factory=list)  # where each view comes from in the picture


# Called in a worker thread with the very bytes that were hashed, so extra checks never re-read the file.
Analyzer = Callable[[bytes, Path], Any]


class ScanEngine:
    def __init__(self, model: LoadedModel, *, device: str | torch.device | None = None, batch_size: int = 16,
                 workers: int | None = None, thresholds: Thresholds | None = None, amp: bool = True) -> None:
        if getattr(model, "members", None) is not None:  # models/ensemble.py LoadedEnsemble: no network
            raise ValueError(f"{model.card.id} is an ensemble: it is scored through its members "
                             "(models.ensemble.build_scorers), not by a network of its own")
        self.card = model.card
        self.device = device if isinstance(device, torch.device) else select_device(device)
        self.batch_size = max(1, int(batch_size))
        self.workers = max(1, int(workers if workers is not None else default_workers(self.device)))
        self.thresholds = thresholds or Thresholds.around(self.card.threshold, self.card.inconclusive_band)
        self.amp = amp and self.device.type == "cuda"
        arch = get_architecture(self.card.architecture)
        self.memory_format = torch.channels_last if arch.channels_last else torch.contiguous_format
        self.module = model.module.to(self.device).eval().to(memory_format=self.memory_format)
        self.normalize = Normalizer(self.card.input, self.device)
        self.geometry = geometry_transform(self.card.input)
        self.draft = draft_size(self.card.input)

    # ---- public ------------------------------------------------------------------------------
    def scan(self, entries: Iterable[Entry | Path | str], *, prior: Mapping[str, PriorScore] | None = None,
             cancel: CancelToken | None = None, analyzer: Analyzer | None = None) -> Iterator[ScanResult]:
        for batch in self.scan_batches(entries, prior=prior, cancel=cancel, analyzer=analyzer):
            yield from batch

    def scan_batches(self, entries: Iterable[Entry | Path | str], *,
                     prior: Mapping[str, PriorScore] | None = None,
                     cancel: CancelToken | None = None,
                     analyzer: Analyzer | None = None) -> Iterator[list[ScanResult]]:
        """Lists of results in input order; each list ends with one model batch (or the stream's end).
        `analyzer`, when given, runs on every readable file's bytes (reused scores and undecodable files
        included) and its result lands in ScanResult.evidence."""
        # the one-model case of the multi-model pass: one pipeline to read, hash, decode and batch files
        for batch in MultiScanEngine([self]).scan_batches(entries, priors=[prior or {}], cancel=cancel,
                                                          analyzer=analyzer):
            yield [results[0] for results in batch]

    def predict_tensors(self, batch: torch.Tensor) -> torch.Tensor:
        """P(fake) for a uint8 batch (N, 3, H, W): the model-only path, also used by benchmarks."""
        return torch.sigmoid(self.fake_logits(batch))

    def fake_logits(self, batch: torch.Tensor) -> torch.Tensor:
        """The logit of P(fake) per view of a uint8 batch (NaN where the model gave no valid output)."""
        x = self.normalize(batch.to(self.device, non_blocking=True)).contiguous(memory_format=self.memory_format)
        with torch.inference_mode(), torch.autocast("cuda", dtype=torch.float16, enabled=self.amp):
            logits = self.module(x).float()
        return fake_logits(logits, self.card.num_logits, self.card.fake_index).cpu()

    def score_images(self, images: list[Image.Image]) -> list[tuple[float, list[Tile]]]:
        """(P(fake), tiles) per decoded picture, through the card's policy and aggregation: what a scan of the
        same pixels gives (evaluation's robustness sweeps use it on perturbed pictures)."""
        views = [list(image_views(self.card.input, image)) for image in images]
        logits = self._forward([v for per_image in views for v, _ in per_image])
        out, start = [], 0
        for per_image in views:
            mine = logits[start:start + len(per_image)]
            start += len(per_image)
            out.append((self.aggregate(mine), self._tiles([box for _, box in per_image], mine)))
        return out

    def aggregate(self, logits: torch.Tensor) -> float:
        """One picture's P(fake) from its views' logits, by the card's rule and then its calibration (the one
        place a calibrated card's map is applied); NaN when any view has none."""
        spec = self.card.input
        return calibrated(self.card.calibration, aggregate(logits, spec.aggregation, spec.top_k))

    def _tiles(self, boxes: list[Box], logits: torch.Tensor) -> list[Tile]:
        """Each view's P(fake), calibrated like the picture's, so the tile map and the score agree."""
        return [tile._replace(p_fake=calibrated(self.card.calibration, tile.p_fake)) for tile in _tiles(boxes, logits)]

    # ---- stages ------------------------------------------------------------------------------
    def _blank(self, entry: Entry) -> ScanResult:
        return ScanResult(path=str(entry.path), sha256=None, size=None, width=None, height=None, format=None,
                          p_fake=None, label=None, model_id=self.card.id,
                          weights_sha256=self.card.weights_sha256, error=entry.error,
                          notes=[entry.note] if entry.note else [])  # e.g. "symbolic link to …"

    def _reuse(self, result: ScanResult, known: PriorScore | None) -> bool:
        """Take the case's score for this content when it has one (then the file need not be decoded)."""
        if known is None:
            return False
        result.p_fake, result.reused = known.p_fake, True
        result.width, result.height, result.format = known.width, known.height, known.format
        result.label = self.thresholds.label(known.p_fake)
        return True

    def _views(self, decoded: DecodedImage, result: ScanResult) -> tuple[list[torch.Tensor], list[Box]]:
        """The model's input views of a decoded picture and their boxes, by this card's policy."""
        spec = self.card.input
        result.width, result.height, result.format = decoded.width, decoded.height, decoded.format
        result.notes += decoded.notes + small_image_notes(spec, *decoded.image.size)
        views = list(image_views(spec, decoded.image))
        return [v for v, _ in views], [box for _, box in views]

    def _finish(self, ready: list[_Prepared]) -> list[ScanResult]:
        scored = [p for p in ready if p.views]
        if scored:
            try:
                logits = self._forward([v for p in scored for v in p.views])
            except RuntimeError as exc:  # e.g. out of device memory: report it on the batch's rows
                for p in scored:
                    p.result.error = f"inference failed: {str(exc).splitlines()[0]}"
            else:
                start = 0
                for p in scored:
                    mine = logits[start:start + len(p.views)]
                    start += len(p.views)
                    self._score(p, mine)
        for p in ready:
            p.views = []  # the pixels are done with; the results may live on in the caller
        return [p.result for p in ready]

    def _score(self, prepared: _Prepared, logits: torch.Tensor) -> None:
        prob = self.aggregate(logits)
        if math.isfinite(prob):
            prepared.result.p_fake = prob
            prepared.result.label = self.thresholds.label(prob)
            prepared.result.tiles = self._tiles(prepared.boxes, logits)
        else:  # no score is better than a made-up one: NaN is no evidence of a real photo
            prepared.result.error = "the model returned no valid score (NaN)"

    def _forward(self, views: list[torch.Tensor]) -> torch.Tensor:
        """Fake logits of views of any sizes, in input order: views of one size are batched together (tiles
        of many pictures share a batch), at most batch_size model-input squares' worth of pixels at a time."""
        out = torch.empty(len(views))
        by_shape: dict[tuple[int, ...], list[int]] = {}
        for index, view in enumerate(views):
            by_shape.setdefault(tuple(view.shape), []).append(index)
        side = self.card.input.size
        for shape, indices in by_shape.items():
            chunk = max(1, self.batch_size * side * side // (shape[1] * shape[2]))
            for start in range(0, len(indices), chunk):
                part = indices[start:start + chunk]
                out[part] = self.fake_logits(torch.stack([views[i] for i in part]))
        return out


class MultiScanEngine:
    """Several detectors in one pass over the files: each file is read, hashed, analysed and decoded once, then
    cut into every model's own views (its card's policy) and scored by each. One ScanEngine per model does the
    model's part; a single-model scan is this with one engine. An ensemble (models/ensemble.py EnsembleScorer)
    is a scorer without pixels: it combines the results of its members' engines, which must be in the pass.

    Decoding once means one size for all: the largest of the cards' JPEG draft sizes, or full size as soon as
    one card needs it, so every model still gets at least the pixels it asks for. A model whose draft size is
    smaller than another's can therefore see a JPEG decoded larger than in a scan of its own (its score may
    differ slightly from that scan's on big JPEGs). Models that composite transparency over different
    backgrounds get one decode per background (the shipped cards all use white)."""

    def __init__(self, scorers: Sequence[Any]) -> None:
        """`scorers`: ScanEngines and ensembles' scorers, in the order their results come out per file."""
        if not scorers:
            raise ValueError("a scan needs at least one model")
        ids = [scorer.card.id for scorer in scorers]
        if len(set(ids)) < len(ids):  # the case keeps one result per file and model: a model twice would clash
            raise ValueError(f"each model once, please: {', '.join(ids)}")
        self.scorers = list(scorers)
        self.engines = [s for s in self.scorers if isinstance(s, ScanEngine)]  # the ones that need pixels
        self._index = {id(engine): i for i, engine in enumerate(self.engines)}
        for combiner in self.scorers:
            if not isinstance(combiner, ScanEngine) and not all(id(m) in self._index for m in combiner.members):
                raise ValueError(f"ensemble {combiner.card.id!r}: its members' engines must be in the same pass")
        if not self.engines:
            raise ValueError("a scan needs at least one model that looks at the pictures")
        self.workers = max(engine.workers for engine in self.engines)
        # Decoded-and-cut images waiting for the devices: about three batches of views, but never fewer images
        # than the workers decode at once (views are bounded by the cards: MAX_VIEW_PIXELS an image per model;
        # a waiting picture holds every model's views, hence their sum)
        per_batch = min(e.batch_size * e.card.input.size ** 2 for e in self.engines)
        view_pixels = sum(e.card.input.view_pixels for e in self.engines)
        batch = min(e.batch_size for e in self.engines)
        self.lookahead = max(self.workers + 1, min(batch * 3, 3 * per_batch // view_pixels))

    @property
    def cards(self) -> list:
        return [scorer.card for scorer in self.scorers]

    @property
    def thresholds(self) -> list[Thresholds]:
        return [scorer.thresholds for scorer in self.scorers]

    def scan_batches(self, entries: Iterable[Entry | Path | str], *,
                     priors: Sequence[Mapping[str, PriorScore]] | None = None,
                     cancel: CancelToken | None = None,
                     analyzer: Analyzer | None = None) -> Iterator[list[tuple[ScanResult, ...]]]:
        """Per file, in input order, a tuple of results (one per scorer, in their order); each list ends when
        one of the models has a batch to run (or the stream ends). `priors`: per scorer, the scores the case
        already holds (SHA-256 → score; an ensemble's are not used: it is recombined from its members' scores,
        reused or not). The analyzer's result lands in the first engine's result only: it is about the file,
        not a model."""
        priors = list(priors) if priors is not None else [{} for _ in self.scorers]
        priors = [prior for scorer, prior in zip(self.scorers, priors) if isinstance(scorer, ScanEngine)]
        cancel = cancel or CancelToken()
        source = (e if isinstance(e, Entry) else Entry(Path(e)) for e in entries)
        pending: deque[Future] = deque()
        with ThreadPoolExecutor(self.workers, thread_name_prefix="forensight-decode") as pool:
            try:
                def refill() -> None:
                    while len(pending) < self.lookahead:
                        entry = next(source, None)
                        if entry is None:
                            return
                        pending.append(pool.submit(self._prepare, entry, priors, analyzer))

                refill()
                ready: list[list[_Prepared]] = []
                while pending and not cancel.cancelled:
                    ready.append(pending.popleft().result())
                    refill()
                    if self._batch_full(ready):
                        yield self._finish(ready)
                        ready = []
                if ready and not cancel.cancelled:
                    yield self._finish(ready)
            finally:
                for future in pending:
                    future.cancel()

    def _batch_full(self, ready: list[list[_Prepared]]) -> bool:
        return any(sum(len(per_model[i].views) for per_model in ready) >= engine.batch_size
                   for i, engine in enumerate(self.engines))

    def _finish(self, ready: list[list[_Prepared]]) -> list[tuple[ScanResult, ...]]:
        per_engine = [engine._finish([per_model[i] for per_model in ready]) for i, engine in enumerate(self.engines)]
        return [self._per_scorer(results) for results in zip(*per_engine)]

    def _per_scorer(self, results: tuple[ScanResult, ...]) -> tuple[ScanResult, ...]:
        """One file's engine results in the scorers' order, each ensemble's combined from its members'."""
        return tuple(results[self._index[id(s)]] if isinstance(s, ScanEngine)
                     else s.combine([results[self._index[id(m)]] for m in s.members]) for s in self.scorers)

    def _prepare(self, entry: Entry, priors: Sequence[Mapping[str, PriorScore]],
                 analyzer: Analyzer | None) -> list[_Prepared]:
        """Runs in a worker thread: read, hash, analyse once; reuse each model's known score; decode once for
        the models that still need pixels. Never raises: a failure costs the file's row(s), not the scan."""
        prepared = [_Prepared(entry, engine._blank(entry)) for engine in self.engines]
        if entry.error:
            return prepared
        failing = prepared  # until the file is read, a failure is every model's
        try:
            data, sha256 = self._read(entry, prepared, analyzer)
            todo = [(p, engine) for p, engine, prior in zip(prepared, self.engines, priors)
                    if not engine._reuse(p.result, prior.get(sha256))]
            failing = [p for p, _ in todo]
            self._decode(data, todo)
        except ImageDecodeError as exc:
            _fail(failing, str(exc))
        except OSError as exc:
            _fail(failing, f"cannot read the file: {exc.strerror or exc}")
        except Exception as exc:  # a decoder bug must cost one row, not the scan
            _fail(failing, f"could not be processed ({type(exc).__name__}: {exc})")
        return prepared

    @staticmethod
    def _read(entry: Entry, prepared: list[_Prepared], analyzer: Analyzer | None) -> tuple[bytes, str]:
        modified = entry.path.stat().st_mtime
        data, sha256 = read_file(entry.path)
        for p in prepared:
            p.result.modified, p.result.sha256, p.result.size = modified, sha256, len(data)
        if analyzer is not None:
            first = prepared[0].result
            known = len(first.notes)
            first.evidence = _run_analyzer(analyzer, data, entry.path, first)
            for p in prepared[1:]:  # an analyzer failure is noted on every model's row
                p.result.notes += first.notes[known:]
        return data, sha256

    @staticmethod
    def _decode(data: bytes, todo: list[tuple[_Prepared, ScanEngine]]) -> None:
        """Decode once per background (once, in practice) at a size that serves every model, then cut each
        model's views; the full-size picture stays in the decode budget until all of them exist."""
        by_background: dict[tuple[int, ...], list[tuple[_Prepared, ScanEngine]]] = {}
        for p, engine in todo:
            by_background.setdefault(tuple(engine.card.input.background), []).append((p, engine))
        for background, group in by_background.items():
            drafts = [engine.draft for _, engine in group]
            draft = None if None in drafts else max(drafts)
            with decoding(data, draft_size=draft, background=background) as decoded:
                for p, engine in group:
                    p.views, p.boxes = engine._views(decoded, p.result)


def _fail(prepared: list[_Prepared], reason: str) -> None:
    for p in prepared:
        p.result.error = reason
        p.views, p.boxes = [], []  # views cut before the failure (another background's decode) go unscored


def default_workers(device: torch.device) -> int:
    """Decode threads. On the CPU they share the cores with the model, so a few suffice. On a GPU decoding is
    the bottleneck (an H100 runs ResNet-50 at ~3,500 images/s, one thread decodes ~20 photos/s), so use every
    core: measured on 16 cores, 4 → 16 threads took a scan from 72 to 118–135 images/s."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return min(4, cores) if device.type == "cpu" else min(32, cores)  # the cores this process may use


def _run_analyzer(analyzer: Analyzer, data: bytes, path: Path, result: ScanResult) -> Any:
    try:
        return analyzer(data, path)
    except Exception as exc:  # an analyzer bug costs a note, never the file's score
        result.notes.append(f"analysis failed ({type(exc).__name__}: {exc})")
        return None


def fake_logits(logits: torch.Tensor, num_logits: int, fake_index: int = 1) -> torch.Tensor:
    """The logit of P(fake) per row: the one logit, or the fake logit minus the real one (softmax over two is
    the sigmoid of that difference). NaN where a row holds NaN or an infinity, as probabilities() would."""
    if num_logits == 1:
        return logits.reshape(-1)  # sigmoid of ±inf is 1 or 0, as before
    z = logits[:, fake_index] - logits[:, 1 - fake_index]
    return torch.where(torch.isfinite(logits).all(dim=1), z, torch.full_like(z, math.nan))


def aggregate(logits: torch.Tensor, rule: str, k: int = 3) -> float:
    """One picture's P(fake) from its views' fake logits: max (the strongest view), mean_logit (the mean in
    logit space, so a confident view counts by its confidence) or top_k_mean (mean P(fake) of the k strongest
    views). NaN when any view has no valid logit."""
    if len(logits) == 0 or bool(torch.isnan(logits).any()):
        return math.nan
    logits = logits.double()
    if len(logits) == 1 or rule == "max":
        return float(torch.sigmoid(logits.max()))
    if rule == "mean_logit":
        return float(torch.sigmoid(logits.mean()))
    return float(torch.sigmoid(logits).topk(min(k, len(logits))).values.mean())


def small_image_notes(spec, width: int, height: int) -> list[str]:
    """Why a picture smaller than the model's input was padded or enlarged, for policies at native size."""
    if spec.resizes or min(width, height) >= spec.size:
        return []
    if spec.small_image == "upscale":
        return [f"smaller than the model's {spec.size}-pixel input ({width}×{height}): enlarged until its short "
                f"side is {spec.size} pixels (the card's small-image rule)"]
    return [f"smaller than the model's {spec.size}-pixel input ({width}×{height}): padded with black to "
            f"{spec.size} pixels (the card's small-image rule)"]


def _tiles(boxes: list[Box], logits: torch.Tensor) -> list[Tile]:
    probs = torch.sigmoid(logits.double()).tolist()  # float64: confident tiles stay apart instead of all 1.0
    return [Tile(b.x, b.y, b.w, b.h, float(p)) for b, p in zip(boxes, probs)]


def probabilities(logits: torch.Tensor, num_logits: int, fake_index: int = 1) -> torch.Tensor:
    """P(fake) per row: sigmoid over one logit, softmax over two. A row comes out NaN when its logits hold NaN
    (or, under softmax, an infinity): callers report such a row as an error, never label it."""
    if num_logits == 1:
        return torch.sigmoid(logits.reshape(-1))
    return torch.softmax(logits, dim=1)[:, fake_index]
