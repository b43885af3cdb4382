"""Sanity Checks Fig. 6 (and its Fashion-MNIST appendix figure): the data randomization test.

The same architecture trained on true labels and on permuted labels (train accuracy > 95 %, test
accuracy at chance; :mod:`tf_sanity.models.zoo`), explained on the same test images (Sec. 4). Masks are
shown in absolute value and diverging form; rank correlations (absolute and signed Spearman), SSIM
and HOG similarity between the two models' masks are reported per method. Targets are the true
test labels for both models.

Both models use the ``original_code`` training profile: the paper states no recipe for the permuted
labels beyond "> 95 % training accuracy"; the authors' scripts trained them like the true-label
models (MLP without weight decay, 100-epoch budget). Whether the ``paper`` profile's weight decay on
every kernel lets an MLP memorize permuted labels is untested (see :mod:`experiments.sc_models`).
"""

import dataclasses

import matplotlib.pyplot as plt
import numpy as np

import tf_sanity
from experiments import common
from experiments.common import Claim, mean_std
from tf_sanity import checks, visualize

NAME = "sc_fig6_data_randomization"
TITLE = "Sanity Checks Fig. 6: masks of true-label vs random-label models (MNIST / Fashion-MNIST CNN and MLP)"
ARRAYS = True

METHODS = ("gradient", "gradient_sg", "guided_backprop", "gradcam", "guided_gradcam", "integrated_gradients",
           "gradient_x_input")


@dataclasses.dataclass(frozen=True)
class Config:
    models: tuple = ("mnist-cnn", "mnist-mlp", "fashion_mnist-cnn", "fashion_mnist-mlp")
    methods: tuple = METHODS
    images: int = 16
    shown: int = 2
    ig_steps: int = 20
    samples: int = 10
    profile: str = "original_code"
    seed: int = 0
    data_dir: str = ""
    batch_size: int = 256


# quick: the two MLPs on the quick schedule ("original_code_quick": 3,000 steps with true labels; with random
# labels, memorizing 5,000 training images); paper: the full schedule (a random-label model trains until > 95 %
# training accuracy on all 55,000 images: 25 to 50 epochs, 0.5 to 1 h for an MLP, hours for a CNN on 2 CPU cores).
PRESETS = {"quick": Config(models=("mnist-mlp", "fashion_mnist-mlp"), profile="original_code_quick"),
           "paper": Config(images=200, ig_steps=50, samples=50)}


def requires(config):
    common.require_datasets(config, config.models)


def units(config):
    return list(config.models)


def _methods(config, model_name):
    return common.methods_for_model(config.methods, model_name)


SIMILARITIES = ("spearman_abs", "spearman_signed", "ssim", "hog", "spearman_nz")


def compute(config, unit, context):
    from tf_sanity.models import datasets, zoo
    data = datasets.load(unit.rsplit("-", 1)[0], common.data_dir(config))
    x, targets = data.x_test[:config.images], data.y_test[:config.images]
    models = {labels: zoo.trained_model(unit, profile=config.profile, seed=config.seed, random_labels=labels == "random",
                                        data_dir=common.data_dir(config)) for labels in ("true", "random")}
    arrays = {"x": x[:config.shown]}

    def keep(labels, method, masks):
        arrays[f"{method}/{labels.split('_')[0]}"] = masks[:config.shown]

    rows = checks.data_randomization(models["true"], models["random"], x, targets, _methods(config, unit),
                                     similarities=SIMILARITIES, settings=lambda m: common.method_settings(m, config),
                                     on_masks=keep)
    return [dict(model=unit, **r, ig_steps=config.ig_steps, samples=config.samples) for r in rows], arrays


def plot(rows, config, arrays):
    figs = {}
    for unit, a in arrays.items():
        methods = [m for m in _methods(config, unit) if f"{m}/true" in a]
        cols = ["true labels", "random labels", "true (diverging)", "random (diverging)"]
        for k in range(len(a["x"])):  # the first `shown` test images, one grid each
            masks = [[a[f"{m}/{labels}"][k] for labels in ("true", "random", "true", "random")] for m in methods]
            figs[unit if k == 0 else f"{unit}-image{k}"] = visualize.grid(
                masks, [tf_sanity.LABELS[m] for m in methods], cols, mode=("abs", "abs", "diverging", "diverging"),
                image=a["x"][k], title=f"{unit}: data randomization test, test image {k}")
    if rows:
        stats = mean_std(rows, by=("model", "method", "metric"))
        fig, axes = plt.subplots(1, len(config.models), figsize=(3.2 * len(config.models), 3.0), squeeze=False)
        for ax, model_name in zip(axes[0], config.models):
            methods = _methods(config, model_name)
            for k, metric in enumerate(("spearman_abs", "spearman_signed", "ssim")):
                vals = [stats.get((model_name, m, metric), (np.nan, 0))[:2] for m in methods]
                ax.bar(np.arange(len(methods)) + 0.27 * (k - 1), [v[0] for v in vals], 0.27,
                       yerr=[v[1] for v in vals], label=metric, color=f"C{k}")
            ax.set_xticks(range(len(methods)), [tf_sanity.LABELS[m] for m in methods], rotation=60, fontsize=6)
            ax.set_title(model_name, fontsize=8)
            ax.axhline(0, color="k", lw=0.5)
        axes[0, 0].set_ylabel("true- vs random-label masks")
        axes[0, -1].legend(fontsize=6)
        fig.tight_layout()
        figs["similarity"] = fig
    return figs


def claims(rows, config):
    stats = mean_std(rows, by=("model", "method", "metric"))
    out = []
    for model_name in config.models:
        grad = stats.get((model_name, "gradient", "spearman_abs"), (np.nan,))[0]
        gbp = stats.get((model_name, "guided_backprop", "spearman_abs"), (np.nan,))[0]
        if np.isfinite(grad):
            out.append(Claim("Sanity Checks, Sec. 4 / Fig. 6", f"{model_name}: Gradient is sensitive: its masks "
                             "change substantially for the random-label model", f"abs Spearman {grad:.3f}",
                             grad < 0.5, "", "< 0.5"))
        ig = stats.get((model_name, "integrated_gradients", "spearman_abs"), (np.nan,))[0]
        ig_signed = stats.get((model_name, "integrated_gradients", "spearman_signed"), (np.nan,))[0]
        if np.isfinite(ig):
            out.append(Claim("Sanity Checks, Sec. 4", f"{model_name}: IG keeps the input structure (absolute masks "
                             "stay correlated) while the sign changes", f"abs {ig:.3f}, signed {ig_signed:.3f}",
                             ig > 0.5 and abs(ig_signed) < 0.2, "", "abs > 0.5 and |signed| < 0.2"))
        ig_nz = stats.get((model_name, "integrated_gradients", "spearman_nz"), (np.nan,))[0]
        if np.isfinite(ig_nz):
            out.append(Claim("Sundararajan & Taly", f"{model_name}: IG's high absolute Spearman comes from the pixels "
                             "both masks have at zero (black background); on the others it is much lower",
                             f"abs {ig:.3f}, spearman_nz {ig_nz:.3f}", ig - ig_nz > 0.3, "", "abs - nz > 0.3"))
        if np.isfinite(gbp) and np.isfinite(grad):
            out.append(Claim("Sanity Checks, Sec. 4", f"{model_name}: Guided Backprop masks stay more plausible "
                             "(more similar across labelings) than Gradient's", f"GBP {gbp:.3f} vs Gradient {grad:.3f}",
                             gbp > grad, "", "GBP > Gradient"))
    return out
