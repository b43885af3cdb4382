"""When Explanations Lie (Sixt, Granz & Landgraf, ICML 2020): CSC and sanity checks on MNIST / Fashion-MNIST.

For the paper's small convnet (appendix D, :mod:`tf_sanity.models.sixt_models`) trained on MNIST and
Fashion-MNIST, and the MNIST CNN of Adebayo et al. (:mod:`tf_sanity.models.zoo`), three checks of the
modified-backprop methods (settings in ``docs/REFERENCE.md`` section 3, implementation in
:mod:`tf_sanity.checks.csc`):

* ``csc``: cosine similarity convergence from the logit layer's input (the paper's CSC plot): median |cos| of 5
  random relevance vectors propagated down, per layer, plotted as ``1 - median |cos|`` on a log
  scale with the random-vector baseline;
* ``random_logit``: SSIM between the explanations of the true class and of a random other class
  (the paper's random-logit check), medians with bootstrap intervals;
* ``cascading``: SSIM between the trained model's explanation and the explanation after
  randomizing the layers from the top, cumulatively, with fresh weights from each layer's own
  initializer (the paper's cascading check), medians with bootstrap intervals.

Rows are tidy (one per model x check x method x layer/stage x image). Run with
``tf-sanity reproduce when_explanations_lie [--preset quick|paper]``.
"""

import dataclasses

import matplotlib.pyplot as plt
import numpy as np

from experiments import common, wel_checks
from experiments.common import Claim
from experiments.wel_checks import select as _select

NAME = "when_explanations_lie"
TITLE = ("When Explanations Lie: cosine similarity convergence, random-logit and cascading checks "
         "of modified-backprop methods on the small convnet (MNIST, Fashion-MNIST) and the MNIST CNN")

# zoo_profile="short": the paper's MNIST recipe (Adam 1e-4, batch 50, weight decay 1e-3) stopped early.
ZOO_SHORT_STEPS = 2_000
# The methods of Sixt et al.'s CSC and sanity-check figures that have backward rules here (SmoothGrad has none: no CSC).
METHODS = ("guided_backprop", "deconvnet", "rectgrad", "deep_taylor_bounded", "lrp_alpha1beta0", "lrp_alpha2beta1",
           "lrp_alpha5beta4", "lrp_preset_a", "lrp_preset_b", "pattern_attribution", "lrp_z", "gradient",
           "deeplift")
CONVERGING = METHODS[:10]  # the paper: all but LRP-z, the gradient and DeepLIFT
CHECKS = ("csc", "random_logit", "cascading")
# Where the random relevance goes in and where CSC reads it, and the alpha-beta rule's bias (issue 19).
# "tf_sanity": injected at the logit layer's input (fc5's 1,024 outputs), read at each layer's output with the
#   ReLU fused in (before the ReLU's backward rule), alpha-beta with b^+ / b^- (Bach et al. 2015).
# "authors_code": as the authors' cosine_similarity_convergence.ipynb: injected at the logit layer's output
#   (the 10 logits: `repl_shape = layer.output_shape`), read at the outputs of their layout's conv / dense
#   layers, whose ReLUs are layers of their own (after the ReLU's backward rule; the small convnet only,
#   :func:`tf_sanity.models.sixt_models.authors_layout`), alpha-beta with innvestigate 1.0.8's whole bias.
CONVENTIONS = {"tf_sanity": dict(at="input", separate_relu=False, bias=True),
               "authors_code": dict(at="output", separate_relu=True, bias="whole")}
LOGIT_LAYER = {"sixt": "fc6", "mnist-cnn": "output"}
# Layers read by CSC, bottom up (Flatten and Dropout only repeat the layer below them).
CSC_LAYERS = {"sixt": ("conv1", "conv2", "pool2", "conv3", "conv4", "pool4", "fc5"),
              "mnist-cnn": ("conv1", "pool1", "conv2", "pool2", "fc1")}


@dataclasses.dataclass(frozen=True)
class Config:
    """Settings of one run.

    Attributes:
      models: ``sixt-<dataset>`` (the small convnet; ``sixt-cifar10`` is the paper's own setting and needs
        CIFAR-10 online or in the data folder) or a :mod:`tf_sanity.models.zoo` name (``mnist-cnn``).
      checks: any of :data:`CHECKS`.
      methods: method names with backward rules (:data:`METHODS`).
      images: test images for the random-logit and cascading checks (a seeded random selection).
      csc_images: test images for CSC (the first `csc_images` of the same selection).
      n_vectors: random relevance vectors per image (5 in the paper).
      pattern_images: training images the PatternAttribution patterns are fitted on.
      sixt_profile: training profile of the small convnet (:data:`tf_sanity.models.sixt_models.PROFILES`;
        ``--set sixt_profile=3k``).
      convention: a key of :data:`CONVENTIONS` (``--set convention=authors_code``).
      zoo_profile: training profile of zoo models: ``"paper"`` (20,000 steps) or ``"short"`` (the same
        recipe stopped after :data:`ZOO_SHORT_STEPS` steps).
      bootstrap: bootstrap resamples for the intervals (10,000 in the paper).
    """

    models: tuple = ("sixt-mnist", "sixt-fashion_mnist", "mnist-cnn")
    checks: tuple = CHECKS
    methods: tuple = METHODS
    images: int = 200
    csc_images: int = 50
    n_vectors: int = 5
    pattern_images: int = 5000
    sixt_profile: str = "cpu"
    convention: str = "tf_sanity"
    zoo_profile: str = "paper"
    bootstrap: int = 10_000
    seed: int = 0
    data_dir: str = ""
    batch_size: int = 64


PRESETS = {
    "quick": Config(models=("sixt-mnist", "sixt-fashion_mnist", "mnist-cnn"), images=12, csc_images=4,
                    pattern_images=500, bootstrap=1000, zoo_profile="paper_quick"),
    "paper": Config(),
}


def _zoo_profile(name):
    from tf_sanity.models import training
    if name == "short":
        return dataclasses.replace(training.PROFILES["paper"], name="short", steps=ZOO_SHORT_STEPS)
    return name


def _dataset(model_name):
    return model_name.split("-", 1)[1] if model_name.startswith("sixt-") else model_name.rsplit("-", 1)[0]


def _family(model_name):
    return "sixt" if model_name.startswith("sixt-") else model_name


def requires(config):
    """The MNIST / Fashion-MNIST files (see :mod:`tf_sanity.models.datasets`)."""
    from tf_sanity.models import datasets
    for name in {_dataset(m) for m in config.models}:
        datasets.prepare(name, common.data_dir(config))
    from tf_sanity.errors import SanityError, unknown_name
    from tf_sanity.models import sixt_models
    unknown = [m for m in config.models if _family(m) not in LOGIT_LAYER]
    if unknown:
        raise SanityError(f"models {unknown} are not set up here; use sixt-<dataset> or mnist-cnn")
    if config.convention not in CONVENTIONS:
        raise unknown_name("convention", config.convention, CONVENTIONS)
    if config.sixt_profile not in sixt_models.PROFILES:
        raise unknown_name("sixt_profile", config.sixt_profile, sixt_models.PROFILES)


def units(config):
    out = []
    for model in config.models:
        out.append(f"{model}/model")
        out += [f"{model}/{check}/{method}" for check in config.checks for method in config.methods]
    return out


def _setup(config, model_name, context):
    """Loads the model, the test images and targets, and fits patterns, once per run."""
    if model_name in context:
        return context[model_name]
    from tf_sanity.attribution import patterns
    from tf_sanity.models import datasets, sixt_models, zoo
    data = datasets.load(_dataset(model_name), common.data_dir(config))
    if model_name.startswith("sixt-"):
        model, meta = sixt_models.trained(_dataset(model_name), config.sixt_profile, seed=config.seed,
                                          data_dir=common.data_dir(config))
    else:
        model, meta = zoo.load_or_train(model_name, profile=_zoo_profile(config.zoo_profile), seed=config.seed,
                                        data_dir=common.data_dir(config), progress=False)
    rng = np.random.default_rng(config.seed)
    index = np.sort(rng.choice(len(data.x_test), config.images, replace=False))
    fit_on = data.x_train[rng.choice(len(data.x_train), config.pattern_images, replace=False)]
    fitted = patterns.fit_patterns(model, fit_on, batch_size=config.batch_size)
    csc_model, csc_patterns = model, fitted
    if CONVENTIONS[config.convention]["separate_relu"] and model_name.startswith("sixt-"):
        csc_model = sixt_models.authors_layout(model)
        csc_patterns = patterns.fit_patterns(csc_model, fit_on, batch_size=config.batch_size)
    context[model_name] = dict(model=model, meta=meta, x=data.x_test[index], targets=data.y_test[index],
                               index=index, patterns=fitted, csc_model=csc_model, csc_patterns=csc_patterns)
    return context[model_name]


def _settings(method, setup, config, check=None):
    import tf_sanity
    out = {}
    if "bias" in tf_sanity.METHODS[method].settings:
        out["bias"] = CONVENTIONS[config.convention]["bias"]
    if method == "deep_taylor_bounded":
        out.update(low=0.0, high=1.0)  # images in [0, 1]
    if method.startswith("pattern_"):
        out["patterns"] = setup["csc_patterns" if check == "csc" else "patterns"]
    return out


def compute(config, unit, context):
    import tf_sanity
    from tf_sanity.checks import csc

    model_name, check, *rest = unit.split("/")
    setup = _setup(config, model_name, context)
    model, x, targets = setup["model"], setup["x"], setup["targets"]
    base = dict(model=model_name, check=check)
    if check == "model":
        meta = setup["meta"]
        return [dict(base, metric="test_accuracy", value=meta["test_accuracy"], steps=meta.get("steps"),
                     training_time_s=meta.get("training_time_s"), profile=config.sixt_profile
                     if model_name.startswith("sixt-") else config.zoo_profile)]
    method = rest[0]
    settings = _settings(method, setup, config, check)
    base.update(method=method, label=tf_sanity.LABELS[method])
    if check == "csc":
        n = min(config.csc_images, len(x))
        result = csc.cosine_similarity_convergence(
            setup["csc_model"], x[:n], method, LOGIT_LAYER[_family(model_name)],
            layers=list(CSC_LAYERS[_family(model_name)]), n_vectors=config.n_vectors, seed=config.seed,
            batch_size=max(1, config.batch_size // config.n_vectors), at=CONVENTIONS[config.convention]["at"],
            **settings)
        return [dict(base, layer=r["layer"], depth=r["depth"], channels=r["channels"], metric="median_abs_cos",
                     value=r["median_abs_cos"], baseline=r["baseline"], n_values=r["n_values"], images=n)
                for r in result.rows()]
    if check in ("random_logit", "cascading"):
        return wel_checks.ssim_rows(check, model, x, targets, setup["index"], method, base, seed=config.seed,
                         batch_size=config.batch_size, **settings)
    raise ValueError(f"unknown unit {unit!r}")


# ----------------------------------------------------------------------------- summaries

def csc_table(rows, model_name):
    """``{method: {layer: median |cos|}}`` and ``{layer: baseline}`` of one model."""
    table, baseline = {}, {}
    for r in _select(rows, model=model_name, check="csc"):
        table.setdefault(r["method"], {})[r["layer"]] = r["value"]
        baseline[r["layer"]] = r["baseline"]
    return table, baseline


def converged_from(values, layers, threshold=0.99):
    """The highest layer from which every layer below has median |cos| > threshold (None if none)."""
    highest = None
    for layer in layers:
        if not values.get(layer, 0) > threshold:
            break
        highest = layer
    return highest


# ----------------------------------------------------------------------------- figures

def plot(rows, config):
    import tf_sanity
    figs = {}
    models = [m for m in config.models if _select(rows, model=m)]
    if "csc" in config.checks and models:
        fig, axes = plt.subplots(1, len(models), figsize=(4.2 * len(models), 3.4), squeeze=False)
        for ax, model_name in zip(axes[0], models):
            layers = list(CSC_LAYERS[_family(model_name)])
            table, baseline = csc_table(rows, model_name)
            xs = np.arange(len(layers))
            for k, method in enumerate(config.methods):
                if method in table:
                    y = [max(1 - table[method].get(layer, np.nan), 1e-7) for layer in layers]
                    ax.plot(xs, y, label=tf_sanity.LABELS[method], **wel_checks.style(k))
            ax.plot(xs, [1 - baseline.get(layer, np.nan) for layer in layers], color="k", ls=":", lw=1.5,
                    label="random vectors")
            ax.set_yscale("log")
            ax.set_xticks(xs, layers, rotation=45, fontsize=7)
            where = "output (logits)" if CONVENTIONS[config.convention]["at"] == "output" else "input"
            ax.set_title(f"{model_name}: relevance set at {LOGIT_LAYER[_family(model_name)]}'s {where}", fontsize=8)
            ax.set_ylabel("1 - median |cos|")
        axes[0, -1].legend(fontsize=6, loc="center left", bbox_to_anchor=(1.0, 0.5))
        fig.tight_layout()
        figs["csc"] = fig
    for check in wel_checks.CHECKS:
        if check in config.checks and models:
            figs[check] = wel_checks.figure(rows, config, check, models)
    return figs


# ----------------------------------------------------------------------------- claims

def claims(rows, config):
    out = []
    for model_name in config.models:
        accuracy = _select(rows, model=model_name, check="model")
        acc = f"test accuracy {100 * accuracy[0]['value']:.2f} %" if accuracy else "model not run"
        converged = None
        if "csc" in config.checks:
            csc, converged = _csc_claims(rows, config, model_name, acc)
            out += csc
        group = CONVERGING if converged is None else converged  # the paper's list when CSC was not run
        if "random_logit" in config.checks:
            out += wel_checks.random_logit_claim(rows, config, model_name, group)
        if "cascading" in config.checks:
            out += wel_checks.cascading_claim(rows, config, model_name, group)
    return out


def _csc_claims(rows, config, model_name, acc):
    """Two claims, (a) the non-converging methods stay below 0.99, (b) every other method converges,
    and the list of methods that converged here (None if CSC has no rows)."""
    table, _ = csc_table(rows, model_name)
    if not table:
        return [], None
    layers = list(CSC_LAYERS[_family(model_name)])
    reached = {m: converged_from(table[m], layers) for m in table}

    def describe(methods):
        return ", ".join(f"{m} {table[m].get(layers[0], np.nan):.4f}" + (f" (from {reached[m]} down)" if reached[m]
                                                                          else "") for m in methods)

    converging = [m for m in config.methods if m in CONVERGING and m in table]
    others = [m for m in config.methods if m not in CONVERGING and m in table]
    where = f"{model_name} ({acc}), {len(layers)} layers below the logits; median |cos| at {layers[0]}"
    out = [Claim("When Explanations Lie, cosine similarity convergence",
                 "DeepLIFT and LRP-z (and the gradient) do not converge to rank one",
                 f"{where}: {describe(others)}", bool(others) and not any(reached[m] for m in others),
                 "< 0.99", "median |cos| <= 0.99 at the lowest layer")]
    if converging:
        done = [m for m in converging if reached[m]]
        out.append(Claim("When Explanations Lie, cosine similarity convergence",
                         "all the other modified-BP methods converge to rank one (median |cos| > 0.99)",
                         f"{where}: {len(done)}/{len(converging)} converge: {describe(converging)}",
                         len(done) == len(converging), "> 0.99", "median |cos| > 0.99 from some layer down to the lowest"))
    return out, [m for m in converging if reached[m]]
