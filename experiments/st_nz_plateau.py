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
from tf_sanity.checks import metrics, statistics

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
    from tf_sanity.models import datasets
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


PAPER_MEAN, PAPER_CI = common.ST_PLATEAU_MEAN, common.ST_PLATEAU_CI


def _summary(rows, config, distribution):
    per_image = {}
    for r in rows:
        if r["distribution"] == distribution:
            per_image.setdefault(r["image"], []).append(r["value"])
    values = np.array([np.mean(v) for v in per_image.values()])
    _, low, high = statistics.bootstrap_interval(values, "mean", n_resamples=config.bootstrap, seed=config.seed)
    return values.mean(), (low, high), values


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
                         common.overlaps_st_plateau(lo, hi), "0.424 [0.413, 0.437]", "99 % CIs overlap"))
    if len(means) > 1:
        out.append(Claim("Sundararajan & Taly, Remark 1 (our note)", "the random vector's distribution is not "
                         "stated; the paper's 0.424 lies between the levels of our distributions",
                         ", ".join(f"{d}: {m:.3f}" for d, m in means.items()),
                         min(means.values()) <= PAPER_MEAN <= max(means.values()), "0.424", "between"))
    return out
