"""The model library: save and load bit-exactly, import what is safe, refuse what is not and say why."""
import json
import os
import pickle

import pytest
import torch
from safetensors.torch import load_file, save_file

from models import checkpoints
from models.card import CardError, ModelCard, sha256_file
from models.checkpoints import CheckpointError
from models.library import ModelLibrary, ModelNotFoundError, NoModelError
from models.registry import build_model
from tests.commands import run_cli, run_process
from tests.conftest import make_model


def test_saved_model_loads_back_bit_exactly(home):
    library = ModelLibrary()
    torch.manual_seed(3)
    original = build_model("resnet18", 2)
    entry = make_model(library, "r18", "resnet18", num_logits=2, seed=3)
    loaded = library.load("r18").module
    for key, value in original.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key]), key
    assert len(entry.card.weights_sha256) == 64
    assert (home / "models" / "r18" / "card.json").is_file()


def test_tampered_weights_are_refused(home):
    library = ModelLibrary()
    entry = make_model(library)
    with open(entry.weights_path, "r+b") as handle:
        handle.seek(-4, os.SEEK_END)
        handle.write(b"\x00\x01\x02\x03")
    with pytest.raises(CheckpointError, match="does not match"):
        library.load(entry.card.id)


def test_import_plain_state_dict_infers_architecture(home, tmp_path):
    torch.manual_seed(0)
    state = build_model("resnet18", 1).state_dict()
    torch.save({"model": state, "optimizer": {}, "total_steps": 7}, tmp_path / "blur_jpg_prob0.5.pth")
    entry = ModelLibrary().import_path(tmp_path / "blur_jpg_prob0.5.pth")
    assert (entry.card.architecture, entry.card.num_logits, entry.card.output) == ("resnet18", 1, "sigmoid")
    assert entry.card.id == "blur_jpg_prob0.5"
    loaded = ModelLibrary().load(entry.card.id).module.state_dict()
    assert all(torch.equal(state[k], loaded[k]) for k in state)


def test_a_file_name_in_any_language_becomes_a_usable_model_id(home, tmp_path):
    """Examiners name files in their own language: the id the import proposes is one the CLI accepts."""
    state = build_model("simple_cnn", 2).state_dict()
    save_file(state, tmp_path / "Détecteur final (v2) — été.safetensors")
    entry = ModelLibrary().import_path(tmp_path / "Détecteur final (v2) — été.safetensors")
    assert entry.card.id == "d-tecteur-final--v2-----t"
    assert ModelLibrary().load(entry.card.id).card.id == entry.card.id


def test_import_safetensors_with_prefixes_and_explicit_arch(home, tmp_path):
    state = {f"module.{k}": v for k, v in build_model("simple_cnn", 2).state_dict().items()}
    torch.save(state, tmp_path / "ddp.pt")
    entry = ModelLibrary().import_path(tmp_path / "ddp.pt", architecture="simple_cnn", model_id="ddp")
    assert entry.card.num_logits == 2
    save_file(build_model("simple_cnn", 2).state_dict(), tmp_path / "w.safetensors")
    assert ModelLibrary().import_path(tmp_path / "w.safetensors").card.architecture == "simple_cnn"


class _Exploit:
    def __reduce__(self):
        return (os.system, ("touch /tmp/forensight-pwned",))


def test_pickle_with_code_is_refused_and_never_runs(home, tmp_path):
    marker = "/tmp/forensight-pwned"
    if os.path.exists(marker):
        os.remove(marker)
    path = tmp_path / "evil.pth"
    with open(path, "wb") as handle:
        pickle.dump({"fc.weight": _Exploit()}, handle)
    with pytest.raises(CheckpointError, match="could run code"):
        ModelLibrary().import_path(path)
    assert not os.path.exists(marker)
    assert ModelLibrary().entries() == []


@pytest.mark.parametrize("name,content,reason", [
    ("fake.safetensors", b"this is text, not tensors", "not a valid safetensors"),
    ("notes.pth", b"hello world", "not a PyTorch checkpoint"),
])
def test_files_that_are_not_what_they_claim(home, tmp_path, name, content, reason):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(CheckpointError, match=reason):
        ModelLibrary().import_path(tmp_path / name)
    assert not (home / "models").exists() or not any((home / "models").iterdir())


def test_wrong_shapes_explained(home, tmp_path):
    state = build_model("resnet18", 2).state_dict()
    state["layer1.0.conv1.weight"] = torch.zeros(3, 3, 3, 3)
    torch.save(state, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError, match="do not fit resnet18: .*wrong shape .*layer1.0.conv1.weight"):
        ModelLibrary().import_path(tmp_path / "bad.pth", architecture="resnet18")


def test_import_forensight_folder_checks_hash(home, tmp_path):
    library = ModelLibrary()
    entry = make_model(library, "source")
    copy = tmp_path / "export"
    copy.mkdir()
    card = json.loads((entry.directory / "card.json").read_text())
    (copy / "card.json").write_text(json.dumps(card))
    (copy / "weights.safetensors").write_bytes(entry.weights_path.read_bytes()[:-10] + b"0" * 10)
    with pytest.raises(CheckpointError, match="does not match the SHA-256"):
        library.import_path(copy, model_id="copy")
    (copy / "weights.safetensors").write_bytes(entry.weights_path.read_bytes())
    assert library.import_path(copy, model_id="copy").card.weights_sha256 == entry.card.weights_sha256


def test_default_remove_and_shipped_models(home, tmp_path, monkeypatch):
    shipped_root = tmp_path / "shipped2"
    monkeypatch.setenv("FORENSIGHT_SHIPPED_MODELS", str(shipped_root))
    library = ModelLibrary()
    with pytest.raises(NoModelError, match="no detector is installed"):
        library.resolve(None)
    # a shipped model is a folder in resources/models: it appears with no step and is the default
    staging = ModelLibrary(home=tmp_path / "staging", shipped_dir=tmp_path / "none")
    built = make_model(staging, "starter")
    shipped_root.mkdir()
    built.directory.rename(shipped_root / "starter")
    card = ModelCard.load(shipped_root / "starter" / "card.json")
    card.default = True
    card.save(shipped_root / "starter" / "card.json")
    library = ModelLibrary()
    assert library.resolve(None).card.id == "starter" and library.get("starter").shipped
    with pytest.raises(CardError, match="cannot be removed"):
        library.remove("starter")
    make_model(library, "mine")
    assert library.default_id() == "starter"
    library.set_default("mine")
    assert ModelLibrary().resolve(None).card.id == "mine"
    library.remove("mine")
    assert ModelLibrary().resolve(None).card.id == "starter"
    with pytest.raises(ModelNotFoundError, match="known: starter"):
        library.get("mine")


def _forensight(home, *args):
    return run_cli(*args, home=home)  # in-process, as typed (tests/commands.py)


def _forensight_that_may_block(home, *args):
    # a real process: a regression that blocks reading a FIFO must fail by its timeout, not hang the test run
    return run_process(*args, home=home, timeout=120)


def _one_line_error(run) -> str:
    assert run.returncode == 2, (run.stdout, run.stderr)
    assert "Traceback" not in run.stderr and len(run.stderr.strip().splitlines()) == 1, run.stderr
    return run.stderr


@pytest.mark.parametrize("poison", [float("nan"), float("inf")])
def test_weights_with_nan_or_inf_are_refused_on_import(home, tmp_path, poison):
    state = build_model("simple_cnn", 1).state_dict()
    state["features.3.weight"][0, 0, 0, 0] = poison
    save_file(state, tmp_path / "poisoned.safetensors")
    with pytest.raises(CheckpointError, match=r"NaN or infinite values \(e.g. in features.3.weight\)"):
        ModelLibrary().import_path(tmp_path / "poisoned.safetensors")
    assert ModelLibrary().entries() == []


def test_float64_weights_beyond_float32_are_refused(home, tmp_path):
    state = {k: v.double() for k, v in build_model("simple_cnn", 1).state_dict().items()}
    state["classifier.4.weight"][0, 0] = 1e300  # finite in float64, infinite once loaded as float32
    torch.save(state, tmp_path / "huge.pth")
    with pytest.raises(CheckpointError, match=r"NaN or infinite values \(e.g. in classifier.4.weight\)"):
        ModelLibrary().import_path(tmp_path / "huge.pth")


def test_models_import_of_a_nan_checkpoint_exits_2_with_one_line(home, tmp_path):
    state = build_model("simple_cnn", 1).state_dict()
    state["classifier.4.weight"].fill_(float("nan"))
    save_file(state, tmp_path / "f.safetensors")
    line = _one_line_error(_forensight(home, "models", "import", tmp_path / "f.safetensors"))
    assert "NaN or infinite values (e.g. in classifier.4.weight)" in line
    assert "refusing a model that would score NaN" in line


def test_weights_made_nan_after_import_are_refused_on_load(home):
    library = ModelLibrary()
    entry = make_model(library, "later")
    state = load_file(entry.weights_path)
    state["features.0.weight"][:] = float("nan")
    save_file(state, entry.weights_path)
    card = json.loads((entry.directory / "card.json").read_text())  # the hash updated too: only NaN is wrong
    card["weights_sha256"] = sha256_file(entry.weights_path)
    (entry.directory / "card.json").write_text(json.dumps(card))
    with pytest.raises(CheckpointError, match=r"model 'later': weights hold NaN .*features.0.weight"):
        library.load("later")


@pytest.mark.slow
def test_importing_a_fifo_or_a_device_is_refused_without_reading(home, tmp_path):
    os.mkfifo(tmp_path / "pipe.pth")  # reading it would block until a writer comes: never, here
    run = _forensight_that_may_block(home, "models", "import", tmp_path / "pipe.pth")
    assert "is a FIFO (named pipe)" in _one_line_error(run)
    run = _forensight_that_may_block(home, "models", "import", "/dev/zero")
    assert "is a character device" in _one_line_error(run)


def test_a_card_folder_whose_weights_are_a_fifo_is_refused(home, tmp_path):
    source = make_model(ModelLibrary(home=tmp_path / "elsewhere"), "piped")
    folder = tmp_path / "export"
    folder.mkdir()
    (folder / "card.json").write_bytes((source.directory / "card.json").read_bytes())
    os.mkfifo(folder / "weights.safetensors")
    line = _one_line_error(_forensight_that_may_block(home, "models", "import", folder))
    assert "weights.safetensors is a FIFO (named pipe), not a checkpoint file" in line


def test_a_checkpoint_over_the_size_cap_is_refused(home, tmp_path, monkeypatch):
    save_file(build_model("simple_cnn", 1).state_dict(), tmp_path / "w.safetensors")
    torch.save(build_model("simple_cnn", 1).state_dict(), tmp_path / "w.pth")
    monkeypatch.setattr(checkpoints, "MAX_CHECKPOINT_BYTES", 1000)
    for name in ("w.safetensors", "w.pth"):
        with pytest.raises(CheckpointError, match=f"{name} holds .* bytes, more than the 1,000 bytes"):
            ModelLibrary().import_path(tmp_path / name)
