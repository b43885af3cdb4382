"""Sanity Checks (Adebayo et al. 2018), Sec. 5 "Linear Model": what the methods return for ``f(x) = w . x``.

For a linear model the paper derives (Sec. 5):

* Gradient: ``E_grad(x) = w``, the same for every input; SmoothGrad too (``E_sg(x) = w``);
* Integrated Gradients: ``E_IG(x) = (x - x_bar) * w``. The paper prints ``(x - x_bar) * w / 2``: a typo,
  since the integrand ``df/dx = w`` is constant (its ``int_0^1 w alpha d alpha`` should be
  ``int_0^1 w d alpha``). We check the mathematics: the least-squares slope of IG on
  ``(x - x_bar) * w`` is 1, not 1/2;
* consequently Gradient passes the model randomization test (re-drawing ``w`` gives an unrelated
  map, "white noise"), while IG and Gradient x Input "return a noisy version of the input image":
  their absolute maps stay similar to each other and to the input after ``w`` is re-drawn, their
  signs do not.

The model is a Keras ``Flatten -> Dense(1, no bias)`` with ``w ~ N(0, 1)``; the randomized model has a
fresh ``w'`` from the same distribution. Every mask comes from :func:`tf_sanity.explain`; the closed
forms are computed in numpy. Inputs: ImageNet test-bed images in [-1, 1] (and, in the paper preset,
MNIST / Fashion-MNIST test images in [0, 1], whose many black pixels make the input dominate even more).
Similarities are :data:`tf_sanity.checks.metrics.METRICS` with the original notebooks' normalizations.
"""

import dataclasses

import keras
import matplotlib.pyplot as plt
import numpy as np

import tf_sanity
from experiments import common, imagenet_inputs
from experiments.common import Claim, mean_std
from tf_sanity import visualize
from tf_sanity.attribution import methods
from tf_sanity.checks import metrics, randomization

NAME = "sc_linear_model"
TITLE = "Sanity Checks Sec. 5: saliency methods on a linear model (gradient = w; IG = (x - x_bar) w, not / 2)"
ARRAYS = True

COMPARED = ("gradient", "gradient_x_input", "integrated_gradients")


@dataclasses.dataclass(frozen=True)
class Config:
    """Settings of one run.

    Attributes:
      datasets: ``"imagenet"`` (test bed under `subset`), ``"mnist"``, ``"fashion_mnist"``.
      images: images per dataset; size: ImageNet image side.
      ig_steps: IG steps (PAIR's rule); samples: SmoothGrad samples.
      backend: ``"tf_sanity"`` or ``"pair"`` (every mask through PAIR's ``saliency.core``; ``--backend pair``).
    """

    datasets: tuple = ("imagenet",)
    subset: str = "paper_demo/"
    images: int = 5
    size: int = 299
    ig_steps: int = 50
    samples: int = 10
    seed: int = 0
    data_dir: str = ""
    batch_size: int = 64
    backend: str = "tf_sanity"


PRESETS = {"quick": Config(),
           "paper": Config(datasets=("imagenet", "mnist", "fashion_mnist"), subset="val_imagenette224/", images=20,
                           samples=50)}


requires = imagenet_inputs.require_images
inputs = imagenet_inputs.images_fingerprint


def units(config):
    return list(config.datasets)


def _images(config, name):
    if name == "imagenet":
        return imagenet_inputs.load(config, config.subset, config.images, config.size)[1]
    from tf_sanity.models import datasets
    return datasets.load(name, common.data_dir(config)).x_test[:config.images]


def linear_model(w):
    """``f(x) = w . x`` as a Keras model on inputs shaped like `w`; output ``[B, 1]``."""
    inp = keras.Input(w.shape)
    dense = keras.layers.Dense(1, use_bias=False, name="linear")
    model = keras.Model(inp, dense(keras.layers.Flatten()(inp)))
    dense.kernel.assign(w.reshape(-1, 1).astype(np.float32))
    return model


def _slope(mask, reference):
    """Least-squares slope of `mask` on `reference`, per image."""
    m, r = (np.asarray(a, np.float64).reshape(len(a), -1) for a in (mask, reference))
    return (m * r).sum(axis=1) / (r * r).sum(axis=1)


def _rel_error(mask, reference):
    m, r = (np.asarray(a, np.float64).reshape(len(a), -1) for a in (mask, reference))
    return np.abs(m - r).max(axis=1) / np.abs(r).max(axis=1)


def compute(config, unit, context):
    x = _images(config, unit).astype(np.float32)
    shape = x.shape[1:]
    rng = np.random.default_rng(randomization.group_seed(config.seed, unit))
    w, w_random = rng.standard_normal(shape), rng.standard_normal(shape)
    low, high = float(x.min()), float(x.max())
    baselines = {"zero": np.zeros(shape, np.float32),
                 "random": rng.uniform(low, high, shape).astype(np.float32)}   # any x_bar: the formula holds
    models = {"trained": linear_model(w), "randomized": linear_model(w_random)}
    weights = {"trained": w, "randomized": w_random}
    base = dict(dataset=unit, ig_steps=config.ig_steps, samples=config.samples)
    rows, masks = [], {}

    def add(kind, method, metric, values, comparison="closed_form", **extra):
        rows.extend(dict(base, image=i, model=kind, method=method, comparison=comparison, metric=metric,
                         value=float(v), **extra) for i, v in enumerate(values))

    for kind, model in models.items():
        settings = lambda m: common.method_settings(m, config)  # noqa: E731
        wb = np.broadcast_to(weights[kind], x.shape)
        for method in ("gradient", "gradient_sg"):
            mask = tf_sanity.explain(model, x, method, 0, **settings(method))
            add(kind, method, "rel_error_vs_w", _rel_error(mask, wb))
            masks[(kind, method)] = mask
        gxi = tf_sanity.explain(model, x, "gradient_x_input", 0, **settings("gradient_x_input"))
        add(kind, "gradient_x_input", "rel_error_vs_x_w", _rel_error(gxi, x * wb))
        masks[(kind, "gradient_x_input")] = gxi
        for name, x_bar in baselines.items():
            ig = tf_sanity.explain(model, x, "integrated_gradients", 0, baseline=x_bar,
                                   **settings("integrated_gradients"))
            closed = (x - x_bar) * wb
            add(kind, "integrated_gradients", "rel_error_vs_closed_form", _rel_error(ig, closed), baseline=name)
            add(kind, "integrated_gradients", "slope_vs_closed_form", _slope(ig, closed), baseline=name)
            gap = np.abs(((x - x_bar) * wb).reshape(len(x), -1).sum(axis=1))
            err = methods.completeness_error(model, x, ig, 0, baseline=x_bar)
            add(kind, "integrated_gradients", "completeness_rel_error", np.abs(err) / gap, baseline=name)
            if name == "zero":
                masks[(kind, "integrated_gradients")] = ig
    for method in COMPARED:
        for metric, fn in metrics.METRICS.items():
            add("randomized", method, metric, fn(masks[("trained", method)], masks[("randomized", method)]),
                comparison="trained_vs_randomized")
            for kind in models:
                add(kind, method, metric, fn(masks[(kind, method)], x), comparison="mask_vs_input")
    arrays = {"x": x[0]}
    arrays.update({f"{kind}/{method}": m[0] for (kind, method), m in masks.items()})
    return rows, arrays


def plot(rows, config, arrays):
    figs = {}
    columns = [(f"{tf_sanity.LABELS[m]}\n{kind}", f"{kind}/{m}")
               for m in COMPARED for kind in ("trained", "randomized")]
    shown = [u for u in config.datasets if u in arrays]
    if shown:
        fig, axes = plt.subplots(len(shown), len(columns) + 1, squeeze=False,
                                 figsize=(1.3 * (len(columns) + 1), 1.45 * len(shown) + 0.4))
        for r, unit in enumerate(shown):
            visualize.show_image(axes[r, 0], arrays[unit]["x"], unit)
            for c, (title, key) in enumerate(columns):
                visualize.show(axes[r, c + 1], arrays[unit][key], "abs", title if r == 0 else None)
        fig.suptitle("linear model f(x) = w.x: masks (absolute value) for w and a re-drawn w'", fontsize=8)
        fig.tight_layout()
        figs["masks"] = fig
    fig, axes = plt.subplots(1, 2, figsize=(8, 3), sharey=True)
    for ax, comparison, title in ((axes[0], "trained_vs_randomized", "mask for w vs mask for re-drawn w'"),
                                  (axes[1], "mask_vs_input", "mask vs the input x")):
        sel = [r for r in rows if r["comparison"] == comparison and (comparison != "mask_vs_input"
                                                                      or r["model"] == "randomized")]
        stats = mean_std(sel, by=("method", "metric"))
        for k, metric in enumerate(metrics.METRICS):
            xs = np.arange(len(COMPARED)) + 0.2 * (k - 1.5)
            ax.bar(xs, [stats.get((m, metric), (np.nan,))[0] for m in COMPARED], width=0.2,
                   yerr=[stats.get((m, metric), (0, 0))[1] for m in COMPARED], capsize=2, label=metric, color=f"C{k}")
        ax.set_xticks(range(len(COMPARED)), [tf_sanity.LABELS[m] for m in COMPARED], fontsize=7)
        ax.axhline(0, color="k", lw=0.5)
        ax.set_title(title + (" (re-drawn w')" if comparison == "mask_vs_input" else ""), fontsize=8)
    axes[0].set_ylabel("similarity")
    axes[1].legend(fontsize=7)
    fig.suptitle(f"{', '.join(config.datasets)}: mean +- 1 std over {config.images} images per dataset", fontsize=8)
    fig.tight_layout()
    figs["similarity"] = fig
    return figs


def _values(rows, **where):
    return np.array([r["value"] for r in rows if all(r.get(k) == v for k, v in where.items())], dtype=float)


def claims(rows, config):
    grad_err = _values(rows, method="gradient", metric="rel_error_vs_w")
    sg_err = _values(rows, method="gradient_sg", metric="rel_error_vs_w")
    slope = _values(rows, method="integrated_gradients", metric="slope_vs_closed_form")
    ig_err = _values(rows, method="integrated_gradients", metric="rel_error_vs_closed_form")
    comp = _values(rows, method="integrated_gradients", metric="completeness_rel_error")
    def rand(m, metric):
        return _values(rows, method=m, metric=metric, comparison="trained_vs_randomized").mean()

    def inp(m, metric):
        return _values(rows, method=m, metric=metric, comparison="mask_vs_input", model="randomized").mean()

    g_abs, g_signed = rand("gradient", "spearman_abs"), rand("gradient", "spearman_signed")
    products = {m: (rand(m, "spearman_abs"), rand(m, "spearman_signed"), inp(m, "spearman_abs"), rand(m, "ssim"))
                for m in ("gradient_x_input", "integrated_gradients")}
    n = f"{len(config.datasets)} dataset(s) x {config.images} images"
    return [
        Claim("Sanity Checks, Sec. 5 (linear model)", "the gradient of a linear model is w, independent of the input; "
              "SmoothGrad gives w too", f"max relative error: gradient {grad_err.max():.1e}, SmoothGrad "
              f"{sg_err.max():.1e} ({n}, trained and re-drawn w)", grad_err.max() < 1e-5 and sg_err.max() < 1e-4,
              "exact", "relative error < 1e-5 (gradient), 1e-4 (SmoothGrad, float32 sums)"),
        Claim("Sanity Checks, Sec. 5 (linear model)",
              "IG = (x - x_bar) * w; the paper's '(x - x_bar) * w / 2' is a typo",
              f"least-squares slope of IG on (x - x_bar) * w: {slope.min():.6f} .. {slope.max():.6f} (zero and random "
              f"baselines); max relative error {ig_err.max():.1e}; completeness relative error {comp.max():.1e}",
              np.abs(slope - 1).max() < 1e-3 and ig_err.max() < 1e-3, "paper prints slope 1/2; mathematics: 1",
              "|slope - 1| < 1e-3"),
        Claim("Sanity Checks, Sec. 5 (linear model)", "Gradient passes the model randomization test: gradients on a "
              "random model are white noise, unrelated to the trained model's", f"Spearman of the gradients for w and "
              f"a re-drawn w': abs {g_abs:.3f}, signed {g_signed:.3f}", abs(g_abs) < 0.05 and abs(g_signed) < 0.05,
              "~0", "|rho| < 0.05"),
        Claim("Sanity Checks, Sec. 5 (linear model)", "integrated gradients [and Gradient x Input] return a noisy "
              "version of the input image: after re-drawing w their absolute maps stay similar (to each other and to "
              "the input), their signs do not",
              "; ".join(f"{tf_sanity.LABELS[m]}: w vs w' abs {a:.2f}, signed {s:.3f}, SSIM {q:.2f}; w' vs input abs "
                        f"{i:.2f}" for m, (a, s, i, q) in products.items())
              + f" (Gradient: abs {g_abs:.3f})",
              all(a > abs(g_abs) + 0.2 and abs(s) < 0.05 and i > 0.3 for a, s, i, _ in products.values()), "",
              "abs Spearman > Gradient's + 0.2 and vs input > 0.3; |signed| < 0.05"),
    ]
