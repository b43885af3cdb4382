"""Sanity Checks (Adebayo et al. 2018), appendix "Calibration for Similarity Metrics": the metrics' floor.

The paper reports, as ``(Spearman no abs, Spearman abs, HOG, SSIM)`` averaged over 50 ImageNet-sized
masks (299 x 299), the similarity of unrelated masks:

* two random masks: uniform in [-1, 1] ``(0.00016, -0.0015, 0.078, 0.00076)``; Gaussian rescaled to
  [-1, 1] ``(0.00018, 0.00043, -0.0013, 0.00023)``. These need no model;
* an explanation mask vs a Gaussian random mask on 50 ImageNet images with Inception v3: Gradient
  ``(-0.00049, 0.00032, -0.0016, 0.00027)``, IG ``(0.00084, 0.00059, 0.0048, 0.00018)``, Gradient x Input
  ``(0.00081, 0.00099, -0.0024, 0.00023)``. These rows run on Inception v3 when its real TF-slim
  checkpoint is given (config ``checkpoint`` or ``$TF_SANITY_INCEPTION_CKPT``; a random-weight one is
  never used), else on EfficientNet-Lite0 (224 x 224 masks), a trained stand-in that installs offline
  (config ``model``, :mod:`experiments.imagenet_inputs`); the claims name the network.

Our metrics are :mod:`tf_sanity.checks.metrics` with the original notebooks' normalizations, HOG and SSIM
without absolute value as the paper states for ImageNet, under the metric preset ``original_code``
(and ``paper`` in the paper preset). Masks are 299 x 299 x 3 (as ImageNet masks; the channel sum is
compared) and 299 x 299 x 1 (2-D maps, as the paper's HOG input "299 by 299 with values normalized to
[-1, +1]").

Agreement: ours agrees with a paper value within max(0.01, 3 standard errors of our mean) for the
values the paper gives near zero, and within max(0.02, 3 standard errors) for the one far from zero,
the HOG of two uniform masks (0.078). Spearman and HOG are checked per table row, SSIM across rows.
Two findings the claims record:

* the HOG floor of uniform masks is real and comes from the uniform distribution: finite
  differences of i.i.d. uniform noise are not isotropic, so every uniform mask has the same
  orientation histogram bias; Gaussian noise is isotropic (HOG ~ 0), and summing 3 uniform channels
  makes the noise nearly Gaussian (smaller floor);
* our SSIM (masks min-max scaled to [0, 1], as the original code's figures) has a floor of a few
  hundredths from its stabilizing constant; the paper's ~1e-4 values are those of SSIM on the raw,
  zero-centred masks (``ssim_raw``), whose luminance term is ~0.
"""

import dataclasses

import matplotlib.pyplot as plt
import numpy as np
import skimage.metrics

import tf_sanity
from experiments import common, imagenet_inputs
from experiments.common import Claim, mean_std
from tf_sanity.checks import metrics

NAME = "sc_calibration"
TITLE = "Sanity Checks appendix: calibration of the similarity metrics (random masks and masks vs random)"

TUPLE = ("spearman_signed", "spearman_abs", "hog", "ssim")   # the paper's order
PAPER = {
    "uniform": (0.00016, -0.0015, 0.078, 0.00076),
    "gaussian_rescaled": (0.00018, 0.00043, -0.0013, 0.00023),
    "gradient": (-0.00049, 0.00032, -0.0016, 0.00027),
    "integrated_gradients": (0.00084, 0.00059, 0.0048, 0.00018),
    "gradient_x_input": (0.00081, 0.00099, -0.0024, 0.00023),
}
ROW_NAMES = {"uniform": "two uniform [-1, 1] masks", "gaussian_rescaled": "two Gaussian masks rescaled to [-1, 1]",
             "gradient": "Gradient vs Gaussian random mask", "integrated_gradients": "IG vs Gaussian random mask",
             "gradient_x_input": "Gradient x Input vs Gaussian random mask"}
NEAR_ZERO = 0.01
BAND = 0.02


@dataclasses.dataclass(frozen=True)
class Config:
    """Settings of one run.

    Attributes:
      pairs: random mask pairs per row; size: mask side; channels: mask channel counts.
      kinds: :func:`tf_sanity.checks.metrics.random_mask` kinds compared pairwise.
      metric_presets: :data:`tf_sanity.checks.metrics.PRESETS` used for HOG and SSIM.
      methods: saliency methods compared with a Gaussian random mask on the trained network; () = none.
      images, subset: ImageNet test-bed images for those rows; ig_steps: IG steps.
      model: the trained ImageNet network (``"auto"``: Inception v3 with a checkpoint, else EfficientNet-Lite0).
      checkpoint: the TF-slim inception_v3.ckpt; '' = ``$TF_SANITY_INCEPTION_CKPT``.
    """

    pairs: int = 10
    size: int = 299
    channels: tuple = (3, 1)
    kinds: tuple = ("uniform", "gaussian_rescaled")
    metric_presets: tuple = ("original_code",)
    methods: tuple = ("gradient", "integrated_gradients", "gradient_x_input")
    images: int = 4
    subset: str = "val_imagenette224/"
    ig_steps: int = 20
    model: str = "auto"
    checkpoint: str = ""
    seed: int = 0
    data_dir: str = ""
    batch_size: int = 16


PRESETS = {"quick": Config(),
           "paper": Config(pairs=50, metric_presets=("original_code", "paper"), images=50, ig_steps=50)}


def _with_model(config):
    return bool(config.methods)


resolve = imagenet_inputs.resolve


def variant(config):
    return config.model if _with_model(config) else ""


def requires(config):
    if _with_model(config):
        imagenet_inputs.network(config).requires(config)
        imagenet_inputs.folder(config)


def inputs(config):
    return imagenet_inputs.network_fingerprint(config) if _with_model(config) else ""


def units(config):
    out = [f"{kind}/{c}ch" for kind in config.kinds for c in config.channels]
    return out + (list(config.methods) if _with_model(config) else [])


def _ssim_raw(a, b, preset):
    """skimage SSIM of the raw masks (no normalization, no [0, 1] shift), with the preset's settings."""
    return np.array([skimage.metrics.structural_similarity(x, y, channel_axis=-1, **metrics.ssim_settings(preset))
                     for x, y in zip(a, b)])


def similarities(a, b, config, **key):
    """Rows of every calibration metric for mask batches `a`, `b` ``[N, H, W, C]``."""
    values = {("spearman_signed", ""): metrics.spearman(a, b, absolute=False),
              ("spearman_abs", ""): metrics.spearman(a, b, absolute=True)}
    for preset in config.metric_presets:
        values[("hog", preset)] = metrics.hog_similarity(a, b, absolute=False, preset=preset)
        values[("ssim", preset)] = metrics.ssim(a, b, absolute=False, preset=preset)
    values[("ssim_raw", "paper")] = _ssim_raw(a, b, "paper")   # the paper's window 5, on the raw masks
    return [dict(key, pair=i, metric=metric, preset=preset, value=float(v))
            for (metric, preset), vals in values.items() for i, v in enumerate(vals)]


def compute(config, unit, context):
    if "/" in unit:
        kind, ch = unit.split("/")
        shape = (config.size, config.size, int(ch.removesuffix("ch")))
        a = np.stack([metrics.random_mask(shape, kind, seed=[config.seed, i, 0]) for i in range(config.pairs)])
        b = np.stack([metrics.random_mask(shape, kind, seed=[config.seed, i, 1]) for i in range(config.pairs)])
        return similarities(a, b, config, row=kind, channels=shape[-1], size=config.size)
    if "model" not in context:
        net = imagenet_inputs.network(config)
        _, x, _, model, logits = imagenet_inputs.load_network(config, config.subset, config.images, size=net.size)
        context["model"] = (model, x, logits.argmax(-1))   # the original code explained the predicted class
    model, x, targets = context["model"]
    masks = tf_sanity.explain(model, x, unit, targets, **common.method_settings(unit, config))
    noise = np.stack([metrics.random_mask(x.shape[1:], "gaussian", seed=[config.seed, i, 2]) for i in range(len(x))])
    return similarities(masks, noise, config, row=unit, channels=x.shape[-1], size=x.shape[1],
                        ig_steps=config.ig_steps)


def _table(rows, config):
    """``{(row, channels, metric, preset): (mean, std, n)}``."""
    return mean_std(rows, by=("row", "channels", "metric", "preset"))


def _ours(stats, row, channels, preset):
    return [stats.get((row, channels, m, "" if m.startswith("spearman") else preset)) for m in TUPLE]


def _agrees(ours, paper):
    """Agreement within max(0.01 near zero / 0.02 otherwise, 3 standard errors of our mean)."""
    mean, std, n = ours
    band = max(NEAR_ZERO if abs(paper) < NEAR_ZERO else BAND, 3 * std / np.sqrt(n))
    return abs(mean - paper) < band, f"+-{band:.3f}"


def plot(rows, config):
    stats = _table(rows, config)
    preset = config.metric_presets[0]
    cells = sorted({(r["row"], r["channels"]) for r in rows}, key=lambda rc: (list(PAPER).index(rc[0]), -rc[1]))
    fig, axes = plt.subplots(1, len(TUPLE) + 1, figsize=(3.0 * (len(TUPLE) + 1), 0.35 * len(cells) + 1.6), sharey=True)
    ys = np.arange(len(cells))
    for ax, metric in zip(axes, TUPLE + ("ssim_raw",)):
        key = "" if metric.startswith("spearman") else "paper" if metric == "ssim_raw" else preset
        ours = [stats.get((r, c, metric, key), (np.nan, 0, 1)) for r, c in cells]
        ax.barh(ys + 0.2, [o[0] for o in ours], height=0.4, xerr=[o[1] for o in ours], color="C0", label="ours")
        if metric in TUPLE:
            ax.barh(ys - 0.2, [PAPER[r][TUPLE.index(metric)] for r, _ in cells], height=0.4, color="C1", label="paper")
        ax.axvline(0, color="k", lw=0.5)
        ax.set_title(metric + ("" if metric.startswith("spearman") else f" ({key})"), fontsize=8)
    axes[0].set_yticks(ys, [f"{ROW_NAMES[r]} ({c} ch)" for r, c in cells], fontsize=7)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"calibration: similarity of unrelated masks, mean +- 1 std over {config.pairs} pairs "
                 f"(ssim_raw: SSIM of the raw masks)", fontsize=9)
    fig.tight_layout()
    return {"": fig}


def claims(rows, config):
    stats = _table(rows, config)
    preset = config.metric_presets[0]
    out = []
    for row, paper in PAPER.items():
        cells = sorted({r["channels"] for r in rows if r["row"] == row}, reverse=True)
        if not cells and row in config.methods:
            out.append(Claim("Sanity Checks, appendix (calibration)", ROW_NAMES[row], "not computed", None,
                             str(paper), "needs a trained ImageNet network"))
        on = f" (on {imagenet_inputs.network(config).title})" if row in config.methods else ""
        size = next((r["size"] for r in rows if r["row"] == row), config.size)
        for channels in cells:
            ours = _ours(stats, row, channels, preset)[:3]
            checks = [_agrees(o, p) for o, p in zip(ours, paper)]
            failed = [m for m, (ok, _) in zip(TUPLE, checks) if not ok]
            out.append(Claim(
                "Sanity Checks, appendix (calibration)" + on, f"{ROW_NAMES[row]} ({channels} channel(s), {size}^2): "
                "(Spearman no abs, Spearman abs, HOG)",
                "(" + ", ".join(f"{o[0]:.5f}" for o in ours) + f") +- std ({', '.join(f'{o[1]:.4f}' for o in ours)}) "
                f"over {ours[0][2]} masks; HOG preset {preset}"
                + (f"; disagree: {', '.join(failed)}" if failed else ""),
                not failed, str(paper[:3]), "; ".join(f"{m}: {t}" for m, (_, t) in zip(TUPLE, checks))))
            for other in config.metric_presets[1:]:  # HOG under the other metric settings (Spearman has none)
                hog = stats[(row, channels, "hog", other)]
                ok, band = _agrees(hog, paper[2])
                out.append(Claim(
                    "Sanity Checks, appendix (calibration)" + on, f"{ROW_NAMES[row]} ({channels} channel(s), "
                    f"{size}^2): HOG under the '{other}' metric settings",
                    f"{hog[0]:.5f} +- std {hog[1]:.4f} over {hog[2]} masks", ok, str(paper[2]), f"hog: {band}"))
    for preset in config.metric_presets:
        ssim = {(r, c): stats[(r, c, "ssim", preset)] for (r, c, m, p) in stats if m == "ssim" and p == preset}
        if ssim:
            checks = {k: _agrees(v, PAPER[k[0]][3]) for k, v in ssim.items()}
            out.append(Claim(
                "Sanity Checks, appendix (calibration)", "SSIM of unrelated masks is ~0 (the fourth entry of each "
                f"tuple), '{preset}' metric settings",
                ", ".join(f"{r} {c}ch {v[0]:.4f} (paper {PAPER[r][3]})" for (r, c), v in ssim.items())
                + "; masks min-max scaled to [0, 1]", all(ok for ok, _ in checks.values()),
                "0.00018 .. 0.00076", f"+-max({NEAR_ZERO}, 3 SE)"))
    raw = {(r, c): stats[(r, c, "ssim_raw", "paper")][0] for (r, c, m, p) in stats if m == "ssim_raw" and p == "paper"}
    if raw:
        out.append(Claim(
            "Sanity Checks, appendix (calibration; our note)", "the paper's SSIM values (~1e-4) are those of SSIM on "
            "the raw zero-centred masks (window 5); SSIM of masks min-max scaled to [0, 1] has a floor of a few "
            "hundredths",
            "SSIM of raw masks, paper preset: " + ", ".join(f"{r} {c}ch {v:.5f}" for (r, c), v in raw.items())
            + "; min-max scaled (original_code): " + ", ".join(
                f"{r} {c}ch {stats[(r, c, 'ssim', 'original_code')][0]:.3f}" for (r, c) in raw
                if (r, c, "ssim", "original_code") in stats),
            all(abs(v) < NEAR_ZERO for v in raw.values()), "", f"|raw SSIM| < {NEAR_ZERO}"))
    return out
