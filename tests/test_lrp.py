"""LRP and DeepTaylor rules against slow numpy implementations of their formulas, and LRP identities.

References: tests/numpy_backprop.py (textbook formulas on explicit matrices, written independently
of tf_sanity). Nets: tests/tiny_nets.py (fixed weights, a Dense net and a Conv2D net with max
pooling, a stride-2 'same' convolution and a BatchNorm folded into it).
"""

import re

import keras
import numpy as np
import pytest

import tf_sanity
from tf_sanity import SanityError
from tf_sanity.attribution import canonizers, composites, engine, methods
from tests import numpy_backprop as nb
from tests import tiny_nets

TARGETS = np.array([0, 2, 1])


def _reference(net, x, targets, rule_of):
    flat = x.reshape(len(x), -1).astype(np.float64)
    return np.stack([nb.lrp(net, xi, t, rule_of) for xi, t in zip(flat, targets)]).reshape(x.shape)


def _close(ours, reference, rtol=1e-4):
    np.testing.assert_allclose(ours, reference, rtol=rtol, atol=rtol * np.abs(reference).max())


def _rules(method, kinds, affine_steps):
    """``step index -> (numpy rule, kwargs)`` for `method` (kinds: "conv"/"dense" per affine step)."""
    kind_of = dict(zip(affine_steps, kinds))
    first = affine_steps[0]
    table = {
        "lrp_z": lambda k: ("z", {}),
        "lrp_epsilon": lambda k: ("epsilon", {"epsilon": 0.01}),
        "lrp_alpha1beta0": lambda k: ("alpha_beta", {"alpha": 1, "beta": 0}),
        "lrp_alpha2beta1": lambda k: ("alpha_beta", {"alpha": 2, "beta": 1}),
        "lrp_alpha5beta4": lambda k: ("alpha_beta", {"alpha": 5, "beta": 4}),
        "lrp_preset_a": lambda k: (("epsilon", {"epsilon": 1e-10}) if kind_of[k] == "dense"
                                   else ("alpha_beta", {"alpha": 1, "beta": 0})),
        "lrp_preset_b": lambda k: (("epsilon", {"epsilon": 1e-10}) if kind_of[k] == "dense"
                                   else ("alpha_beta", {"alpha": 2, "beta": 1})),
        "deep_taylor": lambda k: ("zplus", {}),
        "deep_taylor_bounded": lambda k: ("zB", {"low": 0.0, "high": 1.0}) if k == first else ("zplus", {}),
    }
    return table[method]


SETTINGS = {"lrp_epsilon": {"epsilon": 0.01}, "deep_taylor_bounded": {"low": 0.0, "high": 1.0}}
LRP_METHODS = ("lrp_z", "lrp_epsilon", "lrp_alpha1beta0", "lrp_alpha2beta1", "lrp_alpha5beta4")


@pytest.mark.parametrize("builder, shape", [(tiny_nets.dense_net, (6,)), (tiny_nets.conv_net, (6, 6, 2))],
                         ids=["dense", "conv"])
def test_each_rule_equals_its_numpy_formula(builder, shape):
    model, net, kinds = builder(seed=3)
    steps = tiny_nets.affine_steps(net)
    signed = tiny_nets.images(3, shape, -1.0, 1.0)  # negative inputs exercise x^- in alpha-beta
    unit = tiny_nets.images(3, shape, 0.0, 1.0)     # DeepTaylor's domain: inputs in [0, 1]
    methods = LRP_METHODS + (("lrp_preset_a", "lrp_preset_b") if builder is tiny_nets.conv_net else ())
    for method in methods + ("deep_taylor", "deep_taylor_bounded"):
        x = unit if method.startswith("deep_taylor") else signed
        ours = tf_sanity.explain(model, x, method, TARGETS, **SETTINGS.get(method, {}))
        _close(ours, _reference(net, x, TARGETS, _rules(method, kinds, steps)))


def test_alpha_beta_without_bias_option_matches_the_bias_free_formula():
    model, net, kinds = tiny_nets.dense_net(seed=4)
    x = tiny_nets.images(3, (6,), -1.0, 1.0)
    ours = tf_sanity.explain(model, x, "lrp_alpha2beta1", TARGETS, bias=False)
    _close(ours, _reference(net, x, TARGETS, lambda k: ("alpha_beta", {"alpha": 2, "beta": 1, "bias": False})))


def _with_avg_pooling(bias):
    keras.utils.set_random_seed(5)
    init = "random_normal" if bias else "zeros"
    inp = keras.Input((8, 8, 2))
    h = keras.layers.Conv2D(4, 3, padding="same", activation="relu", bias_initializer=init)(inp)
    h = keras.layers.AveragePooling2D(2)(h)
    h = keras.layers.Conv2D(5, 3, use_bias=bias)(h)
    h = keras.layers.BatchNormalization(center=bias)(h)
    h = keras.layers.ReLU()(h)
    h = keras.layers.MaxPooling2D(2, padding="same")(h)
    h = keras.layers.GlobalAveragePooling2D()(h)
    h = keras.layers.Dense(6, activation="relu", bias_initializer=init)(h)
    model = keras.Model(inp, keras.layers.Dense(3, bias_initializer=init)(h))
    bn = model.layers[4]
    rng = np.random.default_rng(0)
    bn.set_weights([w.astype(np.float32) for w in
                    [rng.uniform(0.5, 2, 5)] + ([0.3 * rng.standard_normal(5)] if bias else [])
                    + [0.3 * rng.standard_normal(5) * bias, rng.uniform(0.5, 2, 5)]])
    return model


@pytest.mark.parametrize("bias", [False, True], ids=["bias-free", "with-bias"])
def test_lrp_z_equals_gradient_times_input(bias):
    # Bias-free: the textbook identity. With biases it still holds for ReLU networks: the z-rule's
    # ratio R_j / z_j equals the gradient at z_j layer by layer (BN folded, pooling included).
    model = _with_avg_pooling(bias)
    x = tiny_nets.images(4, (8, 8, 2), -1.0, 1.0)
    targets = np.array([0, 1, 2, 0])
    _close(tf_sanity.explain(model, x, "lrp_z", targets), tf_sanity.explain(model, x, "gradient_x_input", targets),
           rtol=1e-5)


def _wide_bias_free_net():
    # Wide enough that no unit has all of its positive (or negative) contributions at zero, where
    # alpha-beta and z+ drop a unit's relevance (their conservation holds for z^+_j != 0, z^-_j != 0).
    keras.utils.set_random_seed(6)
    inp = keras.Input((6, 6, 2))
    h = keras.layers.Conv2D(8, 3, padding="same", activation="relu", use_bias=False, name="conv1")(inp)
    h = keras.layers.MaxPooling2D(2, name="pool")(h)
    h = keras.layers.Conv2D(8, 3, padding="same", use_bias=False, name="conv2")(h)
    h = keras.layers.BatchNormalization(center=False, name="bn")(h)
    h = keras.layers.ReLU(name="relu2")(h)
    h = keras.layers.Flatten(name="flatten")(h)
    h = keras.layers.Dense(24, activation="relu", use_bias=False, name="dense1")(h)
    model = keras.Model(inp, keras.layers.Dense(3, use_bias=False, name="out")(h))
    model.get_layer("bn").set_weights([np.full(8, 1.5, np.float32), np.zeros(8, np.float32), np.full(8, 2.0, np.float32)])
    return model


@pytest.mark.parametrize("method", ["lrp_z", "lrp_alpha1beta0", "lrp_alpha2beta1", "deep_taylor"])
def test_relevance_is_conserved_layer_to_layer_without_biases(method):
    model = _wide_bias_free_net()
    x = tiny_nets.images(3, (6, 6, 2))
    scores = model(x).numpy()[np.arange(3), TARGETS]
    total = tf_sanity.explain(model, x, method, TARGETS).reshape(3, -1).sum(axis=1)
    np.testing.assert_allclose(total, scores, rtol=1e-4)
    # Inject relevance at the logit layer's input and read it at every layer below.
    reads = ["input", "conv1", "pool", "bn", "relu2", "flatten", "dense1"]
    bp = methods.make_backprop(method)
    fn = engine.layer_function(model, bp.composite, "out", reads)
    injected = np.random.default_rng(0).standard_normal((3, 24)).astype(np.float32)
    signals, _ = fn(x, x[:0], injected)
    for name, signal in zip(reads, signals):
        np.testing.assert_allclose(np.asarray(signal).reshape(3, -1).sum(axis=1), injected.sum(axis=1),
                                   rtol=1e-4, err_msg=name)


def test_biases_absorb_relevance_so_lrp_z_sums_below_the_score():
    model, _, _ = tiny_nets.dense_net(seed=2, bias=True)
    x = tiny_nets.images(3, (6,), 0.0, 1.0)
    total = tf_sanity.explain(model, x, "lrp_z", TARGETS).sum(axis=1)
    scores = model(x).numpy()[np.arange(3), TARGETS]
    assert np.abs(total - scores).max() > 1e-3  # not conserved: the check above is not vacuous


def test_sequential_model_gives_the_same_relevance_as_the_functional_one():
    functional, net, kinds = tiny_nets.dense_net(seed=7)
    sequential = keras.Sequential([keras.Input((6,))] + [
        keras.layers.Dense(layer.units, activation=layer.activation) for layer in functional.layers[1:]])
    sequential.set_weights(functional.get_weights())
    x = tiny_nets.images(3, (6,), -1.0, 1.0)
    for method in ("lrp_alpha2beta1", "lrp_epsilon"):
        np.testing.assert_allclose(tf_sanity.explain(sequential, x, method, TARGETS),
                                   tf_sanity.explain(functional, x, method, TARGETS), rtol=1e-6, atol=1e-7)


def test_batchnorm_after_relu_is_its_own_affine_layer():
    # BN after a ReLU cannot be folded: it gets the z-rule as a channel-wise map y = s x + t.
    keras.utils.set_random_seed(8)
    inp = keras.Input((5,))
    dense = keras.layers.Dense(4, activation="relu", use_bias=False)
    bn = keras.layers.BatchNormalization()
    out = keras.layers.Dense(2, use_bias=False)
    model = keras.Model(inp, out(bn(dense(inp))))
    assert canonizers.layer_kind(bn) == "batchnorm"
    rng = np.random.default_rng(1)
    gamma, beta, mean, var = rng.uniform(0.5, 2, 4), rng.standard_normal(4), rng.standard_normal(4), rng.uniform(0.5, 2, 4)
    bn.set_weights([a.astype(np.float32) for a in (gamma, beta, mean, var)])
    scale = gamma / np.sqrt(var + bn.epsilon)
    w1, w2 = (np.asarray(v, np.float64) for v in (dense.kernel, out.kernel))
    net = [("affine", w1, np.zeros(4)), ("relu",), ("affine", np.diag(scale), beta - mean * scale),
           ("affine", w2, np.zeros(2))]
    x = tiny_nets.images(3, (5,), -1.0, 1.0)
    targets = np.array([0, 1, 0])
    rules_of = {0: ("alpha_beta", {"alpha": 1, "beta": 0}), 2: ("z", {}), 3: ("alpha_beta", {"alpha": 1, "beta": 0})}
    _close(tf_sanity.explain(model, x, "lrp_alpha1beta0", targets), _reference(net, x, targets, rules_of.get))


@pytest.mark.parametrize("norm, methods", [
    ("UnitNormalization", (("lrp_z", "LRP-z"), ("lrp_alpha1beta0", "LRP-alpha1beta0"), ("deep_taylor", "z+"))),
    # Ali et al. (2022)'s LN-rule is defined for LRP-z / epsilon only.
    ("LayerNormalization", (("lrp_alpha1beta0", "LRP-alpha1beta0"), ("deep_taylor", "z+")))])
def test_an_unsupported_layer_is_an_error_naming_layer_and_rule_and_the_model_is_restored(norm, methods):
    inp = keras.Input((5,))
    h = keras.layers.Dense(4, activation="relu")(inp)
    h = getattr(keras.layers, norm)(name="my_norm")(h)
    model = keras.Model(inp, keras.layers.Dense(2)(h))
    x = np.ones((1, 5), np.float32)
    for method, rule in methods:
        with pytest.raises(SanityError, match=rf"rule '{re.escape(rule)}'.*'my_norm' \({norm}\)"):
            tf_sanity.explain(model, x, method, 0)
    assert not any("call" in vars(layer) for layer in model.layers)  # the rules were taken out again
    np.testing.assert_allclose(tf_sanity.explain(model, x, "gradient", 0).shape, (1, 5))


def test_bad_settings_are_clear_errors():
    model, _, _ = tiny_nets.dense_net()
    x = tiny_nets.images(1, (6,))
    with pytest.raises(SanityError, match="low=... and high="):
        tf_sanity.explain(model, x, "deep_taylor_bounded", 0)
    with pytest.raises(SanityError, match="alpha - beta = 1"):
        tf_sanity.explain(model, x, "lrp_alpha_beta", 0, alpha=2, beta=2)
    with pytest.raises(SanityError, match="epsilon must be > 0"):
        tf_sanity.explain(model, x, "lrp_epsilon", 0, epsilon=0)
    # The generic alpha-beta with alpha=2, beta=1 is the registered alpha2beta1.
    np.testing.assert_allclose(tf_sanity.explain(model, x, "lrp_alpha_beta", 1, alpha=2, beta=1),
                               tf_sanity.explain(model, x, "lrp_alpha2beta1", 1))


@pytest.mark.slow
def test_every_sixt_method_runs_on_inception_v3():
    from slim_models.inception_v3 import inception_v3
    from tf_sanity.attribution import patterns

    keras.utils.set_random_seed(0)
    model = inception_v3()
    x = np.random.default_rng(0).uniform(-1, 1, (1, 299, 299, 3)).astype(np.float32)
    fitted = patterns.fit_patterns(model, np.concatenate([x, -x]), batch_size=2)
    settings = {"deep_taylor_bounded": dict(low=-1.0, high=1.0), "pattern_net": dict(patterns=fitted),
                "pattern_attribution": dict(patterns=fitted)}
    for method in [name for name, m in tf_sanity.METHODS.items() if m.make_backprop]:
        if method == "pattern_net":
            # PatternNet's signal grows by orders of magnitude per block with patterns of a random-init
            # Inception (1e18 by Mixed_6e) and overflows: a clear error, never NaN.
            with pytest.raises(SanityError, match="not finite"):
                tf_sanity.explain(model, x, method, 1, batch_size=2, **settings[method])
            continue
        mask = tf_sanity.explain(model, x, method, 1, batch_size=2, **settings.get(method, {}))
        assert mask.shape == x.shape and np.isfinite(mask).all(), method
    np.testing.assert_allclose(tf_sanity.explain(model, x, "lrp_z", 1),
                               tf_sanity.explain(model, x, "gradient_x_input", 1), rtol=1e-3, atol=1e-6)


def test_rules_see_the_users_activation_while_a_composite_is_applied():
    # The BN-folding check of a later layer runs after earlier layers were patched (composites.unpatched).
    model, _, _ = tiny_nets.dense_net()
    dense = model.get_layer("dense0")
    with composites.applied(model, methods.make_backprop("lrp_z").composite):
        assert dense.activation.__name__ == "linear"
        assert composites.unpatched(dense, "activation").__name__ == "relu"
    assert dense.activation.__name__ == "relu" and composites.unpatched(dense, "activation") is dense.activation
    assert not composites._ORIGINALS
