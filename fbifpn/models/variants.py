"""Named ablation variants (method.md): each is an architecture plus the model-config keys it sets.

`model.variant` picks one. `load_config` writes the variant's keys into the config it returns, so the
config a run saves is the model it built; an override that contradicts them is a `ConfigError`.
Plain Python that imports nothing of ours, so that the config can read this registry without an
import cycle.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Variant:
    description: str
    sets: dict[str, Any] = field(default_factory=dict)  # dotted keys under `model.`
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
    "backbone_only": Variant(
        "bare backbone, pooled, linear head: the baseline (no neck: the neck keys go unused)",
        {"neck.attention": "none", "heads.mask": False, "heads.consistency": False},
        architecture="backbone",
    ),
}
