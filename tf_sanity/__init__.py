"""tf_sanity: sanity checks for saliency maps (Adebayo et al. 2018) for any Keras 3 model.

    import tf_sanity
    masks = tf_sanity.explain(model, images, "integrated_gradients", targets, steps=50)
    rows = tf_sanity.checks.model_randomization(model, images, targets, ["gradient", "guided_backprop"])

The package has three layers (see ``DEVELOPERS.md``):

* :mod:`tf_sanity.attribution`: saliency methods as compiled, batched backward passes (engine,
  methods and their registry, backward rules, canonizers, the modified-backprop families);
* :mod:`tf_sanity.checks`: the sanity checks (model and data randomization with default block groups,
  similarity metrics, statistics, cosine similarity convergence, sMPRT / eMPRT, controls and verdicts);
* :mod:`tf_sanity.models`: the papers' networks, their data sets, training and the model cache, and
  EfficientNet-Lite0, the ImageNet figures' offline stand-in.

Names are imported on first use, so ``import tf_sanity`` (and ``python -m tf_sanity --help``)
does not load TensorFlow. The module paths of version 0.1 (``tf_sanity.randomization``,
``tf_sanity.zoo``, ...) still work; see ``CHANGELOG.md``.
"""

import importlib

from tf_sanity import _compat
from tf_sanity.errors import SanityError

# name -> (module, attribute or None for the module itself)
_EXPORTS = {
    "explain": ("tf_sanity.attribution.registry", "explain"),
    "METHODS": ("tf_sanity.attribution", "METHODS"),
    "LABELS": ("tf_sanity.attribution", "LABELS"),
    "Method": ("tf_sanity.attribution.registry", "Method"),
    "smoothgrad": ("tf_sanity.attribution.noise_tunnel", "smoothgrad"),
    "vargrad": ("tf_sanity.attribution.noise_tunnel", "vargrad"),
    "attribution": ("tf_sanity.attribution", None),
    "checks": ("tf_sanity.checks", None),
    "models": ("tf_sanity.models", None),
    "postprocess": ("tf_sanity.postprocess", None),
    "visualize": ("tf_sanity.visualize", None),
    **{old: (new, None) for old, new in _compat.MOVED.items()},
}

__all__ = ["explain", "METHODS", "LABELS", "Method", "smoothgrad", "vargrad", "attribution", "checks", "models",
           "postprocess", "visualize", "SanityError"]


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'tf_sanity' has no attribute {name!r}")
    module, attribute = _EXPORTS[name]
    # Importing a module of tf_sanity.attribution runs the package first, which registers every method.
    value = importlib.import_module(module)
    if attribute is not None:
        value = getattr(value, attribute)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))


_compat.install()
