"""One figure style, and saving figures as build products: PNG and PDF with the config that made them."""

from __future__ import annotations

import json
from pathlib import Path

from fbifpn import atomic
from fbifpn.config import Config


def theme() -> None:
    """The project's seaborn theme (imported here: plotting is not needed to train or evaluate)."""
    import seaborn as sns

    sns.set_theme(context="notebook", style="whitegrid", palette="colorblind")


def save_figure(fig, name: str, cfg: Config, figures_dir: Path | str, note: str = "", dpi: int = 110) -> None:
    """Write <figures_dir>/<name>.png and .pdf, and <name>.json with the config and a provenance note.
    Returns nothing, so that a notebook cell ending in it shows the figure and no stray path."""
    figures_dir = Path(figures_dir)
    figures_dir.mkdir(parents=True, exist_ok=True)
    png = figures_dir / f"{name}.png"
    fig.savefig(png, dpi=dpi, bbox_inches="tight")
    _palette(png)
    fig.savefig(figures_dir / f"{name}.pdf", bbox_inches="tight")
    atomic.write_text(
        figures_dir / f"{name}.json", json.dumps({"note": note, "config": cfg.to_dict()}, indent=1)
    )


def _palette(png: Path) -> None:
    """Re-save a PNG with a 256-colour adaptive palette: a third of the size or less for heat-map
    grids, so the committed gallery stays small; the PDF keeps full colour."""
    from PIL import Image

    with Image.open(png) as image:
        small = image.convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT)
    small.save(png, optimize=True)


def show_image(rgb, title: str = ""):
    """An RGB array as a figure of its own (so it saves like any other figure)."""
    import matplotlib.pyplot as plt

    height, width = rgb.shape[:2]
    fig, ax = plt.subplots(figsize=(width / 110, height / 110 + 0.3))
    ax.imshow(rgb)
    ax.set_title(title, fontsize=9)
    ax.axis("off")
    return fig


def ablation_bars(summary):
    """Video AUC per variant (bars) and test set (colours), with the 95 % bootstrap interval."""
    import matplotlib.pyplot as plt
    import numpy as np

    variants = list(dict.fromkeys(summary["variant"]))
    tests = list(dict.fromkeys(summary["test"]))
    width = 0.8 / len(tests)
    fig, ax = plt.subplots(figsize=(1.2 + 1.3 * len(variants), 3.6))
    for i, test in enumerate(tests):
        part = summary[summary["test"] == test].set_index("variant").reindex(variants)
        x = np.arange(len(variants)) + (i - (len(tests) - 1) / 2) * width
        err = np.vstack([part["video_auc"] - part["ci_low"], part["ci_high"] - part["video_auc"]])
        ax.bar(x, part["video_auc"], width, label=test, yerr=np.nan_to_num(err), capsize=2)
    low = float(np.nanmin(summary[["video_auc", "ci_low"]].to_numpy()))
    ax.set(ylim=(max(0.0, min(0.5, low - 0.05)), 1.01), ylabel="video AUC", xticks=range(len(variants)))
    ax.set_xticklabels(variants, rotation=20, ha="right")
    ax.legend(title="test set", fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    return fig


def paired_forest(paired, reference: str = "full"):
    """The paired test of each variant against `reference`, one panel per test set (a forest
    plot): the verdict row's delta AUC with its 95 % interval (seed-level where there are several
    seeds) and each seed's own delta as a dot, so a reader sees the spread a pooled bar would hide."""
    import matplotlib.pyplot as plt

    from fbifpn.comparisons import ONE_SEED, verdict_rows

    verdicts = verdict_rows(paired)
    per_seed = paired[paired["level"] == ONE_SEED]
    tests = list(dict.fromkeys(paired["test"]))
    variants = list(dict.fromkeys(paired["variant"]))
    fig, axes = plt.subplots(
        1,
        len(tests),
        figsize=(1.6 + 2.6 * len(tests), 0.9 + 0.45 * len(variants)),
        sharex=True,
        sharey=True,
        squeeze=False,
    )
    across = (verdicts["level"] != ONE_SEED).any()
    for ax, test in zip(axes[0], tests, strict=True):
        rows = verdicts[verdicts["test"] == test].set_index("variant").reindex(variants)
        y = range(len(variants))
        ax.axvline(0, color="0.6", lw=0.8, zorder=0)
        ax.errorbar(
            rows["delta"],
            y,
            xerr=[rows["delta"] - rows["low"], rows["high"] - rows["delta"]],
            fmt="o",
            color="C0",
            capsize=3,
            label=f"{'across seeds' if across else 'one seed'}, 95 % CI",
        )
        for i, variant in enumerate(variants):
            dots = per_seed[(per_seed["test"] == test) & (per_seed["variant"] == variant)]
            if across:
                label = "each seed" if i == 0 else None
                ax.scatter(dots["delta"], [i + 0.18] * len(dots), s=14, color="C1", label=label)
            significant = str(rows.loc[variant, "verdict"]).startswith("significant")
            if significant:
                ax.annotate("*", (rows.loc[variant, "high"], i), xytext=(4, -4), textcoords="offset points")
        ax.set(title=test, xlabel=f"ΔAUC vs {reference}")
        ax.set_yticks(list(y))
        ax.set_yticklabels(variants)
    axes[0][0].invert_yaxis()
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=8, loc="lower center", ncol=2, bbox_to_anchor=(0.5, -0.02))
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    return fig


def level_weight_bars(rows):
    """The learned level weights v_l (P2 = stride 4 first) of each trained variant and seed."""
    import matplotlib.pyplot as plt
    import numpy as np

    rows = rows.reset_index(drop=True)
    levels = max(len(w) for w in rows["level_weights"])
    width = 0.8 / len(rows)
    fig, ax = plt.subplots(figsize=(1.5 + 1.2 * levels, 3.2))
    for i, row in rows.iterrows():
        x = np.arange(len(row["level_weights"])) + (i - (len(rows) - 1) / 2) * width
        ax.bar(x, row["level_weights"], width, label=f"{row['variant']} (seed {row['seed']})")
    ax.set(xticks=range(levels), ylabel="normalised v_l", title="F-BiFPN level weights")
    ax.set_xticklabels([f"P{level + 2}" for level in range(levels)])
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    return fig


def learning_curves(curves: dict):
    """Val video AUC (left) and val loss (right, where the run logged it) against training steps,
    one line per run (`experiments.learning_curve`), the step each run's checkpoint was chosen at
    starred: selection reads the AUC first and the loss between equal AUCs."""
    import matplotlib.pyplot as plt

    fig, (ax, loss_ax) = plt.subplots(1, 2, figsize=(9.6, 3.6))
    for label, (curve, chosen) in curves.items():
        (line,) = ax.plot(curve["step"], curve["video_auc"], marker="o", markersize=3, label=label)
        at = curve[curve["step"] == chosen]
        ax.plot(at["step"], at["video_auc"], marker="*", markersize=12, color=line.get_color(), linestyle="")
        if "loss" in curve:
            loss_ax.plot(curve["step"], curve["loss"], marker="o", markersize=3, color=line.get_color())
            loss_ax.plot(
                at["step"], at["loss"], marker="*", markersize=12, color=line.get_color(), linestyle=""
            )
    ax.set(xlabel="training step", ylabel="val video AUC", title="learning curves (star: chosen on val)")
    loss_ax.set(xlabel="training step", ylabel="val log loss", title="val loss (breaks ties of the AUC)")
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    return fig


def roc_curves(scores: dict):
    """Video-level ROC curves, one per test set, from each evaluation's scores.csv."""
    import matplotlib.pyplot as plt
    import pandas as pd
    from sklearn.metrics import roc_curve

    from fbifpn.metrics import auc, video_scores

    fig, ax = plt.subplots(figsize=(4.2, 4))
    for name, path in scores.items():
        videos = video_scores(pd.read_csv(path))
        fpr, tpr, _ = roc_curve(videos["label"], videos["score"])
        ax.plot(fpr, tpr, label=f"{name} (AUC {auc(videos['label'], videos['score']):.3f})")
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="video level")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig


def robustness_curves(rows):
    """Video AUC against perturbation level, one panel per type and one line per model (level 0:
    clean, the same videos unperturbed), with 95 % bootstrap intervals (`robustness.robustness`)."""
    import matplotlib.pyplot as plt
    import numpy as np
    import pandas as pd

    from fbifpn.data.perturb import LABELS

    kinds = [k for k in dict.fromkeys(rows["kind"]) if k != "clean"]
    clean = rows[rows["kind"] == "clean"]
    columns = min(4, len(kinds) + 1)
    lines = -(-(len(kinds) + 1) // columns)
    fig, axes = plt.subplots(lines, columns, figsize=(2.7 * columns, 2.4 * lines), sharey=True, squeeze=False)
    low = float(np.nanmin(rows[["video_auc", "ci_low"]].to_numpy()))
    for ax, kind in zip(axes.flat, kinds, strict=False):
        for model in dict.fromkeys(rows["model"]):
            perturbed = rows[(rows["model"] == model) & (rows["kind"] == kind)]
            part = pd.concat([clean[clean["model"] == model], perturbed]).sort_values("level")
            err = np.vstack([part["video_auc"] - part["ci_low"], part["ci_high"] - part["video_auc"]])
            ax.errorbar(
                part["level"],
                part["video_auc"],
                yerr=np.nan_to_num(err),
                marker="o",
                markersize=3,
                capsize=2,
                label=model,
            )
        ax.set(title=LABELS[kind], xticks=range(6), ylim=(max(0.0, min(0.5, low - 0.05)), 1.01))
        ax.title.set_fontsize(9)
    for ax in axes[:, 0]:
        ax.set_ylabel("video AUC")
    for ax in axes[-1]:
        ax.set_xlabel("level (0 = clean)")
    spare = list(axes.flat)[len(kinds) :]
    handles, labels = axes.flat[0].get_legend_handles_labels()
    for ax in spare:
        ax.axis("off")
    (spare[0] if spare else axes.flat[-1]).legend(handles, labels, title="model", fontsize=8, loc="center")
    fig.tight_layout()
    return fig


def perturbation_grid(crops, track, frame: int, kinds, levels=(1, 3, 5), seed: int = 0):
    """One crop clean and under every type at `levels`, a row per type, drawn as the robustness
    evaluations drew it: `crops` are a face track's BGR crops in frame order, `track` its manifest
    rows (video_id, frame_idx, face_idx) in the same order, `frame` the position shown."""
    import matplotlib.pyplot as plt

    from fbifpn.data.perturb import LABELS, parameter, perturb_rng, perturb_track

    row_of = track.iloc[frame]
    fig, axes = plt.subplots(
        len(kinds), len(levels) + 1, figsize=(1.7 * (len(levels) + 1), 1.75 * len(kinds)), squeeze=False
    )
    for row, kind in zip(axes, kinds, strict=True):
        for ax, level in zip(row, (0, *levels), strict=True):
            rng = perturb_rng(seed, kind, level, row_of["video_id"], row_of["frame_idx"], row_of["face_idx"])
            if kind == "video":  # the codec needs the whole track (and draws nothing at random)
                crop = perturb_track(crops, kind, level, rng)[frame]
            else:
                crop = perturb_track([crops[frame]], kind, level, rng)[0]
            ax.imshow(crop[..., ::-1])
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title("clean" if level == 0 else f"level {level} ({parameter(kind, level):g})", fontsize=8)
        row[0].set_ylabel(LABELS[kind], fontsize=8)
    fig.tight_layout()
    return fig


def reliability_diagrams(sets: dict, maps: dict[str, dict]):
    """Video-level reliability diagram of each set (name -> frame scores), raw and under each
    calibration map of `maps` (fitted on val), with each curve's expected calibration error."""
    import matplotlib.pyplot as plt

    from fbifpn.calibration import expected_calibration_error, reliability, video_probabilities

    fig, axes = plt.subplots(1, len(sets), figsize=(3.1 * len(sets), 3.2), sharey=True, squeeze=False)
    for ax, (name, frames) in zip(axes[0], sets.items(), strict=True):
        for label, calibration in {"raw": None, **maps}.items():
            videos = video_probabilities(frames, calibration)
            curve = reliability(videos["label"], videos["probability"])
            ece = expected_calibration_error(videos["label"], videos["probability"])
            ax.plot(
                curve["confidence"],
                curve["frequency"],
                marker="o",
                markersize=3,
                label=f"{label} (ECE {ece:.3f})",
            )
        ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
        ax.set(title=name, xlabel="predicted probability of fake", xlim=(0, 1), ylim=(0, 1))
        ax.legend(fontsize=7, loc="upper left")
    axes[0, 0].set_ylabel("observed fraction of fakes")
    fig.tight_layout()
    return fig


def budget_curve(paired, trajectory):
    """Left, one panel per test set: the seed-level ΔAUC (variant - reference) against the training
    budget with its 95 % interval, a star where the Holm-adjusted verdict is significant. Right: the
    full model's level weights v_l at each budget (mean over seeds, bars their range) inside the band
    that the learning rates allow."""
    import matplotlib.pyplot as plt

    from fbifpn.comparisons import verdict_rows

    verdicts = verdict_rows(paired)
    tests = list(dict.fromkeys(verdicts["test"]))
    fig, axes = plt.subplots(1, len(tests) + 1, figsize=(3.0 * (len(tests) + 1), 3.0), squeeze=False)
    for ax, test in zip(axes[0], tests, strict=False):
        for k, (variant, rows) in enumerate(
            verdicts[verdicts["test"] == test].groupby("variant", sort=False)
        ):
            rows = rows.sort_values("steps")
            _steps_line(ax, rows["steps"], rows["delta"], rows["low"], rows["high"], k, variant)
            starred = rows[rows["verdict"].str.startswith("significant")]
            ax.scatter(starred["steps"], starred["high"] + 0.01, marker="*", color="black", s=30)
        ax.axhline(0, color="0.6", lw=0.8, zorder=0)
        ax.set(title=test, ylabel="ΔAUC (seed-level, 95 % CI)")
    ax = axes[0, -1]
    for k, (level, rows) in enumerate(trajectory.groupby("level", sort=True)):
        _steps_line(ax, rows["steps"], rows["mean"], rows["min"], rows["max"], k, level)
    bound = trajectory.drop_duplicates("steps").sort_values("steps")
    ax.fill_between(bound["steps"], bound["bound_low"], bound["bound_high"], color="0.85", label="lr bound")
    ax.set(title="level weights v_l (full)", ylabel="v_l")
    ax.minorticks_off()
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return fig


def _steps_line(ax, steps, centre, low, high, colour: int, label: str) -> None:
    """One series against training steps (log axis, a tick at each step given) with its range."""
    ax.errorbar(
        steps,
        centre,
        yerr=[centre - low, high - centre],
        fmt="o-",
        color=f"C{colour}",
        capsize=3,
        label=label,
    )
    ax.set(xscale="log", xlabel="training steps")
    ax.set_xticks(list(steps), [str(s) for s in steps])
    ax.minorticks_off()
    ax.legend(fontsize=7)
