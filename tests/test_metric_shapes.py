"""Issue 14.5, shapes are never guessed: every layout against a per-image loop and scipy / skimage called
directly, and every bad shape a one-line SanityError (never one number for a batch, never a raw skimage error)."""

import numpy as np
import pytest
import scipy.stats
import skimage.feature
import skimage.metrics

from tf_sanity import postprocess
from tf_sanity.checks import metrics
from tf_sanity.errors import SanityError

RNG = np.random.default_rng(14)
GRAY3_A, GRAY3_B = RNG.standard_normal((2, 6, 28, 28))        # [B, H, W]: the example
GRAY4_A, GRAY4_B = RNG.standard_normal((2, 3, 28, 28, 1))     # [B, H, W, 1] (MNIST)
RGB_A, RGB_B = RNG.standard_normal((2, 2, 40, 40, 3))         # [B, H, W, 3] (ImageNet)
FEAT_A, FEAT_B = RNG.standard_normal((2, 5, 12))              # [B, F] (tabular)
SSIM_SETTINGS = {
    "original_code": dict(gaussian_weights=True, sigma=1.5, use_sample_covariance=True, data_range=2.0),
    "paper": dict(win_size=5, data_range=1.0),
}
ALL = {  # every metric as f(a, b, **kw); spearman_nz compares against a dense input (all pixels count)
    "spearman": metrics.spearman,
    "pearson": metrics.pearson,
    "cosine": metrics.cosine,
    "spearman_nz": lambda a, b, **kw: metrics.spearman_nz(a, b, np.ones(np.shape(a)), **kw),
    "ssim": metrics.ssim,
    "hog": metrics.hog_similarity,
}
FEATURE_METRICS = ("spearman", "pearson", "cosine", "spearman_nz")


def one_line_error(fn, *args, match=None, **kwargs):
    """Calls fn, expects a SanityError with a one-line message, returns the message."""
    with pytest.raises(SanityError, match=match) as info:
        fn(*args, **kwargs)
    message = str(info.value)
    assert message and "\n" not in message, repr(message)
    return message


def minmax(m):
    return (m - m.min()) / (m.max() - m.min())


# ----------------------------------------------------------------------------- the example

@pytest.mark.parametrize("name", list(ALL))
def test_3d_without_layout_is_an_error_naming_both_readings(name):
    message = one_line_error(ALL[name], GRAY3_A, GRAY3_B)
    assert "layout=" in message and "'BHW'" in message and "'HWC'" in message and "(6, 28, 28)" in message


@pytest.mark.parametrize("name", list(ALL))
def test_2d_without_layout_is_an_error(name):
    message = one_line_error(ALL[name], GRAY3_A[0], GRAY3_B[0])
    assert "'HW'" in message and ("'BF'" in message) == (name in FEATURE_METRICS)  # SSIM, HOG: images only
    one_line_error(ALL[name], FEAT_A, FEAT_B, match="'HW'")   # a batch of vectors is not one number either


def test_batch_of_2d_maps_with_layout_bhw():
    got = {name: ALL[name](GRAY3_A, GRAY3_B, layout="BHW") for name in ALL}
    for name, values in got.items():
        assert isinstance(values, np.ndarray) and values.shape == (6,), name
        # per image, as one [H, W] map and as the same map with a channel axis
        loop = [ALL[name](a, b, layout="HW") for a, b in zip(GRAY3_A, GRAY3_B)]
        np.testing.assert_allclose(values, loop, rtol=1e-12, atol=1e-12, err_msg=name)
        assert all(isinstance(v, float) for v in loop)
        np.testing.assert_array_equal(values, ALL[name](GRAY3_A[..., None], GRAY3_B[..., None]), err_msg=name)
    for i, (a, b) in enumerate(zip(GRAY3_A, GRAY3_B)):  # scipy / skimage on the original notebooks' |m| / max|m|
        na, nb = np.abs(a) / np.abs(a).max(), np.abs(b) / np.abs(b).max()
        assert got["spearman"][i] == pytest.approx(scipy.stats.spearmanr(na.ravel(), nb.ravel()).statistic)
        assert got["pearson"][i] == pytest.approx(scipy.stats.pearsonr(na.ravel(), nb.ravel()).statistic)
        assert got["cosine"][i] == pytest.approx(a.ravel() @ b.ravel() / np.linalg.norm(a) / np.linalg.norm(b))
        assert got["spearman_nz"][i] == pytest.approx(scipy.stats.spearmanr(a.ravel(), b.ravel()).statistic)
        ssim = skimage.metrics.structural_similarity(minmax(na), minmax(nb), **SSIM_SETTINGS["original_code"])
        assert got["ssim"][i] == pytest.approx(ssim)
        hog = [skimage.feature.hog(minmax(m), pixels_per_cell=(7, 7), cells_per_block=(2, 2)) for m in (na, nb)]
        assert got["hog"][i] == pytest.approx(scipy.stats.spearmanr(*hog).statistic)


@pytest.mark.parametrize("a, b", [(GRAY4_A, GRAY4_B), (RGB_A, RGB_B)], ids=["BHW1", "BHW3"])
@pytest.mark.parametrize("name", list(ALL))
def test_4d_batches_equal_a_loop_over_single_masks(name, a, b):
    values = ALL[name](a, b)
    assert isinstance(values, np.ndarray) and values.shape == (len(a),)
    assert np.isfinite(values).all()
    np.testing.assert_array_equal(values, ALL[name](a, b, layout="BHWC"))   # 4-D: the explicit layout is the default
    loop = [ALL[name](x, y, layout="HWC") for x, y in zip(a, b)]
    np.testing.assert_allclose(values, loop, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("preset", list(SSIM_SETTINGS))
def test_4d_ssim_equals_skimage_on_1_and_3_channels(preset):
    for a, b, norm in [(GRAY4_A, GRAY4_B, lambda m: np.abs(m[..., 0]) / np.abs(m).max()),
                       (RGB_A, RGB_B, lambda m: postprocess.abs_grayscale(m, layout="HWC"))]:
        got = metrics.ssim(a, b, preset=preset)
        for i in range(len(a)):
            na, nb = norm(a[i]), norm(b[i])
            expected = skimage.metrics.structural_similarity(minmax(na), minmax(nb), **SSIM_SETTINGS[preset])
            assert got[i] == pytest.approx(expected)


def test_feature_vectors_with_layout_bf():
    for absolute, f in [(True, np.abs), (False, lambda v: v)]:
        sp = metrics.spearman(FEAT_A, FEAT_B, absolute=absolute, layout="BF")
        pe = metrics.pearson(FEAT_A, FEAT_B, absolute=absolute, layout="BF")
        sp_none = metrics.spearman(FEAT_A, FEAT_B, absolute=absolute, normalize="none", layout="BF")
        assert sp.shape == pe.shape == (5,)
        for i, (a, b) in enumerate(zip(FEAT_A, FEAT_B)):
            assert sp[i] == pytest.approx(scipy.stats.spearmanr(f(a), f(b)).statistic)
            assert sp_none[i] == pytest.approx(scipy.stats.spearmanr(f(a), f(b)).statistic)
            assert pe[i] == pytest.approx(scipy.stats.pearsonr(f(a), f(b)).statistic)
    cos = metrics.cosine(FEAT_A, FEAT_B, layout="BF")
    np.testing.assert_allclose(cos, [a @ b / np.linalg.norm(a) / np.linalg.norm(b) for a, b in zip(FEAT_A, FEAT_B)])
    x = np.where(RNG.random(FEAT_A.shape) < 0.5, 0.0, 1.0)
    x[:, :2] = 1.0   # at least two features count in every row
    nz = metrics.spearman_nz(FEAT_A, FEAT_B, x, 0.0, absolute=True, layout="BF")
    for i in range(5):
        keep = x[i] != 0
        assert nz[i] == pytest.approx(scipy.stats.spearmanr(np.abs(FEAT_A[i][keep]), np.abs(FEAT_B[i][keep])).statistic)


@pytest.mark.parametrize("fn", [metrics.ssim, metrics.hog_similarity], ids=["ssim", "hog"])
def test_image_metrics_refuse_feature_vectors(fn):
    assert "spearman" in one_line_error(fn, FEAT_A, FEAT_B, layout="BF", match="compares images")


# ----------------------------------------------------------------------------- errors

@pytest.mark.parametrize("name", list(ALL))
def test_mismatched_shapes(name):
    fn = ALL[name]
    one_line_error(fn, RGB_A, RGB_B[:1], match="differ in shape")                     # batch sizes
    one_line_error(fn, GRAY4_A, RGB_A[:3, :28, :28], match="differ in shape")          # channels
    one_line_error(fn, GRAY3_A[0], GRAY3_B[0, :20], layout="HW", match="differ in shape")
    one_line_error(fn, GRAY4_A[0], GRAY4_B, layout="HWC", match="needs a 3-D array")   # b has another rank


@pytest.mark.parametrize("name", list(ALL))
@pytest.mark.parametrize("shape", [(), (28,), (1, 2, 28, 28, 1)], ids=["0-D", "1-D", "5-D"])
def test_wrong_dimensionality(name, shape):
    a = RNG.standard_normal(shape)
    message = one_line_error(ALL[name], a, a)
    assert f"shape {shape}" in message and "[B, H, W, C]" in message
    if shape == (28,):   # one feature vector: v[None] with layout="BF", where the metric takes vectors
        assert ("layout='BF'" in message) == (name in FEATURE_METRICS)


@pytest.mark.parametrize("name", list(ALL))
def test_layout_of_the_wrong_rank_and_unknown_layouts(name):
    one_line_error(ALL[name], GRAY4_A, GRAY4_B, layout="HWC", match="layout 'HWC' .* needs a 3-D array")
    two_d = "BF" if name in FEATURE_METRICS else "HW"
    one_line_error(ALL[name], GRAY3_A, GRAY3_B, layout=two_d, match="needs a 2-D array")
    one_line_error(ALL[name], GRAY3_A, GRAY3_B, layout="CHW", match="unknown layout 'CHW'")


@pytest.mark.parametrize("preset, window", [("original_code", 11), ("paper", 5), ("sixt", 5)])
def test_ssim_needs_maps_as_large_as_its_window(preset, window):
    a, b = RNG.standard_normal((2, 2, window, window + 3, 1))
    assert metrics.ssim(a, b, preset=preset).shape == (2,)
    message = one_line_error(metrics.ssim, a[:, :-1], b[:, :-1], preset=preset, match="SSIM needs maps")
    assert f"{window} x {window}" in message
    one_line_error(metrics.ssim, a[0, :-1, :, 0], b[0, :-1, :, 0], preset=preset, layout="HW", match="SSIM needs")


def test_hog_needs_two_cells_per_side():
    a, b = RNG.standard_normal((2, 2, 14, 20))
    assert np.isfinite(metrics.hog_similarity(a, b, layout="BHW")).all()
    message = one_line_error(metrics.hog_similarity, a[:, :13], b[:, :13], layout="BHW", match="HOG needs maps")
    assert "14 x 14" in message


def test_non_numeric_masks():
    one_line_error(metrics.spearman, [["a", "b"]], [["c", "d"]], layout="HW", match="numeric")
    one_line_error(metrics.cosine, [[1.0, 2.0], [3.0]], [[1.0, 2.0], [3.0]], layout="BF", match="numeric")


def test_spearman_nz_input_must_match_the_masks():
    one_line_error(metrics.spearman_nz, GRAY4_A, GRAY4_B, GRAY4_A[:, :20], match="does not broadcast")
    one_line_error(metrics.spearman_nz, GRAY3_A, GRAY3_B, GRAY3_A, match="layout=")
    # an input with one channel counts for every channel of the masks, as before
    x = np.where(RNG.random((2, 40, 40, 1)) < 0.5, 0.0, 1.0)
    assert metrics.spearman_nz(RGB_A, RGB_B, x).shape == (2,)


def test_nan_gives_nan_for_its_pair_only():
    a, b = GRAY4_A.copy(), GRAY4_B.copy()
    a[1, 3, 3, 0] = np.nan
    for name, fn in ALL.items():
        values = fn(a, b)
        assert np.isnan(values[1]) and np.isfinite(values[[0, 2]]).all(), name
        np.testing.assert_array_equal(values[[0, 2]], fn(GRAY4_A, GRAY4_B)[[0, 2]])
    assert np.isnan(metrics.cosine(a[1], b[1], layout="HWC"))   # not 0, as for an all-zero mask
    h = a[1, ..., 0]
    assert np.isnan(metrics.ssim_flipped(h, b[1, ..., 0]))


# ----------------------------------------------------------------------------- Sixt et al. and postprocess

def test_sixt_functions_take_one_2d_heatmap():
    a, b = RNG.standard_normal((2, 28, 28))
    assert isinstance(metrics.ssim_flipped(a, b), float)
    one_line_error(metrics.ssim_flipped, GRAY3_A, GRAY3_B, match="one 2-D heatmap")
    one_line_error(metrics.ssim_flipped, GRAY4_A[0], GRAY4_B[0], match="heatmap")
    one_line_error(metrics.ssim_flipped, a, b[:20], match="differ in shape")
    one_line_error(metrics.ssim_flipped, a[:4], b[:4], match="SSIM needs maps of at least 5 x 5")
    one_line_error(metrics.normalize_percentile, GRAY3_A, match="one 2-D heatmap")
    one_line_error(metrics.heatmap, GRAY3_A, "abs_max", match="layout=")
    np.testing.assert_array_equal(metrics.heatmap(RGB_A[0], "sum", layout="HWC"), RGB_A[0].sum(-1))
    np.testing.assert_array_equal(metrics.heatmap(GRAY3_A, "abs_max", layout="BHW"), np.abs(GRAY3_A))
    one_line_error(metrics.heatmap, RGB_A, "max", match="unknown reduction")


def test_postprocess_follows_the_same_rule():
    batch, single = postprocess.as_batch(RGB_A)
    assert batch.shape == RGB_A.shape and not single
    for layout, shape, is_single in [("HW", (1, 28, 28, 1), True), ("BHW", (6, 28, 28, 1), False)]:
        m = GRAY3_A[0] if layout == "HW" else GRAY3_A
        batch, single = postprocess.as_batch(m, layout)
        assert batch.shape == shape and single is is_single
    batch, single = postprocess.as_batch(RGB_A[0], "HWC")
    assert batch.shape == (1, 40, 40, 3) and single
    for f in (postprocess.abs_grayscale, postprocess.diverging, postprocess.max_abs, postprocess.max_signed,
              postprocess.original_code, postprocess.channel_sum):
        one_line_error(f, GRAY3_A, match="layout=")
        one_line_error(f, FEAT_A, layout="BF", match="unknown layout 'BF'")  # feature vectors: metrics only
        assert f(GRAY3_A, layout="BHW").shape == (6, 28, 28)
        np.testing.assert_array_equal(f(GRAY3_A, layout="BHW")[2], f(GRAY3_A[2], layout="HW"))
        assert f(RGB_A).shape == (2, 40, 40) and f(RGB_A[0], layout="HWC").shape == (40, 40)
    one_line_error(postprocess.minmax01, GRAY4_A, match="2-D maps")
    one_line_error(postprocess.as_batch, np.zeros((0, 5)), "HW", match="empty")
