"""Cosine similarity convergence and the sanity checks of "When Explanations Lie" (Sixt, Granz &
Landgraf, ICML 2020), with the settings of their code (``docs/REFERENCE.md`` section 3).

**CSC**: for a layer ``L`` and each image, the signal at ``L``'s output (``at="output"``: where the
authors' ``cosine_similarity_convergence.ipynb`` sets it, a tensor shaped like ``layer.output``; for the
logit layer, the logits) or at its input (``at="input"``, the output of the layer below) is replaced
by ``n_vectors = 5`` random ``N(0, 1)`` tensors, and each is propagated down with the method's backward rules
(:func:`tf_sanity.attribution.methods.make_backprop`). At every lower layer ``l`` (its output; ``"input"`` is the
image) the result is reshaped to ``positions x channels``; for all 10 pairs of the 5 vectors and
every position the absolute cosine similarity across channels is taken, and the median over
positions, pairs and images is reported (NaNs from all-zero vectors dropped). What is propagated is
each method's own signal: the gradient-like signal for gradient, GBP, DeConvNet, RectGrad and the
pattern methods, relevance for LRP / DeepTaylor, and DeepLIFT's contributions
``multiplier * (a(x) - a(reference))`` (the authors read ``_target_contrib_vars``). The baseline is
the median ``|cos|`` of independent Gaussian vectors with as many channels (about
``0.6745 / sqrt(C)``); a method whose explanation ignores the layers above ``l`` reaches
``|cos| -> 1`` (the paper: > 0.99 for all modified-backprop methods but DeepLIFT and LRP-z). A layer
with one channel (a grey image) has ``|cos| = 1`` by construction and is left out by default.

**Random-logit check**: explain the target and another class drawn uniformly from the
rest, and compare with :func:`ssim_flipped`.

**Cascading check**: randomize the layers from the top down, cumulatively, with
fresh weights drawn from each layer's own initializer (the authors copied the weights of a newly
initialized model, BatchNorm statistics included: :data:`FRESH_WEIGHTS`), and compare each
stage's explanation of the original target with the trained model's by :func:`ssim_flipped`.

**SSIM** as the authors computed it: the explanation is reduced over channels (``"abs_max"``,
``max_c |m|``, for gradient-like methods; ``"sum"``, ``sum_c m``, for attributions), scaled so that
its 0.5th and 99.5th percentiles map to 0 and 1 and clipped (100th percentile for RectGrad, whose
maps are mostly zero), and ``max(SSIM(x, y), SSIM(x, -y))`` is taken with a 5 x 5 uniform window
(skimage ``compare_ssim(win_size=5)``; the data range is 2, what skimage 0.15 assumed for float
images). Their ``normalize_sanity`` had the two percentiles swapped, which only flips both maps.

**Intervals**: medians with bootstrap intervals, 10,000 resamples, 0.5th / 99.5th percentiles
(:func:`tf_sanity.checks.statistics.bootstrap_median`).
"""

import dataclasses
import functools
import itertools

import keras
import numpy as np

from tf_sanity.attribution import engine, graph, methods
from tf_sanity.checks import metrics, randomization
from tf_sanity.checks.randomization_test import model_randomization
from tf_sanity.errors import SanityError

N_VECTORS = 5
FRESH_WEIGHTS = randomization.Policy("layer", batchnorm="all")



# ----------------------------------------------------------------------------- CSC

@dataclasses.dataclass
class CSC:
    """Cosine similarity convergence of one method from one layer.

    Attributes:
      method: method name; start: the layer at whose input (or output, `at="output"`) the random signal was injected.
      layers: the layers read, bottom up (``"input"`` is the image).
      channels: channel count C of each layer's output.
      median_abs_cos: median |cos| per layer (NaN if every value was NaN).
      baseline: median |cos| of random Gaussian C-vectors per layer.
      n_values: number of finite |cos| values per layer.
      values: the finite |cos| values per layer (for intervals).
    """

    method: str
    start: str
    layers: list
    channels: list
    median_abs_cos: np.ndarray
    baseline: np.ndarray
    n_values: list
    values: list = dataclasses.field(repr=False)

    def rows(self):
        """One tidy dict per layer."""
        return [dict(method=self.method, start=self.start, layer=layer, depth=i, channels=c,
                     median_abs_cos=float(m), baseline=float(b), n_values=n)
                for i, (layer, c, m, b, n) in enumerate(zip(self.layers, self.channels, self.median_abs_cos,
                                                            self.baseline, self.n_values))]


def lower_layers(model, start):
    """The layers below `start` (ancestors of its input) in model order, bottom up; ``"input"`` first."""
    sub = keras.Model(model.inputs, graph.input_tensor(model, start))
    return ["input"] + [layer.name for layer in sub.layers if not isinstance(layer, keras.layers.InputLayer)]


def _channels(model, name):
    shape = model.inputs[0].shape if name == "input" else model.get_layer(name).output.shape
    return int(shape[-1])


def pairwise_abs_cos(signals):
    """|cos| across the last axis for every pair of vectors, position and image.

    Args:
      signals: ``[images, vectors, ..., channels]``.

    Returns:
      A flat array of ``images * pairs * positions`` values (NaN where a vector is all zero).
    """
    s = np.asarray(signals, np.float64)
    s = s.reshape(s.shape[0], s.shape[1], -1, s.shape[-1])  # images x vectors x positions x channels
    norms = np.linalg.norm(s, axis=-1)
    out = []
    for i, j in itertools.combinations(range(s.shape[1]), 2):
        dot = (s[:, i] * s[:, j]).sum(-1)
        denom = norms[:, i] * norms[:, j]
        with np.errstate(invalid="ignore", divide="ignore"):
            out.append(np.abs(np.where(denom > 0, dot / np.where(denom > 0, denom, 1.0), np.nan)))
    return np.stack(out, 1).ravel()


@functools.lru_cache(maxsize=None)
def random_baseline(channels, n=20_000, seed=0):
    """Median |cos| of pairs of independent N(0, I_C) vectors (about 0.6745 / sqrt(C) for large C)."""
    rng = np.random.default_rng([seed, channels])
    u, v = rng.standard_normal((2, n, channels))
    cos = (u * v).sum(-1) / (np.linalg.norm(u, axis=-1) * np.linalg.norm(v, axis=-1))
    return float(np.median(np.abs(cos)))


def cosine_similarity_convergence(model, images, method, start, *, layers=None, n_vectors=N_VECTORS, seed=0,
                                  batch_size=16, keep_single_channel=False, at="input", **settings):
    """CSC of `method` on `model` with random signals injected at the input (or output) of layer `start`.

    Args:
      model: a functional or Sequential Keras model (logits output).
      images: images shaped like the model input.
      method: a registered method that is one backward pass (gradient, guided_backprop, the LRP,
        DeepTaylor, DeepLIFT, DeConvNet, RectGrad and pattern methods).
      start: the layer whose input (or output) gets the random signal (e.g. the logit layer's name).
      at: ``"input"`` or ``"output"`` (the authors' notebook) of `start`.
      layers: layer names to read (default: every layer below `start`, and ``"input"``).
      n_vectors: random vectors per image (5; pairs: ``n (n - 1) / 2``).
      seed: seeds the random vectors.
      batch_size: images per compiled call (``batch_size * n_vectors`` rows).
      keep_single_channel: also report layers with one channel (|cos| = 1 by construction).
      **settings: the method's settings (e.g. ``low``/``high``, ``patterns``, ``reference``).

    Returns:
      A :class:`CSC`.
    """
    if n_vectors < 2:
        raise SanityError(f"n_vectors must be >= 2 to form pairs, got {n_vectors}")
    bp = methods.make_backprop(method, **settings)
    x, _, _ = methods.check_inputs(model, images, np.zeros(len(np.asarray(images)), np.int32))
    names = list(layers) if layers is not None else lower_layers(model, start)
    if not keep_single_channel and layers is None:
        names = [n for n in names if _channels(model, n) > 1]
    if at not in ("input", "output"):
        raise SanityError(f"at must be 'input' or 'output', got {at!r}")
    fn = engine.layer_function(model, bp.composite, start, names, paired=bp.paired, at=at)
    ref = bp.reference_like(x) if bp.paired else x[:0]
    start_tensor = graph.input_tensor(model, start) if at == "input" else graph.get_layer(model, start).output
    start_shape = tuple(start_tensor.shape[1:])
    rng = np.random.default_rng(seed)
    values = [[] for _ in names]
    for lo in range(0, len(x), batch_size):
        batch = np.repeat(x[lo:lo + batch_size], n_vectors, axis=0)
        injected = rng.standard_normal((len(batch),) + start_shape).astype(np.float32)
        reference = np.repeat(ref[lo:lo + batch_size], n_vectors, axis=0) if bp.paired else batch[:0]
        signals, deltas = fn(batch, reference, injected)
        for k, (signal, delta) in enumerate(zip(signals, deltas)):
            signal = np.asarray(signal) * (np.asarray(delta) if bp.paired else 1.0)
            cos = pairwise_abs_cos(signal.reshape((-1, n_vectors) + signal.shape[1:]))
            values[k].append(cos[np.isfinite(cos)])
    values = [np.concatenate(v) for v in values]
    channels = [_channels(model, n) for n in names]
    return CSC(method, start, names, channels,
               np.array([np.median(v) if v.size else np.nan for v in values]),
               np.array([random_baseline(c) for c in channels]), [int(v.size) for v in values], values)


# ----------------------------------------------------------------------------- SSIM and the checks

def ssim_batch(masks_a, masks_b, method):
    """:func:`tf_sanity.checks.metrics.ssim_flipped` per image of two mask batches ``[B, H, W, C]``.

    Each mask is reduced over channels and normalized as the authors did for `method` (its
    ``heatmap_reduction`` and ``heatmap_percentile`` metadata).
    """
    meta = methods.get(method)
    return np.array([metrics.ssim_flipped(a, b, meta.heatmap_percentile) for a, b in
                     zip(metrics.heatmap(masks_a, meta.heatmap_reduction), metrics.heatmap(masks_b, meta.heatmap_reduction))])


def random_other_class(targets, n_classes, seed=0):
    """For each target, a class drawn uniformly from the other ``n_classes - 1`` classes."""
    targets = np.asarray(targets)
    rng = np.random.default_rng(seed)
    draw = rng.integers(0, n_classes - 1, size=len(targets))
    return (draw + (draw >= targets)).astype(np.int32)


def random_logit_ssim(model, images, targets, method, *, seed=0, **settings):
    """Random-logit check: SSIM between the explanations of the target and of a random other class.

    Returns:
      ``(ssim per image, the other classes)``.
    """
    others = random_other_class(targets, model.output_shape[-1], seed)
    a = methods.explain(model, images, method, targets, **settings)
    b = methods.explain(model, images, method, others, **settings)
    return ssim_batch(a, b, method), others


def cascading_ssim(model, images, targets, method, *, groups=None, policy=FRESH_WEIGHTS, seed=0, **settings):
    """Cascading check: SSIM between each randomization stage's explanation and the trained model's.

    Args:
      groups: randomization groups (default: every layer with weights, top down).
      policy: re-initialization (default: fresh weights from each layer's initializer).

    Returns:
      ``[(stage name, ssim per image), ...]`` top down; the model is restored afterwards.
    """
    rows = model_randomization(model, images, targets, [method], groups=groups, policy=policy, seed=seed,
                               settings={method: settings},
                               similarities={"ssim_flipped": lambda a, b, c: ssim_batch(a, b, c.method.name)})
    out = {}
    for row in rows:
        out.setdefault(row["stage"], []).append(row["value"])
    return [(stage, np.array(values)) for stage, values in out.items()]
