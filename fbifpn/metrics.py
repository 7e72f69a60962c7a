"""Detection metrics with their protocol attached.

Frame level scores each crop; video level first takes, per frame, the maximum over faces, then the
mean over frames, keyed by the full video id (dataset/method/.../name, so FF++'s `000_003` of four
methods never merges). AUC, AP and the ROC come from scikit-learn. Confidence intervals resample
families of videos (`fbifpn.stats`), not frames, since neither the frames of one video nor the
videos made from one source are independent. Every table states its protocol:
training data, compression, frame or video level, DFDC or DFDCP, and how the checkpoint was chosen.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd


def _sk():
    from sklearn import metrics  # imported where used: `import fbifpn` must not need scikit-learn

    return metrics


def auc(labels, scores) -> float:
    labels = np.asarray(labels)
    if len(np.unique(labels)) < 2:
        return float("nan")
    return float(_sk().roc_auc_score(labels, scores))


def average_precision(labels, scores) -> float:
    labels = np.asarray(labels)
    if len(np.unique(labels)) < 2:
        return float("nan")
    return float(_sk().average_precision_score(labels, scores))


def eer(labels, scores) -> float:
    """Equal error rate: where the false positive rate meets the false negative rate on the ROC."""
    labels = np.asarray(labels)
    if len(np.unique(labels)) < 2:
        return float("nan")
    fpr, tpr, _ = _sk().roc_curve(labels, scores)
    fnr = 1 - tpr
    i = int(np.nanargmin(np.abs(fnr - fpr)))
    if i + 1 < len(fpr) and (fnr[i] - fpr[i]) * (fnr[i + 1] - fpr[i + 1]) < 0:
        # interpolate between the two ROC points that bracket the crossing
        a, b = fnr[i] - fpr[i], fnr[i + 1] - fpr[i + 1]
        t = a / (a - b)
        return float(fpr[i] + t * (fpr[i + 1] - fpr[i]))
    return float((fpr[i] + fnr[i]) / 2)


def accuracy(labels, scores, threshold: float) -> float:
    return float(np.mean((np.asarray(scores) >= threshold) == (np.asarray(labels) == 1)))


def choose_threshold(labels, scores) -> float:
    """The threshold maximising Youden's J (TPR - FPR), for a split where it may be chosen (val)."""
    labels = np.asarray(labels)
    if len(np.unique(labels)) < 2:
        return 0.5
    fpr, tpr, thresholds = _sk().roc_curve(labels, scores)
    best = int(np.argmax(tpr - fpr))
    return float(min(1.0, thresholds[best]))


def video_scores(frames: pd.DataFrame, score: str = "score") -> pd.DataFrame:
    """Per video: mean over frames of the maximum over faces. Keyed by the full video id; the
    video's family travels with it where the frames carry one."""
    kept = [c for c in ("label", "method", "dataset", "family") if c in frames.columns]
    firsts = {c: (c, "first") for c in kept}
    per_frame = frames.groupby(["video_id", "frame_idx"], sort=True).agg(**{score: (score, "max")}, **firsts)
    return (
        per_frame.groupby("video_id", sort=True)
        .agg(**{score: (score, "mean")}, **firsts, frames=(score, "size"))
        .reset_index()
    )


def video_families(videos: pd.DataFrame):
    """The family of each video of a `video_scores` table, or None (each video its own unit) for
    scores made before videos carried a family."""
    return videos["family"].to_numpy() if "family" in videos.columns else None


def summary(labels, scores, threshold: float | None = None) -> dict[str, float]:
    out = {
        "auc": auc(labels, scores),
        "ap": average_precision(labels, scores),
        "eer": eer(labels, scores),
        "acc@0.5": accuracy(labels, scores, 0.5),
        "n": int(len(labels)),
    }
    if threshold is not None:
        out["acc@val_threshold"] = accuracy(labels, scores, threshold)
    return out


def bootstrap_ci(
    videos: pd.DataFrame, score: str = "score", n: int = 1000, seed: int = 0, metric=auc, families=None
) -> tuple[float, float]:
    """95 % interval of a video-level metric (SciPy's BCa bootstrap) that resamples `families` (one
    id per video, e.g. `videos["family"]`) or, when None, single videos, within strata that keep
    both classes in every resample (`fbifpn.stats`). NaN when a stratum has one unit only, and
    with `n` = 0 (no interval asked for)."""
    from fbifpn import stats

    if n <= 0:
        return (float("nan"), float("nan"))
    labels = videos["label"].to_numpy()
    values = videos[score].to_numpy(float)
    if metric is auc:
        out = stats.bootstrap_auc(labels, values, families, n_resamples=n, seed=seed)
        return (out["low"], out["high"])
    stats.check_resamples(n, "bootstrap")
    units = stats.families_of(labels, families)

    def weighted(counts):
        return np.array([_weighted_metric(metric, labels, values, w) for w in counts[:, units.codes]])

    return stats.bootstrap_interval(units, weighted, n, seed)


def _weighted_metric(metric, labels, scores, weights) -> float:
    """`metric` on the videos repeated as often as `weights` says (a resample of them)."""
    keep = weights > 0
    repeat = weights[keep].astype(int)
    return metric(np.repeat(labels[keep], repeat), np.repeat(scores[keep], repeat))


def compare_auc(labels, scores_a, scores_b, *, families=None, n_resamples: int = 2000, seed: int = 0) -> dict:
    """Video AUC of model a minus that of model b on the same videos, its 95 % paired bootstrap
    interval over families (or videos) and the p of a permutation test that swaps the models on
    whole families: `fbifpn.stats.compare_auc`, which documents both."""
    from fbifpn import stats

    return stats.compare_auc(
        labels, scores_a, scores_b, families=families, n_resamples=n_resamples, seed=seed
    )


def per_method(videos: pd.DataFrame, score: str = "score") -> dict[str, float]:
    """Video AUC of each manipulation against all reals of the same table."""
    reals = videos[videos["label"] == 0]
    out = {}
    for method, fakes in videos[videos["label"] == 1].groupby("method"):
        both = pd.concat([reals, fakes])
        out[str(method)] = auc(both["label"], both[score])
    return out


def evaluate_scores(
    frames: pd.DataFrame,
    threshold: float | None = None,
    bootstrap: int = 1000,
    seed: int = 0,
    score: str = "score",
) -> dict:
    """Frame- and video-level metrics, per-method video AUCs and bootstrap CIs of the video AUC and AP."""
    videos = video_scores(frames, score)
    video = summary(videos["label"], videos[score], threshold)
    families = video_families(videos)
    video["auc_ci95"] = bootstrap_ci(videos, score, bootstrap, seed, families=families)
    video["ap_ci95"] = bootstrap_ci(
        videos, score, bootstrap, seed, metric=average_precision, families=families
    )
    video["ci_unit"] = "family" if families is not None else "video"
    return {
        "frame": summary(frames["label"], frames[score], threshold),
        "video": video,
        "per_method_video_auc": per_method(videos, score),
    }


@dataclass(frozen=True)
class Protocol:
    """What every reported number must say about how it was made."""

    train_data: str  # e.g. "synth-ff c23 (synthetic)" or "FF++ c23"
    test_data: str  # e.g. "synth-cdf (synthetic)"; names DFDC or DFDCP explicitly
    compression: str
    level: str  # frame | video
    selection: str  # e.g. "best val video AUC (epoch 3)"; never the test set

    def label(self) -> str:
        return "; ".join(f"{k.replace('_', ' ')}: {v}" for k, v in asdict(self).items())


def table(rows: list[dict], protocol: Protocol, columns: list[str], digits: int = 4) -> str:
    """A Markdown table preceded by its protocol line, so the numbers never travel without it."""
    lines = [f"*{protocol.label()}*", "", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        cells = [f"{row[c]:.{digits}f}" if isinstance(row[c], float) else str(row[c]) for c in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
