"""Where a number was made: the device, the versions and the commit, recorded with every report."""

from __future__ import annotations

import functools
import os
import platform
from pathlib import Path

import torch


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "cpu"


def environment(device: torch.device | str) -> dict:
    """`device` (with the GPU's or CPU's model name), thread counts and package versions."""
    import numpy
    import timm

    from fbifpn import __version__, numerics

    device = torch.device(device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name()
    return {
        "device": f"{device.type}: {name}",
        "cpu_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "numerics": numerics.state(),
        "versions": {
            "fbifpn": __version__,
            "torch": torch.__version__,
            "timm": timm.__version__,
            "numpy": numpy.__version__,
            "python": platform.python_version(),
            "cuda": torch.version.cuda,
        },
    }


@functools.cache
def git_commit() -> str:
    """Asked once per process: in a Jupyter kernel that had just forked DataLoader workers, a git
    subprocess per evaluation was slow to be reaped."""
    import subprocess

    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            stdin=subprocess.DEVNULL,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
