"""Published detectors: for each family the test writes a checkpoint with the container, tensor names and shapes
of the authors' file (listed here from their code, not from Forensight's), imports it, and compares Forensight's
P(fake) on real photographs with a reference forward written below from the paper and the authors' test script,
preprocessing included, within 1e-4.

References (public repositories):
* CNNDetection, Wang et al. 2020: networks/base_model.py (container), demo.py / demo_dir.py (no resize, no crop,
  ToTensor + ImageNet Normalize, sigmoid of the single logit).
* NPR, Tan et al. 2024: networks/resnet.py (stages 1-2, 3×3 stride-2 stem, NPR residual ×2/3, fc1), test.py
  (plain state dict) and data/datasets.py (Resize((256, 256)), no crop).
* Corvi et al. 2023: networks/resnet_mod.py (stride0=1, ChannelLinear per position, gap_size=1), main.py (no
  crop, logits averaged over positions), get_method_here.py ({'model': ...} with 'module.' prefixes).
* Gragnaniello et al. 2021: resnet50nodown.py (stride0=1, average pool then ChannelLinear, {'model': ...}).
"""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torchvision import transforms

from models.card import INPUT_POLICIES
from models.engine import ScanEngine
from models.library import ModelLibrary
from tests.conftest import REPO

REAL_PHOTOS = sorted((REPO / "resources" / "samples" / "real").glob("*.jpg"))
NORMALIZE = transforms.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])
WHOLE = "full" in INPUT_POLICIES  # the whole picture at its own resolution (the authors' input)


# ---- the authors' tensors -------------------------------------------------------------------------------
def resnet_keys(stem: tuple[int, int], stages: list[tuple[int, int]], head: str, head_in: int) -> dict:
    """Names and shapes of a Bottleneck ResNet's state dict as the authors' code builds it (torchvision's
    layout): stem conv (kernel), bn1, layerN.B.{conv1,bn1,conv2,bn2,conv3,bn3,downsample.0,downsample.1}, head."""
    shapes = {"conv1.weight": (64, 3, stem[0], stem[0]), **_bn("bn1", 64)}
    inplanes = 64
    for index, (blocks, planes) in enumerate(stages, start=1):
        for block in range(blocks):
            name = f"layer{index}.{block}"
            shapes |= {f"{name}.conv1.weight": (planes, inplanes, 1, 1), **_bn(f"{name}.bn1", planes),
                       f"{name}.conv2.weight": (planes, planes, 3, 3), **_bn(f"{name}.bn2", planes),
                       f"{name}.conv3.weight": (planes * 4, planes, 1, 1), **_bn(f"{name}.bn3", planes * 4)}
            if block == 0:
                shapes |= {f"{name}.downsample.0.weight": (planes * 4, inplanes, 1, 1),
                           **_bn(f"{name}.downsample.1", planes * 4)}
            inplanes = planes * 4
    return shapes | {f"{head}.weight": (1, head_in), f"{head}.bias": (1,)}


def _bn(name: str, channels: int) -> dict:
    return {f"{name}.{p}": (channels,) for p in ("weight", "bias", "running_mean", "running_var")} | {
        f"{name}.num_batches_tracked": ()}


def random_state(shapes: dict, seed: int) -> dict:
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in shapes.items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(1000, dtype=torch.long)
        elif key.endswith("running_var") or key.endswith(".weight") and len(shape) == 1:
            state[key] = torch.rand(shape, generator=generator) + 0.5
        elif len(shape) == 4:  # He initialisation keeps the activations of 50 layers in range
            state[key] = torch.randn(shape, generator=generator) * math.sqrt(1.0 / (shape[1] * shape[2] * shape[3]))
        else:
            state[key] = torch.randn(shape, generator=generator) * 0.1
    return state


# ---- reference forwards, written from the papers' code ------------------------------------------------------
def _bn_apply(x, s, name):
    return F.batch_norm(x, s[f"{name}.running_mean"], s[f"{name}.running_var"], s[f"{name}.weight"],
                        s[f"{name}.bias"], training=False, eps=1e-5)


def reference_features(x, s, *, stem_kernel, stem_stride, pool_stride, stages):
    """conv-bn-relu-maxpool stem, then Bottleneck stages (stride on the 3×3 convolution of each first block)."""
    x = F.relu(_bn_apply(F.conv2d(x, s["conv1.weight"], stride=stem_stride, padding=stem_kernel // 2), s, "bn1"))
    x = F.max_pool2d(x, 3, pool_stride, 1)
    for index, (blocks, stride) in enumerate(stages, start=1):
        for block in range(blocks):
            name, step = f"layer{index}.{block}", stride if block == 0 else 1
            out = F.relu(_bn_apply(F.conv2d(x, s[f"{name}.conv1.weight"]), s, f"{name}.bn1"))
            out = F.relu(_bn_apply(F.conv2d(out, s[f"{name}.conv2.weight"], stride=step, padding=1), s, f"{name}.bn2"))
            out = _bn_apply(F.conv2d(out, s[f"{name}.conv3.weight"]), s, f"{name}.bn3")
            if f"{name}.downsample.0.weight" in s:
                x = _bn_apply(F.conv2d(x, s[f"{name}.downsample.0.weight"], stride=step), s, f"{name}.downsample.1")
            x = F.relu(out + x)
    return x


RESNET50 = [(3, 1), (4, 2), (6, 2), (3, 2)]


def cnndetection_features(x, s):  # torchvision resnet50
    return reference_features(x, s, stem_kernel=7, stem_stride=2, pool_stride=2, stages=RESNET50).mean((2, 3))


def npr_features(x, s):  # NPR = x - up(down(x)), nearest, factor 2; conv1 on NPR·2/3; layer1, layer2 only
    down = F.interpolate(x, scale_factor=0.5, mode="nearest", recompute_scale_factor=True)
    npr = x - F.interpolate(down, scale_factor=2.0, mode="nearest", recompute_scale_factor=True)
    return reference_features(npr * 2.0 / 3.0, s, stem_kernel=3, stem_stride=2, pool_stride=2,
                              stages=[(3, 1), (4, 2)]).mean((2, 3))


def nodown_feature_map(x, s):  # stride0=1: the 7×7 stem and the max-pool keep the resolution
    return reference_features(x, s, stem_kernel=7, stem_stride=1, pool_stride=1, stages=RESNET50)


def corvi_logit(feature_map, s, head="fc"):
    """DMimageDetection: ChannelLinear at every position (gap_size=1), then main.py's mean over positions."""
    per_position = torch.einsum("bchw,oc->bohw", feature_map, s[f"{head}.weight"])
    per_position = per_position + s[f"{head}.bias"].view(1, -1, 1, 1)
    return per_position[:, 0].mean(dim=(1, 2))


def gragnaniello_logit(feature_map, s, head="fc"):
    """GANimageDetection: AdaptiveAvgPool2d, then ChannelLinear on the 1×1 map."""
    pooled = feature_map.mean(dim=(2, 3))
    return pooled @ s[f"{head}.weight"][0] + s[f"{head}.bias"][0]


def calibrate(state, head, features):
    """Point the random head along the photos' features so that their logits spread over about ±1: P(fake)
    then varies between photos and a 1e-4 agreement is a real test."""
    generator = torch.Generator().manual_seed(99)
    direction = torch.randn(features.shape[1], generator=generator)
    projections = features @ direction
    scale = 2.0 / max(float(projections.max() - projections.min()), 1e-6)
    state[f"{head}.weight"] = (direction * scale).view(1, -1)
    state[f"{head}.bias"] = torch.tensor([-float(projections.mean()) * scale])


def forensight_p_fake(model_id, images):
    engine = ScanEngine(ModelLibrary().load(model_id), device="cpu", batch_size=2, workers=1)
    results = {r.path: r for r in engine.scan(images)}
    assert all(results[str(p)].ok for p in images), [results[str(p)].error for p in images]
    return np.array([results[str(p)].p_fake for p in images])


def photos(tmp_path, size=None):
    """Real photographs: shipped 128×128 JPEGs and a non-square PNG crop (size: smaller crops for the costly
    full-resolution GRIP networks)."""
    if size is None:
        crop = tmp_path / "wide.png"
        Image.open(REAL_PHOTOS[2]).convert("RGB").crop((0, 16, 128, 112)).save(crop)
        return [*REAL_PHOTOS[:2], crop]
    paths = []
    for index, (w, h) in enumerate(size):
        path = tmp_path / f"crop{index}.png"
        Image.open(REAL_PHOTOS[index]).convert("RGB").crop((10, 20, 10 + w, 20 + h)).save(path)
        paths.append(path)
    return paths


def pil(path):
    return Image.open(path).convert("RGB")


# ---- the families -------------------------------------------------------------------------------------------
@pytest.mark.skipif(not WHOLE, reason="needs the 'full' input policy (the authors feed the whole picture)")
def test_cnndetection_blur_jpg_prob05(home, tmp_path):
    images = photos(tmp_path)
    state = random_state(resnet_keys((7, 2), [(3, 64), (4, 128), (6, 256), (3, 512)], "fc", 2048), seed=1)
    to_tensor = transforms.Compose([transforms.ToTensor(), NORMALIZE])  # demo.py: no resize, no crop
    with torch.no_grad():  # one image at a time: their sizes differ
        features = torch.cat([cnndetection_features(to_tensor(pil(p))[None], state) for p in images])
        calibrate(state, "fc", features)
        expected = torch.sigmoid(features @ state["fc.weight"][0] + state["fc.bias"][0]).numpy()
    optimizer = {"state": {}, "param_groups": [{"lr": 1e-4, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0,
                                                "amsgrad": False, "params": list(range(161))}]}
    torch.save({"model": state, "optimizer": optimizer, "total_steps": 123456}, tmp_path / "blur_jpg_prob0.5.pth")
    card = ModelLibrary().import_path(tmp_path / "blur_jpg_prob0.5.pth").card
    assert (card.family, card.architecture, card.num_logits, card.input.policy) == ("cnndetection", "resnet50", 1,
                                                                                   "full")
    assert card.id.startswith("cnndetection-blur")
    assert "Blur+JPEG(0.5)" in card.name and card.provenance["recognised_by"] == "file name"
    assert "CC BY-NC-SA" in card.provenance["licence"] and "StyleGAN2 99.1%" in card.provenance["headline_result"]
    assert "Wang" in card.provenance["paper"] and card.trained_on.startswith("ProGAN/LSUN")
    ours = forensight_p_fake(card.id, images)
    print(f"cnndetection: max |ΔP(fake)| = {np.abs(ours - expected).max():.1e}")  # shown with pytest -s
    assert np.abs(ours - expected).max() < 1e-4, (ours, expected)
    assert np.ptp(expected) > 0.05


def test_npr(home, tmp_path):
    images = photos(tmp_path)
    state = random_state(resnet_keys((3, 2), [(3, 64), (4, 128)], "fc1", 512), seed=2)
    # test.py / data/datasets.py: Resize((256, 256)) (bilinear), no crop, ToTensor, Normalize
    steps = transforms.Compose([transforms.Resize((256, 256)), transforms.ToTensor(), NORMALIZE])
    with torch.no_grad():
        features = npr_features(torch.stack([steps(pil(p)) for p in images]), state)
        calibrate(state, "fc1", features)
        expected = torch.sigmoid(features @ state["fc1.weight"][0] + state["fc1.bias"][0]).numpy()
    torch.save(state, tmp_path / "NPR.pth")  # test.py: load_state_dict(torch.load(path), strict=True)
    card = ModelLibrary().import_path(tmp_path / "NPR.pth").card
    assert (card.family, card.architecture, card.input.policy, card.input.size) == ("npr", "npr_resnet50",
                                                                                   "resize", 256)
    assert card.provenance["headline_result"].startswith("ForenSynths") and "Tan" in card.provenance["paper"]
    ours = forensight_p_fake(card.id, images)
    print(f"npr: max |ΔP(fake)| = {np.abs(ours - expected).max():.1e}")
    assert np.abs(ours - expected).max() < 1e-4, (ours, expected)
    assert np.ptp(expected) > 0.05


@pytest.mark.slow
@pytest.mark.skipif(not WHOLE, reason="needs the 'full' input policy (the authors feed the whole picture)")
def test_grip_resnet50_nodown_corvi_and_gragnaniello(home, tmp_path):
    """One set of weights in both containers: Corvi's logits averaged over positions and Gragnaniello's pooled
    features through the same linear layer are the same number, and Forensight must give it for both files."""
    images = photos(tmp_path, size=[(64, 64), (96, 64)])
    state = random_state(resnet_keys((7, 2), [(3, 64), (4, 128), (6, 256), (3, 512)], "fc", 2048), seed=3)
    to_tensor = transforms.Compose([transforms.ToTensor(), NORMALIZE])  # get_list_norm('resnet'), no crop
    with torch.no_grad():
        maps = [nodown_feature_map(to_tensor(pil(p))[None], state) for p in images]
        calibrate(state, "fc", torch.cat([m.mean((2, 3)) for m in maps]))
        expected = {"corvi2023": np.array([float(torch.sigmoid(corvi_logit(m, state))) for m in maps]),
                    "gragnaniello2021": np.array([float(torch.sigmoid(gragnaniello_logit(m, state))) for m in maps])}
    corvi = tmp_path / "Grag2021_latent" / "model_epoch_best.pth"  # weights/Grag2021_latent/, from DataParallel
    corvi.parent.mkdir()
    torch.save({"model": {f"module.{k}": v for k, v in state.items()}}, corvi)
    gragnaniello = tmp_path / "gandetection_resnet50nodown_progan.pth"
    torch.save({"model": state}, gragnaniello)
    for family, path in (("corvi2023", corvi), ("gragnaniello2021", gragnaniello)):
        card = ModelLibrary().import_path(path).card
        assert (card.family, card.architecture, card.input.policy) == (family, "resnet50_nodown", "full")
        assert "GRIP-UNINA licence" in card.provenance["licence"] and card.provenance["recognised_by"] == "file name"
        ours = forensight_p_fake(card.id, images)
        print(f"{family}: max |ΔP(fake)| = {np.abs(ours - expected[family]).max():.1e}")
        assert np.abs(ours - expected[family]).max() < 1e-4, (family, ours, expected[family])
        assert np.ptp(expected[family]) > 0.05
    assert "Latent Diffusion" in ModelLibrary().get("corvi2023-grag2021_latent").card.trained_on
