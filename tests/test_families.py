"""The family mechanism: the catalogue, recognising a published file by its SHA-256, name or contents, the
one-line refusal of a file no family takes, and `forensight models catalogue`."""
import json

import pytest
import torch

from models import families
from models.card import sha256_file
from models.checkpoints import CheckpointError
from models.library import ModelLibrary
from models.registry import ARCHITECTURES, build_model
from tests.commands import run_cli

FIELDS = ("id", "name", "status", "paper", "authors", "venue", "year", "code", "licence", "architecture",
          "container", "input", "preprocessing_source", "training_data", "validated_on", "weaknesses", "files")


def _forensight(home, *args):
    return run_cli(*args, home=home)  # in-process, as typed (tests/commands.py)


def test_catalogue_has_every_family_with_its_facts():
    entries = families.catalogue()
    ids = [e["id"] for e in entries]
    assert len(ids) == len(set(ids))
    assert set(families.family_ids()) <= set(ids), "every importable family is in the catalogue"
    assert {"univfd", "b-free", "community-forensics", "probe"} <= set(ids)  # listed, import still to come
    for entry in entries:
        assert set(FIELDS) <= set(entry), entry["id"]
        assert entry["status"] in ("importable", "planned", "trainable")  # trainable: a probe, fitted not imported
        assert (entry["status"] == "importable") == (entry["id"] in families.family_ids()), entry["id"]
        for item in entry["files"]:
            assert {"file", "variant", "download", "sha256", "trained_on", "headline"} <= set(item)
            assert all(len(d) == 64 and int(d, 16) >= 0 for d in item["sha256"])
    for family in families.state_families():  # what a published file is recognised by
        entry = families.catalogue_entry(family.id)
        assert entry["paper"] and entry["licence"] and entry["files"] and entry["preprocessing_source"]
        assert family.architecture in ARCHITECTURES


def test_a_file_no_family_takes_is_refused_in_one_line_saying_what_it_holds(home, tmp_path):
    torch.save({"net_g": {"conv_first.weight": torch.zeros(4, 3, 3, 3)}, "epoch": 3}, tmp_path / "esrgan.pth")
    run = _forensight(home, "models", "import", tmp_path / "esrgan.pth")
    assert run.returncode == 2 and len(run.stderr.strip().splitlines()) == 1, run.stderr
    line = run.stderr
    assert "esrgan.pth holds no state dict of tensors: top-level keys 'net_g', 'epoch'" in line
    assert "first tensors net_g.conv_first.weight (4, 3, 3, 3)" in line
    assert "known families: cnndetection, npr, corvi2023, gragnaniello2021, " in line
    assert "b-free, community-forensics, community-forensics-224, huggingface, onnx" in line
    torch.save({"encoder.weight": torch.zeros(8, 3), "decoder.weight": torch.zeros(1, 8)}, tmp_path / "odd.pth")
    with pytest.raises(CheckpointError, match=r"odd.pth fits no known detector: it holds top-level keys "
                                              r"'encoder.weight', 'decoder.weight'; first tensors encoder.weight "
                                              r"\(8, 3\), decoder.weight \(1, 8\); known families: cnndetection"):
        ModelLibrary().import_path(tmp_path / "odd.pth")
    assert ModelLibrary().entries() == []


def test_a_partial_checkpoint_names_what_is_missing(home, tmp_path):
    state = build_model("npr_resnet50", 1).state_dict()
    for key in [k for k in state if k.startswith("layer2.3.")]:
        del state[key]
    torch.save(state, tmp_path / "NPR.pth")
    with pytest.raises(CheckpointError, match=r"looks like a npr checkpoint but does not fit it: 18 tensor\(s\) "
                                              r"missing \(e.g. layer2.3.conv1.weight, layer2.3.bn1.weight"):
        ModelLibrary().import_path(tmp_path / "NPR.pth")


def test_identical_tensors_are_told_apart_by_name_sha256_or_family(home, tmp_path, monkeypatch):
    state = build_model("resnet50", 1).state_dict()
    assert families.ambiguous_families(state) == ["cnndetection", "corvi2023", "gragnaniello2021"]
    torch.save({"model": state}, tmp_path / "renamed.pth")
    plain = ModelLibrary().import_path(tmp_path / "renamed.pth").card  # no hint: a plain ResNet-50, and a note
    assert (plain.family, plain.architecture) == ("", "resnet50")
    assert "--family cnndetection" in plain.limitations
    forced = families.identify(state, tmp_path / "renamed.pth", "0" * 64, family="gragnaniello2021")
    assert (forced.family.id, forced.family.architecture, forced.how) == ("gragnaniello2021", "resnet50_nodown",
                                                                         "--family")
    by_name = families.identify(state, tmp_path / "Grag2021_progan" / "model_epoch_best.pth", "0" * 64)
    assert (by_name.family.id, by_name.how, by_name.known.file["variant"]) == ("corvi2023", "file name",
                                                                              "Grag2021_progan")
    with pytest.raises(CheckpointError, match="this file is not a npr checkpoint"):
        ModelLibrary().import_path(tmp_path / "renamed.pth", family="npr")
    with pytest.raises(CheckpointError, match="unknown family 'wang2020'; known: cnndetection"):
        ModelLibrary().import_path(tmp_path / "renamed.pth", family="wang2020")
    # a published file whose SHA-256 the catalogue lists gets its card whatever its name
    digest = sha256_file(tmp_path / "renamed.pth")
    catalogue = json.loads(families.catalogue_path().read_text())
    entry = next(e for e in catalogue["families"] if e["id"] == "cnndetection")
    entry["files"][1]["sha256"] = [digest]
    (tmp_path / "catalogue.json").write_text(json.dumps(catalogue))
    monkeypatch.setenv("FORENSIGHT_CATALOGUE", str(tmp_path / "catalogue.json"))
    known = ModelLibrary().import_path(tmp_path / "renamed.pth", model_id="by-hash").card
    assert (known.family, known.provenance["recognised_by"]) == ("cnndetection", "sha256")
    assert "Blur+JPEG(0.1)" in known.name and known.provenance["published_file"] == "blur_jpg_prob0.1.pth"


def test_models_catalogue_lists_families_and_what_is_installed(home, tmp_path, capsys):
    from app.cli.main import main

    torch.save(build_model("npr_resnet50", 1).state_dict(), tmp_path / "NPR.pth")
    ModelLibrary().import_path(tmp_path / "NPR.pth")
    assert main(["models", "catalogue"]) == 0
    out = capsys.readouterr().out
    assert "npr                  NPR (Tan et al. 2024)  [importable; npr-4-class-progan]" in out
    assert "cnndetection         CNNDetection (Wang et al. 2020)  [importable; not installed]" in out
    assert "file blur_jpg_prob0.5.pth: https://www.dropbox.com/" in out
    assert "univfd" in out and "[importable; not installed]" in out
    assert "probe" in out and "[trainable; not installed]" in out
    # the independent benchmarks, by threat, and each family's results in them
    assert "Independent benchmarks (choose a detector by the threat you face):" in out
    assert "threat: modern commercial generators (Flux Dev, Firefly v4, Midjourney v7): 18–30 %" in out
    assert "independent: Zhou et al. 2025: a linear probe" in out
    assert main(["models", "catalogue", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    rows = listed["families"]
    assert next(r for r in rows if r["id"] == "npr")["installed"] == ["npr-4-class-progan"]
    assert {b["id"] for b in listed["benchmarks"]} >= {"ren2026", "zhou2025"}
    assert [r["benchmark"] for r in next(r for r in rows if r["id"] == "probe")["independent_results"]] == [
        "Zhou et al. 2025", "Zhou et al. 2026"]


def test_every_benchmark_says_where_it_comes_from_and_names_real_families():
    ids = {entry["id"] for entry in families.catalogue()}
    for bench in families.catalogue_benchmarks():
        assert bench["where"].startswith("https://arxiv.org/abs/") and bench["source"] and bench["findings"]
        assert bench["by_threat"] and all(item["threat"] and item["result"] for item in bench["by_threat"])
        assert {item["family"] for item in bench["results"]} <= ids, bench["id"]
