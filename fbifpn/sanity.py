"""Sanity checks: overfitting a fixed toy batch, and the benchmark's learnability.

A model and loss that cannot drive the loss of one fixed batch towards zero have a bug (a head not
connected, a target on the wrong scale, a detached graph): `make demo` and the tests run that check
before any data exists. `learnability` shows a benchmark can be learnt, quickly, from its faces.
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


def learnability(
    manifest,
    seconds: float = 60,
    steps: int | None = None,
    profile: str = "demo",
    overrides: tuple[str, ...] = (),
    frames_per_video: int = 8,
    seed: int = 0,
    workers: int = 2,
) -> dict:
    """Train a small model for `seconds` of wall-clock time or `steps` steps, whichever comes first
    (the demo profile: ImageNet-initialised EfficientNet-Lite0 at 128 px, a
    light F-BiFPN and the multi-task loss) on the train split for a wall-clock budget, with real and
    fake videos sampled equally often; return the video-level AUC on the test split (video score =
    mean of its frame scores). A random-init model does not get there within a minute on 2 cores.

    Together with the shortcut audit this shows a benchmark is learnable, and only from the faces."""
    import time

    import numpy as np
    from sklearn.metrics import roc_auc_score

    from fbifpn.config import load_config
    from fbifpn.data.dataset import FrameDataset

    torch.manual_seed(seed)
    cfg = load_config(profile, list(overrides))
    model = build_model(cfg)
    criterion = MultiTaskLoss(cfg)
    size, mean, std = cfg.data.image_size, model.mean, model.std
    train = FrameDataset(
        manifest, size, mean, std, split="train", frames_per_video=frames_per_video, train=True, seed=seed
    )
    labels = torch.tensor([float(train.videos[it.video]["label"].iloc[0]) for it in train.items])
    weights = torch.where(labels == 0, 1 / (labels == 0).sum(), 1 / (labels == 1).sum())
    sampler = torch.utils.data.WeightedRandomSampler(
        weights, len(weights), generator=torch.Generator().manual_seed(seed)
    )
    loader = torch.utils.data.DataLoader(
        train, batch_size=32, sampler=sampler, num_workers=workers, persistent_workers=workers > 0
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.optim.lr)
    max_steps = steps if steps is not None else float("inf")
    start, steps, epoch = time.perf_counter(), 0, 0

    def done() -> bool:
        return time.perf_counter() - start >= seconds or steps >= max_steps

    model.train()
    while not done():
        train.set_epoch(epoch)
        for batch in loader:
            loss, _ = criterion(model(batch["image"]), batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            steps += 1
            if done():
                break
        epoch += 1
    trained = time.perf_counter() - start
    test = FrameDataset(manifest, size, mean, std, split="test", frames_per_video=frames_per_video)
    scores: dict[str, list[float]] = {}
    truth: dict[str, float] = {}
    model.eval()
    with torch.no_grad():
        for batch in torch.utils.data.DataLoader(test, batch_size=64):
            probs = model.score(model(batch["image"])).tolist()
            for v, p, y in zip(batch["video_id"], probs, batch["label"].tolist(), strict=True):
                scores.setdefault(v, []).append(p)
                truth[v] = y
    videos = sorted(scores)
    auc = roc_auc_score([truth[v] for v in videos], [np.mean(scores[v]) for v in videos])
    return {
        "video_auc": float(auc),
        "test_videos": len(videos),
        "steps": steps,
        "train_seconds": round(trained, 1),
    }
