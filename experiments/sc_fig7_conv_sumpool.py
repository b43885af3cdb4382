"""Sanity Checks (Adebayo et al. 2018), Fig. 7 and Sec. 5: a random 1-layer conv + sum-pool net is an edge detector.

The network of Sec. 5, ``l(x) = sum_ij ReLU(w * x)_ij`` with a random 3 x 3 filter ``w`` (N(0, 1), no
bias, 'same' zero padding), on grey-scale ImageNet test-bed images (the paper's own demo images) with
values in [0, 1]. Its gradient has the closed form of Sec. 5,

    dl/dx_ij = sum_kl a_(i+k, j+l) w_kl,    a = 1{(w * x) > 0},

so it depends on the image only through the 3 x 3 ReLU activation pattern around each pixel. On a
positive image a uniform region of intensity c has ``w * x = c sum(w)``: one pattern, one gradient value
(``sum w`` or 0) for every uniform region; only edges break the pattern. Notes:

* the paper's ``*`` is a convolution; Keras computes cross-correlation, for which the same derivation
  gives ``sum_kl a_(i-k, j-l) w_kl`` (the formula with the kernel flipped), i.e.
  ``scipy.signal.convolve2d(a, w, "same")`` of ``a = correlate2d(x, w, "same") > 0``. It is computed
  here in numpy, independently of TensorFlow, and compared with ``tf_sanity.explain``'s gradient;
  with K filters (``widths``) the gradient is the sum of the K filters' terms;
* TF's ReLU has derivative 0 at 0 where the paper writes ``a = 1{. >= 0}``; the two differ only on
  pixels with ``(w * x) = 0`` exactly, whose count is reported (``ties``). Float32 (TF) and float64
  (numpy) may disagree on the sign of a pre-activation within rounding of 0 (``|w * x|`` below 1e-5 of
  its scale); pixels next to such a near-tie are left out of the comparison and counted (``near_ties``);
* with one filter, an edge shows only where its response outweighs ``c sum(w)``; for some filters no
  pixel's pattern ever changes and the map is constant (counted, and left out of the similarities).
  A layer of K random filters sum-pooled together (Saxe et al. 2011's setting, to which the paper
  compares) always shows the edges; ``widths`` runs both;
* centred inputs (``centered=True``, Inception's [-1, 1]) split uniform regions into two patterns by
  the sign of their intensity, and the map becomes a brightness threshold whose boundaries are edges.

Masks of several methods on these nets (Fig. 7) are compared with classical edge detectors: the
Sobel magnitude is the reference; Canny, the image itself and a Gaussian random mask are compared
with it the same way. Similarities: HOG similarity of the signed maps (the paper's HOG metric,
original-code settings), which compares where and in which orientation a map has edges whatever
its offset and sign; and the Spearman correlation with Sobel of ``|m - median(m)|``, the deviation
from the value uniform regions take (Sec. 5's argument). Spearman of ``|m|`` itself is reported too,
but its sign follows ``sum w`` (uniform regions take ``sum w`` or 0), so it is no edge measure here.
"""

import dataclasses

import keras
import matplotlib.pyplot as plt
import numpy as np
import scipy.ndimage
import scipy.signal
import skimage.feature
import skimage.filters

import tf_sanity
from experiments import common, imagenet_inputs
from experiments.common import Claim, mean_std
from tf_sanity import visualize
from tf_sanity.checks import metrics

NAME = "sc_fig7_conv_sumpool"
TITLE = "Sanity Checks Fig. 7 / Sec. 5: a random 1-layer conv + ReLU + sum-pool network acts like an edge detector"
ARRAYS = True

METHODS = ("gradient", "guided_backprop", "integrated_gradients", "gradient_x_input", "gradient_sg")
REFERENCES = ("canny", "image", "random")  # compared with the Sobel magnitude like the methods' masks
REFERENCE_COLORS = {"canny": "C4", "image": "C5", "random": "C7"}


def _deviation(m):
    m = np.asarray(m, dtype=np.float64)
    return np.abs(m - np.median(m))


SIMILARITIES = {
    "hog_to_sobel": lambda m, s: metrics.hog_similarity(m, s, absolute=False, layout="HW"),
    "spearman_deviation_to_sobel": lambda m, s: metrics.spearman(_deviation(m), s, absolute=True, layout="HW"),
    "spearman_abs_to_sobel": lambda m, s: metrics.spearman(m, s, absolute=True, layout="HW"),
}


@dataclasses.dataclass(frozen=True)
class Config:
    """Settings of one run.

    Attributes:
      subset: test-bed folder prefix in ``imagenet/labels.csv`` (the paper's demo images).
      images: how many images (evenly spread over the subset); size: side after resizing.
      widths: numbers of random 3 x 3 filters in the conv layer (1 = the paper's analysis).
      nets: seeds of the random networks drawn for each width (weights N(0, 1)).
      methods: :data:`tf_sanity.METHODS` names; ig_steps, samples: IG steps and SmoothGrad samples.
      canny_sigma: Gaussian width of the Canny detector.
      centered: grey values in [-1, 1] (Inception's input range) instead of [0, 1]; see the module docstring.
    """

    subset: str = "paper_demo/"
    images: int = 3
    size: int = 299
    widths: tuple = (1, 16)
    nets: tuple = (0, 1, 2)
    methods: tuple = METHODS
    ig_steps: int = 10
    samples: int = 5
    canny_sigma: float = 2.0
    centered: bool = False
    seed: int = 0
    data_dir: str = ""
    batch_size: int = 64


PRESETS = {"quick": Config(), "paper": Config(images=5, widths=(1, 64), nets=tuple(range(10)), ig_steps=50, samples=50)}


def requires(config):
    imagenet_inputs.folder(config)


def inputs(config):
    return imagenet_inputs.fingerprint(config, with_checkpoint=False)


def units(config):
    return [f"image{i}" for i in range(config.images)]


def conv_sumpool(size, width):
    """``l(x) = sum_ij sum_f ReLU(w_f * x)_ij`` for grey images ``[B, size, size, 1]``; output ``[B, 1]``."""
    inp = keras.Input((size, size, 1))
    h = keras.layers.Conv2D(width, 3, padding="same", use_bias=False, activation="relu", name="conv")(inp)
    out = keras.layers.Lambda(lambda t: keras.ops.sum(t, axis=(1, 2, 3))[:, None], name="sum_pool")(h)
    return keras.Model(inp, out, name=f"conv{width}_sumpool")


def random_filters(config, width, net):
    """``[3, 3, width]`` filters, N(0, 1), from ``(seed, width, net)``."""
    return np.random.default_rng([config.seed, width, net]).standard_normal((3, 3, width))


def closed_form_gradient(x, filters):
    """Sec. 5's closed form for one grey image ``[H, W]`` and filters ``[3, 3, K]``.

    Returns:
      ``(gradient [H, W], mixed [H, W] bool: the 3x3 pattern of some filter is not uniform, ties,
      unsure [H, W] bool: a pre-activation within float32 rounding of 0 in the 3x3 window)``.
    """
    grad, mixed, unsure, ties = np.zeros_like(x), np.zeros(x.shape, bool), np.zeros(x.shape, bool), 0
    for w in np.moveaxis(filters, -1, 0):
        pre = scipy.signal.correlate2d(x, w, mode="same")  # Keras Conv2D: cross-correlation
        a = (pre > 0).astype(np.float64)
        grad += scipy.signal.convolve2d(a, w, mode="same")
        low, high = (f(a, 3, mode="nearest") for f in (scipy.ndimage.minimum_filter, scipy.ndimage.maximum_filter))
        mixed |= low != high
        unsure |= np.abs(pre) < 1e-5 * np.abs(w).sum() * max(np.abs(x).max(), 1e-12)
        ties += int((pre == 0).sum())
    return grad, mixed, ties, scipy.ndimage.maximum_filter(unsure, 3)


def edge_maps(x, config):
    """``{"sobel": magnitude, "canny": binary edges}`` of a grey image ``[H, W]``."""
    return {"sobel": skimage.filters.sobel(x),
            "canny": skimage.feature.canny(x, sigma=config.canny_sigma).astype(np.float64)}


def _setup(config, context):
    if "x" not in context:
        chosen, images, _ = imagenet_inputs.load(config, config.subset, config.images, config.size)
        gray = imagenet_inputs.grayscale(images)
        context["x"] = (gray if config.centered else (gray + 1) / 2).astype(np.float32)
        context["names"] = [r.path.name for r in chosen]
        context["models"] = {k: conv_sumpool(config.size, k) for k in config.widths}
    return context["x"], context["names"], context["models"]


def _constant(mask):
    inner = np.asarray(mask)[2:-2, 2:-2]  # the zero-padded border always differs
    return float(inner.max() - inner.min()) <= 1e-6 * max(float(np.abs(inner).max()), 1e-12)


def compute(config, unit, context):
    xs, names, models = _setup(config, context)
    i = int(unit.removeprefix("image"))
    x = xs[i:i + 1]
    gray = x[0, ..., 0].astype(np.float64)
    edges = edge_maps(gray, config)
    sobel = edges["sobel"]
    base = dict(image=i, file=names[i], size=config.size, centered=config.centered, ig_steps=config.ig_steps,
                samples=config.samples)
    rows = []

    def similarities(mask, **key):
        constant = _constant(mask)
        rows.append(dict(base, **key, metric="constant_map", value=int(constant)))
        for metric, fn in SIMILARITIES.items():
            rows.append(dict(base, **key, metric=metric, value=float("nan") if constant else float(fn(mask, sobel))))

    references = {"canny": edges["canny"], "image": gray,
                  "random": metrics.random_mask(gray.shape, "gaussian", seed=[config.seed, i])}
    for name in REFERENCES:
        similarities(references[name], width=0, net=-1, method=name)
    arrays = {"x": gray, "sobel": sobel, "canny": edges["canny"]}
    for width in config.widths:
        model = models[width]
        for net in config.nets:
            filters = random_filters(config, width, net)
            model.get_layer("conv").kernel.assign(filters[:, :, None, :].astype(np.float32))  # in place, no retrace
            closed, mixed, ties, unsure = closed_form_gradient(gray, filters)
            key = dict(width=width, net=net)
            for method in config.methods:
                mask = tf_sanity.explain(model, x, method, 0, **common.method_settings(method, config))[0, ..., 0]
                if method == "gradient":
                    err = np.abs(mask - closed)[~unsure].max() / max(np.abs(closed).max(), 1e-12)
                    rows += [dict(base, **key, method=method, metric="closed_form_rel_error", value=float(err)),
                             dict(base, **key, method=method, metric="ties", value=ties),
                             dict(base, **key, method=method, metric="near_ties", value=int(unsure.sum()))]
                similarities(mask, **key, method=method)
                if net == config.nets[0] or method == "gradient":
                    arrays[f"{method}/width{width}/net{net}"] = mask
            ratio = (sobel[mixed].mean() / max(sobel[~mixed].mean(), 1e-12)) if mixed.any() and (~mixed).any() \
                else float("nan")
            rows += [dict(base, **key, method="pattern", metric="mixed_pattern_fraction", value=float(mixed.mean())),
                     dict(base, **key, method="pattern", metric="sobel_mixed_over_uniform", value=float(ratio))]
    return rows, arrays


def plot(rows, config, arrays):
    figs = {}
    shown = [u for u in units(config) if u in arrays]
    n0, wide = config.nets[0], config.widths[-1]
    if shown:
        columns = ([("input", "x"), ("Sobel", "sobel"), ("Canny", "canny")]
                   + [(f"Gradient\n1 filter, net {n}", f"gradient/width1/net{n}")
                      for n in config.nets[:3] if 1 in config.widths]
                   + [(f"{tf_sanity.LABELS[m]}\n{wide} filters", f"{m}/width{wide}/net{n0}") for m in config.methods])
        fig, axes = plt.subplots(len(shown), len(columns), figsize=(1.25 * len(columns), 1.35 * len(shown) + 0.5),
                                 squeeze=False)
        for r, unit in enumerate(shown):
            for c, (title, key) in enumerate(columns):
                ax = axes[r, c]
                if key in ("x", "sobel", "canny"):
                    ax.imshow(arrays[unit][key], cmap="gray")
                    ax.set_xticks([])
                    ax.set_yticks([])
                    if r == 0:
                        ax.set_title(title, fontsize=7)
                elif key in arrays[unit]:
                    visualize.show(ax, arrays[unit][key], "abs", title if r == 0 else None)
                else:
                    ax.axis("off")
        fig.suptitle("1-layer conv (random 3x3 filters) + ReLU + sum-pool: masks (absolute value) next to edge "
                     "detectors", fontsize=8)
        fig.tight_layout()
        figs["masks"] = fig
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    for ax, metric in zip(axes, ("hog_to_sobel", "spearman_deviation_to_sobel")):
        stats = mean_std([r for r in rows if r["metric"] == metric], by=("method", "width"))
        bars = [(m, w) for w in config.widths for m in config.methods if (m, w) in stats]
        bars += [(m, 0) for m in REFERENCES if (m, 0) in stats]
        ax.bar(range(len(bars)), [stats[b][0] for b in bars], yerr=[stats[b][1] for b in bars], capsize=2,
               color=[REFERENCE_COLORS[m] if w == 0 else f"C{config.widths.index(w)}" for m, w in bars])
        ax.set_xticks(range(len(bars)), [tf_sanity.LABELS.get(m, m) + (f" ({w})" if w else "") for m, w in bars],
                      rotation=60, ha="right", fontsize=6)
        ax.axhline(0, color="k", lw=0.5)
        ax.set_title(metric.replace("_", " ") + " (filters in parentheses)", fontsize=8)
    fig.suptitle(f"mean +- 1 std over {config.images} images x {len(config.nets)} random nets (constant maps left out)",
                 fontsize=8)
    fig.tight_layout()
    figs["similarity"] = fig
    return figs


def _values(rows, **where):
    return np.array([r["value"] for r in rows if all(r[k] == v for k, v in where.items())], dtype=float)


def claims(rows, config):
    n = f"{config.images} images x {len(config.nets)} random nets"
    err = _values(rows, method="gradient", metric="closed_form_rel_error")
    ties = _values(rows, method="gradient", metric="ties")
    near = _values(rows, method="gradient", metric="near_ties")
    out = [Claim("Sanity Checks, Sec. 5", "the gradient of the 1-layer conv + sum-pool net is sum_kl a_(i+k,j+l) w_kl "
                 "(a: the 3x3 ReLU activation pattern; kernel flipped for Keras' cross-correlation)",
                 f"max relative error {err.max():.1e} over {n} x widths {list(config.widths)}; pixels with "
                 f"(w*x) = 0 exactly: {int(ties.sum())}; pixels left out next to float32 near-ties: "
                 f"{int(near.sum())} of "
                 f"{len(near) * config.size ** 2}", err.max() < 1e-4, "exact", "relative error < 1e-4 (float32)")]
    ref = {(m, metric): np.nanmean(_values(rows, method=m, metric=metric))
           for m in REFERENCES for metric in ("hog_to_sobel", "spearman_deviation_to_sobel")}
    for width in config.widths:
        ratio = _values(rows, method="pattern", metric="sobel_mixed_over_uniform", width=width)
        mixed = _values(rows, method="pattern", metric="mixed_pattern_fraction", width=width)
        finite = ratio[np.isfinite(ratio)]
        out.append(Claim("Sanity Checks, Sec. 5", f"{width} filter(s): pixels whose 3x3 activation pattern is not "
                         "uniform lie on edges; uniform regions share one pattern and one gradient value",
                         f"{100 * (1 - mixed.mean()):.0f} % of pixels have uniform patterns; Sobel magnitude at "
                         f"mixed-pattern pixels is {np.mean(finite):.1f}x (min {np.min(finite):.1f}x) that at "
                         f"uniform ones ({len(finite)} of {len(ratio)} maps have both kinds)" if len(finite) else
                         "no map has both kinds of pixels", bool(len(finite)) and finite.min() > 1.5, "",
                         "mixed / uniform Sobel ratio > 1.5 wherever both exist"))
        dev = {m: np.nanmean(_values(rows, method=m, metric="spearman_deviation_to_sobel", width=width))
               for m in config.methods}
        hog = {m: np.nanmean(_values(rows, method=m, metric="hog_to_sobel", width=width)) for m in config.methods}
        const = _values(rows, method="gradient", metric="constant_map", width=width)
        floor = max(ref[("random", "spearman_deviation_to_sobel")], ref[("image", "spearman_deviation_to_sobel")])
        edge_like = [m for m in ("gradient", "guided_backprop") if m in dev]
        label = lambda m: tf_sanity.LABELS.get(m, m)  # noqa: E731
        out.append(Claim(
            "Sanity Checks, Fig. 7 / Sec. 5", f"{width} filter(s): the gradient (and Guided Backprop, identical on "
            "this net) of the random network acts like an edge detector: it marks where the Sobel edge map is high, "
            "unlike the image itself or a random mask",
            "Spearman of |m - median m| with Sobel: " + ", ".join(f"{label(m)} {v:.2f}" for m, v in dev.items())
            + f"; controls: image {ref[('image', 'spearman_deviation_to_sobel')]:.2f}, random mask "
            f"{ref[('random', 'spearman_deviation_to_sobel')]:.3f}, "
            f"Canny {ref[('canny', 'spearman_deviation_to_sobel')]:.2f}."
            " HOG similarity to Sobel (blind to edges vs input structure): "
            + ", ".join(f"{label(m)} {v:.2f}" for m, v in hog.items())
            + f"; image {ref[('image', 'hog_to_sobel')]:.2f}, random {ref[('random', 'hog_to_sobel')]:.3f}. Constant "
            f"gradient maps: {int(const.sum())} of {len(const)}; mean over {n}",
            bool(edge_like) and all(dev[m] > floor + 0.1 for m in edge_like), "",
            "deviation Spearman of Gradient and GBP > max(image, random) + 0.1"))
    spear = _values(rows, method="gradient", metric="spearman_abs_to_sobel")
    spear = spear[np.isfinite(spear)]
    out.append(Claim("Sanity Checks, Sec. 5 (our note)", "Spearman of |gradient| with the Sobel magnitude is no edge "
                     "measure for this net: uniform regions take the value sum(w) or 0, so its sign follows the filter",
                     f"{spear.min():.2f} .. {spear.max():.2f} over {n} x widths", None, "", "reported, not checked"))
    return out
