"""Modified backpropagation on any Keras ReLU network: which rule each layer gets, and how a signal
is propagated from the output, or from a chosen layer, down to the input.

This module is the shared ground of the methods of "When Explanations Lie" (Sixt, Granz & Landgraf,
ICML 2020): LRP and DeepTaylor (:mod:`tf_sanity.lrp`), DeepLIFT
(:mod:`tf_sanity.deeplift`), DeConvNet and RectGrad (:mod:`tf_sanity.modified_bp`), PatternNet and
PatternAttribution (:mod:`tf_sanity.patterns`) and the cosine similarity convergence
(:mod:`tf_sanity.csc`). All of them are :class:`tf_sanity.rules.Composite` objects, applied by the
core's mechanism while a compiled function is traced.

**Layer kinds.** :func:`layer_kind` sorts every leaf layer into one of:

==================  ==============================================================================
``"kernel"``        ``Dense``, ``Conv1D/2D/3D``: the method's layer rule (LRP rule, pattern, ...).
``"batchnorm"``     a ``BatchNormalization`` that is not folded: its own affine layer
                    ``z = scale * x + shift`` (channel-wise), with the composite's batchnorm rule.
``"folded"``        a ``BatchNormalization`` folded into the kernel layer before it (see below):
                    the signal passes it unchanged, the kernel layer's rule sees the folded map.
``"average"``       average pooling (local and global): a linear map with positive weights.
``"exact"``         layers whose plain gradient already is the right backward step for every
                    method here: ``InputLayer``, ``Flatten``, ``Reshape``, ``Permute``, dropout
                    and noise layers (identity at inference), max pooling (winner takes all, as
                    innvestigate and DeepLIFT's default), ``Concatenate``, zero padding,
                    cropping, ``Identity``, and ``ReLU`` / ``Activation`` layers, whose ReLU gets
                    the composite's activation rule (any other activation is an error).
``None``            anything else: a strict composite returns :class:`Unsupported` for it and
                    :func:`tf_sanity.rules.applied` raises a ``SanityError`` naming the layer and
                    the rule; there is never a silent fallback to the plain gradient.
==================  ==============================================================================

**BatchNorm folding (the canonizer).** A ``BatchNormalization`` whose only input is the output of a
``Dense``/``Conv`` layer with a linear activation, where that output feeds nothing else, is folded
into it: at inference BN computes ``gamma * (z - mean) / sqrt(var + eps) + beta``, so with
``s = gamma / sqrt(var + eps)`` the pair is the affine map with kernel ``W * s`` (scaled along the
output-channel axis) and bias ``(b - mean) * s + beta``. The kernel layer's rule is applied to that
map (e.g. ``z_ij = x_i w_ij s_j``); the folded BN passes the signal on unchanged. The folded
weights are computed from the variables each time the graph runs, so weights randomized in place
are seen. A BN after a ReLU, or after a layer with several consumers, is not folded and counts as
its own channel-wise affine layer.

**Signals.** Gradient-like methods (DeConvNet, RectGrad, PatternNet, PatternAttribution, DeepLIFT's
multipliers) pass a gradient-like signal; LRP and DeepTaylor pass relevance, with relevance going
through ReLUs unchanged (:func:`tf_sanity.rules.pass_relu`) and seeded with the target score
(:func:`tf_sanity.engine.score_seed`). Either way the core computes it with
``tape.gradient``; a rule's ``backward`` returns what flows to the layer's input.

**DeepLIFT's reference pass.** DeepLIFT's rescale rule needs the activations of a reference input.
:func:`paired_function` and :func:`layer_function` run the model on ``[x; reference]``, one batch of
``2n`` rows, and seed the output (or the chosen layer) with ``[seed; 0]``; the DeepLIFT activation
rule splits its batch in halves to get ``x`` and the reference (:mod:`tf_sanity.deeplift`).
"""

import contextlib
import dataclasses
import inspect
import weakref
from typing import Callable, Optional

import keras
import numpy as np
import tensorflow as tf

from tf_sanity import engine, methods, rules
from tf_sanity.errors import SanityError, unknown_name

L = keras.layers

KERNEL_TYPES = (L.Dense, L.Conv1D, L.Conv2D, L.Conv3D)
AVERAGE_TYPES = (L.AveragePooling1D, L.AveragePooling2D, L.AveragePooling3D,
                 L.GlobalAveragePooling1D, L.GlobalAveragePooling2D, L.GlobalAveragePooling3D)
# Layers that only move, copy, drop (at inference: keep) or select values.
SHAPE_TYPES = (L.InputLayer, L.Flatten, L.Reshape, L.Permute, L.Identity, L.Dropout,
               L.SpatialDropout1D, L.SpatialDropout2D, L.SpatialDropout3D, L.GaussianDropout,
               L.GaussianNoise, L.AlphaDropout, L.ZeroPadding1D, L.ZeroPadding2D, L.ZeroPadding3D,
               L.Cropping1D, L.Cropping2D, L.Cropping3D)
EXACT_TYPES = SHAPE_TYPES + (L.MaxPooling1D, L.MaxPooling2D, L.MaxPooling3D, L.GlobalMaxPooling1D,
                             L.GlobalMaxPooling2D, L.GlobalMaxPooling3D, L.Concatenate, L.ReLU,
                             L.Activation)


# ----------------------------------------------------------------------------- the layer graph

def _single_node(nodes):
    return nodes[0] if len(nodes) == 1 else None


def _parents(layer):
    """The layers feeding `layer` (its only call), or None if it was called more than once."""
    node = _single_node(layer._inbound_nodes)
    return None if node is None else [p.operation for p in node.parent_nodes]


def _consumers(layer):
    return [node.operation for node in layer._outbound_nodes]


def _is_linear(fn):
    return fn is None or getattr(fn, "__name__", "") == "linear"


def _channel_axis(layer):
    """The output channel axis of a kernel layer, as a negative index."""
    if isinstance(layer, L.Dense) or getattr(layer, "data_format", "channels_last") == "channels_last":
        return -1
    return -(layer.rank + 1)


def _bn_axis(bn, rank):
    axis = bn.axis if isinstance(bn.axis, int) else (bn.axis[0] if len(bn.axis) == 1 else None)
    if axis is None:
        return None
    return axis - rank if axis >= 0 else axis


def _activation(layer):
    """The layer's own fused activation, also while a composite has replaced it."""
    return rules.unpatched(layer, "activation")


def folded_batchnorm(layer):
    """The ``BatchNormalization`` folded into kernel layer `layer`, or None (module docstring)."""
    if not isinstance(layer, KERNEL_TYPES) or not _is_linear(_activation(layer)):
        return None
    consumers = _consumers(layer)
    if len(layer._inbound_nodes) != 1 or len(consumers) != 1:
        return None
    bn = consumers[0]
    if not isinstance(bn, L.BatchNormalization) or _parents(bn) != [layer]:
        return None
    rank = len(layer.output.shape)
    return bn if _bn_axis(bn, rank) == _channel_axis(layer) else None


def fold_target(bn):
    """The kernel layer `bn` is folded into, or None."""
    parents = _parents(bn)
    if parents and len(parents) == 1 and folded_batchnorm(parents[0]) is bn:
        return parents[0]
    return None


def layer_kind(layer):
    """``"kernel"``, ``"batchnorm"``, ``"folded"``, ``"average"``, ``"exact"`` or None (unsupported)."""
    if isinstance(layer, KERNEL_TYPES):
        if getattr(layer, "quantization_mode", None) or getattr(layer, "lora_enabled", False):
            return None
        return "kernel"
    if isinstance(layer, L.BatchNormalization):
        if _bn_axis(layer, len(layer.output.shape)) is None:
            return None  # normalizes over several axes: not a channel-wise affine map
        return "folded" if fold_target(layer) is not None else "batchnorm"
    if isinstance(layer, AVERAGE_TYPES):
        return "average"
    if isinstance(layer, EXACT_TYPES):
        return "exact"
    return None


def is_first_layer(layer):
    """Whether `layer` sees the model input, reached through shape-only layers (Flatten, ...) only.

    DeepTaylor's bounded zB rule applies to these layers (Montavon et al. 2017, bounded input domain). The walk
    stays inside the layer's own (innermost) model graph.
    """
    frontier = [layer]
    while frontier:
        parents = _parents(frontier.pop())
        if not parents:
            return False
        for parent in parents:
            if isinstance(parent, L.InputLayer):
                continue
            if not isinstance(parent, SHAPE_TYPES):
                return False
            frontier.append(parent)
    return True


def feeds_relu(layer):
    """Whether the (canonized) output of kernel layer `layer` goes through a ReLU before anything else."""
    if getattr(_activation(layer), "__name__", "") == "relu":
        return True
    last = folded_batchnorm(layer) or layer
    consumers = _consumers(last)
    return bool(consumers) and all(
        rules._is_plain_relu_layer(c) or (isinstance(c, L.Activation)
                                          and rules._activation_name(_activation(c)) == "relu")
        for c in consumers)


# ----------------------------------------------------------------------------- canonized affine maps

def _broadcast_channels(values, rank, axis):
    shape = [1] * rank
    shape[axis] = -1
    return tf.reshape(values, shape)


class Affine:
    """The canonized affine map ``z = linear(x, kernel) + bias`` of a kernel, BN or pooling layer.

    ``linear`` is linear in both ``x`` and ``kernel``, so a rule may call it with modified kernels
    (positive part, patterns, ...) and modified inputs (bounds). Weights are read from the
    variables when called (inside the traced graph).
    """

    def __init__(self, layer):
        self.layer = layer
        self.kind = layer_kind(layer)
        if self.kind not in ("kernel", "batchnorm", "average"):
            raise SanityError(f"layer {layer.name!r} ({type(layer).__name__}) is not an affine layer")
        self.batchnorm = folded_batchnorm(layer) if self.kind == "kernel" else None

    def _bn_scale_shift(self, bn, dtype):
        var = tf.cast(tf.convert_to_tensor(bn.moving_variance), dtype)
        mean = tf.cast(tf.convert_to_tensor(bn.moving_mean), dtype)
        scale = tf.math.rsqrt(var + bn.epsilon)
        if bn.scale:
            scale = scale * tf.cast(tf.convert_to_tensor(bn.gamma), dtype)
        shift = -mean * scale
        if bn.center:
            shift = shift + tf.cast(tf.convert_to_tensor(bn.beta), dtype)
        return scale, shift

    def weights(self, dtype=tf.float32):
        """``(kernel, bias)`` with any folded BN applied; bias None when there is none."""
        layer = self.layer
        if self.kind == "average":
            return tf.ones([], dtype), None
        if self.kind == "batchnorm":
            return self._bn_scale_shift(layer, dtype)
        kernel = tf.cast(tf.convert_to_tensor(layer.kernel), dtype)
        bias = tf.cast(tf.convert_to_tensor(layer.bias), dtype) if layer.use_bias else None
        if self.batchnorm is not None:
            scale, shift = self._bn_scale_shift(self.batchnorm, dtype)
            kernel = kernel * scale  # the output channel is the kernel's last axis
            bias = shift if bias is None else bias * scale + shift
        return kernel, bias

    def linear(self, x, kernel):
        """The bias-free linear part applied to `x` with `kernel` (same shape as the layer's)."""
        layer = self.layer
        if self.kind == "kernel":
            if isinstance(layer, L.Dense):
                return keras.ops.matmul(x, kernel)
            return layer.convolution_op(x, kernel)
        if self.kind == "batchnorm":
            rank = len(x.shape)
            return x * _broadcast_channels(kernel, rank, _bn_axis(layer, rank))
        return kernel * self._pool(x)

    def _pool(self, x):
        layer = self.layer
        if isinstance(layer, (L.GlobalAveragePooling1D, L.GlobalAveragePooling2D, L.GlobalAveragePooling3D)):
            rank = len(x.shape)
            spatial = list(range(1, rank - 1)) if layer.data_format == "channels_last" else list(range(2, rank))
            return keras.ops.mean(x, axis=spatial, keepdims=layer.keepdims)
        return keras.ops.average_pool(x, layer.pool_size, layer.strides, layer.padding, layer.data_format)

    def channel_axis(self, rank):
        """The output channel axis (a negative index) of an output with `rank` dimensions."""
        return _bn_axis(self.layer, rank) if self.kind == "batchnorm" else _channel_axis(self.layer)

    def add_bias(self, z, bias):
        """``z + bias`` broadcast along the output channel axis."""
        if bias is None:
            return z
        rank = len(z.shape)
        return z + _broadcast_channels(bias, rank, self.channel_axis(rank))

    def forward(self, x):
        kernel, bias = self.weights(x.dtype)
        return self.add_bias(self.linear(x, kernel), bias)


def vjp(fn, x, upstream):
    """``(d fn / d x)^T upstream`` for a function `fn` of one tensor."""
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = fn(x)
    return tape.gradient(y, x, output_gradients=upstream)


def safe_divide(a, b):
    """``a / b`` where ``b != 0``, else 0 (innvestigate's SafeDivide convention)."""
    nonzero = tf.not_equal(b, 0)
    return tf.where(nonzero, a / tf.where(nonzero, b, tf.ones_like(b)), tf.zeros_like(a))


# ----------------------------------------------------------------------------- rules and composites

class AffineRule(rules.LayerRule):
    """A layer rule for affine layers; subclasses implement ``propagate(affine, x, upstream)``."""

    def supports(self, layer):
        return layer_kind(layer) in ("kernel", "batchnorm", "average")

    def backward(self, layer, x, z, upstream):
        return self.propagate(Affine(layer), x, upstream)

    def propagate(self, affine, x, upstream):
        raise NotImplementedError


class PassThrough(rules.LayerRule):
    """The signal passes unchanged (a BN folded into the layer below it)."""

    name = "pass-through"

    def backward(self, layer, x, z, upstream):
        return upstream


class Unsupported(rules.LayerRule):
    """Marks a layer the composite has no rule for: applying the composite raises a SanityError."""

    def __init__(self, name):
        self.name = name

    def supports(self, layer):
        return False


PASS_THROUGH = PassThrough()


def strict_composite(name, *, relu, kernel=None, batchnorm=None, average=None, rule_name=None):
    """A composite with a rule for every supported layer kind and an error for any other layer.

    Args:
      name: the method name (appears in error messages).
      relu: the activation rule for every ReLU (None: the plain ReLU gradient).
      kernel: rule for Dense/Conv layers (with any folded BN): a LayerRule, ``layer -> LayerRule``,
        or None for the plain gradient (then no BN is folded either).
      batchnorm: rule for a BN that is not folded (None: plain gradient).
      average: rule for average pooling (None: plain gradient).
      rule_name: how the rule set is called in errors (default: `name`).
    """
    unsupported = Unsupported(rule_name or name)

    def layer_rule(layer):
        kind = layer_kind(layer)
        if kind == "exact":
            return None
        if kind == "folded":
            return PASS_THROUGH if kernel is not None else None
        if kind == "kernel":
            return kernel(layer) if callable(kernel) and not isinstance(kernel, rules.LayerRule) else kernel
        if kind == "batchnorm":
            return batchnorm
        if kind == "average":
            return average
        return unsupported

    return rules.Composite(name, relu=relu, layer_rule=layer_rule)


# ----------------------------------------------------------------------------- methods as backprops

@dataclasses.dataclass(frozen=True, eq=False)
class Backprop:
    """How a method propagates a signal from the output to the input.

    Attributes:
      composite: the backward rules (None: the plain gradient).
      seed: ``seed(scores, targets)``, the signal at the output (one-hot, or the target score for
        relevance methods).
      reference: None for methods without a reference; else DeepLIFT's reference input (an array
        broadcastable to the images, or a scalar): the forward pass runs on ``[x; reference]`` and
        the result is ``multipliers * (x - reference)``.
    """

    composite: Optional[rules.Composite]
    seed: Callable = engine.onehot_seed
    reference: object = None

    @property
    def paired(self):
        return self.reference is not None

    def reference_like(self, x):
        """The reference as an array shaped like `x` (float32)."""
        try:
            return np.broadcast_to(np.asarray(self.reference, np.float32), x.shape).copy()
        except ValueError:
            raise SanityError(f"reference of shape {np.shape(self.reference)} does not fit images of "
                              f"shape {x.shape}") from None

    def attribute(self, model, x, targets, batch_size=engine.DEFAULT_BATCH_SIZE):
        """The method's mask for images `x` and int32 `targets`.

        Raises:
          SanityError: the backward signal overflowed float32 (e.g. PatternNet through a deep network
            whose patterns amplify it), rather than returning NaN or inf.
        """
        if not self.paired:
            fn = engine.gradient_function(model, self.composite, seed=self.seed)
            mask = engine.map_batches(fn, batch_size, x, targets)
        else:
            ref = self.reference_like(x)
            fn = paired_function(model, self.composite, self.seed)
            mask = engine.map_batches(fn, max(1, batch_size // 2), x, ref, targets) * (x - ref)
        if not np.isfinite(mask).all():
            name = self.composite.name if self.composite else "gradient"
            raise SanityError(f"{name}: the propagated signal is not finite (float32 overflow) for "
                              f"{np.sum(~np.isfinite(mask).reshape(len(mask), -1).all(axis=1))} of {len(mask)} "
                              f"images; this method's rules amplify the signal too much on this model")
        return mask


# name -> ``make_backprop(**settings) -> Backprop``; used by CSC to propagate from any layer.
BACKPROPS = {}


def _keyword_defaults(fn):
    return {p.name: p.default for p in inspect.signature(fn).parameters.values()
            if p.kind == p.KEYWORD_ONLY}


def register(name, label, make_backprop, doc=None):
    """Registers method `name` in :data:`tf_sanity.methods.METHODS` and :data:`BACKPROPS`.

    Args:
      name: registry name.
      label: display label.
      make_backprop: ``make_backprop(*, setting=default, ...) -> Backprop``; its keyword-only
        parameters become the method's settings (plus ``batch_size``).
      doc: the method's docstring (default: `make_backprop`'s).

    Returns:
      The registered :class:`tf_sanity.methods.Method`.
    """
    def compute(model, x, targets, *, batch_size=engine.DEFAULT_BATCH_SIZE, **settings):
        return make_backprop(**settings).attribute(model, x, targets, batch_size)

    compute.__name__ = name
    compute.__doc__ = doc or make_backprop.__doc__
    BACKPROPS[name] = make_backprop
    settings = {**_keyword_defaults(make_backprop), "batch_size": engine.DEFAULT_BATCH_SIZE}
    return methods.register(methods.Method(name, label, compute, settings))


def method(name, label):
    """Decorator form of :func:`register`: ``@method("lrp_z", "LRP-z") def lrp_z(*, ...) -> Backprop``.

    The decorated name becomes the registered :class:`tf_sanity.methods.Method`, so
    ``lrp_z(model, images, targets)`` explains like ``tf_sanity.explain(model, images, "lrp_z", targets)``.
    """
    def decorate(make_backprop):
        return register(name, label, make_backprop)
    return decorate


def backprop(name, **settings):
    """The :class:`Backprop` of the registered method `name` with `settings`."""
    if name not in BACKPROPS:
        raise unknown_name("method with backward rules", name, BACKPROPS)
    valid = _keyword_defaults(BACKPROPS[name])
    unknown = set(settings) - set(valid)
    if unknown:
        raise SanityError(f"{name} has no setting {', '.join(sorted(unknown))}; valid: "
                          f"{', '.join(sorted(valid)) or 'none'}")
    return BACKPROPS[name](**settings)


# The core's methods, so CSC can propagate them too.
BACKPROPS["gradient"] = lambda: Backprop(None)
BACKPROPS["guided_backprop"] = lambda: Backprop(methods.GUIDED_BACKPROP)


# ----------------------------------------------------------------------------- compiled functions

_CACHE = weakref.WeakKeyDictionary()


def _cached(model, key, build):
    per_model = _CACHE.setdefault(model, {})
    if key not in per_model:
        per_model[key] = build()
    return per_model[key]


def _spec(shape):
    return tf.TensorSpec([None, *shape], tf.float32)


def paired_function(model, composite, seed=engine.onehot_seed):
    """Compiled ``f(x, reference, targets) -> signal at x``, the forward pass on ``[x; reference]``.

    The output is seeded with ``[seed(scores of x, targets); 0]``; what reaches the reference rows
    is dropped. Cached per (model, composite, seed).
    """
    def build():
        def trace(x, reference, targets):
            n = tf.shape(x)[0]
            both = tf.concat([x, reference], 0)
            with rules.applied(model, composite) if composite else contextlib.nullcontext():
                with tf.GradientTape() as tape:
                    tape.watch(both)
                    scores = model(both, training=False)
                top = seed(scores[:n], targets)
                grads = tape.gradient(scores, both, output_gradients=tf.concat([top, tf.zeros_like(top)], 0))
            return grads[:n]

        shape = model.input_shape[1:]
        return tf.function(trace, input_signature=[_spec(shape), _spec(shape), tf.TensorSpec([None], tf.int32)],
                           autograph=False)

    return _cached(model, ("paired", composite, seed), build)


def layer_function(model, composite, start, reads, paired=False):
    """Compiled propagation from the input of layer `start` down to the outputs of layers `reads`.

    The signal injected at ``start``'s input tensor (the output of the layer below it, as in the
    CSC code of Sixt et al., which sets the relevance of layer ``idx - 1``) is given; it flows
    down with `composite`'s rules. Cached per (model, composite, start, reads, paired).

    Args:
      model: a functional or Sequential Keras model.
      composite: backward rules or None.
      start: name of a single-input layer.
      reads: names of layers whose output signal is returned; ``"input"`` is the model input.
      paired: run the forward pass on ``[x; reference]`` and seed ``[injected; 0]``.

    Returns:
      ``f(x, reference, injected) -> (signals, deltas)``: lists with one ``[B, ...]`` tensor per
      read; the deltas are ``activation(x) - activation(reference)`` when paired, else the
      activations of `x`.
    """
    def build():
        start_tensor = input_tensor(model, start)
        layer_reads = [name for name in reads if name != "input"]
        sub = keras.Model(model.inputs, [start_tensor] + [_layer(model, name).output for name in layer_reads])

        def trace(x, reference, injected):
            n = tf.shape(x)[0]
            inputs = tf.concat([x, reference], 0) if paired else x
            with rules.applied(model, composite) if composite else contextlib.nullcontext():
                with tf.GradientTape() as tape:
                    tape.watch(inputs)
                    outs = sub(inputs, training=False)
                outs = outs if isinstance(outs, (list, tuple)) else [outs]
                # The tensors the forward pass used, so that the gradient reaches them.
                by_name = dict(zip(layer_reads, outs[1:]), input=inputs)
                top, acts = outs[0], [by_name[name] for name in reads]
                seed = tf.concat([injected, tf.zeros_like(injected)], 0) if paired else injected
                grads = tape.gradient(top, acts, output_gradients=seed,
                                      unconnected_gradients=tf.UnconnectedGradients.ZERO)
            signals = [g[:n] for g in grads]
            deltas = [a[:n] - a[n:] if paired else a for a in acts]
            return signals, deltas

        shape = model.input_shape[1:]
        return tf.function(trace, input_signature=[_spec(shape), _spec(shape), _spec(start_tensor.shape[1:])],
                           autograph=False)

    return _cached(model, ("layer", composite, start, tuple(reads), paired), build)


def _layer(model, name):
    try:
        return model.get_layer(name)
    except ValueError:
        names = [layer.name for layer in rules.leaf_layers(model)]
        raise SanityError(f"model has no layer {name!r}; layers: {', '.join(names)}") from None


def input_tensor(model, name):
    """The (single) symbolic input tensor of layer `name` in `model`."""
    layer = _layer(model, name)
    if len(layer._inbound_nodes) != 1 or len(layer._inbound_nodes[0].input_tensors) != 1:
        raise SanityError(f"layer {name!r} has several inputs or calls; inject at a single-input layer")
    return layer._inbound_nodes[0].input_tensors[0]
