"""Cascading and independent randomization: round trips, stage contents, seeds and policies."""

import keras
import numpy as np
import pytest

import tf_sanity
from tf_sanity import SanityError
from tf_sanity.checks import randomization
from tests.helpers import images, small_cnn, weights_of

GROUPS = ["output", "fc1", "conv2", "conv1"]


def changed_groups(model, trained):
    """Names of the layers whose weights differ from `trained` (a dict layer name -> weights)."""
    return [name for name in GROUPS
            if any(not np.array_equal(a, b) for a, b in zip(model.get_layer(name).get_weights(), trained[name]))]


def trained_by_layer(model):
    return {name: [np.copy(w) for w in model.get_layer(name).get_weights()] for name in GROUPS}


def assert_restored(model, before):
    for a, b in zip(weights_of(model), before):
        np.testing.assert_array_equal(a, b)


def test_default_groups_are_layers_with_weights_top_down():
    assert randomization.default_groups(small_cnn()) == [(g, [g]) for g in GROUPS]


def test_cascading_stage_k_changes_exactly_k_groups_then_restores_bit_identical():
    model = small_cnn()
    before, trained = weights_of(model), trained_by_layer(model)
    variables = [id(v) for v in model.weights]
    seen = []
    for k, (name, randomized) in enumerate(randomization.cascading(model, seed=3), start=1):
        assert randomized is model and [id(v) for v in model.weights] == variables  # in place, not cloned
        assert changed_groups(model, trained) == GROUPS[:k]
        seen.append(name)
    assert seen == GROUPS
    assert_restored(model, before)


def test_independent_changes_one_group_at_a_time():
    model = small_cnn()
    before, trained = weights_of(model), trained_by_layer(model)
    for name, _ in randomization.independent(model):
        assert changed_groups(model, trained) == [name]
    assert_restored(model, before)


def test_restored_when_abandoned_or_interrupted():
    model = small_cnn()
    before = weights_of(model)
    for _ in randomization.cascading(model):
        break
    assert_restored(model, before)
    with pytest.raises(RuntimeError):
        for _, _ in randomization.cascading(model):
            raise RuntimeError("interrupted")
    assert_restored(model, before)
    with pytest.raises(KeyboardInterrupt):
        with randomization.independent(model) as stages:
            next(stages)
            raise KeyboardInterrupt
    assert_restored(model, before)


def test_seeded_per_group_and_repeatable():
    model = small_cnn()

    def stage_weights(mode, seed):
        return {name: [np.copy(w) for w in model.get_layer(name).get_weights()]
                for name, _ in getattr(randomization, mode)(model, seed=seed)}

    a, b = stage_weights("independent", 1), stage_weights("independent", 1)
    c = stage_weights("cascading", 1)
    for name in GROUPS:
        for x, y, z in zip(a[name], b[name], c[name]):
            np.testing.assert_array_equal(x, y)
            np.testing.assert_array_equal(x, z)  # a group's values depend on (seed, name) only
    other = stage_weights("independent", 2)
    assert not np.array_equal(a["fc1"][0], other["fc1"][0])
    assert not np.array_equal(a["fc1"][0].ravel()[:50], a["conv2"][0].ravel()[:50])  # no seed reused per layer


def test_paper_policy_truncated_normal_std_001():
    model = small_cnn()
    for name, _ in randomization.independent(model, groups=["fc1"]):
        kernel, bias = model.get_layer("fc1").get_weights()
        assert np.abs(kernel).max() <= 0.02 + 1e-7 and np.abs(bias).max() <= 0.02 + 1e-7
        assert 0.0080 < kernel.std() < 0.0095  # truncated at 2 std: std 0.88 * 0.01
        assert abs(kernel.mean()) < 5e-4
    for name, _ in randomization.independent(model, groups=["fc1"], init="uniform"):
        kernel = model.get_layer("fc1").get_weights()[0]
        assert np.abs(kernel).max() <= 0.01 * np.sqrt(3) and 0.0095 < kernel.std() < 0.0105


def bn_model():
    keras.utils.set_random_seed(0)
    inp = keras.Input((8, 8, 3))
    h = keras.layers.Conv2D(4, 3, use_bias=False, name="conv",
                            kernel_initializer=keras.initializers.Constant(7.0))(inp)
    h = keras.layers.BatchNormalization(scale=False, name="bn")(h)
    h = keras.layers.ReLU()(h)
    out = keras.layers.Dense(2, name="logits")(keras.layers.Flatten()(h))
    model = keras.Model(inp, out)
    bn = model.get_layer("bn")
    bn.moving_mean.assign(np.full(4, 0.3, np.float32))
    bn.moving_variance.assign(np.full(4, 2.0, np.float32))
    return model


def test_batchnorm_policies():
    model = bn_model()
    bn = model.get_layer("bn")
    groups = [("block", ["conv", "bn"])]
    for _ in randomization.cascading(model, groups=groups, policy="original_code"):
        np.testing.assert_array_equal(model.get_layer("conv").kernel.numpy(), 7.0)  # the layer's own initializer
        np.testing.assert_array_equal(bn.moving_mean.numpy(), np.float32(0.3))   # moving statistics kept
        np.testing.assert_array_equal(bn.moving_variance.numpy(), 2.0)
        np.testing.assert_array_equal(bn.beta.numpy(), 0.0)
    for _ in randomization.cascading(model, groups=groups, policy="paper"):
        assert np.abs(bn.moving_mean.numpy()).max() <= 0.02
        assert (bn.moving_variance.numpy() >= 0).all() and bn.moving_variance.numpy().max() <= 0.02
        assert np.isfinite(model(np.ones((1, 8, 8, 3))).numpy()).all()
    np.testing.assert_array_equal(bn.moving_variance.numpy(), 2.0)


def test_compiled_explainer_sees_randomized_weights_without_retracing():
    model = small_cnn()
    x, t = images(2), np.array([0, 1])
    trained = tf_sanity.explain(model, x, "gradient", t)
    fn = tf_sanity.attribution.engine.gradient_function(model)
    traces = fn.experimental_get_tracing_count()
    for name, randomized in randomization.cascading(model, groups=["output"]):
        assert not np.allclose(tf_sanity.explain(randomized, x, "gradient", t), trained)
    assert fn.experimental_get_tracing_count() == traces
    np.testing.assert_array_equal(tf_sanity.explain(model, x, "gradient", t), trained)


def test_clear_errors():
    model = small_cnn()
    with pytest.raises(SanityError, match="unknown layer or group 'fc9'; valid: ") as info:
        randomization.cascading(model, groups=["fc9"])
    valid = str(info.value).split("valid: ")[1].split(", ")
    assert len(valid) == len(set(valid)) and "output" in valid   # each name once (groups are also layers)
    with pytest.raises(SanityError, match="unknown randomization policy 'papers'"):
        randomization.cascading(model, policy="papers")
    with pytest.raises(SanityError, match="unknown init 'normal'"):
        randomization.cascading(model, init="normal")
    with pytest.raises(SanityError, match="group 'pool1' has no weights"):
        randomization.cascading(model, groups=["pool1"])
