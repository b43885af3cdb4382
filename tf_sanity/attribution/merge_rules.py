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
  "XAI for Transformers: Better Explanations through Conservative Propagation"). Which operand is the
  gate (:func:`gate_position`) is read off the graph: the one computed by a sigmoid-like activation
  (:data:`GATE_ACTIVATIONS`, as squeeze-and-excitation gates are), else the one with fewer elements
  (broadcast over the other). Where neither tells (two operands of one shape, e.g. an SE block on a
  1x1 map, neither or both from a sigmoid) or they disagree, the product is refused with one line.
  DeepLIFT uses the exact split of a product's difference from the reference,
  ``Delta(x g) = mean(g) Delta x + mean(x) Delta g`` with ``mean(v) = (v + v_ref) / 2`` (the
  two-factor Shapley value), so summation-to-delta holds through the gate.
"""

import numpy as np
import tensorflow as tf

from tf_sanity.attribution import activations, graph
from tf_sanity.attribution.composites import unpatched
from tf_sanity.attribution.operations import tensor_operands
from tf_sanity.attribution.rules import LayerRule, fused, safe_divide
from tf_sanity.errors import SanityError


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
        self.ratio = fused(lambda relevance, z: safe_divide(relevance, denominator(z)))

    def backward_all(self, op, forward, xs, z, upstream):
        xs32 = [tf.cast(x, tf.float32) for x in xs]
        z32, up32 = tf.cast(z, tf.float32), tf.cast(upstream, tf.float32)
        s = self.ratio(up32, z32)
        grads = _operand_gradients(lambda *v: tf.cast(forward(*v), tf.float32), xs32, s)
        return [tf.cast(x * g, x0.dtype) for x, g, x0 in zip(xs32, grads, xs)]


# Activations whose output in [0, 1] makes an operand a gate (squeeze-and-excitation: sigmoid in EfficientNet,
# hard_sigmoid in MobileNetV3).
GATE_ACTIVATIONS = frozenset({"sigmoid", "hard_sigmoid"})


def _from_gate_activation(op):
    """Whether leaf operation `op` ends in an activation of :data:`GATE_ACTIVATIONS` (fused or a layer)."""
    if isinstance(op, activations.ACTIVATION_LAYERS):
        unit = activations.unit_of_layer(op, op.call)
    else:
        unit = activations.unit_of_function(unpatched(op, "activation"))
    return unit.name in GATE_ACTIVATIONS


def gate_position(op):
    """The index of the gate operand of a two-operand product, or None where it cannot be told.

    The gate is the one operand computed by a sigmoid-like activation, else the operand with fewer
    elements (broadcast over the other); None where neither rule picks one or the two disagree.
    """
    operands = tensor_operands(op)
    producers = graph.parents(op) or []
    if len(operands) != 2 or len(producers) != 2:
        return None
    sizes = [np.prod([d or 1 for d in t.shape[1:]]) for t in operands]
    by_size = None if sizes[0] == sizes[1] else int(np.argmin(sizes))
    gated = [k for k, producer in enumerate(producers) if _from_gate_activation(producer)]
    by_graph = gated[0] if len(gated) == 1 else None
    if by_graph is not None and by_size is not None and by_graph != by_size:
        return None
    return by_graph if by_graph is not None else by_size


class ConstantGateRule(MergeRule):
    """LRP through a gate held constant: the signal operand gets all of the relevance (module docstring)."""

    name = "LRP gate (signal-take-all)"

    def supports(self, layer):
        """Raises a one-line SanityError where the gate cannot be told (:func:`gate_position`)."""
        if len(tensor_operands(layer)) != 2:
            return False
        if gate_position(layer) is None:
            shapes = " and ".join(str(tuple(t.shape[1:])) for t in tensor_operands(layer))
            raise SanityError(
                f"{self.name}: cannot tell which operand of the product {layer.name!r} ({type(layer).__name__}, "
                f"shapes {shapes}) is the gate: neither or both come from a {' / '.join(sorted(GATE_ACTIVATIONS))} "
                f"activation, and neither is broadcast over the other (or the two disagree); compute the gate with "
                f"a sigmoid, or use a gradient method")
        return True

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
