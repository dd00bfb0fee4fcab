"""Every architecture in the registry builds offline and answers with the logits its card expects."""
import pytest
import torch

from models.registry import ARCHITECTURES, build_model, get_architecture, UnknownArchitectureError


@pytest.mark.parametrize("name", sorted(name for name, arch in ARCHITECTURES.items() if not arch.external))
def test_builds_offline_with_head_and_gradcam_layer(name):
    arch = ARCHITECTURES[name]
    model = build_model(name, 1).eval()
    assert model.state_dict()[arch.head_weight].shape[0] == 1
    model.get_submodule(arch.gradcam_layer)  # the explainer's target exists
    with torch.inference_mode():
        out = model(torch.zeros(1, 3, arch.input_size, arch.input_size))
    assert out.shape == (1, 1)


def test_unknown_architecture_lists_known_ones():
    with pytest.raises(UnknownArchitectureError, match="resnet50"):
        get_architecture("resnet9000")


def test_simple_cnn_matches_seed_table():
    model = build_model("simple_cnn", 1)
    shapes = []
    x = torch.zeros(1, 3, 32, 32)
    for layer in model.features:
        x = layer(x)
        shapes.append(tuple(x.shape[1:]))
    assert shapes[1] == (32, 30, 30) and shapes[2] == (32, 15, 15)
    assert shapes[5] == (64, 6, 6) and shapes[8] == (128, 2, 2)


@pytest.mark.parametrize("name", sorted(name for name, arch in ARCHITECTURES.items() if arch.external))
def test_external_architectures_are_built_from_their_card(name):
    """Hugging Face and ONNX networks come from the card's own description (models/families), never from a
    number of logits."""
    with pytest.raises(ValueError, match="rebuilt from their card"):
        build_model(name, 1)
