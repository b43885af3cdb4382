"""Sundararajan & Taly (2018), Remark 1: where ``spearman_nz`` settles for random networks.

Once the output layer is randomized, IG on MNIST behaves like ``x * random vector`` (its gradient is
effectively random, and the ``(x - baseline)`` factor is not). Two such vectors, normalized by
absolute value and compared on the pixels where the input is not black, have an average Spearman of
0.424 (99 % CI [0.413, 0.437]) in the paper. We draw the random vectors from N(0, 1) (and, as a
variant, U(-1, 1)) for real MNIST test images and report the mean with a bootstrap 99 % interval.
"""

import dataclasses

import matplotlib.pyplot as plt
import numpy as np

from experiments import common
from experiments.common import Claim
from tf_sanity import metrics

NAME = "st_nz_plateau"
TITLE = "Sundararajan & Taly Remark 1: spearman_nz of two 'input x random vector' IG maps (0.424 plateau)"


@dataclasses.dataclass(frozen=True)
class Config:
    images: int = 200
    draws: int = 20
    distributions: tuple = ("normal", "uniform")
    bootstrap: int = 10_000
    seed: int = 0
    data_dir: str = ""


PRESETS = {"quick": Config(), "paper": Config(images=1000, draws=50)}



def requires(config):
    common.require_datasets(config, ("mnist-cnn",))


def units(config):
    return list(config.distributions)


def compute(config, unit, context):
    from tf_sanity import datasets
    if "x" not in context:
        context["x"] = datasets.load("mnist", common.data_dir(config)).x_test[:config.images]
    x = context["x"]
    rng = np.random.default_rng([config.seed, len(unit)])
    draw = (lambda shape: rng.standard_normal(shape)) if unit == "normal" else (lambda shape: rng.uniform(-1, 1, shape))
    rows = []
    for d in range(config.draws):
        a, b = x * draw(x.shape), x * draw(x.shape)
        values = metrics.spearman_nz(a, b, x, 0.0, absolute=True)
        rows += [dict(distribution=unit, draw=d, image=i, metric="spearman_nz", value=float(v))
                 for i, v in enumerate(values)]
    return rows


# Sundararajan & Taly, Remark 1: the plateau and its 99 % CI.
PAPER_MEAN, PAPER_CI = 0.424, (0.413, 0.437)


def bootstrap_ci(values, resamples, level=0.99, seed=0):
    """Percentile bootstrap interval of the mean."""
    rng = np.random.default_rng(seed)
    means = rng.choice(values, (resamples, len(values))).mean(axis=1)
    return tuple(np.percentile(means, [50 * (1 - level), 100 - 50 * (1 - level)]))


def _summary(rows, config, distribution):
    per_image = {}
    for r in rows:
        if r["distribution"] == distribution:
            per_image.setdefault(r["image"], []).append(r["value"])
    values = np.array([np.mean(v) for v in per_image.values()])
    return values.mean(), bootstrap_ci(values, config.bootstrap, seed=config.seed), values


def plot(rows, config):
    fig, ax = plt.subplots(figsize=(4, 3))
    for k, dist in enumerate(config.distributions):
        mean, (lo, hi), values = _summary(rows, config, dist)
        ax.hist(values, bins=30, alpha=0.5, color=f"C{k}", label=f"{dist}: {mean:.3f} [{lo:.3f}, {hi:.3f}]")
    ax.axvline(PAPER_MEAN, color="k", ls="--", lw=1, label=f"paper {PAPER_MEAN}")
    ax.set_xlabel("spearman_nz(|x r1|, |x r2|), per image")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return {"": fig}


def overlaps_paper(lo, hi):
    """Whether the interval ``[lo, hi]`` overlaps the note's 99 % CI of the plateau."""
    return lo <= PAPER_CI[1] and hi >= PAPER_CI[0]


def claims(rows, config):
    """The paper's value per distribution (agreement: the two 99 % intervals overlap), and where it lies.

    S&T do not say which random vector they drew, and the level depends on it (normal < uniform).
    """
    out, means = [], {}
    for dist in config.distributions:
        mean, (lo, hi), _ = _summary(rows, config, dist)
        means[dist] = mean
        out.append(Claim("Sundararajan & Taly, Remark 1", f"spearman_nz of two 'x times random vector' maps "
                         f"({dist} random vector) averages 0.424 (99 % CI [0.413, 0.437])",
                         f"{mean:.3f} (99 % CI [{lo:.3f}, {hi:.3f}], {config.images} images x {config.draws} draws)",
                         overlaps_paper(lo, hi), "0.424 [0.413, 0.437]", "99 % CIs overlap"))
    if len(means) > 1:
        out.append(Claim("Sundararajan & Taly, Remark 1 (our note)", "the random vector's distribution is not "
                         "stated; the paper's 0.424 lies between the levels of our distributions",
                         ", ".join(f"{d}: {m:.3f}" for d, m in means.items()),
                         min(means.values()) <= PAPER_MEAN <= max(means.values()), "0.424", "between"))
    return out
