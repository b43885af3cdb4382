"""Smooth and efficient MPRT (Hedström et al. 2023, "Sanity Checks Revisited: An Exploration to
Repair the Model Parameter Randomisation Test"), as tidy rows on top of
:func:`tf_sanity.checks.model_randomization`.

Both follow Quantus' reference implementations (``quantus/metrics/randomisation/smooth_mprt.py`` and
``efficient_mprt.py``, Quantus 0.6; ``docs/REFERENCE.md`` section 4):

* **sMPRT** (``SmoothMPRT.explain_smooth_batch_numpy``): each explanation is the mean over
  ``N`` explanations, of ``N - 1`` noisy copies ``x + eps``, ``eps ~ N(0, sigma^2)`` with
  ``sigma = noise * (max x - min x)`` per input, and of the clean input itself (Quantus' last
  sample has zero noise, "so that N = 1 is the plain method"). That noise is SmoothGrad's
  (``stdev_spread`` of :func:`tf_sanity.smoothgrad`, plain mean), so :func:`smoothed` reuses it
  for the ``N - 1`` noisy copies. The similarity is Quantus' default, ``correlation_spearman`` of
  the absolute, flattened masks (its ``normalise_by_average_second_moment_estimate`` divides by a
  positive scalar, which no rank changes), computed at every stage of the cascade (Quantus'
  ``skip_layers=False``). Unlike Quantus, which draws the noise from the global NumPy state, the
  noise is seeded and the same for every model state, so the states differ only by the model.
* **eMPRT** (``EfficientMPRT``): the relative rise in explanation complexity from the trained to
  the fully randomized model, ``(H(e_rand) - H(e)) / H(e)`` per input, where ``H`` is
  ``discrete_entropy``: the Shannon entropy (natural log) of the histogram of the raw mask's
  values in ``n_bins`` equal bins over its own range (default 100; Quantus' ``abs=False``,
  ``normalise=False``). A rise means the randomized model's explanation is less structured.

Quantus' default order for both is ``"bottom_up"`` (its authors advise against top down), kept here.
"""

import dataclasses

import numpy as np
import scipy.stats

from tf_sanity.attribution import methods as methods_lib
from tf_sanity.attribution.noise_tunnel import smoothgrad
from tf_sanity.checks import metrics
from tf_sanity.checks.randomization_test import model_randomization, stage_groups
from tf_sanity.errors import SanityError

SMPRT = "smprt"
EMPRT = "emprt"


def spearman_abs_flat(a, b, compared=None):
    """Quantus' sMPRT similarity: Spearman of ``|a|`` and ``|b|`` over every entry of each mask."""
    a, b = np.abs(np.asarray(a)), np.abs(np.asarray(b))
    return metrics.rank_correlation(a.reshape(len(a), -1), b.reshape(len(b), -1))


def smoothed(method, n=50, noise=0.1, seed=0):
    """`method` averaged over ``n - 1`` noisy copies of each input and the input itself (Quantus' sMPRT).

    Args:
      method: a name in :data:`tf_sanity.METHODS` or a :class:`~tf_sanity.attribution.methods.Method`.
      n: explanations averaged (Quantus' ``nr_samples``; 50 in the paper's ImageNet runs).
      noise: sigma as a fraction of each input's max - min (Quantus' ``noise_magnitude``).
      seed: seeds the noise, the same at every call (every model state).

    Returns:
      A :class:`Method` with `method`'s name and settings, so rows and settings keep its name.
    """
    if n < 1:
        raise SanityError(f"sMPRT needs n >= 1 noisy samples, got {n}")
    base = methods_lib.get(method)
    tunnel = smoothgrad(base)

    def compute(model, x, targets, **inner):
        clean = base.compute(model, x, targets, **inner)
        if n == 1:
            return clean
        noisy = tunnel.compute(model, x, targets, n=n - 1, stdev_spread=noise, seed=seed, magnitude=False, **inner)
        return ((n - 1) * noisy + clean) / n

    return dataclasses.replace(base, compute=compute, make_backprop=None)


def smooth_mprt(model, images, targets, methods, *, n=50, noise=0.1, noise_seed=0, order="bottom_up",
                similarities=None, **kwargs):
    """Smooth MPRT (Hedström et al. 2023, Sec. 4.1): the MPRT on explanations denoised by averaging.

    Args:
      model, images, targets: as :func:`tf_sanity.checks.model_randomization`.
      methods: names and/or :class:`Method` objects (e.g. the controls); each is :func:`smoothed`.
      n, noise, noise_seed: as :func:`smoothed`.
      order: ``"bottom_up"`` (Quantus' default), ``"top_down"`` or ``"independent"``.
      similarities: default ``{"spearman_abs_flat": ...}`` (Quantus'); else as model_randomization.
      **kwargs: ``groups, policy, seed, settings, stages, originals, on_masks`` of model_randomization
        (``originals`` must then be smoothed masks too).

    Yields:
      model_randomization's rows with ``test="smprt"`` and ``n``.
    """
    items = [methods] if isinstance(methods, (str, methods_lib.Method)) else list(methods)
    smooth = [smoothed(m, n, noise, noise_seed) for m in items]
    sims = {"spearman_abs_flat": spearman_abs_flat} if similarities is None else similarities
    for row in model_randomization(model, images, targets, smooth, order=order, similarities=sims, **kwargs):
        yield dict(row, test=SMPRT, n=n)


def discrete_entropy(masks, n_bins=100):
    """Quantus' ``discrete_entropy`` of each mask: the entropy (nats) of its values' histogram.

    Args:
      masks: ``[B, ...]``; each mask's values are binned into `n_bins` equal bins over its own range
        (``np.histogram``; a constant mask falls in one bin: entropy 0).
      n_bins: number of bins.

    Returns:
      ``[B]`` float64.
    """
    m = np.asarray(masks, np.float64)
    return np.array([scipy.stats.entropy(np.histogram(row, bins=n_bins)[0]) for row in m.reshape(len(m), -1)])


def complexity_rise(original, randomized, n_bins=100):
    """eMPRT's score per mask: ``(H(randomized) - H(original)) / H(original)``, NaN where ``H(original) = 0``."""
    h0, h1 = discrete_entropy(original, n_bins), discrete_entropy(randomized, n_bins)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(h0 > 0, (h1 - h0) / np.where(h0 > 0, h0, 1.0), np.nan)


def efficient_mprt(model, images, targets, methods, *, n_bins=100, order="bottom_up", groups=None, **kwargs):
    """Efficient MPRT (Hedström et al. 2023, Sec. 4.2): complexity rise at the fully randomized model.

    Only two model states are explained: the trained one and the one with every group randomized
    (the last stage of a cascade; both cascading orders reach the same fully randomized model, as
    each group's values derive from (seed, group name)).

    Args:
      model, images, targets, methods, groups: as :func:`tf_sanity.checks.model_randomization`.
      n_bins: histogram bins of :func:`discrete_entropy` (Quantus' default 100).
      order: ``"bottom_up"`` (Quantus' default) or ``"top_down"``.
      **kwargs: ``policy, seed, settings, originals, on_masks`` of model_randomization.

    Yields:
      One row per image x method x metric, metrics ``"emprt"`` (the score), ``"entropy_original"``
      and ``"entropy_randomized"``, with model_randomization's keys (stage = the last group) and
      ``test="emprt"``, ``n_bins``.
    """
    if order == "independent":
        raise SanityError("eMPRT compares with the fully randomized model; use order 'bottom_up' or 'top_down'")
    last = stage_groups(model, order, groups)[-1][0]
    sims = {
        "emprt": lambda a, b, c: complexity_rise(a, b, n_bins),
        "entropy_original": lambda a, b, c: discrete_entropy(a, n_bins),
        "entropy_randomized": lambda a, b, c: discrete_entropy(b, n_bins),
    }
    for row in model_randomization(model, images, targets, methods, order=order, similarities=sims, groups=groups,
                                   stages=[last], **kwargs):
        yield dict(row, test=EMPRT, n_bins=n_bins)
