"""Two published ViT detectors (CVPR 2025), rebuilt offline with timm (pretrained=False; the weights come from the
user's file).

B-Free: Guillaro et al., "A Bias-Free Training Paradigm for More General AI-generated Image Detection"
(github.com/grip-unina/B-Free, folder code/). networks/__init__.py builds `timm_c5i504_vit_base_patch14_reg4_dinov2`:
timm's DINOv2 ViT-B/14 with four registers and one logit, wrapped by networks/wrapper5crops.py (`Wrapper5crops`,
input 504). The wrapper applies the 14×14 patch convolution to the whole picture, tiles the token grid when it is
smaller than 36×36 tokens (then keeps its top-left 36×36), cuts five 36×36 token windows (centre, top-left,
bottom-left, bottom-right, top-right), runs them through the transformer and averages the five logits. The picture
is fed as it is: utils/normalization.py get_list_norm('resnet') is ToTensor + the ImageNet mean and std, no resize,
no crop. load_weights() reads {'model': state dict} with timm's own tensor names (patch_embed.* included); a raw
logit > 0 means "fake", so P(fake) is its sigmoid.

Community Forensics: Park and Owens, "Community Forensics: Using Thousands of Generators to Train Fake Image
Detectors" (github.com/JeongsooP/Community-Forensics). models.py `ViTClassifier` holds timm's
vit_small_patch16_384 (or _224) as `self.vit` with its head replaced by Linear(384, 1); preprocess_input() and
dataloader.py get_transform(mode='test') resize the short side to 440 (256 for the 224 model; torchvision
Resize, bilinear), centre-crop 384 (224), ToTensor and the ImageNet mean and std; the logit's sigmoid is P(fake).
utils.py save_checkpoint() writes {'model': state dict, 'optimizer', 'scheduler', 'scaler', 'epoch', 'itr'} with
'vit.' names ('_orig_mod.' when compiled); the Hugging Face copies (OwensLab/commfor-model-384, -224) hold the same
'vit.' names in model.safetensors.
"""
from __future__ import annotations

import torch
from timm.models.vision_transformer import VisionTransformer
from torch import nn

BFREE_CROP = 504  # Wrapper5crops(model, 504): 36×36 tokens of 14×14 pixels
# timm vision_transformer.py vit_base_patch14_reg4_dinov2(): the network the authors name
DINOV2_VITB14_REG4 = dict(patch_size=14, embed_dim=768, depth=12, num_heads=12, init_values=1e-5, reg_tokens=4,
                          no_embed_class=True)


class FiveCropViT(VisionTransformer):
    """B-Free's network: timm's ViT (same tensor names as the published file) whose forward takes a whole picture
    and averages the logits of five token windows, as Wrapper5crops does."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        grid = tuple(self.patch_embed.grid_size)
        tokens = self.patch_embed.proj(x)  # the convolution drops the last (< 14) rows and columns
        height, width = tokens.shape[-2:]
        if height < grid[0] or width < grid[1]:  # a small picture: its tokens repeated, top-left 36×36 kept
            tokens = tile_tokens(tokens, grid)
        starts = five_crop_starts(tokens.shape[-2:], grid)
        unique = list(dict.fromkeys(starts))  # crops that coincide are computed once and counted as often
        self.layout = (height, width, unique)  # for gradcam_reshape
        crops = torch.cat([tokens[:, :, top:top + grid[0], left:left + grid[1]] for top, left in unique])
        crops = self.patch_embed.norm(crops.flatten(2).transpose(1, 2))  # (crops·B, 36·36, C)
        features = self.norm(self.blocks(self.norm_pre(self.patch_drop(self._pos_embed(crops)))))
        logits = self.forward_head(features).view(len(unique), x.shape[0], -1)
        weights = torch.tensor([starts.count(s) for s in unique], dtype=logits.dtype, device=logits.device)
        return (logits * weights.view(-1, 1, 1)).sum(0) / len(starts)

    def gradcam_reshape(self, tokens: torch.Tensor) -> torch.Tensor:
        """Grad-CAM's view of a block's tokens (crops·B, 5 + 36·36, C): the class and register tokens dropped and
        each window's patch tokens put back where they came from on the picture's token grid (B, C, h, w),
        averaged where windows overlap; a part no window covers stays 0 (the network never saw it)."""
        height, width, starts = self.layout
        rows, cols = self.patch_embed.grid_size
        batch = tokens.shape[0] // len(starts)
        channels = tokens.shape[-1]
        patches = tokens[:, self.num_prefix_tokens:, :].reshape(len(starts), batch, rows * cols, channels)
        total = tokens.new_zeros(batch, height * width, channels)
        count = tokens.new_zeros(1, height * width, 1)
        with torch.no_grad():
            for crop, (top, left) in enumerate(starts):
                # window token (r, c) is picture token ((top + r) mod h, (left + c) mod w): tiling repeats the grid
                r = (torch.arange(rows, device=tokens.device) + top) % height
                c = (torch.arange(cols, device=tokens.device) + left) % width
                index = (r[:, None] * width + c[None, :]).flatten()
                total.index_add_(1, index, patches[crop].detach())
                count.index_add_(1, index, torch.ones_like(count[:, :rows * cols]))
        grid = total / count.clamp(min=1)
        return grid.reshape(batch, height, width, channels).permute(0, 3, 1, 2)


def tile_tokens(tokens: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """wrapper5crops.py replicate_wrap: repeat the token grid until it covers grid, then keep grid's top-left
    part (in both directions, so a side already longer than the grid is cut too)."""
    rep_h = max(-(-grid[0] // tokens.shape[-2]), 1)
    rep_w = max(-(-grid[1] // tokens.shape[-1]), 1)
    return tokens.repeat(1, 1, rep_h, rep_w)[..., :grid[0], :grid[1]]


def five_crop_starts(size: tuple[int, int], grid: tuple[int, int]) -> list[tuple[int, int]]:
    """(top, left) of Wrapper5crops' windows in its order: centre, top-left, bottom-left, bottom-right,
    top-right."""
    height, width = int(size[0]), int(size[1])
    bottom, right = height - grid[0], width - grid[1]
    centre = (max(bottom // 2, 0), max(right // 2, 0))
    return [centre, (0, 0), (bottom, 0), (bottom, right), (0, right)]


def bfree_network(num_logits: int) -> nn.Module:
    return FiveCropViT(img_size=BFREE_CROP, num_classes=num_logits, **DINOV2_VITB14_REG4)


class CommunityForensicsViT(nn.Module):
    """models.py ViTClassifier: timm's ViT-S/16 under the attribute `vit` (hence the file's 'vit.' names)."""

    def __init__(self, model_name: str, num_logits: int) -> None:
        super().__init__()
        import timm

        self.vit = timm.create_model(model_name, pretrained=False, num_classes=num_logits)

    @property
    def num_prefix_tokens(self) -> int:  # the class token, which Grad-CAM's token → grid reshape drops
        return int(self.vit.num_prefix_tokens)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.vit(x)


def community_forensics_network(model_name: str):
    def build(num_logits: int) -> nn.Module:
        return CommunityForensicsViT(model_name, num_logits)

    return build
