"""Metrics against scipy / scikit-image / PAIR called directly, and known statistical facts."""

import numpy as np
import pytest
import saliency.core as saliency
import scipy.stats
import skimage.feature
import skimage.metrics

from tf_sanity import postprocess
from tf_sanity.checks import metrics
from tf_sanity.errors import SanityError

RNG = np.random.default_rng(0)
RGB_A, RGB_B = RNG.standard_normal((2, 3, 40, 40, 3))
GRAY_A, GRAY_B = RNG.standard_normal((2, 3, 28, 28, 1))


def test_postprocess_equals_pair_visualizations():
    for m in RGB_A:
        np.testing.assert_allclose(postprocess.abs_grayscale(m, layout="HWC"), saliency.VisualizeImageGrayscale(m),
                                   rtol=1e-6)
        np.testing.assert_allclose(postprocess.diverging(m, layout="HWC"), saliency.VisualizeImageDiverging(m),
                                   rtol=1e-6)
    g = GRAY_A[0]
    np.testing.assert_allclose(postprocess.max_abs(g, layout="HWC"), np.abs(g[..., 0]) / np.abs(g).max())
    np.testing.assert_allclose(postprocess.max_signed(g, layout="HWC"), g[..., 0] / np.abs(g).max())


@pytest.mark.parametrize("absolute", [True, False])
def test_spearman_equals_scipy_on_single_maps_and_batches(absolute):
    batch = metrics.spearman(RGB_A, RGB_B, absolute=absolute)
    norm = postprocess.abs_grayscale if absolute else postprocess.diverging
    for i in range(3):
        a, b = norm(RGB_A[i], layout="HWC"), norm(RGB_B[i], layout="HWC")
        expected = scipy.stats.spearmanr(a.ravel(), b.ravel()).statistic
        assert batch[i] == pytest.approx(expected, abs=1e-12)
        single = metrics.spearman(RGB_A[i], RGB_B[i], absolute=absolute, layout="HWC")
        assert single == pytest.approx(expected, abs=1e-12)
    raw = metrics.spearman(GRAY_A, GRAY_B, absolute=absolute, normalize="none")
    transform = np.abs if absolute else (lambda v: v)
    expected = [scipy.stats.spearmanr(transform(a).ravel(), transform(b).ravel()).statistic for a, b in zip(GRAY_A, GRAY_B)]
    np.testing.assert_allclose(raw, expected, atol=1e-12)


def test_spearman_of_identical_and_negated_maps():
    assert metrics.spearman(RGB_A[0], RGB_A[0], layout="HWC") == pytest.approx(1.0)
    assert metrics.spearman(GRAY_A[0], -GRAY_A[0], absolute=False, layout="HWC") == pytest.approx(-1.0)
    assert metrics.spearman(GRAY_A[0], -GRAY_A[0], absolute=True, layout="HWC") == pytest.approx(1.0)


def test_spearman_nz_uses_only_pixels_that_differ_from_the_baseline():
    x = np.where(RNG.random((28, 28, 1)) < 0.8, 0.0, RNG.random((28, 28, 1)))  # ~80 % black as MNIST
    a, b = RNG.standard_normal((2, 28, 28, 1)) * (x != 0)
    keep = x != 0
    expected = scipy.stats.spearmanr(a[keep], b[keep]).statistic
    assert metrics.spearman_nz(a, b, x, baseline=0.0, layout="HWC") == pytest.approx(expected)
    # Shared zeros inflate plain Spearman of absolute values (Sundararajan & Taly, Sec. 3.1).
    assert metrics.spearman(np.abs(a), np.abs(b), normalize="none", layout="HWC") > 0.5 > abs(expected)
    batch = metrics.spearman_nz(np.stack([a, a]), np.stack([b, a]), np.stack([x, x]))
    np.testing.assert_allclose(batch, [expected, 1.0])


@pytest.mark.parametrize("preset", ["original_code", "paper"])
def test_ssim_equals_direct_skimage_call(preset):
    got = metrics.ssim(RGB_A, RGB_B, preset=preset)
    settings = ({"win_size": 5, "data_range": 1.0} if preset == "paper" else
                {"gaussian_weights": True, "sigma": 1.5, "use_sample_covariance": True, "data_range": 2.0})
    for i in range(3):
        a01 = postprocess.minmax01(postprocess.abs_grayscale(RGB_A[i], layout="HWC"))
        b01 = postprocess.minmax01(postprocess.abs_grayscale(RGB_B[i], layout="HWC"))
        assert got[i] == pytest.approx(skimage.metrics.structural_similarity(a01, b01, **settings))
    assert metrics.ssim(RGB_A[0], RGB_A[0], preset=preset, layout="HWC") == pytest.approx(1.0)


@pytest.mark.parametrize("preset, stat", [("original_code", scipy.stats.spearmanr), ("paper", scipy.stats.pearsonr)])
def test_hog_similarity_equals_direct_skimage_call(preset, stat):
    big_a, big_b = RNG.standard_normal((2, 64, 64, 3))
    a01 = postprocess.minmax01(postprocess.abs_grayscale(big_a, layout="HWC"))
    b01 = postprocess.minmax01(postprocess.abs_grayscale(big_b, layout="HWC"))
    hog = lambda m: skimage.feature.hog(m, pixels_per_cell=(16, 16))  # noqa: E731  the original call
    expected = stat(hog(a01), hog(b01)).statistic
    assert metrics.hog_similarity(big_a, big_b, preset=preset, layout="HWC") == pytest.approx(expected)
    small = metrics.hog_similarity(GRAY_A, GRAY_B, preset=preset)  # 28 x 28: 7 x 7 cells, 2 x 2 blocks
    assert small.shape == (3,) and np.isfinite(small).all()


def test_pearson_and_cosine():
    a, b = RGB_A[0], RGB_B[0]
    expected = np.corrcoef(postprocess.abs_grayscale(a, layout="HWC").ravel(),
                           postprocess.abs_grayscale(b, layout="HWC").ravel())[0, 1]
    assert metrics.pearson(a, b, layout="HWC") == pytest.approx(expected)
    expected = a.ravel() @ b.ravel() / np.linalg.norm(a) / np.linalg.norm(b)
    assert metrics.cosine(a, b, layout="HWC") == pytest.approx(expected)
    assert metrics.cosine(a, 3 * a, layout="HWC") == pytest.approx(1.0)
    assert metrics.cosine(a, np.zeros_like(a), layout="HWC") == 0.0


def test_random_masks_calibrate_to_zero():
    # Appendix calibration: independent random masks have near-zero similarity (|rho| < 0.01 on 299 x 299).
    g1 = metrics.random_mask((299, 299, 3), "gaussian", seed=1)
    g2 = metrics.random_mask((299, 299, 3), "gaussian", seed=2)
    assert abs(metrics.spearman(g1, g2, absolute=False, layout="HWC")) < 0.01
    assert abs(metrics.spearman(g1, g2, absolute=True, layout="HWC")) < 0.01
    u = metrics.random_mask((299, 299, 3), "uniform", seed=3)
    assert u.min() >= -1 and u.max() <= 1
    r = metrics.random_mask((10, 10), "gaussian_rescaled", seed=4)
    assert r.min() == pytest.approx(-1) and r.max() == pytest.approx(1)
    with pytest.raises(SanityError, match="unknown random mask kind"):
        metrics.random_mask((3,), "poisson")


def test_unknown_preset_and_normalization():
    with pytest.raises(SanityError, match="unknown preset 'papr'"):
        metrics.ssim(RGB_A[0], RGB_B[0], preset="papr", layout="HWC")
    with pytest.raises(SanityError, match="unknown normalization"):
        metrics.spearman(RGB_A[0], RGB_B[0], normalize="pair", layout="HWC")
