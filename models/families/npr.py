"""NPR: Tan et al., "Rethinking the Up-Sampling Operations in CNN-based Generative Network for Generalizable
Deepfake Detection", CVPR 2024 (github.com/chuangchuangtan/NPR-DeepfakeDetection).

The network (their networks/resnet.py): the first two stages of a ResNet-50 fed with the image's Neighbouring
Pixel Relationships, x − up(down(x)) with nearest-neighbour sampling by a factor of 2, scaled by 2/3; a 3×3
stride-2 stem; global average pooling and one linear logit `fc1` (512 → 1, sigmoid). Their test.py loads the
published NPR.pth as a plain state dict (`torch.load` → `load_state_dict(strict=True)`), and feeds the
ForenSynths, DiffusionForensics and UniversalFakeDetect test sets resized to 256×256 (data/datasets.py:
`transforms.Resize((loadSize, loadSize))`, loadSize 256, bilinear; no crop) with the ImageNet mean and std.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.resnet import Bottleneck


def npr_residual(x: torch.Tensor) -> torch.Tensor:
    """x minus its nearest-neighbour down- and up-sampled copy (the sides must be even)."""
    down = F.interpolate(x, scale_factor=0.5, mode="nearest", recompute_scale_factor=True)
    return x - F.interpolate(down, scale_factor=2.0, mode="nearest", recompute_scale_factor=True)


class NPRResNet50(nn.Module):
    def __init__(self, num_logits: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = _stage(64, 64, blocks=3, stride=1)
        self.layer2 = _stage(256, 128, blocks=4, stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc1 = nn.Linear(512, num_logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # an odd side would make the up-sampled copy one pixel short: drop the last row/column, as the
        # authors' commented-out lines do
        x = x[..., : x.shape[-2] // 2 * 2, : x.shape[-1] // 2 * 2]
        x = self.maxpool(self.relu(self.bn1(self.conv1(npr_residual(x) * 2.0 / 3.0))))
        x = self.layer2(self.layer1(x))
        return self.fc1(torch.flatten(self.avgpool(x), 1))


def _stage(inplanes: int, planes: int, blocks: int, stride: int) -> nn.Sequential:
    """torchvision's Bottleneck (stride on the 3×3 convolution, as in the authors' block): same parameter names."""
    downsample = nn.Sequential(nn.Conv2d(inplanes, planes * 4, kernel_size=1, stride=stride, bias=False),
                               nn.BatchNorm2d(planes * 4))
    layers = [Bottleneck(inplanes, planes, stride, downsample)]
    layers += [Bottleneck(planes * 4, planes) for _ in range(1, blocks)]
    return nn.Sequential(*layers)
