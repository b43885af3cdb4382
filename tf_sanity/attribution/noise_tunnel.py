"""SmoothGrad and VarGrad: wrappers over any method (captum's ``NoiseTunnel``).

SmoothGrad (Smilkov et al. 2017) averages a method's masks over noisy copies of the input;
VarGrad (Adebayo et al. 2018, workshop paper) takes their variance. Each registers as a variant
of the base methods of :mod:`tf_sanity.attribution.methods` (``gradient_sg``, ``integrated_gradients_vg``,
...), labelled as in the papers' figures (Gradient-SG, IG-VG, ...).
"""

import dataclasses
import functools

import numpy as np

from tf_sanity.attribution import engine, methods
from tf_sanity.errors import SanityError

# The methods of Adebayo et al. (2018), Sec. 2, that get SmoothGrad and VarGrad variants.
BASE_METHODS = ("gradient", "gradient_x_input", "guided_backprop", "integrated_gradients", "gradcam",
                "guided_gradcam")


def _noise_tunnel(method, reduce, model, x, targets, *, n, stdev_spread, seed, magnitude, **inner):
    """Explains `n` noisy copies of each image with `method` and reduces them (mean or variance).

    Noise for image i is ``N(0, sigma_i^2)`` with ``sigma_i = stdev_spread * (max x_i - min x_i)``
    (PAIR's ``stdev_spread``), drawn from ``np.random.RandomState(seed)`` image by image, so one image
    with a given seed sees exactly the noise of PAIR's ``GetSmoothedMask`` after ``np.random.seed(seed)``.
    """
    if n < 1:
        raise SanityError(f"n (noise samples) must be >= 1, got {n}")
    rng = np.random.RandomState(seed)
    per_group = max(1, -(-inner.get("batch_size", engine.DEFAULT_BATCH_SIZE) // n))
    out = np.empty_like(x)
    for start in range(0, len(x), per_group):
        group = x[start:start + per_group]
        sigma = stdev_spread * np.ptp(group.reshape(len(group), -1), axis=1)
        noise = np.stack([rng.normal(0, s, (n,) + group.shape[1:]) for s in sigma]).astype(np.float32)
        noisy = (group[:, None] + noise).reshape((-1,) + group.shape[1:])
        masks = method.compute(model, noisy, np.repeat(targets[start:start + per_group], n), **inner)
        masks = masks.reshape(noise.shape)
        if reduce == "variance":
            out[start:start + per_group] = masks.var(axis=1)
        else:
            out[start:start + per_group] = (masks ** 2 if magnitude else masks).mean(axis=1)
    return out


def _wrap(method, reduce, suffix, label_suffix):
    own = {"n": 50, "stdev_spread": 0.15, "seed": 0, "magnitude": False}
    compute = functools.partial(_noise_tunnel, method, reduce)
    return dataclasses.replace(
        method, name=f"{method.name}_{suffix}", label=f"{method.short_label}-{label_suffix}",
        short_label=f"{method.short_label}-{label_suffix}", compute=compute, settings={**method.settings, **own},
        make_backprop=None, base=method.name, noise_tunnel=suffix)


def smoothgrad(method):
    """SmoothGrad of any method: the mean over `n` noisy copies (Smilkov et al. 2017).

    Settings added: ``n`` (samples, default 50), ``stdev_spread`` (sigma as a fraction of each
    input's max - min, default 0.15), ``seed``, ``magnitude`` (mean of squares, PAIR's default;
    False = plain mean as the Sanity Checks code).
    """
    return _wrap(method, "mean", "sg", "SG")


def vargrad(method):
    """VarGrad of any method: the variance over `n` noisy copies (Adebayo et al. 2018, workshop)."""
    return _wrap(method, "variance", "vg", "VG")


for _name in BASE_METHODS:
    methods.register(smoothgrad(methods.METHODS[_name]))
    methods.register(vargrad(methods.METHODS[_name]))


