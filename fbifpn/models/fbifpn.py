"""F-BiFPN: a weighted bidirectional feature pyramid whose top-down fusions are guided by a
forgery attention map.

Building blocks follow EfficientDet (Tan et al., CVPR 2020): fast normalized fusion
`O = sum_i w_i I_i / (eps + sum_j w_j)` with `w = relu(raw)`, then SiLU, a depthwise-separable 3x3
conv and BN. The topology is data (`fbifpn.models.topology`: a node list per layer, as effdet's
`fpn_config`), so BiFPN, FPN, PAN and the C5-only ablation differ only in their node lists.

Forgery attention (Liu et al., JEIT 2025; suppress semantics from LAA-Net's E-FPN, Nguyen et al.,
CVPR 2024): at every top-down node, `A = sigmoid(conv1x1(up(P_higher)))` modulates the lateral input
before fusion, `(1 + A) * P` (emphasize) or `(1 - A) * P` (suppress). Each `A` is returned as a logit
map so the loss can deep-supervise it with the forgery-location mask.

Levels are numbered from the finest (0, stride 4) to the coarsest. The finest level may be narrower
than the others (`neck.finest_width`): its maps are 16x larger than at stride 16, so its width sets most
of the neck's and all of the heads' cost. A 1x1 conv + BN moves a map between widths, applied at the
lower of the two resolutions (EfficientDet's resampling between levels of different widths).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from fbifpn.config import NeckConfig
from fbifpn.models.heads import init_prior
from fbifpn.models.topology import TOPOLOGIES, Node, Topology

# --------------------------------------------------------------------------- building blocks


def resize_to(
    x: torch.Tensor, size: tuple[int, int], from_level: int, to_level: int, mode: str
) -> torch.Tensor:
    """Move a map between levels: max-pool down (EfficientDet), interpolate up, and always land on the
    exact target size (legacy_xception's maps are not exact halvings)."""
    for _ in range(to_level - from_level):
        x = F.max_pool2d(x, kernel_size=3, stride=2, padding=1)
    if x.shape[-2:] != size:
        x = F.interpolate(x, size=size, mode=mode)
    return x


def weighted_average(features: list[torch.Tensor], raw: torch.Tensor, eps: float) -> torch.Tensor:
    """Fast normalized fusion."""
    w = normalized(raw, eps)
    return sum(w[i] * f for i, f in enumerate(features))


def normalized(raw: torch.Tensor, eps: float) -> torch.Tensor:
    w = F.relu(raw)
    return w / (w.sum() + eps)


def channel_resample(in_width: int, out_width: int) -> nn.Module:
    if in_width == out_width:
        return nn.Identity()
    return nn.Sequential(nn.Conv2d(in_width, out_width, 1, bias=False), nn.BatchNorm2d(out_width))


def moved(
    x: torch.Tensor, resample: nn.Module, size: tuple[int, int], from_level: int, to_level: int, mode: str
) -> torch.Tensor:
    """A map at `to_level`'s size and width; the width changes at the lower resolution of the two."""
    if from_level > to_level:
        return resize_to(resample(x), size, from_level, to_level, mode)
    return resample(resize_to(x, size, from_level, to_level, mode))


class SeparableConvBlock(nn.Module):
    """SiLU, depthwise 3x3, pointwise 1x1, BN."""

    def __init__(self, width: int):
        super().__init__()
        self.act = nn.SiLU()
        self.depthwise = nn.Conv2d(width, width, 3, padding=1, groups=width, bias=False)
        self.pointwise = nn.Conv2d(width, width, 1, bias=False)
        self.bn = nn.BatchNorm2d(width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.pointwise(self.depthwise(self.act(x))))


class ForgeryAttention(nn.Module):
    """Predicts a 1-channel forgery map from the coarser context and modulates the lateral input."""

    def __init__(self, width: int, mode: str):
        super().__init__()
        if mode not in ("emphasize", "suppress"):
            raise ValueError(f"attention mode {mode!r} has no module; use emphasize or suppress")
        self.mode = mode
        # Starting near A = 0 makes both modes start as the identity on the lateral input.
        self.conv = init_prior(nn.Conv2d(width, 1, 1))

    def forward(self, lateral: torch.Tensor, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logit = self.conv(context)
        a = torch.sigmoid(logit)
        gate = 1 + a if self.mode == "emphasize" else 1 - a
        return gate * lateral, logit


class FusionNode(nn.Module):
    def __init__(self, node: Node, entry_levels: list[int], widths: dict[int, int], cfg: NeckConfig):
        super().__init__()
        if entry_levels[node.inputs[0]] != node.level:
            raise ValueError(f"node {node}: inputs[0] must be the lateral input at level {node.level}")
        self.node = node
        self.input_levels = [entry_levels[i] for i in node.inputs]
        self.eps = cfg.eps
        self.upsample = cfg.upsample
        width = widths[node.level]
        self.resample = nn.ModuleList(
            channel_resample(widths[level], width) for level in self.input_levels[1:]
        )
        self.weight = nn.Parameter(torch.ones(len(node.inputs)))
        use_attention = node.attend and cfg.attention != "none"
        self.attention = ForgeryAttention(width, cfg.attention) if use_attention else None
        self.conv = SeparableConvBlock(width)

    def fusion_weights(self) -> torch.Tensor:
        return normalized(self.weight, self.eps)

    def forward(self, entries: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor | None]:
        lateral = entries[self.node.inputs[0]]
        size = lateral.shape[-2:]
        others = zip(self.node.inputs[1:], self.input_levels[1:], self.resample, strict=True)
        inputs = [lateral] + [
            moved(entries[i], resample, size, level, self.node.level, self.upsample)
            for i, level, resample in others
        ]
        attn_logit = None
        if self.attention is not None:
            inputs[0], attn_logit = self.attention(inputs[0], inputs[1])
        return self.conv(weighted_average(inputs, self.weight, self.eps)), attn_logit


class FusionLayer(nn.Module):
    """One pass over a topology's node list."""

    def __init__(self, topology: Topology, widths: dict[int, int], cfg: NeckConfig):
        super().__init__()
        levels = topology.entry_levels()
        self.nodes = nn.ModuleList(FusionNode(node, levels, widths, cfg) for node in topology.nodes)
        self.outputs = topology.outputs()

    def forward(self, features: list[torch.Tensor]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        entries = list(features)
        attn_logits = []
        for node in self.nodes:
            out, attn_logit = node(entries)
            entries.append(out)
            if attn_logit is not None:
                attn_logits.append(attn_logit)
        return [entries[i] for i in self.outputs], attn_logits


@dataclass
class NeckOutput:
    fused: torch.Tensor  # [B, W_finest, H/4, W/4]
    attn_logits: list[torch.Tensor]  # every attention map, layer by layer, top-down order
    level_weights: torch.Tensor  # normalized v_l, one per level the neck outputs


class FBiFPN(nn.Module):
    """Projection to each level's width, L fusion layers, then adaptive level weighting down to the
    finest level."""

    def __init__(self, in_channels: list[int], cfg: NeckConfig):
        super().__init__()
        self.topology = TOPOLOGIES[cfg.topology](len(in_channels))
        self.levels = self.topology.levels
        self.eps = cfg.eps
        self.upsample = cfg.upsample
        finest = cfg.finest_width or cfg.width
        widths = {level: finest if level == 0 else cfg.width for level in range(len(in_channels))}
        self.proj = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(in_channels[level], widths[level], 1, bias=False), nn.BatchNorm2d(widths[level])
            )
            for level in self.levels
        )
        self.layers = nn.ModuleList(FusionLayer(self.topology, widths, cfg) for _ in range(cfg.layers))
        self.out_resample = nn.ModuleList(channel_resample(widths[level], finest) for level in self.levels)
        # v_l: learned when level weighting is on, a fixed equal average otherwise.
        v = torch.ones(len(self.levels))
        if cfg.level_weighting:
            self.level_weight = nn.Parameter(v)
        else:
            self.register_buffer("level_weight", v)
        self.out_channels = finest
        self.attention_levels = [
            node.level
            for layer in self.layers
            for node, module in zip(self.topology.nodes, layer.nodes, strict=True)
            if module.attention is not None
        ]

    def forward(self, features: list[torch.Tensor]) -> NeckOutput:
        x = [proj(features[level]) for proj, level in zip(self.proj, self.levels, strict=True)]
        attn_logits: list[torch.Tensor] = []
        for layer in self.layers:
            x, maps = layer(x)
            attn_logits.extend(maps)
        size = features[0].shape[-2:]
        fused_levels = [
            moved(f, resample, size, level, 0, self.upsample)
            for f, level, resample in zip(x, self.levels, self.out_resample, strict=True)
        ]
        fused = weighted_average(fused_levels, self.level_weight, self.eps)
        return NeckOutput(fused, attn_logits, normalized(self.level_weight, self.eps))
