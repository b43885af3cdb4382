"""The randomization tests of Adebayo et al. (2018) as library functions that yield tidy rows.

* :func:`model_randomization`: the model parameter randomization test (Sec. 3): explain with the
  trained model, randomize a stage of weight groups, explain again, compare, for every stage of a
  cascade from the top (Fig. 2, 4, 5), a cascade from the bottom (Binder et al. 2023, "Shortcomings
  of top-down randomization-based sanity checks", argue the top-down order alone misleads), or one
  group at a time (Fig. 3);
* :func:`data_randomization`: the data randomization test (Sec. 4, Fig. 6): the same comparison
  between a model trained on true labels and one trained on permuted labels.

Each row is one image x method x stage x similarity::

    rows = list(model_randomization(model, images, targets, ["gradient", "guided_backprop"]))
    # {"order": "top_down", "stage": "output", "stage_index": 1, "method": "gradient",
    #  "metric": "spearman_abs", "image": 0, "value": 0.02}, ...

A *similarity* compares the trained model's masks with the randomized model's, per image: a
name in :data:`SIMILARITIES` or a function ``f(original, randomized, inputs) -> [B]`` where
``inputs`` is a :class:`Compared` (the images, the :class:`~tf_sanity.attribution.methods.Method`
and its settings).
"""

import dataclasses
from typing import Callable, NamedTuple

import numpy as np

from tf_sanity.attribution import methods as methods_lib
from tf_sanity.checks import metrics, randomization
from tf_sanity.errors import SanityError, unknown_name

ORDERS = ("top_down", "bottom_up", "independent")
PREDICTED = "predicted"


class Compared(NamedTuple):
    """What a similarity may need besides the two masks."""

    images: np.ndarray
    method: methods_lib.Method
    settings: dict


# A similarity: ``f(original masks, randomized masks, Compared) -> one value per image``.
Similarity = Callable[[np.ndarray, np.ndarray, Compared], np.ndarray]


def batch_layout(masks):
    """The layout of a batch of masks from :func:`tf_sanity.explain`: images ``[B, H, W, C]``,
    ``[B, T, C]`` read as 2-D maps, or feature vectors ``[B, F]``."""
    return {2: "BF", 3: "BHW", 4: "BHWC"}.get(np.ndim(masks))


def _spearman_nz(a, b, c):
    baseline = c.method.baseline(c.settings)
    return metrics.spearman_nz(a, b, c.images, 0.0 if baseline is None else baseline, absolute=True,
                               layout=batch_layout(a))


# The paper's similarities (Fig. 4, 5) with the original code's settings, and Sundararajan & Taly's
# spearman_nz (absolute masks, pixels where the input differs from the method's baseline, else 0).
SIMILARITIES = {
    "spearman_abs": lambda a, b, c: metrics.spearman(a, b, absolute=True, layout=batch_layout(a)),
    "spearman_signed": lambda a, b, c: metrics.spearman(a, b, absolute=False, layout=batch_layout(a)),
    "ssim": lambda a, b, c: metrics.ssim(a, b, layout=batch_layout(a)),
    "hog": lambda a, b, c: metrics.hog_similarity(a, b, layout=batch_layout(a)),
    "spearman_nz": _spearman_nz,
}
DEFAULT_SIMILARITIES = ("spearman_abs", "spearman_signed", "ssim", "hog")


def resolve_similarities(names_or_functions):
    """``{name: function}`` for similarity names and/or a dict of name -> function."""
    if isinstance(names_or_functions, dict):
        return dict(names_or_functions)
    out = {}
    for name in names_or_functions:
        if name not in SIMILARITIES:
            raise unknown_name("similarity", name, SIMILARITIES)
        out[name] = SIMILARITIES[name]
    return out


def _settings_for(settings, method):
    if settings is None:
        return {}
    if callable(settings):
        return dict(settings(method))
    return dict(settings.get(method, {}))


@dataclasses.dataclass
class _Explainer:
    """Explains one fixed set of images with every method, each with its own settings."""

    images: np.ndarray
    targets: object
    methods: list
    settings: object

    def targets_for(self, model):
        if isinstance(self.targets, str):
            if self.targets != PREDICTED:
                raise SanityError(f"targets must be class indices or {PREDICTED!r}, got {self.targets!r}")
            from tf_sanity.attribution import engine
            return np.asarray(engine.scores_function(model)(self.images.astype(np.float32))).argmax(-1)
        return np.asarray(self.targets)

    def explain(self, model, targets):
        return {name: methods_lib.explain(model, self.images, m, targets, **_settings_for(self.settings, name))
                for name, m in self.methods.items()}

    def rows(self, originals, masks, sims, **keys):
        out = []
        for method, randomized in masks.items():
            compared = Compared(self.images, self.methods[method], _settings_for(self.settings, method))
            for metric, fn in sims.items():
                values = np.atleast_1d(fn(originals[method], randomized, compared))
                out += [dict(keys, method=method, metric=metric, image=i, value=float(v))
                        for i, v in enumerate(values)]
        return out


def explain_methods(model, images, targets, methods, settings=None):
    """``{method: masks}`` of `model` for every method, each with its settings (see :func:`model_randomization`)."""
    explainer = _Explainer(np.asarray(images, np.float32), targets, _check_methods(methods), settings)
    return explainer.explain(model, explainer.targets_for(model))


def _check_methods(methods):
    """``{name: Method}`` of names in :data:`tf_sanity.METHODS` and/or unregistered :class:`Method` objects
    (e.g. the controls of :mod:`tf_sanity.checks.controls`); unknown names fail before any work."""
    items = [methods] if isinstance(methods, (str, methods_lib.Method)) else list(methods)
    resolved = [methods_lib.get(m) for m in items]
    return {m.name: m for m in resolved}


def stage_groups(model, order, groups=None):
    """The randomization groups in the order `order` visits them (``"bottom_up"``: input layer first)."""
    if order not in ORDERS:
        raise unknown_name("order", order, ORDERS)
    resolved = randomization.resolve_groups(model, groups)
    return resolved[::-1] if order == "bottom_up" else resolved


def model_randomization(model, images, targets, methods, *, order="top_down", similarities=DEFAULT_SIMILARITIES,
                        groups=None, policy="paper", seed=0, settings=None, stages=None, originals=None,
                        on_masks=None):
    """The model parameter randomization test (Adebayo et al. 2018, Sec. 3), as tidy rows.

    Args:
      model: a trained Keras model (logits); randomized in place stage by stage, and restored
        bit-identical when the iteration ends or is abandoned.
      images: ``[B, ...]`` inputs; targets: one class per image, or ``"predicted"`` (each model
        state's own argmax, as the original code did for Inception v3).
      methods: method names (:data:`tf_sanity.METHODS`) and/or :class:`~tf_sanity.attribution.methods.Method`
        objects that need not be registered (rows and `settings` / `originals` keys use their names).
      order: ``"top_down"`` (cascading from the logits), ``"bottom_up"`` (cascading from the input
        layer upward) or ``"independent"`` (one group at a time, the others trained).
      similarities: names in :data:`SIMILARITIES` or a dict name -> ``f(original, randomized, inputs)``.
      groups: randomization groups (:func:`tf_sanity.checks.randomization.resolve_groups`); default:
        the model's own (e.g. Inception v3's 17 blocks), else its named blocks
        (:func:`tf_sanity.checks.groups.grouping`), else every layer with weights.
      policy, seed: re-initialization (:mod:`tf_sanity.checks.randomization`); each group's values
        derive from (seed, group name), whatever the order.
      settings: per-method settings: a dict method -> settings, or a function method -> settings.
      stages: compute only these stages (the others are still randomized where the cascade needs
        them): lets a long run write each stage as its own resumable unit.
      originals: the trained model's masks per method, if already computed.
      on_masks: called as ``on_masks(stage, method, masks)`` with every stage's masks ("original"
        for the trained model's), e.g. to draw a mask grid.

    Yields:
      One dict per image x method x stage x similarity: ``order, stage, stage_index`` (1 = the
      first stage of the order), ``method, metric, image, value``, and ``target_changed`` when the
      targets are ``"predicted"``.
    """
    method_names = _check_methods(methods)
    sims = resolve_similarities(similarities)
    resolved = stage_groups(model, order, groups)
    names = [name for name, _ in resolved]
    wanted = names if stages is None else [s for s in names if s in set(stages)]
    if stages is not None and len(wanted) != len(set(stages)):
        raise unknown_name("stage", next(s for s in stages if s not in names), names)
    explainer = _Explainer(np.asarray(images, np.float32), targets, method_names, settings)
    trained_targets = explainer.targets_for(model)
    if originals is None:
        originals = explainer.explain(model, trained_targets)
    if on_masks is not None:
        for method, masks in originals.items():
            on_masks("original", method, masks)
    return _stages(model, explainer, originals, trained_targets, sims, resolved, order, wanted, policy, seed,
                   on_masks)


def _stages(model, explainer, originals, trained_targets, sims, resolved, order, wanted, policy, seed, on_masks):
    mode = "independent" if order == "independent" else "cascading"
    index = {name: i + 1 for i, (name, _) in enumerate(resolved)}
    chosen = [(n, g) for n, g in resolved if n in wanted] if mode == "independent" else resolved
    last = max((index[n] for n in wanted), default=0)
    with getattr(randomization, mode)(model, [(n, [layer.name for layer in g]) for n, g in chosen],
                                      policy=policy, seed=seed) as it:
        for stage, randomized in it:
            if stage in wanted:
                targets = explainer.targets_for(randomized)
                masks = explainer.explain(randomized, targets)
                if on_masks is not None:
                    for method, m in masks.items():
                        on_masks(stage, method, m)
                keys = dict(order=order, stage=stage, stage_index=index[stage])
                rows = explainer.rows(originals, masks, sims, **keys)
                if isinstance(explainer.targets, str):
                    changed = (targets != trained_targets).astype(int)
                    rows = [dict(r, target_changed=int(changed[r["image"]])) for r in rows]
                yield from rows
            if mode == "cascading" and index[stage] >= last:
                break


def data_randomization(model, random_label_model, images, targets, methods, *,
                       similarities=DEFAULT_SIMILARITIES, settings=None, on_masks=None):
    """The data randomization test (Adebayo et al. 2018, Sec. 4, Fig. 6), as tidy rows.

    Args:
      model: the model trained on the true labels; random_label_model: the same architecture
        trained on permuted labels.
      images, targets: as :func:`model_randomization` (``"predicted"``: each model's own argmax).
      methods, similarities, settings: as :func:`model_randomization`.
      on_masks: called as ``on_masks("true_labels" | "random_labels", method, masks)``.

    Returns:
      A list of dicts ``method, metric, image, value``.
    """
    method_names = _check_methods(methods)
    sims = resolve_similarities(similarities)
    explainer = _Explainer(np.asarray(images, np.float32), targets, method_names, settings)
    masks = {}
    for key, m in (("true_labels", model), ("random_labels", random_label_model)):
        masks[key] = explainer.explain(m, explainer.targets_for(m))
        if on_masks is not None:
            for method, values in masks[key].items():
                on_masks(key, method, values)
    return explainer.rows(masks["true_labels"], masks["random_labels"], sims)

