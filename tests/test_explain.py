"""Grad-CAM heat maps: right size, right range, informative, placed where the model actually looked."""
import numpy as np
import pytest
import torch
from PIL import Image

from models.card import ModelCard, default_input_spec
from models.explain import Explainer, explain, model_view_box, overlay
from models.library import LoadedModel
from models.registry import build_model
from tests.images import gradient


def loaded(architecture: str, num_logits: int, seed: int = 0, module=None, **card_fields) -> LoadedModel:
    torch.manual_seed(seed)
    card = ModelCard(id="explained", name="explained", architecture=architecture, num_logits=num_logits,
                     input=default_input_spec(architecture), **card_fields)
    return LoadedModel(card, module if module is not None else build_model(architecture, num_logits))


def assert_informative(heat: np.ndarray, image: Image.Image) -> None:
    assert heat.shape == (image.height, image.width)
    assert heat.dtype == np.float32
    assert 0.0 <= heat.min() and heat.max() <= 1.0
    assert heat.max() - heat.min() > 0.1, "a constant map says nothing"


def test_simple_cnn_one_logit_map_covers_the_whole_image():
    image = gradient(90, 60, seed=1)
    heat = explain(loaded("simple_cnn", 1), image)
    assert_informative(heat, image)
    # policy "resize": the model saw every pixel, so every border of the image can carry heat
    assert heat[:, :10].max() > 0 or heat[:, -10:].max() > 0


def test_resnet18_map_is_zero_outside_the_centre_crop():
    image = gradient(400, 200, seed=2)  # wide: the 256→224 centre crop leaves both sides unseen
    model = loaded("resnet18", 2)
    heat = explain(model, image)
    assert_informative(heat, image)
    box = model_view_box(model.card.input, 400, 200)
    assert box.left == pytest.approx((400 - 224 / 1.28) / 2 / 400)
    seen_left, seen_right = round(box.left * 400), round(box.right * 400)
    assert heat[:, : seen_left - 1].max() == 0.0 and heat[:, seen_right + 1:].max() == 0.0
    assert heat[:, seen_left:seen_right].max() > 0.5


def test_two_logit_target_is_the_fake_logit():
    image = gradient(64, 64, seed=3)
    fake_is_1 = Explainer(loaded("simple_cnn", 2, seed=5)).heat_map(image)
    fake_is_0 = Explainer(loaded("simple_cnn", 2, seed=5, fake_index=0)).heat_map(image)
    assert not np.allclose(fake_is_1, fake_is_0), "the map must follow the card's fake_index"


def test_vit_tokens_are_reshaped_to_a_grid():
    # A ViT-Tiny has the same 12 blocks and 16-pixel patches as ViT-B/16 at a fraction of the cost, so the
    # ViT-B/16 card's layer path and token reshape are exercised without building 86 M parameters.
    import timm

    torch.manual_seed(0)
    tiny = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=2)
    image = gradient(120, 100, seed=4)
    heat = explain(loaded("vit_base_patch16_224", 2, module=tiny), image)
    assert_informative(heat, image)


def test_explaining_leaves_the_scanning_model_untouched():
    model = loaded("simple_cnn", 1)
    model.module.requires_grad_(False)
    before = {k: v.clone() for k, v in model.module.state_dict().items()}
    explain(model, gradient(40, 40))
    assert all(torch.equal(before[k], v) for k, v in model.module.state_dict().items())
    assert not any(p.requires_grad for p in model.module.parameters())
    assert all(layer.inplace for layer in model.module.modules() if isinstance(layer, torch.nn.ReLU))


def test_map_renders_at_a_preview_size():
    image = gradient(300, 200, seed=6)
    heat = Explainer(loaded("simple_cnn", 1)).heat_map(image, output_size=(150, 100))
    assert heat.shape == (100, 150)


def test_overlay_blends_the_colour_map_over_the_image():
    image = gradient(50, 40)
    heat = np.tile(np.linspace(0, 1, 50, dtype=np.float32), (40, 1))
    assert overlay(image, heat, 0.0).tobytes() == image.tobytes()
    full = np.asarray(overlay(image, heat, 1.0)).astype(int)
    assert full.shape == (40, 50, 3)
    assert full[0, 0, 2] > 100 and full[0, 0, 0] < 50  # cold end is blue
    assert full[0, -1, 0] > 100 and full[0, -1, 2] < 50  # hot end is red
    half = np.asarray(overlay(image, heat, 0.5)).astype(int)
    assert np.abs(half - (np.asarray(image).astype(int) + full) / 2).max() <= 1
