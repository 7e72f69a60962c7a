"""How far a detector's scores can be read as probabilities, and its val threshold trusted elsewhere.

A score s in (0, 1) has the logit z = log(s / (1 - s)), the cls logit itself when beta = 0. Temperature
scaling (Guo et al., ICML 2017) divides z by one temperature T fitted on the validation split's frame
logits, and the calibrated probability is sigmoid(z / T). It never reorders scores, so every AUC, and
the accuracy at the val threshold carried through the same map, stay as they are; only how much a
0.9 means changes. Expected calibration error uses 15 equal-width bins, with scikit-learn's
`calibration_curve` for the per-bin frequencies.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

BINS = 15
EPS = 1e-6  # scores of exactly 0 or 1 (float32 saturation) get a finite logit


def temperature_of(saved: dict) -> float | None:
    """A checkpoint's temperature, or None when it holds none (saved before checkpoints had one) or
    one that cannot be a temperature (not finite, or <= 0: it would break or invert every score),
    which is then reported and ignored."""
    import math
    import warnings

    value = saved.get("temperature")
    if value is None:
        return None
    if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
        warnings.warn(
            f"the checkpoint's temperature {value!r} is not a positive number: ignored", stacklevel=2
        )
        return None
    return float(value)


def logits(scores) -> np.ndarray:
    p = np.clip(np.asarray(scores, np.float64), EPS, 1 - EPS)
    return np.log(p) - np.log1p(-p)


def calibrated(scores, temperature: float | None) -> np.ndarray:
    """sigmoid(logit(s) / T): the probability temperature scaling gives a score (s itself for None)."""
    from scipy.special import expit

    if temperature is None:
        return np.asarray(scores, np.float64)
    return expit(logits(scores) / temperature)


def nll(labels, probabilities) -> float:
    """Mean negative log-likelihood (scikit-learn's log loss) of labels 0/1 under `probabilities`."""
    from sklearn.metrics import log_loss

    return float(log_loss(np.asarray(labels), np.asarray(probabilities, np.float64), labels=[0, 1]))


def fit_temperature(labels, scores) -> float:
    """The T > 0 minimising the NLL of `labels` under sigmoid(logit(scores) / T) (SciPy's bounded
    scalar minimiser over log T). T = 1, the scores as they are, is kept unless another T lowers the
    NLL, so fitting never makes the fitted split worse. One class alone has no temperature: 1.
    (scikit-learn's CalibratedClassifierCV(method="temperature") fits the same objective but keeps T
    in private attributes; the checkpoint stores this one number.)"""
    from scipy.optimize import minimize_scalar
    from scipy.special import expit

    labels = np.asarray(labels)
    if len(np.unique(labels)) < 2:
        return 1.0
    z = logits(scores)

    def loss(log_t: float) -> float:
        return nll(labels, expit(z / np.exp(log_t)))

    found = minimize_scalar(loss, bounds=(-5.0, 5.0), method="bounded", options={"xatol": 1e-6})
    return float(np.exp(found.x)) if found.success and found.fun < loss(0.0) else 1.0


def reliability(labels, probabilities, bins: int = BINS) -> pd.DataFrame:
    """One row per non-empty bin of equal width: mean predicted probability (`confidence`), observed
    fraction of fakes (`frequency`) and how many scores fell in it (`count`)."""
    from sklearn.calibration import calibration_curve

    labels, p = np.asarray(labels), np.asarray(probabilities, np.float64)
    if not np.isfinite(p).all():  # calibration_curve would bin NaN and the ECE would read as perfect
        raise ValueError("calibration: the probabilities hold NaN or infinity")
    frequency, confidence = calibration_curve(labels, p, n_bins=bins, strategy="uniform")
    # calibration_curve's own binning (np.searchsorted on the inner edges), for the counts it omits
    counts = np.bincount(np.searchsorted(np.linspace(0, 1, bins + 1)[1:-1], p), minlength=bins)
    return pd.DataFrame({"confidence": confidence, "frequency": frequency, "count": counts[counts > 0]})


def expected_calibration_error(labels, probabilities, bins: int = BINS) -> float:
    """sum over bins of (share of scores in the bin) x |observed frequency - mean probability|."""
    table = reliability(labels, probabilities, bins)
    weights = table["count"] / table["count"].sum()
    return float((weights * (table["frequency"] - table["confidence"]).abs()).sum())


def rates_at(labels, scores, threshold: float) -> dict[str, float]:
    """Accuracy, false-positive rate (reals called fake) and true-positive rate at `threshold`."""
    labels, called = np.asarray(labels), np.asarray(scores) >= threshold
    reals, fakes = labels == 0, labels == 1
    return {
        "threshold": float(threshold),
        "accuracy": float(np.mean(called == fakes)),
        "fpr": float(called[reals].mean()) if reals.any() else float("nan"),
        "tpr": float(called[fakes].mean()) if fakes.any() else float("nan"),
    }


def errors(frames: pd.DataFrame, columns: dict[str, str]) -> dict[str, float]:
    """Frame and video ECE of each score column of `frames` (label -> column), under the keys
    frame_ece_<label> and video_ece_<label> (video: the scores' own aggregation, `video_scores`)."""
    from fbifpn.metrics import video_scores

    out = {}
    for label, column in columns.items():
        videos = video_scores(frames, column)
        out[f"frame_ece_{label}"] = expected_calibration_error(frames["label"], frames[column])
        out[f"video_ece_{label}"] = expected_calibration_error(videos["label"], videos[column])
    return out


def travel(
    val: pd.DataFrame, tests: dict[str, pd.DataFrame], temperature: float, threshold: float
) -> pd.DataFrame:
    """What calibration and the val threshold are worth on each set, from frame scores (the `scores.csv`
    of an evaluation): one row for val, then one per test set. Frame and video ECE and the frame NLL,
    raw and at `temperature`; at video level, the accuracy, false-positive and true-positive rates at
    the val-chosen `threshold` next to those at the threshold the same rule (Youden's J) would have
    chosen on that set itself, an oracle shown for comparison only."""
    from fbifpn.metrics import choose_threshold, video_scores

    rows = []
    for name, frames in {"val": val, **tests}.items():
        frames = frames.assign(probability=calibrated(frames["score"], temperature))
        videos = video_scores(frames)
        at_val = rates_at(videos["label"], videos["score"], threshold)
        own = rates_at(videos["label"], videos["score"], choose_threshold(videos["label"], videos["score"]))
        row = {"set": name, "frames": len(frames), "videos": len(videos)}
        for label, column in (("raw", "score"), ("calibrated", "probability")):
            row |= errors(frames, {label: column})
            row[f"frame_nll_{label}"] = nll(frames["label"], frames[column])
        row |= {f"{k}_at_val_threshold": v for k, v in at_val.items()}
        row |= {f"{k}_at_own_threshold": v for k, v in own.items()}
        rows.append(row)
    return pd.DataFrame(rows)
