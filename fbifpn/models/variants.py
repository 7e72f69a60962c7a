"""Named ablation variants (method.md): each is an architecture plus overrides of the model config.

`model.variant` picks one; `resolve_variant` returns the effective model config, so the rest of the
code never asks which variant it runs, only which heads and neck settings it has.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fbifpn.config import ConfigError, ModelConfig, replace_dotted


@dataclass(frozen=True)
class Variant:
    description: str
    overrides: dict[str, Any] = field(default_factory=dict)  # dotted keys under `model.`
    architecture: str = "fbifpn"  # a key of fbifpn.models.net.ARCHITECTURES


VARIANTS: dict[str, Variant] = {
    "full": Variant("F-BiFPN (emphasize attention) + cls, mask and consistency heads"),
    "grid_consistency": Variant(
        "full, with the consistency head's convs on the pooled G x G grid (a speed option)",
        {"heads.consistency_on_grid": True},
    ),
    "no_attention": Variant("plain BiFPN: no forgery attention", {"neck.attention": "none"}),
    "suppress": Variant(
        "attention suppresses instead of emphasizing (LAA-Net E-FPN)", {"neck.attention": "suppress"}
    ),
    "fpn": Variant(
        "F-BiFPN replaced by a plain top-down FPN (no attention)",
        {"neck.topology": "fpn", "neck.attention": "none"},
    ),
    "c5_only": Variant("F-BiFPN replaced by upsampling C5 alone", {"neck.topology": "c5_only"}),
    "no_mask": Variant("no learnable-mask head", {"heads.mask": False}),
    "no_consistency": Variant("no self-consistency head", {"heads.consistency": False}),
    "cls_only": Variant(
        "plain BiFPN + cls head, no auxiliary supervision",
        {"neck.attention": "none", "heads.mask": False, "heads.consistency": False},
    ),
    "backbone_only": Variant("bare backbone, pooled, linear head: the baseline", architecture="backbone"),
}


def resolve_variant(model: ModelConfig) -> tuple[ModelConfig, str]:
    """The model config with the variant's overrides applied, and the architecture to build."""
    if model.variant not in VARIANTS:
        raise ConfigError(
            f"model.variant: unknown variant {model.variant!r} (variants: {', '.join(VARIANTS)})"
        )
    variant = VARIANTS[model.variant]
    return replace_dotted(model, variant.overrides), variant.architecture
