"""The case's read methods the desktop app relies on: a batch's rows by path, and one file across models; and
how the times read from it are written (models/formatting.py's rule)."""
import csv
from datetime import datetime, timedelta, timezone

import pytest

from app.case.csv_export import write_csv
from app.case.store import Case, CaseRow
from app.services.scanning import list_entries, run_scan
from models.engine import ScanEngine
from models.formatting import format_timestamp
from models.library import ModelLibrary
from tests import images
from tests.conftest import make_model


def test_rows_for_paths_match_rows_and_scores_for_file_cover_every_model(home, tmp_path):
    library = ModelLibrary()
    make_model(library, "first", seed=0)
    make_model(library, "second", seed=1)
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(5):
        images.gradient(30, 30, seed=i).save(folder / f"{i}.png")
    (folder / "broken.png").write_bytes(b"\x89PNG not really")
    entries = list_entries([folder], recursive=False)

    with Case(tmp_path / "case.sqlite") as case:
        for model_id in ("first", "second"):
            run_scan(case, ScanEngine(library.load(model_id), device="cpu", batch_size=2), entries)

        wanted = [str(folder / "3.png"), str(folder / "broken.png"), str(folder / "0.png")]
        picked = case.rows_for_paths("first", wanted + [str(folder / "absent.png")])
        everything = {row.path: row for row in case.rows("first")}
        assert picked == sorted((everything[p] for p in wanted), key=lambda row: row.file_id)
        assert case.rows_for_paths("first", []) == []

        file_id = everything[str(folder / "3.png")].file_id
        scores = case.scores_for_file(file_id)
        assert [s.model_id for s in scores] == ["second", "first"]  # newest first
        assert all(s.p_fake is not None and s.label and s.error is None for s in scores)
        assert scores[1].p_fake == everything[str(folder / "3.png")].p_fake
        assert scores[0].model_name == "test second"

        broken = case.scores_for_file(everything[str(folder / "broken.png")].file_id)
        assert len(broken) == 2 and all(s.p_fake is None and s.error for s in broken)


def test_every_timestamp_is_written_with_its_offset(tmp_path):
    """Seconds since the epoch read in UTC with +00:00, an aware datetime keeps its zone, a naive one is refused:
    the CSV's times then read the same in any country, and match the app's and the report's."""
    assert format_timestamp(0) == "1970-01-01T00:00:00+00:00" and format_timestamp(None) == ""
    kathmandu = timezone(timedelta(hours=5, minutes=45))
    assert format_timestamp(datetime(2024, 5, 1, 12, 0, 7, tzinfo=kathmandu)) == "2024-05-01T12:00:07+05:45"
    with pytest.raises(ValueError, match="no time zone"):
        format_timestamp(datetime(2024, 5, 1, 12, 0))

    row = CaseRow(1, str(tmp_path / "a.png"), "ab" * 32, 10, 4, 4, "PNG", 1714564800.0, "m", "w" * 64, 0.1,
                  "real", 0.5, None, 1714564805.9)
    out = tmp_path / "out.csv"
    write_csv([row], out)
    with open(out, encoding="utf-8", newline="") as handle:
        written = next(csv.DictReader(handle))
    assert written["modified_utc"] == "2024-05-01T12:00:00+00:00"
    assert written["scored_utc"] == "2024-05-01T12:00:05+00:00"
