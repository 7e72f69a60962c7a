"""Checkpoints that are safe to load and complete enough to resume bit for bit.

A checkpoint holds the model, optimizer, scheduler, scaler and EMA states, every RNG state, the
epoch and step, the position within the epoch, the config, and the decision threshold chosen on
val, the torch thread count it was trained with, and the prep options of the manifest it trained
on (key `prep`: how its crops were cut, for `detect` to cut the same; not config, so a resume never
compares it). Everything is tensors and plain containers, so `torch.load(weights_only=True)`
accepts it and nothing in a file can execute. A sha256 digest of the contents travels in the file
(key `digest`) and is checked on every load, so bit rot or an edit is refused rather than trained
on. Writes go to a temporary file, then a rename.
"""

from __future__ import annotations

import hashlib
import math
import pickle
import random
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fbifpn import atomic
from fbifpn.config import Config, config_from_dict, with_variant_keys
from fbifpn.models.net import build_model


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used: unreadable, unsafe or altered content, or a config that
    does not fit."""


DIGEST = "digest"
THREADS = "torch_threads"  # CPU kernels split work by thread count: a bit-exact resume needs the same
REQUIRED = ("config", "model")  # what every fbifpn checkpoint holds, from fit or not
PREP = "prep"  # fbifpn.data.prep.PrepOptions as a dict; None where prep did not cut the crops

# Config keys a resumed run may change: they decide how often it logs and checkpoints, where it
# runs, how it is evaluated after training, and what the notebooks do around it, never the weights
# or the optimiser state it computes, so a run continued under them stays bit for bit the same.
# (The device is here so that a run can move machines; bit-exactness then holds only per device.)
RESUME_INDEPENDENT = frozenset(
    {
        "profile",
        "data.num_workers",
        "train.log_every",
        "train.ckpt_every",
        "train.device",
        "eval.batch_size",
        "eval.bootstrap",
        "eval.frames_per_video",
        "eval.tta_flip",
        "eval.calibration",
    }
)  # and everything under notebooks.


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
    """Write `content` plus its digest. Temporary files an earlier, killed save of this same
    checkpoint left behind are removed first: nothing else would ever clean them up, and a
    checkpoint has one writer (rank 0), so none of them is still being written."""
    path = Path(path)
    if DIGEST in content:
        raise ValueError(f"{DIGEST!r} is the key save() writes the digest under; it cannot be content")
    for orphan in atomic.orphans_of(path):
        orphan.unlink(missing_ok=True)
    content.setdefault(THREADS, torch.get_num_threads())
    content[DIGEST] = {"algorithm": "sha256", "value": digest(content)}
    atomic.save_torch(content, path)


def load(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """An fbifpn checkpoint whose contents match their digest, loaded with `weights_only=True`
    (anything but tensors and plain containers is refused, unrun). Every other file is refused
    with a CheckpointError that names it and says why."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path}: is a folder, not a checkpoint file")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: refused, it is an empty file (0 bytes)")
    try:
        saved = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(
            f"{path}: refused, it holds pickled objects other than tensors and plain containers "
            f"(nothing in it was executed): {_first_line(e)}"
        ) from None
    except Exception as e:  # torch says OSError, RuntimeError, KeyError, EOFError... by where it broke
        raise CheckpointError(
            f"{path}: refused, it cannot be read as a checkpoint (truncated or corrupt): "
            f"{type(e).__name__}: {_first_line(e)}"
        ) from None
    if not isinstance(saved, dict):
        raise CheckpointError(f"{path}: refused, not an fbifpn checkpoint: it holds a {type(saved).__name__}")
    missing = [key for key in REQUIRED if key not in saved]
    if missing:
        raise CheckpointError(
            f"{path}: refused, not an fbifpn checkpoint: no {' or '.join(map(repr, missing))} "
            f"key{'s' if len(missing) > 1 else ''} (a bare state_dict, or another tool's file)"
        )
    seal = saved.pop(DIGEST, None)
    if seal is None:
        # Ours by its keys, but from before digests: refusing it would throw away every earlier
        # run (make figures, resumed notebooks). It loads, unchecked, and says so; its next save
        # carries a digest.
        warnings.warn(
            f"{path}: carries no digest (written before fbifpn checked them), so its integrity "
            "cannot be checked; loaded as it is",
            stacklevel=2,
        )
        return _checked_fields(saved, path)
    if not isinstance(seal, dict) or seal.get("algorithm") != "sha256":
        raise CheckpointError(f"{path}: refused, its digest is not a sha256 one fbifpn writes: {seal!r}")
    if digest(saved) != seal.get("value"):
        raise CheckpointError(
            f"{path}: refused, its contents do not match their digest (corrupt or modified: "
            "bit rot, a partial copy, or an edit after it was written)"
        )
    return _checked_fields(saved, path)


def _checked_fields(saved: dict[str, Any], path: Path) -> dict[str, Any]:
    """What every reader relies on: a valid config and a usable decision threshold. A sealed file
    of ours always passes; this names the file when one from before digests does not."""
    if not isinstance(saved["config"], dict):
        raise CheckpointError(
            f"{path}: refused, its config is a {type(saved['config']).__name__}, not a mapping"
        )
    try:
        config_of(saved)
    except (ValueError, TypeError) as e:
        raise CheckpointError(f"{path}: refused, its config is not valid: {e}") from None
    threshold = saved.get("threshold", 0.5)
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 <= threshold <= 1:
        raise CheckpointError(
            f"{path}: refused, its decision threshold {threshold!r} is not a number in [0, 1]"
        )
    return saved


def digest(content: Any) -> str:
    """sha256 of a canonical walk of `content`: dicts in sorted key order, tensors by dtype,
    shape and raw bytes (not storage layout or device), other leaves by type and repr. Equal
    contents give equal digests across a save and a load."""
    h = hashlib.sha256()
    _walk(h, content)
    return h.hexdigest()


def _feed(h: Any, tag: str, payload: bytes | memoryview = b"") -> None:
    # Lengths delimit every field, so no two different walks can feed the same byte stream.
    for part in (tag.encode(), payload):
        h.update(len(part).to_bytes(8, "little"))
        h.update(part)


def _walk(h: Any, value: Any) -> None:
    if isinstance(value, torch.Tensor):
        _feed(h, "tensor", f"{value.dtype}{tuple(value.shape)}".encode())
        raw = value.detach().cpu().contiguous().reshape(-1).view(torch.uint8)  # bf16 has no numpy dtype
        _feed(h, "bytes", memoryview(raw.numpy()))
    elif isinstance(value, dict):
        _feed(h, "dict", str(len(value)).encode())
        for key in sorted(value, key=lambda k: (type(k).__name__, repr(k))):  # int and str keys mix
            _walk(h, key)
            _walk(h, value[key])
    elif isinstance(value, (list, tuple)):
        _feed(h, "list" if isinstance(value, list) else "tuple", str(len(value)).encode())
        for item in value:
            _walk(h, item)
    else:
        _feed(h, type(value).__name__, repr(value).encode())


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else repr(error)


def config_of(checkpoint: dict[str, Any]) -> Config:
    """The config a checkpoint was built from. Checkpoints saved before configs held their variant's
    keys (a `fpn` run whose config said `topology: bifpn`) get them written in: the model they hold
    was built with them."""
    return config_from_dict(with_variant_keys(checkpoint["config"]))


def check_resume_config(checkpoint: dict[str, Any], cfg: Config, path: Path) -> None:
    """Resuming with a config that changes what training computes is an error naming every
    differing key (the keys in RESUME_INDEPENDENT aside). A key the checkpoint predates counts as
    its default, the value that run used."""
    saved, wanted = _flat(config_of(checkpoint).to_dict()), _flat(cfg.to_dict())
    diff = [
        f"{key} ({saved.get(key)!r} vs {wanted.get(key)!r})"
        for key in sorted(saved.keys() | wanted.keys())
        if not _same(saved.get(key), wanted.get(key)) and not _resume_independent(key)
    ]
    if diff:
        raise CheckpointError(
            f"{path}: its config differs from this run's at {', '.join(diff)} (saved vs this run); "
            f"train into another run folder, or remove {Path(path).parent} to start this one afresh"
        )


def _same(a: Any, b: Any) -> bool:
    return a == b or (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b))


def _resume_independent(key: str) -> bool:
    return key in RESUME_INDEPENDENT or key.startswith("notebooks.")


def _flat(tree: dict, prefix: str = "") -> dict[str, Any]:
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out |= _flat(value, f"{prefix}{key}.")
        else:
            out[prefix + key] = value
    return out


def load_model(path: Path) -> tuple[torch.nn.Module, Config, dict[str, Any]]:
    """The network a checkpoint describes, with its weights (in eval mode), its config and the
    checkpoint itself (threshold, epoch, ...). Never touches the network: pretrained=False."""

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
