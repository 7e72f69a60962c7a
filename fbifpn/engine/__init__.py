"""Training and evaluation: fit, predict, checkpoints, optimisers, distributed helpers."""

from fbifpn.engine.evaluate import predict
from fbifpn.engine.train import NonFiniteLoss, RunResult, fit

__all__ = ["NonFiniteLoss", "RunResult", "fit", "predict"]
