"""Sanity Checks (Adebayo et al. 2018), Fig. 1: saliency maps of a trained ImageNet network next to edge detectors.

Fig. 1 shows, for ImageNet inputs, the masks of Gradient, SmoothGrad, Guided Backprop, Guided GradCAM,
Integrated Gradients, IG-SmoothGrad and Gradient x Input of the trained Inception v3 beside the output
of an edge detector, which needs neither model nor data, and notes that "the methods that are most
similar to an edge detector, i.e., Guided Backprop and its variants, show minimal sensitivity to our
randomization tests".

Edge detectors (skimage: Sobel, Prewitt, Roberts, Canny) run on the grey-scale image in [0, 1] and
need nothing else. The saliency masks come from the paper's Inception v3 when its TF-slim checkpoint is
given (config ``checkpoint`` or ``$TF_SANITY_INCEPTION_CKPT``), else from EfficientNet-Lite0, a trained
stand-in that installs offline (config ``model``; :mod:`experiments.imagenet_inputs`); figures and claims
name the network. ``methods=()`` asks for the edge detectors alone. Each mask is compared with the Sobel magnitude
(Spearman of the absolute mask, the paper's main metric, and HOG similarity), as is a Gaussian random
mask (the floor). Targets: the model's predicted class (the original code's choice) or the label.
"""

import dataclasses

import matplotlib.pyplot as plt
import numpy as np
import skimage.feature
import skimage.filters

import tf_sanity
from experiments import common, imagenet_inputs
from experiments.common import Claim, mean_std
from tf_sanity import visualize
from tf_sanity.checks import metrics

NAME = "sc_fig1_edge_detectors"
TITLE = "Sanity Checks Fig. 1: saliency maps of a trained ImageNet network next to edge detectors"
ARRAYS = True

METHODS = ("gradient", "gradient_sg", "guided_backprop", "guided_gradcam", "integrated_gradients",
           "integrated_gradients_sg", "gradient_x_input")
DETECTORS = ("sobel", "prewitt", "roberts", "canny")
def _layout(mask):
    """One mask: a method's ``[H, W, 3]`` or an edge detector's ``[H, W]``."""
    return "HWC" if np.ndim(mask) == 3 else "HW"


SIMILARITIES = {
    "spearman_abs_to_sobel": lambda m, s: metrics.spearman(m, s, absolute=True, layout=_layout(m)),
    "hog_to_sobel": lambda m, s: metrics.hog_similarity(m, s, absolute=True, layout=_layout(m)),
}


@dataclasses.dataclass(frozen=True)
class Config:
    """Settings of one run.

    Attributes:
      subset: test-bed folder prefix (the paper's demo images: corn, junco, terriers, speedboat).
      images: how many of them; size: model input side (0: the network's); central_fraction: 1.0
        resizes the whole image.
      methods: saliency methods; () = edge detectors only.
      gradcam_layer: GradCAM's layer ('' = the network's: Mixed_7c for Inception v3, as the original code).
      target: ``"prediction"`` (the model's argmax, the original code) or ``"label"``.
      model: the trained ImageNet network (:data:`experiments.imagenet_inputs.NETWORKS`; ``"auto"``:
        Inception v3 with a checkpoint, else EfficientNet-Lite0).
      checkpoint: TF-slim inception_v3.ckpt; '' = ``$TF_SANITY_INCEPTION_CKPT``.
    """

    subset: str = "paper_demo/"
    images: int = 3
    size: int = 0
    central_fraction: float = 1.0
    methods: tuple = METHODS
    detectors: tuple = DETECTORS
    canny_sigma: float = 2.0
    gradcam_layer: str = ""
    target: str = "prediction"
    ig_steps: int = 20
    samples: int = 10
    model: str = "auto"
    checkpoint: str = ""
    seed: int = 0
    data_dir: str = ""
    batch_size: int = 16


PRESETS = {"quick": Config(), "paper": Config(images=5, ig_steps=50, samples=50)}


resolve = imagenet_inputs.resolve
variant = imagenet_inputs.variant
inputs = imagenet_inputs.network_fingerprint


def requires(config):
    imagenet_inputs.folder(config)
    if config.methods:
        imagenet_inputs.network(config).requires(config)


def units(config):
    # edge-only runs get their own unit names, so a later run with methods never reuses them
    return [f"{'saliency' if config.methods else 'edges'}/image{i}" for i in range(config.images)]


def edge_maps(gray, config):
    """Edge detector outputs of a grey image ``[H, W]`` in [0, 1]."""
    out = {}
    for name in config.detectors:
        if name == "canny":
            out[name] = skimage.feature.canny(gray, sigma=config.canny_sigma).astype(np.float64)
        else:
            out[name] = getattr(skimage.filters, name)(gray)
    return out


def _setup(config, context):
    if "x" not in context:
        chosen, x, labels = imagenet_inputs.load(config, config.subset, config.images, config.size,
                                                 config.central_fraction)
        context.update(x=x, labels=labels, names=[r.path.name for r in chosen])
        if config.methods:
            net = imagenet_inputs.network(config)
            context["inputs"] = net.prepare(x)
            context["model"], logits = net.load(config, context["inputs"], labels)
            context["targets"] = logits.argmax(-1) if config.target == "prediction" else net.classes(labels)
    return context


def compute(config, unit, context):
    ctx = _setup(config, context)
    i = int(unit.split("/image")[1])
    x = ctx["x"][i:i + 1]
    gray = (imagenet_inputs.grayscale(x)[0, ..., 0] + 1) / 2
    edges = edge_maps(gray, config)
    base = dict(image=i, file=ctx["names"][i], reference="sobel")
    # appendix Fig. 34: the input multiplied element-wise by the edge detector's output
    x_sobel = (x[0] + 1) / 2 * edges["sobel"][..., None]
    arrays = {"x": x[0], "x_edge/sobel": x_sobel, **{f"edge/{k}": v for k, v in edges.items()}}
    compared = {k: v for k, v in edges.items() if k != "sobel"}
    compared["random"] = metrics.random_mask(gray.shape, "gaussian", seed=[config.seed, i])
    if config.methods:
        for method in config.methods:
            mask = tf_sanity.explain(ctx["model"], ctx["inputs"][i:i + 1], method, ctx["targets"][i:i + 1],
                                     **common.method_settings(method, config))[0]
            compared[method] = arrays[f"mask/{method}"] = mask
    rows = []
    for name, mask in compared.items():
        # an RGB mask meets the Sobel map copied to its channels, so both get the same normalization
        sobel = np.broadcast_to(edges["sobel"][..., None], mask.shape) if mask.ndim == 3 else edges["sobel"]
        references = {"sobel": sobel}
        if name in config.methods:
            references["input_x_sobel"] = x_sobel
        for reference, target in references.items():
            for metric, fn in SIMILARITIES.items():
                rows.append(dict(base, reference=reference, method=name,
                                 kind="method" if name in config.methods else "reference", metric=metric,
                                 value=float(fn(mask, target)), target=config.target, ig_steps=config.ig_steps,
                                 samples=config.samples))
    return rows, arrays


def plot(rows, config, arrays):
    figs = {}
    shown = [u for u in units(config) if u in arrays]
    if shown:
        columns = [("input", "x")] + [(tf_sanity.LABELS[m], f"mask/{m}") for m in config.methods] \
            + [(f"edge detector\n({d})", f"edge/{d}") for d in config.detectors]
        fig, axes = plt.subplots(len(shown), len(columns), squeeze=False,
                                 figsize=(1.25 * len(columns), 1.35 * len(shown) + 0.5))
        for r, unit in enumerate(shown):
            for c, (title, key) in enumerate(columns):
                ax, a = axes[r, c], arrays[unit].get(key)
                if key == "x":
                    ax.imshow((a + 1) / 2)
                elif key.startswith("edge/"):
                    ax.imshow(a, cmap="gray")
                elif a is not None:
                    visualize.show(ax, a, "abs")
                ax.set_xticks([])
                ax.set_yticks([])
                if r == 0:
                    ax.set_title(title, fontsize=7)
        fig.suptitle(f"{imagenet_inputs.network(config).title}: saliency masks (absolute value) and edge "
                     f"detectors" if config.methods else "edge detectors", fontsize=8)
        fig.tight_layout()
        figs["masks"] = fig
        if config.methods:
            figs["fig34"] = _input_times_edges(config, arrays, shown)
    stats = mean_std([r for r in rows if r.get("reference", "sobel") == "sobel"], by=("method", "metric"))
    names = [m for m in tuple(config.methods) + tuple(d for d in config.detectors if d != "sobel") + ("random",)
             if (m, "spearman_abs_to_sobel") in stats]
    fig, axes = plt.subplots(1, len(SIMILARITIES), figsize=(4.2 * len(SIMILARITIES), 3.2))
    for ax, metric in zip(np.atleast_1d(axes), SIMILARITIES):
        ax.bar(range(len(names)), [stats[(m, metric)][0] for m in names],
               yerr=[stats[(m, metric)][1] for m in names], capsize=2,
               color=["C0" if m in config.methods else "C7" if m == "random" else "C1" for m in names])
        ax.set_xticks(range(len(names)), [tf_sanity.LABELS.get(m, m) for m in names], rotation=50, ha="right",
                      fontsize=7)
        ax.axhline(0, color="k", lw=0.5)
        ax.set_title(metric.replace("_", " "), fontsize=8)
    fig.suptitle(f"similarity to the Sobel edge map, mean +- 1 std over {config.images} images", fontsize=8)
    fig.tight_layout()
    figs["similarity"] = fig
    return figs


def _input_times_edges(config, arrays, shown):
    """Appendix Fig. 34: the masks next to the input multiplied element-wise by the Sobel edge map."""
    masks = [[arrays[u]["x_edge/sobel"]] + [arrays[u][f"mask/{m}"] for m in config.methods] for u in shown]
    return visualize.grid(masks, [u.split("/")[-1] for u in shown],
                          ["input x Sobel"] + [tf_sanity.LABELS[m] for m in config.methods], mode="abs",
                          image=None, title=f"{imagenet_inputs.network(config).title}: saliency masks next to the "
                          "input multiplied by an edge detector's output (appendix Fig. 34)")


def _mean(rows, method, metric, reference="sobel"):
    values = [r["value"] for r in rows if r["method"] == method and r["metric"] == metric
              and r.get("reference", "sobel") == reference]
    return float(np.nanmean(values)) if values else float("nan")


def claims(rows, config):
    metric = "spearman_abs_to_sobel"
    paper = f"Sanity Checks, Fig. 1 (on {imagenet_inputs.network(config).title})"
    detectors = {d: _mean(rows, d, metric) for d in config.detectors if d != "sobel"}
    out = [Claim(paper, "edge detectors need no model or data (reported: agreement among the "
                 "detectors, Spearman with Sobel)", ", ".join(f"{d} {v:.2f}" for d, v in detectors.items())
                 + f"; random mask {_mean(rows, 'random', metric):.3f}", None, "", "reported")]
    if not config.methods or not any(r["method"] in config.methods for r in rows):
        out.append(Claim(paper, "the methods most similar to an edge detector are Guided Backprop "
                         "and its variants", "skipped: no saliency masks in this run (methods=())", None, "", ""))
        return out
    sim = {m: _mean(rows, m, metric) for m in config.methods}
    guided = [m for m in ("guided_backprop", "guided_gradcam") if m in sim]
    others = [m for m in sim if m not in guided]
    rand = _mean(rows, "random", metric)
    text = ", ".join(f"{tf_sanity.LABELS[m]} {v:.2f}" for m, v in sorted(sim.items(), key=lambda kv: -kv[1]))
    out.append(Claim(paper, "the methods most similar to an edge detector are Guided Backprop and "
                     "its variants", f"Spearman (abs) with the Sobel map: {text}; random mask {rand:.3f}",
                     bool(guided) and bool(others) and min(sim[m] for m in guided) > max(sim[m] for m in others),
                     "", "every guided method > every other method"))
    out.append(Claim(paper, "saliency masks bear visual similarity to the edge detector's output",
                     f"{sum(v > rand + 0.1 for v in sim.values())} of {len(sim)} methods exceed the random mask's "
                     f"{rand:.3f} by 0.1 ({text})", all(v > rand + 0.1 for v in sim.values()), "",
                     "every method > random + 0.1"))
    product = {m: _mean(rows, m, metric, "input_x_sobel") for m in config.methods}
    out.append(Claim(paper.replace("Fig. 1", "appendix Fig. 34"), "saliency masks next to the input multiplied by "
                     "an edge detector's output (reported: Spearman (abs) of each mask with input x Sobel)",
                     ", ".join(f"{tf_sanity.LABELS[m]} {v:.2f}" for m, v in sorted(product.items(), key=lambda kv: -kv[1])),
                     None, "", "reported"))
    return out
