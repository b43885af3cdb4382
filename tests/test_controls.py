"""The controls of a randomization test (issue 17, item 4): an edge detector that ignores the model and a
random attribution drawn afresh per model state, run by model_randomization as Method objects."""

import numpy as np
import pytest
import skimage.filters

import tf_sanity
from tf_sanity import SanityError, checks
from tf_sanity.checks import controls
from tests.helpers import images, small_cnn
from tests.tiny_nets import dense_net

EDGE, RANDOM = controls.EDGE_DETECTOR, controls.RANDOM_ATTRIBUTION


@pytest.fixture(scope="module")
def cnn():
    return small_cnn(), images(8), np.arange(8) % 10


def test_sobel_map_is_skimage_sobel_of_the_grey_image():
    x = np.random.default_rng(0).random((2, 16, 12, 3)).astype(np.float32)
    expected = np.stack([skimage.filters.sobel(im.astype(np.float64).mean(-1)) for im in x])
    np.testing.assert_allclose(controls.sobel_map(x), expected)
    masks = controls.edge_detector().compute(None, x, np.zeros(2, int))  # the model is never read
    assert masks.shape == x.shape
    np.testing.assert_allclose(masks.sum(-1), expected, rtol=1e-5, atol=1e-7)


def test_controls_are_not_registered_and_image_only_where_they_must_be():
    assert EDGE not in tf_sanity.METHODS and RANDOM not in tf_sanity.METHODS
    model, _, _ = dense_net()
    x = np.ones((2, 6), np.float32)
    with pytest.raises(SanityError, match=r"image inputs \[B, H, W, C\].*leave it out"):
        controls.edge_detector()(model, x, [0, 1])
    assert [m.name for m in controls.controls(x)] == [RANDOM]
    assert [m.name for m in controls.controls(np.ones((1, 4, 4, 1)))] == [EDGE, RANDOM]
    r = controls.random_attribution(seed=1)
    a, b = r(model, x, [0, 1]), r(model, x, [0, 1])
    assert a.shape == x.shape and not np.array_equal(a, b) and np.all(np.abs(a) <= 1)
    np.testing.assert_array_equal(controls.random_attribution(seed=1)(model, x, [0, 1]), a)


def test_model_randomization_takes_method_objects_and_the_controls_bracket_the_scale(cnn):
    model, x, t = cnn
    edge, random = controls.controls(x)
    settings = {"gradient": {"batch_size": 4}}
    rows = list(checks.model_randomization(model, x, t, ["gradient", edge, random],
                                           similarities=("spearman_abs", "ssim"), settings=settings))
    assert {r["method"] for r in rows} == {"gradient", EDGE, RANDOM}
    for metric in ("spearman_abs", "ssim"):
        np.testing.assert_allclose([r["value"] for r in rows if r["method"] == EDGE and r["metric"] == metric], 1.0,
                                   atol=1e-6)
    spearman_random = [r["value"] for r in rows if r["method"] == RANDOM and r["metric"] == "spearman_abs"]
    assert abs(np.median(spearman_random)) < 0.05 and np.max(np.abs(spearman_random)) < 0.15
    with pytest.raises(SanityError, match="unknown method|valid"):
        list(checks.model_randomization(model, x, t, ["gradient", "no_such_method"]))
