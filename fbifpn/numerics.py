"""One code path for the CPU math libraries, so that a number made here is the number made elsewhere.

PyTorch (ATen's vectorised kernels), oneDNN (convolutions) and MKL (BLAS) each pick their kernels
for the instruction set the CPU has, and an AVX-512 kernel sums in another order than an AVX2 one:
the same training on two machines drifts apart within a few steps. Each library reads an
environment variable when it loads that caps the instruction set it uses. `pin()` sets them all to
AVX2, which every x86-64 machine this project runs on has, before torch is imported (the package
calls it first thing), and fixes the thread count when `FBIFPN_THREADS` asks for one: CPU kernels
split their sums by thread.

numpy's own SIMD loops, numpy's BLAS (OpenBLAS) and OpenCV dispatch the same way: capping OpenCV's
kernels below AVX2 changes 12 of the smoke benchmark's 235 files (benchmarks/isa_probe.py), so the
benchmark itself would differ between machines without its pin. OpenCV has no cap, only a list of
features to switch off, and it warns about one the CPU lacks: its AVX-512 kernels are switched off
where the CPU has them.

What the libraries promise: MKL's conditional numerical reproducibility (`MKL_CBWR`) gives equal
results across Intel CPUs only; oneDNN promises nothing across CPUs; and `ATEN_CPU_CAPABILITY` alone
is not enough (PyTorch issue #155552). So the pin narrows the spread and the README states what was
measured, not promised. `FBIFPN_CPU_ISA=native` leaves every library to its own choice.
"""

from __future__ import annotations

import os
import platform
import sys
import warnings
from pathlib import Path

ISA = "avx2"
# variable -> the spelling of the pinned instruction set it expects
PINS = {
    "ATEN_CPU_CAPABILITY": "avx2",  # PyTorch's own vectorised kernels
    "ONEDNN_MAX_CPU_ISA": "AVX2",  # oneDNN (convolutions on CPU); DNNL_ is its older spelling
    "DNNL_MAX_CPU_ISA": "AVX2",
    "MKL_CBWR": "AVX2",  # MKL's BLAS and its conditional numerical reproducibility
    "MKL_DYNAMIC": "FALSE",  # MKL may otherwise use fewer threads than asked, changing its sums
    "NPY_DISABLE_CPU_FEATURES": "X86_V4 AVX512_ICL AVX512_SPR",  # numpy's loops (numpy 2.4's names)
    "OPENBLAS_CORETYPE": "Haswell",  # numpy's BLAS: the AVX2 kernels
}
# Only where the CPU has AVX-512 (the flags of OpenCV's AVX512-SKX, its one AVX-512 dispatch target)
AVX512_FLAGS = ("avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl")
AVX512_PINS = {"OPENCV_CPU_DISABLE": "AVX512-SKX"}
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


def is_x86_64() -> bool:
    return platform.machine().lower() in ("x86_64", "amd64")


def cpu_flags() -> set[str] | None:
    """The CPU's feature flags from /proc/cpuinfo; None without it (not Linux)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    return set(
        next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    )


def has_avx2() -> bool:
    """Whether the CPU has AVX2 and FMA: ATen trusts ATEN_CPU_CAPABILITY without checking, so a pin
    on a CPU without them (some virtual machines' default models) would stop at the first kernel.
    Without /proc/cpuinfo (not Linux) it is assumed, as every x86-64 machine we know of has it."""
    flags = cpu_flags()
    return flags is None or {"avx2", "fma"} <= flags


def has_avx512() -> bool:
    flags = cpu_flags()
    return flags is not None and set(AVX512_FLAGS) <= flags


def pin(environ=os.environ) -> dict[str, str]:
    """Set the pins (and the thread count of FBIFPN_THREADS) in `environ`; return what it set. They
    override what the environment held: a pin that a stray variable could undo would not be one.
    Too late once torch is loaded: then it only warns when torch runs another code path."""
    choice = environ.get("FBIFPN_CPU_ISA", ISA).lower()
    if choice not in (ISA, "native"):
        raise ValueError(f"FBIFPN_CPU_ISA={choice!r}: expected {ISA} or native")
    pinned = choice == ISA and is_x86_64()
    if pinned and not has_avx2():
        warnings.warn("this CPU has no AVX2: the math libraries' code paths are left unpinned", stacklevel=2)
        pinned = False
    wanted = dict(PINS) if pinned else {}
    if pinned and has_avx512():
        wanted |= AVX512_PINS
    threads = environ.get("FBIFPN_THREADS", "")
    if threads:
        if not threads.isdigit() or int(threads) < 1:
            raise ValueError(f"FBIFPN_THREADS={threads!r}: expected a positive whole number")
        wanted |= dict.fromkeys(THREAD_VARIABLES, threads)
    if torch_loaded():
        _check_loaded(wanted, threads)
        return {}
    early = [name for name in ("numpy", "cv2") if name in sys.modules]
    if pinned and early:
        warnings.warn(
            f"{' and '.join(early)} loaded before fbifpn: {'their' if len(early) > 1 else 'its'} code path "
            "is the CPU's own, and a benchmark made here may differ from the committed one (import "
            "fbifpn first, or run through `python -m fbifpn`)",
            stacklevel=2,
        )
    environ.update(wanted)
    return wanted


def torch_loaded() -> bool:
    return "torch" in sys.modules


def _check_loaded(wanted: dict[str, str], threads: str) -> None:
    import torch

    if threads:  # OpenMP has read its variable already; torch's own call still sets the count
        torch.set_num_threads(int(threads))
    capability = torch.backends.cpu.get_cpu_capability().lower()
    if "ATEN_CPU_CAPABILITY" in wanted and capability != ISA:
        warnings.warn(
            f"torch was imported before fbifpn and runs its {capability} kernels, not {ISA}: numbers may "
            "differ from the committed ones in the last digits (import fbifpn first, or run through "
            "`python -m fbifpn`)",
            stacklevel=3,
        )


def state() -> dict:
    """What the process computes with: for every report beside the CPU's name."""
    import torch

    return {
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu_isa_pin": os.environ.get("FBIFPN_CPU_ISA", ISA) if is_x86_64() else "not x86-64",
        "threads": torch.get_num_threads(),
        **{name: os.environ.get(name) for name in PINS | AVX512_PINS},
    }
