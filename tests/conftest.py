import os

# Set before timm is imported anywhere: no test may wait on the model hub.
os.environ["HF_HUB_OFFLINE"] = "1"
# Set before torch loads OpenMP, for this process and every kernel and subprocess it starts. Idle
# OpenMP threads spin by default; beside another CPU-heavy process on 2 cores they then fight it
# for the cores, and 5 smoke training steps took 14.0 s instead of 1.6 s (9x). Results are the
# same either way: only how waiting threads wait changes.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# First: fbifpn pins the math libraries' code paths (fbifpn/numerics.py) before torch loads.
import fbifpn  # noqa: E402, F401, I001

# isort: split
from pathlib import Path  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from fbifpn import load_config  # noqa: E402


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture
def smoke():
    return load_config("smoke")


def random_batch(size: int, batch: int = 4, has_mask: list[bool] | None = None) -> dict:
    """Alternating real/fake; fakes get a soft random mask, reals a zero mask."""
    label = (torch.arange(batch) % 2).float()
    mask = torch.rand(batch, 1, size, size) * label[:, None, None, None]
    return {
        "image": torch.randn(batch, 3, size, size),
        "label": label,
        "mask": mask,
        "has_mask": torch.tensor(has_mask if has_mask is not None else [True] * batch),
    }


@pytest.fixture(scope="session")
def smoke_tree(tmp_path_factory) -> Path:
    """The smoke-size synthetic benchmark, generated once per test session."""
    from fbifpn.data.synthetic import generate

    return generate(
        tmp_path_factory.mktemp("synth") / "smoke", size="smoke", seed=0, workers=1, progress=False
    )


def write_cv_video(path: Path, frames: list[np.ndarray], fourcc: str = "mp4v") -> Path:
    """Write frames with OpenCV (mp4v by default; FFV1 for lossless masks)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = frames[0].shape[:2]
    colour = frames[0].ndim == 3
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), 25, (w, h), colour)
    assert writer.isOpened(), path
    for f in frames:
        writer.write(f)
    writer.release()
    return path


def noise_frames(n: int = 3, size: int = 32, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 255, (size, size, 3), dtype=np.uint8) for _ in range(n)]
