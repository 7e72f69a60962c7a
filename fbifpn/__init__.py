"""fbifpn: F-BiFPN-MTLNet, a fake-attention-map-driven multi-task deepfake video detector.

Implements Liu, Zheng and Dong, "A Fake Attention Map-Driven Multi-Task Deepfake Video Detection
Model", Journal of Electronics & Information Technology, 2025 (doi 10.11999/JEIT250926).
"""

from fbifpn import numerics

numerics.pin()  # before anything imports torch: one CPU code path everywhere (fbifpn/numerics.py)

from fbifpn.config import Config, ConfigError, load_config  # noqa: E402
from fbifpn.losses import MultiTaskLoss  # noqa: E402
from fbifpn.models.net import ModelOutput, build_model  # noqa: E402

__version__ = "0.1.0"
__all__ = ["Config", "ConfigError", "ModelOutput", "MultiTaskLoss", "build_model", "load_config"]
