"""When Explanations Lie (Sixt, Granz & Landgraf, ICML 2020) on a trained ImageNet network: cosine
similarity convergence (Sec. 5 / Fig. 4), the random-logit check and the cascading-randomization check.

The paper runs CSC on VGG-16 and ResNet-50 trained on ImageNet and finds that every modified-backprop
method's explanation converges to rank one (median |cos| of random relevance vectors propagated down ->
1), except DeepLIFT and LRP-z (and the gradient). Here: the trained ImageNet network of the ImageNet
figures (:mod:`experiments.imagenet_inputs`; offline EfficientNet-Lite0, a ReLU6 network with residual
blocks and depthwise convolutions, a trained stand-in for the paper's networks), random vectors injected
at the input of the logit layer (``fc``: the pooled 1280 features), read at the output of every block
(``blockN_project_bn``, or ``blockN_add`` where the block adds its input) and of the stem, and at the
image. Settings of CSC as :mod:`tf_sanity.checks.csc` (5 vectors, all pairs, median over positions,
pairs and images; the random-vector baseline ``~0.6745 / sqrt(C)``). PatternNet / PatternAttribution are
left out (their patterns need ImageNet training images, and ``fit_patterns`` does not estimate depthwise
kernels).

The random-logit and cascading checks (:mod:`experiments.wel_checks`, as the small convnet's in
:mod:`experiments.when_explanations_lie`): SSIM (flipped, the authors' normalization) between the
explanation of each image's true class and of a uniformly drawn other class; and between the trained
network's explanation and the explanation after randomizing its blocks from the top, cumulatively, with
fresh weights from each layer's initializer (BatchNorm statistics included), over the network's 19
randomization groups (``fc``, ``conv_head``, ``block15`` ... ``block0``, ``stem``). Medians with 99 %
bootstrap intervals. The claims take as "converging" the methods whose CSC reached 0.99 at the stem here.
"""

import dataclasses

import matplotlib.pyplot as plt
import numpy as np

from experiments import imagenet_inputs, wel_checks
from experiments.common import Claim

NAME = "wel_imagenet_csc"
TITLE = ("When Explanations Lie, Fig. 4 on ImageNet: cosine similarity convergence of modified-backprop methods "
         "on a trained ImageNet network")

METHODS = ("guided_backprop", "deconvnet", "rectgrad", "deep_taylor_bounded", "lrp_alpha1beta0", "lrp_alpha2beta1",
           "lrp_alpha5beta4", "lrp_preset_a", "lrp_preset_b", "lrp_z", "gradient", "deeplift")  # the paper's set
NOT_CONVERGING = ("lrp_z", "gradient", "deeplift")  # the paper: all others converge
# EfficientNet-Lite0's inputs are (x - 127) / 128 for x in 0..255: the bounds of deep_taylor_bounded.
BOUNDS = {"efficientnet_lite0": (-127.0 / 128, 1.0), "inception_v3": (-1.0, 1.0)}
CHECKS = ("csc",) + wel_checks.CHECKS


@dataclasses.dataclass(frozen=True)
class Config:
    """Settings of one run.

    Attributes:
      checks: any of :data:`CHECKS`.
      methods: methods with backward rules (:data:`METHODS`); images: test-bed images (evenly spread
        over `subset`), the same for every check; n_vectors: random vectors per image (5 in the paper).
      bootstrap: bootstrap resamples of the SSIM checks' intervals (10,000 in the paper).
      model: the trained ImageNet network (``"auto"``: Inception v3 with a checkpoint, else
        EfficientNet-Lite0); this experiment reads EfficientNet-Lite0's block outputs.
    """

    checks: tuple = CHECKS
    methods: tuple = METHODS
    images: int = 8
    subset: str = "val_imagenette224/"
    n_vectors: int = 5
    bootstrap: int = 1000
    size: int = 0
    model: str = "auto"
    checkpoint: str = ""
    seed: int = 0
    data_dir: str = ""
    batch_size: int = 4


# quick: 8 images (about 5 min of CPU time; 27 min wall on 2 busy cores); paper: 50 images, 10,000 resamples.
PRESETS = {"quick": Config(), "paper": Config(images=50, bootstrap=10_000)}

resolve = imagenet_inputs.resolve
variant = imagenet_inputs.variant
inputs = imagenet_inputs.network_fingerprint


def requires(config):
    from tf_sanity.errors import SanityError
    net = imagenet_inputs.network(config)
    if net.name != "efficientnet_lite0":
        raise SanityError(f"{NAME} reads EfficientNet-Lite0's block outputs; run it with --model efficientnet_lite0")
    net.requires(config)
    imagenet_inputs.folder(config)


def units(config):
    return [f"{check}/{method}" for check in config.checks for method in config.methods]


def read_layers():
    """EfficientNet-Lite0's block outputs, bottom up: the stem, then each block's last layer."""
    from tf_sanity.models import efficientnet_lite
    out = ["stem_relu"]
    for i, (_, stride, _, c_in, c_out) in enumerate(efficientnet_lite.block_args()):
        out.append(f"block{i}_add" if stride == 1 and c_in == c_out else f"block{i}_project_bn")
    return out + ["head_relu"]


def _setup(config, context):
    """Loads the network and the images once per run; targets: the true classes."""
    if "model" not in context:
        _, x, labels, model, _ = imagenet_inputs.load_network(config, config.subset, config.images)
        context.update(model=model, x=x, targets=imagenet_inputs.network(config).classes(labels))
    return context


def compute(config, unit, context):
    import tf_sanity
    from tf_sanity.checks import csc
    ctx = _setup(config, context)
    check, method = unit.split("/")
    settings = dict(zip(("low", "high"), BOUNDS[config.model])) if method == "deep_taylor_bounded" else {}
    base = dict(model=config.model, check=check, method=method, label=tf_sanity.LABELS[method], images=config.images)
    if check in wel_checks.CHECKS:
        return wel_checks.ssim_rows(check, ctx["model"], ctx["x"], ctx["targets"], np.arange(len(ctx["x"])), method,
                                    base, seed=config.seed, batch_size=config.batch_size, **settings)
    result = csc.cosine_similarity_convergence(ctx["model"], ctx["x"], method, "fc", layers=["input"] + read_layers(),
                                               n_vectors=config.n_vectors, seed=config.seed,
                                               batch_size=config.batch_size, **settings)
    return [dict(base, layer=r["layer"], depth=r["depth"], channels=r["channels"], metric="median_abs_cos",
                 value=r["median_abs_cos"], baseline=r["baseline"], n_values=r["n_values"]) for r in result.rows()]


def plot(rows, config):
    figs = {}
    title = imagenet_inputs.network(config).title
    if any(r["check"] == "csc" for r in rows):
        figs["csc"] = _csc_figure([r for r in rows if r["check"] == "csc"], config, title)
    for check in wel_checks.CHECKS:
        if any(r["check"] == check for r in rows):
            what = "true class vs a random class" if check == "random_logit" else "cascading randomization"
            figs[check] = wel_checks.figure(rows, config, check, [config.model],
                                            f"{title}: {what}, {config.images} images")
    return figs


def _csc_figure(rows, config, title):
    import tf_sanity
    layers = ["input"] + read_layers()
    fig, ax = plt.subplots(figsize=(9, 4.2))
    for k, method in enumerate(config.methods):
        by_layer = {r["layer"]: r["value"] for r in rows if r["method"] == method}
        values = np.array([1 - by_layer.get(layer, np.nan) for layer in layers])
        ax.plot(range(len(layers)), np.maximum(values, 1e-6), label=tf_sanity.LABELS[method], **wel_checks.style(k))
    baseline = {r["layer"]: r["baseline"] for r in rows}
    ax.plot(range(len(layers)), [1 - baseline.get(layer, np.nan) for layer in layers], color="k", ls=":",
            label="random vectors")
    ax.set_yscale("log")
    ax.set_xticks(range(len(layers)), [layer.replace("_project_bn", "").replace("_add", "+") for layer in layers],
                  rotation=90, fontsize=6)
    ax.set_ylabel("1 - median |cos|  (0: rank one)")
    ax.legend(fontsize=6, ncol=2)
    ax.set_title(f"CSC from the logit layer's input on {title}, {config.images} images, {config.n_vectors} vectors",
                 fontsize=8)
    fig.tight_layout()
    return fig


def claims(rows, config):
    import tf_sanity
    on = f"When Explanations Lie (on {imagenet_inputs.network(config).title}; the paper: VGG-16, ResNet-50)"
    csc_rows = [r for r in rows if r["check"] == "csc"]
    at_input = {r["method"]: r["value"] for r in csc_rows if r["layer"] == "input"}
    first = {r["method"]: r["value"] for r in csc_rows if r["layer"] == "stem_relu"}
    out = []
    for method in config.methods:
        if method not in first:
            continue
        converges = method not in NOT_CONVERGING
        value = first[method]
        out.append(Claim(f"{on}, Fig. 4", f"{tf_sanity.LABELS[method]} "
                         f"{'converges' if converges else 'does not converge'} to rank one at the first block",
                         f"median |cos| at the stem's output {value:.3f} "
                         f"(image: {at_input.get(method, float('nan')):.3f})",
                         bool(value > 0.99) if converges else bool(value < 0.99), "> 0.99" if converges else "< 0.99",
                         "median |cos| at stem_relu"))
    # The SSIM checks' "converging" methods: those whose CSC converged here (the paper's list without CSC rows).
    converging = [m for m in config.methods if m not in NOT_CONVERGING and (not first or first.get(m, 0) > 0.99)]
    out += wel_checks.random_logit_claim(rows, config, config.model, converging, on)
    out += wel_checks.cascading_claim(rows, config, config.model, converging, on)
    return out
