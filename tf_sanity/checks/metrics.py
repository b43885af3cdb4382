"""Similarity between saliency maps (Adebayo et al. 2018, Sec. 4; Sundararajan & Taly 2018).

Pure functions. Each takes two masks (``[H, W]``, ``[H, W, C]``) and returns a float, or two batches
(``[B, H, W, C]``) and returns ``[B]``. Masks are raw method outputs; each metric first normalizes
them as named by ``normalize`` (:data:`tf_sanity.postprocess.NORMALIZATIONS`), by default as the
original notebooks did. The settings of the paper and of the original code are named presets
(``../shared/REFERENCE.md``, "Similarity"):

==============  ===============================================  ==============================================
metric          ``"original_code"``                              ``"paper"``
==============  ===============================================  ==============================================
SSIM            Gaussian window sigma 1.5 (11 taps), sample       window 5, uniform, data_range 1
                covariance, data_range 2 (skimage 0.15 default)
HOG             Spearman of the HOG features                     Pearson of the HOG features
==============  ===============================================  ==============================================

HOG features: 9 orientations, L2-Hys, 16 x 16 pixel cells in 3 x 3 blocks (the original code); on
images smaller than 48 pixels (MNIST) 7 x 7 cells in 2 x 2 blocks, since 3 blocks of 16 do not fit.
"""

import numpy as np
import scipy.stats
import skimage.feature
import skimage.metrics

from tf_sanity import postprocess
from tf_sanity.errors import SanityError, unknown_name

PRESETS = ("original_code", "paper")


def _pair(a, b, absolute, normalize):
    if normalize not in postprocess.NORMALIZATIONS:
        raise unknown_name("normalization", normalize, postprocess.NORMALIZATIONS)
    batch_a, single = postprocess.as_batch(a)
    batch_b, _ = postprocess.as_batch(b)
    if batch_a.shape != batch_b.shape:
        raise SanityError(f"masks differ in shape: {np.shape(a)} vs {np.shape(b)}; compare masks of the same images")
    fn = postprocess.NORMALIZATIONS[normalize]
    return fn(batch_a, absolute=absolute), fn(batch_b, absolute=absolute), single


def _rowwise_pearson(x, y):
    x = x - x.mean(axis=1, keepdims=True)
    y = y - y.mean(axis=1, keepdims=True)
    denom = np.sqrt((x * x).sum(axis=1) * (y * y).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, (x * y).sum(axis=1) / np.where(denom > 0, denom, 1), np.nan)


def _out(values, single):
    return float(values[0]) if single else values


def rank_correlation(x, y):
    """Spearman correlation of each row of `x` with the same row of `y` (``[N, D]`` -> ``[N]``)."""
    return _rowwise_pearson(scipy.stats.rankdata(x, axis=1), scipy.stats.rankdata(y, axis=1))


def spearman(a, b, absolute=True, normalize="original_code"):
    """Spearman rank correlation of two masks (Fig. 4: "absolute value" and "no absolute value").

    Args:
      absolute: compare ``|mask|`` (the paper's main setting) or signed masks (diverging).
      normalize: ``"original_code"`` (PAIR visualizations / max scaling, whose clipping at the
        99th percentile creates ties) or ``"none"`` (channel sums of the raw masks).
    """
    ma, mb, single = _pair(a, b, absolute, normalize)
    return _out(rank_correlation(ma.reshape(len(ma), -1), mb.reshape(len(mb), -1)), single)


def spearman_nz(a, b, x, baseline=0.0, absolute=False):
    """Spearman over the entries where ``x != baseline`` only (Sundararajan & Taly 2018, Sec. 3.1).

    Pixels that equal IG's baseline get exactly zero attribution from any network; counting them
    inflates Spearman. Masks are compared raw, element by element (no normalization).

    Args:
      a, b: masks shaped like `x` (one image or a batch).
      x: the explained input(s); baseline: a scalar or an array broadcastable to `x`.
      absolute: compare ``|a|`` and ``|b|`` instead of the signed values.
    """
    a, b, x = (np.asarray(v, dtype=np.float64) for v in (a, b, x))
    single = a.ndim < 4
    keep = np.broadcast_to(x != np.asarray(baseline), a.shape)
    if single:
        a, b, keep = a[None], b[None], keep[None]
    if absolute:
        a, b = np.abs(a), np.abs(b)
    values = np.array([rank_correlation(ai[k][None], bi[k][None])[0] if k.sum() > 1 else np.nan
                       for ai, bi, k in zip(a, b, keep)])  # NaN where a mask is constant, as spearman()
    return _out(values, single)


def pearson(a, b, absolute=True, normalize="original_code"):
    """Pearson correlation of two normalized masks."""
    ma, mb, single = _pair(a, b, absolute, normalize)
    return _out(_rowwise_pearson(ma.reshape(len(ma), -1), mb.reshape(len(mb), -1)), single)


def cosine(a, b):
    """Cosine similarity of two raw masks, flattened (0 where either is all zero)."""
    ba, single = postprocess.as_batch(a)
    bb, _ = postprocess.as_batch(b)
    x, y = ba.reshape(len(ba), -1), bb.reshape(len(bb), -1)
    norms = np.linalg.norm(x, axis=1) * np.linalg.norm(y, axis=1)
    return _out(np.where(norms > 0, (x * y).sum(axis=1) / np.where(norms > 0, norms, 1), 0.0), single)


def _check_preset(preset):
    if preset not in PRESETS:
        raise unknown_name("preset", preset, PRESETS)


def ssim_settings(preset):
    """Keyword arguments of ``skimage.metrics.structural_similarity`` for `preset`."""
    _check_preset(preset)
    if preset == "paper":
        return dict(win_size=5, data_range=1.0)
    return dict(gaussian_weights=True, sigma=1.5, use_sample_covariance=True, data_range=2.0)


def ssim(a, b, absolute=True, normalize="original_code", preset="original_code"):
    """SSIM of two masks (Sec. 2 "Similarity Metrics", Fig. 5): normalized, min-max scaled to [0, 1], then skimage's SSIM."""
    ma, mb, single = _pair(a, b, absolute, normalize)
    settings = ssim_settings(preset)
    ma, mb = postprocess.minmax01(ma), postprocess.minmax01(mb)
    values = np.array([skimage.metrics.structural_similarity(x, y, **settings) for x, y in zip(ma, mb)])
    return _out(values, single)


def hog_settings(shape):
    """``skimage.feature.hog`` arguments for 2-D maps of `shape` (see the module docstring)."""
    if min(shape) >= 48:
        return dict(orientations=9, pixels_per_cell=(16, 16), cells_per_block=(3, 3), block_norm="L2-Hys")
    return dict(orientations=9, pixels_per_cell=(7, 7), cells_per_block=(2, 2), block_norm="L2-Hys")


def hog_features(maps):
    """HOG descriptors of min-max scaled 2-D maps ``[B, H, W]`` -> ``[B, D]``."""
    maps = postprocess.minmax01(maps)
    settings = hog_settings(maps.shape[1:])
    return np.stack([skimage.feature.hog(m, **settings) for m in maps])


def hog_similarity(a, b, absolute=True, normalize="original_code", preset="original_code"):
    """Similarity of the HOG features of two masks (Sec. 2 "Similarity Metrics", Fig. 5).

    ``"original_code"``: Spearman of the features; ``"paper"``: Pearson.
    """
    _check_preset(preset)
    ma, mb, single = _pair(a, b, absolute, normalize)
    fa, fb = hog_features(ma), hog_features(mb)
    compare = rank_correlation if preset == "original_code" else _rowwise_pearson
    return _out(compare(fa, fb), single)


METRICS = {
    "spearman_abs": lambda a, b: spearman(a, b, absolute=True),
    "spearman_signed": lambda a, b: spearman(a, b, absolute=False),
    "ssim": ssim,
    "hog": hog_similarity,
}


def random_mask(shape, kind="gaussian", seed=0):
    """A random mask for the calibration table (paper appendix).

    Args:
      kind: ``"gaussian"`` N(0, 1); ``"uniform"`` U(-1, 1); ``"gaussian_rescaled"`` N(0, 1) min-max
        rescaled to [-1, 1].
    """
    rng = np.random.default_rng(seed)
    if kind == "gaussian":
        return rng.standard_normal(shape)
    if kind == "uniform":
        return rng.uniform(-1, 1, shape)
    if kind == "gaussian_rescaled":
        m = rng.standard_normal(shape)
        return 2 * (m - m.min()) / (m.max() - m.min()) - 1
    raise unknown_name("random mask kind", kind, ("gaussian", "uniform", "gaussian_rescaled"))
