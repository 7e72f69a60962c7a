"""torch.distributed under torchrun: process-group set-up, rank helpers, gathering results.

One node, several GPUs:   torchrun --nproc-per-node 8 -m fbifpn train --profile paper --run-dir runs/paper
Several nodes (on each):  torchrun --nnodes 2 --node-rank R --nproc-per-node 8 --rdzv-backend c10d \
                              --rdzv-endpoint HOST:29500 -m fbifpn train --profile paper --run-dir runs/paper
On CPU the gloo backend is used (the tests run two processes that way).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TypeVar

import torch
import torch.distributed as dist

T = TypeVar("T")


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def is_main() -> bool:
    return rank() == 0


def setup(device: torch.device) -> bool:
    """Join the process group torchrun describes in the environment; False when running alone."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or dist.is_initialized():
        return dist.is_initialized()
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend)
    return True


def barrier() -> None:
    if world_size() > 1:
        dist.barrier()


def gather_objects(obj):
    """Every rank's object, on every rank (a list in rank order)."""
    if world_size() == 1:
        return [obj]
    out = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj):
    if world_size() == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def made_on_main(make: Callable[[], T]) -> T:
    """`make()` run by rank 0 alone, its result handed to every rank: for work that writes shared
    files, such as generating and preparing the data, where every rank doing it would race on one
    cache. When rank 0 fails, the other ranks fail too (with its error) instead of waiting forever."""
    if world_size() == 1:
        return make()
    outcome = (None, None)  # (result, rank 0's error)
    if is_main():
        try:
            outcome = (make(), None)
        except Exception as e:
            broadcast_object((None, f"{type(e).__name__}: {e}"))
            raise
    result, error = broadcast_object(outcome)
    if error is not None:
        raise RuntimeError(f"rank 0 failed, so rank {rank()} stops too: {error}")
    return result


def all_reduce_mean(t: torch.Tensor) -> torch.Tensor:
    if world_size() > 1:
        t = t.clone()
        dist.all_reduce(t)
        t /= world_size()
    return t
