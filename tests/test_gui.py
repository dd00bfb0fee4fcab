"""The desktop app as a user drives it: real widgets (offscreen), a real case file, real (tiny) detectors."""
from pathlib import Path

import pytest
import torch

import pytestqt  # noqa: E402,F401  a dev dependency: missing, the GUI tests must fail, not skip
from PySide6.QtCore import QMimeData, QPoint, Qt, QUrl  # noqa: E402
from PySide6.QtGui import QDropEvent, QKeySequence  # noqa: E402
from PySide6.QtWidgets import QMessageBox  # noqa: E402

from app.case.store import Case  # noqa: E402
from app.ui.main_window import MainWindow  # noqa: E402
from app.ui.scan.results_model import SCORE, THUMBNAIL, verdict  # noqa: E402
from models.card import ModelCard, default_input_spec  # noqa: E402
from models.labels import UNREADABLE  # noqa: E402
from models.library import ModelLibrary  # noqa: E402
from models.registry import build_model  # noqa: E402
from tests import images  # noqa: E402
from tests.commands import run_python  # noqa: E402
from tests.conftest import make_model  # noqa: E402

SCAN_TIMEOUT_MS = 60_000


def spread_model(library: ModelLibrary, model_id: str = "spread"):
    """A simple CNN whose head is scaled up so that P(fake) spreads over 0..1: the folder from
    good_and_bad_folder then gets real, AI-generated and inconclusive rows (random weights, fixed seed)."""
    torch.manual_seed(0)
    module = build_model("simple_cnn", 1)
    with torch.no_grad():
        module.classifier[4].weight.mul_(300)
    card = ModelCard(id=model_id, name="Spread test model", architecture="simple_cnn", num_logits=1,
                     input=default_input_spec("simple_cnn"))
    return library.add(card, module.state_dict())


def open_window(qtbot) -> MainWindow:
    window = MainWindow()
    qtbot.addWidget(window)  # closed (closeEvent: workers stopped, settings saved) after the test
    window.show()
    return window


def scan(qtbot, window: MainWindow, folder: Path, batch_size: int = 16) -> None:
    window.batch_size = batch_size
    window.open_folder(folder)
    window.start_scan()
    assert window.is_scanning()
    qtbot.waitUntil(lambda: not window.is_scanning(), timeout=SCAN_TIMEOUT_MS)


@pytest.fixture
def scanned(qtbot, home, tmp_path):
    """A window that has scanned a folder of every awkward file kind with the spread model."""
    spread_model(ModelLibrary())
    expected = images.good_and_bad_folder(tmp_path / "photos")
    window = open_window(qtbot)
    scan(qtbot, window, tmp_path / "photos")
    return window, expected


def shown_by_name(window: MainWindow) -> dict:
    return {Path(row.path).name: row for row in window.results.shown_rows()}


def test_scan_shows_one_row_per_file_with_reasons_and_histogram(scanned):
    window, expected = scanned
    rows = shown_by_name(window)
    assert sorted(rows) == sorted(expected)
    for name, reason in expected.items():
        if reason is None:
            assert rows[name].p_fake is not None and rows[name].label, name
        else:
            assert verdict(rows[name]) == UNREADABLE and reason in rows[name].error.lower(), name
    scored = [row for row in rows.values() if row.p_fake is not None]
    assert window.histogram.view.total() == len(scored) == 13
    by_label = {name: sum(values) for name, values in window.histogram.view.counts().items()}
    assert by_label == {label: sum(1 for r in scored if r.label == label) for label in by_label}
    assert len(by_label) == 3, "the spread model should give real, AI-generated and inconclusive rows"
    assert "Scanned 18 of 18 files" in window.statusBar().currentMessage()
    with Case(window.case.path) as case:  # what the table shows is what the case holds
        assert len(case.rows("spread")) == len(rows)


def test_histogram_splits_by_true_class_when_folders_name_it(qtbot, home, tmp_path):
    spread_model(ModelLibrary())
    for cls, count in (("0_real", 3), ("1_fake", 2)):
        (tmp_path / "set" / cls).mkdir(parents=True)
        for i in range(count):
            images.gradient(40, 40, seed=i + 10 * count).save(tmp_path / "set" / cls / f"{i}.png")
    window = open_window(qtbot)
    scan(qtbot, window, tmp_path / "set")
    counts = {name: sum(values) for name, values in window.histogram.view.counts().items()}
    assert counts == {"real (folder name)": 3, "fake (folder name)": 2}


def test_selecting_a_row_shows_the_picture_and_a_fitting_overlay(scanned, qtbot):
    window, _ = scanned
    table = window.results.table
    names = [Path(r.path).name for r in window.results.shown_rows()]
    window.results.select_row(names.index("plain.jpg"))
    detail = window.detail
    qtbot.waitUntil(lambda: not detail.viewer.image_pixmap().isNull(), timeout=10_000)
    assert detail.viewer.image_pixmap().size().toTuple() == (64, 48)
    assert "SHA-256" in detail.facts.toPlainText() and "Spread test model" in detail.facts.toPlainText()

    with qtbot.waitSignal(detail.overlay_ready, timeout=30_000):
        detail.overlay_box.setChecked(True)
    assert detail.viewer.overlay_pixmap().size() == detail.viewer.image_pixmap().size()
    assert detail.viewer.overlay_shown()
    detail.opacity_slider.setValue(80)
    assert detail.viewer.overlay_opacity() == pytest.approx(0.8)
    detail.side_by_side_box.setChecked(True)
    assert detail.plain_viewer.isVisibleTo(detail) and detail.plain_viewer.overlay_pixmap().isNull()

    # EXIF orientation is applied to the picture and the metadata is listed
    window.results.select_row(names.index("rotated exif.jpg"))
    qtbot.waitUntil(lambda: detail.viewer.image_pixmap().size().toTuple() == (40, 80), timeout=10_000)
    assert "Orientation" in detail.facts.toPlainText()
    window.results.select_row(names.index("plain.jpg"))

    # the keyboard moves through the table and the detail view follows
    table.setFocus()
    qtbot.keyClick(table, Qt.Key.Key_Down)
    following = window.results.shown_rows()[names.index("plain.jpg") + 1]
    assert detail.current_row().path == following.path
    qtbot.waitUntil(lambda: not detail.viewer.image_pixmap().isNull()
                    or detail.viewer.message().startswith("No picture"), timeout=10_000)


def test_thumbnails_arrive_for_readable_files(scanned, qtbot):
    window, _ = scanned
    model = window.results.model
    first_good = next(i for i, r in enumerate(model.rows()) if not r.error)
    index = model.index(first_good, THUMBNAIL)
    model.data(index, Qt.ItemDataRole.DecorationRole)  # asks for it, as painting the row would
    qtbot.waitUntil(lambda: model.data(index, Qt.ItemDataRole.DecorationRole) is not None, timeout=10_000)
    assert max(model.data(index, Qt.ItemDataRole.DecorationRole).size().toTuple()) <= 32


def test_sorting_and_filters(scanned):
    window, expected = scanned
    panel = window.results
    panel.table.sortByColumn(SCORE, Qt.SortOrder.DescendingOrder)
    scores = [r.p_fake for r in panel.shown_rows()]
    top = max(s for s in scores if s is not None)
    assert scores[0] == top
    assert [s for s in scores if s is not None] == sorted((s for s in scores if s is not None), reverse=True)

    for word in ("real", "AI-generated", "inconclusive"):
        panel.verdict_filter.setCurrentIndex(panel.verdict_filter.findData(word))
        shown = panel.shown_rows()
        assert shown and all(r.label == word for r in shown)
        assert len(shown) == sum(1 for r in panel.model.rows() if r.label == word)
    panel.verdict_filter.setCurrentIndex(0)

    panel.errors_only.setChecked(True)
    assert sorted(Path(r.path).name for r in panel.shown_rows()) == sorted(n for n, e in expected.items() if e)
    panel.errors_only.setChecked(False)

    panel.score_low.setValue(0.7)
    assert panel.shown_rows() and all(r.p_fake >= 0.7 for r in panel.shown_rows())
    panel.score_low.setValue(0.0)

    panel.name_filter.setText("IMAGE.")
    assert sorted(Path(r.path).name for r in panel.shown_rows()) == ["image.bmp", "image.webp"]
    panel.name_filter.clear()
    assert len(panel.shown_rows()) == len(expected)


def test_stop_mid_scan_keeps_what_was_scored(qtbot, home, tmp_path):
    make_model(ModelLibrary(), "resnet", "resnet18", 2)
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(150):
        images.gradient(48, 48, seed=i).save(folder / f"{i:03d}.png")
    window = open_window(qtbot)
    window.batch_size = 2
    window.open_folder(folder)
    assert QKeySequence("Esc") in window.stop_action.shortcuts()
    window.start_scan()
    qtbot.waitUntil(lambda: window.results.model.rowCount() >= 2, timeout=SCAN_TIMEOUT_MS)
    assert window.scans.progress.isVisible()
    window.stop_action.trigger()  # what Esc / Ctrl+. do
    qtbot.waitUntil(lambda: not window.is_scanning(), timeout=SCAN_TIMEOUT_MS)

    shown = window.results.model.rowCount()
    with Case(window.case.path) as case:
        assert case.count_results("resnet") == len(case.rows("resnet")) == shown
    assert 2 <= shown < 150
    assert window.last_summary.cancelled
    assert window.statusBar().currentMessage().startswith(f"Stopped after {shown} of 150")
    assert window.histogram.view.total() == shown

    # scanning again resumes; closing the window mid-scan stops it at once and keeps what was scored
    case_path = window.case.path
    window.start_scan()
    qtbot.waitUntil(lambda: window.results.model.rowCount() > shown, timeout=SCAN_TIMEOUT_MS)
    window.close()
    assert not window.is_scanning()
    with Case(case_path) as case:
        assert shown < case.count_results("resnet") < 150


def test_closing_and_reopening_shows_the_same_rows(scanned, qtbot, tmp_path):
    window, _ = scanned
    before = [(r.path, r.p_fake, r.label, r.error) for r in window.results.model.rows()]
    case_path = window.case.path
    window.new_case(tmp_path / "empty.sqlite")
    assert window.results.model.rowCount() == 0
    window.new_case(case_path)  # an existing case is never overwritten
    assert window.findChild(QMessageBox, "errorBox") is not None and case_path.stat().st_size > 0
    window.open_case(case_path)
    assert [(r.path, r.p_fake, r.label, r.error) for r in window.results.model.rows()] == before

    window.close()  # a new window reopens the last case and remembers the model and thresholds
    again = open_window(qtbot)
    assert again.case.path == case_path
    assert again.picked_model_id() == "spread"
    assert [(r.path, r.p_fake, r.label, r.error) for r in again.results.model.rows()] == before


def export_csv(qtbot, window: MainWindow, path: Path) -> None:
    """File > Export CSV, written on a worker: done when the status bar says so."""
    window.export_csv(path)
    qtbot.waitUntil(lambda: f"rows to {path}" in window.statusBar().currentMessage(), timeout=SCAN_TIMEOUT_MS)


def test_export_csv_writes_every_row(scanned, qtbot, tmp_path):
    window, expected = scanned
    out = tmp_path / "export.csv"
    export_csv(qtbot, window, out)
    lines = out.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 1 + len(expected)
    assert "'=HYPERLINK(evil).png" in out.read_text(encoding="utf-8")  # the CLI's safe exporter


def test_export_report_writes_the_pdf_and_its_hash_off_the_gui_thread(scanned, qtbot, tmp_path):
    import hashlib

    window, _ = scanned
    out = tmp_path / "report.pdf"
    window.export_report(out, title="GUI report", examiner="Desk Examiner")
    qtbot.waitUntil(lambda: not window.reports.busy(), timeout=SCAN_TIMEOUT_MS)
    digest = hashlib.sha256(out.read_bytes()).hexdigest()
    assert out.read_bytes().startswith(b"%PDF")
    assert (tmp_path / "report.pdf.sha256").read_text() == f"{digest}  report.pdf\n"
    assert digest in window.statusBar().currentMessage()


def test_report_action_needs_a_case_with_results_and_no_scan_running(qtbot, home, tmp_path):
    spread_model(ModelLibrary())
    images.good_and_bad_folder(tmp_path / "photos")
    window = open_window(qtbot)
    assert not window.report_action.isEnabled()  # a fresh, empty case: nothing to report
    scan(qtbot, window, tmp_path / "photos")
    assert window.report_action.isEnabled()

    scanned_case = window.case.path
    window.new_case(tmp_path / "empty.sqlite")
    assert not window.report_action.isEnabled()
    window.open_case(scanned_case)
    assert window.report_action.isEnabled()

    window.start_scan()  # a case being written to is not reported on
    assert not window.report_action.isEnabled()
    qtbot.waitUntil(lambda: not window.is_scanning(), timeout=SCAN_TIMEOUT_MS)
    assert window.report_action.isEnabled()


def test_report_progress_shows_in_the_status_bar_while_the_action_waits(scanned, qtbot, tmp_path):
    from PySide6.QtCore import QThread

    from app.report.data import is_flagged

    window, expected = scanned
    bar, label = window.reports.bar, window.reports.label
    total = len(expected) + sum(1 for row in window.results.model.rows() if is_flagged(row))
    seen = []  # what the user saw after each progress step (this slot runs after the window's own)

    def record(done: int, of: int) -> None:
        seen.append(dict(done=done, total=of, gui_thread=QThread.currentThread() is window.thread(),
                         visible=bar.isVisible(), value=bar.value(), maximum=bar.maximum(), text=label.text(),
                         action=window.report_action.isEnabled()))

    window.reports.progressed.connect(record)
    values = []
    bar.valueChanged.connect(values.append)
    out = tmp_path / "progress.pdf"
    window.export_report(out, title="Progress", examiner="Desk Examiner")
    assert bar.isVisible() and label.isVisible() and not window.report_action.isEnabled()
    qtbot.waitUntil(window.report_action.isEnabled, timeout=SCAN_TIMEOUT_MS)

    assert out.read_bytes().startswith(b"%PDF") and out.name in window.statusBar().currentMessage()
    assert not bar.isVisible() and not label.isVisible()
    assert [step["done"] for step in seen] == list(range(1, total + 1))
    assert all(step["total"] == total and step["gui_thread"] and step["visible"] and not step["action"]
               for step in seen)
    assert max(values) == total  # the bar went all the way before it turned busy
    first = seen[0]
    assert (first["value"], first["maximum"], first["text"]) == (1, total, f"Report: 1 of {total} files")
    assert (seen[-1]["maximum"], seen[-1]["text"]) == (0, "Laying out pages…")  # busy while ReportLab works

    # a report that cannot be written: the bar goes, the reason shows, the action comes back
    blocker = tmp_path / "not a folder"
    blocker.write_text("a file where the report's folder should be")
    window.export_report(blocker / "report.pdf", title="Fails", examiner="Desk Examiner")
    assert bar.isVisible() and not window.report_action.isEnabled()
    qtbot.waitUntil(window.report_action.isEnabled, timeout=SCAN_TIMEOUT_MS)
    assert not bar.isVisible()
    box = window.findChild(QMessageBox, "errorBox")
    assert box is not None and "report.pdf" in box.text()


def test_open_case_refuses_a_file_that_is_not_a_case(qtbot, home, tmp_path):
    window = open_window(qtbot)
    current = window.case.path
    bogus = tmp_path / "bogus.sqlite"
    bogus.write_text("not a database " * 100)
    window.open_case(bogus)
    qtbot.waitUntil(lambda: window.findChild(QMessageBox, "errorBox") is not None)
    assert window.case.path == current


def test_dropping_a_folder_scans_it(qtbot, home, tmp_path):
    make_model(ModelLibrary())
    folder = tmp_path / "dropped"
    folder.mkdir()
    for i in range(3):
        images.gradient(30, 30, seed=i).save(folder / f"{i}.png")
    window = open_window(qtbot)
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(folder))])
    event = QDropEvent(QPoint(10, 10), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                       Qt.KeyboardModifier.NoModifier)
    window.dropEvent(event)
    qtbot.waitUntil(lambda: not window.is_scanning(), timeout=SCAN_TIMEOUT_MS)
    assert window.results.model.rowCount() == 3


def test_model_manager_lists_models_imports_and_refuses_a_broken_file(qtbot, home, tmp_path):
    library = ModelLibrary()
    make_model(library, "alpha")
    make_model(library, "beta", seed=1)
    window = open_window(qtbot)
    dialog = window.manage_models()
    assert dialog.model_ids() == ["alpha", "beta"]
    assert "weights.safetensors" in dialog.card_view.toPlainText()

    before = sorted(p.name for p in (home / "models").iterdir())
    broken = tmp_path / "detector.pth"
    broken.write_text("this is not a checkpoint")
    with qtbot.waitSignal(dialog.import_finished, timeout=30_000) as finished:
        dialog.import_model(broken)
    assert finished.args == [False]
    box = dialog.findChild(QMessageBox, "errorBox")
    assert box is not None and "detector.pth" in box.text() and "unchanged" in box.informativeText()
    assert dialog.model_ids() == ["alpha", "beta"]
    assert sorted(p.name for p in (home / "models").iterdir()) == before
    box.close()

    from safetensors.torch import save_file

    torch.manual_seed(3)
    save_file(build_model("simple_cnn", 1).state_dict(), str(tmp_path / "gamma.safetensors"))
    with qtbot.waitSignal(dialog.import_finished, timeout=30_000) as finished:
        dialog.import_model(tmp_path / "gamma.safetensors")
    assert finished.args == [True]
    assert dialog.model_ids() == ["alpha", "beta", "gamma"]
    assert "gamma" in [window.toolbar.model_picker.itemData(i) for i in range(window.toolbar.model_picker.count())]


def test_forensight_without_arguments_opens_the_window(monkeypatch):
    import app.ui
    from app.cli.main import main

    opened = []
    monkeypatch.setattr(app.ui, "run_app", lambda argv: opened.append(argv) or 0)
    assert main([]) == 0 and opened == [[]]


def test_command_line_subcommands_never_import_qt(home):
    code = ("import sys; from app.cli.main import main; main(['models', 'list']); "
            "print('QT' if any(m.startswith('PySide6') for m in sys.modules) else 'NO-QT')")
    # a fresh interpreter: this test run has loaded Qt already, a new process shows what the command loads
    run = run_python(code, timeout=120)
    assert run.stdout.strip().endswith("NO-QT"), run.stdout + run.stderr


def test_detail_view_lists_the_files_own_evidence(qtbot, home, tmp_path):
    from PIL.PngImagePlugin import PngInfo

    spread_model(ModelLibrary())
    folder = tmp_path / "meta"
    folder.mkdir()
    info = PngInfo()
    info.add_text("parameters", "a cat astronaut\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1234, Size: 64x64")
    images.gradient(64, 64).save(folder / "generated.png", pnginfo=info)
    window = open_window(qtbot)
    scan(qtbot, window, folder)
    window.results.select_row(0)
    facts = window.detail.facts
    qtbot.waitUntil(lambda: "Evidence in the file" in facts.toPlainText(), timeout=10_000)
    text = facts.toPlainText()
    assert "strong — Generation parameters" in text and "'parameters' text chunk" in text
    assert "weak — No camera make or model" in text


def test_the_app_never_makes_its_case_or_exports_among_the_evidence(qtbot, tiny_model, tmp_path):
    evidence = tmp_path / "ev"
    evidence.mkdir()
    images.gradient(40, 40).save(evidence / "a.png")
    window = open_window(qtbot)
    window.open_folder(evidence)
    window.new_case(evidence / "case.sqlite")  # File > New case, saved into the folder being examined
    box = window.findChild(QMessageBox, "errorBox")
    assert box is not None and "folder being examined" in box.informativeText()
    assert sorted(p.name for p in evidence.iterdir()) == ["a.png"]  # no case, no -wal, no -shm
    box.close()
    scan(qtbot, window, evidence)
    window.export_csv(evidence / "results.csv")  # Export CSV into the evidence folder
    qtbot.waitUntil(lambda: window.findChild(QMessageBox, "errorBox") is not None)
    assert sorted(p.name for p in evidence.iterdir()) == ["a.png"]
