"""Backbones from timm: multi-scale features for the neck, or a pooled classifier for the baseline.

Channels and strides are read from timm's `feature_info`, never written down per backbone, so any
timm model with `features_only` support plugs in (EfficientNet, EfficientNetV2, Xception, ...).
"""

from __future__ import annotations

import contextlib
import logging
import re
from typing import Any

import timm
import torch
from torch import nn

from fbifpn.config import BackboneConfig
from fbifpn.models.pretrained import resolve_weights


def _timm_kwargs(cfg: BackboneConfig, pretrained: bool | str) -> dict[str, Any]:
    weights = resolve_weights(cfg.name, pretrained)
    kwargs: dict[str, Any] = {"pretrained": bool(weights)}
    if cfg.drop_path_rate:  # only passed when asked for: some timm models (legacy_xception) lack it
        kwargs["drop_path_rate"] = cfg.drop_path_rate
    if not isinstance(weights, bool):
        # `checkpoint_path=` fails with features_only; a file overlay goes through timm's normal loader.
        kwargs["pretrained_cfg_overlay"] = {"file": str(weights)}
    return kwargs


@contextlib.contextmanager
def _head_keys_expected():
    """Collect, instead of show, timm's "Unexpected keys (...) found while loading pretrained
    weights": a features_only model has no classifier head, so the checkpoint's head keys are
    expected to be left over. `_warn_unless_head` shows any that are not the head's."""
    dropped: list[str] = []

    def keep(record: logging.LogRecord) -> bool:
        found = re.match(r"Unexpected keys \((.*)\) found while loading pretrained", record.getMessage())
        if found:
            dropped.extend(k.strip() for k in found.group(1).split(","))
        return not found

    logger = logging.getLogger("timm.models._builder")
    logger.addFilter(keep)
    try:
        yield dropped
    finally:
        logger.removeFilter(keep)


def _warn_unless_head(dropped: list[str], body: nn.Module) -> None:
    """A left-over key whose module the feature model has is a real mismatch: say it."""
    modules = {name for name, _ in body.named_modules()}
    real = [k for k in dropped if k.rsplit(".", 1)[0] in modules]
    if real:
        logging.getLogger(__name__).warning(
            "pretrained weights: keys not loaded into the backbone: %s", ", ".join(real)
        )


class FeatureBackbone(nn.Module):
    """The backbone levels named by `cfg.strides` (default C2..C5 at strides 4, 8, 16, 32)."""

    def __init__(self, cfg: BackboneConfig, pretrained: bool | str | None = None):
        super().__init__()
        pretrained = cfg.pretrained if pretrained is None else pretrained
        with _head_keys_expected() as dropped:
            self.body = timm.create_model(cfg.name, features_only=True, **_timm_kwargs(cfg, pretrained))
        _warn_unless_head(dropped, self.body)
        info = self.body.feature_info
        reductions = info.reduction()
        missing = [s for s in cfg.strides if s not in reductions]
        if missing:
            raise ValueError(
                f"model.backbone.strides: {cfg.name} has no feature level at stride {missing[0]} "
                f"(it offers {reductions})"
            )
        self.indices = [reductions.index(s) for s in cfg.strides]
        self.channels = [info.channels()[i] for i in self.indices]
        self.strides = list(cfg.strides)
        self.pretrained_cfg = self.body.pretrained_cfg

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = self.body(x)
        return [features[i] for i in self.indices]


class PooledBackbone(nn.Module):
    """timm's own classifier body with global pooling and no classifier (num_classes=0)."""

    def __init__(self, cfg: BackboneConfig, pretrained: bool | str | None = None):
        super().__init__()
        pretrained = cfg.pretrained if pretrained is None else pretrained
        self.body = timm.create_model(cfg.name, num_classes=0, **_timm_kwargs(cfg, pretrained))
        # head_hidden_size: the pooled width after any pre-logits layer (MobileNetV3's conv_head).
        self.num_features = getattr(self.body, "head_hidden_size", None) or self.body.num_features
        self.pretrained_cfg = self.body.pretrained_cfg

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)
