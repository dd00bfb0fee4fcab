"""Several detectors in one pass: each file read, hashed and decoded once, scored by every model under its own
input policy, recorded per model in the case, reused per model, and reported side by side (CSV, PDF)."""
import re
from pathlib import Path

import pytest

import app.services.scanning
from app.case.store import Case
from app.case.csv_export import COLUMNS
from app.report import build_report
from app.services.scanning import list_entries, run_scan
from models.engine import MultiScanEngine, ScanEngine
from models.library import ModelLibrary
from tests.commands import run_in_process
from tests.needs import pdf_text
from tests.multi_model_data import FILES, add_model, read_csv


def engines(library: ModelLibrary, *ids: str) -> list[ScanEngine]:
    return [ScanEngine(library.load(i), device="cpu", batch_size=3, workers=2) for i in ids]


def scan_case(path: Path, folder: Path, engine) -> object:
    with Case(path) as case:
        return run_scan(case, engine, list_entries([folder], False), roots=[folder])


def scores(path: Path, model_id: str) -> dict[str, float | None]:
    with Case(path, readonly=True) as case:
        return {Path(row.path).name: row.p_fake for row in case.rows(model_id)}


def test_each_file_is_decoded_once_and_scored_as_each_model_alone_would(two_models, folder, tmp_path, decodes):
    summary = scan_case(tmp_path / "both.sqlite", folder, MultiScanEngine(engines(two_models, "alpha", "beta")))
    assert len(decodes) == FILES  # one decode per file for two models (the broken file fails in its decode)
    assert summary.done == FILES and list(summary.tallies) == ["alpha", "beta"]

    decodes.clear()
    for model_id in ("alpha", "beta"):
        scan_case(tmp_path / f"{model_id}.sqlite", folder, engines(two_models, model_id)[0])
    assert len(decodes) == 2 * FILES  # alone, each model decodes every file itself

    for model_id in ("alpha", "beta"):
        together, alone = scores(tmp_path / "both.sqlite", model_id), scores(tmp_path / f"{model_id}.sqlite", model_id)
        assert together.keys() == alone.keys() and together["notes.jpg"] is None
        for name, p in alone.items():
            assert together[name] == pytest.approx(p, abs=1e-6) if p is not None else together[name] is None, name
    assert scores(tmp_path / "both.sqlite", "alpha") != scores(tmp_path / "both.sqlite", "beta")


def test_case_holds_each_models_rows_and_reuses_scores_per_model(two_models, folder, tmp_path, decodes,
                                                                   monkeypatch):
    analysed = []
    real_analyse = app.services.scanning.analyse
    monkeypatch.setattr(app.services.scanning, "analyse", lambda data, path: analysed.append(path) or real_analyse(data, path))
    case_path = tmp_path / "case.sqlite"
    scan_case(case_path, folder, MultiScanEngine(engines(two_models, "alpha", "beta")))
    assert sorted(analysed) == sorted(folder.iterdir())  # each file's metadata checked once, not once per model
    with Case(case_path, readonly=True) as case:
        assert case.count_results("alpha") == case.count_results("beta") == FILES
        assert {model.model_id for model in case.models()} == {"alpha", "beta"}
        assert case.evidence_for(case.rows("beta")[0].file_id)  # the findings are the file's, whichever model

    decodes.clear()
    again = scan_case(case_path, folder, MultiScanEngine(engines(two_models, "alpha", "beta")))
    assert decodes == [len(b"not an image\n")]  # only the unreadable file is retried
    assert again.tallies["alpha"].reused == again.tallies["beta"].reused == FILES - 1

    add_model(two_models, "gamma", 2, policy="tiles", max_tiles=4)  # a new model joins: only it needs pixels
    decodes.clear()
    third = scan_case(case_path, folder, MultiScanEngine(engines(two_models, "alpha", "beta", "gamma")))
    assert len(decodes) == FILES
    assert (third.tallies["alpha"].reused, third.tallies["gamma"].reused) == (FILES - 1, 0)
    with Case(case_path, readonly=True) as case:
        assert case.count_results("gamma") == FILES
        assert case.count_results("alpha") == FILES  # reused rows are not duplicated


def test_cli_scans_with_two_models_into_one_csv_with_agreement(two_models, folder, tmp_path, capsys):
    out = tmp_path / "out" / "scan.csv"
    out.parent.mkdir()
    code, stdout, stderr = run_in_process(capsys, "scan", folder, "--model", "alpha", "--model", "beta",
                                          "--csv", out, "-q")
    assert code == 0, stderr
    assert "  alpha:" in stdout and "  beta:" in stdout and "Agreement:" in stdout
    header, rows = read_csv(out)
    for model_id in ("alpha", "beta"):
        assert {f"p_fake[{model_id}]", f"label[{model_id}]", f"error[{model_id}]"} <= set(header)
    assert "agreement" in header and header[:3] == ["path", "file_name", "sha256"]
    assert len(rows) == FILES

    case_path = out.with_suffix(".case.sqlite")
    for model_id in ("alpha", "beta"):
        stored = scores(case_path, model_id)
        for row in rows:
            name = Path(row["path"].lstrip("'")).name
            want = stored[name]
            assert (row[f"p_fake[{model_id}]"] == "") if want is None else \
                float(row[f"p_fake[{model_id}]"]) == pytest.approx(want, abs=1e-6)
    by_name = {row["file_name"]: row for row in rows}
    assert "'=HYPERLINK(evil).png" in by_name  # spreadsheet-safe, as the one-model export
    broken = by_name["notes.jpg"]
    assert broken["agreement"] == "" and "not a recognised image" in broken["error[beta]"]
    for row in rows:
        if row["file_name"] != "notes.jpg":
            same = row["label[alpha]"] == row["label[beta]"]
            assert row["agreement"] == ("agree" if same else "differ")
    agreed = sum(row["agreement"] == "agree" for row in rows)
    assert f"Agreement: {agreed} of {FILES - 1} files" in stdout


def test_one_model_keeps_the_old_csv_and_summary(two_models, folder, tmp_path, capsys):
    one, default = tmp_path / "one.csv", tmp_path / "default.csv"
    code, stdout, _ = run_in_process(capsys, "scan", folder, "--model", "alpha", "--csv", one, "-q")
    assert code == 0
    two_models.set_default("alpha")
    assert run_in_process(capsys, "scan", folder, "--csv", default, "-q")[0] == 0
    assert read_csv(one)[0] == read_csv(default)[0] == COLUMNS
    assert "Agreement" not in stdout and "  alpha:" not in stdout
    assert any(line.startswith("  unreadable") for line in stdout.splitlines())


def test_the_same_model_twice_is_scanned_once(two_models, folder, tmp_path, capsys):
    out = tmp_path / "twice.csv"
    assert run_in_process(capsys, "scan", folder, "--model", "alpha", "--model", "alpha", "--csv", out, "-q")[0] == 0
    assert read_csv(out)[0] == COLUMNS


def test_pdf_report_lists_every_model_and_each_models_score_per_file(two_models, folder, tmp_path, poppler):
    case_path = tmp_path / "case.sqlite"
    scan_case(case_path, folder, MultiScanEngine(engines(two_models, "alpha", "beta")))
    info = build_report(case_path, tmp_path / "report.pdf", device="cpu")
    text = pdf_text(info.pdf_path, "-layout")
    assert re.search(r"Results of model\s+alpha\n", text)  # the first model given is the one reported
    for model_id in ("alpha", "beta"):
        assert f"Model {model_id} ({model_id})" in text  # its card facts in the method section
        assert f"nothing ({model_id})" in text and f"Limits of {model_id}." in text
    with Case(case_path, readonly=True) as case:
        row = next(r for r in case.rows("beta") if Path(r.path).name == "p1.png")
    assert f"beta {row.p_fake:.3f}" in text  # each model's score in the file table
    with Case(case_path, readonly=True) as case:  # files both models labelled, and those they labelled alike
        labels = [{r.file_id: r.label for r in case.rows(m) if r.label and not r.error} for m in ("alpha", "beta")]
    both = labels[0].keys() & labels[1].keys()
    agreed = sum(labels[0][f] == labels[1][f] for f in both)
    assert both and (text.count("Models agree"), text.count("Models differ")) == (agreed, len(both) - agreed)
    assert (f"{agreed} of {len(both)} files labelled by all 2 models get the same label from each; "
            f"{len(both) - agreed} differ") in " ".join(text.split())
