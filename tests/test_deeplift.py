"""DeepLIFT rescale against a numpy implementation of Shrikumar et al. (2017), and summation-to-delta."""

import keras
import numpy as np
import pytest

import tf_sanity
from tf_sanity import SanityError
from tests import numpy_backprop as nb
from tests import tiny_nets

TARGETS = np.array([0, 2, 1])


def _numpy_deeplift(net, x, ref, targets):
    flat, flat_ref = (a.reshape(len(a), -1).astype(np.float64) for a in (x, ref))
    return np.stack([nb.deeplift(net, xi, ri, t) for xi, ri, t in zip(flat, flat_ref, targets)]).reshape(x.shape)


@pytest.mark.parametrize("builder, shape", [(tiny_nets.dense_net, (6,)), (tiny_nets.conv_net, (6, 6, 2))],
                         ids=["dense", "conv"])
def test_rescale_equals_the_numpy_formula_with_zero_and_given_reference(builder, shape):
    model, net, _ = builder(seed=11)
    x = tiny_nets.images(3, shape, -1.0, 1.0)
    for ref in (np.zeros_like(x), tiny_nets.images(3, shape, -1.0, 1.0, seed=5)):
        ours = tf_sanity.explain(model, x, "deeplift", TARGETS, reference=ref)
        expected = _numpy_deeplift(net, x, ref, TARGETS)
        np.testing.assert_allclose(ours, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())
    # The default reference is an all-zero input.
    np.testing.assert_allclose(tf_sanity.explain(model, x, "deeplift", TARGETS),
                               tf_sanity.explain(model, x, "deeplift", TARGETS, reference=0.0))


def _no_maxpool_net(seed):
    keras.utils.set_random_seed(seed)
    init = dict(bias_initializer="random_normal")
    inp = keras.Input((8, 8, 2))
    h = keras.layers.Conv2D(5, 3, padding="same", activation="relu", **init)(inp)
    h = keras.layers.Conv2D(6, 3, strides=2, **init)(h)
    h = keras.layers.BatchNormalization()(h)
    h = keras.layers.ReLU()(h)
    h = keras.layers.AveragePooling2D(2)(h)
    h = keras.layers.Flatten()(h)
    h = keras.layers.Dense(7, activation="relu", **init)(h)
    model = keras.Model(inp, keras.layers.Dense(4, **init)(h))
    rng = np.random.default_rng(seed)
    model.layers[3].set_weights([rng.uniform(0.5, 2, 6).astype(np.float32), rng.standard_normal(6).astype(np.float32),
                                 rng.standard_normal(6).astype(np.float32), rng.uniform(0.5, 2, 6).astype(np.float32)])
    return model


@pytest.mark.parametrize("reference", ["zeros", "random"])
def test_summation_to_delta(reference):
    # Shrikumar et al. (2017), Eq. 1: sum_i C_i = F(x) - F(reference), for every target.
    model = _no_maxpool_net(seed=12)
    x = tiny_nets.images(5, (8, 8, 2), -1.0, 1.0)
    ref = np.zeros_like(x) if reference == "zeros" else tiny_nets.images(5, (8, 8, 2), -1.0, 1.0, seed=9)
    targets = np.array([0, 1, 2, 3, 1])
    attributions = tf_sanity.explain(model, x, "deeplift", targets, reference=ref, batch_size=4)
    rows = np.arange(5)
    delta = model(x).numpy()[rows, targets] - model(ref).numpy()[rows, targets]
    np.testing.assert_allclose(attributions.reshape(5, -1).sum(axis=1), delta, rtol=1e-4, atol=1e-4 * np.abs(delta).max())


def test_max_pooling_makes_summation_to_delta_approximate_and_reference_equal_to_input_gives_zero():
    model, _, _ = tiny_nets.conv_net(seed=13)
    x = tiny_nets.images(3, (6, 6, 2), -1.0, 1.0)
    np.testing.assert_array_equal(tf_sanity.explain(model, x, "deeplift", TARGETS, reference=x), 0.0)
    sums = tf_sanity.explain(model, x, "deeplift", TARGETS).reshape(3, -1).sum(axis=1)
    delta = model(x).numpy()[np.arange(3), TARGETS] - model(np.zeros_like(x)).numpy()[0, TARGETS]
    assert np.isfinite(sums).all() and np.abs(sums - delta).max() < np.abs(delta).max()


def test_deeplift_errors():
    model, _, _ = tiny_nets.dense_net()
    x = tiny_nets.images(2, (6,))
    with pytest.raises(SanityError, match="reference of shape"):
        tf_sanity.explain(model, x, "deeplift", 0, reference=np.zeros(5))
    inp = keras.Input((4,))
    h = keras.layers.Dense(3, activation="tanh")(inp)
    tanh_model = keras.Model(inp, keras.layers.Dense(2)(h))
    with pytest.raises(SanityError, match="ReLU networks.*'tanh'"):
        tf_sanity.explain(tanh_model, np.ones((1, 4)), "deeplift", 0, activations="strict")
    inp = keras.Input((4, 1))
    h = keras.layers.LSTM(3, name="my_lstm")(inp)
    lstm_model = keras.Model(inp, keras.layers.Dense(2)(h))
    with pytest.raises(SanityError, match="'DeepLIFT rescale'.*'my_lstm'"):
        tf_sanity.explain(lstm_model, np.ones((1, 4, 1)), "deeplift", 0)
