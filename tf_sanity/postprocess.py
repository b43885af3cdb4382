"""Turning raw signed masks into the 2-D maps the papers compare and show.

Methods return raw masks; every normalization is an explicit call here. The functions take one
mask or a batch and return 2-D maps: ``[H, W]`` for one mask, ``[B, H, W]`` for a batch.

Shapes follow the rule of :mod:`tf_sanity.checks.metrics`, for images: a 4-D array is a batch
``[B, H, W, C]`` (channels last); a 2-D or 3-D array is read only as ``layout=`` says, since
``[X, Y, Z]`` may be one mask ``[H, W, C]`` or a batch of 2-D maps ``[B, H, W]``: ``"HW"``,
``"HWC"`` (one mask), ``"BHW"``, ``"BHWC"`` (a batch). Any other shape, or a layout that does not
match, raises a one-line :class:`~tf_sanity.errors.SanityError`. Feature vectors (``"BF"``) are
only taken by the metrics. :func:`minmax01` takes maps that are already 2-D (no channel axis):
``[H, W]`` or ``[B, H, W]``.

The original notebooks of Adebayo et al. (2018) (``docs/REFERENCE.md``, "Similarity"):

* 3-channel (ImageNet) masks: :func:`abs_grayscale` and :func:`diverging`, PAIR saliency's
  ``VisualizeImageGrayscale`` / ``VisualizeImageDiverging`` (99th percentile clipping);
* 1-channel (MNIST) masks: :func:`max_abs` ``|m| / max|m|`` and :func:`max_signed` ``m / max|m|``.
"""

import numpy as np

from tf_sanity.errors import SanityError, unknown_name

# What each layout holds; a 4-D array is "BHWC" without being told, every other shape needs one.
LAYOUTS = {
    "HW": "one 2-D map [H, W]",
    "HWC": "one mask [H, W, C]",
    "BHW": "a batch of 2-D maps [B, H, W]",
    "BHWC": "a batch of masks [B, H, W, C]",
    "BF": "a batch of feature vectors [B, F]",
}
IMAGE_LAYOUTS = ("HW", "HWC", "BHW", "BHWC")
SINGLE_LAYOUTS = ("HW", "HWC")


def numeric(mask, name="mask"):
    """`mask` as a float64 array, or a SanityError if it is not numeric."""
    try:
        return np.asarray(mask, dtype=np.float64)
    except (TypeError, ValueError):
        raise SanityError(f"{name} must be a numeric array, got {type(mask).__name__}") from None


def resolve_layout(shape, layout=None, valid=IMAGE_LAYOUTS, name="mask"):
    """The layout of an array of `shape`: `layout` checked against it, or ``"BHWC"`` for a 4-D array."""
    shape, ndim = tuple(shape), len(shape)
    if layout is not None:
        if layout not in valid:
            raise unknown_name("layout", layout, valid)
        if len(layout) != ndim:
            raise SanityError(f"layout {layout!r} ({LAYOUTS[layout]}) needs a {len(layout)}-D array, "
                              f"but {name} has shape {shape}")
    elif ndim == 4 and "BHWC" in valid:
        layout = "BHWC"
    else:
        options = [v for v in valid if len(v) == ndim]
        if options:
            raise SanityError(f"{name} has shape {shape}: pass "
                              + " or ".join(f"layout={v!r} if it is {LAYOUTS[v]}" for v in options)
                              + " (only a 4-D array is read without a layout, as [B, H, W, C])")
        hint = "; for one feature vector pass v[None] with layout='BF'" if ndim == 1 and "BF" in valid else ""
        raise SanityError(f"{name} has shape {shape}; expected " + ", ".join(LAYOUTS[v] for v in valid)
                          + f" (pass layout= for all but [B, H, W, C]){hint}")
    if 0 in shape[1:] or (layout in SINGLE_LAYOUTS and 0 in shape):
        raise SanityError(f"{name} has shape {shape}: masks must not be empty")
    return layout


def as_batch(mask, layout=None, *, name="mask", features=False):
    """Returns ``(batch [B, H, W, C], was_single)`` of one mask or a batch (see the module docstring).

    2-D maps get a channel axis; with ``features=True`` a ``"BF"`` batch of vectors becomes
    ``[B, 1, F, 1]``, 1-channel masks one pixel high.
    """
    m = numeric(mask, name)
    valid = IMAGE_LAYOUTS + (("BF",) if features else ())
    layout = resolve_layout(m.shape, layout, valid, name)
    if layout == "HW":
        return m[None, ..., None], True
    if layout == "HWC":
        return m[None], True
    if layout == "BHW":
        return m[..., None], False
    if layout == "BF":
        return m[:, None, :, None], False
    return m, False


def _unbatch(maps, single):
    return maps[0] if single else maps


def abs_grayscale(mask, percentile=99, *, layout=None):
    """PAIR's ``VisualizeImageGrayscale``: ``clip((s - min s) / (p99(s) - min s), 0, 1)``, s = sum |m|."""
    batch, single = as_batch(mask, layout)
    s = np.abs(batch).sum(axis=-1)
    flat = s.reshape(len(s), -1)
    vmax = np.percentile(flat, percentile, axis=1).reshape(-1, 1, 1)
    vmin = flat.min(axis=1).reshape(-1, 1, 1)
    span = np.where(vmax > vmin, vmax - vmin, 1.0)
    return _unbatch(np.clip((s - vmin) / span, 0, 1), single)


def diverging(mask, percentile=99, *, layout=None):
    """PAIR's ``VisualizeImageDiverging``: ``clip((s + span) / (2 span), -1, 1)``, span = |p99(s)|, s = sum m."""
    batch, single = as_batch(mask, layout)
    s = batch.sum(axis=-1)
    span = np.abs(np.percentile(s.reshape(len(s), -1), percentile, axis=1)).reshape(-1, 1, 1)
    span = np.where(span > 0, span, 1.0)
    return _unbatch(np.clip((s + span) / (2 * span), -1, 1), single)


def _max_scaled(s):
    peak = np.abs(s).reshape(len(s), -1).max(axis=1).reshape(-1, 1, 1)
    return s / np.where(peak > 0, peak, 1.0)


def max_abs(mask, *, layout=None):
    """``|m| / max |m|`` of the channel sum (the original MNIST notebooks, absolute mode)."""
    batch, single = as_batch(mask, layout)
    return _unbatch(_max_scaled(np.abs(batch.sum(axis=-1))), single)


def max_signed(mask, *, layout=None):
    """``m / max |m|`` of the channel sum (the original MNIST notebooks, signed mode)."""
    batch, single = as_batch(mask, layout)
    return _unbatch(_max_scaled(batch.sum(axis=-1)), single)


def original_code(mask, absolute=True, *, layout=None):
    """The original notebooks' normalization: PAIR visualizations for 3 channels, max for 1."""
    batch, single = as_batch(mask, layout)
    if batch.shape[-1] == 1:
        out = max_abs(batch) if absolute else max_signed(batch)
    else:
        out = abs_grayscale(batch) if absolute else diverging(batch)
    return _unbatch(out, single)


def minmax01(maps):
    """Scales each 2-D map to [0, 1] (a constant map becomes 0): ``[H, W]`` or ``[B, H, W]``, no channel axis."""
    m = numeric(maps, "maps")
    if m.ndim not in (2, 3):
        raise SanityError(f"minmax01 takes 2-D maps [H, W] or [B, H, W] (reduce the channels first), "
                          f"got shape {m.shape}")
    single = m.ndim == 2
    m = m[None] if single else m
    flat = m.reshape(len(m), -1)
    lo = flat.min(axis=1).reshape(-1, 1, 1)
    span = (flat.max(axis=1).reshape(-1, 1, 1) - lo)
    out = (m - lo) / np.where(span > 0, span, 1.0)
    return out[0] if single else out


def channel_sum(mask, absolute=True, *, layout=None):
    """Sum over channels of ``|m|`` (absolute) or ``m``, with no scaling."""
    batch, single = as_batch(mask, layout)
    return _unbatch((np.abs(batch) if absolute else batch).sum(axis=-1), single)


# How masks are normalized before a similarity is computed.
NORMALIZATIONS = {"original_code": original_code, "none": channel_sum}
