"""Split counts of generated DeepfakeBench indexes, as listed and as kept by prep.

Writes, for each dataset, a tree of tiny crops and the JSON index in the nesting DeepfakeBench's
rearrange.py writes (tests/deepfakebench_trees.py), sized like the real dataset's splits or a
stated fraction of them, then runs `prep --layout deepfakebench` on it. Prints, per dataset, the
entries each split lists (a video listed twice counts twice), the videos per split in prep's
report, and prep's layout notes. Nothing here is a detection result.

    python benchmarks/deepfakebench_splits.py [--out DIR] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import deepfakebench_trees as trees  # noqa: E402

from fbifpn.cli import main  # noqa: E402


def _pairs(n_train: int, n_val: int, n_test: int) -> dict:
    ids = iter(range(10**6))
    return {
        s: [[f"{next(ids):03d}", f"{next(ids):03d}"] for _ in range(n)]
        for s, n in (("train", n_train), ("val", n_val), ("test", n_test))
    }


def _celebdf_tests(n_ids: int, n_youtube: int) -> list[str]:
    # Celeb-DF-v2's list is 178 reals and 340 fakes of 6529 videos; here about the same share.
    reals = [f"Celeb-real/id{i}_0000.mp4" for i in range(0, n_ids, 7)]
    reals += [f"YouTube-real/{y:05d}.mp4" for y in range(0, n_youtube, 7)]
    fakes = [f"Celeb-synthesis/id{i}_id{(i + 1) % n_ids}_0000.mp4" for i in range(0, n_ids, 4)]
    return reals + fakes


def _listed(index: Path) -> dict:
    counts = {"train": 0, "val": 0, "test": 0}
    for by_label in json.loads(index.read_text()).values():
        for by_split in by_label.values():
            for split, content in by_split.items():
                groups = content.values() if set(content) <= {"c23", "c40", "raw"} and content else [content]
                counts[split] += sum(isinstance(v, dict) for g in groups for v in g.values())
    return counts


def run(out: Path) -> dict:
    rgb = out / "rgb"
    made = {
        "FaceForensics++ (360/70/70 pairs, 4 methods, c23)": trees.ffpp(rgb, out, _pairs(360, 70, 70), n=2)[
            "FaceForensics++"
        ],
        "FF-DF.json (per method)": out / "FF-DF.json",
        "Celeb-DF-v2 (1/10 size: 59 celebrities, 30 YouTube)": trees.celebdf(
            rgb, out, n_ids=59, n_youtube=30, tests=_celebdf_tests(59, 30), n=2
        ),
        "DFDC (50 parts x 20 videos, 200 test)": trees.dfdc(rgb, out, parts=50, per_part=20, n_test=200, n=2),
        "DFDCP (200 subjects, 30 in test)": trees.dfdcp(rgb, out, subjects=200, test_from=170, n=2),
    }
    results = {}
    for name, index in made.items():
        prepped = out / "prep" / index.stem
        argv = ["prep", "--layout", "deepfakebench", "--json", str(index), "--root", str(rgb)]
        assert main([*argv, "--out", str(prepped), "--frames", "2"]) == 0, name
        report = json.loads((prepped / "prep_report.json").read_text())
        results[name] = {
            "listed": _listed(index),
            "kept": {s: report["splits"].get(s, {"videos": 0})["videos"] for s in ("train", "val", "test")},
            "notes": [n["message"] for n in report["layout"]],
        }
    return results


def main_() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, help="where the trees go (default: a temporary folder)")
    parser.add_argument("--json", type=Path, help="write the counts here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        results = run(args.out or Path(tmp))
    print("\n| index | listed train / val / test | kept by prep train / val / test |\n|---|---|---|")
    for name, r in results.items():
        listed = " / ".join(str(r["listed"][s]) for s in ("train", "val", "test"))
        kept = " / ".join(str(r["kept"][s]) for s in ("train", "val", "test"))
        print(f"| {name} | {listed} | {kept} |")
    for name, r in results.items():
        for n in r["notes"]:
            print(f"- {name}: {n}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main_()
