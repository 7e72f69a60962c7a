"""Backbone, F-BiFPN neck, MTLNet heads, the assembled network and its named variants."""

from fbifpn.models.net import ARCHITECTURES, LogitModel, ModelOutput, build_model
from fbifpn.models.variants import VARIANTS, resolve_variant

__all__ = ["ARCHITECTURES", "VARIANTS", "LogitModel", "ModelOutput", "build_model", "resolve_variant"]
