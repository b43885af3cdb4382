"""Attribution: saliency methods as compiled, batched backward passes.

* :mod:`.engine`: the one place methods touch TensorFlow (compiled, cached, batch-polymorphic
  functions; multi-device splitting);
* :mod:`.registry`: the one registry :data:`METHODS`, each :class:`Method` with its metadata;
  :mod:`.methods`: the methods of Adebayo et al. (2018); :mod:`.noise_tunnel`: SmoothGrad and VarGrad over any method;
* :mod:`.backends`, :mod:`.pair_backend`: which code computes a method (the engine, or PAIR's
  ``saliency.core`` classes with ``explain(..., backend="pair")``);
* :mod:`.graph`, :mod:`.operations`, :mod:`.canonizers`, :mod:`.activations`, :mod:`.composites`,
  :mod:`.rules`, :mod:`.merge_rules`, :mod:`.backprop`: backward rules and how they reach every layer,
  activation and raw operation;
* :mod:`.lrp`, :mod:`.deeplift`, :mod:`.modified_bp`, :mod:`.patterns`: the modified-backprop methods
  of "When Explanations Lie" (Sixt et al. 2020).
"""

from tf_sanity.attribution import engine, methods, noise_tunnel  # noqa: F401  (base methods, then SG / VG)
from tf_sanity.attribution import deeplift, lrp, modified_bp, patterns  # noqa: F401  (Sixt et al.'s methods)
from tf_sanity.attribution.registry import LABELS, METHODS, Method, explain, get  # noqa: F401
from tf_sanity.attribution.noise_tunnel import smoothgrad, vargrad  # noqa: F401
