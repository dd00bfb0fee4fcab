"""The simple CNN of seed 001 (CIFAKE, table 2): three conv/pool stages, a 256-unit dense layer, dropout."""
from __future__ import annotations

import torch
from torch import nn


class SimpleCNN(nn.Module):
    """32x32 RGB in, `num_logits` out (1 = one sigmoid logit as in the seed)."""

    def __init__(self, num_logits: int = 1, dropout: float = 0.5) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 32, 3), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(64, 128, 3), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(128 * 2 * 2, 256), nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(256, num_logits),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))
