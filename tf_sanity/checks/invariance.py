"""Input invariance (Kindermans et al. 2019, "The (Un)reliability of Saliency Methods", Sec. 2-3) and
Integrated Gradients' completeness (Sundararajan et al. 2017, Prop. 1 and Sec. 6).

**Input invariance.** Shift every input by a constant, ``x' = x + c``, and absorb the shift in the first
layer's bias, ``b' = b - W c``: the shifted network ``f2`` computes ``f2(x + c) = f1(x)`` for every ``x``,
so the two networks are the same function of the data. A method is *input invariant* when it gives
``f2`` at ``x + c`` the attribution it gives ``f1`` at ``x``. The gradient is (its backward pass never sees
the bias); Gradient x Input is not (it multiplies by ``x + c``), nor is IG with a zero baseline (the path
starts at 0 in both input spaces). Kindermans et al. shift MNIST from [0, 1] to [-1, 0] (``c = -1``);
:func:`input_invariance` shifts by minus the inputs' range, i.e. the same on MNIST.

The bias absorbs the shift exactly only for a first layer that is ``Dense``, or a convolution without
zero padding (``padding="valid"``): a padded convolution sees zeros, not ``c``, beyond the border.
:func:`shifted_model` refuses the others with one line saying why.

**Completeness.** IG's attributions add up to ``F(x) - F(baseline)``; Sundararajan et al. (Sec. 6)
advise checking that they do "within 5 %" before trusting the result (else: more steps).
"""

import keras
import numpy as np

from tf_sanity.attribution import engine, graph, methods
from tf_sanity.errors import SanityError

CONV_TYPES = (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D)
# Relative difference of two float32 attributions taken as "the same" (float32 round-off through a network).
INVARIANCE_TOLERANCE = 1e-3
# Sundararajan et al. (2017), Sec. 6: the attributions should add up to the score difference within 5 %.
COMPLETENESS_TOLERANCE = 0.05


def first_layer(model):
    """The one layer with weights fed by the model's input through shape-only layers (Flatten), or None."""
    consumers = [layer for layer in graph.leaf_layers(model) if layer.weights and graph.is_first_layer(layer)]
    return consumers[0] if len(consumers) == 1 else None


def why_not_absorbed(layer):
    """Why the first layer cannot absorb a constant input shift in its bias, or ``""`` if it can."""
    if layer is None:
        return "the input does not feed one layer with weights directly (or only through Flatten / Reshape)"
    if not isinstance(layer, (keras.layers.Dense, *CONV_TYPES)):
        return f"the first layer {layer.name!r} is a {type(layer).__name__}, not Dense or a convolution"
    if not getattr(layer, "use_bias", False):
        return f"the first layer {layer.name!r} has no bias"
    if isinstance(layer, CONV_TYPES) and layer.padding != "valid":
        return (f"the first convolution {layer.name!r} pads with zeros (padding={layer.padding!r}), so no bias "
                "absorbs the shift at the borders")
    return ""


def shifted_model(model, shift):
    """A clone of `model` (weights copied once) whose first layer's bias absorbs the input shift `shift`.

    ``shifted_model(model, c)(x + c) == model(x)`` up to float round-off (module docstring).
    """
    layer = first_layer(model)
    reason = why_not_absorbed(layer)
    if reason:
        raise SanityError(f"input invariance needs a first Dense or unpadded convolution layer: {reason}")
    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    kernel = np.asarray(layer.kernel.numpy(), np.float64)
    copy = clone.get_layer(layer.name)
    bias = np.asarray(layer.bias.numpy(), np.float64) - float(shift) * kernel.reshape(-1, kernel.shape[-1]).sum(0)
    copy.bias.assign(bias.astype(np.float32))
    return clone


def input_invariance(model, images, targets, method_list, *, shift=None, settings=None):
    """Tidy rows of the input-invariance test for each method (module docstring).

    Args:
      model, images, targets: the trained model, its inputs, one class per input.
      method_list: registered names and/or :class:`Method` objects taking `model` and `images` directly.
      shift: the constant ``c``; default minus the inputs' range (``-1`` for images in [0, 1]).
      settings: per-method settings, dict method name -> dict.

    Returns:
      ``(rows, shift, output_gap)``: one row per method x input, ``metric="relative_difference"``:
      ``|A(f2, x + c) - A(f1, x)| / |A(f1, x)|`` (L2 norms); the largest ``|f2(x + c) - f1(x)|`` of the logits.
    """
    x = np.asarray(images, np.float32)
    c = -float(x.max() - x.min()) if shift is None else float(shift)
    c = c if c else -1.0
    shifted = shifted_model(model, c)
    moved = (x + c).astype(np.float32)
    scores = engine.scores_function
    gap = float(np.max(np.abs(np.asarray(scores(shifted)(moved)) - np.asarray(scores(model)(x)))))
    rows = []
    for m in method_list:
        meta = methods.get(m)
        own = dict((settings or {}).get(meta.name, {}))
        a = np.asarray(methods.explain(model, x, meta, targets, **own), np.float64).reshape(len(x), -1)
        b = np.asarray(methods.explain(shifted, moved, meta, targets, **own), np.float64).reshape(len(x), -1)
        norm = np.linalg.norm(a, axis=1)
        diff = np.linalg.norm(a - b, axis=1) / np.where(norm > 0, norm, 1.0)
        rows += [dict(method=meta.name, metric="relative_difference", image=i, value=float(v))
                 for i, v in enumerate(diff)]
    return rows, c, gap


def completeness_rows(model, images, targets, masks, baseline=None):
    """IG's completeness per input: the error ``sum(mask) - (F(x) - F(baseline))`` and it relative to the gap."""
    error = methods.completeness_error(model, images, masks, targets, baseline)
    sums = np.asarray(masks, np.float64).reshape(len(error), -1).sum(axis=1)
    gap = np.abs(sums - error)
    relative = np.abs(error) / np.where(gap > 0, gap, np.nan)
    return ([dict(metric="completeness_error", image=i, value=float(v)) for i, v in enumerate(error)]
            + [dict(metric="relative_completeness_error", image=i, value=float(v)) for i, v in enumerate(relative)])
