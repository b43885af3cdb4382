"""Model parameter randomization on MNIST / Fashion-MNIST: Sanity Checks Fig. 4 and 5, S&T Fig. 2.

For the paper's CNN and MLP (Adebayo et al. 2018, Sec. 3 and appendix), cascading randomization
(top layer first, accumulating; Fig. 4 B/C, Fig. 5) and independent randomization (one layer at a
time; the workshop paper's Fig. 3), with every method and its SmoothGrad / VarGrad variants. At
each stage the masks of the randomized model are compared with the trained model's by:

* ``spearman_abs`` / ``spearman_signed``: Spearman with and without absolute value (Fig. 4), after the
  original notebooks' normalization (``m / max|m|`` for 1-channel masks);
* ``ssim`` and ``hog`` (Fig. 5), original-code settings;
* ``spearman_nz``: Spearman of the absolute masks on the pixels where the input is not black
  (Sundararajan & Taly 2018, Sec. 3.1; their Fig. 2 for IG on the MNIST CNN).

Curves are mean +- 1 std over the test images. Targets are the true labels (Sundararajan & Taly's
choice); ``target="prediction"`` explains each model's own argmax, as the original code did for
Inception v3.
"""

import dataclasses

import matplotlib.pyplot as plt
import numpy as np

import tf_sanity
from experiments import common
from experiments.common import Claim, mean_std
from tf_sanity import checks, visualize
from tf_sanity.checks import statistics

NAME = "sc_cascading_mnist"
TITLE = ("Sanity Checks Fig. 4/5 (+ workshop Fig. 2/3, S&T Fig. 2): cascading and independent randomization "
         "of the MNIST / Fashion-MNIST CNN and MLP")

BASE = ("gradient", "gradient_x_input", "integrated_gradients", "guided_backprop", "gradcam", "guided_gradcam")
METRICS = ("spearman_abs", "spearman_signed", "ssim", "hog", "spearman_nz")


@dataclasses.dataclass(frozen=True)
class Config:
    """Settings of one run; see the presets.

    Attributes:
      models: ``<dataset>-<architecture>`` names (:mod:`tf_sanity.models.zoo`).
      modes: ``"cascading"`` and/or ``"independent"``.
      methods: method names (:data:`tf_sanity.METHODS`); GradCAM ones are skipped for the MLP.
      images: number of test images (the first ones of the test split).
      ig_steps, samples: IG steps and SmoothGrad / VarGrad samples.
      policy: randomization policy (``"paper"`` or ``"original_code"``); profile: training profile.
      target: ``"label"`` (true label) or ``"prediction"`` (each model's own argmax).
      backend: ``"tf_sanity"`` or ``"pair"`` (every mask through PAIR's ``saliency.core``; ``--backend pair``).
    """

    models: tuple = ("mnist-cnn", "mnist-mlp", "fashion_mnist-cnn", "fashion_mnist-mlp")
    modes: tuple = ("cascading", "independent")
    methods: tuple = BASE + ("gradient_sg", "integrated_gradients_sg", "guided_backprop_sg",
                             "gradient_vg", "integrated_gradients_vg", "guided_backprop_vg")
    images: int = 16
    ig_steps: int = 20
    samples: int = 10
    policy: str = "paper"
    profile: str = "paper"
    target: str = "label"
    seed: int = 0
    data_dir: str = ""
    batch_size: int = 256
    backend: str = "tf_sanity"


# quick: the models trained on the quick schedule (tf_sanity.models.training.PROFILES["paper_quick"]).
PRESETS = {
    "quick": Config(profile="paper_quick"),
    "paper": Config(methods=BASE + tuple(f"{m}_{v}" for m in BASE for v in ("sg", "vg")),
                    images=200, ig_steps=50, samples=50),
}



def requires(config):
    common.require_datasets(config, config.models)


def _stages(config, model_name):
    from tf_sanity.models import mnist_models
    arch = model_name.rsplit("-", 1)[1]
    groups = mnist_models.CNN_GROUPS if arch == "cnn" else mnist_models.MLP_GROUPS
    return list(groups)


def units(config):
    return [f"{model}/{mode}/{stage}" for model in config.models for mode in config.modes
            for stage in _stages(config, model)]


def _methods(config, model_name):
    return common.methods_for_model(config.methods, model_name)



def _settings(config):
    return lambda method: common.method_settings(method, config)


def _setup(config, model_name, context):
    """Loads the model and data once per run and computes the trained model's masks."""
    if model_name not in context:
        from tf_sanity.models import datasets, zoo
        data = datasets.load(model_name.rsplit("-", 1)[0], common.data_dir(config))
        model = zoo.trained_model(model_name, profile=config.profile, seed=config.seed,
                                  data_dir=common.data_dir(config))
        x = data.x_test[:config.images]
        targets = data.y_test[:config.images] if config.target == "label" else checks.randomization_test.PREDICTED
        originals = checks.randomization_test.explain_methods(model, x, targets, _methods(config, model_name),
                                                             _settings(config))
        context[model_name] = (model, x, targets, originals)
    return context[model_name]


ORDER = {"cascading": "top_down", "independent": "independent"}


def compute(config, unit, context):
    model_name, mode, stage = unit.split("/")
    model, x, targets, originals = _setup(config, model_name, context)
    rows = checks.model_randomization(model, x, targets, _methods(config, model_name), order=ORDER[mode],
                                      similarities=METRICS, groups=_stages(config, model_name), policy=config.policy,
                                      seed=config.seed, settings=_settings(config), stages=[stage],
                                      originals=originals)
    return [dict(model=model_name, mode=mode, stage=stage, stage_index=r["stage_index"], method=r["method"],
                 metric=r["metric"], image=r["image"], value=r["value"], policy=config.policy, target=config.target,
                 ig_steps=config.ig_steps, samples=config.samples) for r in rows]


def plot(rows, config):
    figs = {}
    for model_name in config.models:
        stages = _stages(config, model_name)
        methods = _methods(config, model_name)
        for mode in config.modes:
            fig, axes = plt.subplots(1, len(METRICS), figsize=(3.0 * len(METRICS), 3.2), sharey=True)
            for ax, metric in zip(axes, METRICS):
                visualize.similarity_curves(
                    ax, [r for r in rows if r["model"] == model_name and r["mode"] == mode and r["metric"] == metric],
                    methods, stages, metric.replace("_", " "), tf_sanity.LABELS)
            axes[0].set_ylabel("similarity to the trained model's masks")
            axes[-1].legend(fontsize=6, loc="center left", bbox_to_anchor=(1.0, 0.5))
            fig.suptitle(f"{model_name}, {mode} randomization ({config.images} images, mean +- 1 std)", fontsize=9)
            fig.tight_layout()
            figs[f"{model_name}-{mode}"] = fig
    if "mnist-cnn" in config.models and "cascading" in config.modes and "integrated_gradients" in config.methods:
        figs["st-fig2"] = _st_fig2(rows)
    return figs


def _st_fig2(rows):
    """Sundararajan & Taly Fig. 2: IG on the MNIST CNN, signed vs absolute Spearman vs spearman_nz."""
    fig, ax = plt.subplots(figsize=(4.2, 3.2))
    sel = [r for r in rows if r["model"] == "mnist-cnn" and r["mode"] == "cascading"
           and r["method"] == "integrated_gradients"]
    stages = [s for s in ("output", "fc1", "conv2", "conv1")]
    stats = mean_std(sel, by=("metric", "stage"))
    for metric, color, label in (("spearman_signed", "C0", "signed (no normalization)"),
                                 ("spearman_abs", "C2", "absolute value"), ("spearman_nz", "C3", "spearman_nz")):
        ax.plot(range(5), [1.0] + [stats.get((metric, s), (np.nan,))[0] for s in stages], marker="o",
                color=color, label=label)
    ax.axhline(0.424, color="C3", ls=":", lw=1, label="S&T plateau 0.424")
    ax.set_xticks(range(5), ["original"] + stages)
    ax.set_ylabel("Spearman, IG trained vs randomized")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def _mean(rows, **where):
    values = [r["value"] for r in rows if all(r[k] == v for k, v in where.items())]
    return float(np.nanmean(values)) if values else float("nan")


def _model_claims(rows, config, model_name, mode):
    """Sec. 3's model-randomization claims, checked on one model and mode (workshop: "similar for CNN and MLP")."""
    stages = _stages(config, model_name)
    top, last = stages[:2], stages[-1]  # output + the layer below it; the input layer
    where = dict(model=model_name, mode=mode)
    tag = f"{model_name}, {mode}"
    fig = "Fig. 4" if mode == "cascading" else "workshop Fig. 3"
    out = []
    grad_out = _mean(rows, **where, method="gradient", stage="output", metric="spearman_signed")
    out.append(Claim(f"Sanity Checks, {fig}", f"{tag}: Gradient's signed Spearman falls to about 0 once the output "
                     "layer is randomized", f"{grad_out:.3f}", abs(grad_out) < 0.2, "~0", "|rho| < 0.2"))
    gbp = [_mean(rows, **where, method="guided_backprop", stage=s, metric="spearman_abs") for s in top]
    grad = [_mean(rows, **where, method="gradient", stage=s, metric="spearman_abs") for s in top]
    out.append(Claim(f"Sanity Checks, Sec. 3 / {fig}", f"{tag}: Guided Backprop stays more similar than Gradient "
                     f"while only the top layers ({', '.join(top)}) are randomized",
                     f"GBP {gbp[0]:.2f}, {gbp[1]:.2f} vs Gradient {grad[0]:.2f}, {grad[1]:.2f}",
                     all(a > b for a, b in zip(gbp, grad)), "", "GBP > Gradient"))
    if "gradcam" in _methods(config, model_name):
        cam = [_mean(rows, **where, method="gradcam", stage=s, metric="spearman_abs") for s in top]
        out.append(Claim(f"Sanity Checks, Sec. 3 / {fig}", f"{tag}: GradCAM is sensitive to weights downstream of "
                         f"the last conv layer ({', '.join(top)} randomized)", ", ".join(f"{c:.2f}" for c in cam),
                         all(c < 0.5 for c in cam), "", "abs Spearman < 0.5"))
    if mode != "cascading":
        return out
    final = {m: _mean(rows, **where, method=m, stage=last, metric="spearman_abs")
             for m in ("gradient", "gradcam") if m in _methods(config, model_name)}
    out.append(Claim("Sanity Checks, Sec. 3 / Fig. 4", f"{tag}: with every layer randomized, the masks of "
                     f"{' and '.join(tf_sanity.LABELS[m] for m in final)} no longer resemble the trained model's",
                     ", ".join(f"{tf_sanity.LABELS[k]}: {v:.2f}" for k, v in final.items()),
                     all(v < 0.5 for v in final.values()), "", "abs Spearman < 0.5"))
    pairs = {m: (_mean(rows, **where, method=m, stage=last, metric="spearman_abs"),
                 _mean(rows, **where, method=m, stage=last, metric="spearman_signed"))
             for m in ("gradient_x_input", "integrated_gradients")}
    out.append(Claim("Sanity Checks, Sec. 3 ('the danger of the visual assessment') / Fig. 4",
                     f"{tag}: Gradient x Input and IG stay visually similar (high absolute Spearman) while "
                     "re-initialization disrupts their sign (signed Spearman ~0)",
                     "; ".join(f"{tf_sanity.LABELS[m]}: abs {a:.2f}, signed {b:.3f}" for m, (a, b) in pairs.items()),
                     all(a > 0.8 and abs(b) < 0.2 for a, b in pairs.values()), "",
                     "abs > 0.8 and |signed| < 0.2"))
    return out


def claims(rows, config):
    out = [c for model_name in config.models for mode in config.modes
           for c in _model_claims(rows, config, model_name, mode)]
    if "mnist-cnn" not in config.models or "cascading" not in config.modes:
        return out
    cnn = dict(model="mnist-cnn", mode="cascading")
    ig_abs = _mean(rows, **cnn, method="integrated_gradients", stage="conv1", metric="spearman_abs")
    ig_nz = _mean(rows, **cnn, method="integrated_gradients", stage="conv1", metric="spearman_nz")
    ig_signed = _mean(rows, **cnn, method="integrated_gradients", stage="conv1", metric="spearman_signed")
    out.append(Claim("Sundararajan & Taly, Sec. 3.1 / Fig. 2", "IG's absolute Spearman stays high on MNIST because "
                     "of shared zeros; restricted to non-zero pixels (spearman_nz) it is much lower",
                     f"fully randomized: abs {ig_abs:.3f}, nz {ig_nz:.3f}", ig_abs > ig_nz + 0.1, "", "abs > nz + 0.1"))
    out.append(Claim("Sundararajan & Taly, Remark 2", "without absolute value, IG's Spearman drops to ~0 when the "
                     "network is randomized", f"{ig_signed:.3f} (fully randomized)", abs(ig_signed) < 0.2, "0.0",
                     "|rho| < 0.2"))
    below_output = [r for r in rows if (r["model"], r["mode"], r["method"], r["metric"]) == (
        "mnist-cnn", "cascading", "integrated_gradients", "spearman_nz") and r["stage"] != "output"]
    levels = np.array([mean for mean, _, _ in mean_std(below_output, by=("image",)).values()])
    plateau, lo, hi = statistics.bootstrap_interval(levels, "mean", seed=config.seed)
    out.append(Claim("Sundararajan & Taly, Remark 1", "spearman_nz of IG plateaus around 0.4 after the output layer "
                     "is randomized, at the level of two 'x times random vector' maps (0.424, 99 % CI [0.413, 0.437])",
                     f"{plateau:.3f} (99 % bootstrap CI [{lo:.3f}, {hi:.3f}] over {len(levels)} images (S&T: 50), "
                     "each the mean over the stages below the output)",
                     common.overlaps_st_plateau(lo, hi), "0.424 [0.413, 0.437]", "99 % CIs overlap"))
    return out
