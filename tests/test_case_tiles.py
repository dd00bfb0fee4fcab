"""The case keeps every tile's score and place; the CSV names the strongest tile; old cases gain the table."""
import csv
import sqlite3
from dataclasses import replace

import pytest

from app.case.schema import MIGRATIONS, SCHEMA_VERSION, V1_SCHEMA
from app.case.store import Case
from app.case.csv_export import write_csv
from app.services.scanning import list_entries, run_scan
from models.engine import ScanEngine
from models.input_settings import set_model_input
from models.library import LoadedModel, ModelLibrary
from tests import images
from tests.conftest import make_model


@pytest.fixture
def tiled(home):
    """A simple_cnn whose card analyses pictures in 32-pixel tiles."""
    library = ModelLibrary()
    make_model(library, "cnn", "simple_cnn", num_logits=2, seed=5)
    set_model_input(library, "cnn", {"policy": "tiles", "aggregation": "max"})
    return library.load("cnn")


def scan(case: Case, model: LoadedModel, folder):
    engine = ScanEngine(model, device="cpu", batch_size=8, workers=2)
    results = []
    run_scan(case, engine, list_entries([folder], False), evidence=False,
             on_batch=lambda batch, _summary: results.extend(batch))
    return {r.path: r for r in results}


def test_every_tile_is_stored_with_its_place_and_the_row_names_the_strongest(tiled, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    images.gradient(96, 64, seed=1).save(folder / "a.png")  # 3 × 2 tiles
    images.gradient(40, 40, seed=2).save(folder / "b.png")  # 2 × 2, overlapping
    with Case(tmp_path / "case.sqlite") as case:
        scanned = scan(case, tiled, folder)
        rows = {row.path: row for row in case.rows("cnn")}
        for path, result in scanned.items():
            stored = case.tiles_for(rows[path].file_id, "cnn")
            assert stored == result.tiles and len(stored) in (6, 4)
            strongest = max(result.tiles, key=lambda t: t.p_fake)
            assert rows[path].strongest_tile == strongest
            assert rows[path].p_fake == pytest.approx(strongest.p_fake)  # the card's rule is max

        write_csv(case.rows("cnn"), tmp_path / "out.csv")
    with open(tmp_path / "out.csv", encoding="utf-8") as handle:
        line = {row["file_name"]: row for row in csv.DictReader(handle)}["a.png"]
    best = rows[str(folder / "a.png")].strongest_tile
    assert (line["strongest_tile_x"], line["strongest_tile_y"], line["strongest_tile_w"], line["strongest_tile_h"]) \
        == (str(best.x), str(best.y), "32", "32")
    assert float(line["strongest_tile_p_fake"]) == pytest.approx(best.p_fake, abs=1e-6)


def test_a_copy_reused_from_the_case_gets_the_tiles_of_its_original(tiled, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    images.gradient(64, 64, seed=3).save(folder / "a.png")
    with Case(tmp_path / "case.sqlite") as case:
        scan(case, tiled, folder)
        (folder / "copy.png").write_bytes((folder / "a.png").read_bytes())
        scanned = scan(case, tiled, folder)
        assert scanned[str(folder / "copy.png")].reused
        rows = {row.path: row for row in case.rows("cnn")}
        original, copy = (case.tiles_for(rows[str(folder / name)].file_id, "cnn") for name in ("a.png", "copy.png"))
        assert copy == original and len(copy) == 4


def test_changing_a_models_policy_rescores_instead_of_reusing(tiled, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    images.gradient(64, 64, seed=3).save(folder / "a.png")
    with Case(tmp_path / "case.sqlite") as case:
        assert len(next(iter(scan(case, tiled, folder).values())).tiles) == 4
        set_model_input(ModelLibrary(), "cnn", {"policy": "center_crop"})
        (again,) = scan(case, ModelLibrary().load("cnn"), folder).values()
        assert not again.reused and len(again.tiles) == 1  # scored anew under the new policy
        assert len(case.tiles_for(case.rows("cnn")[0].file_id, "cnn")) == 1


def test_a_version_2_case_gains_the_tiles_table_and_keeps_its_rows(tiled, tmp_path):
    path = tmp_path / "v2.sqlite"
    db = sqlite3.connect(path)
    db.executescript(V1_SCHEMA)
    db.execute("INSERT INTO meta VALUES ('schema_version', '1')")
    MIGRATIONS[1](db)
    db.execute("PRAGMA user_version = 2")
    db.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
    db.execute("INSERT INTO files (path, path_bytes, sha256, first_seen) VALUES ('/x.png', x'2f782e706e67', 'ab', 1)")
    db.execute("INSERT INTO results (file_id, sha256, model_id, weights_sha256, p_fake, label, scored_at) "
               "VALUES (1, 'ab', 'old', 'w', 0.25, 'real', 2.0)")
    db.commit()
    db.close()

    with Case(path, readonly=True) as snapshot:  # a report reads it upgraded in memory, unchanged on disk
        (row,) = snapshot.rows("old")
        assert (row.p_fake, row.strongest_tile) == (0.25, None)
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == 2
    with Case(path) as case:
        assert case.tiles_for(1, "old") == []
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 3
    assert {r[1] for r in db.execute("PRAGMA table_info(tiles)")} == {"result_id", "x", "y", "w", "h", "p_fake"}


def test_a_damaged_tile_is_one_line_naming_the_damage(tiled, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    images.gradient(64, 64).save(folder / "a.png")
    with Case(tmp_path / "case.sqlite") as case:
        scan(case, tiled, folder)
        case.db.execute("UPDATE tiles SET p_fake = 'high' WHERE rowid = 1")
        case.db.commit()
        from app.case.store import CaseError
        with pytest.raises(CaseError, match="damaged Forensight case: a tile of file 1 holds"):
            case.tiles_for(1, "cnn")


def test_tiles_are_stored_under_the_results_weights(tiled, tmp_path):
    """Two weights of one model id: each result keeps its own tiles."""
    folder = tmp_path / "photos"
    folder.mkdir()
    images.gradient(64, 64).save(folder / "a.png")
    other = LoadedModel(replace(tiled.card, weights_sha256="f" * 64), tiled.module)
    with Case(tmp_path / "case.sqlite") as case:
        scan(case, tiled, folder)
        scan(case, LoadedModel(replace(other.card, input=replace(other.card.input, policy="center_crop")),
                               other.module), folder)
        assert len(case.tiles_for(1, "cnn", tiled.card.weights_sha256)) == 4
        assert len(case.tiles_for(1, "cnn", "f" * 64)) == 1
        assert len(case.tiles_for(1, "cnn")) == 1  # the latest result
