"""Parameters and MACs per part (backbone, neck, heads) of a built model.

MACs are half the FLOPs that `torch.utils.flop_counter` counts for one image; it counts convolutions
and matrix products, which dominate, and not element-wise work such as activations or fusion sums.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

PARTS = ("backbone", "neck", "heads")


@dataclass
class PartCost:
    part: str
    params: int
    macs: int


def part_costs(model: nn.Module, image_size: int) -> list[PartCost]:
    """One row per part present in the model, then a `total` row."""
    x = torch.zeros(1, 3, image_size, image_size)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(x)
    finally:
        model.train(was_training)
    prefix = type(model).__name__
    flops = {name: sum(ops.values()) for name, ops in counter.get_flop_counts().items()}
    rows = []
    for part in PARTS:
        module = getattr(model, part, None)
        if module is None:
            continue
        params = sum(p.numel() for p in module.parameters())
        rows.append(PartCost(part, params, _part_flops(flops, f"{prefix}.{part}") // 2))
    rows.append(PartCost("total", sum(p.numel() for p in model.parameters()), flops.get("Global", 0) // 2))
    return rows


def _part_flops(flops: dict[str, int], name: str) -> int:
    """A called module has its own entry; a container that is never called itself (the heads'
    ModuleDict) is the sum of its direct children's entries."""
    if name in flops:
        return flops[name]
    return sum(v for k, v in flops.items() if k.startswith(name + ".") and "." not in k[len(name) + 1 :])
