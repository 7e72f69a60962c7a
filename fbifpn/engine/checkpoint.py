"""Checkpoints that are safe to load and complete enough to resume bit for bit.

A checkpoint holds the model, optimizer, scheduler, scaler and EMA states, every RNG state, the
epoch and step, the position within the epoch, the config, and the decision threshold chosen on
val. Everything is tensors and plain containers, so `torch.load(weights_only=True)` accepts it and
nothing in a file can execute. Writes go to a temporary file, then a rename.
"""

from __future__ import annotations

import pickle
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fbifpn.config import Config, config_from_dict
from fbifpn.models.pretrained import save_atomic


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used: unsafe content, or a config that does not fit."""


def rng_state() -> dict[str, Any]:
    np_state = np.random.get_state()  # noqa: NPY002 - the legacy global state, for code that still uses it
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "key": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "gauss": float(np_state[4]),
        },
        "python": {
            "version": random.getstate()[0],
            "state": torch.tensor(random.getstate()[1], dtype=torch.int64),
            "gauss": random.getstate()[2],
        },
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["key"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))  # noqa: NPY002
    py = state["python"]
    random.setstate((py["version"], tuple(int(v) for v in py["state"].tolist()), py["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save(path: Path, **content: Any) -> None:
    save_atomic(content, Path(path))


def load(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load with `weights_only=True`: anything but tensors and plain containers is refused."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(
            f"{path}: refused, it holds pickled objects other than tensors and plain containers "
            f"(nothing in it was executed): {str(e).splitlines()[0]}"
        ) from None


def config_of(checkpoint: dict[str, Any]) -> Config:
    return config_from_dict(checkpoint["config"])


def check_model_config(checkpoint: dict[str, Any], cfg: Config, path: Path) -> None:
    """Resuming with another model is an error that names the differing keys. A key the checkpoint
    predates counts as its default, the value that built that model."""
    saved, wanted = config_of(checkpoint).to_dict()["model"], cfg.to_dict()["model"]
    diff = sorted(_diff(saved, wanted))
    if diff:
        raise CheckpointError(
            f"{path}: its model config differs from this run's at {', '.join(diff)}; "
            f"train into another run folder, or remove {Path(path).parent} to start this one afresh"
        )


def _diff(a: dict, b: dict, prefix: str = "model.") -> list[str]:
    out = []
    for key in sorted(set(a) | set(b)):
        if isinstance(a.get(key), dict) and isinstance(b.get(key), dict):
            out += _diff(a[key], b[key], f"{prefix}{key}.")
        elif a.get(key) != b.get(key):
            out.append(f"{prefix}{key} ({a.get(key)!r} vs {b.get(key)!r})")
    return out


def load_model(path: Path) -> tuple[torch.nn.Module, Config, dict[str, Any]]:
    """The network a checkpoint describes, with its weights (in eval mode), its config and the
    checkpoint itself (threshold, epoch, ...). Never touches the network: pretrained=False."""
    from fbifpn.models import build_model  # the models do not depend on the engine

    saved = load(path)
    cfg = config_of(saved)
    model = build_model(cfg, pretrained=False)
    load_weights(model, saved["model"], path)
    return model.eval(), cfg, saved


def load_weights(model: torch.nn.Module, state: dict[str, torch.Tensor], path: Path) -> None:
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise CheckpointError(
            f"{path}: its weights do not fit this model: {str(e).splitlines()[0]}"
        ) from None
