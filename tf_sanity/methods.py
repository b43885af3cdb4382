"""Saliency methods of Adebayo et al. (2018), Sec. 2, batched over images, steps and samples.

Every method explains the score (logit) of an explicit target class per image and returns a raw,
signed mask shaped like the input; absolute values and normalizations live in
:mod:`tf_sanity.postprocess`. Methods are registered by name in :data:`METHODS`; display labels
as in the papers' figures are in :data:`LABELS`. :func:`smoothgrad` and :func:`vargrad` wrap any
method (Smilkov et al. 2017; Adebayo et al. 2018 workshop paper), giving Gradient-SG, IG-VG, ...

All work goes through :mod:`tf_sanity.engine`: images are expanded into rows (integration steps,
noise samples), fed to one compiled gradient function in chunks of ``batch_size`` rows, and reduced.
"""

import dataclasses
import functools
import inspect
from typing import Callable

import keras
import numpy as np
import skimage.transform

from tf_sanity import engine
from tf_sanity import rules
from tf_sanity.errors import SanityError, unknown_name

METHODS = {}
LABELS = {}

GUIDED_BACKPROP = rules.Composite("guided_backprop", relu=rules.guided_relu)


@dataclasses.dataclass(frozen=True)
class Method:
    """A saliency method: ``method(model, images, targets, **settings) -> mask``.

    Attributes:
      name: registry name, e.g. ``"integrated_gradients_sg"``.
      label: the papers' display label, e.g. ``"IG-SG"``.
      compute: ``compute(model, x, targets, **settings)`` on checked float32 ``x [B, ...]`` and
        int32 ``targets [B]``; returns ``[B, ...]``.
      settings: the method's settings and their defaults.
    """

    name: str
    label: str
    compute: Callable
    settings: dict

    def __call__(self, model, images, targets, **settings):
        x, t, single = check_inputs(model, images, targets)
        unknown = set(settings) - set(self.settings)
        if unknown:
            raise SanityError(f"{self.name} has no setting {', '.join(sorted(unknown))}; "
                              f"valid: {', '.join(sorted(self.settings))}")
        mask = self.compute(model, x, t, **{**self.settings, **settings})
        return mask[0] if single else mask


def _settings_of(fn):
    return {p.name: p.default for p in inspect.signature(fn).parameters.values()
            if p.kind == p.KEYWORD_ONLY}


def register(method):
    """Adds `method` to :data:`METHODS` and :data:`LABELS`; returns it."""
    METHODS[method.name] = method
    LABELS[method.name] = method.label
    return method


def _base(name, label):
    def decorate(compute):
        return register(Method(name, label, compute, _settings_of(compute)))
    return decorate


def check_inputs(model, images, targets):
    """Validates `images` and `targets` against `model`; one clear error for each problem.

    Returns:
      ``(x, targets, single)``: float32 images with a batch axis, int32 targets, and whether a
      single image without batch axis was given.
    """
    if not isinstance(model, keras.Model):
        raise SanityError(f"expected a keras.Model, got {type(model).__name__}")
    try:
        expected = tuple(model.input_shape[1:])
        n_classes = model.output_shape[-1]
    except (AttributeError, ValueError):
        raise SanityError("the model is not built: give it a keras.Input or call it once on data") from None
    if len(model.inputs) != 1 or not isinstance(n_classes, (int, type(None))):
        raise SanityError("tf_sanity explains single-input models with one [batch, classes] output; "
                          "wrap yours in a keras.Model with one input and the logits as output")
    try:
        x = np.asarray(images, dtype=np.float32)
    except (TypeError, ValueError):
        raise SanityError(f"images must be a numeric array, got {type(images).__name__}") from None
    single = x.ndim == len(expected)
    if single:
        x = x[None]
    if x.ndim != len(expected) + 1 or any(e is not None and e != s for e, s in zip(expected, x.shape[1:])):
        raise SanityError(f"images have shape {np.shape(images)} but the model takes "
                          f"(batch, {', '.join(str(e) for e in expected)}); resize or reshape them")
    if not np.isfinite(x).all():
        raise SanityError("images contain NaN or inf values; replace them before explaining")
    t = np.asarray(targets)
    if t.ndim == 0:
        t = np.full(len(x), t)
    if t.shape != (len(x),) or not np.issubdtype(t.dtype, np.integer):
        raise SanityError(f"targets must be one integer class per image ({len(x)}), got shape {t.shape} "
                          f"and dtype {t.dtype}")
    if n_classes is not None and ((t < 0) | (t >= n_classes)).any():
        raise SanityError(f"targets must lie in [0, {n_classes}) for this model; got {t.min()}..{t.max()}")
    return x, t.astype(np.int32), single


def _gradients(model, x, targets, composite=None, batch_size=engine.DEFAULT_BATCH_SIZE):
    fn = engine.gradient_function(model, composite)
    return engine.map_batches(fn, batch_size, x, targets)


@_base("gradient", "Gradient")
def gradient(model, x, targets, *, batch_size=engine.DEFAULT_BATCH_SIZE):
    """Gradient of the target score w.r.t. the input (Simonyan et al. 2013)."""
    return _gradients(model, x, targets, batch_size=batch_size)


@_base("gradient_x_input", "Gradient x Input")
def gradient_x_input(model, x, targets, *, batch_size=engine.DEFAULT_BATCH_SIZE):
    """Element-wise product of the gradient and the input (Shrikumar et al. 2016)."""
    return _gradients(model, x, targets, batch_size=batch_size) * x


@_base("guided_backprop", "Guided Backprop")
def guided_backprop(model, x, targets, *, batch_size=engine.DEFAULT_BATCH_SIZE):
    """Guided backpropagation: every ReLU's gradient is replaced by :func:`rules.guided_relu`.

    Reaches standalone ReLU layers and ReLUs fused into Conv2D/Dense; the model is left unchanged.
    """
    return _gradients(model, x, targets, GUIDED_BACKPROP, batch_size)


def _baseline_like(x, baseline):
    if baseline is None:
        return np.zeros_like(x)
    b = np.asarray(baseline, dtype=np.float32)
    try:
        return np.broadcast_to(b, x.shape).copy()
    except ValueError:
        raise SanityError(f"baseline of shape {b.shape} does not fit images of shape {x.shape}") from None


INTEGRATION_RULES = {
    # PAIR saliency's rule (>= 2019): both ends of the path, divided by the number of steps.
    "pair": lambda steps: np.linspace(0.0, 1.0, steps),
    # Midpoint Riemann sum: more accurate for the same number of steps.
    "midpoint": lambda steps: (np.arange(steps) + 0.5) / steps,
}


@_base("integrated_gradients", "Integrated Gradients")
def integrated_gradients(model, x, targets, *, baseline=None, steps=50, integration="pair",
                         batch_size=engine.DEFAULT_BATCH_SIZE):
    """Integrated Gradients (Sundararajan et al. 2017), ``(x - baseline) * mean_k grad(path_k)``.

    With ``integration="pair"`` this is PAIR saliency's formula, the path points
    ``linspace(0, 1, steps)`` (both ends included) and the sum divided by ``steps``. For a linear
    model ``F(x) = w.x`` it gives exactly ``(x - baseline) * w``; the ``/ 2`` in the Sanity Checks
    paper's linear-model derivation (Sec. 5) is a typo. :func:`completeness_error` reports how far
    ``sum(mask)`` is from ``F(x) - F(baseline)``.

    Args:
      baseline: None (all zeros, as the original code), a scalar, or an array broadcastable to x.
      steps: number of points on the straight path from baseline to x.
      integration: name in :data:`INTEGRATION_RULES`.
    """
    if integration not in INTEGRATION_RULES:
        raise unknown_name("integration rule", integration, INTEGRATION_RULES)
    if steps < 1:
        raise SanityError(f"steps must be >= 1, got {steps}")
    alphas = INTEGRATION_RULES[integration](steps).astype(np.float32)
    base = _baseline_like(x, baseline)
    diff = x - base
    fn = engine.gradient_function(model)
    expand = (-1,) + (1,) * (x.ndim - 1)

    def make_rows(start, stop):
        rows = np.arange(start, stop)
        image, step = rows // steps, rows % steps
        return base[image] + alphas[step].reshape(expand) * diff[image], targets[image]

    total = np.zeros_like(x)
    for start, stop, grads in engine.map_rows(fn, len(x) * steps, make_rows, batch_size):
        _segment_add(total, np.arange(start, stop) // steps, grads)
    return total * diff / steps


def _segment_add(total, index, values):
    """``total[index] += values`` for sorted `index`, summing rows that share an index."""
    starts = np.flatnonzero(np.r_[True, index[1:] != index[:-1]])
    total[index[starts]] += np.add.reduceat(values, starts, axis=0)


def completeness_error(model, images, masks, targets, baseline=None):
    """IG's completeness error per image: ``sum(mask) - (F(x) - F(baseline))``.

    Report it (captum's convergence delta) rather than asserting float equality.
    """
    x, t, _ = check_inputs(model, images, targets)
    base = _baseline_like(x, baseline)
    scores = engine.scores_function(model)
    gap = [np.take_along_axis(np.asarray(scores(v)), t[:, None], axis=1)[:, 0] for v in (x, base)]
    sums = np.asarray(masks, dtype=np.float64).reshape(len(x), -1).sum(axis=1)
    return sums - (gap[0] - gap[1])


def last_conv_layer(model):
    """Name of the last convolution layer of `model` (GradCAM's default layer)."""
    convs = [layer.name for layer in model.layers
             if isinstance(layer, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D,
                                   keras.layers.SeparableConv2D))]
    if not convs:
        raise SanityError("gradcam needs a convolution layer and this model has none; "
                          "pass layer=<name of a layer with a [batch, h, w, channels] output>")
    return convs[-1]


@_base("gradcam", "GradCAM")
def gradcam(model, x, targets, *, layer=None, batch_size=engine.DEFAULT_BATCH_SIZE):
    """Grad-CAM (Selvaraju et al. 2017) as PAIR saliency computes it.

    Channel weights are the spatial mean of the target score's gradient at `layer`; the weighted
    sum of the activations goes through ReLU, is divided by its maximum (an all-zero map stays
    zero, never NaN), and is resized bilinearly to the input with skimage's ``resize`` as PAIR does;
    the map is copied to every input channel.

    Args:
      layer: layer name (Inception v3: ``"Mixed_7c"``); default: the last convolution layer.
    """
    layer = layer or last_conv_layer(model)
    fn = engine.gradient_function(model, layer=layer)
    acts, grads = engine.map_batches(fn, batch_size, x, targets)
    if acts.ndim != 4:
        raise SanityError(f"gradcam needs a layer with [batch, h, w, channels] output; "
                          f"{layer!r} has shape {acts.shape[1:]}")
    weights = grads.mean(axis=(1, 2), keepdims=True)
    cam = np.maximum((weights * acts).sum(axis=-1), 0)
    peak = cam.max(axis=(1, 2), keepdims=True)
    cam = np.divide(cam, peak, out=np.zeros_like(cam), where=peak > 0)
    cam = np.stack([skimage.transform.resize(c, x.shape[1:3]) for c in cam])  # PAIR's bilinear resize
    return np.broadcast_to(cam[..., None], x.shape).astype(np.float32)


@_base("guided_gradcam", "Guided GradCAM")
def guided_gradcam(model, x, targets, *, layer=None, batch_size=engine.DEFAULT_BATCH_SIZE):
    """Guided Grad-CAM: guided backprop times GradCAM, element-wise (Selvaraju et al. 2017)."""
    return (guided_backprop.compute(model, x, targets, batch_size=batch_size)
            * gradcam.compute(model, x, targets, layer=layer, batch_size=batch_size))


BASE_METHODS = tuple(METHODS)


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
    return Method(f"{method.name}_{suffix}", f"{_SHORT.get(method.name, method.label)}-{label_suffix}",
                  compute, {**method.settings, **own})


_SHORT = {"gradient": "Gradient", "gradient_x_input": "Gradient x Input",
          "integrated_gradients": "IG", "guided_backprop": "GBP", "gradcam": "GradCAM",
          "guided_gradcam": "Guided GradCAM"}


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
    register(smoothgrad(METHODS[_name]))
    register(vargrad(METHODS[_name]))


def get(method):
    """The registered :class:`Method` named `method` (a Method is returned unchanged)."""
    if isinstance(method, Method):
        return method
    if method not in METHODS:
        raise unknown_name("method", method, METHODS)
    return METHODS[method]


def explain(model, images, method, targets, **settings):
    """Explains `images` for `targets` with `method`; returns a numpy array shaped like `images`.

    Args:
      model: a built single-input keras.Model whose output is the class scores (logits).
      images: one image or a batch, shaped like the model's input.
      method: a name in :data:`METHODS` (or a :class:`Method`).
      targets: the class to explain, one integer per image (or one for all).
      **settings: the method's settings, e.g. ``steps=50`` for IG or ``n=50`` for SmoothGrad.
    """
    return get(method)(model, images, targets, **settings)
