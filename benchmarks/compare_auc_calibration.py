"""Calibration of `fbifpn.metrics.compare_auc` on simulated test sets whose AUCs are known.

Each test set has 100 real and 100 fake videos. Model x's score is a per-video signal shared by
both models (fakes shifted by mu) plus its own Gaussian noise, so AUC_x = Phi(mu / sqrt(2 var_x)).
Reports how often the 95 % interval covers the true difference, the power at that difference, and
the type I error (p < 0.05) when both models have the same noise. Simulated data only.

    python benchmarks/compare_auc_calibration.py [--trials 300] [--resamples 400]
"""

from __future__ import annotations

import argparse
import json

import numpy as np
from scipy.stats import norm

from fbifpn import metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=300)
    parser.add_argument("--resamples", type=int, default=400)
    args = parser.parse_args()
    mu, shared, labels = 1.0, 1.0, np.repeat([0, 1], 100)
    rng = np.random.default_rng(11)

    def trial(noise_a: float, noise_b: float, t: int) -> dict:
        base = mu * labels + rng.normal(0, shared, len(labels))
        a = base + rng.normal(0, noise_a, len(labels))
        b = base + rng.normal(0, noise_b, len(labels))
        return metrics.compare_auc(labels, a, b, n_resamples=args.resamples, seed=t)

    true = norm.cdf(mu / np.sqrt(2 * (shared**2 + 0.5**2))) - norm.cdf(mu / np.sqrt(2 * (shared**2 + 1.0)))
    alt = [trial(0.5, 1.0, t) for t in range(args.trials)]
    null = [trial(0.7, 0.7, t) for t in range(args.trials)]
    result = {
        "videos": len(labels),
        "trials": args.trials,
        "n_resamples": args.resamples,
        "true_delta": float(true),
        "coverage": float(np.mean([o["low"] <= true <= o["high"] for o in alt])),
        "power_at_0.05": float(np.mean([o["p"] < 0.05 for o in alt])),
        "type_I_at_0.05": float(np.mean([o["p"] < 0.05 for o in null])),
    }
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
