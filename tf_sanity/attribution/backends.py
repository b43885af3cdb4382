"""The backends of :func:`tf_sanity.explain`: which code computes a registered method's mask.

``"tf_sanity"`` (the default) is each method's own batched computation through
:mod:`tf_sanity.attribution.engine`; ``"pair"`` (:mod:`tf_sanity.attribution.pair_backend`) computes the
methods PAIR's ``saliency.core`` has classes for, image by image, as the original setup of Adebayo et al.
(2018) did. A backend has ``compute(method, model, x, targets, settings)`` and ``supported()``.
"""

import importlib

from tf_sanity.errors import unknown_name

DEFAULT_BACKEND = "tf_sanity"


class _EngineBackend:
    """The default backend: each method's own batched computation through :mod:`.engine`."""

    @staticmethod
    def compute(method, model, x, targets, settings):
        return method.compute(model, x, targets, **settings)

    @staticmethod
    def supported():
        from tf_sanity.attribution.registry import METHODS
        return list(METHODS)


# name -> the backend (``compute(method, model, x, targets, settings)`` and ``supported() -> [method names]``),
# or the path of the module that is it (imported on first use: the PAIR backend imports saliency).
BACKENDS = {DEFAULT_BACKEND: _EngineBackend, "pair": "tf_sanity.attribution.pair_backend"}


def get_backend(name):
    """Backend `name` of :data:`BACKENDS`: an object with ``compute`` and ``supported``."""
    if name not in BACKENDS:
        raise unknown_name("backend", name, BACKENDS)
    if isinstance(BACKENDS[name], str):
        BACKENDS[name] = importlib.import_module(BACKENDS[name])
    return BACKENDS[name]
