"""Where a run computes: the device a name means, the autocast dtype of a precision, moving a batch.

Its own module so that training, evaluation, `detect` and `bench` share it without importing each other.
"""

from __future__ import annotations

import torch

from fbifpn.config import one_line


def resolve_device(name: str) -> torch.device:
    """`auto`, or a device this machine has; anything else is a ValueError naming it."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as e:
        raise ValueError(f"device {name!r}: not a device name ({one_line(e)})") from None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0 or (device.index or 0) >= count:
            raise ValueError(f"device {name!r}: this machine has {count} CUDA device(s)")
    return device


def autocast_dtype_of(precision: str) -> torch.dtype | None:
    """A `train.precision` as an autocast dtype: None for fp32, where autocast stays off (on any device)."""
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def set_bn_eval(model: torch.nn.Module) -> None:
    """`train.freeze_bn`: BatchNorm keeps its running statistics while the rest trains."""
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.eval()


def to_device(batch: dict, device: torch.device, channels_last: bool) -> dict:
    """A batch's tensors on `device` (non-blocking: pinned batches overlap the step); strings stay."""
    out = {k: (v.to(device, non_blocking=True) if torch.is_tensor(v) else v) for k, v in batch.items()}
    if channels_last:
        out["image"] = out["image"].contiguous(memory_format=torch.channels_last)
    return out
