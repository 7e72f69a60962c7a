"""Throughput, side by side in one process on one device (so ratios compare like with like):

- (a) timm's bare classifier of the profile's backbone, same size and batch, same recipe;
- (b) F-BiFPN-MTLNet under the profile's recipe, and each ablation variant asked for;
- (c) the full model under the peers' recipe: fp32, NCHW, no autocast;
- (d) for `data`: training steps fed by the real DataLoader (a prepared manifest, online SBI) against
  steps on tensors already on the device: the loader's stall ratio.

SAM's cost (two passes per step) is measured separately. Every result records the device, the
versions and the settings. Training steps are `fbifpn.engine.train.train_step`, the step `fit` runs.
"""

from __future__ import annotations

import json
import resource
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from fbifpn.config import Config, replace_dotted, with_overrides
from fbifpn.engine.device import autocast_dtype_of
from fbifpn.losses import MultiTaskLoss
from fbifpn.models.net import Detector, ModelOutput, build_model
from fbifpn.provenance import environment, git_commit

GOALS = {"b/a train": 0.80, "b/a infer": 0.90, "b/c": 1.7, "d": 1.10}


@dataclass(frozen=True)
class Recipe:
    precision: str  # fp32 | bf16 | fp16
    channels_last: bool
    compile: bool = False

    @classmethod
    def of(cls, cfg: Config, compile: bool = False) -> Recipe:
        return cls(cfg.train.precision, cfg.train.channels_last, compile)


PEERS = Recipe("fp32", False)


class TimmClassifier(Detector):
    """(a): `timm.create_model(name, num_classes=1)`, as the field's baselines train it."""

    def __init__(self, cfg: Config):
        import timm

        net = timm.create_model(cfg.model.backbone.name, pretrained=False, num_classes=1)
        config = net.pretrained_cfg
        super().__init__(cfg.model, (config["mean"], config["std"]))
        self.net = net

    def forward(self, x: torch.Tensor, heads: tuple[str, ...] | None = None) -> ModelOutput:
        return ModelOutput(logit=self.net(x)[:, 0])


def random_batch(cfg: Config, batch: int, device: torch.device, channels_last: bool) -> dict:
    """Half real, half fake with a soft elliptic mask: tensors already on the device."""
    size = cfg.data.image_size
    label = (torch.arange(batch) % 2).float()
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    ellipse = (1 - (xx**2 / 0.4 + yy**2 / 0.6)).clamp(0, 1)
    image = torch.randn(batch, 3, size, size, device=device)
    if channels_last:
        image = image.contiguous(memory_format=torch.channels_last)
    return {
        "image": image,
        "label": label.to(device),
        "mask": (ellipse[None, None] * label[:, None, None, None]).to(device),
        "has_mask": torch.ones(batch, dtype=torch.bool, device=device),
    }


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def _peak_mb(device: torch.device) -> tuple[float, str]:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20, "cuda max_memory_allocated"
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "process max RSS (CPU)"


def _prepared(model: torch.nn.Module, recipe: Recipe, device: torch.device) -> torch.nn.Module:
    model = model.to(device)
    if recipe.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


def _autocast(recipe: Recipe, device: torch.device) -> torch.dtype | None:
    if recipe.precision == "fp16" and device.type != "cuda":
        return None  # fp16 autocast is a GPU recipe; on a CPU the step runs in fp32
    return autocast_dtype_of(recipe.precision)


@dataclass(frozen=True)
class Setup:
    """What every measurement of one run shares."""

    cfg: Config
    device: torch.device
    batch: int
    steps: int  # timed steps per round
    warmup: int
    rounds: int = 3


@dataclass
class Trial:
    """One thing to time: a step, what feeds it, and what its result records."""

    name: str
    mode: str
    recipe: Recipe
    step: Callable[[Any], Any]
    feed: Callable[[int], Any]
    extra: dict = field(default_factory=dict)


def measure(trials: list[Trial], setup: Setup, interleave: bool = True) -> list[dict]:
    """Every trial warms up, then runs `setup.rounds` rounds of `setup.steps` steps; its rate is the
    median over rounds. Interleaved, the rounds take the trials in turn, so a slow spell of a shared
    machine falls on all of them alike instead of on whichever was running (ratios on 2 shared cores
    moved by up to 0.15 between runs when each model was timed in one block). One device sync at each
    end of a round only."""
    device, fed = setup.device, dict.fromkeys((t.name for t in trials), 0)

    def round_of(trial: Trial, steps: int) -> float:
        _sync(device)
        start = time.perf_counter()
        for _ in range(steps):
            trial.step(trial.feed(fed[trial.name]))
            fed[trial.name] += 1
        _sync(device)
        return (time.perf_counter() - start) / steps

    seconds: dict[str, list[float]] = {t.name: [] for t in trials}
    peaks: dict[str, tuple[float, str]] = {}
    rounds = range(setup.rounds)
    order = [t for _ in rounds for t in trials] if interleave else [t for t in trials for _ in rounds]
    for t in trials:
        if setup.warmup:
            round_of(t, setup.warmup)
    for t in order:
        _reset_peak(device)
        seconds[t.name].append(round_of(t, setup.steps))
        peak = _peak_mb(device)
        peaks[t.name] = max(peaks.get(t.name, peak), peak)
    results = []
    for t in trials:
        median = statistics.median(seconds[t.name])
        peak, peak_kind = peaks[t.name]
        results.append(
            {
                "name": t.name,
                "mode": t.mode,
                **t.extra,
                **asdict(t.recipe),
                "img_s": setup.batch / median,
                "ms_per_step": 1000 * median,
                "round_ms": [round(1000 * x, 2) for x in seconds[t.name]],
                "peak_mem_mb": peak,
                "peak_mem_kind": peak_kind,
            }
        )
    return results


def train_trial(
    name: str, model: Detector, setup: Setup, recipe: Recipe, batches=None, optimizer: str = "adamw"
) -> Trial:
    """`train_step` (forward, multi-task loss, backward, optimiser step), the step `fit` runs."""
    from fbifpn.engine.optim import build_optimizer
    from fbifpn.engine.train import train_step

    cfg, device = setup.cfg, setup.device
    model = _prepared(model, recipe, device).train()
    run_cfg = replace_dotted(cfg, {"optim.name": optimizer, "train.precision": recipe.precision})
    net = torch.compile(model) if recipe.compile else model
    criterion = MultiTaskLoss(cfg)
    opt = build_optimizer(model, run_cfg.optim)
    scaler = torch.amp.GradScaler(device.type, enabled=recipe.precision == "fp16")
    dtype = _autocast(recipe, device)
    fixed = random_batch(cfg, setup.batch, device, recipe.channels_last)
    return Trial(
        name,
        "train",
        recipe,
        step=lambda b: train_step(net, criterion, opt, scaler, b, run_cfg, dtype),
        feed=batches or (lambda i: fixed),
        extra={"optimizer": optimizer},
    )


def infer_trial(name: str, model: Detector, setup: Setup, recipe: Recipe) -> Trial:
    """Scoring: the heads `model.score` reads, and nothing else."""
    device = setup.device
    model = _prepared(model, recipe, device).eval()
    net = torch.compile(model) if recipe.compile else model
    dtype = _autocast(recipe, device)
    x = random_batch(setup.cfg, setup.batch, device, recipe.channels_last)["image"]
    heads = model.score_heads()

    @torch.inference_mode()
    def step(images):
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            return model.score(net(images, heads=heads))

    return Trial(name, "infer", recipe, step=step, feed=lambda i: x, extra={"heads": list(heads)})


def _loader_batches(cfg: Config, batch: int, device: torch.device, channels_last: bool, norm: Detector):
    """Batches from `fit`'s own training DataLoader (balanced, online SBI) normalised for `norm`'s
    backbone, moved to the device."""
    from fbifpn.data.cache import prepared_manifest
    from fbifpn.data.manifest import load_manifest
    from fbifpn.engine.device import to_device
    from fbifpn.engine.train import BalancedSampler, training_loader, training_set

    data = training_set(load_manifest(prepared_manifest(cfg)), cfg, norm.mean, norm.std)
    indices = BalancedSampler(data, cfg.train.seed).epoch_indices(0)
    chunks = [indices[i : i + batch] for i in range(0, len(indices) - batch + 1, batch)]
    loader = training_loader(data, chunks, cfg, device)
    stream = iter(loader)

    def next_batch(_):
        nonlocal stream
        try:
            b = next(stream)
        except StopIteration:
            stream = iter(loader)
            b = next(stream)
        return to_device(b, device, channels_last)

    return next_batch, len(chunks)


def run(
    mode: str,
    cfg: Config,
    batch: int | None = None,
    steps: int = 5,
    warmup: int = 3,
    compile: bool = False,
    variants: tuple[str, ...] = (),
    sam: bool = True,
    device: str = "auto",
    rounds: int = 3,
    progress=print,
) -> dict:
    """Measure `mode` (train | infer | data) for `cfg`; the report `--json` writes."""
    from fbifpn.engine.device import resolve_device

    if mode not in ("train", "infer", "data"):
        raise ValueError(f"bench mode {mode!r}: use train, infer or data")
    if rounds < 1 or steps < 1:
        raise ValueError(f"bench: --rounds and --steps must be at least 1 (got {rounds}, {steps})")
    dev = resolve_device(device if device != "auto" else cfg.train.device)
    batch = batch or cfg.train.batch_size
    recipe = Recipe.of(cfg, compile)
    torch.manual_seed(0)

    def model_of(variant: str) -> Detector:
        return build_model(with_overrides(cfg, {"model.variant": variant}), pretrained=False)

    setup = Setup(cfg, dev, batch, steps, warmup, rounds)
    interleave = True
    if mode == "train":
        trials = [
            train_trial("a: timm classifier", TimmClassifier(cfg), setup, recipe),
            train_trial("b: full", model_of("full"), setup, recipe),
            train_trial("c: full, peers' recipe", model_of("full"), setup, PEERS),
            train_trial("a: timm classifier, peers'", TimmClassifier(cfg), setup, PEERS),
            *(train_trial(f"b: {v}", model_of(v), setup, recipe) for v in variants),
        ]
        if sam:
            trials.append(train_trial("b: full, SAM", model_of("full"), setup, recipe, optimizer="sam_adamw"))
    elif mode == "infer":
        trials = [
            infer_trial("a: timm classifier", TimmClassifier(cfg), setup, recipe),
            infer_trial("b: full", model_of("full"), setup, recipe),
            infer_trial("c: full, peers' recipe", model_of("full"), setup, PEERS),
            *(infer_trial(f"b: {v}", model_of(v), setup, recipe) for v in variants),
        ]
    else:
        on_device, loader_fed = model_of("full"), model_of("full")  # two fresh copies: same start
        feed, available = _loader_batches(cfg, batch, dev, recipe.channels_last, norm=on_device)
        trials = [
            train_trial("b: full, tensors on device", on_device, setup, recipe),
            train_trial("d: full, DataLoader-fed", loader_fed, setup, recipe, batches=feed),
        ]
        trials[1].extra["loader"] = {
            "num_workers": cfg.data.num_workers,
            "pin_memory": dev.type == "cuda",
            "fakes": cfg.train.fakes,
            "batches_per_epoch": available,
        }
        # Not interleaved: the workers would fill their prefetch queue while the other trial runs
        # and hide the very stall this measures.
        interleave = False
    results = measure(trials, setup, interleave)
    for r in results:
        progress(
            f"{r['name']:<28} {r['mode']:<5} {r['precision']:<4} "
            f"{'channels_last' if r['channels_last'] else 'NCHW':<13} {r['img_s']:9.1f} img/s"
            f"  {r['ms_per_step']:8.1f} ms/step  peak {r['peak_mem_mb']:.0f} MB"
        )
    by_name = {r["name"]: r for r in results}
    if mode == "train":
        a, b = by_name["a: timm classifier"], by_name["b: full"]
        ratios = {
            "b/a train": b["img_s"] / a["img_s"],
            "b/c": b["img_s"] / by_name["c: full, peers' recipe"]["img_s"],
            "a/a_peers (the backbone's own gain)": a["img_s"]
            / by_name["a: timm classifier, peers'"]["img_s"],
        }
        if sam:
            ratios["SAM step time / AdamW step time"] = (
                by_name["b: full, SAM"]["ms_per_step"] / b["ms_per_step"]
            )
    elif mode == "infer":
        a, b = by_name["a: timm classifier"], by_name["b: full"]
        ratios = {
            "b/a infer": b["img_s"] / a["img_s"],
            "b/c infer": b["img_s"] / by_name["c: full, peers' recipe"]["img_s"],
        }
    else:
        ratios = {
            "d": by_name["d: full, DataLoader-fed"]["ms_per_step"]
            / by_name["b: full, tensors on device"]["ms_per_step"]
        }
    report = {
        "mode": mode,
        **environment(dev),
        "git_commit": git_commit(),
        "settings": {
            "profile": cfg.profile,
            "backbone": cfg.model.backbone.name,
            "image_size": cfg.data.image_size,
            "batch": batch,
            "steps": steps,
            "rounds": rounds,
            "interleaved": interleave,
            "timing": "median over rounds of the mean step time in a round",
            "warmup": warmup,
            "recipe": asdict(recipe),
            "peers_recipe": asdict(PEERS),
            "model": cfg.to_dict()["model"],
            "data": "random tensors on the device" if mode != "data" else "prepared manifest via DataLoader",
        },
        "results": results,
        "ratios": ratios,
        "goals": {k: v for k, v in GOALS.items() if k in ratios},
    }
    for key, value in ratios.items():
        goal = GOALS.get(key)
        verdict = "" if goal is None else (" (goal <= %.2f)" if key == "d" else " (goal >= %.2f)") % goal
        progress(f"{key}: {value:.2f}{verdict}")
    return report


def write(report: dict, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=1))
    return path
