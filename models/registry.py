"""Architectures by name, built offline (no pretrained download), each with its input defaults.

Shaped like timm's registry: one name → a builder plus a small record of how the network wants its input
and where Grad-CAM should look.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
HALF = (0.5, 0.5, 0.5)


@dataclass(frozen=True)
class Architecture:
    name: str
    build: Callable[[int], nn.Module]  # num_logits -> untrained module
    input_size: int
    resize_size: int  # shorter side before the centre crop; == input_size means a plain resize
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    head_weight: str  # state-dict key of the classifier weight; its first dim is the number of logits
    gradcam_layer: str  # dotted path for model.get_submodule
    is_vit: bool = False  # Grad-CAM needs a token → feature-map reshape
    channels_last: bool = True  # helps convolutions on CPU and CUDA; not transformers
    family: str = ""
    # Built from the card's own description (a Hugging Face config, an ONNX graph) by models/families, not from a
    # number of logits: build_model refuses it and nothing trains it
    external: bool = False
    notes: str = field(default="", compare=False)

    @property
    def default_policy(self) -> str:
        return "resize" if self.resize_size == self.input_size else "resize_center_crop"


def _torchvision(fn_name: str) -> Callable[[int], nn.Module]:
    def build(num_logits: int) -> nn.Module:
        import torchvision.models as tvm

        return getattr(tvm, fn_name)(weights=None, num_classes=num_logits)

    return build


def _timm(model_name: str) -> Callable[[int], nn.Module]:
    def build(num_logits: int) -> nn.Module:
        import timm

        return timm.create_model(model_name, pretrained=False, num_classes=num_logits)

    return build


def _simple_cnn(num_logits: int) -> nn.Module:
    from models.simple_cnn import SimpleCNN

    return SimpleCNN(num_logits)


def _npr(num_logits: int) -> nn.Module:
    from models.families.npr import NPRResNet50

    return NPRResNet50(num_logits)


def _resnet50_nodown(num_logits: int) -> nn.Module:
    from models.families.grip import resnet50_nodown

    return resnet50_nodown(num_logits)


def _vit_detector(which: str) -> Callable[[int], nn.Module]:
    def build(num_logits: int) -> nn.Module:
        from models.families import vit_detectors as v

        if which == "bfree":
            return v.bfree_network(num_logits)
        return v.community_forensics_network(f"vit_small_patch16_{which[-3:]}")(num_logits)

    return build


def _external(name: str) -> Callable[[int], nn.Module]:
    def build(num_logits: int) -> nn.Module:
        raise ValueError(f"{name} networks are rebuilt from their card (models/families), not by number of logits")

    return build


_ARCHITECTURES = [
    Architecture("resnet18", _torchvision("resnet18"), 224, 256, IMAGENET_MEAN, IMAGENET_STD, "fc.weight",
                 "layer4.1", family="ResNet (torchvision)"),
    Architecture("resnet50", _torchvision("resnet50"), 224, 256, IMAGENET_MEAN, IMAGENET_STD, "fc.weight",
                 "layer4.2", family="ResNet (torchvision)"),
    Architecture("resnet101", _torchvision("resnet101"), 224, 256, IMAGENET_MEAN, IMAGENET_STD, "fc.weight",
                 "layer4.2", family="ResNet (torchvision)"),
    Architecture("efficientnet_lite0", _timm("tf_efficientnet_lite0"), 224, 256, HALF, HALF,
                 "classifier.weight", "bn2", family="EfficientNet-Lite (timm)"),
    Architecture("convnextv2_tiny", _timm("convnextv2_tiny"), 224, 256, IMAGENET_MEAN, IMAGENET_STD,
                 "head.fc.weight", "stages.3", family="ConvNeXt V2 (timm)"),
    Architecture("convnextv2_base", _timm("convnextv2_base"), 224, 256, IMAGENET_MEAN, IMAGENET_STD,
                 "head.fc.weight", "stages.3", family="ConvNeXt V2 (timm)"),
    Architecture("vit_base_patch16_224", _timm("vit_base_patch16_224"), 224, 256, HALF, HALF, "head.weight",
                 "blocks.11.norm1", is_vit=True, channels_last=False, family="ViT (timm)"),
    Architecture("simple_cnn", _simple_cnn, 32, 32, HALF, HALF, "classifier.4.weight", "features.6",
                 family="Simple CNN (seed 001)"),
    # published detectors' own networks (models/families): their cards come from resources/detector_catalogue.json
    Architecture("npr_resnet50", _npr, 256, 256, IMAGENET_MEAN, IMAGENET_STD, "fc1.weight", "layer2",
                 family="NPR ResNet-50 (Tan et al. 2024)"),
    Architecture("resnet50_nodown", _resnet50_nodown, 64, 64, IMAGENET_MEAN, IMAGENET_STD, "fc.weight",
                 "layer4", family="ResNet-50 without first downsampling (GRIP-UNINA)"),
    # B-Free: takes the whole picture and cuts its five 504-pixel token windows itself, so it is not is_vit here
    # (any picture size); Grad-CAM maps its tokens back onto the picture with the network's own gradcam_reshape
    Architecture("bfree_vitb14_reg4", _vit_detector("bfree"), 504, 504, IMAGENET_MEAN, IMAGENET_STD, "head.weight",
                 "blocks.11.norm1", channels_last=False, family="DINOv2 ViT-B/14 + 4 registers, five 504-px crops "
                                                             "(B-Free)"),
    Architecture("commfor_vit_small_384", _vit_detector("commfor384"), 384, 440, IMAGENET_MEAN, IMAGENET_STD,
                 "vit.head.weight", "vit.blocks.11.norm1", is_vit=True, channels_last=False,
                 family="ViT-S/16 384 (Community Forensics)"),
    Architecture("commfor_vit_small_224", _vit_detector("commfor224"), 224, 256, IMAGENET_MEAN, IMAGENET_STD,
                 "vit.head.weight", "vit.blocks.11.norm1", is_vit=True, channels_last=False,
                 family="ViT-S/16 224 (Community Forensics)"),
    Architecture("hf_image_classifier", _external("Hugging Face"), 224, 224, HALF, HALF, "", "",
                 channels_last=False, family="Hugging Face image classifier (transformers)", external=True),
    Architecture("onnx", _external("ONNX"), 224, 224, IMAGENET_MEAN, IMAGENET_STD, "", "", channels_last=False,
                 family="ONNX graph (onnxruntime)", external=True),
    # a frozen foundation-model image tower (CLIP ViT via open-clip-torch, DINOv2 via timm) + one linear logit:
    # UnivFD and the linear probes of training/probe.py; the tower's shape is on the card (families/tower_linear.py)
    Architecture("tower_linear", _external("Foundation-model tower"), 224, 224, (0.48145466, 0.4578275, 0.40821073),
                 (0.26862954, 0.26130258, 0.27577711), "", "", is_vit=True, channels_last=False,
                 family="Foundation-model image tower + linear head (open-clip-torch, timm)", external=True),
    # no network: the scores of other library models combined by the card's rule (models/ensemble.py)
    Architecture("ensemble", _external("Ensemble"), 224, 224, IMAGENET_MEAN, IMAGENET_STD, "", "",
                 channels_last=False, family="Ensemble of library models (their scores combined)", external=True),
]

ARCHITECTURES: dict[str, Architecture] = {a.name: a for a in _ARCHITECTURES}


class UnknownArchitectureError(KeyError):
    def __str__(self) -> str:
        return f"unknown architecture {self.args[0]!r}; known: {', '.join(sorted(ARCHITECTURES))}"


def get_architecture(name: str) -> Architecture:
    try:
        return ARCHITECTURES[name]
    except KeyError:
        raise UnknownArchitectureError(name) from None


def build_model(name: str, num_logits: int = 2) -> nn.Module:
    """An untrained network of the named architecture; weights come from a card's safetensors file."""
    if num_logits not in (1, 2):
        raise ValueError("a detector has 1 logit (sigmoid) or 2 logits (softmax)")
    return get_architecture(name).build(num_logits)
