"""Image embeddings of a frozen tower, computed once and kept on disk (the linear probe's features).

One cache file per (tower weights, tower config, input preprocessing): `<home>/cache/features/<key>.safetensors`
holds a float32 matrix, one row per picture, and in its metadata the SHA-256 of the file each row came from. A
picture is recognised by its bytes, not its path: renamed, moved or copied pictures are not recomputed, an
edited one is. A second fit on the same data reads every row from the cache and runs no tower at all.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from models.card import InputSpec
from models.imaging import ImageDecodeError, decode, read_file
from models.preprocess import Normalizer, geometry_transform
from training.data import Sample

CACHE_VERSION = 1  # bump when the way features are computed changes


def cache_key(tower_sha256: str, tower_config: dict, spec: InputSpec) -> str:
    """What decides a picture's features: the tower's weights and shape, and every preprocessing setting."""
    described = {"version": CACHE_VERSION, "tower_sha256": tower_sha256, "tower": tower_config, "input": asdict(spec)}
    return hashlib.sha256(json.dumps(described, sort_keys=True, default=list).encode()).hexdigest()


class FeatureCache:
    def __init__(self, folder: Path, key: str) -> None:
        self.path = Path(folder) / f"{key[:40]}.safetensors"
        self.rows: dict[str, torch.Tensor] = {}
        if self.path.is_file():
            with safe_open(str(self.path), framework="pt") as handle:
                shas = json.loads(handle.metadata()["files"])
                matrix = handle.get_tensor("features")
            self.rows = {sha: matrix[i] for i, sha in enumerate(shas)}

    def save(self) -> None:
        """Write all rows; a new file replaces the old one whole, so a crash never leaves half a cache."""
        if not self.rows:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        shas = list(self.rows)
        partial = self.path.with_suffix(".partial")
        save_file({"features": torch.stack([self.rows[s] for s in shas]).contiguous()}, str(partial),
                  metadata={"files": json.dumps(shas), "version": str(CACHE_VERSION)})
        os.replace(partial, self.path)


@dataclass
class Extracted:
    features: torch.Tensor  # (N, D) float32, in the samples' order
    computed: int  # pictures the tower ran on this time
    cached: int  # pictures whose features came from the cache
    cancelled: bool = False


def extract(tower: torch.nn.Module, samples: list[Sample], spec: InputSpec, cache: FeatureCache, *,
            device: torch.device, batch_size: int = 32, workers: int = 2,
            progress: Callable[[int, int], None] | None = None, cancelled: Callable[[], bool] = lambda: False
            ) -> Extracted:
    """Features of every sample: from the cache, else decoded (the scan's decoder and geometry) and run through
    the tower in batches. New rows are saved even when cancelled, so the next run starts where this one stopped."""
    geometry, normalize = geometry_transform(spec), Normalizer(spec, device)
    tower = tower.to(device).eval()

    def load(sample: Sample) -> tuple[str, torch.Tensor | None]:
        data, sha = read_file(sample.path)
        if sha in cache.rows:
            return sha, None
        try:
            return sha, geometry(decode(data).image)
        except ImageDecodeError as exc:  # changed since the integrity check
            raise RuntimeError(f"{sample.path}: {exc}") from None

    shas: list[str] = []
    computed, done, batches = 0, 0, max(1, -(-len(samples) // batch_size))
    with ThreadPoolExecutor(max(1, workers), thread_name_prefix="forensight-features") as pool:
        for start in range(0, len(samples), batch_size):
            if cancelled():
                cache.save()
                return Extracted(torch.empty(0), computed, len(shas) - computed, cancelled=True)
            loaded = list(pool.map(load, samples[start:start + batch_size]))
            fresh = [(sha, view) for sha, view in loaded if view is not None and sha not in cache.rows]
            if fresh:
                batch = normalize(torch.stack([view for _, view in fresh]).to(device))
                with torch.inference_mode():
                    out = tower(batch).float().cpu()
                for (sha, _), row in zip(fresh, out):
                    cache.rows.setdefault(sha, row.clone())
                computed += len({sha for sha, _ in fresh})
            shas += [sha for sha, _ in loaded]
            done += 1
            if progress:
                progress(done, batches)
    cache.save()
    features = torch.stack([cache.rows[s] for s in shas]) if shas else torch.empty(0)
    return Extracted(features, computed, len(shas) - computed)


class Throttle:
    """At most one call per `seconds` (the last one always passes): progress for a window or a terminal."""

    def __init__(self, call: Callable[[int, int], None], seconds: float = 0.1) -> None:
        self.call, self.seconds, self.last = call, seconds, 0.0

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if done >= total or now - self.last >= self.seconds:
            self.last = now
            self.call(done, total)
