"""DeConvNet and RectGrad against numpy implementations of their ReLU rules (tests/numpy_backprop.py)."""

import numpy as np
import pytest
import tensorflow as tf

import tf_sanity
from tf_sanity import SanityError
from tf_sanity.attribution.modified_bp import percentile_per_row
from tests import numpy_backprop as nb
from tests import tiny_nets

TARGETS = np.array([0, 2, 1])


def _reference(net, x, relu_rule):
    flat = x.reshape(len(x), -1).astype(np.float64)
    return np.stack([nb.modified_gradient(net, xi, t, relu_rule) for xi, t in zip(flat, TARGETS)]).reshape(x.shape)


@pytest.mark.parametrize("builder, shape", [(tiny_nets.dense_net, (6,)), (tiny_nets.conv_net, (6, 6, 2))],
                         ids=["dense", "conv"])
def test_deconvnet_and_rectgrad_equal_their_numpy_rules(builder, shape):
    model, net, _ = builder(seed=21)
    x = tiny_nets.images(3, shape, -1.0, 1.0)
    cases = [("deconvnet", {}, nb.deconvnet_relu), ("rectgrad", {}, nb.rectgrad_relu(98)),
             ("rectgrad", {"percentile": 50}, nb.rectgrad_relu(50)), ("gradient", {}, nb.gradient_relu)]
    for method, settings, rule in cases:
        expected = _reference(net, x, rule)
        np.testing.assert_allclose(tf_sanity.explain(model, x, method, TARGETS, **settings), expected,
                                   rtol=1e-5, atol=1e-5 * np.abs(expected).max(), err_msg=f"{method} {settings}")


def test_percentile_matches_numpy_and_rectgrad_0_keeps_more_than_98():
    values = np.random.default_rng(0).standard_normal((4, 37)).astype(np.float32)
    for q in (0, 12.5, 50, 98, 100):
        np.testing.assert_allclose(percentile_per_row(tf.constant(values), q).numpy(),
                                   np.percentile(values, q, axis=1), rtol=1e-6)
    model, _, _ = tiny_nets.conv_net(seed=22)
    x = tiny_nets.images(3, (6, 6, 2))
    loose = tf_sanity.explain(model, x, "rectgrad", TARGETS, percentile=0)
    strict = tf_sanity.explain(model, x, "rectgrad", TARGETS)
    assert np.count_nonzero(strict) < np.count_nonzero(loose)
    with pytest.raises(SanityError, match=r"percentile must lie in \[0, 100\]"):
        tf_sanity.explain(model, x, "rectgrad", TARGETS, percentile=101)
