"""The desktop app with several detectors: ticked in the model picker's list, scored in one pass on the scan
worker, a P(fake) column per model with their agreement, and a histogram per model."""
from collections import Counter
from pathlib import Path

import pytest

import pytestqt  # noqa: F401  a dev dependency: missing, the GUI tests must fail, not skip
from PySide6.QtCore import Qt

from app.case.store import Case
from app.case.csv_export import COLUMNS as CSV_COLUMNS
from app.ui.main_window import MainWindow
from app.ui.scan.results_model import COLUMNS, SORT_ROLE
from models.labels import AGREE, agreement
from models.library import ModelLibrary
from tests.multi_model_data import FILES, add_model, read_csv
from tests.test_gui import export_csv

SCAN_TIMEOUT_MS = 60_000


@pytest.fixture
def window(qtbot, home) -> MainWindow:
    library = ModelLibrary()
    add_model(library, "alpha", 0)
    add_model(library, "beta", 1, policy="resize_center_crop", resize=40)
    window = MainWindow()
    qtbot.addWidget(window)
    window.show()
    window.toolbar.model_picker.setCurrentIndex(window.toolbar.model_picker.findData("alpha"))
    return window


def tick(window: MainWindow, model_id: str, on: bool = True) -> None:
    items = [window.toolbar.model_choices.item(i) for i in range(window.toolbar.model_choices.rowCount())]
    item = next(item for item in items if item.data() == model_id)
    item.setCheckState(Qt.CheckState.Checked if on else Qt.CheckState.Unchecked)


def scan(qtbot, window: MainWindow, folder: Path) -> None:
    window.open_folder(folder)
    window.start_scan()
    assert window.is_scanning()
    qtbot.waitUntil(lambda: not window.is_scanning(), timeout=SCAN_TIMEOUT_MS)


def headers(window: MainWindow) -> list[str]:
    model = window.results.model
    return [model.headerData(c, Qt.Orientation.Horizontal) for c in range(model.columnCount())]


def column_texts(window: MainWindow, column: int) -> dict[str, str]:
    proxy = window.results.proxy
    return {Path(window.results.shown_rows()[r].path).name: proxy.index(r, column).data()
            for r in range(proxy.rowCount())}


def case_rows(window: MainWindow, model_id: str) -> dict:
    with Case(window.case.path, readonly=True) as case:
        return {Path(row.path).name: row for row in case.rows(model_id)}


def test_two_model_scan_shows_a_column_per_model_and_their_agreement(qtbot, window, folder):
    tick(window, "beta")
    assert window.picked_model_ids() == ["alpha", "beta"] and "1 model" in window.toolbar.also_button.text()
    scan(qtbot, window, folder)

    assert headers(window) == [*COLUMNS[:2], "P(fake) alpha", *COLUMNS[3:], "P(fake) beta", "Agreement"]
    assert window.results.model.rowCount() == FILES
    alpha, beta = case_rows(window, "alpha"), case_rows(window, "beta")
    assert len(alpha) == len(beta) == FILES and all(row.model_id == "beta" for row in beta.values())
    shown_beta = column_texts(window, len(COLUMNS))
    for name, row in beta.items():  # the worker's batches carried beta's rows too: no reload needed
        assert shown_beta[name] == ("" if row.p_fake is None else f"{row.p_fake:.3f}"), name
    agree = column_texts(window, len(COLUMNS) + 1)
    for name in alpha:
        verdict = agreement([alpha[name], beta[name]])
        assert agree[name] == {"": "", AGREE: "✓ agree"}.get(verdict, "✗ differ"), name
    assert agree["notes.jpg"] == ""

    proxy = window.results.proxy  # the extra columns sort by number, unscored last
    proxy.sort(len(COLUMNS), Qt.SortOrder.DescendingOrder)
    keys = [proxy.index(r, len(COLUMNS)).data(SORT_ROLE) for r in range(proxy.rowCount())]
    assert keys == sorted(keys, reverse=True) and keys[-1] == -1.0


def test_histogram_shows_the_chosen_models_scores(qtbot, window, folder):
    tick(window, "beta")
    scan(qtbot, window, folder)
    chooser = window.histogram.chooser
    assert [chooser.itemData(i) for i in range(chooser.count())] == ["alpha", "beta"] and chooser.isEnabled()
    for model_id in ("beta", "alpha"):
        chooser.setCurrentIndex(chooser.findData(model_id))
        want = Counter(row.label for row in case_rows(window, model_id).values() if row.label and not row.error)
        got = {name: sum(values) for name, values in window.histogram.view.counts().items()}
        assert got == dict(want) and window.histogram.view.total() == FILES - 1, model_id
    assert Counter(row.label for row in case_rows(window, "alpha").values()) != \
        Counter(row.label for row in case_rows(window, "beta").values())  # the choice is not cosmetic


def test_unticking_returns_to_one_column_and_exports_follow_the_table(qtbot, window, folder, tmp_path):
    tick(window, "beta")
    scan(qtbot, window, folder)
    both = tmp_path / "both.csv"
    export_csv(qtbot, window, both)
    header, rows = read_csv(both)
    assert {"p_fake[alpha]", "p_fake[beta]", "agreement"} <= set(header) and len(rows) == FILES

    tick(window, "beta", False)
    assert headers(window) == list(COLUMNS) and not window.histogram.chooser.isEnabled()
    one = tmp_path / "one.csv"
    export_csv(qtbot, window, one)
    assert read_csv(one)[0] == CSV_COLUMNS


def test_rescanning_with_two_models_reuses_each_models_scores(qtbot, window, folder):
    tick(window, "beta")
    scan(qtbot, window, folder)
    scan(qtbot, window, folder)
    summary = window.last_summary
    assert summary.tallies["alpha"].reused == summary.tallies["beta"].reused == FILES - 1
    assert window.results.model.rowCount() == FILES
