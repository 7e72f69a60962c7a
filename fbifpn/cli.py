"""`python -m fbifpn <command>`: everything a notebook does, from a shell.

Every command prints a clear error and exits non-zero on bad input; `--help` documents every flag.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

# timm would otherwise retry the model hub for ~47 s before failing on machines without a network.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from fbifpn.config import Range  # noqa: E402 - after the hub setting; config imports no timm
from fbifpn.data.faces import DETECTORS  # noqa: E402 - the registries the flags' choices come from
from fbifpn.data.sources import LAYOUTS  # noqa: E402
from fbifpn.data.synthetic import SIZES  # noqa: E402
from fbifpn.data.video import LEVELS  # noqa: E402


def _flag(kind: type, bound: Range):
    """An argparse type: an int or float inside `bound`, the same Range the config keys declare
    (argparse then names the flag and exits 2)."""

    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not {'an integer' if kind is int else 'a number'}"
            ) from None
        if reason := bound.problem(value):
            raise argparse.ArgumentTypeError(reason)
        return value

    return parse


POSITIVE, NON_NEGATIVE = _flag(int, Range(1)), _flag(int, Range(0))
POSITIVE_NUMBER, FRACTION = _flag(float, Range(0, low_open=True)), _flag(float, Range(0, 1))


def _add_profile_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--profile", default="demo", help="a profile under configs/ (smoke, demo, paper) or a YAML path"
    )
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key, e.g. --set model.neck.attention=suppress (repeatable)",
    )


def cmd_info(args: argparse.Namespace) -> int:
    import torch

    from fbifpn.config import load_config, with_overrides
    from fbifpn.models.complexity import part_costs
    from fbifpn.models.net import build_model
    from fbifpn.models.variants import VARIANTS

    cfg = load_config(args.profile, args.overrides)
    variants = args.variant or list(VARIANTS)
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise ValueError(f"--variant: unknown variant {unknown[0]!r} (variants: {', '.join(VARIANTS)})")
    size = cfg.data.image_size
    torch.manual_seed(0)
    neck = cfg.model.neck
    finest = f" ({neck.finest_width} at stride 4)" if neck.finest_width not in (None, neck.width) else ""
    print(
        f"profile {cfg.profile}: {cfg.model.backbone.name} at {size}x{size}, neck {neck.topology} "
        f"W={neck.width}{finest} L={neck.layers}; MACs for one image (conv + matmul)"
    )
    print(f"{'variant':<16}{'part':<10}{'params (M)':>12}{'MACs (M)':>12}")
    for name in variants:
        # with_overrides: each variant's keys replace an override of them (--set model.neck.attention=...)
        model = build_model(with_overrides(cfg, {"model.variant": name}), pretrained=False)
        for row in part_costs(model, size):
            print(f"{name:<16}{row.part:<10}{row.params / 1e6:>12.3f}{row.macs / 1e6:>12.1f}")
    return 0


def cmd_overfit(args: argparse.Namespace) -> int:
    from fbifpn.config import load_config
    from fbifpn.sanity import overfit

    cfg = load_config(args.profile, args.overrides)
    losses = overfit(cfg, steps=args.steps, batch_size=args.batch)
    drop = 1 - losses[-1] / losses[0]
    if not math.isfinite(drop):  # nan -> nan would otherwise compare as no failure
        print(f"error: the loss is not finite ({losses[0]} -> {losses[-1]})", file=sys.stderr)
        return 1
    print(
        f"overfit check ({cfg.profile}, variant {cfg.model.variant}, one fixed toy batch of {args.batch}, "
        f"{args.steps} CPU steps): loss {losses[0]:.4f} -> {losses[-1]:.4f}, a {100 * drop:.1f} % fall"
    )
    if drop < args.min_drop:
        print(f"error: the loss fell by less than {100 * args.min_drop:.0f} %", file=sys.stderr)
        return 1
    return 0


def cmd_synth(args: argparse.Namespace) -> int:
    import time

    from fbifpn.data.synthetic import generate
    from fbifpn.data.video import encoder

    if args.out is not None:
        from fbifpn.paths import writable_dir

        writable_dir(args.out, "synth output folder")
    if encoder() != "pyav-x264":
        print(
            "note: PyAV is not installed, so OpenCV writes the videos (mp4v): c23 and c40 are then one "
            "fixed quality, not x264 CRF 23 / 40 (pip install av for the FF++ levels)"
        )
    start = time.perf_counter()
    root = generate(args.out, size=args.size, seed=args.seed, workers=args.workers)
    total = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    videos = sum(1 for _ in root.rglob("*.mp4"))
    print(
        f"synthetic benchmark (size {args.size}, seed {args.seed}) at {root}: {videos} videos, "
        f"{total / 1e6:.1f} MB, {time.perf_counter() - start:.1f} s"
    )
    return 0


# The prep flag of each ScanOptions field: an adapter's TAKES says which of them its layout accepts.
SCAN_FLAGS = {
    "dataset": "--dataset",
    "compression": "--compression",
    "methods": "--methods",
    "splits_dir": "--splits",
    "train_list": "--train-list",
    "index": "--json",
    "frames": "--frames",
}


def cmd_prep(args: argparse.Namespace) -> int:
    from fbifpn.data import prep as prep_module
    from fbifpn.data.cache import default_prep_out
    from fbifpn.data.sources import scan

    if args.merge:
        if args.out is None:
            raise ValueError("--merge needs --out, the folder holding the shard runs")
        report = prep_module.write_outputs(args.out, None, "", None)
        print(
            f"merged {report['videos']['total']} videos, {report['frames']['crops']} crops into "
            f"{args.out / 'manifest.csv'}"
        )
        return 0
    if args.layout is None or args.root is None:
        raise ValueError("prep needs --layout and --root (or --merge --out DIR)")
    root, adapter = args.root, LAYOUTS[args.layout]
    methods = None
    if args.methods is not None:
        methods = tuple(m.strip() for m in args.methods.split(",") if m.strip())
        if not methods:
            raise ValueError(f"--methods {args.methods!r}: names no method")
    given = {
        "dataset": args.dataset or (root.name if root.name.startswith("synth-") else None),
        "compression": args.compression,
        "methods": methods,
        "splits_dir": args.splits,
        "train_list": args.train_list,
        "index": args.json,
    }
    options = {k: v for k, v in given.items() if v is not None}
    if unused := [k for k in options if k not in adapter.TAKES]:
        takes = ", ".join(SCAN_FLAGS[k] for k in sorted(adapter.TAKES))
        raise ValueError(f"{SCAN_FLAGS[unused[0]]} is not for --layout {args.layout} (it takes {takes})")
    if "frames" in adapter.TAKES:  # an index of crops: read as many as prep samples from a video
        options["frames"] = args.frames
    entries, notes = scan(args.layout, root, **options)
    compression = options.get("compression", adapter.DEFAULT_COMPRESSION)  # names the default --out
    for n in notes:  # the same records go to prep_report.json's "layout"
        print(f"warning: {n['message']}", file=sys.stderr)
    if args.split:
        wanted = {s.strip() for s in args.split.split(",")}
        found = {e.split for e in entries}
        if wanted - found:  # a typo (--split tset) would otherwise write an empty manifest
            raise ValueError(
                f"--split: no video of {args.root} is in split {sorted(wanted - found)[0]!r} "
                f"(splits: {', '.join(sorted(found))})"
            )
        entries = [e for e in entries if e.split in wanted]
    out = args.out or default_prep_out(root, compression)
    if out is None:
        raise ValueError("--out is required outside the synthetic benchmark's runs/data folder")
    options = prep_module.PrepOptions(
        frames=args.frames,
        detector=args.detector,
        size=args.size,
        scale=args.scale,
        align=args.align,
        all_faces=args.all_faces,
        detect_every=args.detect_every,
    )
    report = prep_module.prep(
        entries, out, options, workers=args.workers, shard=prep_module.parse_shard(args.shard), notes=notes
    )
    v, f = report["videos"], report["frames"]
    print(
        f"prep {args.layout} -> {out}: videos {v['done']} done, {v['failed']} failed "
        f"({v['skipped_already_done']} already done before); frames {f['done']} done, {f['failed']} failed; "
        f"{f['crops']} crops; {len(report['warnings'])} warnings"
        + (f", {len(notes)} layout notes" if notes else "")
        + " (see prep_report.json)"
    )
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from fbifpn.config import load_config
    from fbifpn.data import cache
    from fbifpn.engine import distributed as dist
    from fbifpn.engine import fit
    from fbifpn.engine.device import resolve_device
    from fbifpn.engine.train import open_run_dir

    cfg = load_config(args.profile, args.overrides)
    dist.setup(resolve_device(cfg.train.device))  # under torchrun: the ranks meet before the data is made
    run = open_run_dir(
        cfg, args.run_dir, args.resume
    )  # another config's last.pt fails before any data is made
    # Rank 0 alone generates and prepares the synthetic benchmark: ranks doing it side by side would
    # race on one cache folder.
    manifest = dist.made_on_main(lambda: cache.prepared_manifest(cfg))
    result = fit(cfg, manifest, run)
    if dist.is_main():
        last = result.history[-1] if result.history else {}
        print(
            f"trained {cfg.profile} ({cfg.model.variant}) on {cfg.data.manifest or cfg.data.dataset}: "
            f"{result.steps} steps in {result.seconds:.0f} s ({result.images_per_s:.1f} img/s incl. validation); "
            f"last val video AUC {last.get('video_auc', float('nan')):.4f}; best val {cfg.eval.select_on} "
            f"{result.best_metric:.4f} at epoch {result.best_epoch} -> {result.best_checkpoint}"
        )
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from fbifpn.engine.evaluate import evaluate_checkpoint

    report = evaluate_checkpoint(
        args.checkpoint,
        args.manifest,
        args.out,
        split=args.split,
        frames=args.frames,
        tta_flip=False if args.no_tta else None,
        device=args.device,
    )
    p, m = report["protocol"], report["metrics"]
    lo, hi = m["video"]["auc_ci95"]
    print(f"{p['test_data']} | trained on {p['train_data']} | checkpoint: {p['selection']}")
    print(
        f"  video AUC {m['video']['auc']:.4f} (95 % CI {lo:.4f}-{hi:.4f}), AP {m['video']['ap']:.4f}, "
        f"EER {m['video']['eer']:.4f}, acc@val-threshold {m['video']['acc@val_threshold']:.4f} "
        f"({m['video']['n']} videos)"
    )
    print(f"  frame AUC {m['frame']['auc']:.4f}, AP {m['frame']['ap']:.4f} ({m['frame']['n']} frames)")
    print(
        f"  per method (video AUC): {', '.join(f'{k} {v:.3f}' for k, v in m['per_method_video_auc'].items())}"
    )
    c = report["calibration"]
    if c["temperature"] is None:
        print(
            f"  calibration: frame ECE {c['frame_ece_raw']:.4f}, video ECE {c['video_ece_raw']:.4f} "
            "(the checkpoint holds no temperature, so the scores are not calibrated probabilities)"
        )
    else:
        print(
            f"  calibrated probabilities (temperature {c['temperature']:.3f}, fitted on val): frame ECE "
            f"{c['frame_ece_raw']:.4f} -> {c['frame_ece_calibrated']:.4f}, video ECE "
            f"{c['video_ece_raw']:.4f} -> {c['video_ece_calibrated']:.4f}; scores.csv: `probability`"
        )
    print(f"  -> {args.out / 'scores.csv'}, {args.out / 'metrics.json'}")
    return 0


def cmd_detect(args: argparse.Namespace) -> int:
    from fbifpn.detect import detect

    # detect() writes --json itself, entry by entry, so an interrupted run keeps what it finished.
    results = detect(
        args.paths,
        args.checkpoint,
        frames=args.frames,
        detector=args.detector,
        overlay=args.overlay,
        device=args.device,
        json_out=args.json,
    )
    for r in results:
        if r.get("error"):
            print(f"{r['path']}: error: {r['error']}")
        elif r["score"] is None:
            print(f"{r['path']}: no score ({r['reason']})")
        else:
            verdict = "fake" if r["fake"] else "real"
            probability = (
                f" (calibrated probability of fake {r['probability']:.4f})" if "probability" in r else ""
            )
            print(
                f"{r['path']}: {r['type']} score {r['score']:.4f}{probability} -> {verdict} at the val "
                f"threshold {r['model']['val_threshold']:.3f} ({len(r['frames'])} frames, {r['seconds']:.1f} s)"
            )
        for warning in r.get("warnings", []):
            print(f"{r['path']}: warning: {warning}")
        if r.get("overlay_error"):
            print(f"{r['path']}: overlay not written: {r['overlay_error']}")
    return 0 if any(r["score"] is not None for r in results) else 1


def cmd_explain(args: argparse.Namespace) -> int:
    import torch

    from fbifpn import explain
    from fbifpn.data.dataset import FrameDataset
    from fbifpn.data.manifest import load_manifest
    from fbifpn.engine import checkpoint as ckpt
    from fbifpn.paths import writable_dir

    writable_dir(args.out, "explain output folder")
    model, cfg, _ = ckpt.load_model(args.checkpoint)
    explain.neck_layer(model, args.level)  # a model without a neck or that level fails here, before any work
    data = FrameDataset(
        load_manifest(args.manifest),
        cfg.data.image_size,
        model.mean,
        model.std,
        split=args.split,
        frames_per_video=args.frames,
    )
    loader = torch.utils.data.DataLoader(data, batch_size=16)
    rows = explain.localisation(model, loader, level=args.level, threshold=args.threshold)
    table = explain.localisation_table(rows)
    args.out.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out / "localisation.csv", index=False)
    explain.method_grid(model, data, level=args.level).savefig(args.out / "grid.png", dpi=110)
    print(
        f"localisation on {args.split} fakes with masks ({len(rows) // max(1, rows['map'].nunique())} crops; "
        f"IoU at {args.threshold}, level {args.level}; synthetic where the data is):"
    )
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"-> {args.out / 'localisation.csv'}, {args.out / 'grid.png'}")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from fbifpn import bench
    from fbifpn.config import load_config

    cfg = load_config(args.profile, args.overrides)
    if args.json:
        from fbifpn.paths import writable_file

        writable_file(args.json, "--json")  # before the measurements, not after
    print(
        f"bench {args.mode}: profile {cfg.profile}, {cfg.model.backbone.name} at {cfg.data.image_size} px, "
        f"batch {args.batch or cfg.train.batch_size}, {args.rounds} interleaved rounds of {args.steps} timed "
        f"steps after {args.warmup}"
    )
    report = bench.run(
        args.mode,
        cfg,
        batch=args.batch,
        steps=args.steps,
        warmup=args.warmup,
        compile=args.compile,
        variants=tuple(args.variants or ()),
        sam=not args.no_sam,
        device=args.device,
        rounds=args.rounds,
    )
    print(report["device"], "|", ", ".join(f"{k} {v}" for k, v in report["versions"].items()))
    if args.json:
        print(f"-> {bench.write(report, args.json)}")
    return 0


def cmd_notebooks(args: argparse.Namespace) -> int:
    from fbifpn.notebooks import run

    run(
        args.profile,
        only=args.only,
        overrides=args.overrides,
        extra={"data_root": args.data_root} if args.data_root else None,
        figures_only=args.figures_only,
    )
    return 0


def cmd_check_results(args: argparse.Namespace) -> int:
    from fbifpn import numerics, reproduce
    from fbifpn.paths import runs_dir
    from fbifpn.provenance import cpu_name

    results = reproduce.results_dir(args.profile)
    runs = runs_dir() / args.profile
    made_on = reproduce.recorded_machine(results)
    here = {"cpu": cpu_name(), **numerics.state()}
    print(f"committed results made on: {made_on or 'not recorded'}")
    print(f"this rerun made on:       {here}")
    differences = reproduce.check(results, runs, args.tolerance)
    for line in differences:
        print(line)
    tables = len(list(results.glob(reproduce.TABLES)))
    if differences:
        print(f"{len(differences)} differences beyond {args.tolerance:g} in {tables} tables of {results}")
        return 1
    print(f"all {tables} tables of {results} reproduced within {args.tolerance:g} by {runs}")
    return 0


def cmd_publish_results(args: argparse.Namespace) -> int:
    from fbifpn import reproduce
    from fbifpn.config import load_config
    from fbifpn.paths import runs_dir

    results = reproduce.results_dir(args.profile)
    written = reproduce.publish(
        runs_dir() / args.profile, results, load_config(args.profile).to_dict(), tuple(args.only or ())
    )
    print(f"{len(written)} files -> {results}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fbifpn", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("info", help="parameters and MACs of backbone, neck and heads, per variant")
    _add_profile_args(p)
    p.add_argument("--variant", action="append", help="only this variant (repeatable; default: all)")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("overfit", help="sanity check: drive the loss of one fixed toy batch down")
    _add_profile_args(p)
    p.add_argument("--steps", type=POSITIVE, default=50, help="optimisation steps (default 50)")
    p.add_argument("--batch", type=POSITIVE, default=8, help="toy batch size (default 8)")
    p.add_argument(
        "--min-drop", type=FRACTION, default=0.8, help="fail unless the loss falls by this fraction"
    )
    p.set_defaults(func=cmd_overfit)

    p = sub.add_parser("synth", help="write the synthetic benchmark (synth-ff, synth-cdf, synth-dfdc)")
    p.add_argument("--out", type=Path, help="output folder (default: runs/data/<size>-seed<N>/)")
    p.add_argument("--size", default="demo", choices=list(SIZES), help="benchmark size")
    p.add_argument("--seed", type=int, default=0, help="the seed; the same seed gives identical files")
    p.add_argument(
        "--workers", type=POSITIVE, default=None, help="processes (default: all cores); output is unchanged"
    )
    p.set_defaults(func=cmd_synth)

    p = sub.add_parser("prep", help="videos -> face crops, masks and manifest.csv (resumable, shardable)")
    p.add_argument("--layout", choices=list(LAYOUTS), help="dataset layout")
    p.add_argument("--root", type=Path, help="the dataset's root folder")
    p.add_argument(
        "--out",
        type=Path,
        help="output folder (default for the synthetic benchmark: runs/prep/<dataset>-<size>-seed<N>/)",
    )
    p.add_argument("--json", type=Path, help="DeepfakeBench: the JSON index")
    p.add_argument(
        "--train-list", type=Path, help="Celeb-DF: an index of train videos (test videos are dropped)"
    )
    p.add_argument(
        "--dataset",
        help="dataset name in the manifest (default: the layout's, the index's for DeepfakeBench, "
        "or synth-* for ours)",
    )
    p.add_argument("--split", help="comma-separated splits to keep (default: all)")
    p.add_argument(
        "--methods",
        help="FF++: comma-separated methods to read, each required (default: those present, "
        "each absent one named)",
    )
    p.add_argument(
        "--splits",
        type=Path,
        help="FF++: the folder of train/val/test.json (default: the first of <root>/splits, <root>, "
        "<root>/dataset/splits that has them)",
    )
    p.add_argument(
        "--compression",
        choices=list(LEVELS),
        help="FF++ / DeepfakeBench level: raw, c23 (the default where there are levels) or c40",
    )
    p.add_argument(
        "--frames", type=POSITIVE, default=32, help="frames sampled per video, evenly spaced (default 32)"
    )
    p.add_argument(
        "--detector",
        default="precomputed",
        choices=list(DETECTORS),
        help="face detector (default: precomputed, the sidecar JSON next to each video)",
    )
    p.add_argument(
        "--detect-every", type=POSITIVE, default=1, help="detect on every k-th sampled frame, track between"
    )
    p.add_argument("--all-faces", action="store_true", help="keep every face above 0.9, not only the largest")
    p.add_argument("--size", type=POSITIVE, default=256, help="crop side in pixels (default 256)")
    p.add_argument("--scale", type=POSITIVE_NUMBER, default=1.3, help="crop side / face size (default 1.3)")
    p.add_argument("--align", action="store_true", help="5-point similarity alignment instead of a box crop")
    p.add_argument("--shard", help="i/N: process every N-th video starting at i")
    p.add_argument(
        "--merge", action="store_true", help="rebuild manifest.csv from every shard's parts in --out"
    )
    p.add_argument(
        "--workers", type=POSITIVE, default=1, help="processes (default 1); the output is unchanged"
    )
    p.set_defaults(func=cmd_prep)

    p = sub.add_parser("train", help="fit a profile; the synthetic data is made on first use")
    _add_profile_args(p)
    p.add_argument("--run-dir", type=Path, required=True, help="checkpoints, metrics.jsonl, TensorBoard logs")
    p.add_argument(
        "--resume", action="store_true", help="continue exactly where last.pt in --run-dir stopped"
    )
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("eval", help="score a manifest split with a checkpoint: scores.csv and metrics.json")
    p.add_argument("--checkpoint", type=Path, required=True)
    p.add_argument("--manifest", type=Path, required=True, help="a manifest CSV or a prep folder")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--split", default="test", help="which split to score (default test)")
    p.add_argument(
        "--frames", type=POSITIVE, help="frames per video (default: the checkpoint's eval.frames_per_video)"
    )
    p.add_argument("--no-tta", action="store_true", help="no horizontal-flip test-time augmentation")
    p.add_argument("--device", default="auto")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("detect", help="score videos, images and folders with a checkpoint")
    p.add_argument("paths", type=Path, nargs="+", help="videos, images or folders of them")
    p.add_argument("--checkpoint", type=Path, required=True)
    p.add_argument(
        "--frames", type=POSITIVE, default=32, help="frames sampled per video, evenly spaced (default 32)"
    )
    p.add_argument(
        "--detector",
        default="mtcnn",
        choices=list(DETECTORS),
        help="face detector when a video has no sidecar of face boxes (default mtcnn)",
    )
    p.add_argument("--json", type=Path, help="write every result (per face, per frame) to this JSON file")
    p.add_argument(
        "--overlay", type=Path, help="heat-map overlay: a PNG / MP4 for one input, a folder for several"
    )
    p.add_argument("--device", default="cpu")
    p.set_defaults(func=cmd_detect)

    p = sub.add_parser("explain", help="localisation scores per method and a figure grid (Grad-CAM, maps)")
    p.add_argument("--checkpoint", type=Path, required=True)
    p.add_argument("--manifest", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--split", default="test")
    p.add_argument("--frames", type=POSITIVE, default=4, help="frames per video (default 4)")
    p.add_argument(
        "--level",
        type=NON_NEGATIVE,
        default=0,
        help="F-BiFPN level for Grad-CAM and attention (0 = stride 4)",
    )
    p.add_argument("--threshold", type=FRACTION, default=0.5, help="threshold of the IoU")
    p.set_defaults(func=cmd_explain)

    p = sub.add_parser(
        "bench", help="img/s of the bare classifier, the full model, the peers' recipe and the loader"
    )
    p.add_argument("mode", choices=["train", "infer", "data"])
    _add_profile_args(p)
    p.add_argument("--batch", type=POSITIVE, help="batch size (default: the profile's train.batch_size)")
    p.add_argument("--steps", type=POSITIVE, default=5, help="timed steps per round")
    p.add_argument(
        "--rounds",
        type=POSITIVE,
        default=3,
        help="rounds taking the models in turn; each rate is their median",
    )
    p.add_argument(
        "--warmup", type=NON_NEGATIVE, default=3, help="untimed steps of each model before the rounds"
    )
    p.add_argument("--compile", action="store_true", help="torch.compile the models (compile time excluded)")
    p.add_argument("--variants", nargs="+", help="ablation variants measured besides full")
    p.add_argument("--no-sam", action="store_true", help="skip the SAM step measurement (train)")
    p.add_argument("--device", default="auto", help="auto (the profile's train.device), cpu, cuda, cuda:1")
    p.add_argument("--json", type=Path, help="write the report (device, versions, settings, results) here")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser(
        "notebooks", help="run the numbered notebooks with papermill (copies in runs/<profile>/)"
    )
    p.add_argument("action", choices=["run"])
    _add_profile_args(p)
    p.add_argument(
        "--only", nargs="+", help="notebook numbers to run, e.g. --only 01 02 (default: all, in order)"
    )
    p.add_argument(
        "--data-root",
        help="a folder of prepared datasets, one sub-folder (with manifest.csv) per test set",
    )
    p.add_argument(
        "--figures-only",
        action="store_true",
        help="re-render tables and figures from finished runs (make figures); never trains, fails instead",
    )
    p.set_defaults(func=cmd_notebooks)

    p = sub.add_parser(
        "check-results",
        help="compare a rerun's tables (runs/<profile>/) with the committed results/<profile>/",
    )
    p.add_argument("--profile", default="demo", help="the profile whose results to compare (default: demo)")
    p.add_argument(
        "--tolerance",
        type=float,
        default=0.0,
        help="how far a numeric cell may move (default 0: the same machine and threads give the same bits)",
    )
    p.set_defaults(func=cmd_check_results)

    p = sub.add_parser(
        "publish-results",
        help="copy a finished profile's tables and per-video scores into results/<profile>/, with its machine",
    )
    p.add_argument("--profile", default="demo", help="the profile whose runs to publish (default: demo)")
    p.add_argument("--only", nargs="+", help="notebook numbers whose tables to publish, e.g. --only 03 04 07")
    p.set_defaults(func=cmd_publish_results)
    for command in sub.choices.values():
        command.add_argument(
            "--debug", action="store_true", help="on an error, show the full traceback, not only the message"
        )
    return parser


def _expected(error: BaseException) -> bool:
    """Whether `error` is bad input rather than a bug. OS errors (missing, unreadable or unwritable
    files, a full disk) and YAML errors are, wherever they arise. A ValueError or RuntimeError is
    when fbifpn raised it on purpose (config, layout, checkpoint and media errors, each with its
    message); one raised inside torch, numpy or pandas is a bug here and keeps its traceback."""
    import yaml

    if isinstance(error, (OSError, yaml.YAMLError)):
        return True
    if not isinstance(error, (ValueError, RuntimeError)):
        return False
    tb = error.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb is not None and Path(tb.tb_frame.f_code.co_filename).resolve().is_relative_to(PACKAGE)


PACKAGE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except Exception as e:
        if args.debug or not _expected(e):
            raise
        print(f"error: {_message(e)}", file=sys.stderr)
        print("(run again with --debug for the traceback)", file=sys.stderr)
        return 2


def _message(error: BaseException) -> str:
    """One line that names the file or key and the reason."""
    if isinstance(error, OSError) and error.filename is not None and str(error.filename) not in str(error):
        return f"{error.filename}: {error.strerror or error}"
    return str(error).strip() or type(error).__name__
