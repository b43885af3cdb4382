"""Smooth and efficient MPRT against plain-numpy versions of Quantus' formulas (Hedström et al. 2023).

The references below restate Quantus 0.6 (``quantus/metrics/randomisation/smooth_mprt.py``,
``efficient_mprt.py``, ``functions/complexity_func.py``, ``functions/similarity_func.py``) in numpy,
on a tiny dense net whose gradient comes from :mod:`tests.numpy_backprop`, read from the Keras model's
weights at each randomized state.
"""

import numpy as np
import pytest
import scipy.stats

import tf_sanity
from tf_sanity import SanityError
from tf_sanity.checks import controls, refinements
from tests import numpy_backprop as nb
from tests.tiny_nets import dense_net

N, NOISE, NOISE_SEED = 5, 0.1, 3


def correlation_spearman(a, b):
    """Quantus' ``correlation_spearman(a, b, batched=True)`` on ``[B, D]`` arrays."""
    correlation = scipy.stats.spearmanr(a, b, axis=1)[0]
    return np.diag(correlation[: len(a), len(a):])


def discrete_entropy(a, n_bins=100):
    """Quantus' ``discrete_entropy`` of one explanation."""
    histogram, _ = np.histogram(a, bins=n_bins)
    return scipy.stats.entropy(pk=histogram)


def numpy_net(model):
    """The numpy twin of :func:`tests.tiny_nets.dense_net` with the model's current weights."""
    net = []
    for k in range(3):
        w, b = (np.asarray(v, np.float64) for v in model.get_layer(f"dense{k}").get_weights())
        net += [("affine", w, b)] + ([("relu",)] if k < 2 else [])
    return net


def numpy_gradient(net, x, targets):
    return np.stack([nb.modified_gradient(net, xi, t, nb.gradient_relu) for xi, t in zip(x, targets)])


def numpy_smoothed_gradient(net, x, targets, n=N, noise=NOISE, seed=NOISE_SEED):
    """Quantus' ``explain_smooth_batch_numpy``: mean of n - 1 noisy explanations and the clean one,
    sigma = noise * (max - min) per input; noise drawn as SmoothGrad draws it (per input, in order)."""
    rng = np.random.RandomState(seed)
    out = []
    for xi, t in zip(x, targets):
        sigma = noise * (xi.max() - xi.min())
        eps = rng.normal(0, sigma, (n - 1,) + xi.shape).astype(np.float32)
        samples = [nb.modified_gradient(net, xi + e, t, nb.gradient_relu) for e in eps]
        samples.append(nb.modified_gradient(net, xi, t, nb.gradient_relu))
        out.append(np.mean(samples, axis=0))
    return np.stack(out)


@pytest.fixture(scope="module")
def setup():
    model, _, _ = dense_net(seed=1)
    x = np.random.default_rng(0).normal(size=(6, 6)).astype(np.float32)
    return model, x, np.array([0, 1, 2, 0, 1, 2])


def test_smoothed_is_quantus_noise_and_n1_is_the_plain_method(setup):
    model, x, t = setup
    net = numpy_net(model)
    got = refinements.smoothed("gradient", N, NOISE, NOISE_SEED)(model, x, t)
    np.testing.assert_allclose(got, numpy_smoothed_gradient(net, x, t), rtol=1e-4, atol=1e-6)
    np.testing.assert_array_equal(refinements.smoothed("gradient", 1)(model, x, t),
                                  tf_sanity.explain(model, x, "gradient", t))
    with pytest.raises(SanityError, match="n >= 1"):
        refinements.smoothed("gradient", 0)


def test_smooth_mprt_equals_quantus_formula_at_every_stage(setup):
    model, x, t = setup
    reference = {}

    def record(stage, method, masks):  # called while the model is in that stage's state
        reference[stage] = (masks, numpy_smoothed_gradient(numpy_net(model), x, t))

    rows = list(refinements.smooth_mprt(model, x, t, ["gradient"], n=N, noise=NOISE, noise_seed=NOISE_SEED,
                                        seed=2, on_masks=record))
    stages = list(dict.fromkeys(r["stage"] for r in rows))
    assert stages == ["dense0", "dense1", "dense2"]  # Quantus' default order: bottom up
    assert {r["test"] for r in rows} == {"smprt"} and {r["metric"] for r in rows} == {"spearman_abs_flat"}
    original = reference["original"][1]
    for stage in stages:
        masks, expected = reference[stage]
        np.testing.assert_allclose(masks, expected, rtol=1e-4, atol=1e-6)
        quantus = correlation_spearman(np.abs(original), np.abs(expected))
        got = [r["value"] for r in rows if r["stage"] == stage]
        np.testing.assert_allclose(got, quantus, atol=1e-6)


def test_discrete_entropy_analytic_cases():
    ramp = np.arange(100.0)[None]  # one value per bin: uniform histogram
    np.testing.assert_allclose(refinements.discrete_entropy(ramp, 100), [np.log(100)])
    np.testing.assert_allclose(refinements.discrete_entropy(ramp, 10), [np.log(10)])
    two = np.array([[0.0] * 50 + [1.0] * 50])
    np.testing.assert_allclose(refinements.discrete_entropy(two, 100), [np.log(2)])
    constant = np.full((1, 7, 7, 1), 0.3)
    np.testing.assert_array_equal(refinements.discrete_entropy(constant), [0.0])
    assert np.isnan(refinements.complexity_rise(constant, ramp.reshape(1, 10, 10, 1))[0])
    np.testing.assert_allclose(refinements.complexity_rise(two, ramp), [(np.log(100) - np.log(2)) / np.log(2)])
    rng = np.random.default_rng(0)
    masks = rng.normal(size=(3, 8, 8, 2))
    np.testing.assert_allclose(refinements.discrete_entropy(masks, 17), [discrete_entropy(m, 17) for m in masks])


def test_efficient_mprt_equals_quantus_formula(setup):
    model, x, t = setup
    seen = {}

    def record(stage, method, masks):
        seen[stage] = masks
        np.testing.assert_allclose(masks, numpy_gradient(numpy_net(model), x, t), rtol=1e-4, atol=1e-6)

    rows = list(refinements.efficient_mprt(model, x, t, ["gradient"], n_bins=20, seed=2, on_masks=record))
    assert set(seen) == {"original", "dense2"}  # only the trained and the fully randomized model
    h0 = np.array([discrete_entropy(a, 20) for a in seen["original"]])
    h1 = np.array([discrete_entropy(a, 20) for a in seen["dense2"]])
    by_metric = {m: [r["value"] for r in rows if r["metric"] == m] for m in ("emprt", "entropy_original",
                                                                              "entropy_randomized")}
    np.testing.assert_allclose(by_metric["emprt"], (h1 - h0) / h0, rtol=1e-12)
    np.testing.assert_allclose(by_metric["entropy_original"], h0, rtol=1e-12)
    np.testing.assert_allclose(by_metric["entropy_randomized"], h1, rtol=1e-12)
    assert {r["test"] for r in rows} == {"emprt"} and {r["stage_index"] for r in rows} == {3}
    # both cascading orders end at the same fully randomized model
    top_down = [r["value"] for r in refinements.efficient_mprt(model, x, t, ["gradient"], n_bins=20, seed=2,
                                                               order="top_down") if r["metric"] == "emprt"]
    np.testing.assert_allclose(top_down, by_metric["emprt"], rtol=1e-6)
    with pytest.raises(SanityError, match="fully randomized"):
        list(refinements.efficient_mprt(model, x, t, ["gradient"], order="independent"))


def test_controls_run_through_the_refinements(setup):
    model, x, t = setup
    random = controls.random_attribution(seed=0)
    rows = list(refinements.smooth_mprt(model, x, t, ["gradient", random], n=3))
    values = [r["value"] for r in rows if r["method"] == controls.RANDOM_ATTRIBUTION]
    assert len(values) == 3 * len(x) and abs(np.median(values)) < 0.5
    emprt = [r["value"] for r in refinements.efficient_mprt(model, x, t, [random])
             if r["metric"] == "entropy_original"]
    assert np.all(np.isfinite(emprt))
