import os

# Set before timm is imported anywhere: no test may wait on the model hub.
os.environ["HF_HUB_OFFLINE"] = "1"

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
