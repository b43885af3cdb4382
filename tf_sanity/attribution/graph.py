"""The layer graph of a Keras model, as the backward rules see it.

Layers are reached as *leaf layers* (nested models flattened, :func:`leaf_layers`); the graph
around a layer is read from its Keras nodes (:func:`parents`, :func:`consumers`). The type tables
sort layers into what the rules need to know: affine kernel layers, average pooling, and layers
that only move, copy, drop or select values (:data:`SHAPE_TYPES`, :data:`EXACT_TYPES`).
"""

import keras

from tf_sanity.errors import SanityError

L = keras.layers

KERNEL_TYPES = (L.Dense, L.Conv1D, L.Conv2D, L.Conv3D)
AVERAGE_TYPES = (L.AveragePooling1D, L.AveragePooling2D, L.AveragePooling3D,
                 L.GlobalAveragePooling1D, L.GlobalAveragePooling2D, L.GlobalAveragePooling3D)
# Layers that only move, copy, drop (at inference: keep) or select values.
SHAPE_TYPES = (L.InputLayer, L.Flatten, L.Reshape, L.Permute, L.Identity, L.Dropout,
               L.SpatialDropout1D, L.SpatialDropout2D, L.SpatialDropout3D, L.GaussianDropout,
               L.GaussianNoise, L.AlphaDropout, L.ZeroPadding1D, L.ZeroPadding2D, L.ZeroPadding3D,
               L.Cropping1D, L.Cropping2D, L.Cropping3D)
EXACT_TYPES = SHAPE_TYPES + (L.MaxPooling1D, L.MaxPooling2D, L.MaxPooling3D, L.GlobalMaxPooling1D,
                             L.GlobalMaxPooling2D, L.GlobalMaxPooling3D, L.Concatenate, L.ReLU,
                             L.Activation)


def leaf_layers(model):
    """All layers of `model` that hold no sub-layers, nested models flattened, in model order."""
    out = []
    for layer in model.layers:
        if isinstance(layer, keras.Model) or (hasattr(layer, "layers") and layer.layers):
            out.extend(leaf_layers(layer))
        else:
            out.append(layer)
    return out


def parents(layer):
    """The layers feeding `layer` (its only call), or None if it was called more than once."""
    nodes = layer._inbound_nodes
    return None if len(nodes) != 1 else [p.operation for p in nodes[0].parent_nodes]


def consumers(layer):
    """The layers (operations) that take `layer`'s output."""
    return [node.operation for node in layer._outbound_nodes]


def channel_axis(layer):
    """The output channel axis of a kernel layer, as a negative index."""
    if isinstance(layer, L.Dense) or getattr(layer, "data_format", "channels_last") == "channels_last":
        return -1
    return -(layer.rank + 1)


def batchnorm_axis(bn, rank):
    """The (negative) axis a BatchNormalization normalizes per channel, or None if it uses several."""
    axis = bn.axis if isinstance(bn.axis, int) else (bn.axis[0] if len(bn.axis) == 1 else None)
    if axis is None:
        return None
    return axis - rank if axis >= 0 else axis


def is_first_layer(layer):
    """Whether `layer` sees the model input, reached through shape-only layers (Flatten, ...) only.

    DeepTaylor's bounded zB rule applies to these layers (Montavon et al. 2017, bounded input domain). The walk
    stays inside the layer's own (innermost) model graph.
    """
    frontier = [layer]
    while frontier:
        above = parents(frontier.pop())
        if not above:
            return False
        for parent in above:
            if isinstance(parent, L.InputLayer):
                continue
            if not isinstance(parent, SHAPE_TYPES):
                return False
            frontier.append(parent)
    return True


def get_layer(model, name):
    """``model.get_layer(name)`` with a one-line error listing the layers."""
    try:
        return model.get_layer(name)
    except ValueError:
        names = dict.fromkeys(layer.name for layer in leaf_layers(model)
                              if not isinstance(layer, L.InputLayer))
        raise SanityError(f"model has no layer {name!r}; layers: {', '.join(names)}") from None


def input_tensor(model, name):
    """The (single) symbolic input tensor of layer `name` in `model`."""
    layer = get_layer(model, name)
    if len(layer._inbound_nodes) != 1 or len(layer._inbound_nodes[0].input_tensors) != 1:
        raise SanityError(f"layer {name!r} has several inputs or calls; inject at a single-input layer")
    return layer._inbound_nodes[0].input_tensors[0]
