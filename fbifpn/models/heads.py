"""MTLNet heads on the stride-4 neck output (Liu et al., JEIT 2025).

- cls: the real/fake logit.
- mask: the learnable manipulation mask, a logit map supervised by the blend boundary (Face X-ray,
  Li et al., CVPR 2020) or by the mask itself.
- consistency: patch embeddings whose pairwise similarities are supervised by whether two patches
  share a source (PCL, Zhao et al., ICCV 2021).
"""

from __future__ import annotations

import math

import torch
from torch import nn

# Focal-loss prior (Lin et al., ICCV 2017): maps whose positives are rare start near probability 0.01,
# so early training is not spent pushing every pixel's logit down from 0.
PRIOR_PROBABILITY = 0.01


def init_prior(conv: nn.Conv2d, probability: float = PRIOR_PROBABILITY) -> nn.Conv2d:
    nn.init.constant_(conv.bias, -math.log((1 - probability) / probability))
    return conv


def conv_bn_act(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.SiLU(),
    )


class ClsHead(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.conv = conv_bn_act(width, width)
        self.fc = nn.Linear(width, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv(x).mean(dim=(2, 3))).squeeze(1)


class MaskHead(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.conv = conv_bn_act(width, width)
        self.out = init_prior(nn.Conv2d(width, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.conv(x))


class ConsistencyHead(nn.Module):
    """D-dim embeddings on a G x G grid; `consistency_logits` turns them into the pairwise volume.
    `on_grid` pools first and runs the convs on the grid rather than at stride 4."""

    def __init__(self, width: int, embed_dim: int, grid: int, on_grid: bool = False):
        super().__init__()
        self.conv = conv_bn_act(width, width)
        self.out = nn.Conv2d(width, embed_dim, 1)
        self.pool = nn.AdaptiveAvgPool2d(grid)
        self.on_grid = on_grid

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.on_grid:
            return self.out(self.conv(self.pool(x)))
        return self.pool(self.out(self.conv(x)))


def consistency_logits(embed: torch.Tensor) -> torch.Tensor:
    """[B, D, G, G] -> [B, G*G, G*G] logits <f_i, f_j> / sqrt(D); the volume is their sigmoid."""
    f = embed.flatten(2).float()
    return torch.einsum("bdi,bdj->bij", f, f) / f.shape[1] ** 0.5
