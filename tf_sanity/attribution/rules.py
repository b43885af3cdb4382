"""Backward rules: what a modified-backprop method does at each layer on the way back.

* **Activation rules** (:func:`activation_rule`) replace the backward pass of a ReLU-family unit
  (and, under a policy that says so, of any element-wise activation; :mod:`tf_sanity.attribution.activations`):
  guided backprop's guided rule (Springenberg et al. 2015; Adebayo et al. 2018, Sec. 2), DeConvNet's
  (Zeiler & Fergus 2014) and LRP's pass-through. The forward is always the unit's real activation.
* **Layer rules** (:class:`LayerRule`) replace the backward pass of a layer's linear part;
  :class:`AffineRule` is the base of the rules on canonized affine maps
  (:class:`tf_sanity.attribution.canonizers.Affine`): LRP, DeepTaylor, PatternNet.
* :func:`strict_composite` maps every layer kind (:func:`tf_sanity.attribution.canonizers.layer_kind`)
  to a rule and any unknown layer to an error: there is never a silent fallback to the gradient.

How a composite is applied to a model is :mod:`tf_sanity.attribution.composites`.
"""

import tensorflow as tf

from tf_sanity.attribution import canonizers
from tf_sanity.attribution.composites import Composite


class LayerRule:
    """Backward rule for the linear part of a layer: ``backward`` replaces its gradient.

    Subclasses implement ``backward(layer, x, z, upstream) -> downstream``, where ``x`` is the
    layer's input, ``z`` its linear output (fused activation split off) and ``upstream`` what
    flows back into ``z`` (a gradient, or relevance for LRP). ``name`` appears in error messages.
    """

    name = "layer rule"

    def supports(self, layer):
        """Whether this rule can handle `layer`; unsupported layers raise a clear error."""
        return True

    def backward(self, layer, x, z, upstream):
        raise NotImplementedError


def activation_rule(backward, name):
    """An activation rule: forward ``f(x)``, backward ``backward(x, f(x), upstream, derivative)``.

    The rule receives an :class:`tf_sanity.attribution.activations.Unit`: ``f`` is its real forward
    (ReLU, ReLU6, leaky, PReLU, ... as the layer computes it) and ``derivative(x)`` its local
    derivative ``f'(x)``. `name` names the rule in announcements (``"guided"`` -> "guided rule").
    """
    def rule(unit):
        @tf.custom_gradient
        def activation(x):
            y = unit.forward(x)

            def grad(upstream, variables=None):  # PReLU's forward reads its alpha variable
                return backward(x, y, upstream, unit.derivative), [None] * len(variables or ())

            return y, grad

        return activation

    rule.rule_name = name
    return rule


# Guided backprop (Springenberg et al. 2015): the signal is gated by its sign and by the forward's local
# derivative, ``relu(upstream) * f'(x)``; for ReLU this is the original code's ``(grad > 0) * (x > 0) * grad``
# (Adebayo et al. 2018). zennit's ``ReLUGuidedBackprop`` computes the same, ``grad_input * (grad_output > 0)``.
guided_relu = activation_rule(lambda x, y, upstream, d: tf.nn.relu(upstream) * d(x), "guided")
# DeConvNet (Zeiler & Fergus 2014): ``relu(upstream)``, whatever the forward (captum's Deconvolution and
# zennit's ReLUDeconvNet: ``relu(grad_output)``); a leaky or capped unit's slope is ignored too.
deconvnet_relu = activation_rule(lambda x, y, upstream, d: tf.nn.relu(upstream), "DeConvNet")
# LRP / DeepTaylor convention: relevance passes element-wise activations unchanged (zennit's ``Pass``).
pass_relu = activation_rule(lambda x, y, upstream, d: upstream, "pass")


def vjp(fn, x, upstream):
    """``(d fn / d x)^T upstream`` for a function `fn` of one tensor."""
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = fn(x)
    return tape.gradient(y, x, output_gradients=upstream)


def safe_divide(a, b):
    """``a / b`` where ``b != 0``, else 0 (innvestigate's SafeDivide convention), in one element-wise op."""
    return tf.math.divide_no_nan(a, b)


def fused(fn):
    """`fn`, a few element-wise ops, compiled by XLA into one loop over its tensors instead of one pass per op.

    A rule's arithmetic on large activations (LRP's ``R / (z + eps sign(z))``) is memory-bound, so this
    makes it cost about one op. The values are those of the unfused ops, except that XLA may contract
    ``a * b + c`` into one fused multiply-add (one rounding instead of two). Traced per input shape.
    """
    return tf.function(fn, jit_compile=True, autograph=False, reduce_retracing=True)


# ----------------------------------------------------------------------------- rules and composites

class AffineRule(LayerRule):
    """A layer rule for affine layers; subclasses implement ``propagate(affine, x, upstream, z)``.

    ``z`` is the map's linear output on ``x`` as the forward pass computed it, before any folded BatchNorm
    (the map's output is then ``s z + shift``: :meth:`tf_sanity.attribution.canonizers.Affine.batchnorm_map`),
    so a rule that divides by it (LRP-z / epsilon) need not run the layer's convolution a second time; it is
    None where the forward's ``z`` is not float32 (``mixed_float16``): the rule then recomputes it in float32.
    Rules that do not need it ignore it.

    A separable conv is propagated through its two maps in turn (:func:`canonizers.affine_parts`).
    The rule runs in float32 whatever the layer's compute dtype (``mixed_float16``), and its result is
    cast back to the input's dtype.
    """

    KINDS = ("kernel", "batchnorm", "average", "elementwise")

    def supports(self, layer):
        return canonizers.layer_kind(layer) in self.KINDS

    def backward(self, layer, x, z, upstream):
        x32 = tf.cast(x, tf.float32)
        signal = tf.cast(upstream, tf.float32)
        parts = canonizers.affine_parts(layer, x32)
        inputs = [x32]
        for part in parts[:-1]:
            inputs.append(part.forward(inputs[-1]))
        outputs = inputs[1:] + [z if z is not None and z.dtype == tf.float32 else None]
        for part, below, out in zip(reversed(parts), reversed(inputs), reversed(outputs)):
            signal = self.propagate(part, below, signal, out)
        return tf.cast(signal, x.dtype)

    def propagate(self, affine, x, upstream, z):
        raise NotImplementedError


class PassThrough(LayerRule):
    """The signal passes unchanged (a BN folded into the layer below it)."""

    name = "pass-through"

    def backward(self, layer, x, z, upstream):
        return upstream


class Unsupported(LayerRule):
    """Marks a layer the composite has no rule for: applying the composite raises a SanityError."""

    def __init__(self, name):
        self.name = name

    def supports(self, layer):
        return False


PASS_THROUGH = PassThrough()


UNSUPPORTED = "unsupported"


def strict_composite(name, *, relu, kernel=None, batchnorm=None, average=None, elementwise=None, merge=None,
                     gate=UNSUPPORTED, layernorm=UNSUPPORTED, rule_name=None):
    """A composite with a rule for every supported layer kind and an error for any other layer.

    Each rule argument is a LayerRule, None for the plain gradient, or :data:`UNSUPPORTED` (an error
    naming the layer and the rule set).

    Args:
      name: the method name (appears in error messages).
      relu: the activation rule for every ReLU (None: the plain ReLU gradient).
      kernel: rule for Dense/Conv layers (with any folded BN): a LayerRule, ``layer -> LayerRule``,
        or None for the plain gradient (then no BN is folded either).
      batchnorm: rule for a BN that is not folded (None: plain gradient).
      average: rule for average pooling (None: plain gradient).
      elementwise: rule for element-wise affine layers (``Rescaling``, ``Normalization``, ...).
      merge: rule for sums of tensors (``Add``; :mod:`tf_sanity.attribution.merge_rules`).
      gate: rule for ``Multiply`` gates.
      layernorm: rule for ``LayerNormalization``.
      rule_name: how the rule set is called in errors (default: `name`).
    """
    unsupported = Unsupported(rule_name or name)
    by_kind = {"batchnorm": batchnorm, "average": average, "elementwise": elementwise, "merge": merge,
               "gate": gate, "layernorm": layernorm, "exact": None, "relu": None}

    def layer_rule(layer):
        kind = canonizers.layer_kind(layer)
        if kind == "folded":
            return PASS_THROUGH if kernel is not None else None
        if kind == "kernel":
            return kernel(layer) if callable(kernel) and not isinstance(kernel, LayerRule) else kernel
        rule = by_kind.get(kind, UNSUPPORTED)
        return unsupported if rule is UNSUPPORTED else rule

    return Composite(name, relu=relu, layer_rule=layer_rule)
