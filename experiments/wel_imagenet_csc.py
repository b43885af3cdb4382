"""When Explanations Lie (Sixt, Granz & Landgraf, ICML 2020), Sec. 5 / Fig. 4: cosine similarity
convergence on a trained ImageNet network.

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
"""

import dataclasses

import matplotlib.pyplot as plt
import numpy as np

from experiments import imagenet_inputs
from experiments.common import Claim

NAME = "wel_imagenet_csc"
TITLE = ("When Explanations Lie, Fig. 4 on ImageNet: cosine similarity convergence of modified-backprop methods "
         "on a trained ImageNet network")

METHODS = ("guided_backprop", "deconvnet", "rectgrad", "deep_taylor_bounded", "lrp_alpha1beta0", "lrp_alpha2beta1",
           "lrp_alpha5beta4", "lrp_preset_a", "lrp_preset_b", "lrp_z", "gradient", "deeplift")  # the paper's set
NOT_CONVERGING = ("lrp_z", "gradient", "deeplift")  # the paper: all others converge
# EfficientNet-Lite0's inputs are (x - 127) / 128 for x in 0..255: the bounds of deep_taylor_bounded.
BOUNDS = {"efficientnet_lite0": (-127.0 / 128, 1.0), "inception_v3": (-1.0, 1.0)}


@dataclasses.dataclass(frozen=True)
class Config:
    """Settings of one run.

    Attributes:
      methods: methods with backward rules (:data:`METHODS`); images: test-bed images (evenly spread
        over `subset`); n_vectors: random vectors per image (5 in the paper).
      model: the trained ImageNet network (``"auto"``: Inception v3 with a checkpoint, else
        EfficientNet-Lite0); this experiment reads EfficientNet-Lite0's block outputs.
    """

    methods: tuple = METHODS
    images: int = 4
    subset: str = "val_imagenette224/"
    n_vectors: int = 5
    size: int = 0
    model: str = "auto"
    checkpoint: str = ""
    seed: int = 0
    data_dir: str = ""
    batch_size: int = 4


PRESETS = {"quick": Config(), "paper": Config(images=50)}

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
    return list(config.methods)


def read_layers():
    """EfficientNet-Lite0's block outputs, bottom up: the stem, then each block's last layer."""
    from tf_sanity.models import efficientnet_lite
    out = ["stem_relu"]
    for i, (_, stride, _, c_in, c_out) in enumerate(efficientnet_lite.block_args()):
        out.append(f"block{i}_add" if stride == 1 and c_in == c_out else f"block{i}_project_bn")
    return out + ["head_relu"]


def compute(config, unit, context):
    import tf_sanity
    from tf_sanity.checks import csc
    if "model" not in context:
        _, x, _, model, _ = imagenet_inputs.load_network(config, config.subset, config.images)
        context.update(model=model, x=x)
    settings = {}
    if unit == "deep_taylor_bounded":
        settings = dict(zip(("low", "high"), BOUNDS[config.model]))
    result = csc.cosine_similarity_convergence(context["model"], context["x"], unit, "fc",
                                               layers=["input"] + read_layers(), n_vectors=config.n_vectors,
                                               seed=config.seed, batch_size=config.batch_size, **settings)
    return [dict(method=unit, label=tf_sanity.LABELS[unit], layer=r["layer"], depth=r["depth"],
                 channels=r["channels"], metric="median_abs_cos", value=r["median_abs_cos"], baseline=r["baseline"],
                 n_values=r["n_values"], images=config.images, model=config.model) for r in result.rows()]


def plot(rows, config):
    import tf_sanity
    layers = ["input"] + read_layers()
    fig, ax = plt.subplots(figsize=(9, 4.2))
    for k, method in enumerate(config.methods):
        by_layer = {r["layer"]: r["value"] for r in rows if r["method"] == method}
        values = np.array([1 - by_layer.get(layer, np.nan) for layer in layers])
        ax.plot(range(len(layers)), np.maximum(values, 1e-6), marker="o", ms=3, lw=1, color=f"C{k % 10}",
                ls="-" if k < 10 else "--", label=tf_sanity.LABELS[method])
    baseline = {r["layer"]: r["baseline"] for r in rows}
    ax.plot(range(len(layers)), [1 - baseline.get(layer, np.nan) for layer in layers], color="k", ls=":",
            label="random vectors")
    ax.set_yscale("log")
    ax.set_xticks(range(len(layers)), [layer.replace("_project_bn", "").replace("_add", "+") for layer in layers],
                  rotation=90, fontsize=6)
    ax.set_ylabel("1 - median |cos|  (0: rank one)")
    ax.legend(fontsize=6, ncol=2)
    ax.set_title(f"CSC from the logit layer's input on {imagenet_inputs.network(config).title}, "
                 f"{config.images} images, {config.n_vectors} vectors", fontsize=8)
    fig.tight_layout()
    return {"": fig}


def claims(rows, config):
    import tf_sanity
    paper = f"When Explanations Lie, Fig. 4 (on {imagenet_inputs.network(config).title}; the paper: VGG-16, ResNet-50)"
    at_input = {r["method"]: r["value"] for r in rows if r["layer"] == "input"}
    first = {r["method"]: r["value"] for r in rows if r["layer"] == "stem_relu"}
    out = []
    for method in config.methods:
        if method not in first:
            continue
        converges = method not in NOT_CONVERGING
        value = first[method]
        out.append(Claim(paper, f"{tf_sanity.LABELS[method]} {'converges' if converges else 'does not converge'} "
                         "to rank one at the first block", f"median |cos| at the stem's output {value:.3f} "
                         f"(image: {at_input.get(method, float('nan')):.3f})",
                         bool(value > 0.99) if converges else bool(value < 0.99), "> 0.99" if converges else "< 0.99",
                         "median |cos| at stem_relu"))
    return out
