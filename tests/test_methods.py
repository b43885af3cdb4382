"""Saliency methods against analytic answers, golden values and independent implementations."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tf_sanity
from tf_sanity import SanityError
from tf_sanity.attribution.methods import completeness_error
from tests.helpers import images, small_cnn, small_mlp


def linear_model(w, b=0.5):
    inp = keras.Input((len(w),))
    dense = keras.layers.Dense(1, name="linear")
    out = dense(inp)
    dense.set_weights([np.asarray(w, np.float32)[:, None], np.array([b], np.float32)])
    return keras.Model(inp, out)


def test_linear_model_gradient_is_w_and_ig_is_x_minus_baseline_times_w():
    # Sanity Checks, Sec. 5: the paper writes IG = (x - x_bar) * w / 2; the /2 is a typo.
    w = np.array([0.3, -1.2, 2.0, 0.0], np.float32)
    model = linear_model(w)
    x = np.array([[1.0, 2.0, -3.0, 4.0], [0.5, 0.5, 0.5, 0.5]], np.float32)
    baseline = np.array([0.2, -0.1, 0.0, 1.0], np.float32)
    np.testing.assert_allclose(tf_sanity.explain(model, x, "gradient", 0), np.tile(w, (2, 1)), rtol=1e-6)
    for integration in ("pair", "midpoint"):
        ig = tf_sanity.explain(model, x, "integrated_gradients", 0, baseline=baseline, steps=7,
                               integration=integration)
        np.testing.assert_allclose(ig, (x - baseline) * w, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(tf_sanity.explain(model, x, "gradient_x_input", 0), x * w, rtol=1e-6)
    # Noise does not change a linear model's gradient: SG = w, VarGrad = 0.
    np.testing.assert_allclose(tf_sanity.explain(model, x, "gradient_sg", 0, n=5), np.tile(w, (2, 1)), rtol=1e-5)
    np.testing.assert_allclose(tf_sanity.explain(model, x, "gradient_vg", 0, n=5), 0, atol=1e-10)


def test_ig_completeness_within_one_percent_on_a_random_cnn():
    model = small_cnn(seed=3)
    x = images(4, seed=1)
    targets = np.array([0, 3, 5, 9])
    ig = tf_sanity.explain(model, x, "integrated_gradients", targets, steps=400, integration="midpoint")
    scores = model(x).numpy()[np.arange(4), targets] - model(np.zeros_like(x)).numpy()[0, targets]
    error = completeness_error(model, x, ig, targets)
    assert np.all(np.abs(error) <= 0.01 * np.abs(scores)), (error, scores)
    # And the error is reported, not zero by construction: few steps leave a visible gap.
    coarse = tf_sanity.explain(model, x, "integrated_gradients", targets, steps=2)
    assert np.abs(completeness_error(model, x, coarse, targets)).max() > np.abs(error).max()


def test_one_layer_conv_relu_sumpool_gradient_closed_form():
    # Sanity Checks, Sec. 5 (Fig. 7): F(x) = sum_ij relu((w * x)_ij); dF/dx_pq = sum_kl a_(p-k, q-l) w_kl
    # with a = 1[z > 0] the ReLU activation pattern ("valid" correlation as TF computes it).
    rng = np.random.default_rng(0)
    k = 3
    w = rng.standard_normal((k, k)).astype(np.float32)
    inp = keras.Input((10, 10, 1))
    conv = keras.layers.Conv2D(1, k, use_bias=False, activation="relu", name="conv")
    out = keras.layers.Lambda(lambda t: tf.reduce_sum(t, axis=(1, 2)), name="sumpool")(conv(inp))
    conv.set_weights([w[:, :, None, None]])
    model = keras.Model(inp, out)
    x = rng.standard_normal((1, 10, 10, 1)).astype(np.float32)
    z = np.array([[np.sum(x[0, i:i + k, j:j + k, 0] * w) for j in range(8)] for i in range(8)])
    a = (z > 0).astype(np.float64)
    expected = np.zeros((10, 10))
    for i in range(8):
        for j in range(8):
            expected[i:i + k, j:j + k] += a[i, j] * w
    grad = tf_sanity.explain(model, x, "gradient", 0)[0, :, :, 0]
    np.testing.assert_allclose(grad, expected, rtol=1e-5, atol=1e-6)


def golden_net(kind):
    """x(3) -> Dense(3) + ReLU -> Dense(1); the ReLU fused, as a ReLU layer, or as Activation."""
    w1 = np.array([[1, 0, -1], [0, 1, -1], [1, 0, 0]], np.float32)
    w2 = np.array([[2], [-1], [5]], np.float32)
    inp = keras.Input((3,))
    d1 = keras.layers.Dense(3, activation="relu" if kind == "fused" else None, use_bias=False)
    h = d1(inp)
    if kind == "layer":
        h = keras.layers.ReLU()(h)
    elif kind == "activation":
        h = keras.layers.Activation("relu")(h)
    d2 = keras.layers.Dense(1, use_bias=False)
    model = keras.Model(inp, d2(h))
    d1.set_weights([w1])
    d2.set_weights([w2])
    return model


@pytest.mark.parametrize("kind", ["fused", "layer", "activation"])
def test_guided_backprop_golden_values_reach_every_relu(kind):
    # x = (1, 2, 3): z1 = (4, 2, -3), dF/dh = (2, -1, 5).
    # gradient: W1 @ ((2, -1, 5) * (1, 1, 0)) = (2, -1, 2)
    # guided:   W1 @ (relu(2, -1, 5) * (1, 1, 0)) = W1 @ (2, 0, 0) = (2, 0, 2)
    model = golden_net(kind)
    x = np.array([[1, 2, 3]], np.float32)
    np.testing.assert_allclose(tf_sanity.explain(model, x, "gradient", 0), [[2, -1, 2]])
    np.testing.assert_allclose(tf_sanity.explain(model, x, "guided_backprop", 0), [[2, 0, 2]])


def test_guided_backprop_leaves_the_model_unchanged():
    model = small_cnn(fused=False)
    x, t = images(3), np.array([1, 2, 3])
    before = tf_sanity.explain(model, x, "gradient", t)
    tf_sanity.explain(model, x, "guided_backprop", t)
    for layer in model.layers:
        assert "call" not in vars(layer)
    assert model.get_layer("conv1").activation.__name__ == "linear"
    np.testing.assert_array_equal(tf_sanity.explain(model, x, "gradient", t), before)
    fused = small_cnn(fused=True)
    tf_sanity.explain(fused, x, "guided_backprop", t)
    assert fused.get_layer("conv1").activation.__name__ == "relu"
    # A model traced fresh after GBP still computes the plain gradient.
    with tf.GradientTape() as tape:
        xt = tf.constant(x)
        tape.watch(xt)
        score = tf.reduce_sum(fused(xt)[:, 1])
    np.testing.assert_allclose(tf_sanity.explain(fused, x, "gradient", 1), tape.gradient(score, xt).numpy(),
                               rtol=1e-5, atol=1e-7)


def test_guided_backprop_equals_tf1_gradient_override():
    """GBP equals a guided-ReLU `gradient_override_map` in a tf.compat.v1 graph (the 2018 way)."""
    model = small_cnn(seed=5)
    x, t = images(3, seed=2), np.array([4, 1, 7])
    ours = tf_sanity.explain(model, x, "guided_backprop", t)
    w = {layer.name: layer.get_weights() for layer in model.layers if layer.weights}
    graph = tf.Graph()
    with graph.as_default():
        if "TfSanityTestGuidedRelu" not in _REGISTERED:
            @tf.RegisterGradient("TfSanityTestGuidedRelu")
            def _guided(op, grad):
                return tf.where(grad > 0, grad, tf.zeros_like(grad)) * tf.cast(op.outputs[0] > 0, grad.dtype)
            _REGISTERED.add("TfSanityTestGuidedRelu")
        with graph.gradient_override_map({"Relu": "TfSanityTestGuidedRelu"}):
            xp = tf.compat.v1.placeholder(tf.float32, (None, 28, 28, 1))
            h = tf.nn.relu(tf.nn.conv2d(xp, w["conv1"][0], 1, "SAME") + w["conv1"][1])
            h = tf.nn.max_pool2d(h, 2, 2, "VALID")
            h = tf.nn.relu(tf.nn.conv2d(h, w["conv2"][0], 1, "SAME") + w["conv2"][1])
            h = tf.reshape(h, (-1, 14 * 14 * 8))
            h = tf.nn.relu(h @ w["fc1"][0] + w["fc1"][1])
            logits = h @ w["output"][0] + w["output"][1]
            tp = tf.compat.v1.placeholder(tf.int32, (None,))
            score = tf.reduce_sum(tf.gather(logits, tp, batch_dims=1))
            grad = tf.compat.v1.gradients(score, xp)[0]
        with tf.compat.v1.Session(graph=graph) as session:
            reference = session.run(grad, {xp: x, tp: t})
    np.testing.assert_allclose(ours, reference, rtol=1e-4, atol=1e-6)
    assert not np.allclose(ours, tf_sanity.explain(model, x, "gradient", t))


_REGISTERED = set()


def test_gradcam_all_zero_map_is_zero_not_nan():
    model = small_cnn()
    conv2 = model.get_layer("conv2")
    kernel, bias = conv2.get_weights()
    conv2.set_weights([np.zeros_like(kernel), np.full_like(bias, -1.0)])  # ReLU output all zero
    cam = tf_sanity.explain(model, images(2), "gradcam", 0)
    assert np.isfinite(cam).all() and not cam.any()


def test_gradcam_and_guided_gradcam_shapes_and_range():
    model = small_cnn(seed=1)
    x = images(3)
    cam = tf_sanity.explain(model, x, "gradcam", [0, 1, 2])
    assert cam.shape == x.shape and cam.min() >= 0 and cam.max() <= 1 + 1e-6
    named = tf_sanity.explain(model, x, "gradcam", [0, 1, 2], layer="conv1")
    assert not np.allclose(named, cam)
    ggc = tf_sanity.explain(model, x, "guided_gradcam", [0, 1, 2])
    gbp = tf_sanity.explain(model, x, "guided_backprop", [0, 1, 2])
    np.testing.assert_allclose(ggc, gbp * cam, rtol=1e-5, atol=1e-8)


def test_smoothgrad_is_seeded_and_vargrad_is_a_variance():
    model = small_cnn(seed=2)
    x, t = images(3), np.array([0, 1, 2])
    a = tf_sanity.explain(model, x, "guided_backprop_sg", t, n=6, seed=1)
    np.testing.assert_array_equal(a, tf_sanity.explain(model, x, "guided_backprop_sg", t, n=6, seed=1))
    assert not np.allclose(a, tf_sanity.explain(model, x, "guided_backprop_sg", t, n=6, seed=2))
    vg = tf_sanity.explain(model, x, "gradient_vg", t, n=6)
    assert (vg >= 0).all() and vg.any()


def test_batching_does_not_change_results():
    model = small_cnn(seed=4)
    x, t = images(5), np.array([0, 1, 2, 3, 4])
    for method, settings in [("integrated_gradients", dict(steps=9)), ("integrated_gradients_sg", dict(steps=3, n=4)),
                             ("gradcam", {}), ("gradient_vg", dict(n=5))]:
        big = tf_sanity.explain(model, x, method, t, batch_size=256, **settings)
        small = tf_sanity.explain(model, x, method, t, batch_size=2, **settings)
        np.testing.assert_allclose(big, small, rtol=1e-4, atol=1e-7, err_msg=method)
    one = tf_sanity.explain(model, x[2], "integrated_gradients", 2, steps=9)
    np.testing.assert_allclose(one, tf_sanity.explain(model, x, "integrated_gradients", t, steps=9)[2],
                               rtol=1e-4, atol=1e-7)


def test_registry_has_every_paper_method_and_labels():
    base = ["gradient", "gradient_x_input", "integrated_gradients", "guided_backprop", "gradcam", "guided_gradcam"]
    for name in base:
        assert name in tf_sanity.METHODS and f"{name}_sg" in tf_sanity.METHODS and f"{name}_vg" in tf_sanity.METHODS
    assert tf_sanity.LABELS["integrated_gradients_sg"] == "IG-SG"
    assert tf_sanity.LABELS["guided_backprop_vg"] == "GBP-VG"


@pytest.mark.parametrize("call, message", [
    (lambda m, x: tf_sanity.explain(m, x, "gradients", 0), "unknown method 'gradients'; valid: "),
    (lambda m, x: tf_sanity.explain(m, x[:, :20], "gradient", 0), "but the model takes (batch, 28, 28, 1)"),
    (lambda m, x: tf_sanity.explain(m, np.where(x > 0.5, np.nan, x), "gradient", 0), "NaN or inf"),
    (lambda m, x: tf_sanity.explain(m, x, "gradient", 10), "targets must lie in [0, 10)"),
    (lambda m, x: tf_sanity.explain(m, x, "gradient", [1, 2]), "one integer class per image"),
    (lambda m, x: tf_sanity.explain(m, x, "gradcam", 0, layer="conv9"), "model has no layer 'conv9'; layers: conv1"),
    (lambda m, x: tf_sanity.explain(m, x, "integrated_gradients", 0, step=5), "no setting step; valid: baseline"),
    (lambda m, x: tf_sanity.explain(small_mlp(), x, "gradcam", 0), "gradcam needs a convolution layer"),
])
def test_clear_one_line_errors(call, message):
    with pytest.raises(SanityError) as info:
        call(small_cnn(), images(3))
    assert message in str(info.value) and "\n" not in str(info.value)


def test_guided_backprop_refuses_non_relu_activations():
    inp = keras.Input((4,))
    model = keras.Model(inp, keras.layers.Dense(3, activation="softmax", name="probs")(
        keras.layers.Dense(4, activation="tanh", name="hidden")(inp)))
    with pytest.raises(SanityError, match="layer 'hidden' uses activation 'tanh'"):
        tf_sanity.explain(model, np.ones((1, 4)), "guided_backprop", 0, activations="strict")
    # The default policy gives tanh its gradient (captum, zennit); a softmax is never element-wise.
    with pytest.raises(SanityError, match="layer 'probs' uses activation 'softmax': it is not element-wise"):
        tf_sanity.explain(model, np.ones((1, 4)), "guided_backprop", 0)
    assert tf_sanity.explain(model, np.ones((1, 4)), "gradient", 0).shape == (1, 4)


def test_explaining_many_models_prints_no_retracing_warning(monkeypatch):
    """One compiled function per model is by design; TF's "frequent retracing" warning must stay quiet."""
    import logging

    from tensorflow.python.eager.polymorphic_function import polymorphic_function as pf

    monkeypatch.setattr(pf, "_frequent_tracing_detector_manager", pf._FrequentTracingDetectorManager())
    messages = []
    handler = logging.Handler()
    handler.emit = lambda record: messages.append(record.getMessage())
    logging.getLogger("tensorflow").addHandler(handler)
    try:
        x, t = images(2), np.array([0, 1])
        for seed in range(7):
            tf_sanity.explain(small_mlp(seed=seed), x, "gradient", t)
    finally:
        logging.getLogger("tensorflow").removeHandler(handler)
    assert not [m for m in messages if "retracing" in m], messages


def test_an_explained_model_is_freed_once_the_user_drops_it():
    """The compiled functions refer to their model; cached so, they must not keep it alive (nor a nested one)."""
    import gc
    import weakref

    from tf_sanity.attribution import engine

    def build(nested):
        model = small_cnn(seed=4)
        if nested:  # a backbone inside a fine-tuning model: the rules' graph walk records the nesting
            model = keras.Sequential([keras.Input((28, 28, 1)), model, keras.layers.Dense(3, name="head")])
        return model

    x, t = images(2), np.array([0, 1])
    for nested in (False, True):
        model = build(nested)
        assert engine.gradient_function(model) is engine.gradient_function(model)  # still cached
        for method in ("gradient", "guided_backprop", "lrp_epsilon"):
            tf_sanity.explain(model, x, method, t)
        refs = [weakref.ref(model)] + [weakref.ref(layer) for layer in model.layers]
        del model
        gc.collect()
        assert all(ref() is None for ref in refs), f"nested={nested}: explained model still alive after del"
