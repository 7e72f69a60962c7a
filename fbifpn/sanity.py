"""Sanity checks that need no dataset: a fixed toy batch, and overfitting it.

A model and loss that cannot drive the loss of one fixed batch towards zero have a bug (a head not
connected, a target on the wrong scale, a detached graph). This is the check `make demo` runs before
any data exists, and the one the tests run on the smoke profile.
"""

from __future__ import annotations

import torch
from tqdm.auto import tqdm

from fbifpn.config import Config
from fbifpn.losses import MultiTaskLoss
from fbifpn.models import build_model


def toy_batch(image_size: int, batch_size: int = 8, seed: int = 0) -> dict:
    """Half reals, half fakes. A fake has a rectangle of re-synthesised texture with an exact, hard
    mask; rectangles lie on a 32-pixel grid so every pyramid level sees the mask without partial cells."""
    g = torch.Generator().manual_seed(seed)
    images = torch.randn(batch_size, 3, image_size, image_size, generator=g)
    masks = torch.zeros(batch_size, 1, image_size, image_size)
    labels = torch.arange(batch_size) % 2
    cells = max(1, image_size // 32)
    for i in torch.nonzero(labels).flatten().tolist():
        y0, x0 = (torch.randint(0, cells, (2,), generator=g) * 32).tolist()
        h, w = (torch.randint(1, cells - max(y0, x0) // 32 + 1, (2,), generator=g) * 32).tolist()
        masks[i, :, y0 : y0 + h, x0 : x0 + w] = 1
        images[i] += masks[i] * (1.5 + 0.5 * torch.randn(3, 1, 1, generator=g))
    return {
        "image": images,
        "label": labels.float(),
        "mask": masks,
        "has_mask": torch.ones(batch_size, dtype=torch.bool),
    }


def overfit(
    cfg: Config, steps: int = 50, batch_size: int = 8, seed: int = 0, progress: bool = True
) -> list[float]:
    """Train on one fixed toy batch; return the total loss at every step."""
    torch.manual_seed(seed)
    model = build_model(cfg).train()
    criterion = MultiTaskLoss(cfg)
    batch = toy_batch(cfg.data.image_size, batch_size, seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.optim.lr, weight_decay=0.0)
    losses = []
    bar = tqdm(range(steps), desc=f"overfit {cfg.model.variant}", disable=not progress)
    for _ in bar:
        loss, _ = criterion(model(batch["image"]), batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        bar.set_postfix(loss=f"{losses[-1]:.4f}")
    return losses
