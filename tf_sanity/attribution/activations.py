"""Activations: what a modified-backprop method does at each element-wise activation, in one place.

**Units.** :func:`unit_of_layer` and :func:`unit_of_function` read an activation as a :class:`Unit`:
its real forward function and its local derivative. Activation layers (:data:`ACTIVATION_LAYERS`:
``ReLU``, ``LeakyReLU``, ``PReLU``, ``ELU``, ``Activation``) and activations fused into a layer
(``Conv2D(activation="relu6")``, ``Dense(activation=keras.activations.silu)``, ...) are read alike.
A unit is of one of four kinds:

===============  ==================================================================================
``linear``       ``linear`` / no activation: nothing to do.
``relu``         the ReLU family: ``f(x) = x`` on ``(threshold, max_value)``, ``negative_slope * (x -
                 threshold)`` below ``threshold`` (Keras's ``relu``; ``f(x) = 0`` there without slope),
                 ``max_value`` above it. ``relu``, ``relu6``, ``leaky_relu`` (fused or ``Activation``),
                 ``ReLU(max_value, negative_slope, threshold)``, ``LeakyReLU``, ``PReLU`` (the learned
                 per-channel slope, read from the variable when the graph runs). Local derivative,
                 with the kinks given to the outer pieces: ``1`` on the open interval ``(threshold,
                 max_value)``, ``negative_slope`` at and below ``threshold``, ``0`` at and above
                 ``max_value`` (TensorFlow's ``relu``, ``relu6`` and ``leaky_relu`` gradients).
``elementwise``  any other element-wise activation of :data:`ELEMENTWISE` (silu / swish, gelu, elu,
                 selu, tanh, sigmoid, softplus, hard_silu, ...); local derivative by autodiff.
``other``        not element-wise (softmax, log_softmax, glu, sparsemax) or unknown: refused by
                 every method with rules, whatever the policy.
===============  ==================================================================================

**Policies.** A method with rules applies its activation rule (guided, DeConvNet, RectGrad, LRP's pass,
DeepLIFT's rescale; :func:`tf_sanity.attribution.rules.activation_rule`) to every ReLU-family unit,
with the unit's real forward. What it does at the other element-wise units is its *activation policy*,
the setting ``activations`` of the method (:data:`FAMILIES`; default first):

==================  ===============  =====================================================================
family              policy           other element-wise units get
==================  ===============  =====================================================================
guided              ``"gradient"``   their plain local gradient: captum's ``GuidedBackprop`` /
(guided backprop,                    ``Deconvolution`` and zennit's ``guided_backprop`` / ``deconvnet``
guided GradCAM,                      composites hook ``nn.ReLU`` only and leave every other activation
DeConvNet, RectGrad)                 its gradient
relevance (LRP,     ``"pass"``       the relevance unchanged: zennit's ``Pass`` rule, which its LRP
DeepTaylor)                          composites give every ``Activation`` type (Montavon et al. 2019 state
                                     the LRP rules on the linear part of each layer, so relevance at a
                                     neuron's output passes its activation as it is)
deeplift            ``"rescale"``    the rescale multiplier ``(f(x) - f(x_ref)) / (x - x_ref)``, ``f'(x)``
                                     where ``|x - x_ref| <= 1e-7`` (Shrikumar et al. 2017, Sec. 3.5.1,
                                     for any element-wise nonlinearity; captum's ``DeepLift``)
every family        ``"strict"``     a one-line ``SanityError``: the rules are defined for ReLU networks
==================  ===============  =====================================================================

The policy is recorded in the composite (:class:`tf_sanity.attribution.composites.Composite`'s
``activations``) and in the method's settings. :func:`announce` warns once per (model, composite) which
activations got which treatment, so a change of method is never silent.
"""

import collections
import dataclasses
import functools
import inspect
import warnings
import weakref
from typing import Callable, Optional

import keras
import tensorflow as tf

from tf_sanity.attribution.graph import leaf_layers
from tf_sanity.errors import SanityError, unknown_name

L = keras.layers

ACTIVATION_LAYERS = (L.ReLU, L.LeakyReLU, L.PReLU, L.ELU, L.Activation)
# Element-wise activations outside the ReLU family, by function name (keras.activations, tf.nn).
ELEMENTWISE = frozenset({
    "celu", "elu", "exponential", "gelu", "hard_shrink", "hard_sigmoid", "hard_silu", "hard_swish",
    "hard_tanh", "log_sigmoid", "mish", "selu", "sigmoid", "silu", "soft_shrink", "softplus", "softsign",
    "sparse_plus", "sparse_sigmoid", "squareplus", "swish", "tanh", "tanh_shrink"})
# Fused / Activation functions of the ReLU family: name -> the Unit fields that are not the defaults.
RELU_FUNCTIONS = {"relu": {}, "relu6": {"max_value": 6.0}, "leaky_relu": {"negative_slope": None}}


class ActivationPolicyWarning(UserWarning):
    """Which activations of a model got which treatment under a method's activation policy."""


# ------------------------------------------------------------------------------------------- units

@dataclasses.dataclass(frozen=True, eq=False)
class Unit:
    """An element-wise activation as the rules see it (module docstring).

    Attributes:
      name: for messages, e.g. ``"relu6"``, ``"leaky_relu(0.3)"``, ``"prelu"``, ``"silu"``.
      kind: ``"linear"``, ``"relu"``, ``"elementwise"`` or ``"other"``.
      forward: the real forward function ``x -> f(x)``.
      negative_slope, max_value, threshold: the ReLU family's parameters; ``negative_slope`` may be a
        callable returning a tensor that broadcasts to ``x`` (PReLU's ``alpha``).
    """

    name: str
    kind: str
    forward: Optional[Callable]
    negative_slope: object = 0.0
    max_value: Optional[float] = None
    threshold: float = 0.0

    @property
    def is_plain_relu(self):
        return self.kind == "relu" and self.name == "relu"

    def derivative(self, x):
        """The local derivative ``f'(x)``, element by element (the kink convention of the module docstring)."""
        if self.kind == "relu":
            slope = self.negative_slope() if callable(self.negative_slope) else self.negative_slope
            below = tf.cast(slope, x.dtype) * tf.ones_like(x)
            d = tf.where(x > self.threshold, tf.ones_like(x), below)
            return d if self.max_value is None else tf.where(x < self.max_value, d, tf.zeros_like(x))
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = self.forward(x)
        return tape.gradient(y, x)


def function_name(fn):
    return getattr(fn, "__name__", type(fn).__name__)


def _relu_family(forward, negative_slope=0.0, max_value=None, threshold=0.0):
    """A ReLU-family unit named by its parameters."""
    if callable(negative_slope):
        name = "prelu"
    elif not negative_slope and not threshold and max_value in (None, 6):
        name = "relu" if max_value is None else "relu6"
    elif max_value is None and not threshold:
        name = f"leaky_relu({negative_slope:g})"
    else:
        given = {"max_value": max_value, "negative_slope": negative_slope, "threshold": threshold}
        name = "relu(" + ", ".join(f"{k}={v:g}" for k, v in given.items() if v) + ")"
    return Unit(name, "relu", forward, negative_slope, max_value, threshold)


def _default_slope(fn):
    """The default negative slope of a leaky ReLU function (Keras ``negative_slope``, tf.nn ``alpha``)."""
    try:
        parameters = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        parameters = {}
    for name in ("negative_slope", "alpha"):
        if name in parameters and isinstance(parameters[name].default, (int, float)):
            return float(parameters[name].default)
    return 0.2  # keras.activations.leaky_relu and tf.nn.leaky_relu


def unit_of_function(fn):
    """The unit of an activation function (fused into a layer, or an ``Activation`` layer's)."""
    name = function_name(fn)
    if fn is None or name == "linear":
        return Unit("linear", "linear", fn)
    if name in RELU_FUNCTIONS:
        params = dict(RELU_FUNCTIONS[name])
        if "negative_slope" in params:
            params["negative_slope"] = _default_slope(fn)
        return _relu_family(fn, **params)
    return Unit(name, "elementwise" if name in ELEMENTWISE else "other", fn)


def unit_of_layer(layer, call):
    """The unit of an activation layer (:data:`ACTIVATION_LAYERS`) whose own ``call`` is `call`."""
    forward = lambda x: call(x)  # noqa: E731
    if isinstance(layer, L.ReLU):
        return _relu_family(forward, float(layer.negative_slope),
                            None if layer.max_value is None else float(layer.max_value), float(layer.threshold))
    if isinstance(layer, L.LeakyReLU):
        return _relu_family(forward, float(layer.negative_slope))
    if isinstance(layer, L.PReLU):
        return _relu_family(forward, lambda: tf.convert_to_tensor(layer.alpha))
    if isinstance(layer, L.ELU):
        return Unit("elu" if layer.alpha == 1 else f"elu({layer.alpha:g})", "elementwise", forward)
    return dataclasses.replace(unit_of_function(layer.activation), forward=forward)


def units(model):
    """``(layer, unit, where)`` for every activation of `model`, ``where`` "layer" or "fused"."""
    for layer in leaf_layers(model):
        if isinstance(layer, ACTIVATION_LAYERS):
            yield layer, unit_of_layer(layer, layer.call), "layer"
        elif getattr(layer, "activation", None) is not None:
            yield layer, unit_of_function(layer.activation), "fused"


# ---------------------------------------------------------------------------------------- policies

@dataclasses.dataclass(frozen=True)
class Policy:
    """An activation policy.

    Attributes:
      name: the value of the setting ``activations``.
      others: what element-wise units outside the ReLU family get: ``"gradient"`` (their plain local
        gradient), ``"rule"`` (the method's activation rule) or None (refused).
      source: whose convention it is.
    """

    name: str
    others: Optional[str]
    source: str


POLICIES = {p.name: p for p in (
    Policy("gradient", "gradient", "captum's GuidedBackprop/Deconvolution and zennit's guided_backprop/deconvnet "
                                   "modify nn.ReLU only"),
    Policy("pass", "rule", "zennit's Pass rule for activations in LRP composites"),
    Policy("rescale", "rule", "DeepLIFT's rescale rule for any element-wise nonlinearity, Shrikumar et al. 2017"),
    Policy("strict", None, "the rules are defined for ReLU networks"),
)}
# Method family -> its policies, the default first.
FAMILIES = {"guided": ("gradient", "strict"), "relevance": ("pass", "strict"), "deeplift": ("rescale", "strict")}


def check_policy(family, name):
    """`name` if it is a policy of method family `family`, else a one-line SanityError."""
    if name not in FAMILIES[family]:
        raise unknown_name("activations setting", name, FAMILIES[family])
    return name


def treatment(composite, layer, unit):
    """``"rule"`` (the composite's activation rule) or ``"gradient"`` (left as it is) for `unit`.

    Raises:
      SanityError: the composite's policy refuses the unit, or the unit is not element-wise.
    """
    if unit.kind == "linear" or (unit.is_plain_relu and composite.relu is None):
        return "gradient"
    if unit.kind == "relu" and composite.relu is not None:
        return "rule"
    others = POLICIES[composite.activations].others if unit.kind != "other" else None
    if others is None:
        raise SanityError(f"{composite.name} is defined for ReLU networks; layer {layer.name!r} uses activation "
                          f"{unit.name!r}: {_advice(composite, unit)}")
    return others if composite.relu is not None else "gradient"


def _advice(composite, unit):
    """What the user can do about a refused `unit`: the method's own setting, if it has one, else another method."""
    if unit.kind == "other":
        return "it is not element-wise: explain a model without it (e.g. a logits model instead of softmax)"
    if composite.default_activations is not None:
        return (f"pass activations={composite.default_activations!r} (the method's default) or explain a model "
                f"without it")
    return ("this method has no activations setting: explain a model with ReLU-family activations, or use a "
            "method that has one (e.g. lrp_epsilon, deeplift, guided_backprop)")


def layer_call(composite, layer):
    """The replacement ``call`` of activation layer `layer` under `composite`, or None to keep its own."""
    unit = unit_of_layer(layer, layer.call)
    if treatment(composite, layer, unit) != "rule":
        return None
    ruled = composite.relu(unit)
    return lambda x, *args, **kwargs: ruled(x)


def fused(composite, layer, activation):
    """The activation fused into `layer` as `composite` treats it (`activation` itself if unchanged)."""
    unit = unit_of_function(activation)
    return composite.relu(unit) if treatment(composite, layer, unit) == "rule" else activation


def with_setting(make, family):
    """Adds the setting ``activations`` (default: `family`'s) to ``make(**settings) -> Backprop``."""
    default = FAMILIES[family][0]

    def make_with_policy(*, activations=default, **settings):
        backprop = make(**settings)
        composite = dataclasses.replace(backprop.composite, activations=check_policy(family, activations),
                                        default_activations=default)
        return dataclasses.replace(backprop, composite=composite)

    functools.update_wrapper(make_with_policy, make)
    signature = inspect.signature(make)
    extra = inspect.Parameter("activations", inspect.Parameter.KEYWORD_ONLY, default=default)
    make_with_policy.__signature__ = signature.replace(parameters=[*signature.parameters.values(), extra])
    return make_with_policy


# ---------------------------------------------------------------------------------------- announce

_ANNOUNCED = weakref.WeakKeyDictionary()  # model -> composites already announced


def report(model, composite):
    """The announcement of `composite`'s treatment of `model`'s activations, or None.

    None when it was announced before, or when every activation is a plain ReLU or linear (the
    method as its authors defined it). Raises the SanityError of a refused activation.
    """
    if composite in _ANNOUNCED.get(model, ()):
        return None
    rule = getattr(composite.relu, "rule_name", "activation") + " rule"
    counts = collections.Counter()
    for layer, unit, _ in units(model):
        how = treatment(composite, layer, unit)
        if unit.kind != "linear":
            counts[unit.name, rule if how == "rule" else "plain gradient"] += 1
    if all(name == "relu" for name, _ in counts):
        return None
    listed = ", ".join(f"{name} x{n} -> {how}" for (name, how), n in sorted(counts.items()))
    policy = POLICIES[composite.activations]
    note = "" if any(how == rule for _, how in counts) else f"; no unit gets the {rule}"
    if policy.others is not None:
        note += "; activations='strict' refuses activations outside the ReLU family"
    return (f"{composite.name} on model {model.name!r} with activations={policy.name!r} ({policy.source}): "
            f"{listed}{note}")


def announced(model):
    """The composites whose treatment of `model`'s activations has been announced."""
    return frozenset(_ANNOUNCED.get(model, ()))


def announce(model, composite, message):
    """Warns `message` (from :func:`report`) once per (model, composite)."""
    _ANNOUNCED.setdefault(model, set()).add(composite)
    if message:
        warnings.warn(message, ActivationPolicyWarning, stacklevel=2)
