"""The JPEG quality a file's quantisation tables imply, and whether they are exactly libjpeg's (IJG scaling).
Used by the dataset checks (training) and by the evidence facts (app), so it lives below both."""
from __future__ import annotations

import numpy as np

# The IJG/libjpeg luminance table (ITU-T T.81 Annex K) in natural row-major order, the order in which
# Pillow's `quantization` lists it (Pillow undoes the file's zigzag order).
_IJG_LUMINANCE = np.array([
    16, 11, 10, 16, 24, 40, 51, 61,
    12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56,
    14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77,
    24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101,
    72, 92, 95, 98, 112, 100, 103, 99,
], dtype=np.int64)


def _libjpeg_table(quality: int) -> np.ndarray:
    """The luminance table libjpeg writes for `quality` (jpeg_quality_scaling + baseline clamp)."""
    scale = 5000 // quality if quality < 50 else 200 - 2 * quality
    return np.clip((_IJG_LUMINANCE * scale + 50) // 100, 1, 255)


_QUALITY_TABLES = np.stack([_libjpeg_table(q) for q in range(1, 101)])  # row i is quality i + 1


def estimate_jpeg_quality(quantization: dict) -> int | None:
    """The libjpeg quality (1..100) whose luminance table is closest to table 0 of `quantization`.

    `quantization` is Pillow's `img.quantization`. Exact for files saved by libjpeg-based encoders
    (Pillow, most software); for cameras and other custom tables it is the nearest equivalent quality.
    None when there is no usable luminance table.
    """
    table = (quantization or {}).get(0)
    if table is None or len(table) != 64:
        return None
    distance = np.abs(_QUALITY_TABLES - np.asarray(table, dtype=np.int64)).sum(axis=1)
    return int(np.argmin(distance)) + 1  # the first minimum: the lowest quality among exact ties


def is_libjpeg_table(quantization: dict, quality: int) -> bool:
    """Whether table 0 of `quantization` is exactly the one libjpeg writes at `quality` (IJG scaling)."""
    table = (quantization or {}).get(0)
    return table is not None and len(table) == 64 and 1 <= quality <= 100 and bool(
        np.array_equal(np.asarray(table, dtype=np.int64), _QUALITY_TABLES[quality - 1]))
