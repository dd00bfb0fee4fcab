"""Hugging Face image classifiers, imported offline from a folder saved by transformers: Forensight's P(fake) on
real photographs equals transformers' own processor and forward, the fake label comes from id2label (or
--fake-label), the card keeps the processor's preprocessing, and the model explains itself."""
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.needs import dependency

transformers = dependency("transformers")  # a project dependency: skipped locally, a failure in CI when missing

from models.engine import ScanEngine  # noqa: E402
from models.explain import Explainer  # noqa: E402
from models.families.huggingface import NeedsFakeLabel, fake_labels, label_kind  # noqa: E402
from models.library import ModelLibrary  # noqa: E402
from tests.commands import run_cli  # noqa: E402
from tests.conftest import REPO  # noqa: E402

REAL_PHOTOS = sorted((REPO / "resources" / "samples" / "real").glob("*.jpg"))[:3]


def real_images(tmp_path: Path) -> list[Path]:
    """Real photographs: two as shipped (128×128 JPEG) and a non-square crop as PNG (exercises the centre crop)."""
    crop = tmp_path / "crop.png"
    Image.open(REAL_PHOTOS[2]).convert("RGB").crop((0, 16, 128, 112)).save(crop)
    return [*REAL_PHOTOS[:2], crop]


def tiny_vit(folder: Path, id2label: dict[int, str]) -> Path:
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

    torch.manual_seed(0)
    config = ViTConfig(image_size=32, patch_size=8, hidden_size=24, num_hidden_layers=2, num_attention_heads=2,
                       intermediate_size=48, num_labels=len(id2label), id2label=id2label,
                       label2id={v: k for k, v in id2label.items()})
    ViTForImageClassification(config).eval().save_pretrained(folder)
    ViTImageProcessor(size={"height": 32, "width": 32}, image_mean=[0.5, 0.4, 0.3],
                      image_std=[0.25, 0.3, 0.35]).save_pretrained(folder)
    return folder


def tiny_convnext(folder: Path, id2label: dict[int, str]) -> Path:
    from transformers import ConvNextConfig, ConvNextForImageClassification, ConvNextImageProcessor

    torch.manual_seed(1)
    config = ConvNextConfig(num_channels=3, patch_size=4, hidden_sizes=[8, 16], depths=[1, 1], num_stages=2,
                            num_labels=len(id2label), id2label=id2label, label2id={v: k for k, v in id2label.items()})
    model = ConvNextForImageClassification(config).eval()
    with torch.no_grad():  # make the random head decisive enough that the comparison means something
        model.classifier.weight.mul_(20)
    model.save_pretrained(folder)
    ConvNextImageProcessor(size={"shortest_edge": 32}, crop_pct=0.875).save_pretrained(folder)
    return folder


def reference_p_fake(folder: Path, images: list[Path], fake: list[int]) -> np.ndarray:
    """transformers' own pipeline: the folder's processor (Pillow backend) and the model's forward."""
    from transformers import AutoImageProcessor, AutoModelForImageClassification

    processor = AutoImageProcessor.from_pretrained(folder, local_files_only=True, backend="pil")
    model = AutoModelForImageClassification.from_pretrained(folder, local_files_only=True).eval()
    pixels = processor(images=[Image.open(p).convert("RGB") for p in images], return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        probs = torch.softmax(model(pixel_values=pixels).logits, dim=1)
    return probs[:, fake].sum(dim=1).numpy()


def forensight_p_fake(model_id: str, images: list[Path]) -> np.ndarray:
    engine = ScanEngine(ModelLibrary().load(model_id), device="cpu", batch_size=2, workers=1)
    results = {r.path: r.p_fake for r in engine.scan(images)}
    return np.array([results[str(p)] for p in images])


@pytest.mark.parametrize("kind", ["vit", "convnext"])
def test_p_fake_equals_transformers_own_forward(home, tmp_path, kind):
    if kind == "vit":  # fake = 'artificial' at index 0: the order must come from id2label, not be assumed
        folder = tiny_vit(tmp_path / "vit-detector", {0: "artificial", 1: "human"})
        fake = [0]
    else:  # three labels, two of them generators: P(fake) is their summed probability
        folder = tiny_convnext(tmp_path / "convnext-detector", {0: "real", 1: "sd", 2: "midjourney"})
        fake = [1, 2]
    entry = ModelLibrary().import_path(folder)
    card = entry.card
    assert (card.family, card.architecture, card.num_logits) == ("huggingface", "hf_image_classifier", 2)
    assert card.family_config["fake_labels"] == fake
    if kind == "vit":
        assert (card.input.policy, card.input.size, card.input.interpolation) == ("resize", 32, "bilinear")
        assert card.input.mean == pytest.approx((0.5, 0.4, 0.3)) and card.input.std == pytest.approx((0.25, 0.3, 0.35))
    else:  # ConvNeXt below 384: shortest edge to 32/0.875 = 36, centre crop 32, bicubic
        assert (card.input.policy, card.input.size, card.input.resize, card.input.interpolation) == (
            "resize_center_crop", 32, 36, "bicubic")
    images = real_images(tmp_path)
    ours, theirs = forensight_p_fake(card.id, images), reference_p_fake(folder, images, fake)
    print(f"huggingface {kind}: max |ΔP(fake)| = {np.abs(ours - theirs).max():.1e}")  # shown with pytest -s
    assert np.abs(ours - theirs).max() < 1e-4, (ours, theirs)
    assert np.ptp(theirs) > 1e-3, "the photos must score differently for the comparison to mean something"
    # the library's copy: safetensors weights + the config on the card, nothing else needed
    assert sorted(p.name for p in entry.directory.iterdir()) == ["card.json", "weights.safetensors"]
    assert card.provenance["family"] == "huggingface" and len(card.provenance["source_sha256"]) == 64


@pytest.mark.parametrize("kind", ["vit", "convnext"])
def test_hugging_face_model_explains_with_grad_cam(home, tmp_path, kind):
    folder = (tiny_vit(tmp_path / "v", {0: "fake", 1: "real"}) if kind == "vit"
              else tiny_convnext(tmp_path / "c", {0: "human", 1: "ai"}))
    entry = ModelLibrary().import_path(folder)
    chosen = entry.card.family_config["explain"]
    assert chosen["method"] == "gradcam" and chosen["tokens"] == (kind == "vit")
    if kind == "vit":  # the last block's first norm: patch tokens still reach the class token there
        assert re.fullmatch(r"model\.vit\.(encoder\.layer|layers)\.1\.layernorm_before", chosen["layer"])
    explainer = Explainer(ModelLibrary().load(entry.card.id))
    image = Image.open(REAL_PHOTOS[0]).convert("RGB")
    heat = explainer.heat_map(image)
    assert heat.shape == (128, 128) and 0 <= heat.min() and heat.max() <= 1 and np.ptp(heat) > 0.05


@pytest.mark.parametrize("labels,fake", [
    (["artificial", "human"], [0]), (["Real", "Fake"], [1]), (["human", "AI-generated"], [1]),
    (["ai_generated", "not_ai_generated"], [0]), (["authentic", "synthetic"], [1]),
    (["real", "sd", "midjourney", "dalle"], [1, 2, 3]), (["ai"], [0]), (["hum", "ai"], [1]),
])
def test_fake_labels_from_id2label(labels, fake):
    assert fake_labels(labels) == fake


def test_labels_that_say_nothing_need_a_choice(home, tmp_path):
    assert label_kind("LABEL_0") is None
    with pytest.raises(NeedsFakeLabel, match="pass --fake-label") as raised:
        fake_labels(["LABEL_0", "LABEL_1"])
    assert raised.value.labels == ["LABEL_0", "LABEL_1"]
    assert fake_labels(["LABEL_0", "LABEL_1"], "LABEL_1") == [1] and fake_labels(["a", "b", "c"], "0,c") == [0, 2]
    folder = tiny_vit(tmp_path / "anonymous", {0: "LABEL_0", 1: "LABEL_1"})
    run = run_cli("models", "import", folder, home=home)
    assert run.returncode == 2 and "pass --fake-label" in run.stderr and "0: LABEL_0, 1: LABEL_1" in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1, run.stderr
    run = run_cli("models", "import", folder, "--fake-label", "LABEL_0", home=home)
    assert run.returncode == 0, run.stderr
    assert "Imported anonymous [huggingface]" in run.stdout
    assert json.loads((home / "models" / "anonymous" / "card.json").read_text())["family_config"]["fake_labels"] == [0]


def test_a_folder_needing_remote_code_or_without_weights_is_refused(home, tmp_path):
    from models.checkpoints import CheckpointError

    folder = tiny_vit(tmp_path / "custom", {0: "real", 1: "fake"})
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps(config | {"auto_map": {"AutoModel": "mine.Net"}}))
    with pytest.raises(CheckpointError, match="never runs code"):
        ModelLibrary().import_path(folder)
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="no weights .* it holds config.json, preprocessor_config.json"):
        ModelLibrary().import_path(folder)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CheckpointError, match="neither card.json .* nor config.json"):
        ModelLibrary().import_path(empty)
    assert ModelLibrary().entries() == []
