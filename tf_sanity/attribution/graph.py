"""The layer graph of a Keras model, as the backward rules see it.

Layers are reached as *leaf layers* (nested models flattened, :func:`leaf_layers`); the backward
rules reach every *leaf operation* (:func:`leaf_operations`): the leaf layers and the raw operations
of a functional model (``x + 3``, ``keras.ops.relu(x)``: Keras 3 keeps them in ``model.operations``
and not in ``model.layers``). The graph around an operation is read from its Keras nodes
(:func:`parents`, :func:`consumers`) and crosses the boundary of a nested model (a
``keras.applications`` backbone inside a fine-tuning model): the input of a nested model is produced
by what feeds the nested model in the model around it, and the output of a nested model is consumed
by what consumes the nested model there. A subclassed model has no graph to walk
(:func:`leaf_operations` raises a ``SanityError``). The type tables
sort layers into what the rules need to know: affine kernel layers, average pooling, and layers
that only move, copy, drop or select values (:data:`SHAPE_TYPES`, :data:`EXACT_TYPES`).
"""

import weakref

import keras

from tf_sanity.errors import SanityError

L = keras.layers

DEPTHWISE_TYPES = (L.DepthwiseConv1D, L.DepthwiseConv2D)
SEPARABLE_TYPES = (L.SeparableConv1D, L.SeparableConv2D)
KERNEL_TYPES = (L.Dense, L.Conv1D, L.Conv2D, L.Conv3D) + DEPTHWISE_TYPES + SEPARABLE_TYPES
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
    return _flatten(model.layers, lambda layer: _is_model(layer) or bool(getattr(layer, "layers", None)),
                    leaf_layers)


def _flatten(items, nested, flatten):
    """`items` with each nested one replaced by ``flatten(item)``; records nested models' boundaries."""
    out = []
    for item in items:
        if not nested(item):
            out.append(item)
            continue
        if _is_model(item):
            _record_boundary(item)
        out.extend(flatten(item))
    return out


# The sentinel :func:`consumers` lists for an output of the whole model.
MODEL_OUTPUT = "model output"

# An InputLayer or output layer of a nested model's graph -> a weak reference to the nested model as its outer
# graph sees it (weak: a strong one would keep the key, one of the nested model's own layers, alive for ever).
_NESTED_BY_INPUT = weakref.WeakKeyDictionary()
_NESTED_BY_OUTPUT = weakref.WeakKeyDictionary()


def _nested(table, op):
    """The nested model `table` records for `op`, or None."""
    ref = table.get(op)
    return None if ref is None else ref()


def model_graph(model):
    """The functional graph of `model` (a Functional, or a built Sequential's), or None (subclassed)."""
    if isinstance(model, keras.Sequential):
        return getattr(model, "_functional", None)
    if isinstance(model, keras.src.models.functional.Functional):
        return model
    return None


def _is_model(op):
    return isinstance(op, keras.Model)


def leaf_operations(model):
    """Every operation `model` runs: leaf layers and raw ops, nested models flattened, in graph order.

    Records how each nested model connects to the graph around it, for :func:`parents` and
    :func:`consumers`.

    Raises:
      SanityError: `model`, or a model nested in it, is subclassed: its ``call`` is Python code whose
        operations cannot be reached.
    """
    fn = model_graph(model)
    if fn is None:
        raise SanityError(f"model {model.name!r} ({type(model).__name__}) is a subclassed model: the operations "
                          f"in its call() cannot be reached by backward rules; build it as a functional or "
                          f"Sequential model, or use a gradient method")
    return _flatten(fn.operations, _is_model, leaf_operations)


def _record_boundary(nested):
    """Remembers which graph operations are the inputs and outputs of model `nested`."""
    inner = model_graph(nested)
    for tensor in getattr(inner, "inputs", None) or []:
        _NESTED_BY_INPUT[tensor._keras_history.operation] = weakref.ref(nested)
    for tensor in getattr(inner, "outputs", None) or []:
        if _nested(_NESTED_BY_OUTPUT, tensor._keras_history.operation) is None:
            _NESTED_BY_OUTPUT[tensor._keras_history.operation] = weakref.ref(nested)


def _producer(tensor):
    """The leaf operation that computes symbolic `tensor`, looking inside nested models."""
    op, _, index = tensor._keras_history
    if _is_model(op) and model_graph(op) is not None:
        return _producer(model_graph(op).outputs[index])
    outer = _nested(_NESTED_BY_INPUT, op)
    if isinstance(op, L.InputLayer) and outer is not None and len(outer._inbound_nodes) == 1:
        inner_inputs = model_graph(outer).inputs
        position = [t._keras_history.operation for t in inner_inputs].index(op)
        return _producer(outer._inbound_nodes[0].input_tensors[position])
    return op


def parents(layer):
    """The leaf operations feeding `layer` (its only call), or None if it was called more than once.

    The model's own input layers have no parents; the input layer of a nested model has the
    operations feeding the nested model.
    """
    nodes = layer._inbound_nodes
    if len(nodes) != 1:
        return None
    outer = _nested(_NESTED_BY_INPUT, layer)
    if isinstance(layer, L.InputLayer) and outer is not None:
        return None if len(outer._inbound_nodes) != 1 else [_producer(t) for t in outer._inbound_nodes[0].input_tensors]
    return [_producer(t) for t in nodes[0].input_tensors]


def _users(op):
    """The leaf operations (and :data:`MODEL_OUTPUT`) that take the output of graph operation `op`."""
    out = []
    for node in op._outbound_nodes:
        user = node.operation
        if _is_model(user) and model_graph(user) is not None:
            for tensor in model_graph(user).inputs:  # enter the nested model at its input layer(s)
                out.extend(_users(tensor._keras_history.operation))
        else:
            out.append(user)
    outer = _nested(_NESTED_BY_OUTPUT, op)
    if outer is not None:
        out.extend(_users(outer))  # leave the nested model
    elif not op._outbound_nodes:
        out.append(MODEL_OUTPUT)
    return out


def consumers(layer):
    """The leaf operations that take `layer`'s output, with :data:`MODEL_OUTPUT` for a model output."""
    return _users(layer)


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
    crosses nested models' boundaries (a backbone's first conv after a ``Rescaling`` outside it is not first).
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
