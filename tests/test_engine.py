"""fit / resume / DDP / eval on the smoke profile and the smoke synthetic benchmark (CPU)."""

import hashlib
import json
import os
import pickle
import shutil
import socket
from pathlib import Path

import pandas as pd
import pytest
import torch

import fbifpn.data.dataset as dataset_module
import fbifpn.engine.train as train_module
from fbifpn import load_config
from fbifpn.cli import main
from fbifpn.data.cache import prepared_manifest
from fbifpn.data.manifest import load_manifest
from fbifpn.engine import NonFiniteLoss, fit
from fbifpn.engine import checkpoint as ckpt
from fbifpn.engine.train import BalancedSampler, training_set

QUICK = ["train.epochs=2"]


@pytest.fixture(scope="module")
def smoke_manifest():
    """The smoke benchmark, made on first use exactly as `train --profile smoke` makes it."""
    return prepared_manifest(load_config("smoke"), progress=False)


def _weights(run_dir):
    return ckpt.load(run_dir / "last.pt")["model"]


def _same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _killed(cfg, manifest, run_dir, monkeypatch, when):
    """`fit` stopped as by Ctrl-C right after the first checkpoint save for which `when(path, content)`
    holds; the save itself completes, as an atomic write does."""
    real_save = ckpt.save

    def save_then_die(path, **content):
        real_save(path, **content)
        if when(Path(path), content):
            raise KeyboardInterrupt

    monkeypatch.setattr(ckpt, "save", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        fit(cfg, manifest, run_dir, progress=False)
    monkeypatch.setattr(ckpt, "save", real_save)


def test_smoke_training_lowers_the_loss_and_beats_chance(smoke_manifest, tmp_path, monkeypatch):
    fitted = []
    real_fit = train_module.fit_temperature
    monkeypatch.setattr(
        train_module, "fit_temperature", lambda y, s: fitted.append((len(y), real_fit(y, s))) or fitted[-1][1]
    )
    result = fit(load_config("smoke"), smoke_manifest, tmp_path / "run", progress=False)
    lines = (tmp_path / "run/metrics.jsonl").read_text().splitlines()
    train = [json.loads(line) for line in lines if '"train"' in line]
    assert train[-1]["total"] < train[0]["total"]
    assert result.best_metric > 0.6  # best validation video AUC, seed 0 (0.875 when written)
    assert (tmp_path / "run/best.pt").is_file() and (tmp_path / "run/tensorboard").is_dir()
    saved = ckpt.load(tmp_path / "run/best.pt")
    assert 0 < saved["threshold"] < 1 and saved["best_epoch"] == result.best_epoch
    # fitted on the val frames of each pass that chose a checkpoint; best.pt holds the last one
    assert (
        fitted and saved["temperature"] == fitted[-1][1] and fitted[-1][0] == result.history[0]["videos"] * 6
    )


def test_two_runs_with_one_seed_are_identical(smoke_manifest, tmp_path):
    a = fit(load_config("smoke", QUICK), smoke_manifest, tmp_path / "a", progress=False)
    b = fit(load_config("smoke", QUICK), smoke_manifest, tmp_path / "b", progress=False)
    assert a.history == b.history
    assert _same(_weights(tmp_path / "a"), _weights(tmp_path / "b"))


def test_killed_mid_epoch_then_resumed_is_bit_identical(smoke_manifest, tmp_path, monkeypatch):
    cfg = load_config("smoke", QUICK)
    fit(cfg, smoke_manifest, tmp_path / "whole", progress=False)
    # a step checkpoint, mid-epoch
    _killed(
        cfg,
        smoke_manifest,
        tmp_path / "killed",
        monkeypatch,
        lambda path, c: c["step"] == 4 and c["batch"] != 0,
    )
    assert ckpt.load(tmp_path / "killed/last.pt")["batch"] == 4  # it really stopped mid-epoch
    fit(cfg, smoke_manifest, tmp_path / "killed", resume=True, progress=False)
    assert _same(_weights(tmp_path / "whole"), _weights(tmp_path / "killed"))


def test_val_every_validates_on_its_schedule_and_chooses_over_it(smoke_manifest, tmp_path, monkeypatch):
    """Every 4th step is validated, and the last (smoke: 7 steps per epoch, so 4, 8, 12, 14), not the
    end of epoch 0. A kill after step 4's validation, then a resume, validates step 4 once."""
    cfg = load_config("smoke", QUICK + ["train.val_every=4", "train.ckpt_every=0"])
    whole = fit(cfg, smoke_manifest, tmp_path / "whole", progress=False)
    steps = [r["step"] for r in whole.history]
    per_epoch = whole.steps // 2
    assert per_epoch % 4 and steps == sorted({*range(4, 2 * per_epoch + 1, 4), 2 * per_epoch})
    logged = [json.loads(line) for line in (tmp_path / "whole/metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in logged if r["kind"] == "val"] == steps
    # the highest AUC; among equal ones the lowest val loss; among equal both the first, as in fit
    best = min(whole.history, key=lambda r: (-round(r["video_auc"], 12), r["loss"], r["step"]))
    assert whole.best_step == best["step"] and whole.best_metric == best["video_auc"]
    assert ckpt.load(tmp_path / "whole/best.pt")["best_step"] == best["step"]
    # validating more often chooses among more checkpoints but trains exactly the same weights
    fit(
        load_config("smoke", QUICK + ["train.ckpt_every=0"]),
        smoke_manifest,
        tmp_path / "plain",
        progress=False,
    )
    assert _same(_weights(tmp_path / "whole"), _weights(tmp_path / "plain"))

    _killed(
        cfg,
        smoke_manifest,
        tmp_path / "killed",
        monkeypatch,
        lambda path, c: path.name == "last.pt" and c["step"] == 4,
    )
    resumed = fit(cfg, smoke_manifest, tmp_path / "killed", resume=True, progress=False)
    assert [r["step"] for r in resumed.history] == steps
    assert _same(_weights(tmp_path / "whole"), _weights(tmp_path / "killed"))


@pytest.mark.slow
def test_resumed_under_another_thread_count_is_still_bit_identical(smoke_manifest, tmp_path, monkeypatch):
    """CPU kernels split their sums by thread count; the checkpoint's count is used while resuming."""
    before = torch.get_num_threads()
    cfg = load_config("smoke", QUICK)
    try:
        torch.set_num_threads(2)
        fit(cfg, smoke_manifest, tmp_path / "whole", progress=False)
        real_save = ckpt.save

        def save_then_die(path, **content):
            real_save(path, **content)
            if content["step"] == 4 and content["batch"] != 0:
                raise KeyboardInterrupt

        monkeypatch.setattr(ckpt, "save", save_then_die)
        with pytest.raises(KeyboardInterrupt):
            fit(cfg, smoke_manifest, tmp_path / "killed", progress=False)
        monkeypatch.setattr(ckpt, "save", real_save)
        torch.set_num_threads(1)  # another machine, or a notebook that set its own
        fit(cfg, smoke_manifest, tmp_path / "killed", resume=True, progress=False)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    assert _same(_weights(tmp_path / "whole"), _weights(tmp_path / "killed"))


def test_the_test_split_is_never_opened(smoke_manifest, tmp_path, monkeypatch):
    opened = []
    real_imread = dataset_module.cv2.imread

    def spy(path, *args):
        opened.append(path)
        return real_imread(path, *args)

    monkeypatch.setattr(dataset_module.cv2, "imread", spy)
    fit(load_config("smoke", ["train.epochs=1"]), smoke_manifest, tmp_path / "run", progress=False)
    df = load_manifest(smoke_manifest)
    test_files = set(df[df.split == "test"].image) | set(df[df.split == "test"]["mask"])
    assert opened and not test_files & set(opened)
    assert set(df[df.split == "val"].image) & set(opened)  # val is read: the spy works


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(smoke_manifest, tmp_path, monkeypatch):
    import fbifpn.engine.train as train_module

    cfg = load_config("smoke", ["train.epochs=2"])
    _killed(
        cfg,
        smoke_manifest,
        tmp_path / "run",
        monkeypatch,
        lambda path, c: path.name == "last.pt" and c["epoch"] == 1,
    )
    before = hashlib.sha256((tmp_path / "run/last.pt").read_bytes()).hexdigest()

    class NaNLoss(train_module.MultiTaskLoss):  # the config cannot say NaN: its ranges refuse it
        def forward(self, out, batch):
            loss, parts = super().forward(out, batch)
            return loss * float("nan"), {k: v * float("nan") for k, v in parts.items()}

    monkeypatch.setattr(train_module, "MultiTaskLoss", NaNLoss)
    with pytest.raises(NonFiniteLoss, match="non-finite"):
        fit(cfg, smoke_manifest, tmp_path / "run", resume=True, progress=False)
    assert hashlib.sha256((tmp_path / "run/last.pt").read_bytes()).hexdigest() == before


def test_resume_with_another_model_is_refused(smoke_manifest, tmp_path):
    fit(load_config("smoke", ["train.epochs=1"]), smoke_manifest, tmp_path / "run", progress=False)
    with pytest.raises(ckpt.CheckpointError, match=r"model\.neck\.width"):
        fit(
            load_config("smoke", ["train.epochs=2", "model.neck.width=16"]),
            smoke_manifest,
            tmp_path / "run",
            resume=True,
            progress=False,
        )


def test_a_key_the_checkpoint_predates_counts_as_its_default(smoke):
    old = {"config": smoke.to_dict()}
    del old["config"]["model"]["heads"]["consistency_on_grid"]  # a checkpoint from before the key
    ckpt.check_resume_config(old, smoke, Path("old/last.pt"))
    changed = load_config("smoke", ["model.heads.consistency_on_grid=true"])
    with pytest.raises(ckpt.CheckpointError, match=r"consistency_on_grid \(False vs True\).*remove old"):
        ckpt.check_resume_config(old, changed, Path("old/last.pt"))


class _Payload:
    def __reduce__(self):
        return (os.system, ("touch /tmp/fbifpn-pwned",))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_a_crafted_pickle_checkpoint_is_refused_and_never_runs(tmp_path, capsys):
    bad = tmp_path / "evil.pt"
    with open(bad, "wb") as f:
        pickle.dump({"model": _Payload()}, f)
    if os.path.exists("/tmp/fbifpn-pwned"):
        os.remove("/tmp/fbifpn-pwned")
    with pytest.raises(ckpt.CheckpointError, match="refused"):
        ckpt.load(bad)
    assert (
        main(["eval", "--checkpoint", str(bad), "--manifest", str(tmp_path), "--out", str(tmp_path / "o")])
        == 2
    )
    assert "refused" in capsys.readouterr().err
    assert not os.path.exists("/tmp/fbifpn-pwned")


def test_missing_rows_are_skipped_and_reported_or_fatal_when_strict(smoke_manifest, tmp_path):
    copy = tmp_path / "prep"
    shutil.copytree(smoke_manifest, copy)
    df = pd.read_csv(copy / "manifest.csv", keep_default_na=False)
    gone = df[df.split == "train"].image.iloc[0]
    os.remove(copy / gone)
    cfg = load_config("smoke", ["train.epochs=1", f"data.manifest={copy}"])
    result = fit(cfg, copy, tmp_path / "run", progress=False)
    assert result.skipped_rows == 1
    report = json.loads((tmp_path / "run/report.json").read_text())
    assert report["skipped_rows"][0]["file"].endswith(gone)
    with pytest.raises(FileNotFoundError, match="strict"):
        fit(
            load_config("smoke", ["train.epochs=1", f"data.manifest={copy}", "data.strict=true"]),
            copy,
            tmp_path / "r2",
            progress=False,
        )


def test_an_empty_split_is_a_clear_error(smoke_manifest, tmp_path):
    df = pd.read_csv(smoke_manifest / "manifest.csv", keep_default_na=False)
    df = df[df.split != "val"]
    base = smoke_manifest.resolve()
    for col in ("image", "mask", "landmarks"):
        df[col] = [str(base / v) if v else v for v in df[col]]
    df.to_csv(tmp_path / "no_val.csv", index=False)
    with pytest.raises(ValueError, match="split 'val'"):
        fit(
            load_config("smoke", ["train.epochs=1", f"data.manifest={tmp_path / 'no_val.csv'}"]),
            tmp_path / "no_val.csv",
            tmp_path / "r",
            progress=False,
        )


@pytest.mark.parametrize(
    "overrides",
    [
        ["optim.name=sam_adamw", "optim.ema=0.9"],
        ["optim.name=sam_sgd", "optim.grad_clip=1.0", "train.freeze_backbone_epochs=1"],
        ["optim.accum_steps=2", "optim.schedule=linear", "optim.warmup_steps=2", "train.fakes=both"],
    ],
)
def test_optimiser_options_train(smoke_manifest, tmp_path, overrides):
    result = fit(
        load_config("smoke", ["train.epochs=1", *overrides]), smoke_manifest, tmp_path / "run", progress=False
    )
    assert result.steps > 0 and all(torch.isfinite(p).all() for p in result.model.parameters())


class _LabelsAndPairs:
    """All BalancedSampler may read of a dataset: its labels and its (real, SBI fake) pairs."""

    def __init__(self, labels, pairs):
        self._labels, self._pairs = labels, pairs

    def labels(self):
        return list(self._labels)

    def sbi_pairs(self):
        return list(self._pairs)


def test_the_balanced_sampler_reads_only_labels_and_sbi_pairs():
    drawn = BalancedSampler(_LabelsAndPairs([0] * 30 + [1] * 90, []), seed=0).epoch_indices(0)
    assert (
        len(drawn) == 120 and 40 < sum(i < 30 for i in drawn) < 80
    )  # reals a quarter of the data, half the draws
    pairs = [(2 * i, 2 * i + 1) for i in range(10)]
    data = _LabelsAndPairs([0, 1] * 10 + [1] * 4, pairs)  # and 4 fakes of the dataset's own
    shards = [BalancedSampler(data, seed=0, rank=r, world=2).epoch_indices(1) for r in (0, 1)]
    assert sorted(shards[0] + shards[1]) == list(range(24))  # 14 units: each on one rank, none dropped
    for shard in shards:
        assert all(shard[k + 1] == i + 1 for k, i in enumerate(shard) if i < 20 and i % 2 == 0)


def test_a_training_set_names_each_sbi_fake_beside_its_real(smoke_manifest):
    cfg = load_config("smoke", ["train.fakes=both"])
    data = training_set(load_manifest(smoke_manifest), cfg, (0.5,) * 3, (0.5,) * 3)
    labels, pairs = data.labels(), data.sbi_pairs()
    assert len(labels) == len(data) and pairs
    assert all(labels[real] == 0 and labels[fake] == 1 for real, fake in pairs)
    assert all(
        data.items[fake].sbi and data.items[fake].video == data.items[real].video for real, fake in pairs
    )
    assert labels.count(1) > len(pairs)  # the dataset's own fakes too


def test_frozen_backbone_does_not_move(smoke_manifest, tmp_path):
    cfg = load_config("smoke", ["train.epochs=1", "train.freeze_backbone_epochs=1", "train.freeze_bn=true"])
    torch.manual_seed(cfg.train.seed)
    from fbifpn.models.net import build_model

    start = {k: v.clone() for k, v in build_model(cfg).state_dict().items()}
    trained = fit(cfg, smoke_manifest, tmp_path / "run", progress=False).model.state_dict()
    assert all(torch.equal(start[k], trained[k]) for k in start if k.startswith("backbone."))
    assert not all(torch.equal(start[k], trained[k]) for k in start if k.startswith("neck."))


def test_eval_writes_scores_and_metrics_with_provenance(smoke_manifest, tmp_path, capsys):
    fit(load_config("smoke", QUICK), smoke_manifest, tmp_path / "run", progress=False)
    assert (
        main(
            [
                "eval",
                "--checkpoint",
                str(tmp_path / "run/best.pt"),
                "--manifest",
                str(smoke_manifest),
                "--out",
                str(tmp_path / "ev"),
            ]
        )
        == 0
    )
    scores = pd.read_csv(tmp_path / "ev/scores.csv")
    assert {"dataset", "method", "video_id", "frame_idx", "face_idx", "label", "score", "mask_score"} <= set(
        scores
    )
    test = load_manifest(smoke_manifest).query("split == 'test'")
    assert set(scores.video_id) == set(test.video_id)
    family_of = test.drop_duplicates("video_id").set_index("video_id")["family"]
    assert (scores["family"] == scores["video_id"].map(family_of)).all()  # the manifest's, for resampling
    report = json.loads((tmp_path / "ev/metrics.json").read_text())
    assert "synthetic" in report["protocol"]["test_data"] and "validation" in report["protocol"]["selection"]
    assert report["git_commit"] and report["versions"]["torch"] and report["config"]["model"]
    video = report["metrics"]["video"]
    assert video["auc_ci95"][0] <= video["auc"] <= video["auc_ci95"][1]
    assert "video AUC" in capsys.readouterr().out


def test_flip_tta_averages_both_views(smoke_manifest):
    from fbifpn.data.dataset import FrameDataset
    from fbifpn.engine import predict
    from fbifpn.models.net import build_model

    cfg = load_config("smoke")
    model = build_model(cfg).eval()
    ds = FrameDataset(smoke_manifest, 64, model.mean, model.std, split="test", frames_per_video=1)
    loader = torch.utils.data.DataLoader(ds, batch_size=4)
    plain, tta = predict(model, loader, progress=False), predict(model, loader, tta_flip=True, progress=False)
    batch = next(iter(loader))
    with torch.no_grad():
        flipped = model.score(model(batch["image"].flip(-1)))
    expected = (torch.tensor(plain.score[:4].to_numpy(), dtype=torch.float32) + flipped) / 2
    torch.testing.assert_close(torch.tensor(tta.score[:4].to_numpy(), dtype=torch.float32), expected)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank, world, port, manifest, run_dir, overrides, out):
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        WORLD_SIZE=str(world),
        LOCAL_RANK=str(rank),
    )
    torch.set_num_threads(1)
    result = fit(load_config("smoke", overrides), manifest, run_dir, progress=False)
    torch.save(result.model.state_dict(), f"{out}/rank{rank}.pt")
    torch.distributed.destroy_process_group()


def _two_ranks_then_one(worker, common, manifest, tmp_path):
    """Train `common` in two gloo processes (batch 4 each, through `worker`), then in one process with
    the same global batch (8); the two ranks' weights and the single process's."""
    torch.multiprocessing.spawn(
        worker,
        args=(
            2,
            _free_port(),
            manifest,
            str(tmp_path / "ddp"),
            [*common, "train.batch_size=4"],
            str(tmp_path),
        ),
        nprocs=2,
    )
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        single = fit(
            load_config("smoke", [*common, "train.batch_size=8"]),
            manifest,
            tmp_path / "single",
            progress=False,
        )
    finally:
        torch.set_num_threads(before)
    return r0, r1, single.model.state_dict()


def _assert_close_weights(a, b):
    for k in b:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_ddp_two_cpu_processes_match_a_single_process(smoke_manifest, tmp_path):
    common = ["train.max_steps=2", "train.freeze_bn=true", "train.epochs=1"]
    r0, r1, ref = _two_ranks_then_one(_ddp_worker, common, smoke_manifest, tmp_path)
    assert _same(r0, r1)  # DDP keeps the ranks identical
    _assert_close_weights(r0, ref)
    from fbifpn.models.net import build_model

    torch.manual_seed(0)
    assert not _same(ref, build_model(load_config("smoke")).state_dict())  # two steps did change the weights


def _counting_ddp_worker(rank, world, port, manifest, run_dir, overrides, out):
    """`_ddp_worker`, with a comm hook on every DistributedDataParallel model that counts the
    backward passes whose gradients it all-reduces (the last bucket of a pass is marked)."""
    from torch.distributed.algorithms.ddp_comm_hooks.default_hooks import allreduce_hook

    ddp = torch.nn.parallel.DistributedDataParallel
    all_reduced_passes = []

    def counting_allreduce(state, bucket):
        if bucket.is_last():
            all_reduced_passes.append(bucket.index())  # the pass is done with its last bucket
        return allreduce_hook(None, bucket)

    real_init = ddp.__init__

    def init_with_hook(self, *args, **kwargs):
        real_init(self, *args, **kwargs)
        self.register_comm_hook(None, counting_allreduce)

    ddp.__init__ = init_with_hook  # in this spawned process only
    _ddp_worker(rank, world, port, manifest, run_dir, overrides, out)
    Path(out, f"all_reduced{rank}.json").write_text(json.dumps(len(all_reduced_passes)))


@pytest.mark.slow
def test_ddp_accumulation_all_reduces_once_per_optimiser_step(smoke_manifest, tmp_path):
    """With optim.accum_steps=2 the micro-batch before a step's last keeps its gradients local: they
    cross processes once per optimiser step, and the step still equals one process's step over both
    ranks' samples."""
    common = ["train.max_steps=2", "train.freeze_bn=true", "train.epochs=1", "optim.accum_steps=2"]
    r0, r1, ref = _two_ranks_then_one(_counting_ddp_worker, common, smoke_manifest, tmp_path)
    assert ckpt.load(tmp_path / "ddp/last.pt")["step"] == 2  # 4 micro-batches per rank
    assert [json.loads((tmp_path / f"all_reduced{r}.json").read_text()) for r in (0, 1)] == [2, 2]
    assert _same(r0, r1)  # the local gradients were summed into the all-reduce, on both ranks
    _assert_close_weights(r0, ref)


def _made_on_main_worker(rank, world, port, out):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world))
    from fbifpn.engine import distributed as dist

    dist.setup(torch.device("cpu"))
    calls = []
    shared = dist.made_on_main(lambda: calls.append(rank) or f"made by {rank}")
    try:
        dist.made_on_main(lambda: 1 / 0)
        failure = None
    except (ZeroDivisionError, RuntimeError) as e:
        failure = f"{type(e).__name__}: {e}"
    Path(out, f"rank{rank}.json").write_text(
        json.dumps({"calls": calls, "shared": shared, "failure": failure})
    )
    torch.distributed.destroy_process_group()


@pytest.mark.slow
def test_data_is_made_by_rank_0_alone_and_its_failure_stops_every_rank(tmp_path):
    torch.multiprocessing.spawn(_made_on_main_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2)
    r0, r1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1))
    assert r0["calls"] == [0] and r1["calls"] == [] and r0["shared"] == r1["shared"] == "made by 0"
    assert r0["failure"].startswith("ZeroDivisionError")
    assert r1["failure"].startswith("RuntimeError: rank 0 failed") and "ZeroDivisionError" in r1["failure"]


def test_an_sbi_run_validates_on_self_blended_val_reals_and_reads_no_fake_video(
    smoke_manifest, tmp_path, monkeypatch
):
    """Under train.fakes=sbi no dataset fake is read, in training or in the validations that choose
    the checkpoint; val's fakes are self-blended from val's reals, the same at every validation. The
    kept steps' weights are saved beside last.pt, and best.pt carries the calibration maps."""
    read = []
    real_read = dataset_module.FrameDataset.read
    monkeypatch.setattr(
        dataset_module.FrameDataset, "read", lambda self, row: read.append(row) or real_read(self, row)
    )
    cfg = load_config("smoke", QUICK + ["train.fakes=sbi", "train.val_every=2", "train.keep_steps=[2,6]"])
    result = fit(cfg, smoke_manifest, tmp_path / "run", progress=False)
    assert read and all(row["label"] == 0 for row in read)  # not one fake video's crop opened
    frames = load_manifest(smoke_manifest)
    val_reals = frames[(frames.split == "val") & (frames.label == 0)].video_id.nunique()
    assert all(r["videos"] == 2 * val_reals for r in result.history)  # each real and its blend
    assert all(0 < r["loss"] < 10 for r in result.history)
    assert result.steps == 6  # SBI: 3 per epoch; step 6 is the last, kept by close_epoch
    for step in (2, 6):
        kept = ckpt.load(tmp_path / f"run/step-{step}.pt")
        assert kept["step"] == step and kept["calibrations"] is None and kept["temperature"] is None
    saved = ckpt.load(tmp_path / "run/best.pt")
    assert set(saved["calibrations"]) == {"platt", "isotonic"}
    assert saved["best_loss"] == next(r["loss"] for r in result.history if r["step"] == saved["best_step"])


def test_the_same_sbi_val_fakes_come_at_every_validation(smoke_manifest):
    from fbifpn.engine.train import validation_set

    frames = load_manifest(smoke_manifest)
    norm = ((0.5,) * 3, (0.5,) * 3)
    val = validation_set(frames, load_config("smoke", ["train.fakes=sbi", "train.seed=5"]), *norm)
    first = [val[i]["image"] for i in range(len(val))]
    val.set_epoch(3)  # a later validation: the same blends
    assert all(torch.equal(a, val[i]["image"]) for i, a in enumerate(first))
    other = validation_set(frames, load_config("smoke", ["train.fakes=sbi", "train.seed=6"]), *norm)
    assert all(torch.equal(a, other[i]["image"]) for i, a in enumerate(first))  # not the run's seed
    assert {val[i]["video_id"].endswith("/sbi") for i in range(len(val))} == {True, False}


def test_selection_breaks_a_saturated_auc_by_the_val_loss():
    from fbifpn.engine.train import TrainState, improves

    state = TrainState(best=1.0, best_loss=0.30)
    assert improves({"video_auc": 1.0, "loss": 0.20}, state, "video_auc")  # same AUC, lower loss
    assert not improves({"video_auc": 1.0, "loss": 0.40}, state, "video_auc")
    assert not improves({"video_auc": 0.99, "loss": 0.01}, state, "video_auc")  # the AUC comes first
    assert improves({"video_auc": 1.0 - 1e-15, "loss": 0.2}, state, "video_auc")  # equal to 12 decimals
    assert improves({"video_auc": 0.5, "loss": 0.2}, TrainState(), "video_auc")  # the first validation
    assert improves({"video_auc": 0.5, "loss": 0.2}, state, "loss")  # on the loss alone
    assert not improves({"video_auc": float("nan"), "loss": 0.1}, state, "video_auc")
