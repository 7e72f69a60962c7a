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


# --------------------------------------------------------------------------- maps that move scores

CALIBRATIONS = ("temperature", "platt", "isotonic")


def fit_platt(labels, scores) -> dict:
    """Platt scaling: sigmoid(slope * logit(s) + bias), scikit-learn's unpenalised logistic
    regression on the logit. Unlike a temperature its bias moves a shifted score, so it can
    calibrate a detector whose val scores sit all above (or below) 0.5. One class alone: identity."""
    from sklearn.linear_model import LogisticRegression

    labels, scores = np.asarray(labels), np.asarray(scores, np.float64)
    if len(np.unique(labels)) < 2:
        return {"method": "platt", "slope": 1.0, "bias": 0.0}
    # Scores that separate the classes have no maximum-likelihood fit (the slope runs off to
    # infinity and every probability to 0 or 1): scikit-learn's default L2 penalty keeps it finite.
    separable = scores[labels == 0].max() < scores[labels == 1].min()
    fitted = LogisticRegression(C=1.0 if separable else np.inf).fit(logits(scores)[:, None], labels)
    return {"method": "platt", "slope": float(fitted.coef_[0, 0]), "bias": float(fitted.intercept_[0])}


def fit_isotonic(labels, scores) -> dict:
    """Isotonic regression (scikit-learn): the non-decreasing step map that fits the labels best,
    clipped outside the scores it saw. Kept as its breakpoints, which `apply` interpolates as
    IsotonicRegression.predict does (a test checks they agree). One class alone: identity."""
    from sklearn.isotonic import IsotonicRegression

    labels = np.asarray(labels)
    if len(np.unique(labels)) < 2:
        return {"method": "isotonic", "x": [0.0, 1.0], "y": [0.0, 1.0]}
    fitted = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(
        np.asarray(scores, np.float64), labels
    )
    return {"method": "isotonic", "x": fitted.X_thresholds_.tolist(), "y": fitted.y_thresholds_.tolist()}


def fit(method: str, labels, scores) -> dict:
    """One calibration map, fitted on (labels, scores), as the plain dict a checkpoint stores."""
    if method == "temperature":
        return {"method": "temperature", "temperature": fit_temperature(labels, scores)}
    if method == "platt":
        return fit_platt(labels, scores)
    if method == "isotonic":
        return fit_isotonic(labels, scores)
    raise ValueError(f"calibration: unknown method {method!r} (methods: {', '.join(CALIBRATIONS)})")


def apply(calibration: dict | None, scores) -> np.ndarray:
    """The probabilities a fitted map (`fit`'s dict) gives scores; None leaves them as they are."""
    from scipy.special import expit

    scores = np.asarray(scores, np.float64)
    if calibration is None:
        return scores
    method = calibration.get("method")
    if method == "temperature":
        return calibrated(scores, calibration["temperature"])
    if method == "platt":
        return expit(calibration["slope"] * logits(scores) + calibration["bias"])
    if method == "isotonic":
        return np.interp(scores, calibration["x"], calibration["y"])
    raise ValueError(f"calibration: unknown method {method!r} (methods: {', '.join(CALIBRATIONS)})")


def checked(calibration) -> dict | None:
    """A checkpoint's stored map, or None (and a warning) when it is not one `apply` can use."""
    import warnings

    if calibration is None:
        return None
    try:
        values = apply(calibration, np.array([0.1, 0.5, 0.9]))
        if not np.isfinite(values).all():
            raise ValueError("it gives non-finite probabilities")
    except (AttributeError, KeyError, TypeError, ValueError) as error:
        warnings.warn(
            f"the checkpoint's calibration {calibration!r} cannot be used ({error}): ignored", stacklevel=2
        )
        return None
    return calibration


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


def ece_interval(labels, probabilities, families=None, n_resamples: int = 1000, seed: int = 0) -> dict:
    """The ECE of `probabilities` with a 95 % interval (fbifpn.stats' BCa over families, or over
    videos). Each bin's share of |sum(label - probability)| is weighed by how often a resample drew
    each video's family, so every resample bins exactly as `expected_calibration_error` does. ECE is
    biased upward (noise only adds to |gap|), and BCa corrects for that bias, so the interval can
    leave a small estimate (a map fitted on these very videos) just outside it."""
    from fbifpn.stats import bootstrap_interval, check_resamples, families_of

    labels, p = np.asarray(labels, np.float64), np.asarray(probabilities, np.float64)
    estimate = expected_calibration_error(labels, p)
    check_resamples(n_resamples)
    units = families_of(labels, families)
    bins = np.searchsorted(np.linspace(0, 1, BINS + 1)[1:-1], p)
    one_hot = np.eye(BINS)[bins]  # (videos, bins)
    gap = (labels - p)[:, None] * one_hot

    def statistic(counts: np.ndarray) -> np.ndarray:
        weights = counts[:, units.codes]  # (batch, videos)
        return np.abs(weights @ gap).sum(axis=1) / weights.sum(axis=1)

    low, high = bootstrap_interval(units, statistic, n_resamples, seed)
    return {"ece": estimate, "low": low, "high": high, "unit": units.unit, "units": units.n}


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


def video_probabilities(frames: pd.DataFrame, calibration: dict | None) -> pd.DataFrame:
    """`video_scores` of `frames` with each video's calibrated `probability`. A temperature acts on
    frame logits (where it was fitted), so the video's probability is the mean of its frames';
    Platt and isotonic maps are fitted on val videos' scores and act on the video's score."""
    from fbifpn.metrics import video_scores

    if calibration is not None and calibration["method"] == "temperature":
        framed = frames.assign(probability=apply(calibration, frames["score"]))
        return video_scores(framed).merge(video_scores(framed, "probability")[["video_id", "probability"]])
    videos = video_scores(frames)
    return videos.assign(probability=apply(calibration, videos["score"]))


def fitted_maps(val: pd.DataFrame, temperature: float) -> dict[str, dict]:
    """The maps notebook 07 compares, fitted on the val frame scores `val`: the checkpoint's
    `temperature`, and Platt scaling and isotonic regression fitted on val's video scores."""
    from fbifpn.metrics import video_scores

    videos = video_scores(val)
    return {
        "temperature": {"method": "temperature", "temperature": temperature},
        "platt": fit_platt(videos["label"], videos["score"]),
        "isotonic": fit_isotonic(videos["label"], videos["score"]),
    }


def travel(
    val: pd.DataFrame,
    tests: dict[str, pd.DataFrame],
    maps: dict[str, dict],
    threshold: float,
    n_resamples: int = 1000,
    seed: int = 0,
) -> pd.DataFrame:
    """What calibration and the val threshold are worth on each set, from frame scores (the `scores.csv`
    of an evaluation): one row for val, then one per test set. The video ECE raw and under each map
    of `maps` (fitted on val: on the val row it is the fit's own, optimistic), each with its 95 %
    interval over families, and the video NLL; at video level, the accuracy, false-positive and
    true-positive rates at the val-chosen `threshold` next to those at the threshold the same rule
    (Youden's J) would have chosen on that set itself, an oracle shown for comparison only."""
    from fbifpn.metrics import choose_threshold, video_families, video_scores

    rows = []
    for name, frames in {"val": val, **tests}.items():
        videos = video_scores(frames)
        at_val = rates_at(videos["label"], videos["score"], threshold)
        own = rates_at(videos["label"], videos["score"], choose_threshold(videos["label"], videos["score"]))
        row = {"set": name, "frames": len(frames), "videos": len(videos)}
        for label, calibration in {"raw": None, **maps}.items():
            p = video_probabilities(frames, calibration)["probability"]
            ece = ece_interval(videos["label"], p, video_families(videos), n_resamples, seed)
            row |= {f"video_ece_{label}": ece["ece"], f"video_ece_{label}_low": ece["low"]}
            row |= {f"video_ece_{label}_high": ece["high"], f"video_nll_{label}": nll(videos["label"], p)}
        row["interval_unit"] = ece["unit"]
        row |= {f"{k}_at_val_threshold": v for k, v in at_val.items()}
        row |= {f"{k}_at_own_threshold": v for k, v in own.items()}
        rows.append(row)
    return pd.DataFrame(rows)


def ece_table(travelled: pd.DataFrame) -> pd.DataFrame:
    """`travel`'s video ECE columns as a reading table: one row per set, one column per map
    (raw first), each "ECE [low, high]"."""
    labels = [
        c[len("video_ece_") :] for c in travelled.columns if c.startswith("video_ece_") and c.count("_") == 2
    ]
    table = travelled[["set", "videos"]].copy()
    for label in labels:
        table[label] = [
            f"{r[f'video_ece_{label}']:.3f} [{r[f'video_ece_{label}_low']:.3f}, {r[f'video_ece_{label}_high']:.3f}]"
            for _, r in travelled.iterrows()
        ]
    return table
