"""Paired tests of video AUC that respect how the data is made (shared/docs/style.md, statistics).

- **Families.** Videos made from one source (a scene, an FF++ target, a celebrity, a DFDC original)
  share their difficulty, so they are not independent draws. Intervals resample whole families and
  permutations swap the two models on whole families. Without families every video is its own.
- **Seeds.** A claim about a method, not about one trained network, has the training seed in its
  unit: `compare_auc_over_seeds`.
- **Families of rows.** Rows tested together are adjusted together: `holm`.

AUC is the Mann-Whitney statistic, ties counted one half. A resample is a vector of family counts.
With few families (most test sets here), every AUC a resample or a swap can give is a quadratic
form over family-level sums of pairwise comparisons (`comparison_sums`), computed once. With many,
a bootstrap resample only repeats videos, so each model's scores are sorted once and weighted by
their families' counts (`WeightedAUC`), and a swap's mixed scores are ranked afresh (SciPy's
`rankdata`). Either way 9999 resamples are a few matrix products, with no scikit-learn checks.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

ALPHA = 0.05
MIN_RESAMPLES = 100  # below this the floor of p, 1/(n+1), is itself near 0.01
BATCH = 500  # resamples scored at once: (BATCH, videos) arrays per condition stay small


def check_resamples(n_resamples: int, what: str = "n_resamples") -> int:
    if int(n_resamples) < MIN_RESAMPLES:
        raise ValueError(
            f"{what}: {n_resamples} resamples are too few (at least {MIN_RESAMPLES}; the study uses "
            "9999): with n resamples no p can fall below 1/(n+1)"
        )
    return int(n_resamples)


# --------------------------------------------------------------------------- families


@dataclass(frozen=True)
class Families:
    """The resampling units of one test set: each video's family index and, per family, its number
    of fake and real videos."""

    codes: np.ndarray  # (videos,) index of each video's family
    fakes: np.ndarray  # (families,) fake videos in each family
    reals: np.ndarray  # (families,) real videos in each family
    unit: str  # "family" or "video"

    @property
    def n(self) -> int:
        return len(self.fakes)

    def strata(self) -> list[np.ndarray]:
        """Family indices grouped by what a family holds (fakes and reals, only fakes, only reals).
        Resampling within each keeps both classes in every resample, as resampling reals and fakes
        separately did for single videos."""
        kind = 2 * (self.fakes > 0) + (self.reals > 0)
        return [np.flatnonzero(kind == k) for k in (3, 2, 1) if (kind == k).any()]

    def describe(self) -> str:
        if self.unit == "video":
            return f"{len(self.codes)} videos, each its own unit"
        return f"{self.n} families of {len(self.codes)} videos"


def families_of(labels, families=None) -> Families:
    """`labels` (0 real, 1 fake, one per video) with their families (one id per video, any
    hashable), or every video its own family when `families` is None."""
    labels = np.asarray(labels)
    if families is None:
        codes, unit = np.arange(len(labels)), "video"
    else:
        import pandas as pd

        ids = pd.Series(np.asarray(families, dtype=object))
        if len(ids) != len(labels):
            raise ValueError(f"families: {len(ids)} family ids for {len(labels)} videos; one per video")
        missing = ids.isna() | (ids.astype(str).str.strip() == "")
        if missing.any():
            raise ValueError(
                f"families: {int(missing.sum())} of {len(ids)} videos have no family (the first at "
                f"position {int(missing.to_numpy().argmax())}); every video needs one"
            )
        codes, unit = pd.factorize(ids)[0], "family"
    count = int(codes.max()) + 1 if len(codes) else 0
    fakes = np.bincount(codes, weights=labels == 1, minlength=count).astype(int)
    reals = np.bincount(codes, weights=labels == 0, minlength=count).astype(int)
    return Families(codes, fakes, reals, unit)


def _check_pair(labels, scores_a, scores_b, leading: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels and two score arrays of shape (videos,) or, with `leading` = 1, (conditions, videos)
    (one condition may come as a vector); an error naming what is wrong otherwise."""
    labels = np.asarray(labels)
    a, b = np.asarray(scores_a, float), np.asarray(scores_b, float)
    if leading and a.ndim == 1:
        a, b = a[None], b[None]
    if not (a.shape == b.shape and a.ndim == leading + 1 and a.shape[-1] == len(labels)):
        raise ValueError(
            f"scores and labels differ in length: {len(labels)} labels, scores of shape "
            f"{np.shape(scores_a)} and {np.shape(scores_b)}; one score per video (under each condition)"
        )
    if set(np.unique(labels)) != {0, 1}:
        raise ValueError("labels must hold both 0 (real) and 1 (fake), and nothing else")
    if np.isnan(a).any() or np.isnan(b).any():
        raise ValueError("scores hold NaN: every video needs a score from both models")
    return labels, a, b


# --------------------------------------------------------------------------- AUC, vectorised


def rank_auc(labels, scores, axis: int = -1) -> np.ndarray:
    """AUC of every row of `scores` (videos along `axis`): (rank sum of the fakes - its minimum) /
    (fakes * reals), with tied scores sharing their mean rank, which is roc_auc_score exactly."""
    from scipy.stats import rankdata

    fake = np.asarray(labels) == 1
    n_fake, n_real = int(fake.sum()), int((~fake).sum())
    ranks = np.moveaxis(rankdata(scores, axis=axis), axis, -1)
    return (ranks[..., fake].sum(-1) - n_fake * (n_fake + 1) / 2) / (n_fake * n_real)


class WeightedAUC:
    """The AUC of one score vector under many weightings of its videos (a bootstrap resample
    repeats videos, it never moves a score): sorted once, tie groups summed per weighting."""

    def __init__(self, labels, scores):
        order = np.argsort(scores, kind="stable")
        sorted_scores = np.asarray(scores)[order]
        self.order = order
        self.starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])
        self.fake = (np.asarray(labels) == 1)[order]

    def __call__(self, weights: np.ndarray) -> np.ndarray:
        """`weights` (resamples, videos) -> (resamples,) AUCs."""
        w = weights[:, self.order]
        fakes = np.add.reduceat(np.where(self.fake, w, 0.0), self.starts, axis=1)
        reals = np.add.reduceat(np.where(self.fake, 0.0, w), self.starts, axis=1)
        below = np.cumsum(reals, axis=1) - reals / 2  # reals scored lower, ties counting one half
        return (fakes * below).sum(1) / (fakes.sum(1) * reals.sum(1))


def _counts(families: Families, drawn: list[np.ndarray]) -> np.ndarray:
    """How often each family was drawn, per resample of a batch (batch, families). `drawn` holds,
    per stratum, the family indices drawn (batch, k); a stratum's indices are positions in it."""
    batch, count = drawn[0].shape[0], families.n
    picked = np.concatenate(
        [members[positions.astype(int)] for members, positions in zip(families.strata(), drawn, strict=True)],
        axis=1,
    )
    flat = (picked + count * np.arange(batch)[:, None]).ravel()  # one bincount for the whole batch
    return np.bincount(flat, minlength=batch * count).reshape(batch, count).astype(float)


def _batched(statistic):
    """A statistic of per-stratum index arrays with any leading shape (SciPy's resamples and its
    jackknife broadcast them), computed on them flattened to one batch axis."""

    def wrapped(*drawn, axis=-1):
        shape = np.broadcast_shapes(*(d.shape[:-1] for d in drawn))
        flat = [np.broadcast_to(d, (*shape, d.shape[-1])).reshape(-1, d.shape[-1]) for d in drawn]
        return statistic(flat).reshape(shape)

    return wrapped


def bootstrap_interval(families: Families, statistic, n_resamples: int, seed: int) -> tuple[float, float]:
    """SciPy's BCa interval, resampling families within each stratum; `statistic` maps family
    counts (batch, families) to (batch,) values (`counts[:, families.codes]` weighs the videos). Where BCa is undefined because every resample gives
    the same value (a perfect detector's AUC is 1 in all of them), the percentile interval of the
    same resamples, which is then that value. NaN when a stratum has one family only."""
    from scipy import stats

    strata = families.strata()
    if any(len(s) < 2 for s in strata):  # one family of its kind (one video of a class): no interval
        return (float("nan"), float("nan"))
    data = tuple(np.arange(len(s), dtype=float) for s in strata)
    # AUCs are ratios of counts, so resamples often tie with the estimate; rounded, those ties stay
    # ties whatever order the float sums ran in, and BCa's bias count (share below the estimate)
    # does not turn on the last bits
    stat = _batched(lambda drawn: np.round(statistic(_counts(families, drawn)), 12))
    rng = np.random.default_rng(seed)
    kwargs = dict(n_resamples=n_resamples, vectorized=True, batch=BATCH, rng=rng, paired=False)
    with warnings.catch_warnings():  # BCa's degenerate case is handled below, not shown
        warnings.simplefilter("ignore", RuntimeWarning)
        warnings.simplefilter("ignore", stats.DegenerateDataWarning)
        result = stats.bootstrap(data, stat, method="BCa", **kwargs)
    ci = result.confidence_interval
    if not np.isfinite([ci.low, ci.high]).all():
        ci = stats.bootstrap(
            data, stat, method="percentile", **(kwargs | {"n_resamples": 0}), bootstrap_result=result
        ).confidence_interval
    return (float(ci.low), float(ci.high))


def bootstrap_auc(labels, scores, families=None, n_resamples: int = 1000, seed: int = 0) -> dict:
    """A 95 % interval of one model's video AUC that resamples families (or videos)."""
    labels, scores, _ = _check_pair(labels, scores, scores, leading=0)
    units = families_of(labels, families)
    check_resamples(n_resamples)
    auc_of = WeightedAUC(labels, scores)
    low, high = bootstrap_interval(units, lambda counts: auc_of(counts[:, units.codes]), n_resamples, seed)
    return {"auc": float(rank_auc(labels, scores)), "low": low, "high": high, **_unit(units)}


def _unit(units: Families) -> dict:
    return {"unit": units.unit, "units": units.n, "n": len(units.codes)}


# --------------------------------------------------------------------------- one pair of models


def _ranked(x: np.ndarray) -> np.ndarray:
    """Each model's scores as their ranks within each condition (over n): every AUC stays as it is,
    and two models on different scales (probabilities against a beta-mixed score) become
    exchangeable under the null, where swapping raw scores would mix the scales."""
    from scipy.stats import rankdata

    return rankdata(x, axis=-1) / x.shape[-1]


def _swapped_delta(labels, a: np.ndarray, b: np.ndarray, units: Families):
    """The statistic of the family permutation: |mean AUC(a') - mean AUC(b')| where a' takes b's
    scores on every family whose entry was swapped. SciPy permutes paired samples (x, y) = (f, f + F);
    a family was swapped where x holds an index >= F. Few families: `_family_sums`' quadratic forms;
    many: each mixed score vector ranked afresh."""
    count = units.n
    sums = _family_sums(labels, a, b, units) if _sums_affordable(units, len(a)) else None

    def statistic(x, y, axis=-1):
        swapped = np.asarray(x).reshape(-1, count) >= count  # (batch, families)
        if sums is not None:
            delta = sums(swapped.astype(float))
        else:
            by_video = swapped[:, units.codes][:, None, :]  # (batch, 1, videos)
            first, second = np.where(by_video, b, a), np.where(by_video, a, b)  # (batch, conditions, videos)
            delta = (rank_auc(labels, first) - rank_auc(labels, second)).mean(-1)
        return np.abs(delta).reshape(np.shape(x)[:-1])

    return statistic


FAMILY_SUMS_UP_TO = 300  # families; above it the (batch, families, families) products cost more than ranks


def comparison_sums(labels, x: np.ndarray, y: np.ndarray, units: Families) -> np.ndarray:
    """K[F, G]: the comparisons (1 if greater, 1/2 if tied) of x's fake scores in family F with y's
    real scores in family G, summed, and averaged over the conditions (x, y: (conditions, videos)).
    Model x's AUC under family counts c is c'K_xx c / ((c . fakes)(c . reals))."""
    from scipy import sparse

    fake = np.asarray(labels) == 1
    n_fake, n_real = int(fake.sum()), int((~fake).sum())
    rows = sparse.csr_matrix((np.ones(n_fake), (units.codes[fake], np.arange(n_fake))), (units.n, n_fake))
    cols = sparse.csr_matrix((np.ones(n_real), (np.arange(n_real), units.codes[~fake])), (n_real, units.n))
    total = np.zeros((units.n, units.n))
    for xc, yc in zip(x, y, strict=True):
        f, r = xc[fake][:, None], yc[~fake][None, :]
        total += rows @ ((f > r) + 0.5 * (f == r)) @ cols
    return total / len(x)


def _sums_affordable(units: Families, conditions: int) -> bool:
    """Whether family-level sums beat ranking: few families, and pairs of videos that fit in memory."""
    return units.n <= FAMILY_SUMS_UP_TO and conditions * units.fakes.sum() * units.reals.sum() <= 5e7


def _family_sums(labels, a: np.ndarray, b: np.ndarray, units: Families):
    """delta as a function of the swapped families, exactly: with K_xy from `comparison_sums`, a
    swap vector m (u = 1 - m) gives delta * fakes * reals = u'Du - m'Dm + u'Em - m'Eu, where
    D = K_aa - K_bb and E = K_ab - K_ba."""
    d = comparison_sums(labels, a, a, units) - comparison_sums(labels, b, b, units)
    e = comparison_sums(labels, a, b, units) - comparison_sums(labels, b, a, units)
    scale = float(units.fakes.sum() * units.reals.sum())

    def delta(m):  # m: (batch, families), 1 where swapped
        u = 1 - m
        return (
            ((u @ d) * u).sum(1) - ((m @ d) * m).sum(1) + ((u @ e) * m).sum(1) - ((m @ e) * u).sum(1)
        ) / scale

    return delta


def _resampled_delta(labels, a: np.ndarray, b: np.ndarray, units: Families):
    """mean AUC(a) - mean AUC(b) over the conditions (and seeds: a, b of shape (..., videos)) as a
    function of family counts (batch, families): a quadratic form over `comparison_sums` for few
    families, else each video weighted by its family's count."""
    a2, b2 = a.reshape(-1, a.shape[-1]), b.reshape(-1, b.shape[-1])
    if _sums_affordable(units, len(a2)):
        d = comparison_sums(labels, a2, a2, units) - comparison_sums(labels, b2, b2, units)
        fakes, reals = units.fakes.astype(float), units.reals.astype(float)

        def by_families(c):
            return ((c @ d) * c).sum(1) / ((c @ fakes) * (c @ reals))

        return by_families
    pairs = [(WeightedAUC(labels, x), WeightedAUC(labels, y)) for x, y in zip(a2, b2, strict=True)]

    def by_videos(c):
        weights = c[:, units.codes]
        return np.mean([x(weights) - y(weights) for x, y in pairs], axis=0)

    return by_videos


def _permutation_p(labels, a, b, units: Families, n_resamples: int, seed: int) -> float:
    """Two-sided p of the paired permutation test that swaps the two models on whole families:
    (1 + swaps at least as extreme) / (1 + n_resamples), so its floor is 1/(n+1) (SciPy's
    randomised `permutation_test`; exact when 2^families <= n_resamples). The null distribution
    is symmetric (swapping every family negates delta), so |delta| is compared one-sided."""
    from scipy import stats

    if units.n < 2:  # one family: its only swap negates delta, |delta| is unchanged, p is 1
        return 1.0
    index = np.arange(units.n, dtype=float)
    test = stats.permutation_test(
        (index, index + units.n),
        _swapped_delta(labels, a, b, units),
        permutation_type="samples",
        alternative="greater",
        n_resamples=n_resamples,
        vectorized=True,
        batch=BATCH,
        rng=np.random.default_rng(seed),
    )
    return float(test.pvalue)


def compare_auc(labels, scores_a, scores_b, *, families=None, n_resamples: int = 2000, seed: int = 0) -> dict:
    """Video AUC of model a minus that of model b, on the same videos (one entry per video, in the
    same order in both arrays, and in `families`). Scores of shape (conditions, videos), the same
    videos under several conditions (the levels of a perturbation, say), compare the mean AUC over
    the conditions.

    `low`, `high`: a 95 % paired bootstrap interval (SciPy's BCa) that resamples families, the same
    draw for both models and every condition, within strata that keep both classes. `p`: a
    two-sided paired permutation test that swaps the two models' scores on whole families (under
    every condition at once), each model's scores first replaced by their ranks (`_ranked`). With
    identical scores delta is 0 and p is 1. `unit` names what was resampled; `agree` says whether
    the interval excludes 0 exactly when p < 0.05 (two procedures, which can disagree near 0.05)."""
    labels, a, b = _check_pair(labels, scores_a, scores_b, leading=1)
    units = families_of(labels, families)
    check_resamples(n_resamples)
    if np.array_equal(a, b):
        return {"delta": 0.0, "low": 0.0, "high": 0.0, "p": 1.0, "agree": True, **_unit(units)}
    a, b = _ranked(a), _ranked(b)  # ties stay ties: AUCs unchanged
    delta = float((rank_auc(labels, a) - rank_auc(labels, b)).mean())
    p = _permutation_p(labels, a, b, units, n_resamples, seed)
    low, high = bootstrap_interval(units, _resampled_delta(labels, a, b, units), n_resamples, seed)
    return {"delta": delta, "low": low, "high": high, "p": p, "agree": _agree(low, high, p), **_unit(units)}


def _agree(low: float, high: float, p: float) -> bool:
    if not np.isfinite([low, high]).all():
        return True  # no interval to disagree with
    return bool((p < ALPHA) == (low > 0 or high < 0))


# --------------------------------------------------------------------------- across training seeds


def compare_auc_over_seeds(
    labels, scores_a, scores_b, *, families=None, n_resamples: int = 9999, seed: int = 0
) -> dict:
    """The mean over training seeds of AUC(a_s) - AUC(b_s), each seed's two models scored on the
    same videos: scores of shape (seeds, videos), or (seeds, conditions, videos).

    Its standard error adds the two sources a claim about the method must survive: the spread of
    the per-seed deltas (var over seeds / S: another training run gives another delta) and the
    sampling of the test families (the family bootstrap's variance of the seed-mean delta: other
    test videos give another delta). The interval and the two-sided p come from one procedure:
    delta / se against Student's t with Welch-Satterthwaite degrees of freedom (S - 1 for the seed
    term, families - 1 for the family term), so the interval excludes 0 exactly when p < 0.05.
    The two terms overlap where seeds also differ video by video (that noise is in both), which makes
    the test conservative there. Simulated with a per-seed shift and no such noise
    (benchmarks/compare_auc_calibration.py), its type I error at 0.05 is 0.068 +- 0.008 with 3
    seeds and 0.050 +- 0.007 with 5. A bootstrap over the seeds treats their spread as the
    population's: with 3 seeds of one sign and little test-set noise it has nothing left to
    resample, where t with 2 degrees of freedom stays wide (README, Statistics)."""
    from scipy import stats

    labels = np.asarray(labels)
    a, b = np.asarray(scores_a, float), np.asarray(scores_b, float)
    if a.ndim == 2:
        a, b = a[:, None], b[:, None]
    if a.ndim != 3 or a.shape != b.shape:
        raise ValueError(
            f"seed-level test: scores of shape {np.shape(scores_a)} and {np.shape(scores_b)}; expected "
            "the same (seeds, videos) or (seeds, conditions, videos) for both models"
        )
    seeds = a.shape[0]
    if seeds < 2:
        raise ValueError(
            f"seed-level test: {seeds} seed; it needs at least two seeds of each model (the spread "
            "between seeds is what it measures)"
        )
    for s in range(seeds):
        _check_pair(labels, a[s], b[s], leading=1)
    units = families_of(labels, families)
    check_resamples(n_resamples)
    a, b = _ranked(a), _ranked(b)
    per_seed = (rank_auc(labels, a) - rank_auc(labels, b)).mean(-1)  # (seeds,)
    delta = float(per_seed.mean())
    between = float(per_seed.var(ddof=1) / seeds)
    within = _family_variance(labels, a, b, units, n_resamples, seed)
    se = float(np.sqrt(between + within))
    out = {"delta": delta, "se": se, "per_seed": [float(d) for d in per_seed], "seeds": seeds, **_unit(units)}
    if not se > 0:  # no test-set term to estimate (one family of a kind), or nothing varies at all
        p = 1.0 if delta == 0 else float("nan")
        return out | {"low": float("nan"), "high": float("nan"), "p": p, "df": float("nan")}
    terms = [(between, seeds - 1), (within, max(units.n - 1, 1))]
    df = (between + within) ** 2 / sum(v**2 / d for v, d in terms if v > 0)
    half = float(stats.t.ppf(1 - ALPHA / 2, df)) * se
    p = float(2 * stats.t.sf(abs(delta) / se, df))
    return out | {"low": delta - half, "high": delta + half, "p": p, "df": float(df)}


def _family_variance(labels, a, b, units: Families, n_resamples: int, seed: int) -> float:
    """The bootstrap variance, over resampled families, of the seed-mean delta (NaN where a stratum
    holds one family: as `_bootstrap_interval`, nothing to resample)."""
    strata = units.strata()
    if any(len(s) < 2 for s in strata):
        return float("nan")
    delta_of = _resampled_delta(labels, a, b, units)
    rng = np.random.default_rng(seed)
    values = []
    for start in range(0, n_resamples, BATCH):
        batch = min(BATCH, n_resamples - start)
        drawn = [rng.integers(0, len(s), (batch, len(s))) for s in strata]
        values.append(delta_of(_counts(units, drawn)))
    return float(np.var(np.concatenate(values), ddof=1))


# --------------------------------------------------------------------------- families of rows


def holm(pvalues) -> np.ndarray:
    """Holm's step-down adjustment of a family of p values (statsmodels), NaN left out of the
    family and kept as NaN."""
    from statsmodels.stats.multitest import multipletests

    p = np.asarray(pvalues, float)
    adjusted = np.full_like(p, np.nan)
    known = ~np.isnan(p)
    if known.any():
        adjusted[known] = multipletests(p[known], alpha=ALPHA, method="holm")[1]
    return adjusted


def format_p(p: float, n_resamples: int | None = None) -> str:
    """p for a table: `< 1/(n+1)` at a permutation test's floor, else two or more significant digits."""
    if p != p:
        return "-"
    if p == 0:
        return "0"
    if n_resamples and p <= 1 / (n_resamples + 1) * (1 + 1e-9):
        return f"< 1/{n_resamples + 1}"
    if p >= 0.01:
        return f"{p:.3f}"
    return f"{p:.4f}" if p >= 0.0001 else f"{p:.1e}"


def verdict(adjusted_p: float, family: int) -> str:
    if adjusted_p != adjusted_p:
        return "no test"
    if adjusted_p < ALPHA:
        return (
            f"significant at {ALPHA:g} (Holm over {family} rows)"
            if family > 1
            else f"significant at {ALPHA:g}"
        )
    return "not significant"
