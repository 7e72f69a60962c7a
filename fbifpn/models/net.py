"""F-BiFPN-MTLNet assembled: backbone -> F-BiFPN neck -> cls / mask / consistency heads.

`build_model(cfg)` builds the architecture of `cfg.model.variant` from the model section as it stands:
the config holds the variant's settings already (`load_config`), so what it says is what is built.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from fbifpn.config import Config, ModelConfig, variant_of
from fbifpn.models.backbone import FeatureBackbone, PooledBackbone
from fbifpn.models.fbifpn import FBiFPN
from fbifpn.models.heads import ClsHead, ConsistencyHead, MaskHead


@dataclass
class ModelOutput:
    logit: torch.Tensor  # [B] real (<0) / fake (>0)
    mask_logit: torch.Tensor | None = None  # [B, 1, H/4, W/4]; None without a mask head
    attn_logits: list[torch.Tensor] = field(default_factory=list)  # [B, 1, h_l, w_l] per attended node
    attn_levels: list[int] = field(default_factory=list)  # the pyramid level of each attention map
    embed: torch.Tensor | None = None  # [B, D, G, G]; None without a consistency head
    level_weights: torch.Tensor | None = None  # normalized v_l of the neck's adaptive level weighting


def topk_mean(prob_map: torch.Tensor, fraction: float) -> torch.Tensor:
    """Mean of the top `fraction` of each map's values: [B, 1, h, w] -> [B]."""
    flat = prob_map.flatten(1)
    k = max(1, round(fraction * flat.shape[1]))
    return flat.topk(k, dim=1).values.mean(dim=1)


class Detector(nn.Module):
    """Common scoring for every architecture: the weighted discrimination of method.md."""

    def __init__(self, model: ModelConfig, normalization: tuple[tuple[float, ...], tuple[float, ...]]):
        super().__init__()
        self.beta = model.beta
        self.score_topk = model.score_topk
        self.mean, self.std = normalization  # the backbone's own input normalization

    def score_heads(self) -> tuple[str, ...]:
        """The heads `score` reads: what inference computes (`model(x, heads=model.score_heads())`)."""
        return ("cls",) if self.beta == 0 else ("cls", "mask")

    def score(self, out: ModelOutput) -> torch.Tensor:
        """Fake probability per image: (1 - beta) sigmoid(cls) + beta topk_mean(sigmoid(mask))."""
        p = torch.sigmoid(out.logit.float())
        if self.beta == 0 or out.mask_logit is None:
            return p
        return (1 - self.beta) * p + self.beta * topk_mean(
            torch.sigmoid(out.mask_logit.float()), self.score_topk
        )


class FBiFPNMTLNet(Detector):
    def __init__(self, model: ModelConfig, pretrained: bool | str | None = None):
        backbone = FeatureBackbone(model.backbone, pretrained)
        super().__init__(model, (backbone.pretrained_cfg["mean"], backbone.pretrained_cfg["std"]))
        self.backbone = backbone
        self.neck = FBiFPN(backbone.channels, model.neck)
        width = self.neck.out_channels
        heads: dict[str, nn.Module] = {"cls": ClsHead(width)}
        if model.heads.mask:
            heads["mask"] = MaskHead(width)
        if model.heads.consistency:
            heads["consistency"] = ConsistencyHead(
                width, model.heads.embed_dim, model.heads.grid, model.heads.consistency_on_grid
            )
        self.heads = nn.ModuleDict(heads)

    def forward(self, x: torch.Tensor, heads: tuple[str, ...] | None = None) -> ModelOutput:
        """All heads by default (training, explanations); `heads` names the ones to run, so that
        scoring skips the consistency head (and the mask head when beta = 0) at stride 4."""
        neck = self.neck(self.backbone(x))
        f = neck.fused

        def run(name: str) -> torch.Tensor | None:
            wanted = heads is None or name in heads
            return self.heads[name](f) if wanted and name in self.heads else None

        return ModelOutput(
            logit=self.heads["cls"](f),
            mask_logit=run("mask"),
            attn_logits=neck.attn_logits,
            attn_levels=self.neck.attention_levels,
            embed=run("consistency"),
            level_weights=neck.level_weights,
        )


class BackboneClassifier(Detector):
    """The baseline every table compares with: timm's pooled backbone and a linear head."""

    def __init__(self, model: ModelConfig, pretrained: bool | str | None = None):
        backbone = PooledBackbone(model.backbone, pretrained)
        super().__init__(model, (backbone.pretrained_cfg["mean"], backbone.pretrained_cfg["std"]))
        self.backbone = backbone
        self.heads = nn.ModuleDict({"cls": nn.Linear(backbone.num_features, 1)})

    def forward(self, x: torch.Tensor, heads: tuple[str, ...] | None = None) -> ModelOutput:
        return ModelOutput(logit=self.heads["cls"](self.backbone(x)).squeeze(1))


ARCHITECTURES: dict[str, Callable[[ModelConfig, bool | str | None], Detector]] = {
    "fbifpn": FBiFPNMTLNet,
    "backbone": BackboneClassifier,
}


def build_model(cfg: Config | ModelConfig, pretrained: bool | str | None = None) -> Detector:
    """Build the variant named by `cfg.model.variant`. `pretrained` overrides the config's choice
    (`info` and `bench` pass False so they never touch the network)."""
    model_cfg = cfg.model if isinstance(cfg, Config) else cfg
    return ARCHITECTURES[variant_of(model_cfg).architecture](model_cfg, pretrained)


class LogitModel(nn.Module):
    """Exposes the cls logit as [B, 1], the output shape pytorch-grad-cam's targets expect."""

    def __init__(self, model: Detector):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x).logit.unsqueeze(1)
