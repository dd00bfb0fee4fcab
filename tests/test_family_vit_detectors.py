"""B-Free (Guillaro et al., CVPR 2025) and Community Forensics (Park and Owens, CVPR 2025): each test writes a
checkpoint with the container, tensor names and shapes of the authors' published file (listed here from their code,
not from Forensight's), imports it with `forensight models import FILE`, and compares Forensight's P(fake) on real
photographs with a reference forward written below from the authors' code, preprocessing included, within 1e-4.

References (public repositories):
* B-Free, github.com/grip-unina/B-Free, folder code/: networks/__init__.py (get_network: timm
  vit_base_patch14_reg4_dinov2 with num_classes=1 wrapped by Wrapper5crops(model, 504); load_weights: {'model':
  state dict} with timm's names), networks/wrapper5crops.py (patch convolution over the whole picture,
  replicate_wrap of a grid under 36×36 tokens, five 36×36 windows: centre, top-left, bottom-left, bottom-right,
  top-right, logits averaged), utils/normalization.py (get_list_norm('resnet'): ToTensor + ImageNet Normalize, no
  resize, no crop).
* Community Forensics, github.com/JeongsooP/Community-Forensics: models.py (ViTClassifier: timm
  vit_small_patch16_384 / _224 as `self.vit`, head Linear(384, 1); preprocess_input: Resize(440) / Resize(256),
  CenterCrop(384) / CenterCrop(224), ToTensor, ImageNet Normalize; sigmoid), utils.py (save_checkpoint: {'model',
  'optimizer', 'scheduler', 'scaler', 'epoch', 'itr'}), the Hugging Face OwensLab/commfor-model-224 model.safetensors
  (the same 'vit.' names).
The reference ViT (timm's VisionTransformer: pre-norm blocks, LayerNorm eps 1e-6, exact GELU, class token through
the final norm into the head) is written here with torch.nn.functional.
"""
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import save_file
from torchvision import transforms

from app.case.store import Case
from app.report.data import load_report_data
from models import families
from models.card import ModelCard
from models.checkpoints import CheckpointError
from models.engine import ScanEngine
from models.explain import Explainer
from models.families.vit_detectors import FiveCropViT
from models.library import LoadedModel, ModelLibrary
from tests.commands import run_in_process, scan_and_report
from tests.conftest import REPO

REAL_PHOTOS = sorted((REPO / "resources" / "samples" / "real").glob("*.jpg"))  # 128×128 JPEGs
SKLEARN_IMAGES = Path(__import__("sklearn").__file__).parent / "datasets" / "images"  # 640×427 JPEG photographs
NORMALIZE = transforms.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])


# ---- the authors' tensors (timm's VisionTransformer names, as their code builds it) -------------------------------
def vit_shapes(dim: int, depth: int, patch: int, tokens: int, *, registers: int = 0, layerscale: bool = False,
               pos_with_class: bool = True, prefix: str = "") -> dict:
    shapes = {"cls_token": (1, 1, dim)}
    if registers:
        shapes["reg_token"] = (1, registers, dim)
    shapes |= {"pos_embed": (1, tokens + (1 if pos_with_class else 0), dim),
               "patch_embed.proj.weight": (dim, 3, patch, patch), "patch_embed.proj.bias": (dim,)}
    for i in range(depth):
        b = f"blocks.{i}."
        shapes |= {b + "norm1.weight": (dim,), b + "norm1.bias": (dim,), b + "attn.qkv.weight": (3 * dim, dim),
                   b + "attn.qkv.bias": (3 * dim,), b + "attn.proj.weight": (dim, dim), b + "attn.proj.bias": (dim,)}
        shapes |= {b + "ls1.gamma": (dim,)} if layerscale else {}
        shapes |= {b + "norm2.weight": (dim,), b + "norm2.bias": (dim,), b + "mlp.fc1.weight": (4 * dim, dim),
                   b + "mlp.fc1.bias": (4 * dim,), b + "mlp.fc2.weight": (dim, 4 * dim), b + "mlp.fc2.bias": (dim,)}
        shapes |= {b + "ls2.gamma": (dim,)} if layerscale else {}
    shapes |= {"norm.weight": (dim,), "norm.bias": (dim,), "head.weight": (1, dim), "head.bias": (1,)}
    return {prefix + k: v for k, v in shapes.items()}


def bfree_shapes(**small) -> dict:
    """timm vit_base_patch14_reg4_dinov2 at 504×504 (36×36 tokens), one logit; `small` shrinks it for the tests
    that need many windows (the same names, smaller dimensions)."""
    size = dict(dim=768, depth=12, patch=14, tokens=36 * 36) | small
    return vit_shapes(**size, registers=4, layerscale=True, pos_with_class=False)


def random_state(shapes: dict, seed: int) -> dict:
    """Seeded random weights that keep twelve blocks' activations in range."""
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in shapes.items():
        if key.endswith(("norm1.weight", "norm2.weight", "norm.weight")):
            state[key] = 1.0 + 0.1 * torch.randn(shape, generator=generator)
        elif key.endswith("gamma"):
            state[key] = 0.5 + 0.5 * torch.rand(shape, generator=generator)
        elif len(shape) >= 2 and not key.endswith(("_token", "pos_embed")):
            fan_in = math.prod(shape[1:])
            state[key] = torch.randn(shape, generator=generator) / math.sqrt(fan_in)
        else:
            state[key] = 0.1 * torch.randn(shape, generator=generator)
    return state


# ---- reference forwards ---------------------------------------------------------------------------------------
def _ln(x, s, name):
    return F.layer_norm(x, x.shape[-1:], s[f"{name}.weight"], s[f"{name}.bias"], eps=1e-6)


def _attention(x, s, name, heads):
    """Multi-head self-attention, softmax(q·kᵀ/√d)·v per head: torch's scaled_dot_product_attention is that
    formula (four times faster on the CPU than writing the product out, which matters for 1,301 tokens)."""
    n, length, dim = x.shape
    qkv = F.linear(x, s[f"{name}.qkv.weight"], s[f"{name}.qkv.bias"]).reshape(n, length, 3, heads, dim // heads)
    q, k, v = qkv.permute(2, 0, 3, 1, 4)
    out = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(n, length, dim)
    return F.linear(out, s[f"{name}.proj.weight"], s[f"{name}.proj.bias"])


def class_features(patches, s, *, heads, pos_with_class):
    """Patch embeddings (N, L, C) → the class token after the final LayerNorm (what the head reads)."""
    prefix = [s["cls_token"].expand(len(patches), -1, -1)]
    if "reg_token" in s:
        prefix.append(s["reg_token"].expand(len(patches), -1, -1))
    if pos_with_class:  # original ViT: the class token has a position
        x = torch.cat(prefix + [patches], 1) + s["pos_embed"]
    else:  # DINOv2 in timm (no_embed_class): positions for the patches only, then class and registers in front
        x = torch.cat(prefix + [patches + s["pos_embed"]], 1)
    depth = len({k.split(".")[1] for k in s if k.startswith("blocks.")})
    for i in range(depth):
        b = f"blocks.{i}"
        h = _attention(_ln(x, s, f"{b}.norm1"), s, f"{b}.attn", heads)
        x = x + (h * s[f"{b}.ls1.gamma"] if f"{b}.ls1.gamma" in s else h)
        h = F.linear(_ln(x, s, f"{b}.norm2"), s[f"{b}.mlp.fc1.weight"], s[f"{b}.mlp.fc1.bias"])
        h = F.linear(F.gelu(h), s[f"{b}.mlp.fc2.weight"], s[f"{b}.mlp.fc2.bias"])
        x = x + (h * s[f"{b}.ls2.gamma"] if f"{b}.ls2.gamma" in s else h)
    return _ln(x, s, "norm")[:, 0]


def bfree_features(picture, s, *, heads=12, window=36):
    """Wrapper5crops on one normalised picture (1, 3, H, W): the mean class features of the five windows (the head
    is linear, so the mean logit is the head of the mean features)."""
    patch = s["patch_embed.proj.weight"].shape[-1]
    emb = F.conv2d(picture, s["patch_embed.proj.weight"], s["patch_embed.proj.bias"], stride=patch)
    if emb.shape[-2] < window or emb.shape[-1] < window:  # replicate_wrap
        reps = (max(math.ceil(window / emb.shape[-2]), 1), max(math.ceil(window / emb.shape[-1]), 1))
        emb = emb.repeat(1, 1, *reps)[..., :window, :window]
    hs, ws = max((emb.shape[-2] - window) // 2, 0), max((emb.shape[-1] - window) // 2, 0)
    crops = [emb[..., hs:hs + window, ws:ws + window], emb[..., :window, :window], emb[..., -window:, :window],
             emb[..., -window:, -window:], emb[..., :window, -window:]]
    done: list[tuple[torch.Tensor, torch.Tensor]] = []  # equal windows (a tiled picture) give equal features:
    features = []                                        # computed once, which changes the time, not the result
    for crop in crops:
        same = next((f for c, f in done if torch.equal(c, crop)), None)
        if same is None:
            same = class_features(crop.flatten(2).transpose(1, 2), s, heads=heads, pos_with_class=False)
            done.append((crop, same))
        features.append(same)
    return torch.stack(features).mean(0)


def calibrate(state, head, features):
    """Point the random head along the photos' features so that their logits spread over about ±1: P(fake) then
    varies between photos and a 1e-4 agreement is a real test."""
    direction = torch.randn(features.shape[1], generator=torch.Generator().manual_seed(99))
    projections = features @ direction
    scale = 2.0 / max(float(projections.max() - projections.min()), 1e-6)
    state[f"{head}.weight"] = (direction * scale).view(1, -1)
    state[f"{head}.bias"] = torch.tensor([-float(projections.mean()) * scale])
    return torch.sigmoid(features @ state[f"{head}.weight"][0] + state[f"{head}.bias"][0]).numpy()


def forensight_p_fake(model, images):
    model = ModelLibrary().load(model) if isinstance(model, str) else model
    engine = ScanEngine(model, device="cpu", batch_size=2, workers=1)
    results = {r.path: r for r in engine.scan(images)}
    assert all(results[str(p)].ok for p in images), [results[str(p)].error for p in images]
    return np.array([results[str(p)].p_fake for p in images])


def pil(path):
    return Image.open(path).convert("RGB")


def odd_crop(tmp_path, size=(150, 97)) -> Path:
    path = tmp_path / "odd.png"
    pil(SKLEARN_IMAGES / "china.jpg").crop((200, 100, 200 + size[0], 100 + size[1])).save(path)
    return path


# ---- B-Free -------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_bfree_dino2reg4(home, tmp_path, capsys):
    """The full-size network: a 640×427 photograph (short side under 504: tiled, then its top-left 504×504) and a
    128×128 one (tiled). Both give five equal windows, so each costs one ViT-B pass here and in Forensight."""
    images = [SKLEARN_IMAGES / "china.jpg", REAL_PHOTOS[0]]
    state = random_state(bfree_shapes(), seed=5)
    to_tensor = transforms.Compose([transforms.ToTensor(), NORMALIZE])  # get_list_norm('resnet'): no resize
    with torch.no_grad():
        expected = calibrate(state, "head", torch.cat([bfree_features(to_tensor(pil(p))[None], state)
                                                       for p in images]))
    published = tmp_path / "weights" / "BFREE_dino2reg4" / "model_epoch_best.pth"
    published.parent.mkdir(parents=True)
    torch.save({"model": state}, published)  # networks/__init__.py load_weights: dat['model']
    code, out, err = run_in_process(capsys, "models", "import", published)
    assert code == 0, err
    assert "Imported b-free-dino2reg4 [b-free]: bfree_vitb14_reg4, 1 logit(s) (sigmoid), input full" in out, out
    card = ModelLibrary().get("b-free-dino2reg4").card
    assert (card.input.policy, card.input.full_max_pixels, card.input.jpeg_draft) == ("full", 1 << 24, False)
    assert card.input.mean == (0.485, 0.456, 0.406) and card.provenance["recognised_by"] == "file name"
    assert "non-profit" in card.provenance["licence"] and "Guillaro" in card.provenance["paper"]
    assert card.provenance["published_file"] == "BFREE_dino2reg4/model_epoch_best.pth"
    assert "wrapper5crops.py" in card.provenance["preprocessing_source"] and "COCO" in card.trained_on
    ours = forensight_p_fake(card.id, images)
    print(f"b-free: max |ΔP(fake)| = {np.abs(ours - expected).max():.1e}")  # shown with pytest -s
    assert np.abs(ours - expected).max() < 1e-4, (ours, expected)
    assert np.ptp(expected) > 0.05


def tiny_bfree(seed=6):
    """Forensight's B-Free network with a 56-pixel window (4×4 tokens of 14 pixels): photographs of 128 pixels and
    more then give five different windows, at a small cost. The real checkpoint's shapes are tested above."""
    state = random_state(bfree_shapes(dim=32, depth=2, tokens=16), seed)
    module = FiveCropViT(img_size=56, patch_size=14, embed_dim=32, depth=2, num_heads=2, init_values=1e-5,
                         reg_tokens=4, no_embed_class=True, num_classes=1).eval()
    return module, state


def tiny_card():
    return ModelCard(id="tiny-bfree", name="tiny B-Free", architecture="bfree_vitb14_reg4", num_logits=1,
                     input=families.state_family("b-free").input, family="b-free",
                     family_config={"explain": {"layer": "blocks.1.norm1"}})  # its last block (the real one: 11)


def test_bfree_five_windows_on_larger_pictures(home, tmp_path):
    images = [SKLEARN_IMAGES / "china.jpg", REAL_PHOTOS[1], odd_crop(tmp_path)]
    module, state = tiny_bfree()
    to_tensor = transforms.Compose([transforms.ToTensor(), NORMALIZE])
    with torch.no_grad():
        expected = calibrate(state, "head", torch.cat([bfree_features(to_tensor(pil(p))[None], state, heads=2,
                                                                      window=4) for p in images]))
    module.load_state_dict(state)
    ours = forensight_p_fake(LoadedModel(tiny_card(), module), images)
    print(f"b-free (5 different windows): max |ΔP(fake)| = {np.abs(ours - expected).max():.1e}")
    assert np.abs(ours - expected).max() < 1e-4, (ours, expected)
    assert np.ptp(expected) > 0.05


def test_bfree_gradcam_puts_each_window_back_on_the_picture(home):
    """Grad-CAM drops the class and four register tokens and places each window's tokens where the window lies
    on the picture's token grid; a part no window covers stays 0."""
    module, state = tiny_bfree()
    module.load_state_dict(state)
    with torch.no_grad():
        module(torch.zeros(1, 3, 14 * 14, 14 * 14))  # 14×14 tokens: five 4×4 windows that do not touch
    starts = module.layout[2]
    assert starts == [(5, 5), (0, 0), (10, 0), (10, 10), (0, 10)]
    tokens = torch.zeros(len(starts), 5 + 16, 3)
    for k, (top, left) in enumerate(starts):  # each patch token carries its picture position
        rows, cols = torch.meshgrid(torch.arange(4) + top, torch.arange(4) + left, indexing="ij")
        tokens[k, 5:, 0], tokens[k, 5:, 1], tokens[k, 5:, 2] = rows.flatten() + 1.0, cols.flatten() + 1.0, 1.0
    tokens[:, :5] = 1e6  # class and register tokens must not land anywhere
    grid = module.gradcam_reshape(tokens)[0]
    assert grid.shape == (3, 14, 14)
    seen = torch.zeros(14, 14, dtype=torch.bool)
    for top, left in starts:
        seen[top:top + 4, left:left + 4] = True
    rows, cols = torch.meshgrid(torch.arange(14.0) + 1, torch.arange(14.0) + 1, indexing="ij")
    assert torch.equal(grid[0][seen], rows[seen]) and torch.equal(grid[1][seen], cols[seen])
    assert grid[:, ~seen].abs().max() == 0 and int(seen.sum()) == 5 * 16

    # end to end on photographs: a tiled small picture and a large one, as a scan explains them (policy full)
    explainer = Explainer(LoadedModel(tiny_card(), module))
    for image in (pil(REAL_PHOTOS[2]), pil(SKLEARN_IMAGES / "china.jpg")):
        heat = explainer.heat_map(image)
        assert heat.shape == (image.height, image.width) and np.isfinite(heat).all()
        assert 0 <= heat.min() and heat.max() <= 1 and np.ptp(heat) > 0.05


def test_partial_checkpoints_are_refused_naming_what_is_missing(home, tmp_path):
    # only the first of the twelve blocks, as an interrupted download or a pruned export would leave it
    bfree = {k: torch.zeros(v) for k, v in bfree_shapes().items() if not k.startswith("blocks.") or
             k.startswith("blocks.0.")}
    torch.save({"model": bfree}, tmp_path / "model_epoch_best.pth")
    with pytest.raises(CheckpointError, match=r"looks like a b-free checkpoint but does not fit it: 154 tensor\(s\) "
                                              r"missing \(e.g. blocks.1.norm1.weight"):
        ModelLibrary().import_path(tmp_path / "model_epoch_best.pth")
    commfor = {k: torch.zeros(v) for k, v in vit_shapes(384, 12, 16, 576, prefix="vit.").items()
               if "blocks.11." not in k}
    commfor["vit.pos_embed"] = torch.zeros(1, 197, 384)
    save_file(commfor, str(tmp_path / "model.safetensors"))
    with pytest.raises(CheckpointError, match=r"looks like a community-forensics checkpoint but does not fit it: "
                                              r"12 tensor\(s\) missing \(e.g. vit.blocks.11.norm1.weight.*1 of the "
                                              r"wrong shape \(e.g. vit.pos_embed: \(1, 197, 384\) instead of "
                                              r"\(1, 577, 384\)"):
        ModelLibrary().import_path(tmp_path / "model.safetensors")
    assert ModelLibrary().entries() == []


# ---- Community Forensics ------------------------------------------------------------------------------------
def commfor_files(tmp_path, size, state):
    """384: the authors' Dropbox checkpoint (utils.py save_checkpoint); 224: the Hugging Face model.safetensors."""
    if size == 384:
        path = tmp_path / "pretrained_weights" / "model_v11_ViT_384_base_ckpt.pt"
        path.parent.mkdir()
        optimizer = {"state": {0: {"step": torch.tensor(9000.0), "exp_avg": torch.zeros(3)}},
                     "param_groups": [{"lr": 2e-5, "weight_decay": 0.01, "params": [0]}]}
        torch.save({"model": state, "optimizer": optimizer, "scheduler": {"last_epoch": 9000, "base_lrs": [2e-5]},
                    "scaler": {"scale": 65536.0, "_growth_tracker": 12}, "epoch": 19, "itr": 9000}, path)
    else:
        path = tmp_path / "commfor-model-224" / "model.safetensors"
        path.parent.mkdir()
        save_file(state, str(path))
    return path


@pytest.mark.parametrize("size, resize, family, variant", [(384, 440, "community-forensics", "vit-s-384"),
                                                           (224, 256, "community-forensics-224", "vit-s-224-hf")])
def test_community_forensics(home, tmp_path, capsys, size, resize, family, variant):
    images = [SKLEARN_IMAGES / "china.jpg", REAL_PHOTOS[3], odd_crop(tmp_path)]
    state = random_state(vit_shapes(384, 12, 16, (size // 16) ** 2, prefix="vit."), seed=size)
    # models.py preprocess_input: Resize(resize) of the short side (bilinear), CenterCrop(size), ToTensor, Normalize
    steps = transforms.Compose([transforms.Resize(resize), transforms.CenterCrop(size), transforms.ToTensor(),
                                NORMALIZE])
    plain = {k[len("vit."):]: v for k, v in state.items()}
    with torch.no_grad():
        pictures = torch.stack([steps(pil(p)) for p in images])
        patches = F.conv2d(pictures, plain["patch_embed.proj.weight"], plain["patch_embed.proj.bias"], stride=16)
        features = class_features(patches.flatten(2).transpose(1, 2), plain, heads=6, pos_with_class=True)
        expected = calibrate(plain, "head", features)
    state["vit.head.weight"], state["vit.head.bias"] = plain["head.weight"], plain["head.bias"]
    published = commfor_files(tmp_path, size, state)
    code, out, err = run_in_process(capsys, "models", "import", published)
    assert code == 0, err
    model_id = f"{family}-{variant}"
    assert f"Imported {model_id} [{family}]: commfor_vit_small_{size}, 1 logit(s) (sigmoid)" in out, out
    card = ModelLibrary().get(model_id).card
    spec = card.input
    assert (spec.policy, spec.size, spec.resize, spec.interpolation, spec.jpeg_draft) == (
        "resize_center_crop", size, resize, "bilinear", False)
    assert card.provenance["recognised_by"] == "file name" and "Park" in card.provenance["paper"]
    assert "models.py" in card.provenance["preprocessing_source"] and "4,803" in card.trained_on
    ours = forensight_p_fake(model_id, images)
    print(f"{family}: max |ΔP(fake)| = {np.abs(ours - expected).max():.1e}")
    assert np.abs(ours - expected).max() < 1e-4, (ours, expected)
    assert np.ptp(expected) > 0.05


@pytest.mark.slow
def test_community_forensics_explains_on_its_tokens_and_reports(home, tmp_path):
    state = random_state(vit_shapes(384, 12, 16, 576, prefix="vit."), seed=7)
    state["vit.head.weight"] = state["vit.head.weight"] * 20  # decisive: the report may get a flagged page
    card = ModelLibrary().import_path(commfor_files(tmp_path, 384, state)).card
    explainer = Explainer(ModelLibrary().load(card.id))
    image = pil(SKLEARN_IMAGES / "china.jpg")
    heat = explainer.heat_map(image)
    assert heat.shape == (427, 640) and 0 <= heat.min() and heat.max() <= 1
    # the 384×384 crop of the picture scaled to 440 on its short side: 373 of its 427 pixels, centred
    assert np.ptp(heat[30:396, 140:500]) > 0.05 and heat[:, :130].max() == 0 and heat[:, 510:].max() == 0

    info = scan_and_report(card.id, [SKLEARN_IMAGES / "china.jpg"], tmp_path)
    assert (tmp_path / "report.pdf").stat().st_size > 10_000 and info.files == 1, info
    with Case(tmp_path / "case.sqlite", readonly=True) as case:  # the report's method names this model
        data = load_report_data(case, None, False)
    assert data.model_id == card.id and data.rows[0].p_fake is not None
