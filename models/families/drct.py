"""DRCT: Chen et al., "DRCT: Diffusion Reconstruction Contrastive Training towards Universal Detection of Diffusion
Generated Images", ICML 2024 (github.com/beibuwandeluori/DRCT).

The published Conv-B detectors (network/models.py, ContrastiveModels with get_convnext): timm's
convnext_base_in22k (timm 0.6.12, requirements.txt) whose classifier `head.fc` is replaced by a 1024 → 1024
embedding layer, then `fc`, a Linear(1024, 2). train_contrastive.py saves `model.state_dict()` as it is, so the
file is a plain state dict: 'model.stem.0.weight' … 'model.head.fc.weight' [1024, 1024], 'fc.weight' [2, 1024].
P(fake) = 1 − softmax(logits)[0] (eval_model), which for two classes is softmax[1].

Test input (data/transform.py create_val_transforms(224, is_crop=True), scripts/test_*.sh pass --is_crop):
albumentations PadIfNeeded(224, black, centred) then CenterCrop(224) — the crop's offset is rounded down, not
to even as in torchvision — then Normalize with the ImageNet mean and std; no resize.
"""
from __future__ import annotations

import torch
from torch import nn

EMBEDDING = 1024  # --embedding_size of every published command line


def drct_convnext(num_logits: int = 2) -> nn.Module:
    """ConvNeXt-Base with the 1024-d embedding as its classifier, and `fc` on top. Forensight's checkpoint reader
    drops the 'model.' prefix of every key (as it does for any training script's wrapper), so the network is
    timm's ConvNeXt itself with one more layer: the authors' tensors load under their own names less that prefix."""
    from timm.models.convnext import ConvNeXt

    class DrctConvNeXt(ConvNeXt):
        def __init__(self) -> None:
            # timm's convnext_base: the in22k weights differ only in the (replaced) classifier
            super().__init__(depths=(3, 3, 27, 3), dims=(128, 256, 512, 1024), num_classes=EMBEDDING)
            self.fc = nn.Linear(EMBEDDING, num_logits)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(super().forward(x))

    return DrctConvNeXt()
