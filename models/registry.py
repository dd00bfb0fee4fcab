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
# OpenAI CLIP's normalisation: its towers, and OpenCLIP's, were trained with it
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass(frozen=True, kw_only=True)  # keywords only: eight look-alike fields are unreadable by position
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


def _drct(num_logits: int) -> nn.Module:
    from models.families.drct import drct_convnext

    return drct_convnext(num_logits)


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


def _efficientnet_lite(n: int, input_size: int) -> Architecture:
    return Architecture(name=f"efficientnet_lite{n}", build=_timm(f"tf_efficientnet_lite{n}"),
                        family="EfficientNet-Lite (timm)", input_size=input_size, resize_size=input_size + 32,
                        mean=HALF, std=HALF, head_weight="classifier.weight", gradcam_layer="bn2")


_ARCHITECTURES = [
    Architecture(name="resnet18", build=_torchvision("resnet18"), family="ResNet (torchvision)",
                 input_size=224, resize_size=256, mean=IMAGENET_MEAN, std=IMAGENET_STD,
                 head_weight="fc.weight", gradcam_layer="layer4.1"),
    Architecture(name="resnet50", build=_torchvision("resnet50"), family="ResNet (torchvision)",
                 input_size=224, resize_size=256, mean=IMAGENET_MEAN, std=IMAGENET_STD,
                 head_weight="fc.weight", gradcam_layer="layer4.2"),
    Architecture(name="resnet101", build=_torchvision("resnet101"), family="ResNet (torchvision)",
                 input_size=224, resize_size=256, mean=IMAGENET_MEAN, std=IMAGENET_STD,
                 head_weight="fc.weight", gradcam_layer="layer4.2"),
    # Lite0/1/2 (timm's crop sizes 224, 240, 260): the backbones with ImageNet weights offline (models/pretrained.py)
    *(_efficientnet_lite(n, size) for n, size in ((0, 224), (1, 240), (2, 260))),
    Architecture(name="convnextv2_tiny", build=_timm("convnextv2_tiny"), family="ConvNeXt V2 (timm)",
                 input_size=224, resize_size=256, mean=IMAGENET_MEAN, std=IMAGENET_STD,
                 head_weight="head.fc.weight", gradcam_layer="stages.3"),
    Architecture(name="convnextv2_base", build=_timm("convnextv2_base"), family="ConvNeXt V2 (timm)",
                 input_size=224, resize_size=256, mean=IMAGENET_MEAN, std=IMAGENET_STD,
                 head_weight="head.fc.weight", gradcam_layer="stages.3"),
    Architecture(name="vit_base_patch16_224", build=_timm("vit_base_patch16_224"), family="ViT (timm)",
                 input_size=224, resize_size=256, mean=HALF, std=HALF,
                 head_weight="head.weight", gradcam_layer="blocks.11.norm1", is_vit=True, channels_last=False),
    Architecture(name="simple_cnn", build=_simple_cnn, family="Simple CNN (seed 001)",
                 input_size=32, resize_size=32, mean=HALF, std=HALF,
                 head_weight="classifier.4.weight", gradcam_layer="features.6"),
    # published detectors' own networks (models/families): their cards come from resources/detector_catalogue.json
    Architecture(name="npr_resnet50", build=_npr, family="NPR ResNet-50 (Tan et al. 2024)",
                 input_size=256, resize_size=256, mean=IMAGENET_MEAN, std=IMAGENET_STD,
                 head_weight="fc1.weight", gradcam_layer="layer2"),
    Architecture(name="resnet50_nodown", build=_resnet50_nodown,
                 family="ResNet-50 without first downsampling (GRIP-UNINA)",
                 input_size=64, resize_size=64, mean=IMAGENET_MEAN, std=IMAGENET_STD,
                 head_weight="fc.weight", gradcam_layer="layer4"),
    Architecture(name="drct_convnext_base", build=_drct, family="ConvNeXt-Base + 1024-d embedding (DRCT)",
                 input_size=224, resize_size=224, mean=IMAGENET_MEAN, std=IMAGENET_STD,
                 head_weight="fc.weight", gradcam_layer="stages.3"),
    # B-Free: takes the whole picture and cuts its five 504-pixel token windows itself, so it is not is_vit here
    # (any picture size); Grad-CAM maps its tokens back onto the picture with the network's own gradcam_reshape
    Architecture(name="bfree_vitb14_reg4", build=_vit_detector("bfree"),
                 family="DINOv2 ViT-B/14 + 4 registers, five 504-px crops (B-Free)",
                 input_size=504, resize_size=504, mean=IMAGENET_MEAN, std=IMAGENET_STD,
                 head_weight="head.weight", gradcam_layer="blocks.11.norm1", channels_last=False),
    Architecture(name="commfor_vit_small_384", build=_vit_detector("commfor384"),
                 family="ViT-S/16 384 (Community Forensics)",
                 input_size=384, resize_size=440, mean=IMAGENET_MEAN, std=IMAGENET_STD,
                 head_weight="vit.head.weight", gradcam_layer="vit.blocks.11.norm1", is_vit=True, channels_last=False),
    Architecture(name="commfor_vit_small_224", build=_vit_detector("commfor224"),
                 family="ViT-S/16 224 (Community Forensics)",
                 input_size=224, resize_size=256, mean=IMAGENET_MEAN, std=IMAGENET_STD,
                 head_weight="vit.head.weight", gradcam_layer="vit.blocks.11.norm1", is_vit=True, channels_last=False),
    Architecture(name="hf_image_classifier", build=_external("Hugging Face"),
                 family="Hugging Face image classifier (transformers)", external=True,
                 input_size=224, resize_size=224, mean=HALF, std=HALF,
                 head_weight="", gradcam_layer="", channels_last=False),
    Architecture(name="onnx", build=_external("ONNX"), family="ONNX graph (onnxruntime)", external=True,
                 input_size=224, resize_size=224, mean=IMAGENET_MEAN, std=IMAGENET_STD,
                 head_weight="", gradcam_layer="", channels_last=False),
    # a frozen foundation-model image tower (CLIP ViT via open-clip-torch, DINOv2 via timm) + one linear logit:
    # UnivFD and the linear probes of training/probe.py; the tower's shape is on the card (families/tower_linear.py)
    Architecture(name="tower_linear", build=_external("Foundation-model tower"),
                 family="Foundation-model image tower + linear head (open-clip-torch, timm)", external=True,
                 input_size=224, resize_size=224, mean=CLIP_MEAN, std=CLIP_STD,
                 head_weight="", gradcam_layer="", is_vit=True, channels_last=False),
    # RINE (Koutlis & Papadopoulos 2024): a CLIP tower's per-block class tokens + the authors' head (families/rine.py)
    Architecture(name="clip_rine", build=_external("RINE"),
                 family="CLIP image tower + RINE intermediate-block head (open-clip-torch)", external=True,
                 input_size=224, resize_size=224, mean=CLIP_MEAN, std=CLIP_STD,
                 head_weight="", gradcam_layer="", is_vit=True, channels_last=False),
    # DRCT's CLIP variant (Chen et al. 2024): the tower travels in the detector's own file (families/drct.py)
    Architecture(name="drct_clip", build=_external("DRCT CLIP"),
                 family="CLIP image tower + 1024-d embedding and 2 logits (DRCT, open-clip-torch)", external=True,
                 input_size=224, resize_size=224, mean=IMAGENET_MEAN, std=IMAGENET_STD,
                 head_weight="", gradcam_layer="", is_vit=True, channels_last=False),
    # no network: the scores of other library models combined by the card's rule (models/ensemble.py)
    Architecture(name="ensemble", build=_external("Ensemble"),
                 family="Ensemble of library models (their scores combined)", external=True,
                 input_size=224, resize_size=224, mean=IMAGENET_MEAN, std=IMAGENET_STD,
                 head_weight="", gradcam_layer="", channels_last=False),
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
