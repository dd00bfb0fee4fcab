"""The pictures in a report: thumbnails, the flagged image, its Grad-CAM overlay and its tile map, each as JPEG
bytes.

Every picture is read again from the evidence file (read-only) and shown only when the file still has the
SHA-256 recorded in the case: a report must never show a picture other than the one that was scored."""
from __future__ import annotations

import io
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from PIL import Image

from app.case.store import CaseRow
from models import tilemap
from models.engine import Tile
from models.imaging import ImageDecodeError, decoding, read_file


@dataclass
class Picture:
    jpeg: bytes | None  # None when it cannot be shown
    size: tuple[int, int] = (0, 0)
    reason: str = ""  # why there is no picture


def checked_bytes(row: CaseRow) -> tuple[bytes | None, str]:
    """The file's bytes if it still matches the case, else a reason."""
    try:
        data, sha256 = read_file(Path(row.fs_path))  # the exact name: row.path is for reading by people
    except ImageDecodeError as exc:
        return None, str(exc)
    if row.sha256 and sha256 != row.sha256:
        return None, "the file has changed since the scan (its SHA-256 no longer matches)"
    return data, ""


@contextmanager
def current_image(row: CaseRow, draft: int) -> Iterator[tuple[Image.Image | None, str]]:
    """The file's picture if it still matches the case, else a reason. Its pixels count in the process-wide
    decode budget until the block ends, so use the picture inside it."""
    data, reason = checked_bytes(row)
    with ExitStack() as stack:
        decoded = None
        if data is not None:
            try:
                decoded = stack.enter_context(decoding(data, draft_size=draft))
            except ImageDecodeError as exc:
                reason = str(exc)
        yield (decoded.image if decoded else None), reason


def to_picture(image: Image.Image, longest: int) -> Picture:
    image = image.convert("RGB")
    image.thumbnail((longest, longest), Image.LANCZOS)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=85)
    return Picture(buffer.getvalue(), image.size)


def thumbnail(row: CaseRow, longest: int = 96) -> Picture:
    if row.error:
        return Picture(None, reason="—")
    with current_image(row, draft=longest) as (image, reason):
        return to_picture(image, longest) if image is not None else Picture(None, reason=reason)


def tile_map(row: CaseRow, tiles: list[Tile], longest: int = 480) -> Picture:
    """The picture with each tile's P(fake) laid where the tile lies (the strongest framed)."""
    if not tiles:
        return Picture(None, reason="no tile scores for this file in the case (scanned before tile maps)")
    with current_image(row, draft=longest) as (image, reason):
        if image is None:
            return Picture(None, reason=reason)
        scale = min(1.0, longest / max(image.size))  # a new small picture, never a copy of the big one
        small = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))),
                             Image.LANCZOS, reducing_gap=3.0)
    size = tilemap.oriented_size((row.width or small.width, row.height or small.height), small.size)
    return to_picture(tilemap.over_picture(small, tiles, size), longest)


def scale_bar() -> Picture:
    """The tile map's colour scale, P(fake) 0 to 1 from left to right."""
    return to_picture(tilemap.scale_bar(400, 14), 400)


class GradCam:
    """Grad-CAM overlays for one model, when this computer's library holds the same weights as the case."""

    def __init__(self, model_id: str | None, weights_sha256: str | None, device: str | None = "auto") -> None:
        self.explainer = None
        self.reason = ""
        self.where = "not computed"  # said on each flagged page: overlays differ slightly between devices
        try:
            from models.device import describe_device, select_device
            from models.explain import Explainer
            from models.library import ModelLibrary

            library = ModelLibrary()
            entry = library.get(model_id or "")
            if entry.card.weights_sha256 != weights_sha256:
                self.reason = f"model {model_id!r} in this computer's library has other weights than the scan's"
                return
            if entry.card.architecture == "ensemble":  # no network to explain; each member has its own map
                members = ", ".join(m["id"] for m in entry.card.ensemble["members"])
                self.reason = (f"{model_id} is an ensemble of {members}: Grad-CAM explains one network; the "
                               "members' scores are listed with the file")
                return
            chosen = select_device(device)
            self.explainer = Explainer(library.load(entry), device=chosen)
            self.where = f"computed on {describe_device(chosen)} when this report was built"
        except Exception as exc:  # missing or broken model: the report says so instead of failing
            self.reason = f"model {model_id!r} cannot be loaded from this computer's library ({exc})"

    def pictures(self, row: CaseRow, longest: int = 480) -> tuple[Picture, Picture]:
        """The image and its overlay (or a reason in the overlay's place)."""
        from models.preprocess import draft_size

        spec = self.explainer.card.input if self.explainer else None
        with current_image(row, draft=draft_size(spec) if spec else longest) as (image, reason):
            return self._pictures(image, reason, longest)

    def _pictures(self, image: Image.Image | None, reason: str, longest: int) -> tuple[Picture, Picture]:
        """The picture and its overlay from a decoded picture, or the reason twice."""
        from models.explain import overlay

        if image is None:
            return Picture(None, reason=reason), Picture(None, reason=reason)
        shown = to_picture(image, longest)
        if self.explainer is None:
            return shown, Picture(None, reason=self.reason)
        try:
            view = self.explainer.model_view_map(image)
        except Exception as exc:
            return shown, Picture(None, reason=f"Grad-CAM failed ({exc})")
        small = image.copy()
        small.thumbnail((longest, longest), Image.LANCZOS)
        return shown, to_picture(overlay(small, view.render(small.size)), longest)
