"""The benchmark harness on the smoke profile (CPU, seconds), and the training step's promise not to
wait for the device."""

import json
import sys
from pathlib import Path

import pytest
import torch

import fbifpn
from fbifpn import bench, build_model, load_config
from fbifpn.cli import main
from fbifpn.engine.optim import build_optimizer
from fbifpn.engine.train import train_step
from fbifpn.losses import MultiTaskLoss

SETTINGS = {"mode", "device", "cpu_threads", "versions", "settings", "results", "ratios", "goals"}
RESULT = {
    "name",
    "mode",
    "precision",
    "channels_last",
    "compile",
    "img_s",
    "ms_per_step",
    "round_ms",
    "peak_mem_mb",
    "peak_mem_kind",
}


def test_train_report_holds_every_field(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert (
        main(
            [
                "bench",
                "train",
                "--profile",
                "smoke",
                "--steps",
                "2",
                "--rounds",
                "2",
                "--warmup",
                "1",
                "--json",
                str(out),
                "--variants",
                "backbone_only",
            ]
        )
        == 0
    )
    report = json.loads(out.read_text())
    assert set(report) >= SETTINGS
    assert {"torch", "timm", "python"} <= set(report["versions"])
    assert report["settings"]["batch"] == 8 and report["settings"]["image_size"] == 64
    assert report["settings"]["model"]["neck"] == load_config("smoke").to_dict()["model"]["neck"]
    names = [r["name"] for r in report["results"]]
    assert names[:3] == ["a: timm classifier", "b: full", "c: full, peers' recipe"]
    assert "b: backbone_only" in names and "b: full, SAM" in names
    for result in report["results"]:
        assert set(result) >= RESULT and result["img_s"] > 0 and len(result["round_ms"]) == 2
    peers = report["results"][2]
    assert peers["precision"] == "fp32" and not peers["channels_last"]
    assert {"b/a train", "b/c", "SAM step time / AdamW step time"} <= set(report["ratios"])
    assert report["goals"]["b/a train"] == 0.8
    assert "b/a train" in capsys.readouterr().out  # ratios are printed and stored; no test bounds them


@pytest.mark.parametrize(("name", "passes"), [("adamw", 1), ("sam_adamw", 2), ("sam_sgd", 2)])
def test_a_sam_step_runs_two_forward_backward_passes(monkeypatch, name, passes):
    """What makes SAM's step dearer than AdamW's, counted rather than timed."""
    cfg = load_config("smoke", {"optim.name": name})
    model = build_model(cfg, pretrained=False)
    forwards, backwards = [], []
    model.register_forward_hook(lambda *_: forwards.append(1))
    next(model.parameters()).register_hook(lambda grad: backwards.append(1))  # once per backward
    optimizer = build_optimizer(model, cfg.optim)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    batch = bench.random_batch(cfg, 4, torch.device("cpu"), channels_last=False)
    before = [p.detach().clone() for p in model.parameters()]
    train_step(model, MultiTaskLoss(cfg), optimizer, scaler, batch, cfg, None)
    assert (len(forwards), len(backwards)) == (passes, passes)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_infer_runs_only_the_heads_the_score_reads(tmp_path):
    report = bench.run("infer", load_config("smoke"), steps=2, warmup=1, progress=lambda *_: None)
    full = next(r for r in report["results"] if r["name"] == "b: full")
    assert full["heads"] == ["cls"]
    assert set(report["ratios"]) == {"b/a infer", "b/c infer"}
    model = build_model(load_config("smoke", {"model.beta": 0.5}), pretrained=False).eval()
    out = model(torch.randn(2, 3, 64, 64), heads=model.score_heads())
    assert out.mask_logit is not None and out.embed is None  # beta > 0 reads the mask, never the embedding
    every = model(torch.randn(2, 3, 64, 64))
    assert every.embed is not None


def test_data_mode_compares_the_loader_with_tensors_on_the_device(monkeypatch):
    import fbifpn.engine.train as train_module

    made = []
    real = train_module.training_loader
    monkeypatch.setattr(train_module, "training_loader", lambda *a: made.append(a) or real(*a))
    report = bench.run("data", load_config("smoke"), steps=2, warmup=1, progress=lambda *_: None)
    assert len(made) == 1  # it times fit's own loader, not a better-tuned copy
    loader = real(*made[0][:3], torch.device("cuda"))  # built only, never iterated
    assert loader.pin_memory and real(*made[0]).pin_memory is False
    fed = next(r for r in report["results"] if r["name"].startswith("d:"))
    assert fed["loader"]["num_workers"] == 0 and fed["loader"]["batches_per_epoch"] > 0
    assert report["ratios"]["d"] > 0


def test_rounds_take_the_trials_in_turn_and_keep_the_median(monkeypatch):
    """A slow spell during one round moves that round, not the trial's rate. The clock is a fake
    that each step advances, so nothing here depends on how busy the machine is."""
    calls, clock = [], [0.0]
    monkeypatch.setattr(bench.time, "perf_counter", lambda: clock[0])

    def step_of(name, slow_step=None):
        def step(i):
            calls.append(name)
            clock[0] += 0.05 if i == slow_step else 0.001

        return step

    setup = bench.Setup(load_config("smoke"), torch.device("cpu"), batch=4, steps=2, warmup=1, rounds=3)
    trials = [
        bench.Trial("a", "train", bench.PEERS, step_of("a", slow_step=3), feed=lambda i: i),
        bench.Trial("b", "train", bench.PEERS, step_of("b"), feed=lambda i: i),
    ]
    results = bench.measure(trials, setup)
    assert calls == ["a", "b"] + ["a", "a", "b", "b"] * 3  # warm-up, then the rounds in turn
    a = results[0]
    # the fake clock makes these exact: the slow round is kept, the rate is the median round's
    assert max(a["round_ms"]) == pytest.approx(25.5) and a["ms_per_step"] == pytest.approx(1.0)
    calls.clear()
    bench.measure(trials, setup, interleave=False)
    assert calls == ["a", "b"] + ["a"] * 6 + ["b"] * 6


def test_unknown_mode_is_an_error():
    with pytest.raises(ValueError, match="bench mode 'fit'"):
        bench.run("fit", load_config("smoke"))


PACKAGE = str(Path(fbifpn.__file__).parent)


def _step(cfg, device):
    model = build_model(cfg, pretrained=False).to(device)
    optimizer = build_optimizer(model, cfg.optim)
    scaler = torch.amp.GradScaler(device.type, enabled=False)
    batch = bench.random_batch(cfg, 4, device, channels_last=False)
    dtype = torch.bfloat16 if cfg.train.precision == "bf16" else None
    return lambda: train_step(model, MultiTaskLoss(cfg), optimizer, scaler, batch, cfg, dtype)


@pytest.mark.parametrize("overrides", [{}, {"optim.name": "sam_adamw"}, {"train.precision": "bf16"}])
def test_the_training_step_never_waits_for_the_device(monkeypatch, overrides):
    """Forward, loss, backward and optimiser step: our code calls no .item(), .cpu(), .tolist(),
    .numpy() nor a truth test of a tensor, so a GPU can run ahead of the Python loop (fit syncs only
    at its log points). torch's own CPU-side step counters (Adam's `step`) are not device syncs."""
    step = _step(load_config("smoke", overrides), torch.device("cpu"))
    calls = []
    for name in ("item", "cpu", "tolist", "__bool__", "numpy"):
        original = getattr(torch.Tensor, name)

        def spy(self, *args, _name=name, _original=original, **kwargs):
            calls.append((_name, sys._getframe(1).f_code.co_filename))
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, spy)
    parts = step()
    ours = [(name, file) for name, file in calls if file.startswith(PACKAGE)]
    parts["total"].item()  # the spy sees a sync where there is one
    monkeypatch.undo()
    assert ours == []
    assert calls[-1] == ("item", __file__)
    assert all(v.dim() == 0 for v in parts.values())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA: torch.cuda.set_sync_debug_mode")
def test_the_training_step_never_syncs_on_cuda():
    step = _step(load_config("smoke"), torch.device("cuda"))
    step()  # warm-up: lazy initialisations may sync once
    torch.cuda.set_sync_debug_mode("error")
    try:
        step()
    finally:
        torch.cuda.set_sync_debug_mode("default")


@pytest.mark.slow
def test_the_gpu_check_script_dry_runs_on_cpu(tmp_path):
    """benchmarks/gpu_check.sh on the smoke profile and smoke data: every report and the training
    summary appear (the GPU run uses the same script with its defaults)."""
    import os
    import subprocess

    root = Path(fbifpn.__file__).parent.parent
    env = os.environ | {
        "GPU_CHECK_PROFILE": "smoke",
        "SYNTH_SIZE": "smoke",
        "TRAIN_STEPS": "4",  # bounded in steps, never in seconds: a busy machine must not fail it
        "LOG_EVERY": "1",
        "TRAIN_SECONDS": "1800",  # only a guard against a hang
        "COMPILE_SECONDS": "0",  # inductor's CPU build takes minutes on 2 cores
        "BENCH_ROUNDS": "1",  # what is reported is checked here, not the rates: one short round
        "BENCH_STEPS": "1",
        "BENCH_WARMUP": "1",
        "OUT": str(tmp_path),
        "PYTHON": sys.executable,
    }
    result = subprocess.run(
        ["bash", str(root / "benchmarks" / "gpu_check.sh")],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    for mode, suffix in [
        ("train", ""),
        ("infer", ""),
        ("data", ""),
        ("train", "-narrow"),
        ("infer", "-narrow"),
    ]:
        report = json.loads((tmp_path / f"bench-{mode}{suffix}.json").read_text())
        assert report["mode"] == mode and report["results"]
        assert report["settings"]["model"]["neck"]["finest_width"] == (16 if suffix else None)
    summary = json.loads((tmp_path / "train" / "summary.json").read_text())
    assert summary["steps"] == 4 and len(summary["loss_curve"]) == 4  # steps counted, never timed
    assert isinstance(summary["img_s_incl_validation"], float)  # a rate is reported, not bounded
    assert (tmp_path / "log.txt").is_file()


def test_summarise_run_says_plainly_when_a_run_finished_no_step(tmp_path):
    import subprocess

    script = Path(fbifpn.__file__).parent.parent / "benchmarks" / "summarise_run.py"
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text(
        json.dumps({"kind": "val", "step": 0, "video_auc": 0.5, "frame_auc": 0.5})
    )
    result = subprocess.run(
        [sys.executable, str(script), str(run)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 1 and "NO STEP" in result.stdout  # no KeyError: 'steps'
    assert json.loads((run / "summary.json").read_text())["steps"] == 0


@pytest.mark.slow
def test_the_design_probe_trains_each_option_beside_the_spec(tmp_path, monkeypatch, smoke_tree):
    import shutil

    sys.path.insert(0, str(Path(fbifpn.__file__).parent.parent / "benchmarks"))
    import design_probe

    monkeypatch.setenv("FBIFPN_RUNS", str(tmp_path))
    shutil.copytree(smoke_tree, tmp_path / "data" / smoke_tree.name)
    with pytest.raises(Exception, match="model.heads.no_such_key"):  # typos fail before any training
        design_probe.main(["--profile", "smoke", "--option", "x", "model.heads.no_such_key=1"])
    with pytest.raises(SystemExit):  # the name of the profile as it is
        design_probe.main(["--profile", "smoke", "--option", "spec", "model.neck.layers=1", "model.beta=0"])
    args = ["--profile", "smoke", "--set", "train.epochs=1", "--seeds", "0"]
    args += ["--option", "grid", "model.heads.consistency_on_grid=true"]
    assert design_probe.main(args) == 0
    text = (tmp_path / "smoke-design" / "design.md").read_text()
    assert "| spec | 0 |" in text and "| grid | 0 |" in text and "| mean |" not in text
    grid = json.loads((tmp_path / "smoke-design" / "grid" / "full-seed0" / "config.json").read_text())
    assert grid["model"]["heads"]["consistency_on_grid"] is True


def _rates(node, path=""):
    """Every {"rate": ...} entry of a report, with where it sits."""
    if isinstance(node, dict):
        if "rate" in node:
            yield path, node
        for key, value in node.items():
            if key != "rate":
                yield from _rates(value, f"{path}/{key}")


def test_compare_auc_calibration_quick_run_writes_every_rate(tmp_path):
    """benchmarks/compare_auc_calibration.py --quick: the report holds every scenario, setting and
    rate, each rate a share in [0, 1] with its standard error (rates are checked, never times)."""
    import subprocess

    script = Path(fbifpn.__file__).parent.parent / "benchmarks" / "compare_auc_calibration.py"
    out = tmp_path / "calibration.json"
    result = subprocess.run(
        [sys.executable, str(script), "--quick", "--json", str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(out.read_text())
    assert set(report) >= {"command", "versions", "cpu", "settings", "scenarios", "wall_s_total"}
    assert {"numpy", "scipy"} <= set(report["versions"]) and report["settings"]["quick"] is True
    scenarios = report["scenarios"]
    assert set(scenarios) == {"clustered", "independent", "seeds"}
    clustered = scenarios["clustered"]
    assert clustered["design"]["tau"] == 1.0 and 0 < clustered["truth"]["delta_alt"] < 1
    assert set(clustered["family_rows_meet_targets"]) == {"type_I", "type_I_interval", "coverage"}
    for unit in ("family", "video"):
        rows = clustered["by_unit"][unit]
        assert {"p_below_0.05", "interval_excludes_0"} <= set(rows["null"]["type_I"])
        assert "coverage_of_true_delta" in rows["alternative"] and "power" in rows["alternative"]
    for test in ("compare_auc", "delong"):
        rows = scenarios["independent"]["tests"][test]
        assert "p_below_0.05" in rows["null"]["type_I"] and "p_below_0.05" in rows["alternative"]["power"]
    for seeds in ("3_seeds", "5_seeds"):
        assert set(scenarios["seeds"][seeds]["type_I"]) == {"over_seeds", "pooled", "naive_bootstrap"}
    for scenario in ("clustered", "independent"):
        assert "wall_s" in scenarios[scenario]
    rates = list(_rates(scenarios))
    assert len(rates) >= 30
    for path, entry in rates:
        assert set(entry) == {"rate", "se", "count", "trials"}, path
        assert 0 <= entry["rate"] <= 1 and 0 <= entry["se"] <= 0.5, path
        assert entry["trials"] == 4 and entry["count"] == round(entry["rate"] * 4), path
