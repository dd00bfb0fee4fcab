"""Linear probes on a foundation-model image tower (`forensight train --recipe linear_probe --tower FILE` and the
training wizard): features computed once and cached, a probe fitted on them, a library model that scans,
explains and is evaluated like any other. The towers are tiny random OpenCLIP ViTs written by open_clip itself."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open
from torchvision import transforms

from tests.needs import dependency

open_clip = dependency("open_clip")  # a project dependency: skipped locally, a failure in CI when missing

from models.engine import ScanEngine  # noqa: E402
from models.explain import Explainer  # noqa: E402
from models.imaging import read_file  # noqa: E402
from models.library import ModelLibrary  # noqa: E402
from tests.commands import run_in_process  # noqa: E402
from tests.conftest import make_model  # noqa: E402
from tests.datasets import texture  # noqa: E402

CLIP_MEAN, CLIP_STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)


def tiny_tower(path: Path, seed: int = 0) -> torch.nn.Module:
    """A random OpenCLIP ViT (width 64, 2 layers, patch 8, 64×64, 32-d embedding) saved as OpenCLIP saves it."""
    torch.manual_seed(seed)
    clip = open_clip.CLIP(embed_dim=32, vision_cfg=dict(layers=2, width=64, patch_size=8, image_size=64),
                          text_cfg=dict(context_length=8, vocab_size=100, width=64, heads=1, layers=1)).eval()
    torch.save(clip.state_dict(), path)
    return clip


def tinted_dataset(root: Path, per_class: int, seed: int) -> Path:
    """Photo-like textures; the 'fake' ones carry a colour cast, something even random features separate."""
    rng = np.random.default_rng(seed)
    for name, shift in (("real", (0, 0, 0)), ("fake", (60, -30, -30))):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = np.clip(texture(rng, 64).astype(np.int16) + np.array(shift), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i:03d}.png")
    return root


@pytest.fixture
def setup(home, tmp_path):
    tower = tmp_path / "downloads" / "tiny_openclip.bin"
    tower.parent.mkdir()
    clip = tiny_tower(tower)
    return tower, clip, tinted_dataset(tmp_path / "data", 40, seed=0), tinted_dataset(tmp_path / "held", 20, seed=1)


def train(capsys, name: str, data: Path, tower, *extra) -> tuple[int, str, str]:
    return run_in_process(capsys, "train", "--recipe", "linear_probe", "--data", data, "--name", name, "--tower",
                          tower, "--device", "cpu", "--workers", "0", *extra)


def test_probe_fits_caches_features_and_is_evaluated(setup, capsys, tmp_path):
    tower, _, data, held = setup
    code, out, err = train(capsys, "probe-a", data, tower)
    assert code == 0, err
    assert "features: 80 computed, 0 reused from the cache" in err
    assert "Added probe-a to the library" in out
    # a second fit reads every feature from the cache: no tower forward at all
    code, out, err = train(capsys, "probe-b", data, tower)
    assert code == 0, err
    assert "features: 0 computed, 80 reused from the cache" in err
    a, b = ModelLibrary().get("probe-a").card, ModelLibrary().get("probe-b").card
    assert (a.provenance["probe"]["computed"], b.provenance["probe"]["cached"]) == (80, 80)
    assert (a.family, a.architecture, a.num_logits, a.input.policy, a.input.size) == (
        "probe", "tower_linear", 1, "center_crop", 64)
    assert a.metrics["validation"]["n"] == 16 and a.metrics["validation"]["accuracy"] >= 0.9
    weights_a, weights_b = (ModelLibrary().load(m).module.head.weight for m in ("probe-a", "probe-b"))
    assert torch.equal(weights_a, weights_b)  # the same features give the same probe

    # measured by the same `evaluate`, on pictures it never saw
    code, out, err = run_in_process(capsys, "evaluate", "--model", "probe-a", "--data", held, "--out",
                                    tmp_path / "eval", "--no-sweeps", "--device", "cpu")
    assert code == 0, err
    report = json.loads((tmp_path / "eval" / "report.json").read_text())
    assert report["data"]["count"] == 40 and report["metrics"]["accuracy"] >= 0.9

    # it scans through the engine and explains itself like any library model
    engine = ScanEngine(ModelLibrary().load("probe-a"), device="cpu", workers=1)
    fakes = sorted((held / "fake").glob("*.png"))[:3]
    reals = sorted((held / "real").glob("*.png"))[:3]
    scores = {Path(r.path).parent.name: r.p_fake for r in engine.scan(fakes + reals)}
    assert scores["fake"] > 0.5 > scores["real"]
    heat = Explainer(ModelLibrary().load("probe-a")).heat_map(Image.open(fakes[0]).convert("RGB"))
    assert heat.shape == (64, 64) and np.isfinite(heat).all()


def test_cached_features_are_the_towers_own_image_embeddings(setup, capsys):
    """What the cache holds for a picture equals open_clip's encode_image on the same input (UnivFD's centre
    crop at native resolution, CLIP mean and std): the probe learns on the features scans will compute."""
    tower, clip, data, _ = setup
    assert train(capsys, "probe-a", data, tower)[0] == 0
    cache_file = Path(ModelLibrary().get("probe-a").card.provenance["probe"]["feature_cache"])
    with safe_open(str(cache_file), framework="pt") as handle:
        rows = dict(zip(json.loads(handle.metadata()["files"]), handle.get_tensor("features")))
    pictures = sorted((data / "fake").glob("*.png"))[:2] + sorted((data / "real").glob("*.png"))[:2]
    transform = transforms.Compose([transforms.CenterCrop(64), transforms.ToTensor(),
                                    transforms.Normalize(CLIP_MEAN, CLIP_STD)])
    with torch.no_grad():
        reference = clip.encode_image(torch.stack([transform(Image.open(p).convert("RGB")) for p in pictures]))
    cached = torch.stack([rows[read_file(p)[1]] for p in pictures])
    assert torch.allclose(cached, reference, atol=1e-5), (cached - reference).abs().max()


def test_a_probe_on_the_tower_of_a_library_model(setup, capsys, tmp_path):
    """An imported UnivFD lends its CLIP tower to a new probe: --tower names the library model."""
    from tests.test_family_univfd import authors_files

    head, clip_tower, _, _ = authors_files(tmp_path / "univfd")
    ModelLibrary().import_path(head, tower=clip_tower)
    _, _, data, _ = setup
    code, out, err = train(capsys, "probe-on-univfd", data, "univfd", "--batch-size", "40")
    assert code == 0, err
    card = ModelLibrary().get("probe-on-univfd").card
    assert card.provenance["start_from"] == "library model univfd"
    assert card.family_config["tower"]["activation"] == "quick_gelu" and card.input.size == 224


def test_a_probe_without_a_usable_tower_is_refused_before_any_work(setup, capsys):
    _, _, data, _ = setup
    code, _, err = run_in_process(capsys, "train", "--recipe", "linear_probe", "--data", data, "--name", "p")
    assert code == 2 and "needs a tower: --tower FILE" in err and len(err.strip().splitlines()) == 1
    make_model(ModelLibrary(), "cnn")
    code, _, err = train(capsys, "p", data, "cnn")
    assert code == 2 and "library model cnn (simple_cnn) has no foundation-model tower" in err
    code, _, err = train(capsys, "p", data, "nowhere.bin")
    assert code == 2 and "tower 'nowhere.bin' is neither a file nor a library model" in err
    assert [e.card.id for e in ModelLibrary().entries()] == ["cnn"]


def test_a_probe_on_a_dinov2_tower_in_metas_layout(setup, capsys, tmp_path):
    """DINOv2 (timm): Meta's checkpoint names (mask_token, register_tokens) are read, the features equal timm's own
    forward on the probe's input (centre crop, ImageNet mean and std), and the probe scans and explains."""
    from timm.models.vision_transformer import VisionTransformer

    _, _, data, held = setup
    torch.manual_seed(5)
    vit = VisionTransformer(img_size=56, patch_size=14, embed_dim=64, depth=2, num_heads=1, init_values=1e-5,
                            reg_tokens=4, no_embed_class=True, num_classes=0).eval()
    with torch.no_grad():  # layer scale as trained towers have it (1e-5 at init leaves every picture alike)
        for name, parameter in vit.named_parameters():
            if name.endswith(".gamma"):
                parameter.fill_(0.5)
    timm_state = vit.state_dict()
    position_of_class = torch.randn(1, 1, 64) * 0.02  # Meta's class token has a position; timm folds it in
    meta = {k: v for k, v in timm_state.items() if k not in ("cls_token", "reg_token", "pos_embed")}
    meta |= {"cls_token": timm_state["cls_token"] - position_of_class, "register_tokens": timm_state["reg_token"],
             "pos_embed": torch.cat([position_of_class, timm_state["pos_embed"]], 1), "mask_token": torch.zeros(1, 64)}
    torch.save(meta, tmp_path / "dinov2_vits14_reg4_pretrain.pth")
    code, _, err = train(capsys, "dino-probe", data, tmp_path / "dinov2_vits14_reg4_pretrain.pth")
    assert code == 0, err
    card = ModelLibrary().get("dino-probe").card
    assert card.family_config["tower"]["kind"] == "timm_vit" and card.family_config["tower"]["reg_tokens"] == 4
    assert card.input.mean == pytest.approx((0.485, 0.456, 0.406)) and card.input.size == 56

    pictures = sorted((held / "fake").glob("*.png"))[:2] + sorted((held / "real").glob("*.png"))[:2]
    transform = transforms.Compose([transforms.CenterCrop(56), transforms.ToTensor(),
                                    transforms.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])
    x = torch.stack([transform(Image.open(p).convert("RGB")) for p in pictures])
    module = ModelLibrary().load("dino-probe").module
    with torch.no_grad():
        reference = torch.sigmoid(module.head(vit(x))).flatten().numpy()
        assert torch.allclose(module.tower(x), vit(x), atol=1e-5)
    engine = ScanEngine(ModelLibrary().load("dino-probe"), device="cpu", workers=1)
    scores = {r.path: r.p_fake for r in engine.scan(pictures)}
    assert np.abs(np.array([scores[str(p)] for p in pictures]) - reference).max() < 1e-4
    heat = Explainer(ModelLibrary().load("dino-probe")).heat_map(Image.open(pictures[0]).convert("RGB"))
    assert heat.shape == (64, 64) and np.ptp(heat) > 0
