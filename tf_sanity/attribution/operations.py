"""Raw operations in a functional model, as the backward rules see them.

A Keras 3 functional model built with ``x + 3``, ``keras.ops.relu(x)`` or ``keras.ops.reshape(x, ...)``
keeps these as ``keras.src.ops`` ``Operation`` objects in ``model.operations`` (not in ``model.layers``).
Their plain gradient used to pass silently under every rule; :func:`op_kind` sorts them into the
layer kinds of :func:`tf_sanity.attribution.canonizers.layer_kind`, and anything else is refused:

=================  ==================================================================================
``"exact"``        data movement: reshape, transpose, expand / squeeze dims, concatenate, stack,
                   slicing (``x[...]``), cast, identity. The plain gradient moves each signal value
                   back to where it came from, which is the backward step of every method here.
``"relu"``         ``keras.ops.relu``: it gets the composite's ReLU rule, as a ``ReLU`` layer does.
``"elementwise"``  ``+ - * /`` of one tensor and constants, and negation: an element-wise affine map
                   ``z = s * x + o`` (:class:`tf_sanity.attribution.canonizers.Affine`).
``"merge"``        ``+`` or ``-`` of two tensors: a residual sum (``merge_rules``).
``"gate"``         ``*`` of two tensors, one of them a gate (``merge_rules.gate_position``).
=================  ==================================================================================
"""

from keras.src.ops import core, nn, numpy as knp

EXACT_OPS = tuple(getattr(module, name) for module, name in (
    (knp, "Reshape"), (knp, "Transpose"), (knp, "ExpandDims"), (knp, "Squeeze"), (knp, "Concatenate"),
    (knp, "Stack"), (knp, "GetItem"), (core, "Cast"), (knp, "Ravel"), (knp, "MoveAxis"), (knp, "SwapAxes"))
    if hasattr(module, name))
RELU_OPS = (nn.Relu,)
# One tensor operand: element-wise affine. Two tensor operands: see `op_kind`.
AFFINE_OPS = (knp.Add, knp.Subtract, knp.Multiply, knp.Divide, knp.TrueDivide, knp.Negative)
MERGE_OPS = (knp.Add, knp.Subtract)
DIVIDE_OPS = (knp.Divide, knp.TrueDivide)


def tensor_operands(op):
    """The symbolic tensors `op` takes (its only call), in argument order; [] if called more than once."""
    nodes = op._inbound_nodes
    return list(nodes[0].arguments.keras_tensors) if len(nodes) == 1 else []


def op_kind(op):
    """The layer kind of raw operation `op` (module docstring), or None (no rule: refused)."""
    if isinstance(op, EXACT_OPS):
        return "exact"
    if isinstance(op, RELU_OPS):
        return "relu"
    operands = tensor_operands(op)
    if isinstance(op, AFFINE_OPS) and len(operands) == 1:
        args = op._inbound_nodes[0].arguments.args
        if isinstance(op, DIVIDE_OPS) and not (args and args[0] is operands[0]):
            return None  # constant / x is not affine in x
        return "elementwise"
    if isinstance(op, MERGE_OPS) and len(operands) == 2:
        return "merge"
    if isinstance(op, knp.Multiply) and len(operands) == 2:
        return "gate"
    return None


def describe(op):
    """``'name' (Type)`` for messages."""
    return f"{op.name!r} ({type(op).__name__})"
