"""PatternNet and PatternAttribution (Kindermans et al. 2018, "Learning how to explain neural
networks"), two of the modified-backprop methods of "When Explanations Lie" (Sixt et al. 2020).

**Patterns.** For a layer with (canonized, BatchNorm folded) output ``y_j = w_j^T x + b_j``, the
pattern ``a_j`` is the direction of the *signal* in ``x`` that ``y_j`` measures. The two-component
signal estimator for a ReLU layer (Kindermans et al., ``S_a+-``) uses only the points where
the ReLU is active (``y_j > 0``; the negative regime is blocked by the ReLU)::

    a_j = (E+[x y_j] - E+[x] E+[y_j]) / (w_j^T E+[x y_j] - w_j^T E+[x] E+[y_j])

For layers whose output does not go through a ReLU (the logits) the linear estimator ``S_a`` uses
all points, ``a_j = cov[x, y_j] / (w_j^T cov[x, y_j])``. For convolutions ``x`` is the input patch
at each output position (zero padding included) and the statistics run over images and positions.
:func:`fit_patterns` gathers them in one pass over training images; each sum over patches is the
kernel gradient of a bilinear form (``sum_p patch_p y_p = d/dW <conv(x, W), y>``), so any stride,
padding or dilation is handled exactly by the layer's own convolution.

**Backward passes.** Both replace the weights of every Dense/Conv layer (and of a BatchNorm that is
not folded) in an otherwise plain gradient pass, ReLU gradients included, seeded with the target
score (innvestigate's default head mapping):

* PatternNet: weights -> patterns ``A`` (the signal);
* PatternAttribution: weights -> ``W * A`` element-wise (the attribution).

Patterns are fixed arrays: explaining a model whose weights were randomized in place (cascading
randomization) keeps the patterns fitted to the trained model, as Sixt et al. did with
innvestigate's pre-computed patterns; PatternAttribution then uses ``W_random * A``.
"""

import dataclasses
import functools

import keras
import numpy as np
import tensorflow as tf

from tf_sanity.attribution import engine
from tf_sanity.attribution.backprop import Backprop
from tf_sanity.attribution.canonizers import Affine, feeds_relu, layer_kind
from tf_sanity.attribution.graph import DEPTHWISE_TYPES, SEPARABLE_TYPES, input_tensor, leaf_layers, model_graph
from tf_sanity.attribution.registry import backprop_method
from tf_sanity.attribution.rules import AffineRule, safe_divide, strict_composite, vjp
from tf_sanity.errors import SanityError


# Outputs whose variance over the fitting points is below this fraction of their mean square get a
# zero pattern: their covariance is rounding noise (e.g. a neuron active on a single point).
MIN_RELATIVE_VARIANCE = 1e-6


@dataclasses.dataclass(frozen=True, eq=False)
class Patterns:
    """Patterns of a model's Dense/Conv (and unfolded BatchNorm) layers.

    Attributes:
      model_name: the model they were fitted to.
      arrays: layer name -> pattern, shaped like the layer's (BN-folded) kernel.
      estimators: layer name -> ``"relu"`` (two-component ``S_a+-``) or ``"linear"`` (``S_a``).
      counts: layer name -> number of points (image x position) used per output channel; channels
        with fewer than 2 points, or with (numerically) constant output, get a zero pattern.
      n_images: how many images they were fitted on.
    """

    model_name: str
    arrays: dict
    estimators: dict
    counts: dict
    n_images: int


def pattern_layers(model):
    """The layers that get a pattern: Dense/Conv layers and BatchNorm layers that are not folded."""
    return [layer for layer in leaf_layers(model) if layer_kind(layer) in ("kernel", "batchnorm")
            and not isinstance(layer, DEPTHWISE_TYPES + SEPARABLE_TYPES)]


def _channel_reduce_axes(affine, rank):
    axis = affine.channel_axis(rank) % rank
    return [a for a in range(rank) if a != axis]


def _statistics_function(model, layers):
    """Compiled ``f(images) -> [(sum x*y, sum x, sum y, sum y^2, count) per layer]`` over masked points."""
    def make():
        inputs = keras.Model(model.inputs, [input_tensor(model, layer.name) for layer in layers])
        affines = [Affine(layer) for layer in layers]
        relu = [feeds_relu(layer) for layer in layers]
        return (lambda images: _statistics(inputs, affines, relu, images),
                [tf.TensorSpec([None, *model.input_shape[1:]], tf.float32)])

    return engine.cached_function(model, ("pattern_statistics", tuple(layer.name for layer in layers)), make)


def _statistics(inputs, affines, relu, images):
    """The traced body of :func:`_statistics_function`."""
    xs = inputs(images, training=False)
    xs = xs if isinstance(xs, (list, tuple)) else [xs]
    out = []
    for affine, x, is_relu in zip(affines, xs, relu):
        kernel, bias = affine.weights(x.dtype)
        y = affine.add_bias(affine.linear(x, kernel), bias)
        mask = tf.cast(y > 0, y.dtype) if is_relu else tf.ones_like(y)
        with tf.GradientTape(persistent=True) as tape:
            tape.watch(kernel)
            z = affine.linear(x, kernel)
            xy = tf.reduce_sum(z * (y * mask))
            x1 = tf.reduce_sum(z * mask)
        axes = _channel_reduce_axes(affine, len(y.shape))
        out.append((tape.gradient(xy, kernel), tape.gradient(x1, kernel), tf.reduce_sum(y * mask, axis=axes),
                    tf.reduce_sum(tf.square(y) * mask, axis=axes), tf.reduce_sum(mask, axis=axes)))
        del tape
    return out


def fit_patterns(model, images, *, batch_size=128):
    """Estimates the patterns of `model`'s layers from (training) `images` (Kindermans et al. 2018).

    Args:
      model: a built Keras ReLU network (logits output).
      images: training images shaped like the model input; use many (thousands), as the
        estimators are covariances.
      batch_size: images per pass.

    Returns:
      :class:`Patterns` for :func:`pattern_net` and :func:`pattern_attribution` (``patterns=``).
    """
    x = np.asarray(images, dtype=np.float32)
    if x.ndim != len(model.input_shape) or len(x) < 2:
        raise SanityError(f"fit_patterns needs a batch of at least 2 images shaped like the model input "
                          f"{model.input_shape}, got shape {x.shape}")
    layers = pattern_layers(model)
    if not layers:
        raise SanityError(f"model {model.name!r} has no Dense/Conv layer to fit patterns for")
    own = {id(layer) for layer in (model_graph(model) or model).layers}
    nested = [layer.name for layer in layers if id(layer) not in own]
    if nested:
        raise SanityError(f"fit_patterns reads layer inputs from the model's own graph, and layer {nested[0]!r} is "
                          f"inside a nested model; build the model flat, e.g. keras.Model(base.input, "
                          f"head(base.output))")
    stats = _statistics_function(model, layers)
    sums = None
    for start in range(0, len(x), batch_size):
        batch = [tuple(np.asarray(s, np.float64) for s in layer) for layer in stats(x[start:start + batch_size])]
        sums = batch if sums is None else [tuple(a + b for a, b in zip(old, new)) for old, new in zip(sums, batch)]
    arrays, estimators, counts = {}, {}, {}
    for layer, (sxy, sx, sy, syy, count) in zip(layers, sums):
        kernel = np.asarray(Affine(layer).weights()[0], np.float64)
        n = np.maximum(count, 1.0)
        cov = sxy / n - (sx / n) * (sy / n)  # E+[x y] - E+[x] E+[y], kernel-shaped
        denominator = (kernel * cov).reshape(-1, cov.shape[-1]).sum(axis=0) if cov.ndim > 1 else kernel * cov
        # w^T cov[x, y] = var[y]: a neuron whose output hardly varies over the points has no pattern.
        variance = syy / n - (sy / n) ** 2
        valid = (count >= 2) & (variance > MIN_RELATIVE_VARIANCE * syy / n) & (denominator > 0)
        arrays[layer.name] = np.where(valid, cov / np.where(valid, denominator, 1.0), 0.0).astype(np.float32)
        estimators[layer.name] = "relu" if feeds_relu(layer) else "linear"
        counts[layer.name] = count.astype(np.int64)
    return Patterns(model.name, arrays, estimators, counts, len(x))


class PatternRule(AffineRule):
    """Gradient with the layer's kernel replaced by its pattern (PatternNet) or ``W * A`` (PatternAttribution)."""

    def __init__(self, patterns, attribution):
        self.patterns = patterns
        self.attribution = attribution
        self.name = "PatternAttribution" if attribution else "PatternNet"

    KINDS = ("kernel", "batchnorm")

    def supports(self, layer):
        if not super().supports(layer):
            return False
        if isinstance(layer, DEPTHWISE_TYPES + SEPARABLE_TYPES):
            return False  # fit_patterns estimates one dense kernel's patterns; not implemented for these
        kernel_shape = tuple(Affine(layer).weights()[0].shape)
        pattern = self.patterns.arrays.get(layer.name)
        if pattern is None or pattern.shape != kernel_shape:
            raise SanityError(f"{self.name}: no pattern of shape {kernel_shape} for layer {layer.name!r} in the "
                              f"patterns fitted to {self.patterns.model_name!r}; fit them on this model with "
                              f"tf_sanity.attribution.patterns.fit_patterns(model, training_images)")
        return True

    def propagate(self, affine, x, upstream, z):
        pattern = tf.constant(self.patterns.arrays[affine.layer.name], dtype=x.dtype)
        if self.attribution:
            pattern = affine.weights(x.dtype)[0] * pattern
        return vjp(lambda v: affine.linear(v, pattern), x, upstream)


class ElementwisePatternRule(AffineRule):
    """The pattern of an element-wise affine map ``y = s x + o``: each output sees one input, so both
    estimators give ``a = cov[x, y] / (s cov[x, y]) = 1 / s`` (Kindermans et al. 2018, Sec. 4). PatternNet
    multiplies the signal by ``1 / s``, PatternAttribution by ``s * a = 1`` (zero where ``s = 0``)."""

    KINDS = ("elementwise",)

    def __init__(self, attribution):
        self.attribution = attribution
        self.name = "PatternAttribution" if attribution else "PatternNet"

    def propagate(self, affine, x, upstream, z):
        scale, _ = affine.weights(x.dtype)
        ones = tf.ones_like(scale)
        factor = safe_divide(scale, scale) if self.attribution else safe_divide(ones, scale)
        return upstream * factor


@functools.lru_cache(maxsize=16)
def pattern_composite(patterns, attribution):
    rule = PatternRule(patterns, attribution)
    return strict_composite(rule.name.lower(), relu=None, kernel=rule, batchnorm=rule, average=None,
                            elementwise=ElementwisePatternRule(attribution))


def _check(patterns, name):
    if not isinstance(patterns, Patterns):
        raise SanityError(f"{name} needs patterns fitted on training data: patterns = "
                          f"tf_sanity.attribution.patterns.fit_patterns(model, training_images), then pass patterns=patterns")
    return patterns


@backprop_method("pattern_net", "PatternNet")
def pattern_net(*, patterns=None):
    """PatternNet: the signal, a gradient pass with patterns instead of weights (Kindermans et al. 2018).

    Args:
      patterns: :class:`Patterns` from :func:`fit_patterns` on this model (required).
    """
    return Backprop(pattern_composite(_check(patterns, "pattern_net"), False), seed=engine.score_seed)


@backprop_method("pattern_attribution", "PatternAttr.", signal="relevance")
def pattern_attribution(*, patterns=None):
    """PatternAttribution: a gradient pass with ``W * A`` instead of ``W`` (Kindermans et al. 2018).

    Args:
      patterns: :class:`Patterns` from :func:`fit_patterns` on this model (required).
    """
    return Backprop(pattern_composite(_check(patterns, "pattern_attribution"), True), seed=engine.score_seed)
