"""Training input follows the card's small-image rule, so a model never learns a border scans do not show it."""
import numpy as np
import torch
from PIL import Image

from training.augment import train_transform


def _small_picture() -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(60, 200, (128, 96, 3), dtype=np.uint8))


def test_a_small_picture_is_padded_with_black_as_scans_pad_it():
    torch.manual_seed(0)
    out = train_transform("random_crop", 224, 224, None, flip=False)(_small_picture())
    assert out.shape == (3, 224, 224)
    picture = out.amax(dim=0) > 0
    assert int(picture.sum()) == 128 * 96  # exactly the picture's pixels; the rest is black, not mirrored
    assert int((out == 0).all(dim=0).sum()) == 224 * 224 - 128 * 96


def test_a_small_picture_is_enlarged_when_the_card_says_upscale():
    torch.manual_seed(0)
    out = train_transform("random_crop", 224, 224, None, flip=False, small_image="upscale")(_small_picture())
    assert out.shape == (3, 224, 224) and int((out == 0).all(dim=0).sum()) == 0


def test_a_large_picture_is_cropped_at_native_resolution():
    torch.manual_seed(0)
    picture = Image.fromarray(np.random.default_rng(1).integers(0, 256, (300, 400, 3), dtype=np.uint8))
    out = train_transform("random_crop", 224, 224, None, flip=False, small_image="upscale")(picture)
    array = np.asarray(picture).transpose(2, 0, 1)
    found = any(np.array_equal(out.numpy(), array[:, y:y + 224, x:x + 224]) for y in range(77) for x in range(177))
    assert found  # a crop of the very pixels: no resize
