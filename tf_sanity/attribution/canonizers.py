"""Canonizers: how each layer looks to a modified backward pass, and BatchNorm folding.

**Layer kinds.** :func:`layer_kind` sorts every leaf layer into one of:

==================  ==============================================================================
``"kernel"``        ``Dense``, ``Conv1D/2D/3D``, ``DepthwiseConv1D/2D`` and ``SeparableConv1D/2D``: the
                    method's layer rule (LRP rule, pattern, ...). A separable conv is two linear maps,
                    depthwise then pointwise (as Keras computes it); the rule is applied to each.
``"batchnorm"``     a ``BatchNormalization`` that is not folded: its own affine layer
                    ``z = scale * x + shift`` (channel-wise), with the composite's batchnorm rule.
``"folded"``        a ``BatchNormalization`` folded into the kernel layer before it (see below):
                    the signal passes it unchanged, the kernel layer's rule sees the folded map.
``"average"``       average pooling (local and global): a linear map with positive weights.
``"exact"``         layers whose plain gradient already is the right backward step for every
                    method here: ``InputLayer``, ``Flatten``, ``Reshape``, ``Permute``, dropout
                    and noise layers (identity at inference), max pooling (winner takes all, as
                    innvestigate and DeepLIFT's default), ``Concatenate``, zero padding,
                    cropping, ``Identity``, ConvNeXt's ``StochasticDepth`` (identity at inference),
                    raw data-movement operations, and ``ReLU`` / ``Activation`` layers, whose ReLU gets
                    the composite's activation rule (any other activation is an error).
``"elementwise"``   ``Rescaling``, ``Normalization``, ConvNeXt's ``LayerScale`` and raw ``x + c``,
                    ``x * c``, ... (:mod:`~tf_sanity.attribution.operations`): an element-wise affine map
                    ``z = s * x + o``, read off the layer's own call as ``o = f(0)``, ``s = f(1) - f(0)``.
``"merge"``         ``Add``, ``Subtract``, ``Average`` and raw sums of two tensors (residual
                    connections): :mod:`~tf_sanity.attribution.merge_rules`.
``"gate"``          ``Multiply`` of a signal and a gate (squeeze-and-excitation; the gate is told by the graph):
                    :mod:`~tf_sanity.attribution.merge_rules`.
``"layernorm"``     ``LayerNormalization`` over the last axis: the normalizer held constant
                    (Ali et al. 2022), :class:`Affine`.
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
A depthwise kernel ``[kh, kw, C, M]`` has output channel ``c * M + m``: BN's
scale is reshaped to ``[C, M]`` before it multiplies the kernel. The folded weights are computed from the
variables each time the graph runs, so weights randomized
in place are seen. A BN after a ReLU, or after a layer with several consumers, is not folded and
counts as its own channel-wise affine layer.
"""

import keras
import tensorflow as tf
from keras.src.applications import convnext

from tf_sanity.attribution import activations, composites, graph, operations
from tf_sanity.errors import SanityError

L = keras.layers
ELEMENTWISE_TYPES = (L.Rescaling, L.Normalization, convnext.LayerScale)
MERGE_TYPES = (L.Add, L.Subtract, L.Average)
IDENTITY_TYPES = (convnext.StochasticDepth,)  # identity at inference


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
    """The kind of a leaf layer or raw operation (module docstring), or None (unsupported)."""
    if not isinstance(layer, L.Layer):
        return operations.op_kind(layer)
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
    if isinstance(layer, graph.EXACT_TYPES + IDENTITY_TYPES):
        return "exact"
    if isinstance(layer, ELEMENTWISE_TYPES):
        return "elementwise"
    if isinstance(layer, MERGE_TYPES):
        return "merge"
    if isinstance(layer, L.Multiply) and len(operations.tensor_operands(layer)) == 2:
        return "gate"
    if isinstance(layer, L.LayerNormalization) and _last_axis_only(layer) and not layer.rms_scaling:
        return "layernorm"
    return None


def _last_axis_only(layer):
    axes = [layer.axis] if isinstance(layer.axis, int) else list(layer.axis)
    return len(axes) == 1 and axes[0] in (-1, len(layer.input.shape) - 1)


def feeds_relu(layer):
    """Whether the (canonized) output of kernel layer `layer` goes through a ReLU before anything else."""
    if activations.unit_of_function(_activation(layer)).is_plain_relu:
        return True
    last = folded_batchnorm(layer) or layer
    users = graph.consumers(last)
    return bool(users) and all(isinstance(c, (L.ReLU, L.Activation))
                               and activations.unit_of_layer(c, c.call).is_plain_relu for c in users)


def _broadcast_channels(values, rank, axis):
    shape = [1] * rank
    shape[axis] = -1
    return tf.reshape(values, shape)


class Affine:
    """The canonized affine map ``z = linear(x, kernel) + bias`` of a kernel, BN, pooling, element-wise or
    LayerNorm layer (or of one part of a separable conv: :func:`affine_parts`).

    ``linear`` is linear in both ``x`` and ``kernel``, so a rule may call it with modified kernels
    (positive part, patterns, ...) and modified inputs (bounds). Weights are read from the
    variables when called (inside the traced graph).

    Args:
      layer: the layer (or raw operation).
      like: the layer's actual input; element-wise maps read ``s`` and ``o`` at its shape, and
        LayerNorm holds its normalizer ``sigma(like)`` constant (Ali et al. 2022).
      part: ``"depthwise"`` or ``"pointwise"`` for a separable conv's two maps.
    """

    KINDS = ("kernel", "batchnorm", "average", "elementwise", "layernorm")

    def __init__(self, layer, like=None, part=None):
        self.layer = layer
        self.kind = layer_kind(layer)
        if self.kind not in self.KINDS:
            raise SanityError(f"layer {layer.name!r} ({type(layer).__name__}) is not an affine layer")
        self.like, self.part = like, part
        self.batchnorm = folded_batchnorm(layer) if self.kind == "kernel" and part != "depthwise" else None

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

    def _kernel(self, dtype):
        layer = self.layer
        if self.part == "depthwise":
            return tf.cast(tf.convert_to_tensor(layer.depthwise_kernel), dtype), False
        if self.part == "pointwise":
            return tf.cast(tf.convert_to_tensor(layer.pointwise_kernel), dtype), layer.use_bias
        return tf.cast(tf.convert_to_tensor(layer.kernel), dtype), layer.use_bias

    def weights(self, dtype=tf.float32):
        """``(kernel, bias)`` with any folded BN applied; bias None when there is none."""
        layer = self.layer
        if self.kind == "average":
            return tf.ones([], dtype), None
        if self.kind == "batchnorm":
            return self._bn_scale_shift(layer, dtype)
        if self.kind == "elementwise":
            return elementwise_scale_shift(layer, self.like, dtype)
        if self.kind == "layernorm":
            kernel = tf.cast(tf.convert_to_tensor(layer.gamma), dtype) if layer.scale else tf.ones([], dtype)
            return kernel, (tf.cast(tf.convert_to_tensor(layer.beta), dtype) if layer.center else None)
        kernel, use_bias = self._kernel(dtype)
        bias = tf.cast(tf.convert_to_tensor(layer.bias), dtype) if use_bias else None
        if self.batchnorm is not None:
            scale, shift = self._bn_scale_shift(self.batchnorm, dtype)
            if isinstance(layer, graph.DEPTHWISE_TYPES):  # output channel c * M + m of kernel [..., C, M]
                kernel = kernel * tf.reshape(scale, tf.shape(kernel)[-2:])
            else:
                kernel = kernel * scale  # the output channel is the kernel's last axis
            bias = shift if bias is None else bias * scale + shift
        return kernel, bias

    def linear(self, x, kernel):
        """The bias-free linear part applied to `x` with `kernel` (same shape as the layer's)."""
        layer = self.layer
        if self.kind == "kernel":
            if isinstance(layer, L.Dense):
                return keras.ops.matmul(x, kernel)
            if self.part == "pointwise":
                return keras.ops.conv(x, kernel, 1, "valid", layer.data_format)
            if self.part == "depthwise" or isinstance(layer, graph.DEPTHWISE_TYPES):
                return keras.ops.depthwise_conv(x, kernel, layer.strides, layer.padding, layer.data_format,
                                                layer.dilation_rate)
            return layer.convolution_op(x, kernel)
        if self.kind == "batchnorm":
            rank = len(x.shape)
            return x * _broadcast_channels(kernel, rank, graph.batchnorm_axis(layer, rank))
        if self.kind == "elementwise":
            return x * kernel
        if self.kind == "layernorm":
            return kernel * (x - tf.reduce_mean(x, -1, keepdims=True)) / self._sigma(x.dtype)
        return kernel * self._pool(x)

    def _sigma(self, dtype):
        """LayerNorm's ``sqrt(var + eps)`` of the actual input, held constant (Ali et al. 2022, LN-rule)."""
        like = tf.cast(self.like, dtype)
        variance = tf.math.reduce_variance(like, -1, keepdims=True)
        return tf.stop_gradient(tf.sqrt(variance + self.layer.epsilon))

    def _pool(self, x):
        layer = self.layer
        if isinstance(layer, (L.GlobalAveragePooling1D, L.GlobalAveragePooling2D, L.GlobalAveragePooling3D)):
            rank = len(x.shape)
            spatial = list(range(1, rank - 1)) if layer.data_format == "channels_last" else list(range(2, rank))
            return keras.ops.mean(x, axis=spatial, keepdims=layer.keepdims)
        return keras.ops.average_pool(x, layer.pool_size, layer.strides, layer.padding, layer.data_format)

    def channel_axis(self, rank):
        """The output channel axis (a negative index) of an output with `rank` dimensions."""
        if self.kind == "layernorm":
            return -1
        return graph.batchnorm_axis(self.layer, rank) if self.kind == "batchnorm" else graph.channel_axis(self.layer)

    def add_bias(self, z, bias):
        """``z + bias`` broadcast along the output channel axis (element-wise maps: full shape)."""
        if bias is None:
            return z
        if self.kind == "elementwise":
            return z + bias
        rank = len(z.shape)
        return z + _broadcast_channels(bias, rank, self.channel_axis(rank))

    def forward(self, x):
        kernel, bias = self.weights(x.dtype)
        return self.add_bias(self.linear(x, kernel), bias)

    def batchnorm_map(self, z):
        """``(s, shift)`` of the folded BatchNorm, broadcast along the channel axis of the layer's linear output
        `z` (the map's output is then ``s z + shift``, element-wise: no second convolution), or None without one."""
        if self.batchnorm is None:
            return None
        scale, shift = self._bn_scale_shift(self.batchnorm, z.dtype)
        rank, axis = len(z.shape), graph.channel_axis(self.layer)
        return _broadcast_channels(scale, rank, axis), _broadcast_channels(shift, rank, axis)


def affine_parts(layer, like=None):
    """The affine maps `layer` computes one after the other: a separable conv's depthwise and pointwise
    maps (any folded BN goes to the pointwise one), else the layer's one map."""
    if isinstance(layer, graph.SEPARABLE_TYPES):
        return [Affine(layer, like, "depthwise"), Affine(layer, like, "pointwise")]
    return [Affine(layer, like)]


def elementwise_function(op):
    """``x -> op(x)`` with the layer's own (unpatched) call and any constant operands of a raw op."""
    call = composites.unpatched(op, "call")
    if isinstance(op, L.Layer):
        return call
    arguments = op._inbound_nodes[0].arguments
    (operand,) = arguments.keras_tensors

    def fn(x):
        args, kwargs = arguments.fill_in({id(operand): x})
        return call(*args, **kwargs)

    return fn


def elementwise_scale_shift(op, like, dtype):
    """``(s, o)`` of element-wise affine `op` (``z = s * x + o``): ``o = op(0)``, ``s = op(1) - op(0)``,
    shaped like one row of its input `like`."""
    fn = elementwise_function(op)
    zeros = tf.zeros_like(like[:1], dtype)
    shift = tf.cast(fn(zeros), dtype)
    return tf.cast(fn(tf.ones_like(zeros)), dtype) - shift, shift
