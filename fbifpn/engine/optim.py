"""Optimisers and schedules: AdamW, SAM around AdamW or SGD, warm-up then cosine or linear decay.

SAM (Foret et al., ICLR 2021): each step first climbs to the worst point within radius rho
(`first_step`), takes the gradient there, then steps from the original weights (`second_step`).
"""

from __future__ import annotations

import math

import torch

from fbifpn.config import OptimConfig


class SAM(torch.optim.Optimizer):
    def __init__(self, params, base: type[torch.optim.Optimizer], rho: float = 0.05, **kwargs):
        if rho <= 0:
            raise ValueError(f"optim.sam_rho must be positive, got {rho}")
        super().__init__(params, dict(rho=rho, **kwargs))
        self.base = base(self.param_groups, **kwargs)
        self.param_groups = self.base.param_groups  # one set of groups: the scheduler drives both

    @torch.no_grad()
    def first_step(self) -> None:
        grads = [p.grad for g in self.param_groups for p in g["params"] if p.grad is not None]
        if not grads:
            return
        norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
        for group in self.param_groups:
            scale = group["rho"] / (norm + 1e-12)
            for p in group["params"]:
                if p.grad is None:
                    continue
                e = p.grad * scale
                p.add_(e)
                self.state[p]["e_w"] = e

    @torch.no_grad()
    def second_step(self) -> None:
        for group in self.param_groups:
            for p in group["params"]:
                if "e_w" in self.state[p]:
                    p.sub_(self.state[p].pop("e_w"))
        self.base.step()

    def step(self, closure=None):  # noqa: D102 - use first_step / second_step
        raise RuntimeError("SAM needs two passes: call first_step(), recompute the loss, then second_step()")

    def state_dict(self):
        return self.base.state_dict()

    def load_state_dict(self, state_dict):
        self.base.load_state_dict(state_dict)


def param_groups(model: torch.nn.Module) -> list[dict]:
    """Backbone and the rest apart, so the backbone can be frozen by its learning-rate factor."""
    backbone = [p for n, p in model.named_parameters() if n.startswith("backbone.") and p.requires_grad]
    rest = [p for n, p in model.named_parameters() if not n.startswith("backbone.") and p.requires_grad]
    return [
        {"params": backbone, "name": "backbone", "lr_factor": 1.0},
        {"params": rest, "name": "rest", "lr_factor": 1.0},
    ]


def build_optimizer(model: torch.nn.Module, cfg: OptimConfig) -> torch.optim.Optimizer:
    groups = param_groups(model)
    # On a GPU, one fused kernel updates every parameter (the CPU keeps the default, bit-exact path).
    fused = {"fused": True} if all(p.is_cuda for p in model.parameters()) else {}
    if cfg.name == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay, **fused)
    if cfg.name == "sam_adamw":
        return SAM(
            groups, torch.optim.AdamW, rho=cfg.sam_rho, lr=cfg.lr, weight_decay=cfg.weight_decay, **fused
        )
    return SAM(
        groups,
        torch.optim.SGD,
        rho=cfg.sam_rho,
        lr=cfg.lr,
        weight_decay=cfg.weight_decay,
        momentum=cfg.momentum,
    )


def lr_factor(step: int, total: int, cfg: OptimConfig) -> float:
    """Linear warm-up over `warmup_steps`, then cosine or linear decay to 0 at `total` steps."""
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    if cfg.schedule == "constant" or total <= cfg.warmup_steps:
        return 1.0
    progress = min(1.0, (step - cfg.warmup_steps) / (total - cfg.warmup_steps))
    return 0.5 * (1 + math.cos(math.pi * progress)) if cfg.schedule == "cosine" else 1 - progress


def build_scheduler(optimizer: torch.optim.Optimizer, total_steps: int, cfg: OptimConfig):
    # SAM shares its param groups with the optimizer it wraps, which is the one that really steps.
    target = optimizer.base if isinstance(optimizer, SAM) else optimizer
    return torch.optim.lr_scheduler.LambdaLR(target, lambda s: lr_factor(s, total_steps, cfg))


def set_backbone_frozen(optimizer: torch.optim.Optimizer, frozen: bool) -> None:
    """Freeze by a zero learning-rate factor rather than by requires_grad, which DDP cannot change
    after wrapping. Takes effect at the next `apply_lr_factors`."""
    for group in optimizer.param_groups:
        if group.get("name") == "backbone":
            group["lr_factor"] = 0.0 if frozen else 1.0


def apply_lr_factors(optimizer: torch.optim.Optimizer, scheduler) -> None:
    """Set each group's rate to its scheduled value times its factor, recomputed from `initial_lr`
    so it never compounds. A zero rate also stops AdamW's decoupled weight decay."""
    for group, schedule in zip(optimizer.param_groups, scheduler.lr_lambdas, strict=True):
        group["lr"] = group["initial_lr"] * schedule(scheduler.last_epoch) * group.get("lr_factor", 1.0)
