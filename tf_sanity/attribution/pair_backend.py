"""``backend="pair"``: the methods computed through PAIR's ``saliency.core``, as the original setup did.

Adebayo et al. (2018) computed Gradient, Guided Backprop, Integrated Gradients, GradCAM and
SmoothGrad with PAIR's ``saliency`` library (``saliency==0.2.1``; ``docs/REFERENCE.md``). Its
``saliency.core`` is PAIR's framework-neutral API: a class such as ``IntegratedGradients`` explains
one image with ``GetMask(x, call_model_function, call_model_args, ...)`` and asks the
``call_model_function`` for what it needs by key (``INPUT_OUTPUT_GRADIENTS``, or
``CONVOLUTION_LAYER_VALUES`` and ``CONVOLUTION_OUTPUT_GRADIENTS`` for GradCAM);
``GetSmoothedMask`` draws the SmoothGrad noise with ``np.random`` and averages ``GetMask``.

The authors' TF1 code used the library's TF1 classes and got Guided Backprop from a graph gradient
override (``gradient_override_map`` on ``Relu``). TF2's ``GradientTape`` does not run such
overrides, so the TF2 form used here is a ``call_model_function`` whose ``INPUT_OUTPUT_GRADIENTS``
are the gradient under our backward rules: every compiled function comes from
:func:`tf_sanity.attribution.engine.gradient_function` (with the method's composite), and PAIR's
classes do the rest, one image at a time. GradCAM's layer gradient is always the plain gradient.

:data:`PAIR` states which PAIR class computes each method; SmoothGrad variants of those methods use
that class's ``GetSmoothedMask`` after ``np.random.seed(seed)`` (the global state is restored
afterwards). Methods PAIR has no counterpart of (VarGrad, the relevance methods seeded with the
target score, DeepLIFT's paired reference pass, PatternNet) raise a one-line
:class:`~tf_sanity.errors.SanityError`; nothing falls back to the default backend.
"""

import contextlib
import dataclasses
from typing import Optional

import numpy as np
import saliency.core as saliency

from tf_sanity.attribution import engine, methods
from tf_sanity.errors import SanityError


@dataclasses.dataclass(frozen=True)
class Recipe:
    """How ``backend="pair"`` computes a method.

    Attributes:
      pair_class: the ``saliency.core`` class: ``"GradientSaliency"``, ``"IntegratedGradients"`` or
        ``"GradCam"``.
      rules: the registered method whose backward rules (its ``Backprop``'s composite) the input
        gradient runs under; None for the plain gradient.
      times: ``"input"`` (the mask times the input) or ``"gradcam"`` (times PAIR's GradCam mask).
    """

    pair_class: str
    rules: Optional[str] = None
    times: Optional[str] = None

    def describe(self):
        """The recipe in words, e.g. ``GradientSaliency (guided_backprop rules) x GradCam``."""
        text = self.pair_class + (f" ({self.rules} rules)" if self.rules else "")
        return text + {None: "", "input": " x input", "gradcam": " x GradCam"}[self.times]


PAIR = {
    "gradient": Recipe("GradientSaliency"),
    "gradient_x_input": Recipe("GradientSaliency", times="input"),
    "guided_backprop": Recipe("GradientSaliency", rules="guided_backprop"),
    "integrated_gradients": Recipe("IntegratedGradients"),
    "gradcam": Recipe("GradCam"),
    "guided_gradcam": Recipe("GradientSaliency", rules="guided_backprop", times="gradcam"),
    "deconvnet": Recipe("GradientSaliency", rules="deconvnet"),
    "rectgrad": Recipe("GradientSaliency", rules="rectgrad"),
}

_NO_COUNTERPART = {
    "relevance": "it seeds the output with the target score and propagates relevance; PAIR's classes start "
                 "from the gradient",
    "contribution": "DeepLIFT's paired pass on [x; reference] has no PAIR counterpart",
}


def supported():
    """Names of the registered methods ``backend="pair"`` computes."""
    return [name for name, m in methods.METHODS.items() if _recipe_name(m) in PAIR]


def _recipe_name(method):
    """The :data:`PAIR` key of `method`: its own name, or its base's for a SmoothGrad variant."""
    if method.noise_tunnel == "vg":
        return None
    return method.base if method.noise_tunnel == "sg" else method.name


def describe(method):
    """Which PAIR class computes registered `method` under ``backend="pair"``, or None."""
    method = methods.get(method)
    recipe = PAIR.get(_recipe_name(method))
    if recipe is None:
        return None
    return f"{recipe.describe()}, GetSmoothedMask" if method.noise_tunnel == "sg" else recipe.describe()


def _unsupported(method):
    if method.noise_tunnel == "vg":
        why = "VarGrad (the variance over noisy copies) is not in PAIR's saliency"
    else:
        why = _NO_COUNTERPART.get(method.signal, "no saliency.core class computes it")
    return SanityError(f"backend='pair' cannot compute {method.name}: {why}; use backend='tf_sanity', or one of "
                       f"the methods backend='pair' supports: {', '.join(supported())}")


class _GradCam(saliency.GradCam):
    """PAIR's GradCam (resized, divided by its maximum), copied to every input channel (PAIR copies to 3)."""

    def GetMask(self, x_value, call_model_function, call_model_args=None):  # noqa: N802 (PAIR's API)
        cam = super().GetMask(x_value, call_model_function, call_model_args, should_resize=True, three_dims=False)
        return np.broadcast_to(cam[..., None], x_value.shape).astype(np.float32)


class _Times(saliency.CoreSaliency):
    """A PAIR mask times the input (Gradient x Input) or times PAIR's GradCam (Guided GradCAM).

    As a ``CoreSaliency``, its inherited ``GetSmoothedMask`` averages the product over noisy inputs,
    as SmoothGrad of the product does.
    """

    def __init__(self, core, times):
        self.core, self.times = core, times

    def GetMask(self, x_value, call_model_function, call_model_args=None, **kwargs):  # noqa: N802
        mask = self.core.GetMask(x_value, call_model_function, call_model_args, **kwargs)
        if self.times == "input":
            return mask * x_value
        return mask * _GradCam().GetMask(x_value, call_model_function, call_model_args)


def call_model_function(model, composite=None, layer=None):
    """PAIR's ``call_model_function`` for `model`, with ``call_model_args={"target": class}``.

    ``INPUT_OUTPUT_GRADIENTS`` are the target score's gradient w.r.t. the input under `composite`'s
    backward rules (None: the plain gradient); ``CONVOLUTION_LAYER_VALUES`` and
    ``CONVOLUTION_OUTPUT_GRADIENTS`` are the activations of `layer` and the plain gradient there.
    Both come from :func:`tf_sanity.attribution.engine.gradient_function`.
    """
    def call(x_batch, call_model_args=None, expected_keys=None):
        x = np.asarray(x_batch, np.float32)
        targets = np.full(len(x), call_model_args["target"], np.int32)
        keys = set(expected_keys)
        out = {}
        if saliency.INPUT_OUTPUT_GRADIENTS in keys:
            out[saliency.INPUT_OUTPUT_GRADIENTS] = np.asarray(engine.gradient_function(model, composite)(x, targets))
        conv_keys = {saliency.CONVOLUTION_LAYER_VALUES, saliency.CONVOLUTION_OUTPUT_GRADIENTS}
        if keys & conv_keys:
            acts, grads = (np.asarray(a) for a in engine.gradient_function(model, layer=layer)(x, targets))
            if acts.ndim != 4:
                raise SanityError(f"gradcam needs a layer with [batch, h, w, channels] output; "
                                  f"{layer!r} has shape {acts.shape[1:]}")
            out.update({saliency.CONVOLUTION_LAYER_VALUES: acts, saliency.CONVOLUTION_OUTPUT_GRADIENTS: grads})
        if keys - conv_keys - {saliency.INPUT_OUTPUT_GRADIENTS}:
            raise SanityError(f"PAIR asked for {', '.join(sorted(keys))}; this call_model_function gives "
                              "INPUT_OUTPUT_GRADIENTS and the convolution layer's values and gradients")
        return out

    return call


def _composite(recipe, settings):
    """The backward rules of ``recipe.rules`` with its settings from `settings`; None for the gradient."""
    if recipe.rules is None:
        return None
    own = methods.get(recipe.rules).make_backprop
    backprop = methods.make_backprop(recipe.rules, **{k: v for k, v in settings.items()
                                                      if k in methods._settings_of(own)})
    if backprop.paired or backprop.seed is not engine.onehot_seed:  # our table's invariant, not user input
        raise SanityError(f"{recipe.rules} is not a one-hot seeded single backward pass; it cannot run as "
                          "PAIR's GradientSaliency")
    return backprop.composite


def _mask_kwargs(recipe, x, settings):
    """Per-image keyword arguments of the PAIR class's ``GetMask`` (IntegratedGradients' steps and baseline)."""
    if recipe.pair_class != "IntegratedGradients":
        return [{}] * len(x)
    if settings["integration"] != "pair":
        raise SanityError(f"backend='pair' integrates with PAIR's rule only; got integration="
                          f"{settings['integration']!r}: use integration='pair' or backend='tf_sanity'")
    if settings["steps"] < 1:
        raise SanityError(f"steps must be >= 1, got {settings['steps']}")
    base = methods._baseline_like(x, settings["baseline"])
    return [dict(x_baseline=b, x_steps=settings["steps"], batch_size=settings["batch_size"]) for b in base]


@contextlib.contextmanager
def _global_seed(seed):
    """``np.random.seed(seed)`` for PAIR's ``GetSmoothedMask``; the caller's global state is restored after."""
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


def compute(method, model, x, targets, settings):
    """The ``"pair"`` backend of :func:`tf_sanity.explain`: `method` on checked `x`, image by image.

    Raises:
      SanityError: PAIR has no counterpart of `method`, or a setting has none (IG's ``"midpoint"``).
    """
    recipe = PAIR.get(_recipe_name(method))
    if recipe is None:
        raise _unsupported(method)
    layer = settings.get("layer") or (methods.last_conv_layer(model)
                                      if recipe.pair_class == "GradCam" or recipe.times == "gradcam" else None)
    call = call_model_function(model, _composite(recipe, settings), layer)
    core = _GradCam() if recipe.pair_class == "GradCam" else getattr(saliency, recipe.pair_class)()
    core = _Times(core, recipe.times) if recipe.times else core
    kwargs = _mask_kwargs(recipe, x, settings)
    args = [{"target": int(t)} for t in targets]
    if method.noise_tunnel != "sg":
        return np.stack([core.GetMask(xi, call, a, **k) for xi, a, k in zip(x, args, kwargs)]).astype(np.float32)
    if settings["n"] < 1:
        raise SanityError(f"n (noise samples) must be >= 1, got {settings['n']}")
    with _global_seed(settings["seed"]):  # one stream over the images, as the default backend draws it
        return np.stack([core.GetSmoothedMask(xi, call, a, stdev_spread=settings["stdev_spread"],
                                              nsamples=settings["n"], magnitude=settings["magnitude"], **k)
                         for xi, a, k in zip(x, args, kwargs)]).astype(np.float32)
