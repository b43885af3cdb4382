"""PatternNet / PatternAttribution: pattern estimation and backward passes against numpy (Kindermans et al.)."""

import numpy as np
import pytest

import tf_sanity
from tf_sanity import SanityError
from tf_sanity.attribution.patterns import fit_patterns
from tests import numpy_backprop as nb
from tests import tiny_nets

TARGETS = np.array([0, 2, 1])


def test_dense_patterns_equal_the_two_component_estimator_and_explanations_match_numpy():
    model, net, _ = tiny_nets.dense_net(seed=31)
    train = tiny_nets.images(200, (6,), -1.0, 1.0, seed=4)
    patterns = fit_patterns(model, train, batch_size=64)  # several batches: sums accumulate
    steps = tiny_nets.affine_steps(net)
    inputs = [np.stack([nb.forward(net, xi)[0][k] for xi in train.astype(np.float64)]) for k in steps]
    names = ["dense0", "dense1", "dense2"]
    for name, k, X in zip(names, steps, inputs):
        relu = k != steps[-1]  # the logit layer has no ReLU: linear estimator
        assert patterns.estimators[name] == ("relu" if relu else "linear")
        expected = nb.patterns_dense(X, net[k][1], net[k][2], relu)
        np.testing.assert_allclose(patterns.arrays[name], expected, rtol=1e-4, atol=1e-5)
    # w^T a = 1 for every neuron that was ever active (the signal is reconstructed exactly).
    for name, k in zip(names, steps):
        wa = (net[k][1] * patterns.arrays[name]).sum(axis=0)
        np.testing.assert_allclose(wa[patterns.counts[name] > 0], 1.0, rtol=1e-4)

    x = tiny_nets.images(3, (6,), -1.0, 1.0)
    flat = x.astype(np.float64)
    for method, kernels in (("pattern_net", {k: patterns.arrays[n].astype(np.float64) for n, k in zip(names, steps)}),
                            ("pattern_attribution", {k: net[k][1] * patterns.arrays[n] for n, k in zip(names, steps)})):
        expected = np.stack([nb.modified_gradient(net, xi, t, nb.gradient_relu, seed="score", kernels=kernels)
                             for xi, t in zip(flat, TARGETS)])
        np.testing.assert_allclose(tf_sanity.explain(model, x, method, TARGETS, patterns=patterns), expected,
                                   rtol=1e-4, atol=1e-5 * np.abs(expected).max())


def test_conv_patterns_use_input_patches_with_padding_and_folded_batchnorm():
    model, net, _ = tiny_nets.conv_net(seed=32)
    train = tiny_nets.images(40, (6, 6, 2), -1.0, 1.0, seed=5)
    patterns = fit_patterns(model, train)
    # conv1: 3x3 'same' on the image; statistics over images and positions of active outputs.
    kernel = model.get_layer("conv1").get_weights()[0].astype(np.float64)
    bias = model.get_layer("conv1").get_weights()[1].astype(np.float64)
    X = np.concatenate([nb.patches(img.astype(np.float64), kernel.shape, 1, "same") for img in train])
    expected = nb.patterns_dense(X, kernel.reshape(-1, 3), bias, relu=True).reshape(kernel.shape)
    np.testing.assert_allclose(patterns.arrays["conv1"], expected, rtol=1e-4, atol=1e-5)
    # conv2 (stride 2, 'same') gets the pattern of its BN-folded map, fed to the ReLU after the BN.
    assert "bn" not in patterns.arrays and patterns.estimators["conv2"] == "relu"
    k2, b2 = (w.astype(np.float64) for w in model.get_layer("conv2").get_weights())
    gamma, beta, mean, var = (w.astype(np.float64) for w in model.get_layer("bn").get_weights())
    scale = gamma / np.sqrt(var + 1e-3)
    pooled = [nb.forward(net, xi)[0][3].reshape(3, 3, 3) for xi in train.reshape(40, -1).astype(np.float64)]
    X = np.concatenate([nb.patches(p, k2.shape, 2, "same") for p in pooled])
    expected = nb.patterns_dense(X, (k2 * scale).reshape(-1, 4), (b2 - mean) * scale + beta, relu=True)
    np.testing.assert_allclose(patterns.arrays["conv2"], expected.reshape(k2.shape), rtol=1e-4, atol=1e-5)
    x = tiny_nets.images(3, (6, 6, 2), -1.0, 1.0)
    for method in ("pattern_net", "pattern_attribution"):
        assert np.isfinite(tf_sanity.explain(model, x, method, TARGETS, patterns=patterns)).all()


def test_pattern_errors():
    model, _, _ = tiny_nets.dense_net(seed=33)
    x = tiny_nets.images(2, (6,))
    with pytest.raises(SanityError, match="fit_patterns"):
        tf_sanity.explain(model, x, "pattern_attribution", 0)
    other, _, _ = tiny_nets.conv_net(seed=33)
    foreign = fit_patterns(other, tiny_nets.images(8, (6, 6, 2)))
    with pytest.raises(SanityError, match="no pattern of shape"):
        tf_sanity.explain(model, x, "pattern_net", 0, patterns=foreign)
    with pytest.raises(SanityError, match="at least 2 images"):
        fit_patterns(model, x[:1])


def test_a_refused_activation_names_what_the_user_can_do():
    """PatternNet has no ``activations`` setting: its refusal must not send the user to one."""
    import keras

    inp = keras.Input((6,))
    out = keras.layers.Dense(3, name="o")(keras.layers.Dense(5, activation="tanh", name="h")(inp))
    model = keras.Model(inp, out)
    x = tiny_nets.images(8, (6,))
    patterns = fit_patterns(model, x)
    for method in ("pattern_net", "pattern_attribution"):
        with pytest.raises(SanityError, match=r"layer 'h' uses activation 'tanh': this method has no activations "
                                              r"setting: explain a model with ReLU-family activations, or use a "
                                              r"method that has one \(e.g. lrp_epsilon") as error:
            tf_sanity.explain(model, x[:2], method, 0, patterns=patterns)
        assert "\n" not in str(error.value)
