"""The multi-task loss and the targets it derives from the forgery mask.

`L = lambda_cls L_cls + lambda_mask L_mask + lambda_cons L_cons + lambda_attn L_attn` (method.md).
Every target is derived from `batch["mask"]` (float [B, 1, H, W] in [0, 1], zeros for reals) at the
resolution of the output it supervises; none is stored. The mask, consistency and attention terms
average only over samples with `has_mask` true: a fake whose dataset gives no mask must not be
taught that nothing in it was manipulated. A head the model lacks contributes exactly zero.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torchvision.ops import sigmoid_focal_loss

from fbifpn.config import Config, LossConfig
from fbifpn.models.heads import consistency_logits
from fbifpn.models.net import ModelOutput


def resize_mask(mask: torch.Tensor, size: tuple[int, int] | torch.Size) -> torch.Tensor:
    """Area-average the mask onto an output grid: each cell holds its manipulated fraction."""
    return F.adaptive_avg_pool2d(mask, tuple(size))


def boundary_target(mask: torch.Tensor) -> torch.Tensor:
    """Face X-ray's blending boundary B = 4 M (1 - M): 1 where M = 0.5, 0 where M is 0 or 1."""
    return 4 * mask * (1 - mask)


def consistency_target(mask: torch.Tensor, grid: int) -> torch.Tensor:
    """PCL's target T_ij = 1 - |M_i - M_j| on a G x G grid: [B, 1, H, W] -> [B, G*G, G*G]."""
    m = resize_mask(mask, (grid, grid)).flatten(1)
    return 1 - (m[:, :, None] - m[:, None, :]).abs()


def smooth(target: torch.Tensor, eps: float) -> torch.Tensor:
    return target * (1 - eps) + 0.5 * eps if eps else target


def penalty_reduced_focal(
    logits: torch.Tensor, target: torch.Tensor, alpha: float, beta: float
) -> torch.Tensor:
    """CenterNet's focal loss for soft heat maps (used by LAA-Net), per sample: [B, ...] -> [B].

    Pixels with target 1 are positives; negatives near them are spared by (1 - target)^beta. Each
    sample's sum is divided by its number of positives (at least one).
    """
    logits, target = logits.float().flatten(1), target.float().flatten(1)
    p = torch.sigmoid(logits)
    pos = (target >= 1 - 1e-4).float()
    log_p, log_not_p = F.logsigmoid(logits), F.logsigmoid(-logits)
    pos_term = pos * (1 - p) ** alpha * log_p
    neg_term = (1 - pos) * (1 - target) ** beta * p**alpha * log_not_p
    return -(pos_term + neg_term).sum(1) / pos.sum(1).clamp_min(1)


def per_sample_bce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """[B, ...] -> [B]: BCE averaged over everything but the batch dimension."""
    loss = F.binary_cross_entropy_with_logits(logits.float(), target.float(), reduction="none")
    return loss.flatten(1).mean(1)


def masked_mean(per_sample: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Mean over the samples whose weight is 1; exactly 0 (with a gradient path) when there are none."""
    return (per_sample * weight).sum() / weight.sum().clamp_min(1)


class MultiTaskLoss(torch.nn.Module):
    """`MultiTaskLoss(cfg)(out, batch) -> (total, parts)`; parts stay on the device, detached."""

    def __init__(self, cfg: Config | LossConfig):
        super().__init__()
        self.cfg = cfg.loss if isinstance(cfg, Config) else cfg

    def cls_loss(self, logit: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        target = smooth(label.float(), self.cfg.label_smoothing)
        if self.cfg.cls_loss == "focal":
            return sigmoid_focal_loss(
                logit.float(), target, alpha=-1, gamma=self.cfg.focal_gamma, reduction="mean"
            )
        return F.binary_cross_entropy_with_logits(logit.float(), target)

    def mask_loss(self, mask_logit: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        m = resize_mask(mask, mask_logit.shape[-2:])
        target = boundary_target(m) if self.cfg.mask_target == "boundary" else m
        if self.cfg.mask_loss == "focal":
            return penalty_reduced_focal(mask_logit, target, self.cfg.focal_gamma, self.cfg.focal_beta)
        return per_sample_bce(mask_logit, smooth(target, self.cfg.label_smoothing))

    def consistency_loss(self, embed: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return per_sample_bce(consistency_logits(embed), consistency_target(mask, embed.shape[-1]))

    def attention_loss(
        self, attn_logits: list[torch.Tensor], levels: list[int], mask: torch.Tensor
    ) -> torch.Tensor:
        """Each level has one map per fusion layer: average over layers, then sum over levels."""
        by_level: dict[int, list[torch.Tensor]] = {}
        for a, level in zip(attn_logits, levels, strict=True):
            by_level.setdefault(level, []).append(per_sample_bce(a, resize_mask(mask, a.shape[-2:])))
        return sum(torch.stack(maps).mean(0) for maps in by_level.values())

    def forward(self, out: ModelOutput, batch: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        label, mask = batch["label"], batch["mask"]
        has_mask = batch["has_mask"].to(device=label.device, dtype=torch.float32)
        zero = out.logit.new_zeros((), dtype=torch.float32)
        parts = {"cls": self.cls_loss(out.logit, label), "mask": zero, "cons": zero, "attn": zero}
        if out.mask_logit is not None:
            parts["mask"] = masked_mean(self.mask_loss(out.mask_logit, mask), has_mask)
        if out.embed is not None:
            parts["cons"] = masked_mean(self.consistency_loss(out.embed, mask), has_mask)
        if out.attn_logits:
            parts["attn"] = masked_mean(self.attention_loss(out.attn_logits, out.attn_levels, mask), has_mask)
        c = self.cfg
        total = (
            c.lambda_cls * parts["cls"]
            + c.lambda_mask * parts["mask"]
            + c.lambda_cons * parts["cons"]
            + c.lambda_attn * parts["attn"]
        )
        parts = {k: v.detach() for k, v in parts.items()}
        parts["total"] = total.detach()
        return total, parts
