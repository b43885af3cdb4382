"""Renderings of saliency masks as in the papers' figures.

* :func:`grayscale`: absolute value, channel sum, 99th-percentile clip (Adebayo et al. 2018, Fig. 2).
* :func:`diverging_rgb`: positive and negative attribution in separate colours, each min-max
  scaled (Sundararajan & Taly 2018, Fig. 3; Adebayo et al. 2018, Fig. 6 "diverging").
* :func:`grid`: methods (rows) x randomization stages (columns), as Fig. 2 and 3.
* :func:`similarity_curves`: one similarity per method over the randomization stages, as Fig. 4 and 5.

Importing this module leaves matplotlib's backend alone, so plots show inline in notebooks.
"""

import matplotlib.pyplot as plt  # the backend is the user's (the CLI and experiments choose Agg)
import numpy as np

from tf_sanity import postprocess
from tf_sanity.checks import statistics

POSITIVE = np.array([1.0, 0.25, 0.1])   # red-orange
NEGATIVE = np.array([0.1, 0.4, 1.0])    # blue


def _layout(mask):
    """Every function here draws one mask, ``[H, W]`` or ``[H, W, C]``."""
    return "HWC" if np.ndim(mask) == 3 else "HW"


def grayscale(mask, percentile=99):
    """Absolute-value grayscale map in [0, 1] of one mask ``[H, W(, C)]``."""
    return postprocess.abs_grayscale(mask, percentile, layout=_layout(mask))


def diverging_rgb(mask):
    """RGB image ``[H, W, 3]``: positive part in red, negative part in blue, each scaled to [0, 1].

    Each part is min-max scaled on its own (Sundararajan & Taly's two-channel visualization), so
    a sign that carries little mass is still visible; a part that is zero everywhere stays black.
    """
    s = postprocess.channel_sum(mask, absolute=False, layout=_layout(mask))
    pos, neg = np.maximum(s, 0), np.maximum(-s, 0)
    scale = lambda p: p / p.max() if p.max() > 0 else p  # noqa: E731
    rgb = scale(pos)[..., None] * POSITIVE + scale(neg)[..., None] * NEGATIVE
    return np.clip(rgb, 0, 1)


def show(ax, mask, mode="abs", title=None):
    """Draws one mask on `ax`: ``mode`` is ``"abs"`` (grayscale) or ``"diverging"``."""
    if mode == "abs":
        ax.imshow(grayscale(mask), cmap="gray", vmin=0, vmax=1)
    elif mode == "diverging":
        ax.imshow(diverging_rgb(mask))
    else:
        raise ValueError(f"unknown mode {mode!r}; valid: abs, diverging")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=7)


def show_image(ax, image, title=None, fontsize=7):
    """Draws an input image ``[H, W, C]`` (any value range, min-max scaled; gray for one channel)."""
    img = np.asarray(image, dtype=np.float64)
    img = (img - img.min()) / max(img.max() - img.min(), 1e-12)
    ax.imshow(img.squeeze(), cmap="gray" if img.shape[-1] == 1 else None)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.spines[:].set_visible(False)
    if title:
        ax.set_title(title, fontsize=fontsize)


def grid(masks, row_labels, col_labels, mode="abs", image=None, cell=1.1, title=None):
    """Grid of masks, rows = methods, columns = randomization stages (Fig. 2 and 3).

    Args:
      masks: array-like ``[rows, cols, H, W(, C)]`` of raw masks.
      row_labels, col_labels: labels of the rows (method names) and columns (stages).
      mode: ``"abs"`` or ``"diverging"``, or one of them per column.
      image: optional input image ``[H, W, C]`` shown in an extra first column (values in [-1, 1]
        or [0, 1]).
    Returns:
      The matplotlib figure.
    """
    rows, cols = len(row_labels), len(col_labels)
    modes = [mode] * cols if isinstance(mode, str) else list(mode)
    extra = int(image is not None)
    fig, axes = plt.subplots(rows, cols + extra, figsize=(cell * (cols + extra) + 1.0, cell * rows + 0.4),
                             squeeze=False)
    for r in range(rows):
        if extra:
            show_image(axes[r, 0], image)
        for c in range(cols):
            show(axes[r, c + extra], masks[r][c], modes[c], col_labels[c] if r == 0 else None)
        # On the first column, so that the labels take the left margin, not the space between columns.
        axes[r, 0].set_ylabel(row_labels[r], fontsize=7, rotation=0, ha="right", va="center")
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


# How the controls of tf_sanity.checks.controls are drawn among the methods' curves: grey, dashed, beneath them.
CONTROL_STYLES = ({"color": "0.35", "ls": "--", "zorder": 1.5}, {"color": "0.6", "ls": ":", "zorder": 1.5})


def similarity_curves(ax, rows, methods, stages, title, labels=None, controls=()):
    """Mean +- 1 std over images of one similarity per method over the stages (Fig. 4 and 5).

    Args:
      ax: a matplotlib Axes.
      rows: tidy rows of one order and one similarity (keys ``method``, ``stage``, ``value``), as
        :func:`tf_sanity.checks.model_randomization` yields them.
      methods, stages: what to draw, in order; the curve starts at 1 for the trained model.
      title: the panel's title. labels: method -> legend label (default: the method names).
      controls: method names drawn in grey (:data:`CONTROL_STYLES`) as the scale's two ends, e.g.
        ``("edge_detector", "random_attribution")`` of :mod:`tf_sanity.checks.controls`.
    """
    stats = statistics.mean_std(rows, by=("method", "stage"))
    styles = [{"color": f"C{k % 10}", "ls": "-" if k < 10 else "--"} for k in range(len(methods))]
    styles += [CONTROL_STYLES[k % len(CONTROL_STYLES)] for k in range(len(controls))]
    for method, style in zip([*methods, *controls], styles):
        mean = np.array([1.0] + [stats.get((method, s), (np.nan,))[0] for s in stages])
        std = np.array([0.0] + [stats.get((method, s), (0, 0))[1] for s in stages])
        xs = np.arange(len(mean))
        ax.plot(xs, mean, marker="o", ms=3, lw=1, label=(labels or {}).get(method, method), **style)
        ax.fill_between(xs, mean - std, mean + std, color=style["color"], alpha=0.12)
    ax.set_xticks(range(len(stages) + 1), ["original"] + list(stages), rotation=45 if len(stages) < 8 else 90,
                  fontsize=7 if len(stages) < 8 else 6)
    ax.axhline(0, color="k", lw=0.5, ls=":")
    ax.set_title(title, fontsize=8)
