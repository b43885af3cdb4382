"""Composites: a map from layers to backward rules, and how it is applied to a Keras model.

A *composite* (zennit's word) maps every layer of a model to rules, in two parts:

* an **activation rule** replaces the backward pass of each ReLU-family unit (guided backprop's
  guided rule, DeConvNet's, LRP's pass-through; :mod:`tf_sanity.attribution.rules`), with the unit's
  real forward. It reaches activation layers (``ReLU``, ``LeakyReLU``, ``PReLU``, ``Activation``) and
  activations fused into ``Conv2D`` / ``Dense``. What other element-wise activations get is the
  composite's activation policy (:mod:`tf_sanity.attribution.activations`).
* a **layer rule** replaces the backward pass of a layer's linear part (the layer with its fused
  activation split off), e.g. the LRP rules of "When Explanations Lie" (Sixt et al. 2020).

Rules are built with ``tf.custom_gradient`` (``tf.GradientTape`` ignores ``gradient_override_map``).
:func:`applied` swaps them into the layers only while a compiled function is *traced*
(:mod:`tf_sanity.attribution.engine` is the one place that does it): the graph keeps the modified
backward pass and the user's model is restored as soon as tracing ends, also on error. Nothing is
cloned, so randomized weights (assigned in place) are seen by the graph.
"""

import contextlib
import dataclasses
import weakref
from typing import Callable, Optional

import keras
import tensorflow as tf
from keras import tree

from tf_sanity.attribution import activations, operations
from tf_sanity.attribution.graph import leaf_operations
from tf_sanity.errors import SanityError

# An activation rule takes an activations.Unit (the real forward, its derivative) and returns the replacement.
ActivationRule = Callable[[activations.Unit], Callable]


@dataclasses.dataclass(frozen=True)
class Composite:
    """Maps layers to backward rules.

    Attributes:
      name: what the composite is called in messages (usually the method name).
      relu: the activation rule applied to every ReLU-family unit, or None to keep the plain gradient
        (then only plain ReLUs are accepted under the ``"strict"`` policy).
      layer_rule: ``layer -> LayerRule | None`` (:mod:`tf_sanity.attribution.rules`); None keeps the layer's plain gradient.
      activations: the activation policy (:data:`tf_sanity.attribution.activations.POLICIES`): what
        element-wise activations outside the ReLU family get. ``"strict"`` makes them an error (the
        rules are defined for ReLU networks); never a silent fallback to the gradient.
      default_activations: the default of the method's setting ``activations``
        (:func:`tf_sanity.attribution.activations.with_setting`), or None where the method has no such
        setting (PatternNet: ``"strict"`` is then the only policy); refusals name what the user can do.
    """

    name: str
    relu: Optional[ActivationRule] = None
    layer_rule: Optional[Callable[[keras.layers.Layer], Optional[object]]] = None
    activations: str = "strict"
    default_activations: Optional[str] = None


# obj -> {attr: value before `applied` patched it}, only while patched (see `unpatched`).
_ORIGINALS = weakref.WeakKeyDictionary()


def unpatched(obj, attr, default=None):
    """``getattr(obj, attr, default)`` as it was before :func:`applied` patched it.

    A rule that inspects other layers while a composite is being applied (e.g. whether a Dense
    before a BatchNorm has a fused ReLU) sees earlier layers already patched; this gives it the
    user's values. Outside :func:`applied` it is plain ``getattr``.
    """
    value = _ORIGINALS.get(obj, {}).get(attr, _Patcher._MISSING)
    if value is _Patcher._MISSING:
        return getattr(obj, attr, default)
    return default if value is _Patcher._NOT_SET else value


class _Patcher:
    """Remembers instance attributes it sets so they can be put back exactly."""

    _MISSING = object()
    _NOT_SET = object()

    def __init__(self):
        self._saved = []
        self._recorded = []

    def set(self, obj, attr, value):
        self._saved.append((obj, attr, obj.__dict__.get(attr, self._MISSING)))
        originals = _ORIGINALS.setdefault(obj, {})
        if attr not in originals:
            originals[attr] = getattr(obj, attr, self._NOT_SET)
            self._recorded.append((obj, attr))
        object.__setattr__(obj, attr, value) if attr == "call" else setattr(obj, attr, value)

    def restore(self):
        for obj, attr, old in reversed(self._saved):
            if old is self._MISSING:
                delattr(obj, attr)
            else:
                setattr(obj, attr, old)
        self._saved.clear()
        for obj, attr in self._recorded:
            originals = _ORIGINALS.get(obj, {})
            originals.pop(attr, None)
            if not originals:
                _ORIGINALS.pop(obj, None)
        self._recorded.clear()


def _with_layer_rule(layer, rule, call, activation):
    """Returns ``layer.call`` replaced: linear part with `rule`'s backward, then `activation`."""

    def call_with_rule(inputs, *args, **kwargs):
        @tf.custom_gradient
        def linear(x):
            z = call(x, *args, **kwargs)

            def grad(upstream, variables=None):
                downstream = rule.backward(layer, x, z, upstream)
                return downstream, [None] * len(variables or ())

            return z, grad

        return activation(linear(inputs))

    return call_with_rule


@contextlib.contextmanager
def applied(model, composite):
    """Context in which `model`'s layers run with `composite`'s backward rules.

    Use it only around tracing (inside a ``tf.function``): the traced graph keeps the rules,
    and the model is restored exactly on exit, also when an error interrupts.

    The first time a composite is applied to a model, it warns which activations got which
    treatment (:func:`tf_sanity.attribution.activations.report`) unless all are plain ReLUs.

    Raises:
      SanityError: a layer the composite's rule does not support, or an activation its policy refuses.
    """
    patcher = _Patcher()
    try:
        announcement = activations.report(model, composite)
        for op in leaf_operations(model):
            if not _apply_to_operation(composite, op, patcher):
                _apply_to_layer(composite, op, patcher)
        activations.announce(model, composite, announcement)
        yield model
    finally:
        patcher.restore()


def _check_supported(composite, rule, layer):
    if rule is not None and not rule.supports(layer):
        raise SanityError(f"rule {rule.name!r} of {composite.name} does not support layer "
                          f"{layer.name!r} ({type(layer).__name__}); choose another method or rule")


def _with_operation_rule(op, rule, call):
    """``op.call`` replaced: one ``tf.custom_gradient`` over all its tensor operands, backward by `rule`.

    A rule with ``multi_input`` (:mod:`tf_sanity.attribution.merge_rules`) gets every operand
    (``backward_all``); any other rule gets the one tensor operand of a raw operation (``x + 3``).
    """

    def call_with_rule(*args, **kwargs):
        flat = tree.flatten((args, kwargs))
        positions = [k for k, value in enumerate(flat) if tf.is_tensor(value)]

        def forward(*xs):
            filled = list(flat)
            for k, x in zip(positions, xs):
                filled[k] = x
            a, kw = tree.pack_sequence_as((args, kwargs), filled)
            return call(*a, **kw)

        @tf.custom_gradient
        def run(*xs):
            z = forward(*xs)

            def grad(upstream, variables=None):
                if getattr(rule, "multi_input", False):
                    downstream = rule.backward_all(op, forward, list(xs), z, upstream)
                else:
                    downstream = [rule.backward(op, xs[0], z, upstream)]
                return downstream, [None] * len(variables or ())

            return z, grad

        return run(*[flat[k] for k in positions])

    return call_with_rule


def _apply_to_operation(composite, op, patcher):
    """Rules for raw operations and multi-input layers; False for a layer :func:`_apply_to_layer` handles.

    Raises:
      SanityError: a raw operation without a rule (never its plain gradient in silence).
    """
    rule = composite.layer_rule(op) if composite.layer_rule else None
    if isinstance(op, keras.layers.Layer):
        if not getattr(rule, "multi_input", False):
            return False
    elif operations.op_kind(op) is None:
        raise SanityError(f"{composite.name} has no backward rule for the raw operation {operations.describe(op)}; "
                          f"write the model with Keras layers the method supports, or use a gradient method")
    elif operations.op_kind(op) == "relu":
        if composite.relu is not None:
            ruled = composite.relu(activations.unit_of_function(tf.nn.relu))
            patcher.set(op, "call", lambda x, *a, **k: ruled(x))
        return True
    _check_supported(composite, rule, op)
    if rule is not None:
        patcher.set(op, "call", _with_operation_rule(op, rule, op.call))
    return True


def _apply_to_layer(composite, layer, patcher):
    if isinstance(layer, activations.ACTIVATION_LAYERS):
        call = activations.layer_call(composite, layer)
        if call is not None:
            patcher.set(layer, "call", call)
        return
    rule = composite.layer_rule(layer) if composite.layer_rule else None
    _check_supported(composite, rule, layer)
    activation = getattr(layer, "activation", None)
    if activation is not None:
        activation = activations.fused(composite, layer, activation)
    if rule is not None:
        patcher.set(layer, "activation", keras.activations.linear)
        patcher.set(layer, "call", _with_layer_rule(layer, rule, layer.call,
                                                    activation or keras.activations.linear))
    elif activation is not None and activation is not getattr(layer, "activation"):
        patcher.set(layer, "activation", activation)
