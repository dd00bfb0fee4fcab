"""Models and a folder for the multi-model and ensemble tests (their fixtures, two_models, folder and decodes, are
in conftest.py): small simple_cnn detectors, each with its own weights and input policy, and a folder of
pictures of several shapes with one file that is not an image."""
from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

from models.card import ModelCard, default_input_spec
from models.library import ModelLibrary
from models.registry import build_model
from tests import images

FILES = 7  # fill_folder's: six pictures and one file that is not an image


def add_model(library: ModelLibrary, model_id: str, seed: int, **input_fields):
    """simple_cnn with its own weights and input policy (a card no other model shares)."""
    import torch

    torch.manual_seed(seed)
    module = build_model("simple_cnn", 1)
    with torch.no_grad():
        module.classifier[4].weight.mul_(200)  # spread the scores, so labels differ between models
    spec = dataclasses.replace(default_input_spec("simple_cnn"), **input_fields)
    card = ModelCard(id=model_id, name=f"Model {model_id}", architecture="simple_cnn", num_logits=1, input=spec,
                     trained_on=f"nothing ({model_id})", limitations=f"Limits of {model_id}.")
    return library.add(card, module.state_dict())


def two_models_library() -> ModelLibrary:
    library = ModelLibrary()
    # different policies and JPEG draft sizes (32 and 40): one decode must serve both
    add_model(library, "alpha", 0)
    add_model(library, "beta", 1, policy="resize_center_crop", resize=40)
    return library


def fill_folder(root: Path) -> Path:
    root.mkdir()
    for i, (w, h) in enumerate([(40, 40), (64, 48), (90, 30), (33, 70)]):
        images.gradient(w, h, seed=i).save(root / f"p{i}.png")
    images.gradient(100, 80, seed=7).save(root / "camera.jpg", "JPEG", quality=90)
    images.gradient(32, 32, seed=8).save(root / "=HYPERLINK(evil).png")  # a formula-looking file name
    (root / "notes.jpg").write_text("not an image\n")
    return root


def read_csv(path: Path) -> tuple[list[str], list[dict]]:
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        return header, [dict(zip(header, row)) for row in reader]
