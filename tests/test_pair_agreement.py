"""Agreement with PAIR's `saliency.core` on the same model and input.

Tolerance: rtol 1e-4, atol 1e-6 relative to the mask scale (float32 arithmetic; the batched engine
sums gradients in a different order than PAIR's per-step loop). GradCAM maps lie in [0, 1]: atol 1e-5.
"""

import numpy as np
import pytest
import saliency.core as saliency
import tensorflow as tf

import tf_sanity
from tests.helpers import images, small_cnn

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
