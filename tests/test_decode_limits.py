"""Decoding within bounded memory (issue 10, items 1-4): a lying EXIF thumbnail is refused from its header, every
decode takes its pixels from one process-wide budget, a JPEG too small for its header gets a note, Pillow's
warnings stay off the terminal, and iPhone HEIC photos are read with their EXIF."""
import io
import json
import os
import sys
import threading
import time
import zlib

import pytest
from PIL import Image

import models.imaging as imaging
from app.evidence import analyse
from models.engine import ScanEngine
from models.imaging import PixelBudget, decode
from models.library import ModelLibrary
from tests import images
from tests.commands import run_process, run_python
from tests.conftest import REPO

BIG = 16000 * 16000  # exactly the per-image limit: allowed, and 1 GB once decoded


def wait_until(condition, timeout: float = 10.0) -> None:
    """Poll for a state another thread reaches (not a guess at how long it takes)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the other thread never got there"
        time.sleep(0.001)


@pytest.fixture
def budget(monkeypatch):
    """A fresh process-wide budget (default size) whose peak this test can read."""
    fresh = PixelBudget(imaging.BUDGET.capacity)
    monkeypatch.setattr(imaging, "BUDGET", fresh)
    return fresh


# ---- the EXIF thumbnail bomb ----------------------------------------------------------------------------
def test_thumbnail_claiming_20000_squared_is_refused_before_decoding(budget):
    data = images.thumbnail_bomb(20000, 20000)
    assert len(data) < 40_000
    findings = {f.kind: f for f in analyse(data, "bomb.jpg")}
    assert "20000×20000" in findings["oversized_thumbnail"].message
    assert "thumbnail_mismatch" not in findings and "unreadable_thumbnail" not in findings
    assert budget.peak == 0  # not one pixel of it (nor of the picture) was decoded


_CHILD = """
import json, resource, sys, time
resource.setrlimit(resource.RLIMIT_AS, (8 << 30, 8 << 30))  # the old code took 9-15 GB: fail fast instead
sys.path.insert(0, sys.argv[1])
from app.evidence import analyse
from tests import images
data = images.thumbnail_bomb(20000, 20000)
analyse(images.thumbnail_bomb(40, 30), "warm-up.jpg")  # imports and first-use allocations are not the bomb's
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
kinds = [f.kind for f in analyse(data, "bomb.jpg")]
print(json.dumps({"kinds": kinds, "seconds": time.perf_counter() - start,
                  "growth_mb": (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024}))
"""


@pytest.mark.skipif(sys.platform != "linux", reason="ru_maxrss in KiB and RLIMIT_AS as on Linux")
def test_thumbnail_bomb_costs_no_memory_in_a_real_process():
    quiet_threads = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}  # small address space
    # a real process: its peak memory (ru_maxrss) and an address-space limit are the point, and the limit must
    # not apply to the test run
    run = run_python(_CHILD, REPO, timeout=120, env=quiet_threads)
    assert run.returncode == 0, run.stderr[-2000:]
    measured = json.loads(run.stdout.strip().splitlines()[-1])
    assert "oversized_thumbnail" in measured["kinds"]
    assert measured["growth_mb"] < 100, measured  # was 8,800 MB
    assert measured["seconds"] < 5, measured  # was 24 s


# ---- the process-wide pixel budget ----------------------------------------------------------------------
class Holder:
    """A thread that reserves pixels, says when it holds them, and keeps them until told to let go."""

    def __init__(self, budget: PixelBudget, pixels: int, log: list) -> None:
        self.entered, self.release = threading.Event(), threading.Event()
        self.thread = threading.Thread(target=self._run, args=(budget, pixels, log), daemon=True)
        self.name = f"{pixels}px"
        self.thread.start()

    def _run(self, budget, pixels, log) -> None:
        with budget.reserve(pixels):
            log.append(f"{self.name} in")
            self.entered.set()
            self.release.wait(10)
            log.append(f"{self.name} out")

    def finish(self) -> None:
        self.release.set()
        self.thread.join(10)


def test_reservations_that_do_not_fit_together_never_overlap():
    budget, log = PixelBudget(100), []
    first = Holder(budget, 70, log)
    assert first.entered.wait(10)
    second = Holder(budget, 50, log)
    wait_until(lambda: budget.waiting == 1)  # it asked, and waits: 70 + 50 > 100
    assert not second.entered.is_set()
    first.finish()
    assert second.entered.wait(10)
    second.finish()
    assert log == ["70px in", "70px out", "50px in", "50px out"]
    assert budget.peak == 70 and budget.used == 0


def test_a_reservation_bigger_than_the_budget_waits_until_it_is_alone():
    budget, log = PixelBudget(100), []
    small = Holder(budget, 10, log)
    assert small.entered.wait(10)
    huge = Holder(budget, 150, log)
    wait_until(lambda: budget.waiting == 1)
    small.finish()
    assert huge.entered.wait(10)
    huge.finish()
    assert log == ["10px in", "10px out", "150px in", "150px out"]


def test_requests_are_served_in_order_so_a_big_one_is_not_starved():
    budget, log = PixelBudget(100), []
    first = Holder(budget, 60, log)
    assert first.entered.wait(10)
    big = Holder(budget, 60, log)
    wait_until(lambda: budget.waiting == 1)
    small = Holder(budget, 10, log)  # would fit now, but the big one asked first
    wait_until(lambda: budget.waiting == 2)
    assert not small.entered.is_set()
    first.finish()
    assert big.entered.wait(10) and small.entered.wait(10)  # 60 + 10 fit together
    big.finish()
    small.finish()
    assert log.index("60px in", 1) < log.index("10px in")


def test_default_budget_never_lets_four_16000_squared_pictures_decode_at_once():
    for memory_gib in (4, 16, 64, 1024):
        pixels = imaging.default_budget_pixels(memory_gib << 30)
        assert imaging.MAX_PIXELS <= pixels < 4 * BIG, memory_gib
    assert imaging.MAX_PIXELS <= imaging.BUDGET.capacity < 4 * BIG


class LoadGate:
    """Counts decodes loading at the same moment. Each holds on until a third is inside (a budget that does not
    work) or is seen waiting for room (one that does), so that the workers really do try to overlap."""

    def __init__(self, load, budget: PixelBudget) -> None:
        self.load, self.budget, self.inside, self.most = load, budget, 0, 0
        self.changed = threading.Condition()

    def __call__(self, img) -> None:
        with self.changed:
            self.inside += 1
            self.most = max(self.most, self.inside)
            self.changed.notify_all()
            deadline = time.monotonic() + 2  # only the last pair, with nobody behind it, waits this out
            while self.inside < 3 and not (self.inside == 2 and self.budget.waiting):
                if time.monotonic() > deadline:
                    break
                self.changed.wait(0.01)
        try:
            self.load(img)
        finally:
            with self.changed:
                self.inside -= 1


def scan(model_entry, paths, **options):
    return list(ScanEngine(ModelLibrary().load(model_entry.card.id), device="cpu", **options).scan(paths))


def test_scan_of_huge_pngs_with_four_workers_stays_within_the_budget(tiny_model, tmp_path, monkeypatch):
    two_at_once = PixelBudget(2 * BIG)
    monkeypatch.setattr(imaging, "BUDGET", two_at_once)
    gate = LoadGate(imaging._load_pixels, two_at_once)
    monkeypatch.setattr(imaging, "_load_pixels", gate)
    paths = [images.png_bomb(tmp_path / f"huge{i}.png", 16000, 16000) for i in range(8)]
    assert all(p.stat().st_size < 200 for p in paths)

    results = scan(tiny_model, paths, workers=4, batch_size=2)

    assert [r.path for r in results] == [str(p) for p in paths]
    assert all("truncated" in (r.error or "") for r in results)  # each reached its decode, then failed
    assert gate.most == 2  # the workers did decode side by side, but never three 16000² at once
    assert two_at_once.peak == 2 * BIG and two_at_once.used == 0


def test_previews_and_report_pictures_take_their_pixels_from_the_budget(budget, tmp_path):
    from app.case.store import CaseRow
    from app.report.pictures import thumbnail
    from app.ui.scan.previews import make_preview, make_thumbnail

    path = tmp_path / "photo.png"
    images.gradient(300, 200).save(path)
    make_thumbnail(str(path), 64)
    assert budget.peak == 300 * 200 and budget.used == 0
    assert make_preview(str(path)).stored_size == (300, 200) and budget.used == 0
    row = CaseRow(1, str(path), None, None, 300, 200, "PNG", None, "m", "w", 0.5, "uncertain", 0.5, None, None)
    assert thumbnail(row).jpeg is not None and budget.used == 0

    images.png_bomb(path, 40000, 40000)
    assert "decompression bomb" in thumbnail(row).reason  # the per-image limit holds here too
    assert budget.peak == 300 * 200


def test_a_progressive_jpeg_reserves_its_full_size_even_when_drafted_small(budget):
    # Its decoder keeps every coefficient of the full picture, however small the output.
    buffer = io.BytesIO()
    Image.new("RGB", (4000, 3000), (90, 120, 150)).save(buffer, "JPEG", progressive=True)
    assert decode(buffer.getvalue(), draft_size=256).image.size == (500, 375)
    assert budget.peak == 4000 * 3000


def test_analysing_a_png_never_decodes_its_pixels_yet_reads_metadata_stored_after_them(monkeypatch):
    # Pillow decodes a PNG's every pixel to reach chunks after the image data (getexif did, for a header
    # claiming 60,000×60,000: 3.4 GB in a worker thread). EXIF and text stored there are still found.
    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = "Canon", "EOS R5"
    data = images.png_with_late_chunks(images.gradient(40, 30), [(b"tEXt", b"parameters\x00a cat, Steps: 20"),
                                                                 (b"eXIf", exif.tobytes()[6:])])
    liar = bytearray(data)
    liar[16:24] = (60000).to_bytes(4, "big") * 2  # IHDR width and height, then its CRC
    liar[29:33] = zlib.crc32(bytes(liar[12:29])).to_bytes(4, "big")
    loads = []
    monkeypatch.setattr("PIL.PngImagePlugin.PngImageFile.load", lambda self: loads.append(self.size))
    for png in (data, bytes(liar)):
        kinds = {f.kind: f for f in analyse(png, "late.png")}
        assert "Canon EOS R5" in kinds["camera"].message and "generator_parameters" in kinds
    assert loads == []


def test_preview_shows_exif_from_the_same_bytes_and_decodes_the_picture_once(budget, tmp_path, monkeypatch):
    from PIL import PngImagePlugin

    from app.ui.scan.previews import make_preview

    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = "Canon", "EOS R5"
    path = tmp_path / "late-exif.png"
    path.write_bytes(images.png_with_late_chunks(images.gradient(300, 200), [(b"eXIf", exif.tobytes()[6:])]))
    loads, prepare = [], PngImagePlugin.PngImageFile.load_prepare  # called once per real pixel decode
    monkeypatch.setattr(PngImagePlugin.PngImageFile, "load_prepare", lambda self: loads.append(1) or prepare(self))

    preview = make_preview(str(path))

    assert ("Make", "Canon") in preview.exif and ("Model", "EOS R5") in preview.exif
    assert len(loads) == 1 and budget.peak == 300 * 200  # the shown picture, within the budget; nothing else


# ---- a JPEG whose header claims far more than its data ---------------------------------------------------
def test_jpeg_claiming_16000_squared_with_64_squared_of_data_gets_a_note(tiny_model, tmp_path):
    data = images.jpeg_claiming(16000, 16000, real=(64, 64))
    decoded = decode(data, draft_size=256)
    assert (decoded.width, decoded.height) == (16000, 16000)
    [note] = decoded.notes
    assert "16000×16000" in note and f"{len(data):,} bytes" in note and "missing" in note

    path = tmp_path / "liar.jpg"
    path.write_bytes(data)
    [result] = scan(tiny_model, [path], workers=1)
    assert result.ok and result.notes == [note]  # scored, and the row says why the score means little


@pytest.mark.parametrize("options", [{}, {"optimize": True}, {"optimize": True, "progressive": True}])
def test_complete_jpegs_get_no_missing_data_note(options):
    # A flat grey picture is the most compressible JPEG there is: ~2 bits per 8×8 block, never below 1.
    for picture in (Image.new("L", (4000, 3000), 128), images.gradient(640, 480)):
        buffer = io.BytesIO()
        picture.save(buffer, "JPEG", quality=50, **options)
        assert decode(buffer.getvalue(), draft_size=256).notes == []


# ---- Pillow's warnings --------------------------------------------------------------------------------------
@pytest.mark.slow
def test_pillow_warnings_do_not_print_under_quiet(tiny_model, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    images.jpeg_with_corrupt_exif(folder / "corrupt-exif.jpg")
    images.gradient(40, 40).save(folder / "fine.png")
    # a real process: pytest records warnings itself, and a warning already shown in this process would not show
    # again, so only a fresh process shows what a user's terminal gets
    run = run_process("scan", folder, "--case", tmp_path / "c.sqlite", "-q", timeout=300)
    assert run.returncode == 0, run.stderr
    assert "Warning:" not in run.stderr and "warnings.warn" not in run.stderr, run.stderr  # Python's format


_DECODE_AND_ANALYSE = """
import sys
sys.path.insert(0, sys.argv[1])
from app.evidence import analyse
from models.imaging import decode
data = open(sys.argv[2], "rb").read()
analyse(data, sys.argv[2])
decode(data)
"""


def test_pillow_warnings_do_not_print_from_decode_or_analyse(tmp_path):
    # The same without the CLI's logging set-up: training scripts and the GUI's workers decode too.
    path = images.jpeg_with_corrupt_exif(tmp_path / "corrupt-exif.jpg")
    run = run_python(_DECODE_AND_ANALYSE, REPO, path, timeout=120)  # a fresh process, as above
    assert run.returncode == 0 and run.stderr == "", run.stderr


# ---- HEIC (iPhone) -------------------------------------------------------------------------------------------
def test_heic_photo_is_read_with_its_exif(tiny_model, tmp_path):
    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = "Apple", "iPhone 15 Pro"
    path = tmp_path / "IMG_0001.HEIC"
    images.gradient(96, 64).save(path, "HEIF", quality=90, exif=exif.tobytes())
    data = path.read_bytes()
    assert data[4:12] == b"ftypheic"

    decoded = decode(data)
    assert (decoded.width, decoded.height, decoded.format) == (96, 64, "HEIF")
    camera = {f.kind: f for f in analyse(data, path)}["camera"]
    assert "Apple iPhone 15 Pro" in camera.message

    [result] = scan(tiny_model, [path], workers=1)
    assert result.ok and (result.width, result.height, result.format) == (96, 64, "HEIF")


def test_training_folders_include_iphone_and_avif_photos(tmp_path):
    from training.data import _images_under

    for name in ("a.HEIC", "b.heif", "c.avif", "d.jpg"):
        (tmp_path / name).write_bytes(b"")
    assert [p.name for p in _images_under(tmp_path)] == ["a.HEIC", "b.heif", "c.avif", "d.jpg"]


def test_a_png_signature_over_junk_is_not_walked_chunk_by_chunk():
    """Found in review: 700 MB of zeros behind a PNG signature took 11 GB as a list of 'chunks'."""
    from app.evidence import png_metadata_first

    junk = b"\x89PNG\r\n\x1a\n" + bytes(5_000_000)
    assert png_metadata_first(junk) is junk  # the first "chunk" has no letter type: nothing to move
