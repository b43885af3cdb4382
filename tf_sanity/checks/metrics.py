"""Similarity between saliency maps (Adebayo et al. 2018, Sec. 4; Sundararajan & Taly 2018).

Pure functions of two masks `a` and `b` of the same shape: one mask gives a float, a batch gives
``[B]``. Masks are raw method outputs; each metric first normalizes them as named by ``normalize``
(:data:`tf_sanity.postprocess.NORMALIZATIONS`), by default as the original notebooks did.

Shapes are never guessed. A 4-D array is a batch ``[B, H, W, C]`` (channels last). Any other array
is read only as the ``layout=`` argument says, because its number of dimensions alone is
ambiguous: a 3-D ``[X, Y, Z]`` may be one mask ``[H, W, C]`` or a batch of 2-D maps ``[B, H, W]``,
and a 2-D one may be one map ``[H, W]`` or a batch of feature vectors ``[B, F]`` (tabular or
flattened sequence attributions). ``layout`` is ``"HW"`` or ``"HWC"`` for one mask (the metric
returns a float), ``"BHW"``, ``"BHWC"`` or ``"BF"`` for a batch (it returns ``[B]``); 2-D maps are
1-channel masks, and feature vectors are 1-channel masks one pixel high, so the
``"original_code"`` normalization scales them by ``max |m|``. Spearman, ``spearman_nz``, Pearson
and cosine take every layout; SSIM and HOG take images only, no smaller than their window (SSIM:
11 pixels with the ``"original_code"`` preset, 5 with ``"paper"`` and ``"sixt"``; HOG: 14). Any
other input (no layout for a 2-D or 3-D array, a layout of the wrong rank, 1-D or 5-D arrays,
`a` and `b` of different shapes, maps too small) raises a one-line
:class:`~tf_sanity.errors.SanityError` that says what to pass. A NaN in a compared pixel makes that
pair's value NaN (no exception). Sixt et al.'s :func:`ssim_flipped` and :func:`normalize_percentile`
take one 2-D heatmap ``[H, W]`` (no channels, nothing to infer); :func:`heatmap` follows the rule above.

The settings of the paper and of the original code are named presets (``docs/REFERENCE.md``,
"Similarity"):

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

import functools

import numpy as np
import scipy.stats
import skimage.feature
import skimage.metrics

from tf_sanity import postprocess
from tf_sanity.errors import SanityError, unknown_name

PRESETS = ("original_code", "paper", "sixt")


def _check_normalization(normalize):
    if normalize not in postprocess.NORMALIZATIONS:
        raise unknown_name("normalization", normalize, postprocess.NORMALIZATIONS)


def _batches(a, b, layout, features=True):
    """``(batch_a, batch_b, single)``: both masks as ``[B, H, W, C]`` (``[B, 1, F, 1]`` for ``"BF"``)."""
    batch_a, single = postprocess.as_batch(a, layout, name="a", features=features)
    batch_b, _ = postprocess.as_batch(b, layout, name="b", features=features)
    if batch_a.shape != batch_b.shape:
        raise SanityError(f"masks differ in shape: {np.shape(a)} vs {np.shape(b)}; compare masks of the same images")
    return batch_a, batch_b, single


def _images_only(metric, layout):
    if layout == "BF":
        raise SanityError(f"{metric} compares images; feature vectors (layout 'BF') have no neighbourhoods, "
                          "use spearman, pearson or cosine")


def _pair(a, b, absolute, normalize, layout, features=True):
    _check_normalization(normalize)
    batch_a, batch_b, single = _batches(a, b, layout, features)
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
    x, y = postprocess.numeric(x, "x"), postprocess.numeric(y, "y")
    if x.ndim != 2 or x.shape != y.shape:
        raise SanityError(f"rank_correlation takes two [N, D] arrays of the same shape, got {x.shape} and {y.shape}")
    return _rowwise_pearson(scipy.stats.rankdata(x, axis=1), scipy.stats.rankdata(y, axis=1))


def spearman(a, b, absolute=True, normalize="original_code", *, layout=None):
    """Spearman rank correlation of two masks (Fig. 4: "absolute value" and "no absolute value").

    Args:
      absolute: compare ``|mask|`` (the paper's main setting) or signed masks (diverging).
      normalize: ``"original_code"`` (PAIR visualizations / max scaling, whose clipping at the
        99th percentile creates ties) or ``"none"`` (channel sums of the raw masks).
      layout: what a 2-D or 3-D array holds (see the module docstring); 4-D is ``[B, H, W, C]``.
    """
    ma, mb, single = _pair(a, b, absolute, normalize, layout)
    return _out(rank_correlation(ma.reshape(len(ma), -1), mb.reshape(len(mb), -1)), single)


def spearman_nz(a, b, x, baseline=0.0, absolute=False, *, layout=None):
    """Spearman over the entries where ``x != baseline`` only (Sundararajan & Taly 2018, Sec. 3.1).

    Pixels that equal IG's baseline get exactly zero attribution from any network; counting them
    inflates Spearman. Masks are compared raw, element by element (no normalization).

    Args:
      a, b: masks shaped like `x` (one image or a batch; `layout` as in the module docstring).
      x: the explained input(s), broadcastable to the masks; baseline: a scalar or an array
        broadcastable to `x`.
      absolute: compare ``|a|`` and ``|b|`` instead of the signed values.
    """
    batch_a, batch_b, single = _batches(a, b, layout)
    raw_shape, a, b = np.shape(a), batch_a, batch_b
    x = postprocess.numeric(x, "x")
    try:
        keep = np.broadcast_to(x != np.asarray(baseline), raw_shape).reshape(a.shape)
    except ValueError:
        raise SanityError(f"x of shape {x.shape} (baseline shape {np.shape(baseline)}) does not broadcast to the "
                          f"masks' shape {raw_shape}; pass the explained inputs, shaped like the masks") from None
    if absolute:
        a, b = np.abs(a), np.abs(b)
    values = np.array([rank_correlation(ai[k][None], bi[k][None])[0] if k.sum() > 1 else np.nan
                       for ai, bi, k in zip(a, b, keep)])  # NaN where a mask is constant, as spearman()
    return _out(values, single)


def pearson(a, b, absolute=True, normalize="original_code", *, layout=None):
    """Pearson correlation of two normalized masks (`layout` as in the module docstring)."""
    ma, mb, single = _pair(a, b, absolute, normalize, layout)
    return _out(_rowwise_pearson(ma.reshape(len(ma), -1), mb.reshape(len(mb), -1)), single)


def cosine(a, b, *, layout=None):
    """Cosine similarity of two raw masks, flattened (0 where either is all zero).

    `layout` as in the module docstring.
    """
    ba, bb, single = _batches(a, b, layout)
    x, y = ba.reshape(len(ba), -1), bb.reshape(len(bb), -1)
    norms = np.linalg.norm(x, axis=1) * np.linalg.norm(y, axis=1)
    with np.errstate(invalid="ignore"):
        return _out(np.where(norms == 0, 0.0, (x * y).sum(axis=1) / np.where(norms == 0, 1, norms)), single)


def _check_preset(preset):
    if preset not in PRESETS:
        raise unknown_name("preset", preset, PRESETS)


def ssim_settings(preset):
    """Keyword arguments of ``skimage.metrics.structural_similarity`` for `preset`."""
    _check_preset(preset)
    if preset == "paper":
        return dict(win_size=5, data_range=1.0)
    if preset == "sixt":  # Sixt et al.'s compare_ssim(win_size=5); skimage 0.15 assumed data range 2 for floats
        return dict(win_size=5, data_range=2.0, gaussian_weights=False, use_sample_covariance=True)
    return dict(gaussian_weights=True, sigma=1.5, use_sample_covariance=True, data_range=2.0)


def ssim_window(settings):
    """The side of skimage's SSIM window for `settings` (a Gaussian one is cut at 3.5 sigma: 11 taps for 1.5)."""
    if settings.get("gaussian_weights"):
        return 2 * int(3.5 * settings.get("sigma", 1.5) + 0.5) + 1
    return settings.get("win_size", 7)


def _check_ssim_size(shape, settings, what):
    window = ssim_window(settings)
    if min(shape) < window:
        raise SanityError(f"SSIM needs maps of at least {window} x {window} pixels ({what}); got "
                          f"{' x '.join(map(str, shape))}; use spearman or pearson for smaller masks")


def ssim(a, b, absolute=True, normalize="original_code", preset="original_code", *, layout=None):
    """SSIM of two masks (Sec. 2 "Similarity Metrics", Fig. 5).

    Masks are normalized, min-max scaled to [0, 1], then compared by skimage's SSIM. `layout` as
    in the module docstring (images only).
    """
    settings = ssim_settings(preset)
    _check_normalization(normalize)
    _images_only("SSIM", layout)
    ma, mb, single = _pair(a, b, absolute, normalize, layout, features=False)
    _check_ssim_size(ma.shape[1:], settings, f"preset {preset!r}")
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
    maps = postprocess.numeric(maps, "maps")
    if maps.ndim != 3:
        raise SanityError(f"hog_features takes a batch of 2-D maps [B, H, W], got shape {maps.shape}")
    settings = hog_settings(maps.shape[1:])
    cell, block = settings["pixels_per_cell"][0], settings["cells_per_block"][0]
    if min(maps.shape[1:]) < cell * block:
        raise SanityError(f"HOG needs maps of at least {cell * block} x {cell * block} pixels ({block} x {block} "
                          f"cells of {cell} pixels); got {maps.shape[1]} x {maps.shape[2]}; use spearman or pearson "
                          "for smaller masks")
    maps = postprocess.minmax01(maps)
    return np.stack([skimage.feature.hog(m, **settings) for m in maps])


def hog_similarity(a, b, absolute=True, normalize="original_code", preset="original_code", *, layout=None):
    """Similarity of the HOG features of two masks (Sec. 2 "Similarity Metrics", Fig. 5).

    ``"original_code"``: Spearman of the features; ``"paper"``: Pearson. `layout` as in the module
    docstring (images only).
    """
    _check_preset(preset)
    _check_normalization(normalize)
    _images_only("HOG", layout)
    ma, mb, single = _pair(a, b, absolute, normalize, layout, features=False)
    fa, fb = hog_features(ma), hog_features(mb)
    compare = rank_correlation if preset == "original_code" else _rowwise_pearson
    return _out(compare(fa, fb), single)


# ----------------------------------------------------------------------------- Sixt et al.'s SSIM

def heatmap(mask, reduction, *, layout=None):
    """Reduces masks over channels: ``"abs_max"`` (max |m|) or ``"sum"``; ``[H, W]`` or ``[B, H, W]``.

    `layout` as in the module docstring (images only; a 4-D array is ``[B, H, W, C]``).
    """
    if reduction not in ("abs_max", "sum"):
        raise SanityError(f"unknown reduction {reduction!r}; valid: abs_max, sum")
    m, single = postprocess.as_batch(mask, layout)
    heat = np.abs(m).max(axis=-1) if reduction == "abs_max" else m.sum(axis=-1)
    return heat[0] if single else heat


def _heatmap_2d(heat, name):
    h = postprocess.numeric(heat, name)
    if h.ndim != 2 or 0 in h.shape:
        raise SanityError(f"{name} must be one 2-D heatmap [H, W], got shape {h.shape}; reduce the channels with "
                          "heatmap(mask, reduction) and loop over a batch (csc.ssim_batch does both)")
    return h


def normalize_percentile(heat, percentile=99.5):
    """Maps the ``(100 - p)``-th and ``p``-th percentiles of one 2-D map ``[H, W]`` to 0 and 1 and clips."""
    h = _heatmap_2d(heat, "heat")
    low, high = np.percentile(h, 100 - percentile), np.percentile(h, percentile)
    if high <= low:
        return np.zeros_like(h)
    return np.clip((h - low) / (high - low), 0.0, 1.0)


def ssim_flipped(a, b, percentile=99.5):
    """``max(SSIM(x, y), SSIM(x, -y))`` of two 2-D heatmaps ``[H, W]`` after percentile normalization (Sixt et al.)."""
    a, b = _heatmap_2d(a, "a"), _heatmap_2d(b, "b")
    if a.shape != b.shape:
        raise SanityError(f"heatmaps differ in shape: {a.shape} vs {b.shape}; compare heatmaps of the same image")
    settings = ssim_settings("sixt")
    _check_ssim_size(a.shape, settings, "Sixt et al.'s window")
    x = normalize_percentile(a, percentile)
    y, y_flip = normalize_percentile(b, percentile), normalize_percentile(-b, percentile)
    return max(skimage.metrics.structural_similarity(x, y, **settings),
               skimage.metrics.structural_similarity(x, y_flip, **settings))


METRICS = {
    "spearman_abs": functools.partial(spearman, absolute=True),
    "spearman_signed": functools.partial(spearman, absolute=False),
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
