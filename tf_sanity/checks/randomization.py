"""Model parameter randomization (Adebayo et al. 2018, Sec. 3).

A model's weights are split into ordered, named *groups*, top down. The default is the model's own
``randomization_groups`` (e.g. Inception v3's 17 blocks), else its named blocks (ResNet's
``conv4_block2``, MobileNetV2's ``block_6``, ... found by :mod:`tf_sanity.checks.groups`), else every
layer with weights. Two tests:

* :func:`cascading`: randomize the top group, then also the next, ... (Fig. 2, Fig. 4);
* :func:`independent`: randomize one group at a time, from the trained weights (Fig. 3).

Both are iterators of ``(group_name, model)``: the model is changed in place through variable
assignment (never rebuilt or cloned, so compiled explainers see the new weights) and its trained
weights come back bit-identical when the iteration ends, is abandoned (``break``, garbage
collection, ``close()``) or an exception leaves a ``with`` block.

Re-initialization policies (``docs/REFERENCE.md``):

* ``"paper"``: every variable of the group, BatchNorm moving statistics included, from a truncated
  normal, mean 0, std 0.01 (Sec. 3).
* ``"original_code"``: the group's trainable variables only, each re-drawn from its own layer's
  initializer (BatchNorm moving statistics keep their trained values).

Each group's values derive from ``(seed, group name)``, so a group gets the same random weights
whatever the order or the mode it is reached in.
"""

import dataclasses
import hashlib

import keras
import numpy as np

from tf_sanity.errors import SanityError, unknown_name
from tf_sanity.attribution.graph import leaf_layers
from tf_sanity.checks.groups import grouping

INITS = ("truncated_normal", "uniform", "layer")
BATCHNORM = ("all", "trainable")


@dataclasses.dataclass(frozen=True)
class Policy:
    """How a group is re-initialized.

    Attributes:
      init: ``"truncated_normal"`` (mean 0, cut at 2 std), ``"uniform"`` (same std, i.e.
        U(-std*sqrt(3), std*sqrt(3))), or ``"layer"`` (the layer's own Keras initializer).
      std: standard deviation for the first two.
      batchnorm: ``"all"`` BatchNorm variables including moving mean/variance, or ``"trainable"``.
        Moving variances drawn from a zero-mean distribution are made non-negative (absolute value).
    """

    init: str = "truncated_normal"
    std: float = 0.01
    batchnorm: str = "all"

    def __post_init__(self):
        if self.init not in INITS:
            raise unknown_name("init", self.init, INITS)
        if self.batchnorm not in BATCHNORM:
            raise unknown_name("batchnorm policy", self.batchnorm, BATCHNORM)


POLICIES = {
    "paper": Policy("truncated_normal", 0.01, "all"),
    "original_code": Policy("layer", batchnorm="trainable"),
}


def group_seed(seed, name):
    """A 31-bit seed derived from (seed, group name)."""
    digest = hashlib.sha256(f"{seed}/{name}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def default_groups(model):
    """The model's own ``randomization_groups``, else its named blocks, else every layer with weights.

    Top down. :func:`tf_sanity.checks.groups.grouping` says which of the three a model gets, and why a
    model gets no blocks.
    """
    return grouping(model).groups


def resolve_groups(model, groups=None):
    """Normalizes `groups` to ``[(name, [layer, ...]), ...]``.

    Args:
      groups: None (default groups); or a sequence whose items are ``(name, [layer names])``, a
        layer name, or the name of one of the model's default groups; or a dict name -> layers.
    """
    defaults = default_groups(model)
    by_layer = {layer.name: layer for layer in leaf_layers(model)}
    for layer in model.layers:
        by_layer.setdefault(layer.name, layer)
    named = dict(defaults)
    if groups is None:
        items = defaults
    else:
        items = []
        for item in (groups.items() if isinstance(groups, dict) else groups):
            if isinstance(item, str):
                item = (item, named.get(item, [item]))
            items.append(item)
    resolved = []
    for name, layers in items:
        members = []
        for layer in layers:
            if isinstance(layer, str):
                if layer not in by_layer:
                    raise unknown_name("layer or group", layer, list(named) + list(by_layer))
                layer = by_layer[layer]
            members.append(layer)
        if not any(layer.weights for layer in members):
            raise SanityError(f"group {name!r} has no weights to randomize; name layers with weights")
        resolved.append((name, members))
    return resolved


def _is_moving_stat(variable):
    return variable.path.rsplit("/", 1)[-1] in ("moving_mean", "moving_variance")


def group_variables(layers, policy):
    """The variables of `layers` that `policy` re-initializes, in a fixed order."""
    return [(layer, variable) for layer in layers for variable in layer.weights
            if not (policy.batchnorm == "trainable" and _is_moving_stat(variable))]


def _truncated_normal(rng, shape, std):
    values = rng.standard_normal(shape)
    outside = np.abs(values) > 2
    while outside.any():
        values[outside] = rng.standard_normal(outside.sum())
        outside = np.abs(values) > 2
    return values * std


def _layer_initializer(layer, variable, seed):
    name = variable.path.rsplit("/", 1)[-1]
    initializer = getattr(layer, f"{name}_initializer", None)
    if initializer is None and name == "kernel":
        initializer = getattr(layer, "depthwise_initializer", None)
    if initializer is None:
        raise SanityError(f"layer {layer.name!r} has no initializer for {name!r}; "
                          f"use init='truncated_normal' or init='uniform'")
    config = initializer.get_config()
    if "seed" in config:
        initializer = type(initializer).from_config({**config, "seed": seed})
    return keras.ops.convert_to_numpy(initializer(tuple(variable.shape), dtype=variable.dtype))


def random_values(layer, variable, policy, rng):
    """New values for `variable` of `layer` under `policy`, drawn from `rng`."""
    shape = tuple(variable.shape)
    if policy.init == "layer":
        return _layer_initializer(layer, variable, int(rng.integers(2**31)))
    if policy.init == "truncated_normal":
        values = _truncated_normal(rng, shape, policy.std)
    else:
        limit = policy.std * np.sqrt(3.0)
        values = rng.uniform(-limit, limit, shape)
    if variable.path.endswith("moving_variance"):
        values = np.abs(values)
    return values


class Randomization:
    """Iterator of ``(group_name, model)`` over randomization stages; restores on exit.

    Use :func:`cascading` or :func:`independent` to make one. Also a context manager::

        with cascading(model) as stages:
            for name, randomized in stages:
                ...
    """

    def __init__(self, model, groups, mode, policy, seed):
        self.model = model
        self.groups = resolve_groups(model, groups)
        self.mode = mode
        self.policy = policy
        self.seed = seed
        # The generator must not refer to `self`: then dropping this object closes it at once.
        self._stages = _stages(model, self.groups, mode, policy, seed)

    @property
    def names(self):
        """The group names, in stage order."""
        return [name for name, _ in self.groups]

    def __iter__(self):
        return self

    def __next__(self):
        return next(self._stages)

    def close(self):
        """Restores the trained weights now (also done at the end and when collected)."""
        stages = getattr(self, "_stages", None)  # absent if __init__ raised
        if stages is not None:
            stages.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __del__(self):
        self.close()


def _stages(model, groups, mode, policy, seed):
    chosen = [(name, group_variables(layers, policy)) for name, layers in groups]
    saved = {id(v): (v, np.array(v.numpy(), copy=True)) for _, pairs in chosen for _, v in pairs}
    try:
        for i, (name, pairs) in enumerate(chosen):
            if mode == "independent" and i:
                _restore(chosen[i - 1][1], saved)
            rng = np.random.default_rng(group_seed(seed, name))
            for layer, variable in pairs:
                variable.assign(random_values(layer, variable, policy, rng).astype(variable.dtype))
            yield name, model
    finally:
        for variable, value in saved.values():
            variable.assign(value)


def _restore(pairs, saved):
    for _, variable in pairs:
        variable.assign(saved[id(variable)][1])


def _policy(policy, init, std, batchnorm):
    if isinstance(policy, str):
        if policy not in POLICIES:
            raise unknown_name("randomization policy", policy, POLICIES)
        policy = POLICIES[policy]
    changes = {k: v for k, v in dict(init=init, std=std, batchnorm=batchnorm).items() if v is not None}
    return dataclasses.replace(policy, **changes)


def cascading(model, groups=None, *, policy="paper", init=None, std=None, batchnorm=None, seed=0):
    """Cascading randomization: stage k has the top k groups randomized (Sec. 3, Fig. 2).

    Args:
      model: a built Keras model; changed in place during iteration, restored afterwards.
      groups: see :func:`resolve_groups`; default: the model's groups, top down.
      policy: ``"paper"``, ``"original_code"`` or a :class:`Policy`; `init`, `std` and
        `batchnorm` override its fields.
      seed: base seed; each group's seed derives from (seed, group name).

    Returns:
      A :class:`Randomization` iterator of ``(group_name, model)``.
    """
    return Randomization(model, groups, "cascading", _policy(policy, init, std, batchnorm), seed)


def independent(model, groups=None, *, policy="paper", init=None, std=None, batchnorm=None, seed=0):
    """Independent randomization: one group at a time, the rest trained (Sec. 3, Fig. 3).

    Arguments as :func:`cascading`.
    """
    return Randomization(model, groups, "independent", _policy(policy, init, std, batchnorm), seed)
