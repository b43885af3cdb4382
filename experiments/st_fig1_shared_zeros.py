"""Sundararajan & Taly (2018), Fig. 1: Spearman of two random positive vectors vs shared zeros.

Two independent random positive 784-vectors (uniform in (0, 1], as MNIST-sized absolute attributions)
have zero rank correlation; setting the same k indices to zero in both ties them at the bottom of
both rankings, and the correlation rises towards 1 with k (Sec. 3.1). This is why IG's absolute
Spearman stays high on MNIST, where the black baseline zeroes ~80 % of the pixels.
"""

import dataclasses

import matplotlib.pyplot as plt
import numpy as np

from experiments.common import Claim, mean_std
from tf_sanity.checks import metrics

NAME = "st_fig1_shared_zeros"
TITLE = "Sundararajan & Taly Fig. 1: Spearman of random positive vectors vs number of shared zeros"


@dataclasses.dataclass(frozen=True)
class Config:
    dim: int = 784
    shared_zeros: tuple = tuple(range(0, 784, 49))
    trials: int = 100
    seed: int = 0


PRESETS = {"quick": Config(trials=50), "paper": Config(shared_zeros=tuple(range(0, 784, 8)), trials=200)}


def requires(config):
    """Needs nothing but numpy."""


def units(config):
    return [f"k={k}" for k in config.shared_zeros]


def compute(config, unit, context):
    k = int(unit.split("=")[1])
    rng = np.random.default_rng([config.seed, k])
    a = 1.0 - rng.random((config.trials, config.dim))   # uniform in (0, 1]
    b = 1.0 - rng.random((config.trials, config.dim))
    for row in range(config.trials):
        zeros = rng.choice(config.dim, k, replace=False)
        a[row, zeros] = b[row, zeros] = 0.0
    rho = metrics.rank_correlation(a, b)
    return [{"shared_zeros": k, "fraction": k / config.dim, "trial": t, "metric": "spearman", "value": v}
            for t, v in enumerate(rho)]


def plot(rows, config):
    stats = mean_std(rows, by=("fraction",))
    x = np.array(sorted(f for (f,) in stats))
    mean = np.array([stats[(f,)][0] for f in x])
    std = np.array([stats[(f,)][1] for f in x])
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.plot(100 * x, mean, color="C0")
    ax.fill_between(100 * x, mean - std, mean + std, color="C0", alpha=0.3)
    ax.set_xlabel(f"shared zero indices (% of {config.dim})")
    ax.set_ylabel("Spearman rank correlation")
    ax.set_ylim(-0.1, 1.05)
    ax.set_title("random positive vectors", fontsize=9)
    fig.tight_layout()
    return {"": fig}


def claims(rows, config):
    stats = mean_std(rows, by=("fraction",))
    fractions = sorted(f for (f,) in stats)
    half = min(fractions, key=lambda f: abs(f - 0.5))
    zero = stats[(fractions[0],)][0]
    mono = all(stats[(a,)][0] <= stats[(b,)][0] + 0.02 for a, b in zip(fractions, fractions[1:]))
    return [
        Claim("Sundararajan & Taly, Sec. 3.1 / Fig. 1", "with ~50 % shared zeros the Spearman of two random "
              "positive 784-vectors is above 0.8", f"{stats[(half,)][0]:.3f} at {100 * half:.0f} % shared zeros",
              stats[(half,)][0] > 0.8, "> 0.8", "strict"),
        Claim("Sundararajan & Taly, Fig. 1", "the correlation rises with the number of shared zeros, from ~0",
              f"{zero:.3f} with {100 * fractions[0]:.0f} % shared; non-decreasing: {mono}",
              mono and abs(zero) < 0.05, "~0 at 0 %", "|rho| < 0.05 at 0 %; steps within 0.02"),
    ]
