"""Sanity Checks (Adebayo et al. 2018), Figs. 2-5: cascading and independent randomization of a
trained ImageNet network: the paper's Inception v3 when its TF-slim checkpoint is given, else
EfficientNet-Lite0 from its published weights, a trained stand-in that installs offline
(:mod:`experiments.imagenet_inputs`; config ``model``). Figures, file names and claims name the network.

* Fig. 2: masks of one image (the paper's junco) as the network's blocks (Inception v3: 17, from
  ``Logits`` down; EfficientNet-Lite0: 19, ``fc``, ``conv_head``, ``block15`` ... ``block0``, ``stem``)
  are randomized top down (cascading), every method in rows; Fig. 3: the same with one block
  randomized at a time (independent).
* Fig. 4 (Inception panels): Spearman rank correlation of the randomized model's masks with the
  trained model's, with and without absolute value; Fig. 5: SSIM and HOG similarity. Curves are
  mean +- 1 std over the ImageNet test images (the paper: 200 images of 10 classes; here the test
  bed's 200 ILSVRC2012 validation images of the 10 Imagenette classes, 20 per class).

Methods: Gradient, Guided Backprop, Integrated Gradients, Gradient x Input, GradCAM on the last block
(Inception v3: ``Mixed_7c``; EfficientNet-Lite0: ``head_relu``), Guided GradCAM, and the SmoothGrad /
VarGrad variants of Gradient, GBP and IG. Settings as the original code (``docs/REFERENCE.md``):
SmoothGrad ``stdev_spread`` 0.15 and 50 samples (plain mean), IG 50 steps with the zero baseline,
inputs in [-1, 1] resized to 299 x 299 (EfficientNet-Lite0: 224 x 224, then its own ``(x - 127) / 128``).

Named settings (config fields): ``target="prediction"`` explains the randomized model's own argmax
as the original code did (it recomputes the argmax after randomizing), ``"label"`` the true class
(Sundararajan & Taly's choice); ``policy="original_code"`` re-draws a block's trainable variables
from their own initializers (BatchNorm moving statistics kept), ``"paper"`` every variable from a
truncated normal with std 0.01; SSIM and HOG are computed without absolute value, as the paper says
it did for ImageNet (``ssim_hog_absolute=True`` for the absolute masks).

Inception v3 needs the real TF-slim checkpoint (config ``checkpoint`` or ``$TF_SANITY_INCEPTION_CKPT``);
:func:`experiments.imagenet_inputs.load_inception` refuses an untrained one, so these figures are
never drawn from random weights.

Cost (:func:`passes_per_image`, :func:`estimate`, printed when a run starts): one image at one stage takes
about ``6 + 4 * samples + ig_steps * (1 + 2 * samples)`` forward+backward passes for all methods (136 at 5
samples and 10 steps, 5,256 at the paper's 50 and 50), for each stage of each mode. The quick preset runs
the base methods and Gradient-SG (about 21 passes per image and stage). The paper preset runs the Fig. 4 / 5
curves at the paper's settings (IG 50 steps, SmoothGrad / VarGrad 50 samples) on 32 images for every method
but IG-SG and IG-VG (2,500 passes per image and stage each: left to a GPU, where
``dataclasses.replace(PRESETS["paper"], methods=METHODS, images=200)`` is the paper's full setting): 256
passes per image and stage, about 1.4 h of CPU time per mode on EfficientNet-Lite0. Every stage of every
mode is its own unit (``curves/<mode>/<stage>``), written when it finishes, so the run resumes across
invocations; each invocation first recomputes the trained model's masks (one unit's work).
"""

import dataclasses

import matplotlib.pyplot as plt
import numpy as np

import tf_sanity
from experiments import common, imagenet_inputs
from experiments.common import Claim
from tf_sanity import checks, visualize
from tf_sanity.checks import metrics

NAME = "sc_imagenet_randomization"
TITLE = ("Sanity Checks Fig. 2-5: cascading and independent randomization of a trained ImageNet network "
         "(mask grids; Spearman, SSIM, HOG curves)")
ARRAYS = True

METHODS = ("gradient", "gradient_sg", "gradient_vg", "guided_backprop", "guided_backprop_sg", "guided_backprop_vg",
           "integrated_gradients", "integrated_gradients_sg", "integrated_gradients_vg", "gradient_x_input",
           "gradcam", "guided_gradcam")
METRICS = ("spearman_abs", "spearman_signed", "ssim", "hog")
MODES = ("cascading", "independent")


@dataclasses.dataclass(frozen=True)
class Config:
    """Settings of one run.

    Attributes:
      subset, images: test-bed images for the curves (evenly spread over `subset`, i.e. over its classes).
      demo: the image of the Fig. 2 / 3 grids (test-bed path; the paper's junco).
      stages: blocks to randomize, top down; () = all of the network's (Inception v3: the 17 of
        ``slim_models.RANDOMIZATION_ORDER``; EfficientNet-Lite0: fc, conv_head, block15 ... block0, stem).
      modes: ``"cascading"`` and/or ``"independent"``.
      methods: :data:`tf_sanity.METHODS` names; gradcam_layer: GradCAM's layer ('' = the network's).
      ig_steps, samples: IG steps and SmoothGrad / VarGrad samples.
      policy: randomization policy; target: ``"prediction"`` or ``"label"`` (see the module docstring).
      ssim_hog_absolute: SSIM and HOG of absolute masks instead of signed ones.
      size, central_fraction: input side (0: the network's) and crop (1.0: the whole image, as the
        original notebooks).
      model: the trained ImageNet network (:data:`experiments.imagenet_inputs.NETWORKS`; ``"auto"``:
        Inception v3 with a checkpoint, else EfficientNet-Lite0).
      checkpoint: TF-slim inception_v3.ckpt; '' = ``$TF_SANITY_INCEPTION_CKPT``.
    """

    subset: str = "val_imagenette224/"
    images: int = 4
    demo: str = "paper_demo/ILSVRC2012_val_00015410.JPEG"
    stages: tuple = ()
    modes: tuple = MODES
    methods: tuple = METHODS
    gradcam_layer: str = ""
    ig_steps: int = 10
    samples: int = 5
    policy: str = "original_code"
    target: str = "prediction"
    ssim_hog_absolute: bool = False
    size: int = 0
    central_fraction: float = 1.0
    model: str = "auto"
    checkpoint: str = ""
    seed: int = 0
    data_dir: str = ""
    batch_size: int = 32


# quick: the base methods and SmoothGrad of the gradient, few samples and steps (about 21 passes per image
# and stage: minutes on 2 CPU cores for EfficientNet-Lite0); paper: the paper's settings (IG 50 steps, 50
# samples) for every method but IG-SG / IG-VG (ig_steps x samples passes each: for a GPU), on 32 images.
QUICK_METHODS = ("gradient", "gradient_sg", "guided_backprop", "integrated_gradients", "gradient_x_input", "gradcam",
                 "guided_gradcam")
PAPER_METHODS = ("gradient", "gradient_sg", "gradient_vg", "guided_backprop", "guided_backprop_sg",
                 "guided_backprop_vg", "integrated_gradients", "gradient_x_input", "gradcam", "guided_gradcam")
PRESETS = {"quick": Config(methods=QUICK_METHODS),
           "paper": Config(images=32, ig_steps=50, samples=50, methods=PAPER_METHODS)}


def stages(config):
    return list(config.stages or imagenet_inputs.network(config).stages())


resolve = imagenet_inputs.resolve
variant = imagenet_inputs.variant
inputs = imagenet_inputs.network_fingerprint


def requires(config):
    imagenet_inputs.network(config).requires(config)
    imagenet_inputs.folder(config)


def units(config):
    return ([f"grid/{mode}" for mode in config.modes]
            + [f"curves/{mode}/{stage}" for mode in config.modes for stage in stages(config)])


def passes_per_image(method, config):
    """Forward+backward passes of `method` per image with this config's settings (``docs/speed.md``): the
    check's count, :func:`tf_sanity.checks.plan.passes_per_input` (SmoothGrad / VarGrad ``samples`` times their
    base method's, IG ``ig_steps``, Guided GradCAM 2, any other 1)."""
    from tf_sanity.attribution import methods
    from tf_sanity.checks import plan
    return plan.passes_per_input(methods.get(method), common.method_settings(method, config))


def estimate(config, todo):
    """What the units in `todo` cost: forward+backward passes, and CPU hours at the network's measured pass cost."""
    per_stage = sum(passes_per_image(m, config) for m in config.methods)
    grids = sum(u.startswith("grid/") for u in todo)
    curves = len(todo) - grids
    # each run first explains the trained model (the demo image for the grids, the test images for the curves)
    total = per_stage * (grids * len(stages(config)) + bool(grids) + (curves + bool(curves)) * config.images)
    net = imagenet_inputs.network(config)
    hours = total * net.pass_seconds / 3600
    return (f"{NAME}: {len(todo)} units to do ({curves} curve stages of {config.images} images, {grids} grids); "
            f"{per_stage} passes per image and stage, {total:,} forward+backward passes: about {hours:.1f} h of CPU "
            f"time on {net.name} at {1000 * net.pass_seconds:.0f} ms per pass (measured on 2 CPU cores: the wall time "
            "on 2 free cores is up to half that, on a busy machine more; on a GPU far less)")


def _setup(config, context):
    """Loads (once per run) the model, the test images, the demo image and the trained model's masks."""
    if "model" not in context:
        _, x, labels, model, _ = imagenet_inputs.load_network(config, config.subset, config.images)
        _, demo, demo_label = imagenet_inputs.load(config, config.demo, 1, config.size, config.central_fraction)
        demo = imagenet_inputs.network(config).prepare(demo)
        context.update(model=model, x=x, labels=labels, demo=demo, demo_label=demo_label)
    return context


def _targets(config, labels):
    if config.target == "label":
        return imagenet_inputs.network(config).classes(labels)
    return checks.randomization_test.PREDICTED


def _originals(config, context, key):
    if f"originals/{key}" not in context:
        x, labels = (context["x"], context["labels"]) if key == "curves" else (context["demo"], context["demo_label"])
        context[f"originals/{key}"] = checks.randomization_test.explain_methods(
            context["model"], x, _targets(config, labels), config.methods, _settings(config))
    return context[f"originals/{key}"]


def _settings(config):
    return lambda method: common.method_settings(method, config)


def similarities(config):
    """The four similarities of Figs. 4 and 5 per image."""
    absolute = config.ssim_hog_absolute
    return {"spearman_abs": lambda a, b, c: metrics.spearman(a, b, absolute=True),
            "spearman_signed": lambda a, b, c: metrics.spearman(a, b, absolute=False),
            "ssim": lambda a, b, c: metrics.ssim(a, b, absolute=absolute),
            "hog": lambda a, b, c: metrics.hog_similarity(a, b, absolute=absolute)}


ORDER = {"cascading": "top_down", "independent": "independent"}


def compute(config, unit, context):
    ctx = _setup(config, context)
    kind, mode, *rest = unit.split("/")
    settings = dict(policy=config.policy, target=config.target, ig_steps=config.ig_steps, samples=config.samples,
                    ssim_hog_absolute=config.ssim_hog_absolute)
    key, x, labels = ("demo", ctx["demo"], ctx["demo_label"]) if kind == "grid" else ("curves", ctx["x"], ctx["labels"])
    arrays = {"x": ctx["demo"][0]}

    def keep(stage, method, masks):
        arrays[f"{stage}/{method}"] = masks[0]

    rows = checks.model_randomization(
        ctx["model"], x, _targets(config, labels), config.methods, order=ORDER[mode], similarities=similarities(config),
        groups=stages(config), policy=config.policy, seed=config.seed, settings=_settings(config),
        stages=None if kind == "grid" else rest, originals=_originals(config, ctx, key),
        on_masks=keep if kind == "grid" else None)
    if kind == "grid":
        return [dict(part="grid", mode=mode, stage=r["stage"], method=r["method"], metric=r["metric"], image=-1,
                     value=r["value"], **settings) for r in rows], arrays
    return [dict(part="curves", mode=mode, stage=r["stage"], stage_index=r["stage_index"], method=r["method"],
                 metric=r["metric"], image=r["image"], value=r["value"], target_changed=r.get("target_changed", 0),
                 **settings) for r in rows]


def _grid(config, arrays, mode, visual):
    a = arrays.get(f"grid/{mode}")
    if a is None:
        return None
    cols = ["original"] + stages(config)
    masks = [[a[f"original/{m}"] if c == "original" else a[f"{c}/{m}"] for c in cols] for m in config.methods]
    return visualize.grid(masks, [tf_sanity.LABELS[m] for m in config.methods], cols, mode=visual, image=a["x"],
                          title=f"{imagenet_inputs.network(config).title}, {mode} randomization ({visual}); columns: randomized block"
                          + (" and all above" if mode == "cascading" else ""))


def plot(rows, config, arrays):
    figs = {}
    for mode, fig_no in (("cascading", "fig2"), ("independent", "fig3")):
        if mode not in config.modes:
            continue
        for visual in ("abs", "diverging"):
            fig = _grid(config, arrays, mode, visual)
            if fig is not None:
                figs[f"{fig_no}-{mode}-{visual}"] = fig
    for fig_no, chosen in (("fig4", ("spearman_abs", "spearman_signed")), ("fig5", ("ssim", "hog"))):
        for mode in config.modes:
            if not any(r["part"] == "curves" and r["mode"] == mode for r in rows):
                continue
            fig, axes = plt.subplots(1, len(chosen), figsize=(6.5 * len(chosen), 4), sharey=True)
            for ax, metric in zip(axes, chosen):
                visualize.similarity_curves(
                    ax, [r for r in rows if r["part"] == "curves" and r["mode"] == mode and r["metric"] == metric],
                    config.methods, stages(config), f"{mode}: {metric.replace('_', ' ')}", tf_sanity.LABELS)
            axes[0].set_ylabel("similarity to the trained model's masks")
            axes[-1].legend(fontsize=6, loc="center left", bbox_to_anchor=(1.0, 0.5))
            fig.suptitle(f"{imagenet_inputs.network(config).title}, {mode} randomization: {config.images} images, mean +- 1 std "
                         f"(target: {config.target}, policy: {config.policy})", fontsize=9)
            fig.tight_layout()
            figs[f"{fig_no}-{mode}"] = fig
    return figs


def _mean(rows, **where):
    values = [r["value"] for r in rows if r["part"] == "curves" and all(r[k] == v for k, v in where.items())]
    return float(np.nanmean(values)) if values else float("nan")


def claims(rows, config):
    order = stages(config)
    if not any(r["part"] == "curves" and r["mode"] == "cascading" for r in rows) or len(order) < 4:
        return []
    top, second, bottom = order[0], order[1], order[-1]
    upper = order[1:len(order) // 2]   # randomized from the top down to the middle blocks
    casc = dict(mode="cascading")
    on = f" (on {imagenet_inputs.network(config).title})"
    out = []
    if "gradient" in config.methods:
        g = _mean(rows, **casc, method="gradient", stage=top, metric="spearman_signed")
        out.append(Claim("Sanity Checks, Sec. 3 / Fig. 4" + on, "the gradient is sensitive to model "
                         f"parameter randomization: its signed Spearman drops to ~0 once {top} is randomized",
                         f"{g:.3f} at {top}", abs(g) < 0.2, "~0", "|rho| < 0.2"))
    if {"guided_backprop", "gradient"} <= set(config.methods):
        gbp = [_mean(rows, **casc, method="guided_backprop", stage=s, metric="spearman_abs") for s in upper]
        grad = [_mean(rows, **casc, method="gradient", stage=s, metric="spearman_abs") for s in upper]
        low = _mean(rows, **casc, method="guided_backprop", stage=bottom, metric="spearman_abs")
        out.append(Claim("Sanity Checks, Sec. 3 / Fig. 4" + on, "Guided Backprop is invariant to higher layer weights: "
                         "it stays similar while the upper blocks are randomized, more than Gradient, and changes once "
                         "the lower layers are randomized", f"GBP abs Spearman over {upper[0]}..{upper[-1]}: mean "
                         f"{np.mean(gbp):.2f} (Gradient {np.mean(grad):.2f}); all blocks randomized: {low:.2f}",
                         np.mean(gbp) > np.mean(grad) + 0.1 and low < np.mean(gbp), "",
                         "GBP > Gradient + 0.1 on the upper blocks; lower at the bottom"))
    if "guided_gradcam" in config.methods:
        ggc = np.mean([_mean(rows, **casc, method="guided_gradcam", stage=s, metric="spearman_abs") for s in upper])
        out.append(Claim("Sanity Checks, Sec. 3" + on, "Guided GradCAM, like Guided Backprop, stays similar while the "
                         "upper blocks are randomized", f"abs Spearman over {upper[0]}..{upper[-1]}: {ggc:.2f}",
                         ggc > 0.5, "", "> 0.5"))
    if "gradcam" in config.methods:
        gc = _mean(rows, **casc, method="gradcam", stage=top, metric="spearman_abs")
        out.append(Claim("Sanity Checks, Sec. 3" + on, "GradCAM is sensitive to model weights when the randomization is "
                         f"downstream of the last convolutional layer ({config.gradcam_layer})",
                         f"abs Spearman with {top} randomized: {gc:.2f}", gc < 0.5, "", "< 0.5"))
    for method in ("integrated_gradients", "gradient_x_input"):
        if method in config.methods:
            signed = _mean(rows, **casc, method=method, stage=second, metric="spearman_signed")
            absolute = _mean(rows, **casc, method=method, stage=second, metric="spearman_abs")
            ssim = _mean(rows, **casc, method=method, stage=second, metric="ssim")
            out.append(Claim("Sanity Checks, Sec. 3 / Figs. 4-5" + on, f"{tf_sanity.LABELS[method]}: re-initialization "
                             "disrupts the sign (signed Spearman ~0 almost as soon as the top layers are randomized) "
                             "while the absolute maps and SSIM stay similar", f"with {top}..{second} randomized: "
                             f"signed {signed:.3f}, abs {absolute:.2f}, SSIM {ssim:.2f}",
                             abs(signed) < 0.2 and absolute > abs(signed) + 0.1, "",
                             "|signed| < 0.2, abs > signed + 0.1"))
    if "independent" in config.modes and "guided_backprop" in config.methods:
        ind = dict(mode="independent", method="guided_backprop", metric="spearman_abs")
        hi = np.mean([_mean(rows, **ind, stage=s) for s in order[:len(order) // 2]])
        lo = _mean(rows, **ind, stage=bottom)
        out.append(Claim("Sanity Checks, Sec. 3 / Fig. 3" + on, "independent randomization agrees: Guided Backprop is "
                         "invariant to higher layer weights and changes when a lower convolution is randomized",
                         f"GBP abs Spearman, upper blocks alone: {hi:.2f}; {bottom} alone: {lo:.2f}", hi > lo + 0.1,
                         "", "upper > lowest + 0.1"))
    return out
