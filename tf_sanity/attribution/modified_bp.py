"""DeConvNet and RectGrad: gradient-like methods that only change the backward pass of ReLUs.

Two of the modified-backprop methods of "When Explanations Lie" (Sixt, Granz & Landgraf, ICML 2020;
settings in ``docs/REFERENCE.md`` section 3). Like guided backprop they change activations only: the
ReLU family gets the rule below, other element-wise activations follow the guided family's activation
policy (:mod:`tf_sanity.attribution.activations`), and every other layer passes its plain gradient, as
in captum's ``Deconvolution`` and zennit's ``deconvnet`` composite. So they run on residual and
depthwise networks (MobileNetV2, EfficientNet). A ReLU computed inside a custom layer's ``call`` (not
an activation layer, not a fused ``activation``) is not reached, as for guided backprop.

* DeConvNet (Zeiler & Fergus 2014): a ReLU's backward is ``relu(upstream)``, whatever the forward
  activation (:func:`tf_sanity.attribution.rules.deconvnet_relu`).
* RectGrad (Kim et al. 2019, "Why are saliency maps noisy?"): a ReLU with output ``a`` passes
  ``upstream`` only where the importance ``a * upstream`` exceeds ``tau``, the ``q``-th percentile of
  the importances of that layer for that image: ``1[a * g > tau] * g`` (Sixt et al.'s
  ``RectGradReverseReLULayer``, ``q = 98``). The percentile is taken per image over all units of the
  layer, with numpy's default linear interpolation; Sixt et al.'s CSC code took it over the whole
  batch of five tiled copies, which mixes the copies' thresholds.
"""

import functools

import tensorflow as tf

from tf_sanity.attribution import rules
from tf_sanity.attribution.backprop import Backprop
from tf_sanity.attribution.registry import backprop_method
from tf_sanity.attribution.composites import Composite
from tf_sanity.errors import SanityError


@functools.lru_cache(maxsize=None)
def deconvnet_composite():
    return Composite("deconvnet", relu=rules.deconvnet_relu)


@backprop_method("deconvnet", "DeConvNet", activations="guided", heatmap_reduction="abs_max")
def deconvnet():
    """DeConvNet (Zeiler & Fergus 2014): ReLUs pass ``relu(upstream)`` back, other layers the gradient."""
    return Backprop(deconvnet_composite())


def percentile_per_row(values, q):
    """The `q`-th percentile of each row of ``values [B, N]`` (numpy's ``linear`` method) -> ``[B]``."""
    n = tf.shape(values)[1]
    ordered = tf.sort(values, axis=1)
    position = tf.cast(n - 1, values.dtype) * (q / 100.0)
    below = tf.cast(tf.floor(position), tf.int32)
    above = tf.minimum(below + 1, n - 1)
    frac = position - tf.cast(below, values.dtype)
    low, high = ordered[:, below], ordered[:, above]
    return low + (high - low) * frac


def rectgrad_relu(q):
    """RectGrad's rule for percentile `q`: backward ``1[a * g > tau] * g`` with ``a = f(x)``, the unit's
    real output (the gate replaces the unit's local derivative, as it replaces ReLU's in Kim et al.)."""
    def backward(x, a, upstream, derivative):
        importance = a * upstream
        tau = percentile_per_row(tf.reshape(importance, [tf.shape(importance)[0], -1]), q)
        tau = tf.reshape(tau, [-1] + [1] * (len(importance.shape) - 1))
        return tf.where(importance > tau, upstream, tf.zeros_like(upstream))

    return rules.activation_rule(backward, "RectGrad")


@functools.lru_cache(maxsize=None)
def rectgrad_composite(q):
    return Composite(f"rectgrad_{q:g}", relu=rectgrad_relu(q))


@backprop_method("rectgrad", "RectGrad", activations="guided", heatmap_reduction="abs_max",
                 heatmap_percentile=100.0)
def rectgrad(*, percentile=98.0):
    """RectGrad (Kim et al. 2019): only units with importance above the percentile pass the gradient.

    Args:
      percentile: ``q`` in [0, 100]; the paper's code uses 98.
    """
    if not 0 <= percentile <= 100:
        raise SanityError(f"percentile must lie in [0, 100], got {percentile}")
    return Backprop(rectgrad_composite(float(percentile)))
