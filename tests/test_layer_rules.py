"""Layer rules on residual and branching nets: properties that fail if a rule is wrong.

Nets: ``tests/tiny_nets.py`` (``branching_net`` has Rescaling, a residual Add, BatchNorm folded into
a conv, a depthwise conv and a separable conv, Concatenate, padding, average and global pooling;
``dense_residual_net`` has a numpy twin in ``tests/numpy_backprop.py``).
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tf_sanity
from tf_sanity import SanityError
from tf_sanity.attribution import canonizers, graph
from tf_sanity.attribution.patterns import fit_patterns
from tests import numpy_backprop as nb
from tests import tiny_nets

TARGETS = np.array([0, 2, 1])
L = keras.layers


def _scores(model, x, targets=TARGETS):
    return model(x, training=False).numpy()[np.arange(len(x)), targets].astype(np.float64)


def _sums(mask):
    return mask.reshape(len(mask), -1).sum(axis=1).astype(np.float64)


def _one_line_error(model, x, method, *names):
    with pytest.raises(SanityError) as error:
        tf_sanity.explain(model, x, method, TARGETS[:len(x)])
    message = str(error.value)
    assert "\n" not in message and all(name in message for name in names), message


@pytest.fixture(scope="module")
def bias_free():
    return tiny_nets.branching_net(bias=False), tiny_nets.images(3, (6, 6, 2), seed=3)


@pytest.mark.parametrize("method, settings", [("lrp_z", {}), ("lrp_epsilon", {"epsilon": 1e-9})])
def test_lrp_conserves_relevance_through_add_concat_depthwise_separable_and_pooling(method, settings, bias_free):
    model, x = bias_free
    relevance = tf_sanity.explain(model, x, method, TARGETS, **settings)
    np.testing.assert_allclose(_sums(relevance), _scores(model, x), rtol=1e-4)


def test_lrp_z_equals_gradient_times_input_on_a_bias_free_residual_relu_net(bias_free):
    model, x = bias_free
    relevance = tf_sanity.explain(model, x, "lrp_z", TARGETS)
    gxi = tf_sanity.explain(model, x, "gradient_x_input", TARGETS)
    np.testing.assert_allclose(relevance, gxi, rtol=1e-4, atol=1e-5 * np.abs(gxi).max())


def test_deeplift_sums_to_delta_on_a_net_with_add_concat_depthwise_batchnorm_and_biases():
    model = tiny_nets.branching_net(bias=True)
    x = tiny_nets.images(3, (6, 6, 2), low=-1, high=1, seed=4)
    reference = tiny_nets.images(1, (6, 6, 2), low=-0.5, high=0.5, seed=5)[0]
    contributions = tf_sanity.explain(model, x, "deeplift", TARGETS, reference=reference)
    delta = _scores(model, x) - _scores(model, np.broadcast_to(reference, x.shape).copy())
    np.testing.assert_allclose(_sums(contributions), delta, rtol=1e-4, atol=1e-6)


def test_lrp_epsilon_through_add_matches_the_numpy_reference():
    model, weights = tiny_nets.dense_residual_net()
    x = tiny_nets.images(3, (6,), low=-1, high=1, seed=6)
    ours = tf_sanity.explain(model, x, "lrp_epsilon", TARGETS, epsilon=0.01)
    reference = np.stack([nb.residual_lrp(weights, xi.astype(np.float64), t, 0.01) for xi, t in zip(x, TARGETS)])
    np.testing.assert_allclose(ours, reference, rtol=1e-4, atol=1e-6)


def test_the_numpy_add_rule_conserves_and_splits_in_proportion():
    a, b = np.array([1.0, -2.0, 0.0]), np.array([3.0, 1.0, 0.0])
    ra, rb = nb.lrp_sum([a, b], np.array([8.0, 2.0, 5.0]))
    np.testing.assert_allclose(ra, [2.0, 4.0, 0.0])
    np.testing.assert_allclose(rb, [6.0, -2.0, 0.0])


@pytest.mark.parametrize("multiplier", [1, 3])
def test_batchnorm_folded_into_a_depthwise_conv_equals_the_unfolded_forward(multiplier):
    rng = np.random.default_rng(0)
    inp = keras.Input((5, 5, 2))
    dw = L.DepthwiseConv2D(3, depth_multiplier=multiplier, name="dw")
    bn = L.BatchNormalization(name="bn")
    model = keras.Model(inp, bn(dw(inp)))
    dw.set_weights([rng.standard_normal(w.shape).astype(np.float32) for w in dw.weights])
    bn.set_weights(tiny_nets._bn_weights(rng, 2 * multiplier, True))
    assert canonizers.folded_batchnorm(dw) is bn and canonizers.layer_kind(bn) == "folded"
    x = rng.standard_normal((2, 5, 5, 2)).astype(np.float32)
    folded = canonizers.Affine(dw).forward(keras.ops.convert_to_tensor(x)).numpy()
    np.testing.assert_allclose(folded, model(x, training=False).numpy(), rtol=1e-5, atol=1e-5)


def test_rescaling_is_an_elementwise_affine_map_read_off_the_layer():
    inp = keras.Input((4,))
    layer = L.Rescaling([1.0, 2.0, -1.0, 0.5], offset=0.25)
    keras.Model(inp, layer(inp))
    x = keras.ops.convert_to_tensor(np.ones((2, 4), np.float32))
    scale, shift = canonizers.elementwise_scale_shift(layer, x, "float32")
    np.testing.assert_allclose(scale.numpy(), [[1.0, 2.0, -1.0, 0.5]])
    np.testing.assert_allclose(shift.numpy(), [[0.25] * 4])


# ------------------------------------------------------------------------------ gates and LayerNorm

def gated_net(seed=0):
    """A squeeze-and-excitation block with a ReLU gate branch, bias-free: x * relu(Dense(GAP(x)))."""
    keras.utils.set_random_seed(seed)
    inp = keras.Input((4, 4, 2))
    h = L.Conv2D(3, 3, padding="same", activation="relu", use_bias=False, name="conv")(inp)
    gate = L.Dense(3, activation="relu", use_bias=False, name="gate")(L.GlobalAveragePooling2D(keepdims=True)(h))
    h = L.Multiply(name="se")([h, gate])
    h = L.LayerNormalization(center=False, name="ln")(h)
    return keras.Model(inp, L.Dense(3, use_bias=False, name="logits")(L.Flatten()(h)))


def test_lrp_holds_the_gate_and_the_layernorm_scale_constant_and_conserves():
    model = gated_net()
    x = tiny_nets.images(3, (4, 4, 2), seed=7)
    relevance = tf_sanity.explain(model, x, "lrp_epsilon", TARGETS, epsilon=1e-9)
    np.testing.assert_allclose(_sums(relevance), _scores(model, x), rtol=1e-4)


def test_deeplift_sums_to_delta_through_a_multiply_gate():
    model = gated_net()
    inp = model.inputs[0]
    without_ln = keras.Model(inp, model.get_layer("se").output)  # LayerNorm has no DeepLIFT rule
    head = L.Dense(3, name="head")
    out = keras.Model(inp, head(L.Flatten()(without_ln.output)))
    x = tiny_nets.images(3, (4, 4, 2), seed=8)
    contributions = tf_sanity.explain(out, x, "deeplift", TARGETS)
    delta = _scores(out, x) - _scores(out, np.zeros_like(x))
    np.testing.assert_allclose(_sums(contributions), delta, rtol=1e-4, atol=1e-6)
    _one_line_error(model, x, "deeplift", "'ln'", "DeepLIFT")


def test_a_product_whose_gate_cannot_be_told_is_refused_by_lrp():
    inp = keras.Input((4,))
    for activation in (None, "sigmoid"):  # neither operand from a sigmoid, or both
        a, b = L.Dense(4, activation=activation, name="a")(inp), L.Dense(4, activation=activation, name="b")(inp)
        model = keras.Model(inp, L.Dense(3)(L.Multiply(name="prod")([a, b])))
        _one_line_error(model, tiny_nets.images(2, (4,)), "lrp_z", "'prod'", "cannot tell which operand", "(4,)")
    # The graph and the shapes disagree: the sigmoid operand is the full map, the other one is broadcast.
    image = keras.Input((4, 4, 2))
    pooled = L.GlobalAveragePooling2D(keepdims=True)(image)
    model = keras.Model(image, L.Dense(3)(L.Flatten()(L.Multiply(name="prod")(
        [pooled, L.Conv2D(2, 1, activation="sigmoid")(image)]))))
    _one_line_error(model, tiny_nets.images(2, (4, 4, 2)), "lrp_epsilon", "'prod'", "cannot tell which operand")


@pytest.mark.parametrize("gate_first", [False, True])
def test_the_gate_of_a_squeeze_excitation_on_a_1x1_map_is_the_sigmoid_operand(gate_first):
    """Both operands are 1x1xC, so only the graph tells the gate: the operand from the sigmoid. Held constant,
    LRP-z of this bias-free ReLU signal path is gradient x input with the gate's gradient stopped."""
    keras.utils.set_random_seed(5)
    inp = keras.Input((1, 1, 2))
    conv, gate_conv = L.Conv2D(3, 1, activation="relu", use_bias=False), L.Conv2D(3, 1, activation="sigmoid")
    pool, flat, logits = L.GlobalAveragePooling2D(keepdims=True), L.Flatten(), L.Dense(3, use_bias=False)
    h = conv(inp)
    gate = gate_conv(pool(h))
    model = keras.Model(inp, logits(flat(L.Multiply(name="se")([gate, h] if gate_first else [h, gate]))))
    x = tiny_nets.images(3, (1, 1, 2), seed=11)
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        hidden = conv(xt)
        score = logits(flat(hidden * tf.stop_gradient(gate_conv(pool(hidden)))))
        target = tf.reduce_sum(tf.gather(score, TARGETS, axis=1, batch_dims=1))
    expected = x * tape.gradient(target, xt).numpy()
    np.testing.assert_allclose(tf_sanity.explain(model, x, "lrp_z", TARGETS), expected, rtol=1e-5, atol=1e-7)


# ------------------------------------------------------------------------------ raw operations

def test_raw_operations_get_a_rule_or_a_one_line_refusal():
    inp = keras.Input((5,))
    h = L.Dense(4, name="d")(inp)
    h = keras.ops.relu(2.0 * h + 0.0)
    ok = keras.Model(inp, L.Dense(3, name="out")(keras.ops.reshape(h, (-1, 4))))
    x = tiny_nets.images(3, (5,), low=-1, high=1, seed=9)
    with_layer = keras.Model(inp, ok.get_layer("out")(L.ReLU()(L.Rescaling(2.0)(ok.get_layer("d").output))))
    for method in ("lrp_z", "guided_backprop", "deconvnet"):
        np.testing.assert_allclose(tf_sanity.explain(ok, x, method, TARGETS),
                                   tf_sanity.explain(with_layer, x, method, TARGETS), rtol=1e-5, atol=1e-7)
    bad = keras.Model(inp, L.Dense(3)(keras.ops.exp(L.Dense(4)(inp))))
    for method in ("lrp_z", "deeplift", "guided_backprop", "rectgrad"):
        _one_line_error(bad, x, method, "(Exp)")
    assert np.isfinite(tf_sanity.explain(bad, x, "gradient", TARGETS)).all()


# ------------------------------------------------------------------------------ models as people build them

def _blocks(inp):
    """Conv -> BN -> ReLU -> Conv -> BN -> Add -> ReLU, with fixed weights."""
    rng = np.random.default_rng(2)
    c1, c2 = L.Conv2D(3, 3, padding="same", name="c1"), L.Conv2D(3, 3, padding="same", name="c2")
    bn1, bn2 = L.BatchNormalization(name="bn1"), L.BatchNormalization(name="bn2")
    a = L.ReLU()(bn1(c1(inp)))
    out = L.ReLU()(L.Add()([a, bn2(c2(a))]))
    for conv, bn in ((c1, bn1), (c2, bn2)):
        conv.set_weights([(0.5 * rng.standard_normal(w.shape)).astype(np.float32) for w in conv.weights])
        bn.set_weights(tiny_nets._bn_weights(rng, 3, True))
    return out


def _backbone():
    inp = keras.Input((6, 6, 2))
    return keras.Model(inp, _blocks(inp), name="backbone")


def _head():
    head = L.Dense(3, name="head")
    head.build((None, 3))
    head.set_weights([np.arange(9, dtype=np.float32).reshape(3, 3) / 9 - 0.4, np.zeros(3, np.float32)])
    return head


def test_rules_reach_the_layers_of_a_nested_backbone_and_fold_its_batchnorm():
    base = _backbone()
    nested = keras.Sequential([base, L.GlobalAveragePooling2D(), _head()])
    inp = keras.Input((6, 6, 2))
    flat = keras.Model(inp, _head()(L.GlobalAveragePooling2D()(_blocks(inp))))  # the same net, not nested
    graph.leaf_operations(nested)
    assert canonizers.layer_kind(base.get_layer("bn2")) == "folded"
    assert graph.is_first_layer(base.get_layer("c1"))
    x = tiny_nets.images(3, (6, 6, 2), seed=10)
    np.testing.assert_allclose(nested(x).numpy(), flat(x).numpy(), rtol=1e-6)
    for method in ("lrp_epsilon", "lrp_alpha2beta1", "deeplift", "deep_taylor", "guided_backprop"):
        a = tf_sanity.explain(nested, x, method, TARGETS)
        np.testing.assert_allclose(a, tf_sanity.explain(flat, x, method, TARGETS), rtol=1e-5, atol=1e-7)
    with pytest.raises(SanityError, match="'c1' is inside a nested model"):
        fit_patterns(nested, x)
    gradient = tf_sanity.explain(nested, x, "gradient", TARGETS)
    assert not np.allclose(tf_sanity.explain(nested, x, "guided_backprop", TARGETS), gradient)


def test_the_first_layer_walk_crosses_into_a_nested_model():
    base = _backbone()
    inp = keras.Input((6, 6, 2))
    model = keras.Model(inp, L.Dense(2)(L.Flatten()(base(L.Rescaling(0.5, name="pre")(inp)))))
    graph.leaf_operations(model)
    assert not graph.is_first_layer(base.get_layer("c1"))  # a Rescaling outside the backbone is first
    assert graph.parents(base.get_layer("c1")) == [model.get_layer("pre")]


def test_a_subclassed_model_explains_with_gradients_and_rule_methods_refuse_it():
    class Net(keras.Model):
        def __init__(self):
            super().__init__(name="subclassed")
            self.dense = L.Dense(3)

        def call(self, x):
            return self.dense(keras.ops.relu(x))

    subclassed = Net()
    x = tiny_nets.images(2, (4,), low=-1, high=1)
    subclassed(x)
    _one_line_error(subclassed, x, "gradient", "keras.Model(inp, model(inp))")
    inp = keras.Input((4,))
    model = keras.Model(inp, subclassed(inp))
    assert tf_sanity.explain(model, x, "gradient", TARGETS[:2]).shape == x.shape
    for method in ("lrp_z", "deeplift", "guided_backprop"):
        _one_line_error(model, x, method, "'subclassed'", "subclassed")


def test_mixed_float16_models_explain_in_float32():
    policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        keras.utils.set_random_seed(3)
        half = tiny_nets.branching_net(bias=True)
    finally:
        keras.config.set_dtype_policy(policy)
    full = tiny_nets.branching_net(bias=True)
    x = tiny_nets.images(3, (6, 6, 2), seed=11)
    for method in ("lrp_epsilon", "deeplift", "deep_taylor"):
        ours = tf_sanity.explain(half, x, method, TARGETS)
        assert ours.dtype == np.float32 and np.isfinite(ours).all()
        reference = tf_sanity.explain(full, x, method, TARGETS)
        np.testing.assert_allclose(ours, reference, atol=0.02 * np.abs(reference).max())
