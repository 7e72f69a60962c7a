"""fit(cfg): build, loop, validate, checkpoint. Reads top to bottom.

Honest by construction: the best checkpoint is chosen on the validation split, the test split is
never opened, and the val-chosen decision threshold travels in every checkpoint. Resumable bit for
bit: the data order and every augmentation derive from (seed, epoch, index), and checkpoints hold
every state including RNGs and the position within the epoch. The same code runs alone or under
torchrun (DistributedDataParallel; logging and checkpoints on rank 0).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch
from tqdm.auto import tqdm

from fbifpn import metrics
from fbifpn.config import Config, ConfigError
from fbifpn.data.cache import prepared_manifest
from fbifpn.data.dataset import FrameDataset
from fbifpn.data.manifest import load_manifest
from fbifpn.engine import checkpoint as ckpt
from fbifpn.engine import distributed as dist
from fbifpn.engine.device import autocast_dtype_of, resolve_device, set_bn_eval, to_device
from fbifpn.engine.evaluate import predict
from fbifpn.engine.optim import SAM, apply_lr_factors, build_optimizer, build_scheduler, set_backbone_frozen
from fbifpn.losses import MultiTaskLoss
from fbifpn.models import build_model
from fbifpn.paths import writable_dir


class NonFiniteLoss(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is left as it was."""


@dataclass
class RunResult:
    run_dir: Path
    best_checkpoint: Path | None
    last_checkpoint: Path
    best_metric: float
    best_epoch: int
    threshold: float
    steps: int
    seconds: float
    images_per_s: float
    history: list[dict] = field(default_factory=list)
    skipped_rows: int = 0
    model: torch.nn.Module | None = field(default=None, repr=False)  # the trained network (this rank's copy)
    best_step: int = -1  # the optimisation step of the val-chosen checkpoint


class BalancedSampler(torch.utils.data.Sampler):
    """Per epoch, as many indices as the dataset holds, drawn so that reals and fakes come equally
    often; self-blended fakes stay next to their real. Shards by rank for DDP (same count per rank)."""

    def __init__(self, dataset: FrameDataset, seed: int, rank: int = 0, world: int = 1):
        self.dataset, self.seed, self.rank, self.world = dataset, seed, rank, world
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def epoch_indices(self, epoch: int) -> list[int]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        items = self.dataset.items
        labels = torch.tensor(
            [1 if it.sbi else int(self.dataset.videos[it.video]["label"].iloc[0]) for it in items]
        )
        if any(it.sbi for it in items):  # SBI: units are (real, its SBI fake) pairs, kept adjacent
            units = [
                [i, i + 1]
                for i, it in enumerate(items)
                if it.sbi is False
                and i + 1 < len(items)
                and items[i + 1].sbi
                and items[i + 1].video == it.video
            ]
            units += [[i] for i, it in enumerate(items) if not it.sbi and labels[i] == 1]
            order = torch.randperm(len(units), generator=g).tolist()
            units = [units[k] for k in order]
            units = units[: len(units) - len(units) % self.world]
            return [i for u in units[self.rank :: self.world] for i in u]
        counts = torch.bincount(labels, minlength=2).clamp_min(1).float()
        weights = 1.0 / counts[labels]
        n = len(items) - len(items) % self.world
        drawn = torch.multinomial(weights, n, replacement=True, generator=g).tolist()
        return drawn[self.rank :: self.world]

    def __iter__(self):
        return iter(self.epoch_indices(self.epoch))

    def __len__(self) -> int:
        return len(self.epoch_indices(self.epoch))


def without_methods(manifest: pd.DataFrame, methods) -> pd.DataFrame:
    """The manifest without the fakes of `methods`; reals always stay."""
    unknown = sorted(set(methods) - set(manifest["method"]))
    if unknown:
        raise ValueError(
            f"data.exclude_methods: no method {unknown[0]!r} in the manifest "
            f"(methods: {', '.join(sorted(set(manifest['method'])))})"
        )
    return manifest[(manifest["label"] == 0) | ~manifest["method"].isin(methods)]


def training_set(manifest: pd.DataFrame, cfg: Config, mean, std) -> FrameDataset:
    """The train split as `fit` reads it: augmentation on, fakes per `train.fakes` (online SBI)."""
    return FrameDataset(
        manifest,
        cfg.data.image_size,
        mean,
        std,
        split="train",
        frames_per_video=cfg.data.frames_per_video,
        train=True,
        fakes=cfg.train.fakes,
        seed=cfg.train.seed,
        strict=cfg.data.strict,
    )


def training_loader(
    dataset: FrameDataset, batches: list[list[int]], cfg: Config, device: torch.device
) -> torch.utils.data.DataLoader:
    """The training DataLoader of `fit`, and of `bench data`, which times it. On CUDA its batches
    come in pinned memory, so `_to`'s non-blocking copy overlaps the step; each worker keeps 4
    batches ready."""
    workers = cfg.data.num_workers
    return torch.utils.data.DataLoader(
        dataset,
        batch_sampler=batches,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        prefetch_factor=4 if workers > 0 else None,
        generator=torch.Generator().manual_seed(0),
    )


def validate(model, loader, device, cfg: Config, autocast_dtype) -> tuple[dict, pd.DataFrame]:
    """Predict on this rank's share of val, gather every rank's rows, compute the metrics."""
    frames = predict(
        model,
        loader,
        device,
        tta_flip=False,
        progress=False,
        autocast_dtype=autocast_dtype,
        channels_last=cfg.train.channels_last,
    )
    frames = pd.concat(dist.gather_objects(frames), ignore_index=True)
    frames = frames.drop_duplicates(["video_id", "frame_idx", "face_idx"])  # DistributedSampler pads
    videos = metrics.video_scores(frames)
    result = {
        "frame_auc": metrics.auc(frames["label"], frames["score"]),
        "video_auc": metrics.auc(videos["label"], videos["score"]),
        "video_ap": metrics.average_precision(videos["label"], videos["score"]),
        "threshold": metrics.choose_threshold(videos["label"], videos["score"]),
        "videos": len(videos),
    }
    return result, frames


def fit(cfg: Config, run_dir: Path | str, resume: bool = False, progress: bool = True) -> RunResult:
    run_dir = Path(run_dir)
    device = resolve_device(cfg.train.device)
    dist.setup(device)
    rank, world, main = dist.rank(), dist.world_size(), dist.is_main()
    torch.manual_seed(cfg.train.seed)
    if cfg.optim.name.startswith("sam") and (cfg.optim.accum_steps > 1 or cfg.train.precision == "fp16"):
        raise ValueError(
            "SAM is not combined with gradient accumulation or fp16 loss scaling: use bf16 or fp32"
        )

    # A resumed run is checked against its checkpoint before any data is made or read: one with
    # another config must fail in seconds, not after building a benchmark.
    last_path, best_path = run_dir / "last.pt", run_dir / "best.pt"
    saved = None
    if resume and last_path.is_file():
        saved = ckpt.load(last_path)
        ckpt.check_resume_config(saved, cfg, last_path)

    # ---- data: train and val only; the test split is never opened here
    if main:
        writable_dir(run_dir, "run folder")  # before any work, not at the first checkpoint
        manifest_path = prepared_manifest(cfg, progress=progress)
    dist.barrier()
    manifest_path = dist.broadcast_object(manifest_path if main else None)
    manifest = load_manifest(manifest_path)
    if cfg.data.exclude_methods:
        manifest = without_methods(manifest, cfg.data.exclude_methods)
    model = build_model(cfg).to(device)
    norm = {"mean": model.mean, "std": model.std}  # the backbone's own input normalisation
    train_set = training_set(manifest, cfg, **norm)
    val_set = FrameDataset(
        manifest,
        cfg.data.image_size,
        split="val",
        frames_per_video=cfg.data.frames_per_video,
        strict=cfg.data.strict,
        **norm,
    )
    sampler = BalancedSampler(train_set, cfg.train.seed, rank, world)
    val_sampler = (
        torch.utils.data.distributed.DistributedSampler(val_set, world, rank, shuffle=False)
        if world > 1
        else None
    )
    # Its own generator: starting a loader draws a seed, and validation must not move the training
    # RNG, or validating more often (train.val_every) would change what is trained.
    val_loader = torch.utils.data.DataLoader(
        val_set,
        batch_size=cfg.eval.batch_size,
        sampler=val_sampler,
        num_workers=cfg.data.num_workers,
        generator=torch.Generator().manual_seed(cfg.train.seed),
    )

    # ---- model, loss, optimisation
    if cfg.train.channels_last:
        model = model.to(memory_format=torch.channels_last)
    net = torch.nn.parallel.DistributedDataParallel(model) if world > 1 else model
    criterion = MultiTaskLoss(cfg)
    optimizer = build_optimizer(model, cfg.optim)
    micro = cfg.optim.accum_steps
    batches_per_epoch = len(sampler) // cfg.train.batch_size
    if batches_per_epoch < micro:  # else the run would train no step and save an untrained model
        raise ConfigError(
            f"train.batch_size={cfg.train.batch_size} (x optim.accum_steps={micro}) does not fit the data: "
            f"an epoch of the train split gives {len(sampler)} samples"
            + (f" per process ({world} processes)" if world > 1 else "")
            + ", too few for one optimisation step"
        )
    steps_per_epoch = max(1, batches_per_epoch // micro)
    total_steps = cfg.train.max_steps or steps_per_epoch * cfg.train.epochs
    scheduler = build_scheduler(optimizer, total_steps, cfg.optim)
    autocast_dtype = autocast_dtype_of(cfg.train.precision)
    scaler = torch.amp.GradScaler(device.type, enabled=cfg.train.precision == "fp16")
    ema = None
    if cfg.optim.ema > 0:
        ema = torch.optim.swa_utils.AveragedModel(
            model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(cfg.optim.ema)
        )

    # ---- state, possibly resumed
    state = {
        "epoch": 0,
        "batch": 0,
        "step": 0,
        "best": -math.inf,
        "best_epoch": -1,
        "best_step": -1,
        "threshold": 0.5,
        "history": [],
    }
    threads_before = None  # set when resuming changes the thread count; restored when fit returns
    if saved is not None:
        threads = saved.get(ckpt.THREADS)  # absent from checkpoints that predate the key
        if threads is not None and threads != torch.get_num_threads():
            if main:
                print(
                    f"--resume: torch threads set to {threads} (was {torch.get_num_threads()}), "
                    f"as {last_path} was trained with, so the run continues bit for bit"
                )
            threads_before = torch.get_num_threads()
            torch.set_num_threads(threads)
        ckpt.load_weights(model, saved["model"], last_path)
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        scaler.load_state_dict(saved["scaler"])
        if ema is not None and saved.get("ema") is not None:
            ema.load_state_dict(saved["ema"])
        ckpt.set_rng_state(saved["rng"])
        state.update({k: saved.get(k, state[k]) for k in state})  # best_step is newer than the rest
    elif resume and main:
        print(f"training from the start: {run_dir} holds no checkpoint to resume yet")

    def save(path: Path) -> None:
        if main:
            ckpt.save(
                path,
                model=model.state_dict(),
                optimizer=optimizer.state_dict(),
                scheduler=scheduler.state_dict(),
                scaler=scaler.state_dict(),
                ema=ema.state_dict() if ema is not None else None,
                rng=ckpt.rng_state(),
                config=cfg.to_dict(),
                **state,
            )

    # ---- logging
    writer = None
    log = None
    if main:
        run_dir.mkdir(parents=True, exist_ok=True)
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(run_dir / "tensorboard"))
        log = open(run_dir / "metrics.jsonl", "a")  # noqa: SIM115 - closed in the finally below
        (run_dir / "config.json").write_text(json.dumps(cfg.to_dict(), indent=1))
        (run_dir / "report.json").write_text(
            json.dumps({"skipped_rows": train_set.skipped + val_set.skipped}, indent=1)
        )
        skipped = len(train_set.skipped) + len(val_set.skipped)
        if skipped:
            print(f"skipped {skipped} manifest rows with missing crops (listed in {run_dir / 'report.json'})")

    def emit(record: dict) -> None:
        if main:
            log.write(json.dumps(record) + "\n")
            log.flush()
            for k, v in record.items():
                if isinstance(v, (int, float)) and k not in ("step", "epoch"):
                    writer.add_scalar(f"{record['kind']}/{k}", v, record["step"])

    def keep_if_best(epoch: int) -> None:
        """Validate; keep the checkpoint when it is the best so far on val (the only selection)."""
        val, _ = validate(ema.module if ema is not None else model, val_loader, device, cfg, autocast_dtype)
        record = {"kind": "val", "step": state["step"], "epoch": epoch, **val}
        emit(record)
        state["history"].append(record)
        selected = val[cfg.eval.select_on]
        if math.isfinite(selected) and selected > state["best"]:
            state.update(best=selected, best_epoch=epoch, best_step=state["step"], threshold=val["threshold"])
            save(best_path)

    sums: dict[str, torch.Tensor] = {}
    window = 0

    def check_finite() -> dict[str, float] | None:
        """The one host sync of the loop: at log points and before any checkpoint."""
        nonlocal sums, window
        if not window:
            return None
        values = {k: (dist.all_reduce_mean(v) / window).item() for k, v in sums.items()}
        if not all(math.isfinite(v) for v in values.values()):
            raise NonFiniteLoss(
                f"the training loss became non-finite by step {state['step']} ({values}); "
                f"stopped, and the last good checkpoint {last_path} was left untouched"
            )
        sums, window = {}, 0
        return values

    start_time, images = time.perf_counter(), 0
    try:
        while state["epoch"] < cfg.train.epochs and not (
            cfg.train.max_steps and state["step"] >= total_steps
        ):
            epoch = state["epoch"]
            set_backbone_frozen(optimizer, epoch < cfg.train.freeze_backbone_epochs)
            apply_lr_factors(optimizer, scheduler)
            train_set.set_epoch(epoch)
            indices = sampler.epoch_indices(epoch)
            bs = cfg.train.batch_size
            batches = [indices[i : i + bs] for i in range(0, len(indices) - bs + 1, bs)]
            loader = training_loader(train_set, batches[state["batch"] :], cfg, device)
            net.train()
            if cfg.train.freeze_bn:
                set_bn_eval(net)
            bar = tqdm(
                total=len(batches),
                initial=state["batch"],
                desc=f"epoch {epoch}",
                disable=not (progress and main),
            )
            for batch in loader:
                batch = to_device(batch, device, cfg.train.channels_last)
                stepped = isinstance(optimizer, SAM) or (state["batch"] + 1) % micro == 0
                parts = train_step(net, criterion, optimizer, scaler, batch, cfg, autocast_dtype, stepped)
                for k, v in parts.items():
                    sums[k] = sums.get(k, 0) + v
                window += 1
                state["batch"] += 1
                images += len(batch["label"]) * world
                bar.update()
                if not stepped:
                    continue
                state["step"] += 1
                scheduler.step()
                apply_lr_factors(optimizer, scheduler)
                if ema is not None:
                    ema.update_parameters(model)
                if state["step"] % cfg.train.log_every == 0:
                    values = check_finite()
                    emit(
                        {
                            "kind": "train",
                            "step": state["step"],
                            "epoch": epoch,
                            "lr": optimizer.param_groups[-1]["lr"],
                            "images": images,  # seen by all ranks in this session (not resumed)
                            "elapsed_s": round(time.perf_counter() - start_time, 3),
                            **values,
                        }
                    )
                    bar.set_postfix(loss=f"{values['total']:.4f}")
                # The last step and an epoch's end are validated and saved after the loop; a step
                # checkpoint there could outlive a validation killed halfway, which a resume skips.
                last_step = bool(cfg.train.max_steps) and state["step"] >= total_steps
                boundary = last_step or state["batch"] >= len(batches)
                if cfg.train.val_every and state["step"] % cfg.train.val_every == 0 and not boundary:
                    check_finite()
                    keep_if_best(epoch)
                    save(last_path)  # with its validation, so a resumed run does not repeat it
                    net.train()
                    if cfg.train.freeze_bn:
                        set_bn_eval(net)
                elif cfg.train.ckpt_every and state["step"] % cfg.train.ckpt_every == 0 and not last_step:
                    check_finite()
                    save(last_path)
                if last_step:
                    break
            bar.close()
            values = check_finite()
            if values:
                emit({"kind": "train", "step": state["step"], "epoch": epoch, **values})
            # ---- end of epoch (or of the step budget): validate, keep the best on val only
            finished_epoch = state["batch"] >= len(batches)
            if finished_epoch:  # best.pt then holds the state of a finished epoch, like last.pt
                state["epoch"], state["batch"] = epoch + 1, 0
            over = (cfg.train.max_steps and state["step"] >= total_steps) or state[
                "epoch"
            ] >= cfg.train.epochs
            every = cfg.train.val_every
            done = state["history"] and state["history"][-1]["step"] == state["step"]  # accum_steps > 1
            if (not every or state["step"] % every == 0 or over) and not done:  # a schedule in steps
                keep_if_best(epoch)
            save(last_path)
            if not finished_epoch:
                break
    finally:
        if main:
            writer.close()
            log.close()
        if threads_before is not None:  # the caller's kernel (a notebook) keeps its own count
            torch.set_num_threads(threads_before)
    seconds = time.perf_counter() - start_time
    return RunResult(
        run_dir,
        best_path if best_path.is_file() else None,
        last_path,
        state["best"],
        state["best_epoch"],
        state["threshold"],
        state["step"],
        seconds,
        images / max(seconds, 1e-9),
        state["history"],
        len(train_set.skipped) + len(val_set.skipped),
        model,
        state["best_step"],
    )


def train_step(
    net: torch.nn.Module,
    criterion: MultiTaskLoss,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    batch: dict,
    cfg: Config,
    autocast_dtype: torch.dtype | None,
    apply: bool = True,
) -> dict[str, torch.Tensor]:
    """One micro-batch: forward, loss, backward, and the optimiser step when `apply` (SAM always
    steps: its two passes share the batch). The loss parts come back on the device: nothing here
    waits for the device (fp16's GradScaler aside), which a test checks."""
    device_type = batch["image"].device.type
    model = net.module if isinstance(net, torch.nn.parallel.DistributedDataParallel) else net

    def forward() -> tuple[torch.Tensor, dict]:
        with torch.autocast(device_type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            return criterion(net(batch["image"]), batch)

    loss, parts = forward()
    if isinstance(optimizer, SAM):
        loss.backward()
        _clip(model, cfg)
        optimizer.first_step()
        optimizer.zero_grad(set_to_none=True)
        second, _ = forward()
        second.backward()
        _clip(model, cfg)
        optimizer.second_step()
        optimizer.zero_grad(set_to_none=True)
        return parts
    scaler.scale(loss / cfg.optim.accum_steps).backward()
    if apply:
        scaler.unscale_(optimizer)
        _clip(model, cfg)
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)
    return parts


def _clip(model: torch.nn.Module, cfg: Config) -> None:
    if cfg.optim.grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip)


__all__ = ["BalancedSampler", "NonFiniteLoss", "RunResult", "fit", "train_step", "validate"]
