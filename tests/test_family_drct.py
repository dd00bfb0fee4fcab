"""DRCT (Chen et al., ICML 2024; github.com/beibuwandeluori/DRCT): the published Conv-B file imported as its authors
save it, compared with a reference forward written here from their code.

What the test copies from the authors (read, not pasted):
* network/models.py: ContrastiveModels(model_name='convnext_base_in22k', embedding_size=1024) = timm's ConvNeXt-Base
  (timm 0.6.12, requirements.txt) under `model`, its `head.fc` a Linear(1024, 1024), then `fc` = Linear(1024, 2).
* scripts/train_contrastive.py: `torch.save(model.state_dict(), '.../14_acc0.9996.pth')`, a plain state dict;
  eval_model: P(fake) = 1 − softmax(logits)[0].
* data/transform.py create_val_transforms(224, is_crop=True): albumentations PadIfNeeded(224, constant 0, centred:
  top = int((224 − h) / 2)), CenterCrop(224) (offset (h − 224) // 2, rounded down), Normalize(ImageNet), no resize.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from models.checkpoints import CheckpointError
from models.explain import Explainer
from models.library import ModelLibrary
from tests.commands import run_in_process, scan_and_report
from tests.conftest import REPO
from tests.test_family_vit_detectors import SKLEARN_IMAGES

DIMS, DEPTHS = (128, 256, 512, 1024), (3, 3, 27, 3)  # convnext_base
MEAN, STD = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
PUBLISHED = "convnext_base_in22k_224_drct_amp_crop/14_acc0.9996.pth"


# ---- the authors' file --------------------------------------------------------------------------------------
def convnext_shapes() -> dict:
    """timm 0.6.12 ConvNeXt's state dict: stem (4×4 stride-4 conv, LayerNorm2d), per stage a downsample (LayerNorm2d,
    2×2 stride-2 conv) from the second on, blocks (gamma, 7×7 depthwise conv_dw, norm, mlp.fc1/fc2), head.norm and
    head.fc — here the 1024-d embedding of ContrastiveModels."""
    shapes = {"stem.0.weight": (DIMS[0], 3, 4, 4), "stem.0.bias": (DIMS[0],), "stem.1.weight": (DIMS[0],),
              "stem.1.bias": (DIMS[0],)}
    for i, (dim, depth) in enumerate(zip(DIMS, DEPTHS)):
        if i:
            shapes |= {f"stages.{i}.downsample.0.weight": (DIMS[i - 1],), f"stages.{i}.downsample.0.bias": (DIMS[i - 1],),
                       f"stages.{i}.downsample.1.weight": (dim, DIMS[i - 1], 2, 2),
                       f"stages.{i}.downsample.1.bias": (dim,)}
        for j in range(depth):
            b = f"stages.{i}.blocks.{j}"
            shapes |= {f"{b}.gamma": (dim,), f"{b}.conv_dw.weight": (dim, 1, 7, 7), f"{b}.conv_dw.bias": (dim,),
                       f"{b}.norm.weight": (dim,), f"{b}.norm.bias": (dim,), f"{b}.mlp.fc1.weight": (4 * dim, dim),
                       f"{b}.mlp.fc1.bias": (4 * dim,), f"{b}.mlp.fc2.weight": (dim, 4 * dim),
                       f"{b}.mlp.fc2.bias": (dim,)}
    shapes |= {"head.norm.weight": (1024,), "head.norm.bias": (1024,), "head.fc.weight": (1024, 1024),
               "head.fc.bias": (1024,)}
    return {f"model.{k}": v for k, v in shapes.items()} | {"fc.weight": (2, 1024), "fc.bias": (2,)}


def random_state(seed: int) -> dict:
    """Seeded weights that keep 36 residual blocks in range (small layer scales, fan-in scaled convolutions)."""
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in convnext_shapes().items():
        if key.endswith("gamma"):
            state[key] = 0.2 * torch.rand(shape, generator=generator)
        elif key.endswith(".weight") and len(shape) == 1:  # LayerNorms
            state[key] = 1.0 + 0.1 * torch.randn(shape, generator=generator)
        elif len(shape) >= 2:
            fan_in = int(np.prod(shape[1:]))
            state[key] = torch.randn(shape, generator=generator) / np.sqrt(fan_in)
        else:
            state[key] = 0.05 * torch.randn(shape, generator=generator)
    return state


@pytest.fixture(scope="module")
def authors_file(tmp_path_factory):
    state = random_state(3)
    path = tmp_path_factory.mktemp("downloads") / PUBLISHED
    path.parent.mkdir()
    torch.save(state, path)
    return path, state


# ---- reference forward ----------------------------------------------------------------------------------------
def albumentations_input(picture: Image.Image, size: int = 224) -> torch.Tensor:
    """PadIfNeeded (black, the top/left share rounded down), CenterCrop (offset rounded down), ImageNet Normalize."""
    pixels = np.asarray(picture.convert("RGB"))
    h, w = pixels.shape[:2]
    pad_top, pad_left = max(0, size - h) // 2, max(0, size - w) // 2
    canvas = np.zeros((max(h, size), max(w, size), 3), np.uint8)
    canvas[pad_top:pad_top + h, pad_left:pad_left + w] = pixels
    top, left = (canvas.shape[0] - size) // 2, (canvas.shape[1] - size) // 2
    crop = (canvas[top:top + size, left:left + size] / 255.0 - MEAN) / STD
    return torch.from_numpy(crop.astype(np.float32)).permute(2, 0, 1).unsqueeze(0)


def _ln_channels(x, s, name):
    """LayerNorm2d: over the channels of each position (eps 1e-6)."""
    y = F.layer_norm(x.permute(0, 2, 3, 1), x.shape[1:2], s[f"{name}.weight"], s[f"{name}.bias"], eps=1e-6)
    return y.permute(0, 3, 1, 2)


def reference_p_fake(x: torch.Tensor, s: dict) -> float:
    s = {k.removeprefix("model."): v for k, v in s.items() if k.startswith("model.")} | {
        "out.weight": s["fc.weight"], "out.bias": s["fc.bias"]}
    x = _ln_channels(F.conv2d(x, s["stem.0.weight"], s["stem.0.bias"], stride=4), s, "stem.1")
    for i, depth in enumerate(DEPTHS):
        if i:
            x = _ln_channels(x, s, f"stages.{i}.downsample.0")
            x = F.conv2d(x, s[f"stages.{i}.downsample.1.weight"], s[f"stages.{i}.downsample.1.bias"], stride=2)
        for j in range(depth):
            b = f"stages.{i}.blocks.{j}"
            y = F.conv2d(x, s[f"{b}.conv_dw.weight"], s[f"{b}.conv_dw.bias"], padding=3, groups=x.shape[1])
            y = F.layer_norm(y.permute(0, 2, 3, 1), y.shape[1:2], s[f"{b}.norm.weight"], s[f"{b}.norm.bias"], eps=1e-6)
            y = F.linear(F.gelu(F.linear(y, s[f"{b}.mlp.fc1.weight"], s[f"{b}.mlp.fc1.bias"])),
                         s[f"{b}.mlp.fc2.weight"], s[f"{b}.mlp.fc2.bias"])
            x = x + (y * s[f"{b}.gamma"]).permute(0, 3, 1, 2)
    pooled = F.layer_norm(x.mean((2, 3)), (x.shape[1],), s["head.norm.weight"], s["head.norm.bias"], eps=1e-6)
    logits = F.linear(F.linear(pooled, s["head.fc.weight"], s["head.fc.bias"]), s["out.weight"], s["out.bias"])
    return float(1.0 - torch.softmax(logits, dim=1)[0, 0])


def pictures(folder) -> list:
    """Real photographs: two 640×427 (odd vertical margin: albumentations and torchvision crop one row apart), the
    shipped 128×128 samples (padded) and a 250×180 one (padded one way, cropped the other)."""
    folder.mkdir(exist_ok=True)
    small = Image.open(SKLEARN_IMAGES / "flower.jpg").convert("RGB").resize((250, 180), Image.BICUBIC)
    small.save(folder / "flower-250x180.png")
    return [SKLEARN_IMAGES / "china.jpg", SKLEARN_IMAGES / "flower.jpg", folder / "flower-250x180.png",
            *sorted((REPO / "resources" / "samples" / "real").glob("*.jpg"))[:3]]


# ---- the tests ------------------------------------------------------------------------------------------------
def test_drct_matches_the_authors_forward_to_1e4(home, tmp_path, authors_file):
    path, state = authors_file
    card = ModelLibrary().import_path(path).card
    assert (card.family, card.architecture, card.num_logits, card.fake_index) == ("drct", "drct_convnext_base", 2, 1)
    assert (card.input.policy, card.input.size, card.input.crop_offset) == ("center_crop", 224, "floor")
    assert card.provenance["recognised_by"] == "file name" and "DRCT-2M" in card.trained_on
    model = ModelLibrary().load(card.id)
    from models.engine import ScanEngine

    files = pictures(tmp_path / "pictures")
    ours = np.array([r.p_fake for r in ScanEngine(model, device="cpu", batch_size=2, workers=1).scan(files)])
    with torch.no_grad():
        theirs = np.array([reference_p_fake(albumentations_input(Image.open(f)), state) for f in files])
    print(f"drct: max |ΔP(fake)| = {np.abs(ours - theirs).max():.1e} over {len(files)} pictures")
    assert np.abs(ours - theirs).max() < 1e-4, (ours, theirs)
    assert np.ptp(theirs) > 1e-2  # the pictures are told apart: the comparison is not between constants


def test_drct_scans_explains_reports_and_refuses_a_partial_file(home, tmp_path, authors_file, capsys):
    path, state = authors_file
    code, out, err = run_in_process(capsys, "models", "import", path, "--id", "drct-sd14")
    assert code == 0, err
    assert "Imported drct-sd14 [drct]: drct_convnext_base, 2 logit(s)" in out
    code, out, _ = run_in_process(capsys, "models", "catalogue")
    assert "DRCT (Chen et al. 2024)" in out and "drct-sd14" in out

    heat = Explainer(ModelLibrary().load("drct-sd14")).heat_map(Image.open(SKLEARN_IMAGES / "china.jpg").convert("RGB"))
    assert heat.shape == (427, 640)
    assert np.ptp(heat[101:325, 208:432]) > 0.05 and heat[:, :200].max() == 0  # only the central crop it saw
    info = scan_and_report("drct-sd14", [SKLEARN_IMAGES / "china.jpg"], tmp_path)
    assert info.files == 1 and (tmp_path / "report.pdf").stat().st_size > 10_000

    partial = {k: v for k, v in state.items() if k != "fc.bias"}
    torch.save(partial, tmp_path / "partial.pth")
    with pytest.raises(CheckpointError, match=r"fc\.bias"):
        ModelLibrary().import_path(tmp_path / "partial.pth", family="drct")


# ---- the CLIP ViT-L/14 variant --------------------------------------------------------------------------------
def test_drct_clip_file_carries_its_tower_and_matches_the_authors_forward(home, tmp_path):
    """CLIPModelV2 (network/models.py): `clip.load` model under model.model (both towers in the file), model.fc
    Linear(768, 1024) on encode_image, fc Linear(1024, 2); the same albumentations input with ImageNet statistics.
    A tiny OpenCLIP CLIP stands in for ViT-L/14 (OpenAI's and OpenCLIP's state dicts share their names)."""
    from tests.test_family_univfd import tiny_clip

    clip = tiny_clip(seed=5)
    torch.manual_seed(6)
    embed, fc = torch.nn.Linear(768, 1024), torch.nn.Linear(1024, 2)
    with torch.no_grad():
        fc.weight.mul_(8.0)  # random heads on random features sit near 0.5: make the scores spread
    state = {f"model.model.{k}": v for k, v in clip.state_dict().items()} | {
        "model.fc.weight": embed.weight, "model.fc.bias": embed.bias, "fc.weight": fc.weight, "fc.bias": fc.bias}
    path = tmp_path / "downloads" / "clip-ViT-L-14_224_drct_amp_crop" / "13_acc0.9664.pth"
    path.parent.mkdir(parents=True)
    torch.save({k: v.detach().clone() for k, v in state.items()}, path)

    card = ModelLibrary().import_path(path).card
    assert (card.id, card.architecture, card.family, card.num_logits) == ("drct-clip-sdv14", "drct_clip", "drct", 2)
    assert card.input.crop_offset == "floor" and card.input.mean == pytest.approx(tuple(MEAN))
    assert card.family_config["tower"]["activation"] == "quick_gelu" and "not CLIP ViT-L/14" in card.description
    files = pictures(tmp_path / "pictures")
    from tests.test_family_univfd import forensight_p_fake

    ours = forensight_p_fake(card.id, files)
    with torch.no_grad():
        theirs = np.array([float(1 - torch.softmax(fc(embed(clip.encode_image(albumentations_input(Image.open(f))))),
                                                   dim=1)[0, 0]) for f in files])
    print(f"drct clip: max |ΔP(fake)| = {np.abs(ours - theirs).max():.1e} over {len(files)} pictures")
    assert np.abs(ours - theirs).max() < 1e-4, (ours, theirs)
    assert np.ptp(theirs) > 1e-2
    heat = Explainer(ModelLibrary().load(card.id)).heat_map(Image.open(SKLEARN_IMAGES / "china.jpg").convert("RGB"))
    assert np.ptp(heat[101:325, 208:432]) > 0.05 and heat[:, :200].max() == 0

    del state["fc.bias"]
    torch.save(state, tmp_path / "partial.pth")
    with pytest.raises(CheckpointError, match=r"not a complete DRCT CLIP detector"):
        ModelLibrary().import_path(tmp_path / "partial.pth")
