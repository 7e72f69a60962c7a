"""Which math library's code path changes the synthetic benchmark's pixels.

Generates the smoke benchmark under fbifpn's pin (fbifpn/numerics.py), then once for each library
with the pin off (FBIFPN_CPU_ISA=native) and that library capped below AVX2, as a CPU without it
would run, and counts the files whose decoded frames or index text differ from the pinned tree
(tests/test_synthetic.py's tree_digest). A library whose cap changes nothing here may still differ
on a CPU with more (AVX-512) than this one; one whose cap changes files must be pinned.

    .venv/bin/python benchmarks/isa_probe.py --json benchmarks/results/<date>-isa-probe.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import fbifpn  # noqa: F401  (the pin, before numpy and cv2 load in this process)

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

# library -> the environment that caps it below AVX2 (each library's own switch)
CAPS = {
    "pinned (fbifpn's AVX2 pin)": {},
    "numpy loops, X86_V3 off": {"FBIFPN_CPU_ISA": "native", "NPY_DISABLE_CPU_FEATURES": "X86_V3"},
    "OpenBLAS, Nehalem kernels": {"FBIFPN_CPU_ISA": "native", "OPENBLAS_CORETYPE": "Nehalem"},
    "OpenCV, AVX2 FMA3 AVX FP16 off": {
        "FBIFPN_CPU_ISA": "native",
        "OPENCV_CPU_DISABLE": "AVX2,FMA3,AVX,FP16",
    },
}


def digests(root: Path) -> dict[str, str]:
    from test_synthetic import tree_digest  # after fbifpn: it imports numpy and cv2

    return tree_digest(root)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="write the counts here")
    args = parser.parse_args()
    results, reference = {}, None
    with tempfile.TemporaryDirectory() as tmp:
        for name, env in CAPS.items():
            out = Path(tmp) / str(len(results))
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "fbifpn",
                    "synth",
                    "--size",
                    "smoke",
                    "--workers",
                    "1",
                    "--out",
                    str(out),
                ],
                env={**os.environ, **env, "HF_HUB_OFFLINE": "1"},
                check=True,
                capture_output=True,
            )
            tree = digests(out)
            reference = reference or tree
            changed = sorted(k for k in tree if tree[k] != reference.get(k))
            results[name] = {
                "environment": env,
                "files": len(tree),
                "changed": len(changed),
                "examples": changed[:3],
            }
            print(f"{name}: {len(changed)} of {len(tree)} files differ from the pinned tree")
    if args.json:
        from fbifpn.provenance import environment, git_commit

        record = {
            "git_commit": git_commit(),
            **environment("cpu"),
            "data": "synthetic smoke benchmark, seed 0, every file",
            "caps": results,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
