"""Canonizers: how each layer looks to a modified backward pass, and BatchNorm folding.

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
``None``            anything else: a strict composite returns
                    :class:`tf_sanity.attribution.rules.Unsupported` for it and
                    :func:`tf_sanity.attribution.composites.applied` raises a ``SanityError`` naming the layer and
                    the rule; there is never a silent fallback to the plain gradient.
==================  ==============================================================================

**BatchNorm folding (the canonizer).** A ``BatchNormalization`` whose only input is the output of a
``Dense``/``Conv`` layer with a linear activation, where that output feeds nothing else, is folded
into it (zennit's ``MergeBatchNorm``): at inference BN computes ``gamma * (z - mean) / sqrt(var + eps)
+ beta``, so with ``s = gamma / sqrt(var + eps)`` the pair is the affine map with kernel ``W * s``
(scaled along the output-channel axis) and bias ``(b - mean) * s + beta``. The kernel layer's rule is
applied to that map (e.g. ``z_ij = x_i w_ij s_j``); the folded BN passes the signal on unchanged.
The folded weights are computed from the variables each time the graph runs, so weights randomized
in place are seen. A BN after a ReLU, or after a layer with several consumers, is not folded and
counts as its own channel-wise affine layer.
"""

import keras
import tensorflow as tf

from tf_sanity.attribution import composites, graph
from tf_sanity.errors import SanityError

L = keras.layers


def _is_linear(fn):
    return fn is None or getattr(fn, "__name__", "") == "linear"


def _activation(layer):
    """The layer's own fused activation, also while a composite has replaced it."""
    return composites.unpatched(layer, "activation")


def folded_batchnorm(layer):
    """The ``BatchNormalization`` folded into kernel layer `layer`, or None (module docstring)."""
    if not isinstance(layer, graph.KERNEL_TYPES) or not _is_linear(_activation(layer)):
        return None
    users = graph.consumers(layer)
    if len(layer._inbound_nodes) != 1 or len(users) != 1:
        return None
    bn = users[0]
    if not isinstance(bn, L.BatchNormalization) or graph.parents(bn) != [layer]:
        return None
    rank = len(layer.output.shape)
    return bn if graph.batchnorm_axis(bn, rank) == graph.channel_axis(layer) else None


def fold_target(bn):
    """The kernel layer `bn` is folded into, or None."""
    above = graph.parents(bn)
    if above and len(above) == 1 and folded_batchnorm(above[0]) is bn:
        return above[0]
    return None


def layer_kind(layer):
    """``"kernel"``, ``"batchnorm"``, ``"folded"``, ``"average"``, ``"exact"`` or None (unsupported)."""
    if isinstance(layer, graph.KERNEL_TYPES):
        if getattr(layer, "quantization_mode", None) or getattr(layer, "lora_enabled", False):
            return None
        return "kernel"
    if isinstance(layer, L.BatchNormalization):
        if graph.batchnorm_axis(layer, len(layer.output.shape)) is None:
            return None  # normalizes over several axes: not a channel-wise affine map
        return "folded" if fold_target(layer) is not None else "batchnorm"
    if isinstance(layer, graph.AVERAGE_TYPES):
        return "average"
    if isinstance(layer, graph.EXACT_TYPES):
        return "exact"
    return None


def feeds_relu(layer):
    """Whether the (canonized) output of kernel layer `layer` goes through a ReLU before anything else."""
    if getattr(_activation(layer), "__name__", "") == "relu":
        return True
    last = folded_batchnorm(layer) or layer
    users = graph.consumers(last)
    return bool(users) and all(
        composites.is_plain_relu_layer(c) or (isinstance(c, L.Activation)
                                          and composites.activation_name(_activation(c)) == "relu")
        for c in users)


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
            return x * _broadcast_channels(kernel, rank, graph.batchnorm_axis(layer, rank))
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
        return graph.batchnorm_axis(self.layer, rank) if self.kind == "batchnorm" else graph.channel_axis(self.layer)

    def add_bias(self, z, bias):
        """``z + bias`` broadcast along the output channel axis."""
        if bias is None:
            return z
        rank = len(z.shape)
        return z + _broadcast_channels(bias, rank, self.channel_axis(rank))

    def forward(self, x):
        kernel, bias = self.weights(x.dtype)
        return self.add_bias(self.linear(x, kernel), bias)
