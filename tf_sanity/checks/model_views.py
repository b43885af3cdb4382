"""Views of a user's model that the sanity check explains: logits instead of softmax, and the rest of a
text model after its ``Embedding`` (issue 17, items 1 and 5).

* :func:`logits_model`: a model whose last layer applies softmax is explained on its logits, as every
  method here expects (and as the papers do). The view shares the model's layers and variables, so
  randomizing the view's weights randomizes the model's.
* :class:`TokenSplit`: token ids ``[B, T]`` into an ``Embedding`` have no gradient. As captum's
  ``LayerIntegratedGradients`` does for text (Kokhlikyan et al. 2021), the attributions are taken at the
  embedding output and summed over the embedding axis: the model is split once into the embedding
  part and the rest (sharing layers and weights), and each method explains the rest on the embedded
  inputs (:func:`token_method`).
* :func:`input_kind`: ``"image"``, ``"sequence"``, ``"tabular"`` or ``"tokens"`` from the model's input.
"""

import dataclasses
import weakref

import keras
import numpy as np

from tf_sanity.attribution import engine, graph
from tf_sanity.checks.result import INPUT_KINDS
from tf_sanity.errors import SanityError, unknown_name

SOFTMAX_NOTE = "the model ends in softmax: explained on its logits (a view sharing its weights)"


def _is_softmax(fn):
    return getattr(fn, "__name__", "") == "softmax" or fn is keras.activations.softmax


def _output_layer(model):
    history = getattr(model.outputs[0], "_keras_history", None)
    return history.operation if history is not None else model.layers[-1]


def logits_model(model):
    """``(view, note)``: `model` itself and ``""``, or, if its last layer applies softmax, a view of its logits.

    The last layer may be a ``Softmax`` layer, an ``Activation("softmax")`` or a layer with
    ``activation="softmax"`` (Dense, Conv). The view is a functional model over the same layers; a
    fused softmax is dropped by a copy of the last layer (linear activation) that holds the *same*
    variables. The model's ``randomization_groups`` carry over (the copy keeps the layer's name).
    """
    if not getattr(model, "outputs", None) or len(model.outputs) != 1:
        return model, ""
    last = _output_layer(model)
    if isinstance(last, keras.layers.Softmax) or (
            isinstance(last, keras.layers.Activation) and _is_softmax(last.activation)):
        view = keras.Model(model.inputs, last.input, name=f"{model.name}_logits")
    elif _is_softmax(getattr(last, "activation", None)) and hasattr(last, "kernel"):
        view = keras.Model(model.inputs, _linear_copy(last)(last.input), name=f"{model.name}_logits")
    else:
        return model, ""
    if getattr(model, "randomization_groups", None):
        view.randomization_groups = model.randomization_groups
    return view, SOFTMAX_NOTE


def _linear_copy(layer):
    """A copy of `layer` with a linear activation whose variables are `layer`'s own (not copies)."""
    copy = type(layer).from_config({**layer.get_config(), "activation": "linear"})
    for name, value in vars(layer).items():  # Dense's `_kernel`, Conv's `kernel`, `bias`
        if name in ("_kernel", "kernel", "bias") and isinstance(value, keras.Variable):
            setattr(copy, name, value)
    copy.built = True
    if [id(v) for v in copy.weights] != [id(v) for v in layer.weights]:
        raise SanityError(f"could not build a logits view of layer {layer.name!r} ({type(layer).__name__}); "
                          "give the check a model whose last layer outputs logits")
    return copy


def embedding_layer(model):
    """The model's ``Embedding`` layer fed by the input, or None."""
    for layer in graph.leaf_layers(model):
        if isinstance(layer, keras.layers.Embedding):
            return layer
    return None


def input_kind(model, inputs=None, kind=None):
    """The kind of input (:data:`~tf_sanity.checks.result.INPUT_KINDS`): `kind` if given, else inferred.

    ``"tokens"`` for a model with an ``Embedding``; otherwise by the input's rank: ``[B, H, W, C]``
    image, ``[B, T, C]`` sequence, ``[B, F]`` tabular.
    """
    if kind is not None:
        if kind not in INPUT_KINDS:
            raise unknown_name("input kind", kind, INPUT_KINDS)
        return kind
    if embedding_layer(model) is not None:
        return "tokens"
    rank = len(model.input_shape)
    kinds = {4: "image", 3: "sequence", 2: "tabular"}
    if rank not in kinds:
        raise SanityError(f"the model takes inputs of shape {model.input_shape}; the check understands "
                          "[B, H, W, C] images, [B, T, C] sequences, [B, F] tables and [B, T] token ids")
    return kinds[rank]


@dataclasses.dataclass
class TokenSplit:
    """A text model split once at its ``Embedding``: ``embed`` (ids -> vectors) and ``rest`` (vectors -> logits).

    Both share the model's layers, so randomizing the model's variables reaches both.
    """

    model: keras.Model
    embed: keras.Model
    rest: keras.Model

    def embedded(self, tokens):
        """The embedding vectors ``[B, T, E]`` of token ids ``[B, T]`` (the model's current weights)."""
        return np.asarray(engine.scores_function(self.embed)(np.asarray(tokens, np.float32)))


_SPLITS = weakref.WeakKeyDictionary()


def split_tokens(model):
    """`model` split at its ``Embedding`` layer (:class:`TokenSplit`), built once per model; one line of error
    if it cannot be split."""
    if model not in _SPLITS:
        _SPLITS[model] = _split(model)
    return _SPLITS[model]


def _split(model):
    layer = embedding_layer(model)
    if layer is None:
        raise SanityError("token inputs need a model with a keras.layers.Embedding after its input")
    try:
        embed = keras.Model(model.inputs, layer.output)
        rest = keras.Model(layer.output, model.outputs[0])
    except (ValueError, TypeError, AttributeError) as exc:
        raise SanityError(f"could not split the model at its Embedding {layer.name!r} ({exc}); give a "
                          "functional model whose Embedding is called once, on the input") from None
    return TokenSplit(model, embed, rest)


def token_method(method):
    """`method` explaining the rest of the model on the embedded tokens, summed over the embedding axis.

    The returned :class:`~tf_sanity.attribution.methods.Method` takes the whole model and token ids
    (so randomization and targets work on the model) and returns ``[B, T]`` masks; any model with an
    ``Embedding`` (e.g. one trained on permuted labels) is split once (:func:`split_tokens`).
    """
    def compute(model, x, targets, **settings):
        split = split_tokens(model)
        masks = method.compute(split.rest, split.embedded(x), targets, **settings)
        return np.asarray(masks).sum(axis=-1)

    return dataclasses.replace(method, compute=compute, make_backprop=None)
