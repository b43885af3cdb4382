"""The saliency methods of Adebayo et al. (2018), Sec. 2: Gradient, Gradient x Input, Guided Backprop,
Integrated Gradients, GradCAM and Guided GradCAM, registered in :mod:`.registry` (whose names this
module re-exports: ``tf_sanity.methods.explain``, ``METHODS``, ``check_inputs``, ... keep working).

All work goes through :mod:`tf_sanity.attribution.engine`: images are expanded into rows
(integration steps, noise samples), fed to one compiled gradient function in chunks of
``batch_size`` rows, and reduced.
"""

import functools

import keras
import numpy as np
import skimage.transform

from tf_sanity.attribution import activations as activation_policies, composites, engine, rules
from tf_sanity.attribution.backprop import Backprop
from tf_sanity.attribution.registry import (LABELS, METHODS, SIGNALS, Method, _settings_of,  # noqa: F401
                                            backprop_method, check_inputs, explain, get, make_backprop, register)
from tf_sanity.errors import SanityError, unknown_name


@functools.lru_cache(maxsize=None)
def guided_composite(activations="gradient"):
    """Guided backprop's rules: the guided rule at ReLU-family units, `activations` policy elsewhere."""
    return composites.Composite("guided_backprop", relu=rules.guided_relu,
                                activations=activation_policies.check_policy("guided", activations),
                                default_activations=activation_policies.FAMILIES["guided"][0])


GUIDED_BACKPROP = guided_composite()

def _base(name, label, **metadata):
    def decorate(compute):
        return register(Method(name, label, compute, _settings_of(compute), **metadata))
    return decorate


def _gradients(model, x, targets, composite=None, batch_size=engine.DEFAULT_BATCH_SIZE):
    fn = engine.gradient_function(model, composite)
    return engine.map_batches(fn, batch_size, x, targets)


@_base("gradient", "Gradient", heatmap_reduction="abs_max", make_backprop=lambda: Backprop(None))
def gradient(model, x, targets, *, batch_size=engine.DEFAULT_BATCH_SIZE):
    """Gradient of the target score w.r.t. the input (Simonyan et al. 2013)."""
    return _gradients(model, x, targets, batch_size=batch_size)


@_base("gradient_x_input", "Gradient x Input", multiplies_by_input=True)
def gradient_x_input(model, x, targets, *, batch_size=engine.DEFAULT_BATCH_SIZE):
    """Element-wise product of the gradient and the input (Shrikumar et al. 2016)."""
    return _gradients(model, x, targets, batch_size=batch_size) * x


@_base("guided_backprop", "Guided Backprop", short_label="GBP", heatmap_reduction="abs_max",
       make_backprop=lambda *, activations="gradient": Backprop(guided_composite(activations)))
def guided_backprop(model, x, targets, *, activations="gradient", batch_size=engine.DEFAULT_BATCH_SIZE):
    """Guided backpropagation: every ReLU-family unit's gradient is replaced by :func:`rules.guided_relu`.

    Reaches activation layers and activations fused into Conv2D/Dense; the model is left unchanged.

    Args:
      activations: ``"gradient"`` (other element-wise activations keep their plain gradient, as in
        captum and zennit) or ``"strict"`` (they raise); :mod:`tf_sanity.attribution.activations`.
    """
    return _gradients(model, x, targets, guided_composite(activations), batch_size)


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


@_base("integrated_gradients", "Integrated Gradients", short_label="IG", multiplies_by_input=True,
       baseline_setting="baseline")
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


@_base("gradcam", "GradCAM", signal="map", needs_spatial_layer=True)
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


@_base("guided_gradcam", "Guided GradCAM", needs_spatial_layer=True, passes=2)
def guided_gradcam(model, x, targets, *, layer=None, activations="gradient", batch_size=engine.DEFAULT_BATCH_SIZE):
    """Guided Grad-CAM: guided backprop times GradCAM, element-wise (Selvaraju et al. 2017).

    Args:
      layer: GradCAM's layer (default: the last convolution layer).
      activations: guided backprop's activation policy (``"gradient"`` or ``"strict"``).
    """
    return (guided_backprop.compute(model, x, targets, activations=activations, batch_size=batch_size)
            * gradcam.compute(model, x, targets, layer=layer, batch_size=batch_size))
