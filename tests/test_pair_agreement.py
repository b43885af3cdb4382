"""Agreement with PAIR's `saliency.core` on the same model and input.

First, the default backend against PAIR's classes driven by a call_model_function written here (not
the engine). Then, method by method, ``backend="tf_sanity"`` against ``backend="pair"``
(:mod:`tf_sanity.attribution.pair_backend`) on the tiny nets and an MNIST-shaped CNN.

Tolerance: rtol 1e-4, atol 1e-6 relative to the mask scale (float32 arithmetic; the batched engine
sums gradients in a different order than PAIR's per-step loop; PAIR adds float64 noise where the
engine adds it in float32). GradCAM maps lie in [0, 1]: atol 1e-5. SmoothGrad uses the same seed on
both sides, and both draw the very same noise (one legacy ``RandomState`` stream over the images), so
the comparison is exact up to that tolerance, not statistical.
"""

import numpy as np
import pytest
import saliency.core as saliency
import tensorflow as tf

import tf_sanity
from tests import tiny_nets
from tests.helpers import images, small_cnn
from tf_sanity.attribution import methods as methods_lib, pair_backend
from tf_sanity.errors import SanityError

RTOL, ATOL = 1e-4, 1e-6


@pytest.fixture(scope="module")
def setup():
    model = small_cnn(seed=7)
    x = images(3, seed=3)
    return model, x, np.array([2, 5, 8])


def pair_call(model, layer="conv2"):
    """PAIR's `call_model_function` for a Keras model, computing what each method asks for."""
    feature_model = tf.keras.Model(model.inputs, [model.get_layer(layer).output, model.output])

    def call(x_batch, call_model_args=None, expected_keys=None):
        target = call_model_args["target"]
        x_batch = tf.convert_to_tensor(x_batch, tf.float32)
        with tf.GradientTape() as tape:
            if saliency.base.INPUT_OUTPUT_GRADIENTS in expected_keys:
                tape.watch(x_batch)
                score = model(x_batch)[:, target]
                return {saliency.base.INPUT_OUTPUT_GRADIENTS: tape.gradient(score, x_batch).numpy()}
            conv, logits = feature_model(x_batch)
            score = logits[:, target]
        return {saliency.base.CONVOLUTION_LAYER_VALUES: conv.numpy(),
                saliency.base.CONVOLUTION_OUTPUT_GRADIENTS: tape.gradient(score, conv).numpy()}

    return call


def per_image(method, model, x, targets, **kwargs):
    call = pair_call(model)
    return np.stack([method(xi, call, {"target": int(t)}, **kwargs) for xi, t in zip(x, targets)])


def test_gradient_equals_pair(setup):
    model, x, t = setup
    np.testing.assert_allclose(tf_sanity.explain(model, x, "gradient", t),
                               per_image(saliency.GradientSaliency().GetMask, model, x, t), rtol=RTOL, atol=ATOL)


def test_integrated_gradients_equals_pair(setup):
    model, x, t = setup
    baseline = np.full_like(x[0], 0.25)
    ours = tf_sanity.explain(model, x, "integrated_gradients", t, steps=50, baseline=baseline)
    pair = per_image(saliency.IntegratedGradients().GetMask, model, x, t, x_steps=50, x_baseline=baseline,
                     batch_size=16)
    np.testing.assert_allclose(ours, pair, rtol=RTOL, atol=ATOL)


def test_gradcam_equals_pair(setup):
    model, x, t = setup
    ours = tf_sanity.explain(model, x, "gradcam", t, layer="conv2")[..., 0]
    pair = per_image(saliency.GradCam().GetMask, model, x, t, three_dims=False)
    assert pair.max() > 0.5
    np.testing.assert_allclose(ours, pair, atol=1e-5)


def test_smoothgrad_equals_pair_with_the_same_seed(setup):
    model, x, t = setup
    # One image: our noise for image i comes from RandomState(seed) exactly as PAIR's np.random after seed().
    ours = tf_sanity.explain(model, x[:1], "gradient_sg", t[:1], n=10, stdev_spread=0.15, seed=11)
    np.random.seed(11)
    pair = saliency.GradientSaliency().GetSmoothedMask(x[0], pair_call(model), {"target": int(t[0])},
                                                      stdev_spread=0.15, nsamples=10, magnitude=False)
    np.testing.assert_allclose(ours[0], pair, rtol=RTOL, atol=ATOL)
    ours_sq = tf_sanity.explain(model, x[:1], "gradient_sg", t[:1], n=10, seed=11, magnitude=True)
    np.random.seed(11)
    pair_sq = saliency.GradientSaliency().GetSmoothedMask(x[0], pair_call(model), {"target": int(t[0])},
                                                         nsamples=10, magnitude=True)
    np.testing.assert_allclose(ours_sq[0], pair_sq, rtol=RTOL, atol=1e-9)


def test_ig_smoothgrad_equals_pair(setup):
    model, x, t = setup
    ours = tf_sanity.explain(model, x[1:2], "integrated_gradients_sg", t[1:2], n=4, steps=10, seed=3)
    np.random.seed(3)
    pair = saliency.IntegratedGradients().GetSmoothedMask(x[1], pair_call(model), {"target": int(t[1])},
                                                         nsamples=4, magnitude=False, x_steps=10, batch_size=10)
    np.testing.assert_allclose(ours[0], pair, rtol=RTOL, atol=ATOL)


# ---- backend="pair" vs backend="tf_sanity", method by method ----

PAIR_METHODS = ("gradient", "gradient_x_input", "guided_backprop", "integrated_gradients", "gradcam",
                "guided_gradcam", "deconvnet", "rectgrad")
PAIR_METHODS += tuple(f"{m}_sg" for m in PAIR_METHODS[:6])

NETS = {
    "dense": (lambda: tiny_nets.dense_net(seed=1)[0], (6,), 3),
    "conv": (lambda: tiny_nets.conv_net(seed=2)[0], (6, 6, 2), 3),
    "mnist_cnn": (lambda: small_cnn(seed=7), (28, 28, 1), 10),
}


@pytest.fixture(scope="module", params=list(NETS))
def net(request):
    make, shape, classes = NETS[request.param]
    x = np.random.default_rng(4).uniform(-1, 1, (3, *shape)).astype(np.float32)
    return make(), x, np.array([0, 2, classes - 1])


def _settings(method):
    meta = methods_lib.get(method)
    settings = {}
    if "steps" in meta.settings:
        settings.update(steps=12, baseline=0.1)
    if meta.noise_tunnel:
        settings.update(n=6, seed=5)
    return settings


def test_the_pair_table_is_what_the_tests_cover():
    assert sorted(pair_backend.supported()) == sorted(PAIR_METHODS)


@pytest.mark.parametrize("method", PAIR_METHODS)
def test_both_backends_agree(net, method):
    model, x, t = net
    if methods_lib.get(method).needs_spatial_layer and len(model.input_shape) == 2:
        for backend in ("tf_sanity", "pair"):  # no conv layer: the same one-line error from both
            with pytest.raises(SanityError, match="needs a convolution layer"):
                tf_sanity.explain(model, x, method, t, backend=backend)
        return
    ours = tf_sanity.explain(model, x, method, t, **_settings(method))
    pair = tf_sanity.explain(model, x, method, t, backend="pair", **_settings(method))
    assert pair.shape == ours.shape == x.shape and pair.dtype == np.float32
    assert np.abs(ours).max() > 0
    atol = 1e-5 if methods_lib.get(method).signal == "map" else 1e-6 * np.abs(ours).max()
    np.testing.assert_allclose(pair, ours, rtol=RTOL, atol=atol)


def test_smoothgrad_magnitude_agrees(net):
    model, x, t = net
    ours = tf_sanity.explain(model, x, "gradient_sg", t, n=5, seed=2, magnitude=True)
    pair = tf_sanity.explain(model, x, "gradient_sg", t, n=5, seed=2, magnitude=True, backend="pair")
    np.testing.assert_allclose(pair, ours, rtol=RTOL, atol=1e-6 * np.abs(ours).max())
    plain = tf_sanity.explain(model, x, "gradient_sg", t, n=5, seed=2, backend="pair")
    assert not np.allclose(plain, pair)


def test_pair_backend_runs_pair_classes_image_by_image(setup, monkeypatch):
    model, x, t = setup
    calls = []
    for cls in (saliency.IntegratedGradients, saliency.GradCam, saliency.GradientSaliency):
        original = cls.GetMask
        monkeypatch.setattr(cls, "GetMask", lambda self, *a, _o=original, _c=cls, **k: calls.append(_c.__name__)
                            or _o(self, *a, **k))
    tf_sanity.explain(model, x, "integrated_gradients", t, steps=5, backend="pair")
    tf_sanity.explain(model, x, "guided_gradcam", t, backend="pair")
    assert calls == ["IntegratedGradients"] * 3 + ["GradientSaliency", "GradCam"] * 3
    calls.clear()
    tf_sanity.explain(model, x[:2], "gradcam_sg", t[:2], n=4, backend="pair")
    assert calls == ["GradCam"] * 8


def test_pair_backend_restores_the_global_random_state(setup):
    model, x, t = setup
    np.random.seed(123)
    expected = np.random.random(3)
    np.random.seed(123)
    tf_sanity.explain(model, x[:1], "gradient_sg", t[:1], n=3, seed=9, backend="pair")
    np.testing.assert_array_equal(np.random.random(3), expected)


@pytest.mark.parametrize("method", sorted(set(tf_sanity.METHODS) - set(PAIR_METHODS)))
def test_methods_without_a_pair_counterpart_raise(setup, method):
    model, x, t = setup
    with pytest.raises(SanityError) as info:
        tf_sanity.explain(model, x, method, t, backend="pair")
    message = str(info.value)
    assert "\n" not in message and f"cannot compute {method}" in message
    assert "backend='pair' supports: gradient, gradient_x_input" in message


def test_pair_backend_refuses_settings_pair_has_not(setup):
    model, x, t = setup
    with pytest.raises(SanityError, match="PAIR's rule only"):
        tf_sanity.explain(model, x, "integrated_gradients", t, integration="midpoint", backend="pair")
    with pytest.raises(SanityError, match="valid: pair, tf_sanity"):
        tf_sanity.explain(model, x, "gradient", t, backend="captum")


def test_the_docs_table_states_the_pair_class_of_every_method():
    """docs/methods.md's backend table names, for every registered method, what backend="pair" uses."""
    import pathlib
    import re
    text = (pathlib.Path(__file__).parents[1] / "docs" / "methods.md").read_text()
    table = text[text.index('| method | `backend="pair"` computes it with |'):].split("\n\n")[0].splitlines()[2:]
    stated = {}
    for line in table:
        cells = [c.strip() for c in line.strip("|").split("|")]
        for name in re.findall(r"`(\w+)`", cells[0]):
            pair_class = re.sub(r"\s*\(integration.*\)", "", cells[1].replace("`", ""))
            stated[name] = None if cells[1].startswith("none") else pair_class
            for suffix, cell in (("sg", cells[2]), ("vg", cells[3])):
                if f"{name}_{suffix}" in tf_sanity.METHODS:
                    stated[f"{name}_{suffix}"] = f"{stated[name]}, {cell.strip('`')}" if cell.startswith("`") else None
    described = {name: pair_backend.describe(name) for name in tf_sanity.METHODS}
    assert set(stated) == set(described)
    assert stated == described
