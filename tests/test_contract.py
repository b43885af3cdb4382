"""The contract every registered method keeps, checked over all of ``tf_sanity.METHODS``.

The cases are read from the registry at collection time, so a newly registered method (and its
SmoothGrad / VarGrad variants) is covered without editing this file. Each method runs on the two
tiny nets of :mod:`tests.tiny_nets` (a dense ReLU net on 6 inputs; a 6x6x2 conv net with a
fused ReLU, max pooling, a folded BatchNorm and a standalone ReLU layer), three images, and checks:

1. the mask has the input's shape (also for one image without batch axis) and dtype float32;
2. every value is finite;
3. ``batch_size=1`` gives the same masks as the default (``RTOL`` / ``ATOL`` below; SG / VG with
   the same seed);
4. two calls with the same settings and seed give bit-identical masks;
5. the model's variables are bit-identical to what they were when the net was built, and no layer
   keeps an instance attribute (a patched ``call`` or ``activation``) it did not have then;
6. every method that is a backward pass with rules (``Method.make_backprop`` with a composite)
   raises a one-line ``SanityError`` naming the layer on a net with a layer its rules do not
   support, while the plain gradient methods explain that net. On a net with a tanh, a method with
   an activation policy (the setting ``activations``) raises under ``activations="strict"`` and, by
   default, explains and announces the treatment once (``ActivationPolicyWarning``).

Settings come from the metadata (``Method.settings``, ``Method.noise_tunnel``,
``Method.needs_spatial_layer``); only settings the metadata cannot express (fitted patterns,
DeepTaylor's input bounds) are in :data:`REQUIRED_SETTINGS`.
"""

import dataclasses
import warnings

import keras
import numpy as np
import pytest

import tf_sanity
from tf_sanity import SanityError
from tf_sanity.attribution import activations
from tf_sanity.attribution.methods import make_backprop
from tf_sanity.attribution.patterns import Patterns, fit_patterns
from tests import tiny_nets

METHODS = tf_sanity.METHODS

TARGETS = np.array([0, 2, 1], np.int32)
LOW, HIGH = -1.0, 1.0  # the images lie in [LOW, HIGH]
IG_STEPS, NOISE_N, SEED = 4, 3, 7

# Batch-size invariance: masks agree to float32 rounding of differently blocked matmuls/convs.
RTOL, ATOL = 1e-5, 1e-6  # ATOL is relative to the largest |value| of the mask

# Settings the metadata cannot supply: ``net -> settings``. Keys must be registered methods.
REQUIRED_SETTINGS = {
    "deep_taylor_bounded": lambda net: {"low": LOW, "high": HIGH},
    "pattern_net": lambda net: {"patterns": net.patterns},
    "pattern_attribution": lambda net: {"patterns": net.patterns},
}

# The methods that are plain gradients and must explain any differentiable model.
PLAIN_GRADIENT_METHODS = ("gradient", "gradient_x_input", "integrated_gradients")

# (test, method name, net) -> reason: known contract violations, marked xfail(strict=True) so that
# a fix shows up as a failure here. test: "unchanged", "shape", "batch_size" or "determinism";
# net: "dense" or "conv". None today.
KNOWN_VIOLATIONS = {}

NET_SHAPES = {"dense": (6,), "conv": (6, 6, 2)}


# ------------------------------------------------------------------------------------------ helpers

@dataclasses.dataclass
class Net:
    name: str
    model: keras.Model
    x: np.ndarray
    patterns: object
    weights: list  # every variable's value right after building
    layer_state: dict  # layer -> {instance attribute: value} right after building


def weights_of(model):
    return [np.array(v.numpy(), copy=True) for v in model.variables]


def all_layers(model):
    """The model and every layer in it, nested models included."""
    out = [model]
    for layer in model.layers:
        out.extend(all_layers(layer) if isinstance(layer, keras.Model) else [layer])
    return out


def layer_state(model):
    return {layer: dict(vars(layer)) for layer in all_layers(model)}


def weight_changes(model, before):
    after = weights_of(model)
    assert len(after) == len(before), "the model gained or lost variables"
    return [v.path for v, old, new in zip(model.variables, before, after)
            if old.shape != new.shape or old.tobytes() != new.tobytes()]


def layer_changes(model, before):
    """Layers whose instance attributes differ from `before`: new or lost keys, or a replaced
    ``call`` / ``activation`` (compared by identity)."""
    changes = []
    for layer, state in layer_state(model).items():
        old = before.get(layer)
        if old is None:
            changes.append(f"{layer.name}: a layer that was not there before")
            continue
        added, lost = state.keys() - old.keys(), old.keys() - state.keys()
        if added or lost:
            changes.append(f"{layer.name}: added {sorted(added)}, lost {sorted(lost)}")
        for attr in ("call", "activation"):
            if attr in state and attr in old and state[attr] is not old[attr]:
                changes.append(f"{layer.name}: {attr} replaced")
    return changes


def restore(net):
    """Puts back the variables and layer attributes recorded when `net` was built, so that one
    method that breaks the contract does not fail the checks of the methods after it."""
    for variable, value in zip(net.model.variables, net.weights):
        variable.assign(value)
    for layer, old in net.layer_state.items():
        for key in vars(layer).keys() - old.keys():
            object.__delattr__(layer, key)
        for attr in ("call", "activation"):
            if attr in old and vars(layer).get(attr) is not old[attr]:
                object.__setattr__(layer, attr, old[attr])


def make_net(name, seed=0):
    if name == "dense":
        model, _, _ = tiny_nets.dense_net(seed=seed)
    else:
        model, _, _ = tiny_nets.conv_net(seed=seed)
    x = tiny_nets.images(len(TARGETS), NET_SHAPES[name], LOW, HIGH, seed=seed + 1)
    train = tiny_nets.images(40, NET_SHAPES[name], LOW, HIGH, seed=seed + 2)
    # Snapshot before anything (pattern fitting included) touches the model.
    weights, state = weights_of(model), layer_state(model)
    return Net(name, model, x, fit_patterns(model, train), weights, state)


def settings_for(method, net, **overrides):
    """Small, fast settings for `method` on `net`, from its metadata and REQUIRED_SETTINGS."""
    settings = {}
    if "steps" in method.settings:
        settings["steps"] = IG_STEPS
    if method.noise_tunnel:
        settings.update(n=NOISE_N, seed=SEED)
    for name in (method.base, method.name):
        if name in REQUIRED_SETTINGS:
            settings.update(REQUIRED_SETTINGS[name](net))
    settings.update(overrides)
    return settings


def explain(method, net, x=None, **overrides):
    return tf_sanity.explain(net.model, net.x if x is None else x, method.name, TARGETS if x is None else TARGETS[0],
                             **settings_for(method, net, **overrides))


def cases(test):
    """One case per (registered method, tiny net); spatial methods are skipped on the dense net."""
    for name, method in METHODS.items():
        for net in NET_SHAPES:
            marks = []
            if method.needs_spatial_layer and net == "dense":
                marks.append(pytest.mark.skip(reason=f"{name} explains at a spatial layer "
                                                     f"(Method.needs_spatial_layer); the dense net has none"))
            if (test, name, net) in KNOWN_VIOLATIONS:
                marks.append(pytest.mark.xfail(strict=True, reason=KNOWN_VIOLATIONS[test, name, net]))
            yield pytest.param(name, net, id=f"{name}-{net}", marks=marks)


@pytest.fixture(scope="module")
def nets():
    """Each tiny net built once per module, so the engine's compiled functions are reused."""
    return {name: make_net(name) for name in NET_SHAPES}


def close(actual, expected):
    scale = max(float(np.abs(expected).max()), 1e-30)
    np.testing.assert_allclose(actual, expected, rtol=RTOL, atol=ATOL * scale)


# ------------------------------------------------------------------------------------------ tests
# The model-unchanged test comes first, so a method's first (tracing) call normally happens in it;
# it compares with the state recorded when the net was built, so a leak is caught in any order.

@pytest.mark.parametrize("name, net_name", cases("unchanged"))
def test_model_weights_and_layers_are_unchanged(name, net_name, nets):
    net = nets[net_name]
    try:
        explain(METHODS[name], net)
        changed_weights = weight_changes(net.model, net.weights)
        changed_layers = layer_changes(net.model, net.layer_state)
    finally:
        restore(net)
    assert not changed_weights, f"{name} changed variables {changed_weights}"
    assert not changed_layers, f"{name} left layers changed: {changed_layers}"


@pytest.mark.parametrize("name, net_name", cases("shape"))
def test_mask_shape_dtype_and_finite(name, net_name, nets):
    net, method = nets[net_name], METHODS[name]
    mask = explain(method, net)
    assert isinstance(mask, np.ndarray) and mask.dtype == np.float32, (type(mask), getattr(mask, "dtype", None))
    assert mask.shape == net.x.shape
    assert np.isfinite(mask).all(), f"{name}: {np.sum(~np.isfinite(mask))} non-finite values"
    # One image without batch axis: a mask without batch axis, the batch's first row.
    single = explain(method, net, x=net.x[0])
    assert isinstance(single, np.ndarray) and single.dtype == np.float32 and single.shape == net.x.shape[1:]
    close(single, mask[0])


@pytest.mark.parametrize("name, net_name", cases("batch_size"))
def test_batch_size_one_gives_the_same_masks(name, net_name, nets):
    net, method = nets[net_name], METHODS[name]
    assert "batch_size" in method.settings, f"{name} has no batch_size setting"
    default = explain(method, net)
    close(explain(method, net, batch_size=1), default)
    close(explain(method, net, batch_size=2), default)  # a chunk boundary inside the images / rows


@pytest.mark.parametrize("name, net_name", cases("determinism"))
def test_same_settings_and_seed_give_identical_masks(name, net_name, nets):
    net, method = nets[net_name], METHODS[name]
    first, second = explain(method, net), explain(method, net)
    assert first.tobytes() == second.tobytes(), f"{name}: max difference {np.abs(first - second).max()}"


def test_the_seed_of_smoothgrad_and_vargrad_is_used(nets):
    # Determinism above would also hold if the seed were ignored (e.g. noise from a global RNG
    # that happens to be reset); another seed must give other noise.
    net = nets["dense"]
    for name, method in METHODS.items():
        if method.noise_tunnel and not method.needs_spatial_layer:
            a, b = explain(method, net), explain(method, net, seed=SEED + 1)
            assert a.tobytes() != b.tobytes(), f"{name} ignores its seed"


# ------------------------------------------------------------------ unsupported layers: clear errors

def unsupported_net(kind):
    """6 -> Dense 5 relu -> <unsupported layer> -> Dense 3; returns (model, the layer's name)."""
    keras.utils.set_random_seed(5)
    inp = keras.Input((6,))
    h = keras.layers.Dense(5, activation="relu", name="dense0")(inp)
    if kind == "tanh":
        layer = keras.layers.Activation("tanh", name="my_tanh")
    else:
        layer = keras.layers.UnitNormalization(name="my_norm")
    model = keras.Model(inp, keras.layers.Dense(3, name="logits")(layer(h)))
    return model, layer.name


@pytest.fixture(scope="module")
def unsupported_nets():
    out = {}
    for kind in ("tanh", "unit_norm"):
        model, layer = unsupported_net(kind)
        x = tiny_nets.images(len(TARGETS), (6,), LOW, HIGH, seed=9)
        patterns = fit_patterns(model, tiny_nets.images(20, (6,), LOW, HIGH, seed=10))
        out[kind] = (Net(kind, model, x, patterns, weights_of(model), layer_state(model)), layer)
    return out


def composite_of(method, net):
    """The backward rules of `method`'s base with its settings for `net` (None: no rules)."""
    base = METHODS[method.base] if method.base else method
    if base.make_backprop is None:
        return None
    return make_backprop(base.name, **settings_for(base, net)).composite


def rule_cases():
    """Methods that are a backward pass with rules (and their non-spatial SG / VG variants), with
    what they do on each unsupported net. Read at collection time: placeholder patterns stand in
    for fitted ones, which only the rules' application checks."""
    placeholder = Net("collection", None, None, Patterns("collection", {}, {}, {}, 0), [], {})
    for name, method in METHODS.items():
        composite = composite_of(method, placeholder)
        if composite is None or method.needs_spatial_layer:
            continue  # the plain gradient (test_plain_gradient_...), or no spatial layer here
        if "activations" in method.settings:  # an activation policy: strict refuses, the default announces
            yield pytest.param(name, "tanh", "error", {"activations": "strict"}, id=f"{name}-tanh-strict")
            yield pytest.param(name, "tanh", "announces", {}, id=f"{name}-tanh-default")
        else:
            yield pytest.param(name, "tanh", "error", {}, id=f"{name}-tanh")
        if composite.layer_rule is not None:
            yield pytest.param(name, "unit_norm", "error", {}, id=f"{name}-unit_norm")
        else:
            # Only the ReLU rule differs from the gradient (guided backprop): a UnitNormalization
            # has no ReLU, so its plain gradient is the method's backward step there.
            yield pytest.param(name, "unit_norm", "explains", {}, id=f"{name}-unit_norm-relu_rule_only")


def explain_and_announce(method, net, **overrides):
    """Explains `net`; checks that the treatment of its activations is announced once per composite."""
    composite = composite_of(method, net)
    before = composite in activations.announced(net.model)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        mask = explain(method, net, **overrides)
    said = [str(w.message) for w in caught if issubclass(w.category, activations.ActivationPolicyWarning)]
    assert len(said) == (0 if before else 1), said
    assert all("tanh x1 -> " in message and "\n" not in message for message in said), said
    assert composite in activations.announced(net.model)
    return mask


@pytest.mark.parametrize("name, kind, expect, overrides", rule_cases())
def test_rules_raise_a_one_line_error_naming_an_unsupported_layer(name, kind, expect, overrides, unsupported_nets):
    net, layer = unsupported_nets[kind]
    method = METHODS[name]
    assert composite_of(method, net) is not None
    if expect != "error":
        mask = (explain_and_announce if expect == "announces" else explain)(method, net, **overrides)
        assert mask.shape == net.x.shape and np.isfinite(mask).all()
    else:
        with pytest.raises(SanityError) as error:
            explain(method, net, **overrides)
        message = str(error.value)
        assert "\n" not in message and f"'{layer}'" in message, message
    assert not layer_changes(net.model, net.layer_state), layer_changes(net.model, net.layer_state)
    assert not weight_changes(net.model, net.weights)


@pytest.mark.parametrize("name", PLAIN_GRADIENT_METHODS)
@pytest.mark.parametrize("kind", ["tanh", "unit_norm"])
def test_plain_gradient_methods_explain_layers_without_rules(name, kind, unsupported_nets):
    net, _ = unsupported_nets[kind]
    mask = explain(METHODS[name], net)
    assert mask.shape == net.x.shape and mask.dtype == np.float32 and np.isfinite(mask).all()
    assert np.abs(mask).max() > 0


# ------------------------------------------------------------------------ the tables and the checks

def test_tables_name_only_registered_methods_and_required_settings_are_required(nets):
    net = nets["dense"]
    assert set(REQUIRED_SETTINGS) <= set(METHODS), set(REQUIRED_SETTINGS) - set(METHODS)
    assert set(PLAIN_GRADIENT_METHODS) <= set(METHODS)
    assert {name for _, name, _ in KNOWN_VIOLATIONS} <= set(METHODS)
    for name, required in REQUIRED_SETTINGS.items():
        settings = required(net)
        assert set(settings) <= set(METHODS[name].settings), (name, settings)
        with pytest.raises(SanityError):  # without them: a clear error, so the table is needed
            tf_sanity.explain(net.model, net.x, name, TARGETS)
    for name, method in METHODS.items():
        assert method.noise_tunnel is None or {"n", "seed"} <= set(method.settings), name
        if method.needs_spatial_layer:
            with pytest.raises(SanityError):  # the dense net has no spatial layer: a clear error
                explain(method, net)


def test_the_model_checks_catch_a_leaked_call_or_activation_and_a_changed_weight():
    net = make_net("dense", seed=3)
    model, layer = net.model, net.model.get_layer("dense0")
    assert not weight_changes(model, net.weights) and not layer_changes(model, net.layer_state)
    object.__setattr__(layer, "call", lambda x, *a, **k: x)
    assert layer_changes(model, net.layer_state) == ["dense0: added ['call'], lost []"]
    object.__delattr__(layer, "call")
    original = layer.activation
    layer.activation = keras.activations.linear
    assert layer_changes(model, net.layer_state) == ["dense0: activation replaced"]
    layer.activation = original
    assert not layer_changes(model, net.layer_state)
    kernel = layer.kernel.numpy()
    kernel[0, 0] = np.nextafter(kernel[0, 0], np.float32(np.inf))  # one ulp
    layer.kernel.assign(kernel)
    assert weight_changes(model, net.weights) == [layer.kernel.path]
