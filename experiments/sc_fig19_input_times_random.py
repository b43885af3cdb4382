"""Sanity Checks (Adebayo et al. 2018), Sec. 5 and appendix Fig. 19: input x random vector is dominated by the input.

Methods that approximate input x gradient (Gradient x Input, IG, eps-LRP, DeepLIFT) keep the input's
structure however noisy the gradient is. The paper's experiment: for an input ``x`` draw two random
vectors ``u``, ``v`` (truncated normal and uniform) and compare ``x * u`` with ``x * v`` with every
metric "as noise increases"; the input dominates the product.

The paper does not say how the noise grows. Here ``u = 1 + sigma * e`` with ``e`` a unit-variance
truncated normal (cut at +-2) or uniform (``U(-sqrt 3, sqrt 3)``), so ``sigma -> 0`` gives the input
itself (a constant "gradient") and large ``sigma`` a zero-mean random "gradient"; for mean-zero noise
every metric here is scale-invariant, so ``sigma`` large is the pure-noise limit. Three comparisons
per image and noise level:

* ``pair``: ``x * u`` vs ``x * v`` (the paper's);
* ``input``: ``x * u`` vs ``x`` itself (how much of the product is the input);
* ``noise``: ``u`` vs ``v`` (the random "gradients" themselves: the floor).

Metrics: :data:`tf_sanity.checks.metrics.METRICS` (Spearman with and without absolute value, SSIM, HOG) with
the original notebooks' normalizations. Inputs: ImageNet test-bed images in [-1, 1] and, in the
paper preset, Fashion-MNIST test images in [0, 1].
"""

import dataclasses

import matplotlib.pyplot as plt
import numpy as np
import scipy.stats

from experiments import common, imagenet_inputs
from experiments.common import Claim, mean_std
from tf_sanity import visualize
from tf_sanity.checks import metrics, randomization
from tf_sanity.errors import SanityError

NAME = "sc_fig19_input_times_random"
TITLE = "Sanity Checks Sec. 5 / appendix Fig. 19: input x random vector is dominated by the input"
ARRAYS = True

COMPARISONS = ("pair", "input", "noise")
DISTRIBUTIONS = ("truncated_normal", "uniform")


@dataclasses.dataclass(frozen=True)
class Config:
    """Settings of one run.

    Attributes:
      datasets: ``"imagenet"`` (test bed under `subset`), ``"fashion_mnist"``, ``"mnist"``.
      images: images per dataset; size: ImageNet image side; sigmas: noise levels of ``u = 1 + sigma * e``.
      distributions: ``"truncated_normal"`` and/or ``"uniform"`` (unit variance).
    """

    datasets: tuple = ("imagenet",)
    subset: str = "paper_demo/"
    images: int = 3
    size: int = 299
    sigmas: tuple = (0.1, 1.0, 10.0)
    distributions: tuple = DISTRIBUTIONS
    seed: int = 0
    data_dir: str = ""


PRESETS = {"quick": Config(),
           "paper": Config(datasets=("imagenet", "fashion_mnist"), subset="val_imagenette224/", images=20,
                           sigmas=(0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0))}


requires = imagenet_inputs.require_images
inputs = imagenet_inputs.images_fingerprint


def units(config):
    return [f"{d}/{dist}" for d in config.datasets for dist in config.distributions]


def _images(config, name, context):
    if name not in context:
        if name == "imagenet":
            context[name] = imagenet_inputs.load(config, config.subset, config.images, config.size)[1]
        else:
            from tf_sanity.models import datasets
            context[name] = datasets.load(name, common.data_dir(config)).x_test[:config.images]
    return context[name].astype(np.float64)


def unit_noise(distribution, shape, rng):
    """Unit-variance noise: standard normal truncated at +-2 (rescaled to unit variance), or uniform."""
    if distribution == "truncated_normal":
        e = scipy.stats.truncnorm.rvs(-2, 2, size=shape, random_state=rng)
        return e / scipy.stats.truncnorm.std(-2, 2)
    if distribution == "uniform":
        return rng.uniform(-np.sqrt(3), np.sqrt(3), shape)
    raise SanityError(f"unknown distribution {distribution!r}; valid: {', '.join(DISTRIBUTIONS)}")


def compute(config, unit, context):
    dataset, distribution = unit.split("/")
    x = _images(config, dataset, context)
    rng = np.random.default_rng(randomization.group_seed(config.seed, unit))
    rows, arrays = [], {"x": x[0]}
    for sigma in config.sigmas:
        u = 1 + sigma * unit_noise(distribution, x.shape, rng)
        v = 1 + sigma * unit_noise(distribution, x.shape, rng)
        pairs = {"pair": (x * u, x * v), "input": (x * u, x), "noise": (u, v)}
        for comparison, (a, b) in pairs.items():
            for metric, fn in metrics.METRICS.items():
                rows += [dict(dataset=dataset, distribution=distribution, sigma=sigma, comparison=comparison,
                              metric=metric, image=i, value=float(val)) for i, val in enumerate(fn(a, b))]
        arrays[f"x_u/{sigma}"], arrays[f"x_v/{sigma}"] = (x * u)[0], (x * v)[0]
    return rows, arrays


def plot(rows, config, arrays):
    figs = {}
    for dataset in config.datasets:
        sel = [r for r in rows if r["dataset"] == dataset]
        if not sel:
            continue
        stats = mean_std(sel, by=("distribution", "comparison", "metric", "sigma"))
        fig, axes = plt.subplots(len(config.distributions), len(metrics.METRICS), squeeze=False, sharey=True,
                                 figsize=(2.6 * len(metrics.METRICS), 2.4 * len(config.distributions) + 0.4))
        for r, dist in enumerate(config.distributions):
            for c, metric in enumerate(metrics.METRICS):
                ax = axes[r, c]
                for k, (comparison, label) in enumerate((("pair", "x*u vs x*v"), ("input", "x*u vs x"),
                                                         ("noise", "u vs v"))):
                    mean = np.array([stats.get((dist, comparison, metric, s), (np.nan,))[0] for s in config.sigmas])
                    std = np.array([stats.get((dist, comparison, metric, s), (0, 0))[1] for s in config.sigmas])
                    ax.plot(config.sigmas, mean, marker="o", ms=3, color=f"C{k}", label=label)
                    ax.fill_between(config.sigmas, mean - std, mean + std, color=f"C{k}", alpha=0.2)
                ax.set_xscale("log")
                ax.axhline(0, color="k", lw=0.5, ls=":")
                ax.set_title(f"{metric.replace('_', ' ')}, {dist.replace('_', ' ')}", fontsize=8)
                if r == len(config.distributions) - 1:
                    ax.set_xlabel("noise sigma (u = 1 + sigma e)", fontsize=7)
        axes[0, 0].set_ylabel("similarity")
        axes[0, -1].legend(fontsize=7)
        fig.suptitle(f"{dataset}: input x random vector, mean +- 1 std over {config.images} images", fontsize=9)
        fig.tight_layout()
        figs[dataset] = fig
    shown = [u for u in units(config) if u in arrays]
    if shown:
        fig, axes = plt.subplots(len(shown), 1 + 2 * len(config.sigmas), squeeze=False,
                                 figsize=(1.2 * (1 + 2 * len(config.sigmas)), 1.3 * len(shown) + 0.4))
        for r, unit in enumerate(shown):
            visualize.show_image(axes[r, 0], arrays[unit]["x"], unit, fontsize=6)
            for c, s in enumerate(config.sigmas):
                for j, key in enumerate(("x_u", "x_v")):
                    visualize.show(axes[r, 1 + 2 * c + j], arrays[unit][f"{key}/{s}"], "abs",
                                   f"{key.replace('_', '*')}, sigma {s:g}" if r == 0 else None)
        fig.suptitle("x * u and x * v (absolute value): the input shows through", fontsize=8)
        fig.tight_layout()
        figs["masks"] = fig
    return figs


def claims(rows, config):
    top = max(config.sigmas)
    stats = mean_std([r for r in rows if r["sigma"] == top], by=("dataset", "distribution", "comparison", "metric"))
    cells = [(d, dist) for d in config.datasets for dist in config.distributions
             if (d, dist, "pair", "spearman_abs") in stats]
    if not cells:
        return []
    get = lambda d, dist, comp, metric: stats[(d, dist, comp, metric)][0]  # noqa: E731
    def text(comp, metric):
        return ", ".join(f"{d}/{dist} {get(d, dist, comp, metric):.2f}" for d, dist in cells)
    pair = [get(*c, "pair", "spearman_abs") for c in cells]
    noise = [get(*c, "noise", "spearman_abs") for c in cells]
    inp = [get(*c, "input", "spearman_abs") for c in cells]
    signed = [get(*c, "pair", "spearman_signed") for c in cells]
    ssim_pair, ssim_noise = [get(*c, "pair", "ssim") for c in cells], [get(*c, "noise", "ssim") for c in cells]
    at = f"sigma {top:g} (mean-zero noise limit), mean over {config.images} images"
    return [
        Claim("Sanity Checks, Sec. 5 / Fig. 19", "the input dominates the product: x * u and x * v stay similar "
              "although u and v are independent random vectors (truncated normal and uniform)",
              f"Spearman (abs) of x*u vs x*v: {text('pair', 'spearman_abs')}; of u vs v: "
              f"{text('noise', 'spearman_abs')}; SSIM x*u vs x*v {np.mean(ssim_pair):.2f} vs u vs v "
              f"{np.mean(ssim_noise):.2f} ({at})",
              min(pair) > 0.3 and max(abs(n) for n in noise) < 0.05, "", "pair > 0.3 and |u vs v| < 0.05"),
        Claim("Sanity Checks, Sec. 5 / Fig. 19", "input x random vector mostly returns the input (high rank "
              "correlation with the input for absolute maps)",
              f"Spearman (abs) of x*u vs x: {text('input', 'spearman_abs')} ({at})", min(inp) > 0.5, "", "> 0.5"),
        Claim("Sanity Checks, Sec. 3 and 5", "the sign is what the random vector destroys: without absolute value "
              "the similarity falls to ~0",
              f"Spearman (signed) of x*u vs x*v: {text('pair', 'spearman_signed')} ({at})",
              max(abs(s) for s in signed) < 0.05, "~0", "|rho| < 0.05"),
    ]
