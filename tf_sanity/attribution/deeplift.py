"""DeepLIFT with the rescale rule (Shrikumar et al. 2017), the method "When Explanations Lie" finds
faithful to the later layers (Sixt, Granz & Landgraf, ICML 2020).

DeepLIFT propagates *multipliers* ``m = d(contribution) / d(delta x)`` of the target score relative
to a reference input: linear layers (Dense, Conv, depthwise and separable conv, average pooling,
BatchNorm at inference, ``Rescaling`` / ``Normalization``, residual ``Add``) pass them like the
gradient (Shrikumar et al. 2017, Sec. 3.3, linear rule); a ``Multiply`` gate splits the product's
difference exactly (:mod:`tf_sanity.attribution.merge_rules`); each ReLU multiplies by ``(relu(x) - relu(x_ref)) / (x - x_ref)`` (the rescale
rule, Shrikumar et al. 2017, Sec. 3.5.1), or by the gradient ``relu'(x)`` where
``|x - x_ref| <= 1e-7`` (the deeplift package's near-zero threshold). The attribution is
``m_input * (x - reference)``. Max pooling passes the gradient (the deeplift package's default
``MaxPoolDeepLiftMode.gradient``).

Summation-to-delta: without max pooling, ``sum(attribution) = F(x) - F(reference)`` up to float
error (``tests/test_deeplift.py``); max pooling's gradient makes it approximate.

**The reference pass.** The rescale rule needs the reference's pre-activations at every ReLU.
The model runs once on the batch ``[x; reference]`` (2n rows) inside one compiled function
(:func:`tf_sanity.attribution.engine.paired_function`); the output is seeded with ``[one-hot; 0]``, and
:func:`rescale_relu`'s backward splits its input in halves, computes the multiplier from the
two, and passes it to the first half (the reference half gets zero). The rule is only meaningful
under that pairing, so it is not exposed through :mod:`tf_sanity.attribution.engine`'s unpaired functions.
"""

import functools

import tensorflow as tf

from tf_sanity.attribution.backprop import Backprop
from tf_sanity.attribution.merge_rules import PRODUCT_DIFFERENCE
from tf_sanity.attribution.registry import backprop_method
from tf_sanity.attribution.rules import activation_rule, strict_composite

NEAR_ZERO = 1e-7


def _rescale_backward(x, y, upstream, derivative):
    """DeepLIFT's rescale rule for an element-wise ``f`` on a paired batch ``[x; reference]``.

    For the first half ``upstream * (f(x) - f(x_ref)) / (x - x_ref)`` (``f'(x)`` where
    ``|x - x_ref| <= 1e-7``), zero for the reference half.
    """
    x_in, x_ref = tf.split(x, 2)
    y_in, y_ref = tf.split(y, 2)
    up_in, _ = tf.split(upstream, 2)
    dx = x_in - x_ref
    far = tf.abs(dx) > NEAR_ZERO
    ratio = (y_in - y_ref) / tf.where(far, dx, tf.ones_like(dx))
    multiplier = tf.where(far, ratio, derivative(x_in))
    return tf.concat([up_in * multiplier, tf.zeros_like(up_in)], 0)


rescale_relu = activation_rule(_rescale_backward, "rescale")


@functools.lru_cache(maxsize=None)
def rescale_composite():
    """Rescale ReLUs, the product rule at gates, plain gradients elsewhere (linear layers, sums);
    unsupported layers raise a SanityError."""
    return strict_composite("deeplift_rescale", relu=rescale_relu, gate=PRODUCT_DIFFERENCE,
                            rule_name="DeepLIFT rescale")


@backprop_method("deeplift", "DeepLIFT Resc.", signal="contribution", multiplies_by_input=True,
                 baseline_setting="reference", activations="deeplift")
def deeplift(*, reference=0.0):
    """DeepLIFT rescale: ``multipliers * (x - reference)``; sums to ``F(x) - F(reference)``.

    Args:
      reference: the reference input: a scalar (default 0, an all-zero image) or an array
        broadcastable to the images (one reference for all, or one per image).
    """
    return Backprop(rescale_composite(), reference=reference)
