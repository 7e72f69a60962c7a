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
from fbifpn.models.net import build_model


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
    if steps < 1 or batch_size < 1:
        raise ValueError(f"overfit needs steps >= 1 and batch_size >= 1, got {steps} and {batch_size}")
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
    manifest, steps: int = 40, profile: str = "demo", seed: int = 0, progress: bool = False
) -> dict:
    """Train a small model for `steps` steps with `fit` (the demo profile: ImageNet-initialised
    EfficientNet-Lite0 at 128 px, a light F-BiFPN and the multi-task loss, balanced real/fake
    batches), then return the video-level AUC on the test split (video score = mean of its frame
    scores, the weights of the last step: nothing is selected). A random-init model does not get
    there within a minute on 2 cores.

    Together with the shortcut audit this shows a benchmark is learnable, and only from the faces."""
    import tempfile
    import time

    from fbifpn import metrics
    from fbifpn.config import load_config
    from fbifpn.data.dataset import FrameDataset
    from fbifpn.engine import fit, predict

    cfg = load_config(
        profile,
        [
            f"data.manifest={manifest}",
            f"train.max_steps={steps}",
            "train.epochs=1",
            "train.ckpt_every=0",
            "train.val_every=0",  # nothing is selected: one validation, at the end, is all it needs
            f"train.seed={seed}",
            "optim.warmup_steps=0",
        ],
    )
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as run_dir:
        model = fit(cfg, manifest, run_dir, progress=progress).model
    seconds = time.perf_counter() - start
    test = FrameDataset(
        manifest,
        cfg.data.image_size,
        model.mean,
        model.std,
        split="test",
        frames_per_video=cfg.data.frames_per_video,
    )
    frames = predict(model, torch.utils.data.DataLoader(test, batch_size=64), progress=False)
    videos = metrics.video_scores(frames.drop_duplicates(["video_id", "frame_idx", "face_idx"]))
    return {
        "video_auc": metrics.auc(videos["label"], videos["score"]),
        "chosen_videos": len(videos),
        "steps": steps,
        "seconds_with_validation": round(seconds, 1),
    }
