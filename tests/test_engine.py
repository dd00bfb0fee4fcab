"""The engine: one result per file, in order, streamed batch by batch, with the card's P(fake)."""
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from models.discovery import discover
from models.engine import CancelToken, PriorScore, ScanEngine, probabilities
from models.imaging import decode, read_file
from models.labels import FAKE, INCONCLUSIVE, REAL, Thresholds
from models.library import ModelLibrary
from models.preprocess import Normalizer, draft_size, geometry_transform
from tests import images
from tests.conftest import make_model


def test_every_file_gets_exactly_one_result_in_order(tiny_model, tmp_path):
    expected = images.good_and_bad_folder(tmp_path / "mixed")
    engine = ScanEngine(ModelLibrary().load("tiny"), device="cpu", batch_size=4, workers=2)
    results = list(engine.scan(discover([tmp_path / "mixed"])))
    names = [Path(r.path).name for r in results]
    assert names == sorted(expected)
    for result in results:
        reason = expected[Path(result.path).name]
        if reason is None:
            assert result.error is None and 0.0 <= result.p_fake <= 1.0 and result.label, result
            assert result.sha256 and result.width and result.format
        else:
            assert result.p_fake is None and reason in result.error.lower(), result


def test_engine_score_equals_the_model_on_the_same_pixels(home, tmp_path):
    entry = make_model(ModelLibrary(), "r18", "resnet18", num_logits=2, seed=1)
    model = ModelLibrary().load(entry.card.id)
    paths = []
    for i in range(5):
        paths.append(tmp_path / f"{i}.jpg")
        images.gradient(300 + 40 * i, 260, seed=i).save(paths[-1], "JPEG", quality=92)
    engine = ScanEngine(model, device="cpu", batch_size=2, workers=2)
    got = [r.p_fake for r in engine.scan(paths)]

    # the same computation by hand: decode, geometry, normalise, softmax[fake]
    spec = model.card.input
    geometry, normalize = geometry_transform(spec), Normalizer(spec, torch.device("cpu"))
    batch = torch.stack([geometry(decode(read_file(p)[0], draft_size=draft_size(spec)).image) for p in paths])
    with torch.inference_mode():
        want = torch.softmax(model.module.eval()(normalize(batch)), 1)[:, 1].tolist()
    assert got == pytest.approx(want, abs=1e-5)


def test_results_stream_per_batch(tiny_model, tmp_path):
    for i in range(10):
        images.gradient(40, 40, seed=i).save(tmp_path / f"{i:02d}.png")
    engine = ScanEngine(ModelLibrary().load("tiny"), device="cpu", batch_size=3, workers=2)
    sizes = [len(batch) for batch in engine.scan_batches(sorted(tmp_path.glob("*.png")))]
    assert sizes == [3, 3, 3, 1]


def test_cancel_stops_within_one_batch(tiny_model, tmp_path):
    for i in range(40):
        images.gradient(40, 40, seed=i).save(tmp_path / f"{i:02d}.png")
    engine = ScanEngine(ModelLibrary().load("tiny"), device="cpu", batch_size=4, workers=2)
    cancel = CancelToken()
    seen = []
    for batch in engine.scan_batches(sorted(tmp_path.glob("*.png")), cancel=cancel):
        seen.extend(batch)
        if len(seen) >= 8:
            threading.Thread(target=cancel.cancel).start()
            threading.Event().wait(0.05)
    assert 8 <= len(seen) <= 12


def test_prior_scores_are_reused_without_decoding(tiny_model, tmp_path):
    path = tmp_path / "a.png"
    images.gradient(40, 40).save(path)
    sha = read_file(path)[1]
    path.write_bytes(path.read_bytes())  # same content
    engine = ScanEngine(ModelLibrary().load("tiny"), device="cpu")
    [result] = engine.scan([path], prior={sha: PriorScore(0.91, 40, 40, "PNG")})
    assert result.reused and result.p_fake == 0.91 and result.label == FAKE


def test_probabilities_follow_the_card():
    logits = torch.tensor([[0.0, 2.0], [3.0, -1.0]])
    assert probabilities(logits, 2, 1).tolist() == pytest.approx(torch.softmax(logits, 1)[:, 1].tolist())
    assert probabilities(logits, 2, 0).tolist() == pytest.approx(torch.softmax(logits, 1)[:, 0].tolist())
    assert probabilities(torch.tensor([[0.0], [2.0]]), 1).tolist() == pytest.approx([0.5, 0.880797], abs=1e-6)


def test_labels_and_band():
    t = Thresholds(0.5, 0.3, 0.7)
    assert [t.label(p) for p in (0.1, 0.3, 0.5, 0.7, 0.71)] == [REAL, INCONCLUSIVE, INCONCLUSIVE, INCONCLUSIVE, FAKE]
    no_band = Thresholds(0.5, 0.5, 0.5)
    assert (no_band.label(0.49), no_band.label(0.5)) == (REAL, FAKE)
    assert Thresholds.around(0.5) == Thresholds(0.5, 0.3, 0.7)  # seed 000's ambiguous zone
    for threshold in (0.001, 0.1, 0.9, 0.987, 0.999999):  # both verdicts reachable whatever the threshold
        around = Thresholds.around(threshold)
        assert around.low < threshold < around.high
        assert (around.label(0.0), around.label(1.0)) == (REAL, FAKE), threshold
    assert Thresholds.around(0.987).low == pytest.approx(0.9702, abs=1e-4)
    with pytest.raises(ValueError, match="leaves no score that reads AI-generated"):
        Thresholds(0.987, 0.787, 1.0)  # what ±0.2 around a high threshold used to give
    with pytest.raises(ValueError, match="leaves no score that reads real"):
        Thresholds(0.1, 0.0, 0.3)
    with pytest.raises(ValueError):
        Thresholds(0.5, 0.6, 0.7)


def test_a_nan_score_is_an_error_row_never_a_label(tiny_model, tmp_path):
    paths = []
    for i in range(3):
        paths.append(tmp_path / f"{i}.png")
        images.gradient(40, 40, seed=i).save(paths[-1])
    engine = ScanEngine(ModelLibrary().load("tiny"), device="cpu", batch_size=3, workers=1)
    real_module = engine.module

    def nan_for_the_second_image(x):  # as a model with NaN weights, or an fp16 overflow, would answer
        logits = real_module(x).clone()
        logits[1] = float("nan")
        return logits

    engine.module = nan_for_the_second_image
    first, second, third = engine.scan(paths)
    assert second.error == "the model returned no valid score (NaN)"
    assert (second.p_fake, second.label, second.ok) == (None, None, False)
    assert second.sha256 and second.width == 40  # the rest of the row is still reported
    for good in (first, third):
        assert good.ok and 0.0 <= good.p_fake <= 1.0 and good.label in (REAL, FAKE, INCONCLUSIVE)


def test_nan_cannot_be_labelled_real():
    for bad in (float("nan"), -0.1, 1.5):
        with pytest.raises(ValueError, match="cannot label"):
            Thresholds(0.5, 0.3, 0.7).label(bad)


def test_geometry_policies():
    img = Image.fromarray(np.zeros((300, 500, 3), dtype=np.uint8))
    from models.card import InputSpec
    for policy in ("resize", "resize_center_crop", "center_crop"):
        out = geometry_transform(InputSpec(policy=policy, size=224, resize=256))(img)
        assert out.shape == (3, 224, 224) and out.dtype == torch.uint8
