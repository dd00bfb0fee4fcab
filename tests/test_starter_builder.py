"""The starter-set builder's pieces that need no Debian or generator package."""
import random
from collections import Counter

from PIL import Image

from training.starter import FORMATS, SIZE, Photo, real_variants, save_finished, split_photos
from tests.images import gradient


def test_real_crops_are_finished_like_the_fakes():
    photo = gradient(900, 700)
    variants = real_variants(photo, 9, random.Random(0))
    assert [kind for kind, _ in variants] == ["native", "x2", "x4"] * 3
    assert all(image.size == (SIZE, SIZE) for _, image in variants)


def test_split_is_by_photo_and_covers_all_three_splits(tmp_path):
    photos = [Photo(f"p{i}", tmp_path / f"{i}.jpg", "test") for i in range(40)]
    split = split_photos(photos, seed=0)
    assert set(split) == {p.id for p in photos}  # each photo in exactly one split
    counts = Counter(split.values())
    assert counts == {"train": 28, "test": 8, "val": 4}
    assert split == split_photos(photos, seed=0) and split != split_photos(photos, seed=1)


def test_format_mix_comes_from_one_shared_list(tmp_path):
    rng = random.Random(0)
    image = Image.new("RGB", (SIZE, SIZE), "gray")
    suffixes = Counter(save_finished(image, tmp_path / f"f{i}", rng).suffix for i in range(400))
    assert set(suffixes) == {".png", ".jpg"} and 70 <= suffixes[".png"] <= 130  # a quarter PNG
    assert len(FORMATS) == 4
