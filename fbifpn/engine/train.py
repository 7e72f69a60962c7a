"""fit(cfg, manifest, run_dir): build, loop, validate, checkpoint. Reads top to bottom.

Honest by construction: the best checkpoint is chosen on the validation split, the test split is
never opened, and the val-chosen decision threshold travels in every checkpoint. Resumable bit for
bit: the data order and every augmentation derive from (seed, epoch, index), and checkpoints hold
every state including RNGs and the position within the epoch. The same code runs alone or under
torchrun (DistributedDataParallel; logging and checkpoints on rank 0).

`fit` is short; its parts follow it in the order it uses them: `open_run_dir` (the checks that must
fail in seconds), `build_training` (data, network, optimisation), `TrainState` (what a checkpoint
saves and a resume restores), `RunLog` (metrics.jsonl, TensorBoard, the loss window), `train_epoch`
(optimiser steps of accumulated micro-batches), `close_epoch`, `validate_and_select` and
`save_checkpoint`. The data pieces (sampler, loaders, `validate`) and `train_step` come last.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import pandas as pd
import torch
from tqdm.auto import tqdm

from fbifpn import atomic, calibration, metrics
from fbifpn.calibration import fit_temperature, nll
from fbifpn.config import Config, ConfigError
from fbifpn.data.dataset import FrameDataset
from fbifpn.data.manifest import load_manifest
from fbifpn.data.prep import geometry_change, recorded_options
from fbifpn.engine import checkpoint as ckpt
from fbifpn.engine import distributed as dist
from fbifpn.engine.device import autocast_dtype_of, resolve_device, set_bn_eval, to_device
from fbifpn.engine.evaluate import predict
from fbifpn.engine.optim import SAM, apply_lr_factors, build_optimizer, build_scheduler, set_backbone_frozen
from fbifpn.losses import MultiTaskLoss
from fbifpn.models.net import build_model
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


@dataclass
class TrainState:
    """Where a run stands and what it has chosen so far. Every checkpoint saves these fields under
    their names as keys, and a resume restores them."""

    epoch: int = 0
    batch: int = 0  # micro-batches of this epoch already trained
    step: int = 0  # optimiser steps
    best: float = -math.inf  # the best `eval.select_on` on val so far
    best_loss: float = math.inf  # the val loss of that checkpoint: it breaks ties of a saturated AUC
    best_epoch: int = -1
    best_step: int = -1
    threshold: float = 0.5  # the decision threshold val chose with the best checkpoint
    # fitted on the best checkpoint's val frame scores (fbifpn.calibration); None in older checkpoints
    temperature: float | None = None
    # Platt and isotonic maps fitted on the best checkpoint's val video scores (fbifpn.calibration);
    # `detect` reports the one `eval.calibration` names. None in older checkpoints
    calibrations: dict | None = None
    history: list[dict] = field(default_factory=list)  # every validation's record

    @classmethod
    def from_checkpoint(cls, saved: dict) -> TrainState:
        """A key the checkpoint predates (best_step is newer than the rest) keeps its default."""
        fresh = cls()
        return cls(**{f.name: saved.get(f.name, getattr(fresh, f.name)) for f in fields(cls)})

    def to_checkpoint(self) -> dict:
        return asdict(self)


def fit(
    cfg: Config,
    manifest: Path | str,
    run_dir: Path | str | OpenRun,
    resume: bool = False,
    progress: bool = True,
) -> RunResult:
    """Train `cfg` on the train split of `manifest` (a manifest CSV or prep folder; the synthetic
    benchmark's comes from `fbifpn.data.cache.prepared_manifest(cfg)`), choosing the best checkpoint
    on its val split. Writes metrics.jsonl, TensorBoard, last.pt and the val-chosen best.pt into
    `run_dir`; `resume` continues from its last.pt when there is one. A caller that makes the data
    first passes the `open_run_dir` it checked before, so that last.pt is read once. Under torchrun
    every rank calls it with the same manifest."""
    device = resolve_device(cfg.train.device)
    dist.setup(device)
    torch.manual_seed(cfg.train.seed)
    run = run_dir if isinstance(run_dir, OpenRun) else open_run_dir(cfg, run_dir, resume)
    if run.cfg != cfg:
        raise ValueError(f"{run.path}: opened for another config than the one fit is given")
    run_dir, saved, resume = run.path, run.saved, run.resume
    training = build_training(cfg, manifest, run_dir, device)
    with threads_of(saved, training.last_path):
        state = restore(training, saved) if saved is not None else TrainState()
        if resume and saved is None and dist.is_main():
            print(f"training from the start: {run_dir} holds no checkpoint to resume yet")
        log = RunLog(run_dir, cfg, training.skipped)
        try:
            while not budget_spent(training, state):
                epoch = state.epoch
                finished = train_epoch(training, state, log, progress)
                close_epoch(training, state, log, epoch, finished)
        finally:
            log.close()
    seconds = log.elapsed()
    return RunResult(
        run_dir,
        training.best_path if training.best_path.is_file() else None,
        training.last_path,
        state.best,
        state.best_epoch,
        state.threshold,
        state.step,
        seconds,
        log.images / max(seconds, 1e-9),
        state.history,
        len(training.skipped),
        training.model,
        state.best_step,
    )


@dataclass(frozen=True)
class OpenRun:
    """A run folder checked by `open_run_dir` for `cfg`, and the last.pt a resume continues from
    (None: the run starts afresh)."""

    path: Path
    cfg: Config
    resume: bool
    saved: dict | None


def open_run_dir(cfg: Config, run_dir: Path | str, resume: bool) -> OpenRun:
    """The checks that must fail in seconds, not after a benchmark is built: a config `fit` cannot
    train, a run folder it cannot write, a checkpoint trained with another config. `fit` makes them;
    a caller that makes the data before calling `fit` makes them first and hands `fit` the result."""
    run_dir = Path(run_dir)
    if cfg.optim.name.startswith("sam") and (cfg.optim.accum_steps > 1 or cfg.train.precision == "fp16"):
        raise ValueError(
            "SAM is not combined with gradient accumulation or fp16 loss scaling: use bf16 or fp32"
        )
    saved = None
    last_path = run_dir / "last.pt"
    if resume and last_path.is_file():
        saved = ckpt.load(last_path)
        ckpt.check_resume_config(saved, cfg, last_path)
    if dist.is_main():
        writable_dir(run_dir, "run folder")  # before any work, not at the first checkpoint
    return OpenRun(run_dir, cfg, resume, saved)


@dataclass
class Training:
    """What `fit` builds once and its parts share: the data, the network and its optimisation."""

    cfg: Config
    device: torch.device
    last_path: Path  # where a resume continues from
    best_path: Path  # the checkpoint val chose
    train_set: FrameDataset
    sampler: BalancedSampler
    val_loader: torch.utils.data.DataLoader
    skipped: list[dict]  # train and val manifest rows whose files are missing
    model: torch.nn.Module  # the network: its weights are what a checkpoint holds
    net: torch.nn.Module  # what trains: the model, or under torchrun the model in DDP
    criterion: MultiTaskLoss
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    ema: torch.optim.swa_utils.AveragedModel | None
    autocast_dtype: torch.dtype | None
    total_steps: int
    prep: dict | None  # the options prep cut the manifest's crops with (None: not cut by prep)

    @property
    def validated_model(self) -> torch.nn.Module:
        """The weights validation scores, and so selects: the EMA's when there is one."""
        return self.ema.module if self.ema is not None else self.model


def build_training(cfg: Config, manifest: Path | str, run_dir: Path, device: torch.device) -> Training:
    """Train and val data (the test split is never opened here), the network, loss and optimisation."""
    rank, world = dist.rank(), dist.world_size()
    frames = load_manifest(Path(manifest))
    if cfg.data.exclude_methods:
        frames = without_methods(frames, cfg.data.exclude_methods)
    model = build_model(cfg).to(device)
    norm = {"mean": model.mean, "std": model.std}  # the backbone's own input normalisation
    train_set = training_set(frames, cfg, **norm)
    val_set = validation_set(frames, cfg, **norm)
    sampler = BalancedSampler(train_set, cfg.train.seed, rank, world)
    per_epoch = steps_per_epoch(len(sampler), cfg, world)
    if cfg.train.channels_last:
        model = model.to(memory_format=torch.channels_last)
    net = torch.nn.parallel.DistributedDataParallel(model) if world > 1 else model
    optimizer = build_optimizer(model, cfg.optim)
    total_steps = cfg.train.max_steps or per_epoch * cfg.train.epochs
    ema = None
    if cfg.optim.ema > 0:
        ema = torch.optim.swa_utils.AveragedModel(
            model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(cfg.optim.ema)
        )
    return Training(
        cfg=cfg,
        device=device,
        last_path=run_dir / "last.pt",
        best_path=run_dir / "best.pt",
        train_set=train_set,
        sampler=sampler,
        val_loader=validation_loader(val_set, cfg, rank, world),
        skipped=train_set.skipped + val_set.skipped,
        model=model,
        net=net,
        criterion=MultiTaskLoss(cfg),
        optimizer=optimizer,
        scheduler=build_scheduler(optimizer, total_steps, cfg.optim),
        scaler=torch.amp.GradScaler(device.type, enabled=cfg.train.precision == "fp16"),
        ema=ema,
        autocast_dtype=autocast_dtype_of(cfg.train.precision),
        total_steps=total_steps,
        prep=asdict(options) if (options := recorded_options(manifest)) else None,
    )


VAL_SBI_SEED = 0  # every SBI run validates on the same self-blended fakes, whatever its own seed


def validation_set(manifest: pd.DataFrame, cfg: Config, mean, std) -> FrameDataset:
    """The val split that chooses the checkpoint. Under `train.fakes: sbi` its fakes are self-blended
    from the val reals (fixed, the same at every validation) and no dataset fake is read: a run that
    trains on no manipulation method must not have one choose its checkpoint either."""
    return FrameDataset(
        manifest,
        cfg.data.image_size,
        mean,
        std,
        split="val",
        frames_per_video=cfg.train.val_frames or cfg.data.frames_per_video,
        fakes="sbi" if cfg.train.fakes == "sbi" else "dataset",
        seed=VAL_SBI_SEED,
        strict=cfg.data.strict,
    )


def steps_per_epoch(samples: int, cfg: Config, world: int) -> int:
    """Optimiser steps in an epoch of `samples` (this process's share); too few for one is an error,
    else the run would train no step and save an untrained model."""
    micro = cfg.optim.accum_steps
    if samples // cfg.train.batch_size < micro:
        raise ConfigError(
            f"train.batch_size={cfg.train.batch_size} (x optim.accum_steps={micro}) does not fit the data: "
            f"an epoch of the train split gives {samples} samples"
            + (f" per process ({world} processes)" if world > 1 else "")
            + ", too few for one optimisation step"
        )
    return samples // cfg.train.batch_size // micro


@contextlib.contextmanager
def threads_of(saved: dict | None, path: Path) -> Iterator[None]:
    """While a resumed run trains, the torch thread count its checkpoint was trained with: CPU kernels
    split their sums by it, so a bit-exact continuation needs it. The caller's count (a notebook
    kernel's) comes back afterwards."""
    threads = saved.get(ckpt.THREADS) if saved is not None else None  # absent before the key existed
    before = torch.get_num_threads()
    if threads is None or threads == before:
        yield
        return
    if dist.is_main():
        print(
            f"--resume: torch threads set to {threads} (was {before}), "
            f"as {path} was trained with, so the run continues bit for bit"
        )
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def restore(training: Training, saved: dict) -> TrainState:
    """Every state `saved` (last.pt) holds, RNGs included, and the run's position. A manifest whose
    crops were cut another way than the run's first part trained on is refused: the run would mix them."""
    before, now = saved.get(ckpt.PREP), training.prep
    if before is not None and now is not None and (change := geometry_change(before, now)):
        raise ckpt.CheckpointError(
            f"{training.last_path}: trained on crops cut with {change[0]}, but this manifest's were cut "
            f"with {change[1]}; resume with the manifest it trained on, or train into another run folder"
        )
    ckpt.load_weights(training.model, saved["model"], training.last_path)
    training.optimizer.load_state_dict(saved["optimizer"])
    training.scheduler.load_state_dict(saved["scheduler"])
    training.scaler.load_state_dict(saved["scaler"])
    if training.ema is not None and saved.get("ema") is not None:
        training.ema.load_state_dict(saved["ema"])
    ckpt.set_rng_state(saved["rng"])
    return TrainState.from_checkpoint(saved)


class RunLog:
    """What a run reports. Rank 0 writes metrics.jsonl (one JSON record a line) and TensorBoard.
    Every rank sums its loss parts on the device over a window of micro-batches; the window's mean,
    all-reduced, is the loop's one host sync and its non-finite check."""

    def __init__(self, run_dir: Path, cfg: Config, skipped: list[dict]):
        self.last_path = run_dir / "last.pt"
        self.sums: dict[str, torch.Tensor] = {}
        self.window = 0  # micro-batches summed into `sums`
        self.images = 0  # seen by all ranks in this session (a resume starts again from 0)
        self.start = time.perf_counter()
        self.writer = self.records = None
        if not dist.is_main():
            return
        run_dir.mkdir(parents=True, exist_ok=True)
        from torch.utils.tensorboard import SummaryWriter  # rank 0 alone needs it, and it imports slowly

        self.writer = SummaryWriter(str(run_dir / "tensorboard"))
        self.records = open(run_dir / "metrics.jsonl", "a")  # noqa: SIM115 - closed by close()
        atomic.write_text(run_dir / "config.json", json.dumps(cfg.to_dict(), indent=1))
        atomic.write_text(run_dir / "report.json", json.dumps({"skipped_rows": skipped}, indent=1))
        if skipped:
            print(
                f"skipped {len(skipped)} manifest rows with missing crops (listed in {run_dir / 'report.json'})"
            )

    def add(self, parts: dict[str, torch.Tensor], images: int) -> None:
        for k, v in parts.items():
            self.sums[k] = self.sums.get(k, 0) + v
        self.window += 1
        self.images += images

    def close_window(self, step: int) -> dict[str, float] | None:
        """The window's mean loss parts over every rank (None when it is empty), then a new window.
        Called at log points and before any checkpoint, so none is written after a non-finite loss."""
        if not self.window:
            return None
        values = {k: (dist.all_reduce_mean(v) / self.window).item() for k, v in self.sums.items()}
        if not all(math.isfinite(v) for v in values.values()):
            raise NonFiniteLoss(
                f"the training loss became non-finite by step {step} ({values}); "
                f"stopped, and the last good checkpoint {self.last_path} was left untouched"
            )
        self.sums, self.window = {}, 0
        return values

    def write(self, record: dict) -> None:
        if self.records is None:
            return
        self.records.write(json.dumps(record) + "\n")
        self.records.flush()
        for k, v in record.items():
            if isinstance(v, (int, float)) and k not in ("step", "epoch"):
                self.writer.add_scalar(f"{record['kind']}/{k}", v, record["step"])

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def close(self) -> None:
        if self.records is not None:
            self.writer.close()
            self.records.close()


def steps_spent(training: Training, state: TrainState) -> bool:
    return bool(training.cfg.train.max_steps) and state.step >= training.total_steps


def budget_spent(training: Training, state: TrainState) -> bool:
    """Every epoch trained, or `train.max_steps` steps."""
    return state.epoch >= training.cfg.train.epochs or steps_spent(training, state)


def train_epoch(training: Training, state: TrainState, log: RunLog, progress: bool) -> bool:
    """Train from the state's position to the end of its epoch or of the step budget, validating and
    checkpointing on the step schedule. True when the epoch was trained to its end."""
    cfg, epoch = training.cfg, state.epoch
    set_backbone_frozen(training.optimizer, epoch < cfg.train.freeze_backbone_epochs)
    apply_lr_factors(training.optimizer, training.scheduler)
    training.train_set.set_epoch(epoch)
    batches = epoch_batches(training.sampler.epoch_indices(epoch), cfg)
    micro_batches = iter(training_loader(training.train_set, batches[state.batch :], cfg, training.device))
    train_mode(training)
    bar = tqdm(
        total=len(batches),
        initial=state.batch,
        desc=f"epoch {epoch}",
        disable=not (progress and dist.is_main()),
    )
    while state.batch < len(batches) and not steps_spent(training, state):
        optimiser_step(training, state, log, micro_batches, bar)
        if state.step % cfg.train.log_every == 0:
            values = log.close_window(state.step)
            log.write(
                {
                    "kind": "train",
                    "step": state.step,
                    "epoch": epoch,
                    "lr": training.optimizer.param_groups[-1]["lr"],
                    "images": log.images,
                    "elapsed_s": round(log.elapsed(), 3),
                    **values,
                }
            )
            bar.set_postfix(loss=f"{values['total']:.4f}")
        # The last step and an epoch's end are validated and saved by close_epoch; a step checkpoint
        # there could outlive a validation killed halfway, which a resume skips.
        last_step = steps_spent(training, state)
        at_the_end = last_step or state.batch >= len(batches)
        if cfg.train.val_every and state.step % cfg.train.val_every == 0 and not at_the_end:
            log.close_window(state.step)
            validate_and_select(training, state, log, epoch)
            # last.pt with its validation, so that a resumed run does not repeat it
            save_checkpoint(training, training.last_path, state)
            train_mode(training)
        elif cfg.train.ckpt_every and state.step % cfg.train.ckpt_every == 0 and not last_step:
            log.close_window(state.step)
            save_checkpoint(training, training.last_path, state)
        if state.step in cfg.train.keep_steps and not at_the_end:
            save_kept(training, state)
    bar.close()
    return state.batch >= len(batches)


def epoch_batches(indices: list[int], cfg: Config) -> list[list[int]]:
    """An epoch's sample indices as micro-batches, as many as make whole optimiser steps: gradients
    left over from a partial step would otherwise flow into the next epoch's first step, and a
    resume at the epoch's end (which does not save them) would lose them."""
    size = cfg.train.batch_size
    count = len(indices) // size // cfg.optim.accum_steps * cfg.optim.accum_steps
    return [indices[i * size : (i + 1) * size] for i in range(count)]


def train_mode(training: Training) -> None:
    training.net.train()
    if training.cfg.train.freeze_bn:
        set_bn_eval(training.net)


def optimiser_step(
    training: Training, state: TrainState, log: RunLog, micro_batches: Iterator[dict], bar
) -> None:
    """One optimiser step: `optim.accum_steps` micro-batches, forward and backward each with their
    gradients summed, the optimiser stepping after the last; then the schedule and the EMA."""
    micro = training.cfg.optim.accum_steps
    for i in range(micro):
        batch = to_device(next(micro_batches), training.device, training.cfg.train.channels_last)
        last = i == micro - 1
        with gradient_sync(training.net, last):
            parts = train_step(
                training.net,
                training.criterion,
                training.optimizer,
                training.scaler,
                batch,
                training.cfg,
                training.autocast_dtype,
                last,
            )
        log.add(parts, images=len(batch["label"]) * dist.world_size())
        state.batch += 1
        bar.update()
    state.step += 1
    training.scheduler.step()
    apply_lr_factors(training.optimizer, training.scheduler)
    if training.ema is not None:
        training.ema.update_parameters(training.model)


def gradient_sync(net: torch.nn.Module, sync: bool) -> contextlib.AbstractContextManager:
    """DistributedDataParallel all-reduces the gradients in every backward pass. A micro-batch that
    does not end its optimiser step keeps its gradients local instead: they add up in .grad, and the
    step's last backward all-reduces their sum, so a step costs one all-reduce, not accum_steps."""
    if sync or not isinstance(net, torch.nn.parallel.DistributedDataParallel):
        return contextlib.nullcontext()
    return net.no_sync()


def close_epoch(training: Training, state: TrainState, log: RunLog, epoch: int, finished: bool) -> None:
    """The end of an epoch, or of the step budget: log the rest of the loss window, validate (on the
    step schedule, and always at the very end), keep the best on val, save last.pt."""
    if values := log.close_window(state.step):
        log.write({"kind": "train", "step": state.step, "epoch": epoch, **values})
    if finished:  # best.pt then holds the state of a finished epoch, like last.pt
        state.epoch, state.batch = epoch + 1, 0
    every = training.cfg.train.val_every
    on_schedule = not every or state.step % every == 0 or budget_spent(training, state)  # a schedule in steps
    # A resume can land at an epoch's end right after a validated step: from a last.pt written before
    # epochs held whole optimiser steps only (the partial step's micro-batches came after it).
    validated = bool(state.history) and state.history[-1]["step"] == state.step
    if on_schedule and not validated:
        validate_and_select(training, state, log, epoch)
    if state.step in training.cfg.train.keep_steps:
        save_kept(training, state)
    save_checkpoint(training, training.last_path, state)


def kept_path(run_dir: Path, step: int) -> Path:
    """The weights after `step` steps, kept for `train.keep_steps`."""
    return run_dir / f"step-{step}.pt"


def save_kept(training: Training, state: TrainState) -> None:
    """The weights after this step, for `train.keep_steps`. The temperature and calibration maps
    the run holds are the val-chosen checkpoint's, not this step's, so they are left out (`detect`
    then reports raw scores); the threshold is the val-chosen one so far, and says nothing of the step."""
    kept = TrainState(**{**asdict(state), "temperature": None, "calibrations": None})
    save_checkpoint(training, kept_path(training.last_path.parent, state.step), kept)


def validate_and_select(training: Training, state: TrainState, log: RunLog, epoch: int) -> None:
    """Validate; keep the checkpoint when it is the best so far on val (the only selection)."""
    val, frames = validate(
        training.validated_model, training.val_loader, training.device, training.cfg, training.autocast_dtype
    )
    record = {"kind": "val", "step": state.step, "epoch": epoch, **val}
    log.write(record)
    state.history.append(record)
    if improves(val, state, training.cfg.eval.select_on):
        state.best, state.best_loss = val[training.cfg.eval.select_on], val["loss"]
        state.best_epoch, state.best_step = epoch, state.step
        state.threshold = val["threshold"]
        state.temperature = fit_temperature(frames["label"], frames["score"])
        videos = metrics.video_scores(frames)
        state.calibrations = {
            m: calibration.fit(m, videos["label"], videos["score"]) for m in ("platt", "isotonic")
        }
        save_checkpoint(training, training.best_path, state)


def improves(val: dict, state: TrainState, select_on: str) -> bool:
    """Whether this validation beats the chosen checkpoint. On an AUC, a higher one wins and an
    equal one (to 12 decimals: the same ranking counted another way) wins on a lower val loss, so a
    val AUC that saturates at 1.000 still tells later steps apart; on the loss, a lower one wins."""
    loss = val["loss"]
    if select_on == "loss":
        return math.isfinite(loss) and loss < state.best_loss
    metric = val[select_on]
    if not math.isfinite(metric):
        return False
    metric, best = round(metric, 12), round(state.best, 12) if math.isfinite(state.best) else state.best
    # best_loss is inf before a first choice and in checkpoints older than it: the first of equals stays
    tie_broken = math.isfinite(state.best_loss) and math.isfinite(loss) and loss < state.best_loss
    return metric > best or (metric == best and tie_broken)


def save_checkpoint(training: Training, path: Path, state: TrainState) -> None:
    """Every state a bit-exact resume needs, the config, and the prep options `detect` crops with;
    written by rank 0 (the ranks hold the same weights)."""
    if not dist.is_main():
        return
    ckpt.save(
        path,
        model=training.model.state_dict(),
        optimizer=training.optimizer.state_dict(),
        scheduler=training.scheduler.state_dict(),
        scaler=training.scaler.state_dict(),
        ema=training.ema.state_dict() if training.ema is not None else None,
        rng=ckpt.rng_state(),
        config=training.cfg.to_dict(),
        **{ckpt.PREP: training.prep},
        **state.to_checkpoint(),
    )


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
        labels = torch.tensor(self.dataset.labels())
        pairs = self.dataset.sbi_pairs()
        if pairs:  # SBI: units are (real, its SBI fake) pairs, kept adjacent, and the dataset's fakes
            blended = {fake for _, fake in pairs}
            units = [list(pair) for pair in pairs]
            units += [[i] for i, label in enumerate(labels.tolist()) if label == 1 and i not in blended]
            order = torch.randperm(len(units), generator=g).tolist()
            units = [units[k] for k in order]
            units = units[: len(units) - len(units) % self.world]
            return [i for u in units[self.rank :: self.world] for i in u]
        counts = torch.bincount(labels, minlength=2).clamp_min(1).float()
        weights = 1.0 / counts[labels]
        n = len(labels) - len(labels) % self.world
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
    come in pinned memory, so `to_device`'s non-blocking copy overlaps the step; each worker keeps 4
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


def validation_loader(
    val_set: FrameDataset, cfg: Config, rank: int, world: int
) -> torch.utils.data.DataLoader:
    """Each rank's share of val, in order. The loader has its own generator: starting a loader draws a
    seed, and validation must not move the training RNG, or validating more often (train.val_every)
    would change what is trained."""
    sampler = (
        torch.utils.data.distributed.DistributedSampler(val_set, world, rank, shuffle=False)
        if world > 1
        else None
    )
    return torch.utils.data.DataLoader(
        val_set,
        batch_size=cfg.eval.batch_size,
        sampler=sampler,
        num_workers=cfg.data.num_workers,
        generator=torch.Generator().manual_seed(cfg.train.seed),
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
        # the log loss of the frame scores (the classifier's, mixed with mask evidence when beta > 0):
        # the tie-break of a saturated AUC, or the criterion itself
        "loss": nll(frames["label"], frames["score"]) if frames["label"].nunique() == 2 else math.nan,
        "frame_auc": metrics.auc(frames["label"], frames["score"]),
        "video_auc": metrics.auc(videos["label"], videos["score"]),
        "video_ap": metrics.average_precision(videos["label"], videos["score"]),
        "threshold": metrics.choose_threshold(videos["label"], videos["score"]),
        "videos": len(videos),
    }
    return result, frames


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


__all__ = [
    "BalancedSampler",
    "NonFiniteLoss",
    "OpenRun",
    "RunResult",
    "TrainState",
    "fit",
    "kept_path",
    "open_run_dir",
    "train_step",
    "validate",
]
