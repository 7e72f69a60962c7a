"""The model's speed options against method.md's design, trained side by side over seeds.

    python benchmarks/design_probe.py --profile demo --seeds 0 1 \
        --option grid model.heads.consistency_on_grid=true \
        --option narrow model.neck.finest_width=32 \
        --option both model.heads.consistency_on_grid=true model.neck.finest_width=32

Each option is the `full` variant with its overrides, trained with notebook 02's budget; `spec` (the
profile as it is) is trained beside them. `--set KEY=VALUE` applies to every run. Every run is tested on the profile's test splits, as in
notebook 03. Runs live in runs/<profile>-design/<option>/full-seed<N>/ and are reused on a rerun. The
video AUCs per seed and their mean over seeds are printed and written to design.csv and design.md.
"""

from __future__ import annotations

import argparse
import os

import pandas as pd

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from fbifpn import load_config  # noqa: E402
from fbifpn.engine.evaluate import describe_training  # noqa: E402
from fbifpn.experiments import ablation, prepared_sets  # noqa: E402
from fbifpn.metrics import Protocol, table  # noqa: E402
from fbifpn.paths import runs_dir  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--profile", default="demo")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        dest="common",
        metavar="KEY=VALUE",
        help="an override for every run, the spec's too (repeatable)",
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument(
        "--option",
        nargs="+",
        action="append",
        default=[],
        metavar=("NAME", "KEY=VALUE"),
        help="a name, then the config overrides that make the option (repeatable)",
    )
    args = parser.parse_args(argv)
    options = {"spec": []} | {name: overrides for name, *overrides in args.option}
    if any(name == "spec" for name, *_ in args.option):
        parser.error("--option: 'spec' names the profile as it is; call the option something else")
    for overrides in options.values():
        load_config(args.profile, [*args.common, *overrides])  # a typo fails here, before hours of training

    root = runs_dir() / f"{args.profile}-design"
    book = [
        "notebooks.ablation_variants=[full]",
        f"notebooks.ablation_seeds={args.seeds}",
        "notebooks.ablation_beta=0",
    ]
    frames = []
    for name, overrides in options.items():
        cfg = load_config(args.profile, [*args.common, *overrides, *book])
        runs = ablation(cfg, root / name, prepared_sets(cfg), progress=False)
        frames.append(runs.assign(option=name))
        print(f"{name}: trained and tested", flush=True)
    runs = pd.concat(frames)
    runs.to_csv(root / "design.csv", index=False)
    tests = list(dict.fromkeys(runs["test"]))
    auc = runs.pivot_table(index=["option", "seed"], columns="test", values="video_auc", sort=False)
    rows = [{"option": o, "seed": str(seed), **auc.loc[(o, seed)].to_dict()} for o, seed in auc.index]
    rows += [
        {"option": o, "seed": "mean", **auc.loc[o].mean().to_dict()} for o in options if len(args.seeds) > 1
    ]
    compression = runs.drop_duplicates("test").set_index("test")["compression"]
    protocol = Protocol(
        train_data=describe_training(load_config(args.profile, args.common)),
        test_data=", ".join(tests) + " [test splits]",
        compression="; ".join(f"{t}: {compression[t]}" for t in tests),
        level="video AUC (mean of frame scores, max over faces)",
        selection=f"best validation {cfg.eval.select_on} of each run; notebook 02's budget; seeds "
        + ", ".join(map(str, args.seeds)),
    )
    text = (
        table(rows, protocol, ["option", "seed", *tests], digits=3)
        + "\n\n"
        + "\n".join(f"- {n}: {' '.join(o) or 'the profile as it is'}" for n, o in options.items())
        + (f"\n- every run: {' '.join(args.common)}" if args.common else "")
        + "\n"
    )
    (root / "design.md").write_text(text)
    print(text)
    print(f"-> {root / 'design.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
