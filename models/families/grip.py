"""GRIP-UNINA's ResNet-50 "nodown": Gragnaniello et al., ICME 2021 (github.com/grip-unina/GANimageDetection) and
Corvi et al., ICASSP 2023 (github.com/grip-unina/DMimageDetection, models Grag2021_progan and Grag2021_latent).

A torchvision ResNet-50 whose stem keeps the full resolution: the 7×7 convolution and the max-pool have stride 1
(`stride0=1` in resnet50nodown.py and networks/resnet_mod.py), so the network sees the high-frequency traces
that a stride-2 stem averages away. The head is a 2048 → 1 linear layer applied at every position
(`ChannelLinear`): GANimageDetection pools first, DMimageDetection (`gap_size=1`) averages the per-position
logits (main.py: `np.mean(out_tens, (1, 2))`); both are the same number because the layer is linear. The image is
fed whole, without resizing or cropping, normalised with the ImageNet mean and std (normalization.py
`get_list_norm('resnet')`, resnet50nodown.py `self.transform`); the logit's sigmoid is P(fake).

The parameter names and shapes are exactly torchvision's resnet50(num_classes=1), so a file alone cannot tell
these models from CNNDetection's: the catalogue's file name or SHA-256, or `--family`, decides.
"""
from __future__ import annotations

from torch import nn


def resnet50_nodown(num_logits: int = 1) -> nn.Module:
    import torchvision.models as tvm

    model = tvm.resnet50(weights=None, num_classes=num_logits)
    model.conv1.stride = (1, 1)
    model.maxpool.stride = 1
    return model
