"""The CPU code-path pin (fbifpn/numerics.py): in force before torch loads, and a training run's
losses do not move when the environment caps the instruction sets differently."""

import os
import subprocess
import sys

import pytest
import torch

from fbifpn import numerics

# Six AdamW steps of the smoke model on one fixed batch, under the multi-task loss: every loss repr'd,
# so that a difference in the last bit shows.
TRAINING = """
import fbifpn
import torch
from fbifpn import MultiTaskLoss, build_model, load_config
from fbifpn.engine.optim import build_optimizer

cfg = load_config("smoke")
torch.manual_seed(0)
model, criterion = build_model(cfg), MultiTaskLoss(cfg)
optimizer = build_optimizer(model, cfg.optim)
g = torch.Generator().manual_seed(0)
batch = {
    "image": torch.randn(8, 3, 64, 64, generator=g),
    "label": (torch.arange(8) % 2).float(),
    "mask": torch.rand(8, 1, 64, 64, generator=g),
    "has_mask": torch.ones(8, dtype=torch.bool),
}
for _ in range(6):
    loss, _ = criterion(model(batch["image"]), batch)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    print(repr(loss.item()))
print(torch.backends.cpu.get_cpu_capability())
"""
# What another machine's defaults (or a user's stray variables) would choose instead of AVX2
OTHER_CAPS = {"ONEDNN_MAX_CPU_ISA": "SSE41", "ATEN_CPU_CAPABILITY": "default", "MKL_CBWR": "COMPATIBLE"}


def losses(**env) -> list[str]:
    out = subprocess.run(
        [sys.executable, "-c", TRAINING],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    return out.stdout.split()


@pytest.mark.skipif(not numerics.is_x86_64(), reason="the pin is for x86-64 CPUs")
def test_this_process_runs_the_pinned_code_path():
    assert torch.backends.cpu.get_cpu_capability() == "AVX2"  # conftest imports fbifpn before torch
    assert {k: os.environ[k] for k in numerics.PINS} == numerics.PINS
    assert numerics.state()["cpu_capability"] == "AVX2"


@pytest.mark.skipif(not numerics.is_x86_64(), reason="the pin is for x86-64 CPUs")
def test_training_losses_do_not_move_when_the_instruction_sets_are_capped_otherwise(capsys):
    """With other caps in the environment the pin still rules, loss for loss (against this pinned
    process); with the pin off (native) the same caps change the losses, so the comparison can tell."""
    exec(TRAINING, {})
    here = capsys.readouterr().out.split()
    pinned = losses(**OTHER_CAPS)
    unpinned = losses(**OTHER_CAPS, FBIFPN_CPU_ISA="native")
    assert pinned[-1] == here[-1] == "AVX2" and unpinned[-1] == "DEFAULT"
    assert unpinned[:-1] != pinned[:-1]  # the caps matter, so the equality below means something
    assert here[:-1] == pinned[:-1]


def test_the_pin_sets_threads_refuses_nonsense_and_only_warns_once_torch_is_loaded(monkeypatch):
    import fbifpn.numerics as module

    env = {"FBIFPN_THREADS": "3"}
    monkeypatch.setattr(module, "torch_loaded", lambda: False)  # as if torch were not imported yet
    with pytest.warns(UserWarning, match="loaded before fbifpn"):  # numpy and cv2 are, here
        set_ = numerics.pin(env)
    assert env["OMP_NUM_THREADS"] == env["MKL_NUM_THREADS"] == "3" and set_["OMP_NUM_THREADS"] == "3"
    for bad in ({"FBIFPN_THREADS": "two"}, {"FBIFPN_THREADS": "0"}, {"FBIFPN_CPU_ISA": "avx512"}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            numerics.pin(dict(bad))
    monkeypatch.undo()
    late = {"ONEDNN_MAX_CPU_ISA": "SSE41"}
    assert numerics.pin(late) == {} and late == {"ONEDNN_MAX_CPU_ISA": "SSE41"}  # torch is loaded here


@pytest.mark.skipif(not numerics.is_x86_64(), reason="the pin is for x86-64 CPUs")
def test_too_late_a_pin_warns_when_torch_runs_another_path_and_none_is_set_without_avx2(monkeypatch):
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX512")
    with pytest.warns(UserWarning, match="runs its avx512 kernels, not avx2"):
        numerics.pin({})
    monkeypatch.undo()
    before = torch.get_num_threads()
    try:
        numerics.pin({"FBIFPN_THREADS": "1"})  # torch loaded: its own call sets the count
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    import fbifpn.numerics as module

    monkeypatch.setattr(module, "torch_loaded", lambda: False)
    monkeypatch.setattr(module, "has_avx2", lambda: False)
    env = {}
    with pytest.warns(UserWarning, match="no AVX2"):
        assert numerics.pin(env) == {} and env == {}


def test_opencv_loses_only_the_avx512_kernels_a_cpu_has_and_early_libraries_are_named(monkeypatch):
    """OpenCV has no cap: its AVX-512 kernels are switched off by name, and only where the CPU has
    them (it warns about a feature it lacks). numpy or cv2 loaded before the pin are named."""
    import fbifpn.numerics as module

    monkeypatch.setattr(module, "torch_loaded", lambda: False)
    monkeypatch.setattr(module, "has_avx2", lambda: True)
    monkeypatch.setattr(module, "is_x86_64", lambda: True)
    for flags, expected in (
        (set(module.AVX512_FLAGS) | {"avx2", "fma"}, "AVX512-SKX"),
        ({"avx2", "fma"}, None),
    ):
        monkeypatch.setattr(module, "cpu_flags", lambda flags=flags: flags)
        env = {}
        with pytest.warns(UserWarning, match="numpy and cv2 loaded before fbifpn"):
            set_ = numerics.pin(env)
        assert env.get("OPENCV_CPU_DISABLE") == expected and set_ == env
        assert env["NPY_DISABLE_CPU_FEATURES"] == "X86_V4 AVX512_ICL AVX512_SPR"
        assert env["OPENBLAS_CORETYPE"] == "Haswell"
    monkeypatch.undo()
    monkeypatch.setattr(module, "cpu_flags", lambda: None)  # no /proc/cpuinfo: AVX2 assumed, no AVX-512
    assert module.has_avx2() and not module.has_avx512()
