"""Calibration of the paired AUC tests of `fbifpn.stats` on simulated test sets whose AUCs are known.
Simulated data only; nothing here reads a dataset or a trained model.

Every score is `label * (mu_x + u) + c + e` for model x (label 1 fake, 0 real), with
    c ~ N(0, 1)  per video, shared by both models (two detectors on the same videos are correlated),
    e ~ N(0, 1)  per video and model,
    u            a shift of the fakes only (0 where a scenario has none).
Reals and fakes are then independent draws, so the population AUC of model x is
P(fake > real) = Phi(mu_x / sqrt(var(u) + 4)) in closed form, and the true delta is known.

1. clustered: 50 scenes (families), each 1 real + 4 fakes (250 videos, like synth-ff). u = u_{x,scene}
   ~ N(0, tau^2), tau = 1, the difficulty a scene's fakes share, drawn independently for each model.
   null: mu_a = mu_b = 2 (AUC 0.814). Type I error at 0.05 of `compare_auc` (its permutation p, and
   whether its BCa interval excludes 0) with families=scene and with families=None (by video).
   alternative: mu_a = 2.8, mu_b = 2 (true delta 0.080). Coverage of the true delta by the 95 %
   interval, and power, by scene and by video.
2. independent: 100 reals + 100 fakes, no u. null: mu_a = mu_b = 1.5 (AUC 0.773); alternative: mu_a = 2,
   mu_b = 1.5 (true delta 0.068). Power, type I error and coverage of `compare_auc` (families=None)
   and of DeLong's test for two correlated AUCs (DeLong, DeLong & Clarke-Pearson 1988).
3. seeds: the clustered null of 1, and each of S training seeds (S = 3, 5) adds g_{x,s} ~ N(0, 0.15^2)
   to model x's fake scores (a seed that makes one model better or worse on every fake; c, e and u
   are the test set's and stay fixed over seeds). The method-level null holds (E g = 0 for both).
   Type I error of `compare_auc_over_seeds` (families=scene); for contrast, the pooled test (each
   video's score averaged over seeds, one `compare_auc` with families: a test of the S-seed ensemble
   on these videos) and a naive two-level percentile bootstrap (seeds with replacement, then scenes;
   p = 2 min(share of deltas <= 0, share >= 0)).

The alternatives' differences were fixed before any test was run, from a pilot of 3000 simulated
sets that measured only the sampling sd of the sample delta under the null (0.040 clustered, 0.034
independent): the true delta is about twice that sd (power near 0.5 for an ideal z-test).
Each rate comes with its binomial standard error sqrt(r (1 - r) / trials).

    python benchmarks/compare_auc_calibration.py [--trials 1000] [--resamples 1000] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import scipy
from scipy.stats import norm

from fbifpn import stats
from fbifpn.provenance import cpu_name, git_commit

ALPHA = 0.05
MASTER_SEED = 20261203
TARGETS = {"type_I": (0.03, 0.07), "coverage": (0.92, 0.97), "min_trials": 1000}
CLUSTERED = {
    "scenes": 50,
    "reals_per_scene": 1,
    "fakes_per_scene": 4,
    "tau": 1.0,
    "shared_sd": 1.0,
    "noise_sd": 1.0,
    "mu_null": 2.0,
    "mu_a_alt": 2.8,
    "mu_b_alt": 2.0,
}
INDEPENDENT = {
    "reals": 100,
    "fakes": 100,
    "shared_sd": 1.0,
    "noise_sd": 1.0,
    "mu_null": 1.5,
    "mu_a_alt": 2.0,
    "mu_b_alt": 1.5,
}
SEEDS = {"seeds": [3, 5], "sigma_seed": 0.15, "base": "clustered null (mu_a = mu_b = 2, tau = 1)"}


# --------------------------------------------------------------------------- simulation


def true_auc(mu: float, tau: float = 0.0, shared_sd: float = 1.0, noise_sd: float = 1.0) -> float:
    """P(fake > real): fake - real ~ N(mu, tau^2 + 2 shared^2 + 2 noise^2) (independent draws)."""
    return float(norm.cdf(mu / np.sqrt(tau**2 + 2 * shared_sd**2 + 2 * noise_sd**2)))


def clustered_set():
    """Labels and scene ids of the clustered test set: scene k holds 1 real then 4 fakes."""
    p = CLUSTERED
    per = [0] * p["reals_per_scene"] + [1] * p["fakes_per_scene"]
    return np.tile(per, p["scenes"]), np.repeat(np.arange(p["scenes"]), len(per))


def clustered_scores(rng, mu_a: float, mu_b: float) -> tuple[np.ndarray, np.ndarray]:
    labels, scene = clustered_set()
    p = CLUSTERED
    shared = rng.normal(0, p["shared_sd"], len(labels))
    out = []
    for mu in (mu_a, mu_b):
        u = rng.normal(0, p["tau"], p["scenes"])[scene]  # each model's own difficulty of a scene
        out.append(labels * (mu + u) + shared + rng.normal(0, p["noise_sd"], len(labels)))
    return out[0], out[1]


def independent_set():
    return np.repeat([0, 1], [INDEPENDENT["reals"], INDEPENDENT["fakes"]])


def independent_scores(rng, mu_a: float, mu_b: float) -> tuple[np.ndarray, np.ndarray]:
    labels, p = independent_set(), INDEPENDENT
    shared = rng.normal(0, p["shared_sd"], len(labels))
    a, b = (labels * mu + shared + rng.normal(0, p["noise_sd"], len(labels)) for mu in (mu_a, mu_b))
    return a, b


def seed_scores(rng, seeds: int) -> tuple[np.ndarray, np.ndarray]:
    """(seeds, videos) scores of both models: the clustered null plus a per-seed shift of the fakes."""
    labels, _ = clustered_set()
    mu = CLUSTERED["mu_null"]
    a, b = clustered_scores(rng, mu, mu)
    shift = rng.normal(0, SEEDS["sigma_seed"], (2, seeds, 1))
    return a + labels * shift[0], b + labels * shift[1]


# --------------------------------------------------------------------------- tests


def delong(labels, a, b) -> dict:
    """DeLong, DeLong & Clarke-Pearson (1988): the paired z test of two correlated AUCs from the
    placement values (structural components). Written here because no well-kept Python library
    provides it (scikit-learn and SciPy do not; statsmodels neither). Checked in `check_delong`."""
    fake = np.asarray(labels) == 1
    x = np.stack([a, b])
    pos, neg = x[:, fake][:, :, None], x[:, ~fake][:, None, :]
    psi = (pos > neg) + 0.5 * (pos == neg)  # (models, fakes, reals)
    auc = psi.mean((1, 2))
    v10, v01 = psi.mean(2), psi.mean(1)  # each fake's share of reals below it; each real's of fakes above
    contrast = np.array([1.0, -1.0])
    var = contrast @ np.cov(v10) @ contrast / fake.sum() + contrast @ np.cov(v01) @ contrast / (~fake).sum()
    delta, se = float(auc[0] - auc[1]), float(np.sqrt(var))
    p = float(2 * norm.sf(abs(delta) / se)) if se > 0 else float(delta == 0)
    half = norm.ppf(1 - ALPHA / 2) * se
    return {"delta": delta, "se": se, "p": p, "low": delta - half, "high": delta + half}


def check_delong() -> None:
    """A case worked by hand. Fakes a = (0.9, 0.4), b = (0.8, 0.7); reals a = (0.5, 0.1), b = (0.6, 0.2).
    AUC a = 3/4, b = 1. Placements a: fakes (1, 1/2), reals (1/2, 1); b: all 1. Var = var(1, 1/2)/2
    + var(1/2, 1)/2 = 0.125/2 + 0.125/2 = 0.125, z = -0.25 / sqrt(0.125), p = 2 Phi(-0.7071) = 0.4795."""
    labels = np.array([1, 1, 0, 0])
    out = delong(labels, np.array([0.9, 0.4, 0.5, 0.1]), np.array([0.8, 0.7, 0.6, 0.2]))
    assert abs(out["delta"] + 0.25) < 1e-12 and abs(out["se"] ** 2 - 0.125) < 1e-12, out
    assert abs(out["p"] - 2 * norm.cdf(-0.25 / np.sqrt(0.125))) < 1e-12 and abs(out["p"] - 0.4795) < 1e-4, out


def naive_seed_bootstrap_p(labels, a, b, families, n_resamples: int, seed: int) -> float:
    """Two-level percentile bootstrap: draw S seeds with replacement and the families (within the
    strata `compare_auc` uses), the mean over drawn seeds of the per-seed delta under the drawn
    families; p = 2 min(share <= 0, share >= 0). It treats the S seeds' spread as the population's."""
    rng = np.random.default_rng(seed)
    units = stats.families_of(labels, families)
    drawn = [
        members[rng.integers(0, len(members), (n_resamples, len(members)))] for members in units.strata()
    ]
    picked = np.concatenate(drawn, axis=1)
    counts = np.stack([np.bincount(row, minlength=units.n) for row in picked])
    weights = counts[:, units.codes].astype(float)  # (resamples, videos)
    per_seed = np.stack(
        [
            stats.WeightedAUC(labels, x)(weights) - stats.WeightedAUC(labels, y)(weights)
            for x, y in zip(a, b, strict=True)
        ]
    )  # (seeds, resamples)
    which = rng.integers(0, len(a), (n_resamples, len(a)))
    deltas = per_seed[which, np.arange(n_resamples)[:, None]].mean(1)
    return float(min(1.0, 2 * min(np.mean(deltas <= 0), np.mean(deltas >= 0))))


# --------------------------------------------------------------------------- trials


def _rng(scenario: int, trial: int):
    return np.random.default_rng([MASTER_SEED, scenario, trial])


def _summary(out: dict, truth: float) -> dict:
    return {
        "p": out["p"],
        "excludes_0": bool(out["low"] > 0 or out["high"] < 0),
        "covers": bool(out["low"] <= truth <= out["high"]),
        "delta": out["delta"],
        "agree": bool(out.get("agree", True)),
    }


def clustered_trial(job) -> dict:
    alternative, trial, resamples = job
    mu_a, mu_b = (
        (CLUSTERED["mu_a_alt"], CLUSTERED["mu_b_alt"]) if alternative else (CLUSTERED["mu_null"],) * 2
    )
    a, b = clustered_scores(_rng(1 + alternative, trial), mu_a, mu_b)
    labels, scene = clustered_set()
    truth = true_auc(mu_a, CLUSTERED["tau"]) - true_auc(mu_b, CLUSTERED["tau"])
    return {
        unit: _summary(
            stats.compare_auc(labels, a, b, families=fam, n_resamples=resamples, seed=trial), truth
        )
        for unit, fam in (("family", scene), ("video", None))
    }


def independent_trial(job) -> dict:
    alternative, trial, resamples = job
    mu_a, mu_b = (
        (INDEPENDENT["mu_a_alt"], INDEPENDENT["mu_b_alt"]) if alternative else (INDEPENDENT["mu_null"],) * 2
    )
    a, b = independent_scores(_rng(3 + alternative, trial), mu_a, mu_b)
    labels = independent_set()
    truth = true_auc(mu_a) - true_auc(mu_b)
    out = {"compare_auc": _summary(stats.compare_auc(labels, a, b, n_resamples=resamples, seed=trial), truth)}
    test = delong(labels, a, b)
    return out | {"delong": _summary(test, truth) | {"se": test["se"]}}


def seeds_trial(job) -> dict:
    seeds, trial, resamples = job
    a, b = seed_scores(_rng(10 + seeds, trial), seeds)
    labels, scene = clustered_set()
    over = stats.compare_auc_over_seeds(labels, a, b, families=scene, n_resamples=resamples, seed=trial)
    pooled = stats.compare_auc(
        labels, a.mean(0), b.mean(0), families=scene, n_resamples=resamples, seed=trial
    )
    naive = naive_seed_bootstrap_p(labels, a, b, scene, resamples, seed=trial)
    return {
        "over_seeds": _summary(over, 0.0) | {"df": over["df"]},
        "pooled": _summary(pooled, 0.0),
        "naive_bootstrap": {"p": naive},
    }


# --------------------------------------------------------------------------- summaries


def rate(flags) -> dict:
    flags = np.asarray(list(flags), bool)
    r, n = float(flags.mean()), len(flags)
    return {"rate": r, "se": float(np.sqrt(r * (1 - r) / n)), "count": int(flags.sum()), "trials": n}


def rejections(rows, key: str) -> dict:
    out = {"p_below_0.05": rate(r[key]["p"] < ALPHA for r in rows)}
    if "excludes_0" in rows[0][key]:
        out["interval_excludes_0"] = rate(r[key]["excludes_0"] for r in rows)
        out["p_and_interval_agree"] = rate(r[key]["agree"] for r in rows)
    return out


def within(entry: dict, bounds) -> bool:
    return bool(bounds[0] <= entry["rate"] <= bounds[1] and entry["trials"] >= TARGETS["min_trials"])


def run_clustered(pool, trials: int, resamples: int) -> dict:
    start = time.perf_counter()
    null = list(pool.map(clustered_trial, [(0, t, resamples) for t in range(trials)], chunksize=8))
    alt = list(pool.map(clustered_trial, [(1, t, resamples) for t in range(trials)], chunksize=8))
    tau = CLUSTERED["tau"]
    truth = {
        "auc_null": true_auc(CLUSTERED["mu_null"], tau),
        "auc_a_alt": true_auc(CLUSTERED["mu_a_alt"], tau),
        "auc_b_alt": true_auc(CLUSTERED["mu_b_alt"], tau),
    }
    truth["delta_alt"] = truth["auc_a_alt"] - truth["auc_b_alt"]
    units = {}
    for unit in ("family", "video"):
        units[unit] = {
            "null": {
                "type_I": rejections(null, unit),
                "delta_sd": float(np.std([r[unit]["delta"] for r in null])),
            },
            "alternative": {
                "coverage_of_true_delta": rate(r[unit]["covers"] for r in alt),
                "power": rejections(alt, unit),
            },
        }
    fam = units["family"]
    meets = {
        "type_I": within(fam["null"]["type_I"]["p_below_0.05"], TARGETS["type_I"]),
        "type_I_interval": within(fam["null"]["type_I"]["interval_excludes_0"], TARGETS["type_I"]),
        "coverage": within(fam["alternative"]["coverage_of_true_delta"], TARGETS["coverage"]),
    }
    return {
        "design": CLUSTERED,
        "truth": truth,
        "trials": trials,
        "n_resamples": resamples,
        "by_unit": units,
        "family_rows_meet_targets": meets,
        "wall_s": time.perf_counter() - start,
    }


def run_independent(pool, trials: int, resamples: int) -> dict:
    start = time.perf_counter()
    null = list(pool.map(independent_trial, [(0, t, resamples) for t in range(trials)], chunksize=8))
    alt = list(pool.map(independent_trial, [(1, t, resamples) for t in range(trials)], chunksize=8))
    truth = {
        "auc_null": true_auc(INDEPENDENT["mu_null"]),
        "auc_a_alt": true_auc(INDEPENDENT["mu_a_alt"]),
        "auc_b_alt": true_auc(INDEPENDENT["mu_b_alt"]),
    }
    truth["delta_alt"] = truth["auc_a_alt"] - truth["auc_b_alt"]
    tests = {}
    for key in ("compare_auc", "delong"):
        tests[key] = {
            "null": {"type_I": rejections(null, key)},
            "alternative": {
                "power": rejections(alt, key),
                "coverage_of_true_delta": rate(r[key]["covers"] for r in alt),
            },
        }
    check = {
        "delta_sd_null": float(np.std([r["delong"]["delta"] for r in null])),
        "delong_se_rms_null": float(np.sqrt(np.mean([r["delong"]["se"] ** 2 for r in null]))),
    }
    return {
        "design": INDEPENDENT | {"unit": "video (families=None)"},
        "truth": truth,
        "trials": trials,
        "n_resamples": resamples,
        "tests": tests,
        "delong_variance_check": check,
        "wall_s": time.perf_counter() - start,
    }


def run_seeds(pool, trials: int, resamples: int) -> dict:
    out = {"design": SEEDS | {"unit": "family (scene)"}, "n_resamples": resamples, "trials": trials}
    for seeds in SEEDS["seeds"]:
        start = time.perf_counter()
        rows = list(pool.map(seeds_trial, [(seeds, t, resamples) for t in range(trials)], chunksize=8))
        out[f"{seeds}_seeds"] = {
            "type_I": {key: rejections(rows, key) for key in ("over_seeds", "pooled", "naive_bootstrap")},
            "mean_df": float(np.mean([r["over_seeds"]["df"] for r in rows])),
            "wall_s": time.perf_counter() - start,
        }
    return out


# --------------------------------------------------------------------------- main


def command() -> str:
    """The command line as run from the repository root (niceness included)."""
    python = (
        os.path.relpath(sys.executable)
        if not os.path.relpath(sys.executable).startswith("..")
        else sys.executable
    )
    nice = f"nice -n {os.nice(0)} " if os.nice(0) else ""
    return nice + " ".join([python, *map(shlex.quote, sys.argv)])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=1000, help="simulated test sets per condition")
    parser.add_argument("--resamples", type=int, default=1000, help="resamples of compare_auc")
    parser.add_argument(
        "--seed-trials", type=int, default=None, help="trials of scenario 3 (default --trials)"
    )
    parser.add_argument("--seed-resamples", type=int, default=999, help="resamples of scenario 3's tests")
    parser.add_argument("--workers", type=int, default=2, help="processes")
    parser.add_argument("--json", type=Path, default=None, help="write the report here")
    parser.add_argument("--quick", action="store_true", help="a tiny dry run (4 trials, 100 resamples)")
    args = parser.parse_args(argv)
    if args.quick:
        args.trials, args.resamples, args.seed_trials, args.seed_resamples, args.workers = 4, 100, 4, 100, 1
    seed_trials = args.seed_trials or args.trials
    check_delong()
    start = time.perf_counter()
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        scenarios = {
            "clustered": run_clustered(pool, args.trials, args.resamples),
            "independent": run_independent(pool, args.trials, args.resamples),
            "seeds": run_seeds(pool, seed_trials, args.seed_resamples),
        }
    report = {
        "what": __doc__.split("\n\n    python")[0],
        "command": command(),
        "git_commit": git_commit(),
        "versions": {
            "python": platform.python_version(),
            "numpy": np.__version__,
            "scipy": scipy.__version__,
        },
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "settings": {
            "trials": args.trials,
            "resamples": args.resamples,
            "seed_trials": seed_trials,
            "seed_resamples": args.seed_resamples,
            "workers": args.workers,
            "quick": args.quick,
            "alpha": ALPHA,
            "master_seed": MASTER_SEED,
            "interval": "compare_auc: SciPy BCa (families or videos); over_seeds: Welch t",
        },
        "targets_family_rows": TARGETS,
        "scenarios": scenarios,
        "wall_s_total": time.perf_counter() - start,
    }
    text = json.dumps(report, indent=1)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
