"""Cosine similarity convergence, the flipped SSIM, the random-logit and cascading checks, bootstrap."""

import keras
import numpy as np
import pytest

from tf_sanity import SanityError
import tf_sanity
from tf_sanity.checks import csc, metrics, statistics
from tests import tiny_nets


def _deep_random_net():
    # Seven random ReLU conv layers: deep enough that products of non-negative matrices converge.
    keras.utils.set_random_seed(0)
    inp = keras.Input((8, 8, 3))
    h = inp
    for i in range(7):
        h = keras.layers.Conv2D(12, 3, padding="same", activation="relu", name=f"conv{i}")(h)
    h = keras.layers.Flatten(name="flatten")(h)
    h = keras.layers.Dense(16, activation="relu", name="fc")(h)
    return keras.Model(inp, keras.layers.Dense(10, name="logits")(h))


def test_modified_backprop_converges_and_deeplift_and_gradient_do_not():
    # Sixt et al. (2020)'s CSC on a random network.
    model = _deep_random_net()
    x = tiny_nets.images(3, (8, 8, 3))
    lowest = {}
    for method in ("guided_backprop", "lrp_alpha1beta0", "gradient", "deeplift"):
        result = csc.cosine_similarity_convergence(model, x, method, "logits", layers=["conv0", "conv6", "fc"])
        assert result.n_values[0] == 3 * 10 * 64  # images x pairs x positions (no all-zero vectors here)
        lowest[method] = result.median_abs_cos[0]
        # At the injection point the signal is the random vectors themselves: near the baseline.
        assert abs(result.median_abs_cos[-1] - result.baseline[-1]) < 0.15 or method == "deeplift"
    assert lowest["lrp_alpha1beta0"] > 0.99 and lowest["guided_backprop"] > 0.9, lowest
    assert lowest["gradient"] < 0.5 and lowest["deeplift"] < 0.8, lowest


def test_default_layers_skip_single_channel_maps_and_rows_are_tidy():
    inp = keras.Input((6, 6, 1))
    h = keras.layers.Conv2D(4, 3, activation="relu", name="c")(inp)
    grey = keras.Model(inp, keras.layers.Dense(3, name="d")(keras.layers.Flatten(name="f")(h)))
    assert csc.lower_layers(grey, "d") == ["input", "c", "f"]
    result = csc.cosine_similarity_convergence(grey, tiny_nets.images(2, (6, 6, 1)), "lrp_z", "d")
    assert result.layers == ["c", "f"]  # the 1-channel image has |cos| = 1 by construction
    rows = result.rows()
    assert [r["layer"] for r in rows] == ["c", "f"] and rows[0]["channels"] == 4
    with pytest.raises(SanityError, match="n_vectors"):
        csc.cosine_similarity_convergence(grey, tiny_nets.images(2, (6, 6, 1)), "lrp_z", "d", n_vectors=1)
    with pytest.raises(SanityError, match="not a backward pass"):
        csc.cosine_similarity_convergence(grey, tiny_nets.images(2, (6, 6, 1)), "integrated_gradients", "d")


def test_pairwise_abs_cos_and_random_baseline():
    u = np.array([1.0, 0.0])
    signals = np.array([[[u, u], [-u, np.array([0.0, 1.0])], [np.zeros(2), u]]])  # 1 image, 3 vectors, 2 positions
    cos = csc.pairwise_abs_cos(signals).reshape(3, 2)  # pairs (0,1), (0,2), (1,2)
    np.testing.assert_allclose(cos[0], [1.0, 0.0])
    assert np.isnan(cos[1, 0]) and cos[1, 1] == 1.0
    for channels in (16, 256):
        assert csc.random_baseline(channels) == pytest.approx(0.6745 / np.sqrt(channels), rel=0.06)


def test_ssim_flipped_normalization_and_sign_invariance():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((28, 28))
    assert metrics.ssim_flipped(a, a) == pytest.approx(1.0)
    assert metrics.ssim_flipped(a, -a) == pytest.approx(1.0)  # max(SSIM(x, y), SSIM(x, -y))
    assert metrics.ssim_flipped(a, rng.standard_normal((28, 28))) < 0.2
    n = metrics.normalize_percentile(a)
    assert n.min() == 0.0 and n.max() == 1.0 and np.mean(n == 1.0) == pytest.approx(0.005, abs=0.003)
    masks = rng.standard_normal((2, 28, 28, 3))
    np.testing.assert_allclose(metrics.heatmap(masks, "abs_max"), np.abs(masks).max(-1))
    methods = tf_sanity.METHODS  # the authors' reductions (get_analyser_params), as method metadata
    assert [m for m in methods if methods[m].heatmap_reduction == "abs_max" and not methods[m].base] == [
        "gradient", "guided_backprop", "deconvnet", "rectgrad"]
    assert methods["gradient_sg"].heatmap_reduction == "abs_max" and methods["lrp_z"].heatmap_reduction == "sum"
    assert methods["rectgrad"].heatmap_percentile == 100.0 and methods["lrp_z"].heatmap_percentile == 99.5


def test_random_other_class_and_bootstrap():
    targets = np.tile(np.arange(10), 100)
    others = csc.random_other_class(targets, 10, seed=1)
    assert (others != targets).all() and set(others) == set(range(10))
    values = np.random.default_rng(0).standard_normal(200)
    median, low, high = statistics.bootstrap_median(values, seed=3)
    assert median == np.median(values) and low < median < high
    assert (median, low, high) == statistics.bootstrap_median(values, seed=3)
    assert statistics.bootstrap_median([0.5] * 10) == (0.5, 0.5, 0.5)
    assert np.isnan(statistics.bootstrap_median([np.nan])[0])


def test_random_logit_and_cascading_checks_run_and_restore_the_model():
    model, _, _ = tiny_nets.conv_net(seed=41)
    x = tiny_nets.images(4, (6, 6, 2))
    targets = np.array([0, 1, 2, 0])
    before = [w.copy() for w in model.get_weights()]
    ssim, others = csc.random_logit_ssim(model, x, targets, "lrp_alpha1beta0", seed=2)
    assert ssim.shape == (4,) and (others != targets).all() and np.all((-1 <= ssim) & (ssim <= 1))
    stages = csc.cascading_ssim(model, x, targets, "deeplift")
    assert [name for name, _ in stages] == ["out", "dense1", "bn", "conv2", "conv1"]
    assert all(values.shape == (4,) for _, values in stages)
    for w, b in zip(model.get_weights(), before):
        np.testing.assert_array_equal(w, b)
