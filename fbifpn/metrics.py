"""Detection metrics with their protocol attached.

Frame level scores each crop; video level first takes, per frame, the maximum over faces, then the
mean over frames, keyed by the full video id (dataset/method/.../name, so FF++'s `000_003` of four
methods never merges). AUC, AP and the ROC come from scikit-learn. Confidence intervals resample
videos, not frames, since frames of one video are not independent. Every table states its protocol:
training data, compression, frame or video level, DFDC or DFDCP, and how the checkpoint was chosen.
"""

from __future__ import annotations

import warnings
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
    """Per video: mean over frames of the maximum over faces. Keyed by the full video id."""
    per_frame = frames.groupby(["video_id", "frame_idx"], sort=True).agg(
        **{
            score: (score, "max"),
            "label": ("label", "first"),
            "method": ("method", "first"),
            "dataset": ("dataset", "first"),
        }
    )
    return (
        per_frame.groupby("video_id", sort=True)
        .agg(
            **{
                score: (score, "mean"),
                "label": ("label", "first"),
                "method": ("method", "first"),
                "dataset": ("dataset", "first"),
                "frames": (score, "size"),
            }
        )
        .reset_index()
    )


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


def _auc_of(fakes, reals, axis: int = -1):
    """AUC from the Mann-Whitney U statistic, U / (n_fake * n_real), which is roc_auc_score with
    ties counted one half; vectorised over leading axes, as SciPy's resamplers call it."""
    from scipy import stats

    u = stats.mannwhitneyu(fakes, reals, axis=axis, method="asymptotic").statistic
    return u / (np.shape(fakes)[axis] * np.shape(reals)[axis])


def _interval(data, statistic, n_resamples: int, rng, **kwargs):
    """SciPy's BCa bootstrap interval; where BCa is undefined because every resample gives the same
    value (a perfect detector's AUC is 1 in all of them), the percentile interval of the same
    resamples, which is then that value."""
    from scipy import stats

    with warnings.catch_warnings():  # BCa's degenerate case is handled below, not shown
        warnings.simplefilter("ignore", RuntimeWarning)
        warnings.simplefilter("ignore", stats.DegenerateDataWarning)
        result = stats.bootstrap(data, statistic, n_resamples=n_resamples, rng=rng, **kwargs)
    ci = result.confidence_interval
    if not np.isfinite([ci.low, ci.high]).all():
        kwargs.pop("method", None)
        ci = stats.bootstrap(
            data, statistic, n_resamples=0, bootstrap_result=result, method="percentile", rng=rng, **kwargs
        ).confidence_interval
    return ci


def bootstrap_ci(
    videos: pd.DataFrame, score: str = "score", n: int = 1000, seed: int = 0, metric=auc
) -> tuple[float, float]:
    """95 % interval of a video-level metric (SciPy's BCa bootstrap). Reals and fakes are resampled
    separately, with replacement: every resample keeps both classes, so its AUC is defined. NaN when
    a class has fewer than two videos."""

    reals = videos.loc[videos["label"] == 0, score].to_numpy(float)
    fakes = videos.loc[videos["label"] == 1, score].to_numpy(float)
    if n <= 0 or min(len(reals), len(fakes)) < 2:  # one video of a class: nothing to resample
        return (float("nan"), float("nan"))
    if metric is auc:
        statistic, vectorized = (lambda r, f, axis=-1: _auc_of(f, r, axis)), True
    else:

        def statistic(r, f):
            return metric(np.r_[np.zeros(len(r)), np.ones(len(f))], np.r_[r, f])

        vectorized = False
    ci = _interval((reals, fakes), statistic, n, np.random.default_rng(seed), vectorized=vectorized)
    return (float(ci.low), float(ci.high))


def compare_auc(labels, scores_a, scores_b, *, n_resamples: int = 2000, seed: int = 0) -> dict:
    """Video AUC of model a minus that of model b, on the same videos (one entry per video, in the
    same order in both score arrays). Scores of shape (conditions, videos), the same videos under
    several conditions (the levels of a perturbation, say), compare the mean AUC over the conditions.

    `low`, `high`: a 95 % paired bootstrap interval (SciPy's BCa) that resamples videos, the same
    ones for both models and every condition, reals and fakes separately so both classes stay. `p`: a
    two-sided paired permutation test (SciPy, `permutation_type="samples"`): under "a and b are
    exchangeable", swapping a video's two scores (under every condition at once) changes nothing, so
    the observed delta is compared with those of random swaps. Each model's scores are first
    replaced by their ranks within each condition, which leaves every AUC as it is: two models on
    different scales (a variant's probabilities and a beta-mixed score, say) are then exchangeable
    under the null, where raw swaps would mix the scales and hide a real difference. With identical
    scores delta is 0 and p is 1."""
    from scipy import stats

    labels = np.asarray(labels)
    a, b = np.atleast_2d(np.asarray(scores_a, float)), np.atleast_2d(np.asarray(scores_b, float))
    if not (a.shape == b.shape and a.shape[-1] == len(labels) and a.ndim == 2):
        raise ValueError(
            f"compare_auc: {len(labels)} labels, scores of shape {np.shape(scores_a)} and "
            f"{np.shape(scores_b)}; one per video (under each condition)"
        )
    if set(np.unique(labels)) != {0, 1}:
        raise ValueError("compare_auc: labels must hold both 0 (real) and 1 (fake), and nothing else")
    real, fake = labels == 0, labels == 1

    def delta_of(x, y, axis=-1):  # x, y: (..., conditions, videos)
        aucs = _auc_of(x[..., fake], x[..., real], axis) - _auc_of(y[..., fake], y[..., real], axis)
        return aucs.mean(axis=-1)

    if np.array_equal(a, b):
        return {"delta": 0.0, "low": 0.0, "high": 0.0, "p": 1.0, "n": len(labels)}
    # ties stay ties: AUCs unchanged
    a, b = stats.rankdata(a, axis=-1) / a.shape[-1], stats.rankdata(b, axis=-1) / b.shape[-1]
    delta = float(delta_of(a, b))
    rng = np.random.default_rng(seed)
    test = stats.permutation_test(
        (a, b),
        delta_of,
        permutation_type="samples",
        n_resamples=n_resamples,
        vectorized=True,
        rng=rng,
        axis=-1,
    )
    if min(real.sum(), fake.sum()) < 2:  # one video of a class: no interval to resample
        return {
            "delta": delta,
            "low": float("nan"),
            "high": float("nan"),
            "p": float(test.pvalue),
            "n": len(labels),
        }

    def paired_delta(r, f, axis=-1):  # r, f: (2, conditions, ..., n) scores of the reals, of the fakes
        return (_auc_of(f[0], r[0], axis) - _auc_of(f[1], r[1], axis)).mean(axis=0)

    ci = _interval(
        (np.stack([a[:, real], b[:, real]]), np.stack([a[:, fake], b[:, fake]])),
        paired_delta,
        n_resamples,
        rng,
        vectorized=True,
        axis=-1,
    )
    return {
        "delta": delta,
        "low": float(ci.low),
        "high": float(ci.high),
        "p": float(test.pvalue),
        "n": len(labels),
    }


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
    video["auc_ci95"] = bootstrap_ci(videos, score, bootstrap, seed)
    video["ap_ci95"] = bootstrap_ci(videos, score, bootstrap, seed, metric=average_precision)
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
