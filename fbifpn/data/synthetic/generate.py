"""Write the synthetic forgery benchmark: synth-ff, synth-cdf and synth-dfdc in their real layouts.

The plan (which videos exist, their names, splits, pairs and seeds) is computed up front from the
seed alone; each target video is then one job that films the real video and every fake made on it.
Jobs draw their randomness from `(seed, dataset, kind, index)`, never from a shared stream, so the
output is identical whatever the number of workers and the order jobs finish in. A job whose files
all exist is skipped, so an interrupted run resumes; `benchmark.json` is written last and marks a
complete tree.

Each job is one scene: a real video and every fake made from it, the family that statistics
resample together. `<dataset>/scenes.csv` records each video's scene beside the videos. It is
computed from the plans alone and written wherever it is missing, so a tree generated before it
existed gains it without a video (or the version) changing.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import string
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from fbifpn import atomic
from fbifpn.data.synthetic.faces import Identity, sample_identity
from fbifpn.data.synthetic.methods import METHODS, manipulate, sample_blend
from fbifpn.data.synthetic.scenes import Domain, film, sample_expressions, sample_scene
from fbifpn.data.video import encoder, write_video
from fbifpn.paths import runs_dir

# 5: val-only synth-ff identities, so that val can choose (demo: 250 val videos, 50 real; 4: 30, 6 real)
# 4: at demo size every test split holds >= 150 videos, >= 50 of them real (3: 30/19/20)
VERSION = 5
DATASETS = ("synth-ff", "synth-cdf", "synth-dfdc")
MARKER = "benchmark.json"
SCENES = "scenes.csv"  # per dataset: video (its path in the layout), scene

# The three domains differ in who is filmed, how, and how carefully fakes are blended.
DOMAINS = {
    "synth-ff": Domain("synth-ff", (1, 1, 1, 1, 1, 1, 1), (0.2, 0.6), 0.03, (0.6, 3.0), (0.0, 1.4)),
    "synth-cdf": Domain(
        "synth-cdf",
        (3, 3, 2, 1, 0.5, 0.3, 0.2),
        (0.1, 0.35),
        0.02,
        (0.5, 2.0),
        (0.0, 0.8),
        face_ratio=(0.45, 0.6),
    ),
    "synth-dfdc": Domain(
        "synth-dfdc",
        (0.5, 1, 1, 1.5, 2, 2, 1.5),
        (0.4, 0.8),
        0.08,
        (2.0, 6.0),
        (0.4, 1.8),
        face_ratio=(0.4, 0.55),
    ),
}
BLEND_QUALITY = {"synth-ff": 0.0, "synth-cdf": 0.8, "synth-dfdc": 0.3}


@dataclass(frozen=True)
class Size:
    frame: int  # frame side, pixels
    frames: int  # frames per video
    ff_ids: int  # synth-ff identities = real videos (even: FF++ pairs them)
    ff_levels: tuple[str, ...]
    cdf_celebs: int
    cdf_videos_per_celeb: int
    cdf_youtube: int
    dfdc_parts: int
    dfdc_reals_per_part: int
    dfdc_test_reals: int
    # Test-only identities, planned after every other draw so that train and val stay as they were:
    # statistical power comes from test videos, which are cheap, not from a retuned benchmark.
    ff_extra_test_pairs: int = 0
    cdf_extra_test_celebs: int = 0
    # Val-only identities, after the test-only ones, for the same reason: a val split that saturates
    # cannot choose a checkpoint (version 4's 30 val videos reached AUC 1.000 by step 60).
    ff_extra_val_pairs: int = 0


SIZES = {
    "smoke": Size(128, 6, 6, ("raw", "c23", "c40"), 2, 1, 1, 1, 2, 1),
    # demo: 250 synth-ff (50 real), 151 synth-cdf (77 real) and 150 synth-dfdc (75 real) test videos;
    # version 3 had 30 / 19 / 20, with which no paired difference could be told from noise
    # and 250 synth-ff val videos (50 real; version 4 had 30, 6 real)
    "demo": Size(256, 12, 48, ("raw", "c23", "c40"), 16, 2, 8, 2, 6, 75, 22, 33, 22),
    "paper": Size(256, 48, 1000, ("raw", "c23", "c40"), 59, 6, 300, 10, 60, 250),
}


@dataclass(frozen=True)
class Fake:
    method: str
    source: int  # identity index of the face put in (or of the driver, for re-enactment)
    paths: tuple[str, ...]  # one per compression level
    mask: str | None  # exact mask video (raw), where the layout has masks


@dataclass(frozen=True)
class Job:
    dataset: str
    index: int  # scene seed index within the dataset
    identity: int
    paths: tuple[str, ...]  # the real video, one path per level
    levels: tuple[str, ...]
    fakes: tuple[Fake, ...] = field(default=())

    def outputs(self) -> list[str]:
        out = list(self.paths)
        for fake in self.fakes:
            out += [*fake.paths, *([fake.mask] if fake.mask else [])]
        return out


def default_out(size: str, seed: int) -> Path:
    return runs_dir() / "data" / f"{size}-seed{seed}"


def _rng(seed: int, dataset: str, kind: int, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, DATASETS.index(dataset), kind, index])


def identity(seed: int, dataset: str, index: int) -> Identity:
    weights = np.asarray(DOMAINS[dataset].skin_weights, float)
    return sample_identity(_rng(seed, dataset, 0, index), weights)


# --------------------------------------------------------------------------- plans, one per layout


def plan_ff(size: Size, seed: int) -> tuple[list[Job], dict[str, object]]:
    """FF++: one identity per video; pairs [a, b] give fakes a_b and b_a; splits by pair."""
    rng = _rng(seed, "synth-ff", 9, 0)
    n = size.ff_ids
    order = rng.permutation(n)
    pairs = [(int(order[i]), int(order[i + 1])) for i in range(0, n - 1, 2)]
    n_val = n_test = max(1, round(0.14 * len(pairs)))
    splits = {
        "train": pairs[: len(pairs) - n_val - n_test],
        "val": pairs[len(pairs) - n_val - n_test : len(pairs) - n_test],
        "test": pairs[len(pairs) - n_test :],
    }
    first_val = n + 2 * size.ff_extra_test_pairs  # val-only identities follow the test-only ones
    extra = [(n + 2 * k, n + 2 * k + 1) for k in range(size.ff_extra_test_pairs)]
    extra_val = [(first_val + 2 * k, first_val + 2 * k + 1) for k in range(size.ff_extra_val_pairs)]
    splits["test"] = splits["test"] + extra
    splits["val"] = splits["val"] + extra_val
    pairs = pairs + extra + extra_val
    partner = {a: b for a, b in pairs} | {b: a for a, b in pairs}
    jobs = []
    for a in range(first_val + 2 * size.ff_extra_val_pairs):
        b = partner[a]
        real = tuple(f"original_sequences/youtube/{lv}/videos/{a:03d}.mp4" for lv in size.ff_levels)
        fakes = tuple(
            Fake(
                method,
                b,
                tuple(
                    f"manipulated_sequences/{method}/{lv}/videos/{a:03d}_{b:03d}.mp4" for lv in size.ff_levels
                ),
                f"manipulated_sequences/{method}/masks/videos/{a:03d}_{b:03d}.mp4",
            )
            for method in METHODS
        )
        jobs.append(Job("synth-ff", a, a, real, size.ff_levels, fakes))
    files = {f"splits/{k}.json": [[f"{a:03d}", f"{b:03d}"] for a, b in v] for k, v in splits.items()}
    return jobs, files


def plan_cdf(size: Size, seed: int) -> tuple[list[Job], dict[str, object]]:
    """Celeb-DF-v2: celebrities with several videos, YouTube reals, one synthesis per celebrity video;
    the testing list holds whole celebrities (and some YouTube videos), 1 = real as in the original."""
    rng = _rng(seed, "synth-cdf", 9, 0)
    celebs = size.cdf_celebs
    n_test = max(1, round(0.25 * celebs))
    test_celebs = set(rng.permutation(celebs)[:n_test].tolist())
    jobs, test_lines = [], []
    index = 0
    for i in range(celebs):
        for k in range(size.cdf_videos_per_celeb):
            j = int((i + rng.integers(1, celebs)) % celebs) if celebs > 1 else i
            level = f"c{int(rng.integers(17, 24))}"
            real, fake = f"Celeb-real/id{i}_{k:04d}.mp4", f"Celeb-synthesis/id{i}_id{j}_{k:04d}.mp4"
            jobs.append(Job("synth-cdf", index, i, (real,), (level,), (Fake("Deepfakes", j, (fake,), None),)))
            index += 1
            if i in test_celebs:
                test_lines += [f"1 {real}", f"0 {fake}"]
    n_yt_test = max(1, round(0.4 * size.cdf_youtube))
    for y in range(size.cdf_youtube):
        level = f"c{int(rng.integers(17, 24))}"
        path = f"YouTube-real/{y:05d}.mp4"
        jobs.append(Job("synth-cdf", index, celebs + y, (path,), (level,)))
        index += 1
        if y < n_yt_test:
            test_lines.append(f"1 {path}")
    # Test-only celebrities, from a stream of their own: every draw above is as it was. Their swaps
    # take faces of other test-only celebrities, so no training identity enters them.
    extra = _rng(seed, "synth-cdf", 10, 0)
    first = celebs + size.cdf_youtube  # identity indices after the celebrities' and YouTube's
    for e in range(size.cdf_extra_test_celebs):
        i = celebs + e  # the name idN continues the celebrities' numbering
        for k in range(size.cdf_videos_per_celeb):
            others = size.cdf_extra_test_celebs - 1
            j = (e + int(extra.integers(1, others + 1))) % size.cdf_extra_test_celebs if others else e
            level = f"c{int(extra.integers(17, 24))}"
            real, fake = f"Celeb-real/id{i}_{k:04d}.mp4", f"Celeb-synthesis/id{i}_id{celebs + j}_{k:04d}.mp4"
            fakes = (Fake("Deepfakes", first + j, (fake,), None),)
            jobs.append(Job("synth-cdf", index, first + e, (real,), (level,), fakes))
            index += 1
            test_lines += [f"1 {real}", f"0 {fake}"]
    return jobs, {"List_of_testing_videos.txt": "\n".join(test_lines) + "\n"}


def _dfdc_name(rng: np.random.Generator) -> str:
    return "".join(rng.choice(list(string.ascii_lowercase), 10)) + ".mp4"


def plan_dfdc(size: Size, seed: int) -> tuple[list[Job], dict[str, object]]:
    """DFDC: parts with metadata.json (fakes name their original), and a labelled test folder."""
    rng = _rng(seed, "synth-dfdc", 9, 0)
    jobs, files = [], {}
    index = 0
    labels = ["filename,label"]
    for part in range(size.dfdc_parts + 1):
        folder = f"dfdc_train_part_{part}" if part < size.dfdc_parts else "test"
        reals = size.dfdc_reals_per_part if part < size.dfdc_parts else size.dfdc_test_reals
        metadata = {}
        for _ in range(reals):
            level = f"c{int(rng.integers(23, 31))}"
            real, fake = _dfdc_name(rng), _dfdc_name(rng)
            method = str(rng.choice(METHODS))
            source = int(rng.integers(10_000, 20_000))
            jobs.append(
                Job(
                    "synth-dfdc",
                    index,
                    index,
                    (f"{folder}/{real}",),
                    (level,),
                    (Fake(method, source, (f"{folder}/{fake}",), None),),
                )
            )
            index += 1
            metadata[real] = {"label": "REAL", "split": "train"}
            metadata[fake] = {"label": "FAKE", "split": "train", "original": real}
            if folder == "test":
                labels += [f"{real},0", f"{fake},1"]
        if folder != "test":
            files[f"{folder}/metadata.json"] = metadata
    files["test/labels.csv"] = "\n".join(labels) + "\n"
    return jobs, files


PLANS = {"synth-ff": plan_ff, "synth-cdf": plan_cdf, "synth-dfdc": plan_dfdc}


# --------------------------------------------------------------------------- scenes


def scenes(jobs: list[Job]) -> dict[str, str]:
    """Each video of the plan (a path in its layout; masks are no videos of their own) -> its
    scene, named `<dataset>/<its real video's name>` as the layouts' video ids are prefixed."""
    scene_of = {}
    for job in jobs:
        scene = f"{job.dataset}/{Path(job.paths[0]).stem}"
        for path in [*job.paths, *(p for fake in job.fakes for p in fake.paths)]:
            scene_of[path] = scene
    return scene_of


def record_scenes(root: Path, name: str, jobs: list[Job]) -> None:
    """Write `<root>/<name>/scenes.csv` where it is missing; the plan decides it, so one written
    earlier for this tree is already the same."""
    path = root / name / SCENES
    if path.is_file():
        return
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["video", "scene"])
    writer.writerows(sorted(scenes(jobs).items()))
    atomic.write_text(path, text.getvalue())


def read_scenes(dataset_root: Path) -> dict[str, str]:
    """The scene record of one generated dataset: video path in the layout -> scene."""
    path = Path(dataset_root) / SCENES
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no scene record (`generate` writes it beside the videos)")
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if rows and not {"video", "scene"} <= set(rows[0]):
        raise ValueError(f"{path}: expected the columns video,scene")
    return {row["video"]: row["scene"] for row in rows}


# --------------------------------------------------------------------------- running jobs


def run_job(job: Job, root: str, size: Size, seed: int) -> int:
    """Film one target video and every fake made on it; return the number of files written."""
    import cv2

    cv2.setNumThreads(1)  # parallelism is across jobs
    base = Path(root) / job.dataset
    if all((base / p).is_file() for p in job.outputs()):
        return 0
    domain = DOMAINS[job.dataset]
    target = identity(seed, job.dataset, job.identity)
    scene = sample_scene(_rng(seed, job.dataset, 1, job.index), domain, size.frame, size.frames)
    real, geometry = film(scene, target)
    sidecar = {"fps": 25, "size": [size.frame, size.frame], "frames": geometry}
    written = 0
    for path, level in zip(job.paths, job.levels, strict=True):
        write_video(base / path, real, level)
        _write_json(base / path.replace(".mp4", ".json"), sidecar)
        written += 1
    for f, fake in enumerate(job.fakes):
        rng = _rng(seed, job.dataset, 3 + f, job.index)
        source = identity(seed, job.dataset, fake.source)
        driver = sample_expressions(_rng(seed, job.dataset, 2, fake.source), size.frames)
        blend = sample_blend(rng, fake.method, BLEND_QUALITY[job.dataset])
        frames, masks = manipulate(fake.method, scene, target, real, source, driver, blend, rng)
        for path, level in zip(fake.paths, job.levels, strict=True):
            write_video(base / path, frames, level)
            _write_json(base / path.replace(".mp4", ".json"), sidecar)
            written += 1
        if fake.mask:
            write_video(base / fake.mask, masks, "raw", gray=True)
            written += 1
    return written


def _write_json(path: Path, obj: object) -> None:
    atomic.write_text(path, json.dumps(obj, separators=(",", ":")))


def _run_job(args: tuple) -> int:
    return run_job(*args)


def generate(
    out: Path | None = None,
    size: str = "demo",
    seed: int = 0,
    workers: int | None = None,
    progress: bool = True,
    datasets: tuple[str, ...] = DATASETS,
) -> Path:
    """Write (or finish writing) the benchmark; return its root. A complete tree is left untouched."""
    if size not in SIZES:
        raise ValueError(f"--size: unknown size {size!r} (sizes: {', '.join(SIZES)})")
    root = Path(out) if out is not None else default_out(size, seed)
    spec = SIZES[size]
    marker = {
        "version": VERSION,
        "size": size,
        "seed": seed,
        "datasets": list(datasets),
        "spec": asdict(spec),
        "encoder": encoder(),  # opencv-mp4v (no PyAV): c23 and c40 are not the FF++ levels
    }
    marker = json.loads(json.dumps(marker))  # as it reads back from disk (tuples become lists)
    old = json.loads((root / MARKER).read_text()) if (root / MARKER).is_file() else None
    if old == marker:  # complete; only a scene record it predates is added
        for name in datasets:
            record_scenes(root, name, PLANS[name](spec, seed)[0])
        return root
    if old is not None and {**old, "datasets": None} != {**marker, "datasets": None}:
        # Another version, size or seed: its files would otherwise be kept as if current.
        stale = [root / name for name in DATASETS if (root / name).exists()]
        print(f"{root}: written by another benchmark version or size; regenerating {len(stale)} datasets")
        for path in stale:
            shutil.rmtree(path)
        (root / MARKER).unlink()
    jobs: list[Job] = []
    for name in datasets:
        dataset_jobs, files = PLANS[name](spec, seed)
        jobs += dataset_jobs
        record_scenes(root, name, dataset_jobs)
        for rel, content in files.items():
            path = root / name / rel
            if isinstance(content, str):
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(content)
            else:
                _write_json(path, content)
    workers = workers or os.cpu_count() or 1
    args = [(job, str(root), spec, seed) for job in jobs]
    bar = tqdm(total=len(jobs), desc=f"synth {size} (seed {seed})", unit="video", disable=not progress)
    if workers == 1:
        for a in args:
            _run_job(a)
            bar.update()
    else:
        with ProcessPoolExecutor(workers, mp_context=get_context("fork")) as pool:
            for _ in pool.map(_run_job, args, chunksize=1):
                bar.update()
    bar.close()
    _write_json(root / MARKER, marker)
    return root
