"""Named blocks: the default randomization groups of keras.applications-style models.

Adebayo et al. (2018), Sec. 3, randomize Inception v3 *block by block*: 17 blocks from the logits down to
the first convolution (``slim_models/inception_v3.py``, ``RANDOMIZATION_ORDER``), each block with all its
convolutions and BatchNorms. For other architectures the same unit is the architecture's own block: a
ResNet bottleneck block (``conv4_block2_*``), a MobileNetV2 inverted residual (``block_6_*``), an
EfficientNet MBConv block (``block2a_*``), an Inception module (``mixed5``). :func:`grouping` finds these
blocks from the layer names (:data:`BLOCK_PATTERNS`) and the layer graph:

1. A layer with weights whose name matches a pattern belongs to that block; the first pattern that
   matches wins.
2. A layer with weights and an unmatched name inside a block (Xception's and Inception's layers named
   ``conv2d_7`` by Keras) belongs to the block of the graph segment it lies in. The segment runs between
   two consecutive *cut layers*, layers that every path from the input to the output passes through
   (block outputs, for these models). Its block is the one block named in the segment or at its closing
   cut layer (``add`` after ``block2_pool`` in Xception; the concatenation ``mixed5`` in Inception v3).
3. The remaining layers with weights form *units*: a kernel layer together with the normalization layers
   it feeds directly. Units below the first block are the stem (``stem``, or ``stem_1`` ... ``stem_n``
   from the input up); units above the last block form the head, one group each, named after their first
   layer (``predictions``, ``top_conv`` with ``top_bn``, ``Conv_1`` with ``Conv_1_bn``).
4. A nested model (a backbone inside a fine-tuning model) contributes its own blocks; the outer layers
   form stem and head units.

Groups are listed top down (the order of the cascade). Input preprocessing (``keras.layers.Normalization``,
whose mean and variance are not learned weights) is in no group. Where the blocks cannot be found without
guessing (no layer name matches, a unit with weights between two blocks, a segment naming two blocks,
blocks whose layers interleave, a layer called twice, repeated group names), the model gets one group per
layer with weights instead, and :attr:`Grouping.reason` says why. A model's own ``randomization_groups``
attribute (MNIST models, Inception v3, EfficientNet-Lite0) takes precedence over both.
"""

import dataclasses
import re

import keras

from tf_sanity.attribution.graph import leaf_layers, parents

L = keras.layers

NORM_TYPES = (L.BatchNormalization, L.LayerNormalization, L.GroupNormalization)
PREPROCESSING_TYPES = (L.Normalization,)

# (families, pattern matched at the start of a layer name, group name template). First match wins.
BLOCK_PATTERNS = (
    ("ResNet, ResNetV2, DenseNet", r"(conv\d+_block\d+)_", r"\1"),
    ("DenseNet transitions", r"(pool\d+)_", r"\1"),
    ("MobileNet", r"conv_(?:dw|pw)_(\d+)(?:_|$)", r"conv_dw_pw_\1"),
    ("MobileNetV2 (first block), MobileNetV3", r"(expanded_conv(?:_\d+)?)_", r"\1"),
    ("VGG, Xception, MobileNetV2, EfficientNet, EfficientNetV2", r"(block_?\d+[a-z]?)_", r"\1"),
    ("ConvNeXt", r"(?:.*_)?(stage_\d+_block_\d+)_", r"\1"),
    ("ConvNeXt downsampling", r"(?:.*_)?downsampling_\w+_(\d+)$", r"downsampling_\1"),
    ("InceptionV3", r"(mixed\d+)$", r"\1"),
)
_COMPILED = tuple((re.compile(pattern), template) for _, pattern, template in BLOCK_PATTERNS)


@dataclasses.dataclass(frozen=True)
class Grouping:
    """A model's default randomization groups and where they come from.

    Attributes:
      groups: ``[(group name, [layer names])]``, top down.
      source: ``"model"`` (its own ``randomization_groups``), ``"blocks"`` (named blocks, found by
        :func:`grouping`) or ``"layers"`` (one group per layer with weights).
      reason: for ``"layers"``, why no blocks were found; else ``""``.
    """

    groups: list
    source: str
    reason: str = ""


class _NoBlocks(Exception):
    """The blocks cannot be found without guessing; the message says why."""


def block_key(name):
    """The block a layer name belongs to by :data:`BLOCK_PATTERNS`, or None."""
    for pattern, template in _COMPILED:
        match = pattern.match(name)
        if match:
            return match.expand(template)
    return None


def weighted(layer):
    """Whether `layer` holds weights the randomization changes (input preprocessing does not count)."""
    return bool(layer.weights) and not isinstance(layer, PREPROCESSING_TYPES)


def layer_groups(model):
    """One group per layer with weights, top down (the fallback)."""
    return [(layer.name, [layer.name]) for layer in reversed(leaf_layers(model)) if weighted(layer)]


def grouping(model):
    """The default randomization groups of `model` (see the module docstring), as a :class:`Grouping`."""
    own = getattr(model, "randomization_groups", None)
    if own:
        return Grouping([(name, list(layers)) for name, layers in own], "model")
    try:
        groups = _model_blocks(model)
    except _NoBlocks as exc:
        return Grouping(layer_groups(model), "layers", str(exc))
    names = [name for name, _ in groups]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        return Grouping(layer_groups(model), "layers", f"group names repeat: {', '.join(repeated)}")
    return Grouping(groups, "blocks")


def _nested(layer):
    return isinstance(layer, keras.Model) or bool(getattr(layer, "layers", None))


def _model_blocks(model):
    """``[(name, [layer names])]`` top down; raises :class:`_NoBlocks`."""
    blocks, units = _parts(model)
    if not blocks:
        raise _NoBlocks(f"no layer name of model {model.name!r} matches a known block pattern")
    return _arrange(blocks, units)


def _parts(model):
    """The blocks and units of `model`, at the positions of its own layers.

    Returns:
      ``(blocks, units)``: ``blocks`` as ``(first position, last position, [(name, [layer names])])``
      (a nested model with blocks is one item), ``units`` as ``(first position, last position, [layers])``
      in graph order.
    """
    layers = list(model.layers)
    pos = {id(layer): i for i, layer in enumerate(layers)}
    graph = _Graph(model, layers, pos)
    keys = {id(layer): block_key(layer.name) for layer in layers}
    blocks, units, members, loose = [], [], {}, []
    for layer in layers:
        p = pos[id(layer)]
        if _nested(layer):
            inner_blocks, inner_units = _parts(layer)
            if inner_blocks:
                blocks.append((p, p, _arrange(inner_blocks, inner_units)))
            else:
                units += [(p, p, unit) for _, _, unit in inner_units]
        elif weighted(layer):
            key = keys[id(layer)] or graph.segment_key(layer, keys)
            if key is None:
                loose.append(layer)
            else:
                members.setdefault(key, []).append(layer)
    blocks += [(pos[id(ls[0])], pos[id(ls[-1])], [(key, [layer.name for layer in ls])])
               for key, ls in members.items()]
    blocks.sort(key=lambda block: block[0])
    for (_, end, groups), (start, _, others) in zip(blocks, blocks[1:]):
        if start <= end:
            raise _NoBlocks(f"the layers of blocks {groups[0][0]!r} and {others[0][0]!r} interleave")
    units += [(pos[id(unit[0])], pos[id(unit[-1])], unit) for unit in graph.units(loose)]
    return blocks, sorted(units, key=lambda unit: unit[0])


def _arrange(blocks, units):
    """Blocks, stem units and head units as groups, top down."""
    first, last = blocks[0][0], max(end for _, end, _ in blocks)
    stem = [unit for _, end, unit in units if end < first]
    items = [(end, groups) for _, end, groups in blocks]
    for i, unit in enumerate(stem, start=1):
        name = "stem" if len(stem) == 1 else f"stem_{i}"
        items.append((first - 0.5, [(name, [layer.name for layer in unit])]))
    for start, end, unit in units:
        if end >= first and start <= last:
            raise _NoBlocks(f"layer {unit[0].name!r} has weights, lies between blocks and matches no "
                            f"block pattern")
        if end >= first:
            items.append((end, [(unit[0].name, [layer.name for layer in unit])]))
    ordered = sorted(enumerate(items), key=lambda item: (item[1][0], item[0]), reverse=True)
    return [group for _, (_, groups) in ordered for group in groups]


class _Graph:
    """The graph of one model's own layers: parents, cut layers and segments."""

    def __init__(self, model, layers, pos):
        self.sequential = isinstance(model, keras.Sequential)
        self.layers, self.pos = layers, pos
        self._cuts = None

    def parents(self, layer):
        """The layers feeding `layer`; raises :class:`_NoBlocks` for a layer called several times."""
        if self.sequential:
            i = self.pos[id(layer)]
            return self.layers[i - 1:i]
        found = parents(layer)
        if found is None:
            raise _NoBlocks(f"layer {layer.name!r} is called more than once")
        return [p for p in found if id(p) in self.pos]

    def cuts(self):
        """Positions of the cut layers: no edge of the (topologically ordered) graph jumps over them."""
        if self._cuts is None:
            over = [0] * (len(self.layers) + 1)
            for layer in self.layers:
                b = self.pos[id(layer)]
                for parent in self.parents(layer):
                    a = self.pos[id(parent)]
                    if a >= b:
                        raise _NoBlocks(f"the layers of the model are not in graph order at {layer.name!r}")
                    over[a + 1] += 1
                    over[b] -= 1
            running, self._cuts = 0, []
            for i in range(len(self.layers)):
                running += over[i]
                if running == 0:
                    self._cuts.append(i)
        return self._cuts

    def segment_key(self, layer, keys):
        """The one block named in `layer`'s segment or at its closing cut layer; None if none."""
        cuts, i = self.cuts(), self.pos[id(layer)]
        if i in cuts:
            return None
        start = max(c for c in cuts if c < i)
        end = min((c for c in cuts if c > i), default=len(self.layers) - 1)
        found = {keys[id(other)] for other in self.layers[start + 1:end + 1]} - {None}
        if len(found) > 1:
            raise _NoBlocks(f"layer {layer.name!r} matches no block pattern and lies in a segment of "
                            f"blocks {', '.join(sorted(found))}")
        return found.pop() if found else None

    def units(self, loose):
        """`loose` layers as units, in graph order: a layer, plus the normalizations it feeds directly."""
        units, unit_of = [], {}
        for layer in loose:
            source = self._weighted_parent(layer) if isinstance(layer, NORM_TYPES) else None
            if source is not None and id(source) in unit_of:
                unit_of[id(source)].append(layer)
                unit_of[id(layer)] = unit_of[id(source)]
            else:
                unit_of[id(layer)] = [layer]
                units.append(unit_of[id(layer)])
        return units

    def _weighted_parent(self, layer):
        """The nearest layer with weights above `layer` through single-input layers without any; or None."""
        while True:
            above = self.parents(layer)
            if len(above) != 1 or _nested(above[0]):
                return None
            layer = above[0]
            if weighted(layer):
                return layer
