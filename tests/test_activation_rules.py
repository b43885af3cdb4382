"""Activation rules beyond plain ReLU, against plain-numpy references (tests/numpy_backprop.py).

The tiny nets of :mod:`tests.tiny_nets` (``unit_dense_net``, ``unit_conv_net``) carry ReLU6 (values
crossing 0 and 6), leaky ReLU (fused and ``LeakyReLU``), PReLU with per-unit and per-channel slopes
(some negative), ``ReLU(threshold=...)``, ``ReLU(max_value=..., negative_slope=...)`` and smooth
activations (tanh, silu, gelu, elu, sigmoid), fused into the Dense / Conv layers or standalone. Every
method with an activation rule is compared with its formula in numpy, with the activation policy of
``tf_sanity.attribution.activations``.
"""

import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

import tf_sanity
from tf_sanity import SanityError
from tf_sanity.attribution import activations, composites, methods
from tests import numpy_backprop as nb
from tests import tiny_nets

TARGETS = np.array([0, 2, 1, 1])

# (kinds, standalone) of the dense unit nets: ReLU family only, then with smooth activations.
RELU_FAMILY_NETS = [(("relu6", "leaky_relu"), False), (("relu6", "leaky_relu"), True),
                    (("prelu", "relu6"), True), (("threshold", "capped_leaky"), True),
                    (("leaky_relu_layer", "prelu"), True)]
SMOOTH_NETS = [(("relu6", "tanh"), False), (("silu", "relu6"), True), (("gelu", "leaky_relu"), False),
               (("elu", "sigmoid"), True)]


def net_id(case):
    kinds, standalone = case
    return "-".join(kinds) + ("-standalone" if standalone else "-fused")


def dense(case, seed=4):
    model, net = tiny_nets.unit_dense_net(*case, seed=seed)
    return model, net, tiny_nets.images(len(TARGETS), (6,), -3.0, 3.0, seed=seed + 1)


def conv(seed=4):
    model, net = tiny_nets.unit_conv_net(seed=seed)
    return model, net, tiny_nets.images(len(TARGETS), (5, 5, 2), -1.0, 1.0, seed=seed + 1)


def reference(net, x, fn):
    flat = x.reshape(len(x), -1).astype(np.float64)
    return np.stack([fn(net, xi, t) for xi, t in zip(flat, TARGETS)]).reshape(x.shape)


def close(actual, expected, what):
    np.testing.assert_allclose(actual, expected, rtol=2e-5, atol=2e-5 * max(np.abs(expected).max(), 1e-6),
                               err_msg=what)


def gradient_like(relu_rule, smooth_rule=None):
    return lambda net, x, t: nb.modified_gradient(net, x, t, relu_rule, smooth_rule=smooth_rule)


# The methods with an activation rule, with the numpy rule at ReLU-family units and at smooth units
# under the default policy (guided family: the plain gradient; LRP: pass; DeepLIFT: rescale).
CASES = {
    "gradient": gradient_like(nb.gradient_unit),
    "guided_backprop": gradient_like(nb.guided_unit),
    "deconvnet": gradient_like(nb.deconvnet_unit),
    "rectgrad": gradient_like(nb.rectgrad_relu(98)),
    "lrp_z": lambda net, x, t: nb.lrp(net, x, t, lambda k: ("z", {})),
    "deeplift": lambda net, x, t: nb.deeplift(net, x, np.zeros_like(x), t),
}


def explained(model, x, name, **settings):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", activations.ActivationPolicyWarning)
        return tf_sanity.explain(model, x, name, TARGETS, **settings)


@pytest.mark.parametrize("case", RELU_FAMILY_NETS + SMOOTH_NETS, ids=net_id)
def test_dense_unit_nets_equal_their_numpy_rules(case):
    model, net, x = dense(case)
    for name, fn in CASES.items():
        close(explained(model, x, name), reference(net, x, fn), f"{name} on {net_id(case)}")
    close(explained(model, x, "rectgrad", percentile=50), reference(net, x, gradient_like(nb.rectgrad_relu(50))),
          "rectgrad 50")


def test_conv_net_with_prelu_channels_fused_relu6_and_leaky_layer_equals_numpy():
    model, net, x = conv()
    for name, fn in CASES.items():
        close(explained(model, x, name), reference(net, x, fn), name)


def test_the_nets_cross_every_kink():
    """The references above only test the rules if pre-activations lie on both sides of each kink."""
    model, net, x = dense((("relu6", "capped_leaky"), True))
    inputs = [nb.forward(net, xi.astype(np.float64))[0] for xi in x]
    first, second = (np.concatenate([i[k] for i in inputs]) for k in (1, 3))
    assert (first < 0).any() and ((first > 0) & (first < 6)).any() and (first > 6).any()
    assert (second < 0).any() and ((second > 0) & (second < 2.5)).any() and (second > 2.5).any()
    _, net, x = dense((("threshold", "relu6"), True))
    first = np.concatenate([nb.forward(net, xi.astype(np.float64))[0][1] for xi in x])
    assert ((first > 0) & (first < 0.5)).any() and (first > 0.5).any()


def test_strict_refuses_smooth_activations_and_keeps_the_relu_family():
    model, net, x = dense((("relu6", "tanh"), True))
    for name in ("guided_backprop", "guided_gradcam", "deconvnet", "rectgrad", "lrp_z", "deep_taylor", "deeplift"):
        settings = {"layer": "dense1"} if name == "guided_gradcam" else {}
        default = tf_sanity.METHODS[name].settings["activations"]  # the refusal names the method's default
        with pytest.raises(SanityError, match=r"is defined for ReLU networks; layer '.*' uses activation 'tanh': "
                                              rf"pass activations='{default}' \(the method's default\)"):
            explained(model, x, name, activations="strict", **settings)
    model, net, x = dense((("relu6", "prelu"), True))
    close(explained(model, x, "guided_backprop", activations="strict"),
          reference(net, x, CASES["guided_backprop"]), "strict keeps the ReLU family")


def test_the_forward_is_the_real_activation_while_rules_are_applied():
    for model, _, x in (dense((("relu6", "prelu"), True)), dense((("threshold", "silu"), False)), conv()):
        expected = model(x).numpy()
        for name in ("guided_backprop", "deconvnet", "lrp_z", "deeplift"):
            composite = methods.make_backprop(name).composite
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", activations.ActivationPolicyWarning)
                with composites.applied(model, composite):
                    np.testing.assert_allclose(model(x).numpy(), expected, rtol=1e-6, err_msg=name)


@pytest.mark.parametrize("case", SMOOTH_NETS, ids=net_id)
def test_deeplift_sums_to_delta_for_any_elementwise_activation(case):
    model, _, x = dense(case)
    masks = explained(model, x, "deeplift", reference=0.5)
    scores = model(x).numpy()[np.arange(len(x)), TARGETS] - model(np.full_like(x, 0.5)).numpy()[0, TARGETS]
    np.testing.assert_allclose(masks.sum(axis=1), scores, rtol=1e-4, atol=1e-4)


def test_prelu_slopes_randomized_in_place_are_seen_without_retracing():
    model, net, x = dense((("prelu", "relu6"), True))
    first = explained(model, x, "guided_backprop")
    prelu = next(layer for layer in model.layers if isinstance(layer, keras.layers.PReLU))
    alpha = -prelu.get_weights()[0]
    prelu.set_weights([alpha])
    net[1] = nb.relu_family(alpha.astype(np.float64))
    second = explained(model, x, "guided_backprop")
    assert not np.allclose(first, second)
    close(second, reference(net, x, CASES["guided_backprop"]), "after the slopes changed")


@pytest.mark.parametrize("make, x, expected", [
    (lambda: keras.layers.ReLU(6.0), [-1, 0, 3, 6, 7], [0, 0, 1, 0, 0]),
    (lambda: keras.layers.ReLU(max_value=2.5, negative_slope=0.1), [-1, 0, 1, 2.5, 3], [0.1, 0.1, 1, 0, 0]),
    (lambda: keras.layers.ReLU(threshold=0.5), [-1, 0.5, 0.7], [0, 0, 1]),
    (lambda: keras.layers.LeakyReLU(0.3), [-1, 0, 1], [0.3, 0.3, 1]),
    (lambda: keras.layers.Activation("relu6"), [0, 6, 5.9], [0, 0, 1]),
    (lambda: keras.layers.Activation("tanh"), [0, 1], [1, 1 - np.tanh(1) ** 2]),
], ids=["relu6", "capped_leaky", "threshold", "leaky", "relu6_fn", "tanh"])
def test_local_derivatives_and_the_kink_convention(make, x, expected):
    layer = make()
    layer.build((None, len(x)))
    unit = activations.unit_of_layer(layer, layer.call)
    np.testing.assert_allclose(unit.derivative(tf.constant([x], tf.float32)).numpy()[0], expected, rtol=1e-6)


@pytest.mark.parametrize("activation, name, kind", [
    ("relu", "relu", "relu"), ("relu6", "relu6", "relu"), ("leaky_relu", "leaky_relu(0.2)", "relu"),
    (tf.nn.leaky_relu, "leaky_relu(0.2)", "relu"), (keras.activations.silu, "silu", "elementwise"),
    ("swish", "silu", "elementwise"), ("gelu", "gelu", "elementwise"), ("hard_swish", "hard_silu", "elementwise"),
    ("softmax", "softmax", "other"), (lambda x: x, "<lambda>", "other"), (None, "linear", "linear"),
])
def test_fused_activations_are_read_by_name(activation, name, kind):
    unit = activations.unit_of_function(keras.activations.get(activation))
    assert (unit.name, unit.kind) == (name, kind)


def test_the_treatment_is_announced_once_per_model_and_composite_and_not_for_relu_nets():
    model, _, x = dense((("relu6", "silu"), False))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(2):
            explained_raw = tf_sanity.explain(model, x, "guided_backprop", TARGETS)
            tf_sanity.explain(model, x, "lrp_z", TARGETS)
    said = [str(w.message) for w in caught if issubclass(w.category, activations.ActivationPolicyWarning)]
    assert len(said) == 2 and np.isfinite(explained_raw).all(), said
    assert "relu6 x1 -> guided rule" in said[0] and "silu x1 -> plain gradient" in said[0], said[0]
    assert "activations='gradient'" in said[0] and "captum" in said[0]
    assert "relu6 x1 -> pass rule" in said[1] and "silu x1 -> pass rule" in said[1], said[1]
    relu_model, _, _ = tiny_nets.conv_net(seed=3)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tf_sanity.explain(relu_model, tiny_nets.images(2, (6, 6, 2)), "guided_backprop", 0)
    assert not [w for w in caught if issubclass(w.category, activations.ActivationPolicyWarning)]


def test_a_model_without_relu_units_is_announced_as_such():
    model, _, x = dense((("tanh", "silu"), False))
    with pytest.warns(activations.ActivationPolicyWarning, match="no unit gets the DeConvNet rule"):
        tf_sanity.explain(model, x, "deconvnet", TARGETS)


def test_policy_settings_are_checked_and_recorded_in_the_settings():
    model, _, x = dense((("relu6", "tanh"), False))
    for name, default in (("guided_backprop", "gradient"), ("guided_backprop_sg", "gradient"),
                          ("guided_gradcam", "gradient"), ("deconvnet", "gradient"), ("rectgrad", "gradient"),
                          ("lrp_z", "pass"), ("lrp_preset_a", "pass"), ("deep_taylor_bounded", "pass"),
                          ("deeplift", "rescale")):
        assert tf_sanity.METHODS[name].settings["activations"] == default, name
    for name, wrong in (("guided_backprop", "pass"), ("lrp_z", "gradient"), ("deeplift", "pass")):
        with pytest.raises(SanityError, match=f"unknown activations setting '{wrong}'; valid: .*strict"):
            explained(model, x, name, activations=wrong)
    assert "activations" not in tf_sanity.METHODS["pattern_net"].settings
