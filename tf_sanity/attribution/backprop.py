"""A method as one backward pass: the backward rules, the signal at the output, and a reference.

The modified-backprop methods of "When Explanations Lie" (Sixt, Granz & Landgraf, ICML 2020) -- LRP
and DeepTaylor (:mod:`~tf_sanity.attribution.lrp`), DeepLIFT (:mod:`~tf_sanity.attribution.deeplift`),
DeConvNet and RectGrad (:mod:`~tf_sanity.attribution.modified_bp`), PatternNet and PatternAttribution
(:mod:`~tf_sanity.attribution.patterns`) -- and the gradient and guided backprop are each a
:class:`Backprop`: a composite of backward rules, a seed at the output (one-hot for gradient-like
signals, the target score for relevance) and, for DeepLIFT, a reference input. They register with
:func:`tf_sanity.attribution.methods.backprop_method`; cosine similarity convergence
(:mod:`tf_sanity.checks.csc`) propagates the same ``Backprop`` from any layer.
"""

import dataclasses
from typing import Callable, Optional

import numpy as np

from tf_sanity.attribution import engine
from tf_sanity.attribution.composites import Composite
from tf_sanity.errors import SanityError


@dataclasses.dataclass(frozen=True, eq=False)
class Backprop:
    """How a method propagates a signal from the output to the input.

    Attributes:
      composite: the backward rules (None: the plain gradient).
      seed: ``seed(scores, targets)``, the signal at the output (one-hot, or the target score for
        relevance methods).
      reference: None for methods without a reference; else DeepLIFT's reference input (an array
        broadcastable to the images, or a scalar): the forward pass runs on ``[x; reference]`` and
        the result is ``multipliers * (x - reference)``.
    """

    composite: Optional[Composite]
    seed: Callable = engine.onehot_seed
    reference: object = None

    @property
    def paired(self):
        return self.reference is not None

    def reference_like(self, x):
        """The reference as an array shaped like `x` (float32)."""
        try:
            return np.broadcast_to(np.asarray(self.reference, np.float32), x.shape).copy()
        except ValueError:
            raise SanityError(f"reference of shape {np.shape(self.reference)} does not fit images of "
                              f"shape {x.shape}") from None

    def attribute(self, model, x, targets, batch_size=engine.DEFAULT_BATCH_SIZE):
        """The method's mask for images `x` and int32 `targets`.

        Raises:
          SanityError: the backward signal overflowed float32 (e.g. PatternNet through a deep network
            whose patterns amplify it), rather than returning NaN or inf.
        """
        if not self.paired:
            fn = engine.gradient_function(model, self.composite, seed=self.seed)
            mask = engine.map_batches(fn, batch_size, x, targets)
        else:
            ref = self.reference_like(x)
            fn = engine.paired_function(model, self.composite, self.seed)
            mask = engine.map_batches(fn, max(1, batch_size // 2), x, ref, targets) * (x - ref)
        if not np.isfinite(mask).all():
            name = self.composite.name if self.composite else "gradient"
            raise SanityError(f"{name}: the propagated signal is not finite (float32 overflow) for "
                              f"{np.sum(~np.isfinite(mask).reshape(len(mask), -1).all(axis=1))} of {len(mask)} "
                              f"images; this method's rules amplify the signal too much on this model")
        return mask
