"""The one registry of saliency methods: :data:`METHODS`, each a :class:`Method` with its metadata.

Every method explains the score (logit) of an explicit target class per image and returns a raw,
signed mask shaped like the input; absolute values and normalizations live in
:mod:`tf_sanity.postprocess`. The methods of Adebayo et al. (2018) (:mod:`.methods`), their
SmoothGrad / VarGrad variants (:mod:`.noise_tunnel`) and the modified-backprop methods of "When
Explanations Lie" register here; display labels as in the papers' figures are in :data:`LABELS`.
Each :class:`Method` carries its metadata (labels, settings, the signal it propagates, whether it
needs a spatial layer or multiplies by the input), so callers never tell methods apart by their names.
"""

import dataclasses
import inspect
from typing import Callable, Optional

import keras
import numpy as np

from tf_sanity.attribution import activations as activation_policies, engine
from tf_sanity.attribution.backends import DEFAULT_BACKEND, get_backend
from tf_sanity.errors import SanityError, unknown_name

METHODS = {}
LABELS = {}

SIGNALS = ("gradient", "relevance", "contribution", "map")


@dataclasses.dataclass(frozen=True)
class Method:
    """A saliency method: ``method(model, images, targets, **settings) -> mask``, and what it is.

    Attributes:
      name: registry name, e.g. ``"integrated_gradients_sg"``.
      label: the papers' display label, e.g. ``"IG-SG"``.
      compute: ``compute(model, x, targets, **settings)`` on checked float32 ``x [B, ...]`` and
        int32 ``targets [B]``; returns ``[B, ...]``.
      settings: the method's settings and their defaults.
      short_label: the label inside a variant's label (``"IG"`` in ``"IG-SG"``); default `label`.
      signal: what flows back (:data:`SIGNALS`): ``"gradient"`` (a gradient-like signal),
        ``"relevance"`` (LRP, DeepTaylor), ``"contribution"`` (DeepLIFT's multipliers times the
        difference from the reference) or ``"map"`` (GradCAM's upsampled class activation map).
      multiplies_by_input: the mask is a product with the input (or with its difference from a
        baseline), so inputs equal to the baseline get zero attribution from any network
        (Sundararajan & Taly 2018: compare with ``spearman_nz``).
      baseline_setting: the setting holding that baseline (``"baseline"``, ``"reference"``), or None
        (a zero baseline when `multiplies_by_input`).
      needs_spatial_layer: explains at a ``[batch, h, w, channels]`` layer (setting ``layer``).
      make_backprop: for methods that are one backward pass: ``make_backprop(**settings) ->
        Backprop`` (cosine similarity convergence propagates it from any layer).
      heatmap_reduction: how Sixt et al.'s code reduced the explanation over channels before SSIM
        (``"abs_max"`` for gradient-like maps, ``"sum"`` for attributions), and
      heatmap_percentile: the percentile it then scaled to 1 (100 for RectGrad's sparse maps).
      base: for a SmoothGrad / VarGrad variant, the name of the method it wraps.
      noise_tunnel: ``"sg"`` or ``"vg"`` for such a variant, else None.
      passes: backward passes per input of one explanation at one integration step and one noise
        sample (2 for Guided GradCAM: guided backprop and GradCAM); the check's cost estimate reads it.
    """

    name: str
    label: str
    compute: Callable
    settings: dict
    short_label: Optional[str] = None
    signal: str = "gradient"
    multiplies_by_input: bool = False
    baseline_setting: Optional[str] = None
    needs_spatial_layer: bool = False
    make_backprop: Optional[Callable] = None
    heatmap_reduction: str = "sum"
    heatmap_percentile: float = 99.5
    base: Optional[str] = None
    noise_tunnel: Optional[str] = None
    passes: int = 1

    def __post_init__(self):
        if self.signal not in SIGNALS:
            raise unknown_name("signal", self.signal, SIGNALS)
        if self.short_label is None:
            object.__setattr__(self, "short_label", self.label)

    def baseline(self, settings=None):
        """The baseline the mask is zero at (a scalar or array), or None if it has none."""
        if not self.multiplies_by_input:
            return None
        if self.baseline_setting is None:
            return 0.0
        value = {**self.settings, **(settings or {})}.get(self.baseline_setting)
        return 0.0 if value is None else value

    def __call__(self, model, images, targets, backend=DEFAULT_BACKEND, **settings):
        compute = get_backend(backend).compute
        x, t, single = check_inputs(model, images, targets)
        unknown = set(settings) - set(self.settings)
        if unknown:
            raise SanityError(f"{self.name} has no setting {', '.join(sorted(unknown))}; "
                              f"valid: {', '.join(sorted(self.settings))}")
        mask = compute(self, model, x, t, {**self.settings, **settings})
        return mask[0] if single else mask


def _settings_of(fn):
    return {p.name: p.default for p in inspect.signature(fn).parameters.values()
            if p.kind == p.KEYWORD_ONLY}


def register(method):
    """Adds `method` to :data:`METHODS` and :data:`LABELS`; returns it."""
    METHODS[method.name] = method
    LABELS[method.name] = method.label
    return method


def backprop_method(name, label, *, activations=None, **metadata):
    """Registers a method that is one backward pass: ``@backprop_method("lrp_z", "LRP-z") def ...``.

    The decorated ``make_backprop(*, setting=default, ...) -> Backprop`` gives the method's settings
    (its keyword-only parameters, plus ``batch_size``); the decorated name becomes the registered
    :class:`Method`, so ``lrp_z(model, images, targets)`` explains like
    ``tf_sanity.explain(model, images, "lrp_z", targets)``.

    Args:
      activations: the method family in :data:`tf_sanity.attribution.activations.FAMILIES`
        (``"guided"``, ``"relevance"``, ``"deeplift"``): adds the setting ``activations``, the policy
        at element-wise activations outside the ReLU family, with the family's default.
    """
    def decorate(make):
        if activations is not None:
            make = activation_policies.with_setting(make, activations)
        def compute(model, x, targets, *, batch_size=engine.DEFAULT_BATCH_SIZE, **settings):
            return make(**settings).attribute(model, x, targets, batch_size)

        compute.__name__, compute.__doc__ = name, make.__doc__
        settings = {**_settings_of(make), "batch_size": engine.DEFAULT_BATCH_SIZE}
        return register(Method(name, label, compute, settings, make_backprop=make, **metadata))
    return decorate


def make_backprop(name, **settings):
    """The :class:`~tf_sanity.attribution.backprop.Backprop` of registered method `name` with `settings`."""
    method = get(name)
    if method.make_backprop is None:
        raise SanityError(f"{name} is not a backward pass with rules; methods that are: "
                          f"{', '.join(n for n, m in METHODS.items() if m.make_backprop)}")
    valid = _settings_of(method.make_backprop)
    unknown = set(settings) - set(valid)
    if unknown:
        raise SanityError(f"{name} has no setting {', '.join(sorted(unknown))}; valid: "
                          f"{', '.join(sorted(valid)) or 'none'}")
    return method.make_backprop(**settings)


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
        if model.built:  # a subclassed model has no symbolic input and output
            raise SanityError(f"model {model.name!r} has no symbolic input (a subclassed model): wrap it as "
                              f"inp = keras.Input(shape); keras.Model(inp, model(inp))") from None
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


def get(method):
    """The registered :class:`Method` named `method` (a Method is returned unchanged)."""
    if isinstance(method, Method):
        return method
    if method not in METHODS:
        raise unknown_name("method", method, METHODS)
    return METHODS[method]


def explain(model, images, method, targets, backend=DEFAULT_BACKEND, **settings):
    """Explains `images` for `targets` with `method`; returns a numpy array shaped like `images`.

    Args:
      model: a built single-input keras.Model whose output is the class scores (logits).
      images: one image or a batch, shaped like the model's input.
      method: a name in :data:`METHODS` (or a :class:`Method`).
      targets: the class to explain, one integer per image (or one for all).
      backend: ``"tf_sanity"`` (the batched engine) or ``"pair"``: the same method computed image by
        image through PAIR's ``saliency.core`` classes (:mod:`tf_sanity.attribution.pair_backend`,
        which raises for methods PAIR has no counterpart of).
      **settings: the method's settings, e.g. ``steps=50`` for IG or ``n=50`` for SmoothGrad.
    """
    return get(method)(model, images, targets, backend=backend, **settings)
