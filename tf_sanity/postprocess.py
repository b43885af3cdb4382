"""Turning raw signed masks into the 2-D maps the papers compare and show.

Methods return raw masks; every normalization is an explicit call here. A *batch* is a 4-D array
``[B, H, W, C]``; one mask is ``[H, W, C]`` or ``[H, W]``. All functions accept either and return
2-D maps (``[H, W]`` or ``[B, H, W]``).

The original notebooks of Adebayo et al. (2018) (``../shared/REFERENCE.md``, "Similarity"):

* 3-channel (ImageNet) masks: :func:`abs_grayscale` and :func:`diverging`, PAIR saliency's
  ``VisualizeImageGrayscale`` / ``VisualizeImageDiverging`` (99th percentile clipping);
* 1-channel (MNIST) masks: :func:`max_abs` ``|m| / max|m|`` and :func:`max_signed` ``m / max|m|``.
"""

import numpy as np

from tf_sanity.errors import SanityError


def as_batch(mask):
    """Returns ``(batch [B, H, W, C], was_single)``; 2-D maps get a channel axis."""
    m = np.asarray(mask, dtype=np.float64)
    if m.ndim == 2:
        return m[None, ..., None], True
    if m.ndim == 3:
        return m[None], True
    if m.ndim == 4:
        return m, False
    raise SanityError(f"expected a mask [H, W(, C)] or a batch [B, H, W, C], got shape {m.shape}")


def _unbatch(maps, single):
    return maps[0] if single else maps


def abs_grayscale(mask, percentile=99):
    """PAIR's ``VisualizeImageGrayscale``: ``clip((s - min s) / (p99(s) - min s), 0, 1)``, s = sum |m|."""
    batch, single = as_batch(mask)
    s = np.abs(batch).sum(axis=-1)
    flat = s.reshape(len(s), -1)
    vmax = np.percentile(flat, percentile, axis=1).reshape(-1, 1, 1)
    vmin = flat.min(axis=1).reshape(-1, 1, 1)
    span = np.where(vmax > vmin, vmax - vmin, 1.0)
    return _unbatch(np.clip((s - vmin) / span, 0, 1), single)


def diverging(mask, percentile=99):
    """PAIR's ``VisualizeImageDiverging``: ``clip((s + span) / (2 span), -1, 1)``, span = |p99(s)|, s = sum m."""
    batch, single = as_batch(mask)
    s = batch.sum(axis=-1)
    span = np.abs(np.percentile(s.reshape(len(s), -1), percentile, axis=1)).reshape(-1, 1, 1)
    span = np.where(span > 0, span, 1.0)
    return _unbatch(np.clip((s + span) / (2 * span), -1, 1), single)


def _max_scaled(s):
    peak = np.abs(s).reshape(len(s), -1).max(axis=1).reshape(-1, 1, 1)
    return s / np.where(peak > 0, peak, 1.0)


def max_abs(mask):
    """``|m| / max |m|`` of the channel sum (the original MNIST notebooks, absolute mode)."""
    batch, single = as_batch(mask)
    return _unbatch(_max_scaled(np.abs(batch.sum(axis=-1))), single)


def max_signed(mask):
    """``m / max |m|`` of the channel sum (the original MNIST notebooks, signed mode)."""
    batch, single = as_batch(mask)
    return _unbatch(_max_scaled(batch.sum(axis=-1)), single)


def original_code(mask, absolute=True):
    """The original notebooks' normalization: PAIR visualizations for 3 channels, max for 1."""
    batch, single = as_batch(mask)
    if batch.shape[-1] == 1:
        out = max_abs(batch) if absolute else max_signed(batch)
    else:
        out = abs_grayscale(batch) if absolute else diverging(batch)
    return _unbatch(out, single)


def minmax01(maps):
    """Scales each 2-D map to [0, 1] (a constant map becomes 0)."""
    m = np.asarray(maps, dtype=np.float64)
    single = m.ndim == 2
    m = m[None] if single else m
    flat = m.reshape(len(m), -1)
    lo = flat.min(axis=1).reshape(-1, 1, 1)
    span = (flat.max(axis=1).reshape(-1, 1, 1) - lo)
    out = (m - lo) / np.where(span > 0, span, 1.0)
    return out[0] if single else out


def channel_sum(mask, absolute=True):
    """Sum over channels of ``|m|`` (absolute) or ``m``, with no scaling."""
    batch, single = as_batch(mask)
    return _unbatch((np.abs(batch) if absolute else batch).sum(axis=-1), single)


# How masks are normalized before a similarity is computed.
NORMALIZATIONS = {"original_code": original_code, "none": channel_sum}
