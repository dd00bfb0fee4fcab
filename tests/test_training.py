"""The trainer proves learning, not plumbing; cancel and resume work; runs are reproducible."""
import pytest
import torch

from models.engine import CancelToken
from models.library import ModelLibrary
from training.recipes import get_recipe
from training.trainer import fit
from tests.datasets import make_trace_dataset

QUICK = dict(epochs=10, batch_size=16, workers=0, target_accuracy=None, lr=1e-3)


@pytest.fixture(scope="module")
def trace_data(tmp_path_factory):
    return make_trace_dataset(tmp_path_factory.mktemp("trace"), per_class=150)


@pytest.mark.slow
def test_simple_cnn_learns_an_upsampling_trace(trace_data, tmp_path):
    recipe = get_recipe("cifake_cnn").with_overrides(QUICK)
    events = []
    result = fit(recipe, trace_data, run_dir=tmp_path / "run", on_event=events.append)
    assert result.status == "finished"
    validation = result.card.metrics["validation"]
    assert validation["accuracy"] >= 0.85, result.history  # chance is 0.5
    assert validation["n"] == 30  # the seeded 90/10 split of 300 images
    kinds = {e.kind for e in events}
    assert {"started", "epoch_start", "batch", "epoch_end", "checkpoint", "finished"} <= kinds
    assert [e.epoch for e in events if e.kind == "epoch_end"] == list(range(1, 11))
    assert len(result.card.learning_curve) == 10 and result.card.provenance["data"]["all"]["count"] == 300
    # the best weights go into the library with their card and score images there
    entry = ModelLibrary(home=tmp_path / "home").add(result.card, result.state)
    assert entry.card.provenance["recipe"]["name"] == "cifake_cnn"


def test_cancel_keeps_best_and_resume_finishes(trace_data, tmp_path):
    recipe = get_recipe("cifake_cnn").with_overrides(QUICK | {"epochs": 3})
    cancel = CancelToken()

    def stop_in_second_epoch(event):
        if event.kind == "batch" and event.epoch == 2 and event.batch == 3:
            cancel.cancel()

    first = fit(recipe, trace_data, run_dir=tmp_path / "run", on_event=stop_in_second_epoch, cancel=cancel)
    assert first.status == "cancelled" and first.best_epoch == 1 and first.card is None
    assert (tmp_path / "run" / "best.safetensors").is_file() and len(first.history) == 1
    resumed = fit(recipe, trace_data, run_dir=tmp_path / "run", resume=True)
    assert resumed.status == "finished"
    assert [row["epoch"] for row in resumed.history] == [1, 2, 3]


def test_same_seed_same_weights(trace_data, tmp_path):
    recipe = get_recipe("cifake_cnn").with_overrides(QUICK | {"epochs": 1, "deterministic": True,
                                                               "blur_prob": 0.5, "jpeg_prob": 0.5})
    a = fit(recipe, trace_data, run_dir=tmp_path / "a")
    b = fit(recipe, trace_data, run_dir=tmp_path / "b")
    assert all(torch.equal(a.state[k], b.state[k]) for k in a.state)
    c = fit(recipe.with_overrides({"seed": 1}), trace_data, run_dir=tmp_path / "c")
    assert not all(torch.equal(a.state[k], c.state[k]) for k in a.state)


def test_fine_tuning_starts_from_a_library_model(trace_data, tmp_path):
    library = ModelLibrary(home=tmp_path / "home", shipped_dir=tmp_path / "none")
    base = fit(get_recipe("cifake_cnn").with_overrides(QUICK | {"epochs": 2}), trace_data, run_dir=tmp_path / "base")
    library.add(base.card, base.state)
    messages = []
    recipe = get_recipe("cifake_cnn").with_overrides(QUICK | {"epochs": 1, "pretrained": "cifake_cnn", "lr": 1e-9})
    tuned = fit(recipe, trace_data, run_dir=tmp_path / "tuned", library=library,
                on_event=lambda e: messages.append(e.message))
    assert "fine-tuning from library model cifake_cnn" in messages
    assert tuned.card.provenance["start_from"].startswith("library:cifake_cnn:")
    # with a vanishing learning rate the weights stay where the library model left them
    assert all(torch.allclose(tuned.state[k], base.state[k], atol=1e-5) for k in base.state
               if base.state[k].is_floating_point())


def test_job_setup_refuses_what_cannot_run_before_any_work(tmp_path):
    from app.services.training import TrainingSetupError, fine_tuning_overrides, make_recipe, plan_training
    from tests.conftest import make_model

    library = ModelLibrary(home=tmp_path / "home", shipped_dir=tmp_path / "none")
    make_model(library, "tiny")  # simple_cnn, one logit
    assert make_recipe("wang2020", {"pretrained": "none"}).pretrained == "none"  # scratch, not None
    resnet_from_tiny = make_recipe("wang2020", {"pretrained": "tiny"})
    with pytest.raises(TrainingSetupError, match="cannot fine-tune tiny: it is simple_cnn"):
        plan_training(resnet_from_tiny, tmp_path, "new", library=library, device="cpu")
    matched = make_recipe("wang2020", fine_tuning_overrides(library, "tiny"))
    assert plan_training(matched, tmp_path, "new", library=library, device="cpu").recipe.architecture == "simple_cnn"
    with pytest.raises(TrainingSetupError, match="already exists"):
        plan_training(matched, tmp_path, "tiny", library=library, device="cpu")
    with pytest.raises(TrainingSetupError, match="input.size is 4000"):  # the card would refuse it after training
        plan_training(make_recipe("wang2020", {"input_size": 4000}), tmp_path, "new", library=library, device="cpu")
    if not torch.cuda.is_available():
        with pytest.raises(TrainingSetupError, match="no CUDA GPU"):
            plan_training(matched, tmp_path, "new", library=library, device="cuda")
