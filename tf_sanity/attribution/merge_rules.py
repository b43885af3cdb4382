"""Backward rules for layers that combine several tensors: residual sums and multiplicative gates.

A merge rule sees every tensor operand at once: ``backward_all(op, forward, xs, z, upstream)`` returns
one signal per operand, where ``forward(*xs)`` recomputes the operation
(:func:`tf_sanity.attribution.composites.applied` wraps the operation in one ``tf.custom_gradient``).
``Concatenate`` needs no rule: its plain gradient sends each part of the signal back to its operand.

* **Sums** (``Add``, ``Subtract``, ``Average``, raw ``a + b``; residual connections). LRP splits the
  relevance in proportion to each operand's contribution ``z_k`` to ``z = sum_k z_k``:
  ``R_k = z_k / den(z) R`` with the rule's stabilizer ``den`` (zennit's ``Norm`` rule on its ``Sum``
  canonizer; Montavon et al. 2019, "Layer-wise relevance propagation: an overview", Sec. 10.2 /
  residual blocks). With ``den(z) = z`` relevance is conserved exactly. DeepLIFT multipliers and
  gradient-like signals pass a sum unchanged, which is its plain gradient (Shrikumar et al. 2017,
  Sec. 3.3: linear rule), so those composites use no rule.
* **Gates** (``Multiply`` of a signal ``x`` and a gate ``g`` broadcast over it, as in
  squeeze-and-excitation): LRP treats the gate as a constant, so ``z = g * x`` is a one-to-one linear
  map of ``x`` and the signal operand receives all of the relevance, the gate none (the
  "signal-take-all" rule for multiplicative gates of Arras et al. 2017, "Explaining recurrent neural
  network predictions in sentiment analysis"; gating terms held constant as in Ali et al. 2022,
  "XAI for Transformers: Better Explanations through Conservative Propagation"). The gate is the
  operand with fewer elements (broadcast); two operands of one shape are refused.
  DeepLIFT uses the exact split of a product's difference from the reference,
  ``Delta(x g) = mean(g) Delta x + mean(x) Delta g`` with ``mean(v) = (v + v_ref) / 2`` (the
  two-factor Shapley value), so summation-to-delta holds through the gate.
"""

import numpy as np
import tensorflow as tf

from tf_sanity.attribution.operations import tensor_operands
from tf_sanity.attribution.rules import LayerRule, safe_divide


class MergeRule(LayerRule):
    """A rule over all tensor operands of an operation (``multi_input``)."""

    multi_input = True

    def backward_all(self, op, forward, xs, z, upstream):
        raise NotImplementedError


def _operand_gradients(forward, xs, upstream):
    """``(d forward / d x_k)^T upstream`` for every operand ``x_k``."""
    with tf.GradientTape() as tape:
        for x in xs:
            tape.watch(x)
        z = forward(*xs)
    return tape.gradient(z, xs, output_gradients=upstream)


class SumRule(MergeRule):
    """LRP for a sum: ``R_k = x_k * (dz/dx_k)^T (R / den(z))``; ``den`` is the rule's stabilizer."""

    def __init__(self, name, denominator):
        self.name, self.denominator = name, denominator

    def backward_all(self, op, forward, xs, z, upstream):
        xs32 = [tf.cast(x, tf.float32) for x in xs]
        z32, up32 = tf.cast(z, tf.float32), tf.cast(upstream, tf.float32)
        s = safe_divide(up32, self.denominator(z32))
        grads = _operand_gradients(lambda *v: tf.cast(forward(*v), tf.float32), xs32, s)
        return [tf.cast(x * g, x0.dtype) for x, g, x0 in zip(xs32, grads, xs)]


def gate_position(op):
    """The index of the gate operand of a two-operand product (fewer elements), or None (equal shapes)."""
    sizes = [np.prod([d or 1 for d in t.shape[1:]]) for t in tensor_operands(op)]
    if len(sizes) != 2 or sizes[0] == sizes[1]:
        return None
    return int(np.argmin(sizes))


class ConstantGateRule(MergeRule):
    """LRP through a gate held constant: the signal operand gets all of the relevance (module docstring)."""

    name = "LRP gate (signal-take-all)"

    def supports(self, layer):
        return gate_position(layer) is not None

    def backward_all(self, op, forward, xs, z, upstream):
        gate = gate_position(op)
        return [tf.zeros_like(x) if k == gate else tf.cast(upstream, x.dtype) for k, x in enumerate(xs)]


class ProductDifferenceRule(MergeRule):
    """DeepLIFT through a product on the paired batch ``[x; reference]`` (module docstring).

    Operand ``k`` gets the multiplier ``(d/dx_k) forward(means with x_k)`` of the input half; the
    reference half gets zero, as in :func:`tf_sanity.attribution.deeplift.rescale_relu`.
    """

    name = "DeepLIFT product (Shapley split)"

    def supports(self, layer):
        return len(tensor_operands(layer)) == 2

    def backward_all(self, op, forward, xs, z, upstream):
        halves = [tf.split(x, 2) for x in xs]
        means = [(x_in + x_ref) / 2 for x_in, x_ref in halves]
        up_in = tf.split(upstream, 2)[0]
        out = []
        for k, (x_in, _) in enumerate(halves):
            operands = [x_in if j == k else means[j] for j in range(len(xs))]
            multiplier = _operand_gradients(forward, operands, up_in)[k]
            out.append(tf.concat([multiplier, tf.zeros_like(multiplier)], 0))
        return out


CONSTANT_GATE = ConstantGateRule()
PRODUCT_DIFFERENCE = ProductDifferenceRule()
