"""Compiled, batched gradients of a model's class scores: the one place methods touch TensorFlow.

Every method reduces to calls of a compiled function ``f(x, targets)`` that returns, for a batch,
the gradient (or, under backward rules, the propagated signal) of each image's target score with
respect to the input, or with respect to a named layer for GradCAM. Functions are compiled once
per (model, composite, layer, seed) with a batch-polymorphic input signature and cached; since
they capture the model's variables by reference, randomizing weights in place needs no retrace.

:func:`map_batches` feeds any number of rows through such a function in chunks of ``batch_size``:
methods expand images into rows (integration steps, noise samples) and reduce afterwards.
"""

import contextlib
import weakref

import keras
import numpy as np
import tensorflow as tf

from tf_sanity import rules as rules_lib
from tf_sanity.errors import SanityError

DEFAULT_BATCH_SIZE = 128

_CACHE = weakref.WeakKeyDictionary()
_STRATEGY = [None]


@contextlib.contextmanager
def distribute(strategy):
    """Spreads every chunk of rows over the replicas of a ``tf.distribute`` strategy.

    Inside the context, the functions returned by :func:`gradient_function` and
    :func:`scores_function` split each chunk into one contiguous slice per replica, run them with
    ``strategy.run`` and concatenate the results in order. Build (or load) the model under
    ``strategy.scope()`` so its variables are mirrored on every device::

        strategy = tf.distribute.MirroredStrategy()      # all visible GPUs
        with strategy.scope():
            model = ...
        with tf_sanity.engine.distribute(strategy):
            masks = tf_sanity.explain(model, x, "integrated_gradients", targets)
    """
    previous, _STRATEGY[0] = _STRATEGY[0], strategy
    try:
        yield strategy
    finally:
        _STRATEGY[0] = previous


def _distributed(fn, strategy):
    """Wraps compiled `fn` so each call's rows are split across `strategy`'s replicas."""
    replicas = strategy.num_replicas_in_sync
    step = tf.function(lambda *inputs: strategy.run(lambda *a: fn(*a), args=inputs),
                       autograph=False, reduce_retracing=True)

    def call(*args):
        bounds = np.linspace(0, len(args[0]), replicas + 1).astype(int)
        inputs = tuple(strategy.experimental_distribute_values_from_function(
            lambda ctx, a=a: a[bounds[ctx.replica_id_in_sync_group]:bounds[ctx.replica_id_in_sync_group + 1]])
            for a in args)
        out = step(*inputs)
        if isinstance(out, tuple):
            return tuple(tf.concat(strategy.experimental_local_results(o), axis=0) for o in out)
        return tf.concat(strategy.experimental_local_results(out), axis=0)

    return call


def onehot_seed(scores, targets):
    """Gradient seed: d score[target] / d scores."""
    return tf.one_hot(targets, tf.shape(scores)[-1], dtype=scores.dtype)


def score_seed(scores, targets):
    """LRP seed: the relevance at the output is the target score itself, zero elsewhere."""
    return onehot_seed(scores, targets) * scores


def _input_spec(model):
    return tf.TensorSpec([None, *model.input_shape[1:]], tf.float32)


def layer_model(model, layer_name):
    """A keras.Model sharing `model`'s layers with outputs (layer activation, model output)."""
    try:
        layer = model.get_layer(layer_name)
    except ValueError:
        names = [layer.name for layer in rules_lib.leaf_layers(model)
                 if not isinstance(layer, keras.layers.InputLayer)]
        raise SanityError(f"model has no layer {layer_name!r}; layers: {', '.join(names)}") from None
    return keras.Model(model.inputs, [layer.output, model.outputs[0]])


def gradient_function(model, composite=None, layer=None, seed=onehot_seed):
    """Returns the compiled ``f(x, targets)`` for `model`.

    Args:
      model: a built single-input Keras model whose (first) output is ``[batch, classes]`` scores.
      composite: backward rules (:class:`tf_sanity.rules.Composite`) applied while tracing, or None.
      layer: if given, ``f`` returns ``(activations, gradients)`` at that layer instead of the
        gradient at the input.
      seed: ``seed(scores, targets) -> output gradient`` started from at the output.

    Returns:
      A ``tf.function`` taking ``x: float32 [B, ...]`` and ``targets: int32 [B]``.
    """
    key = (composite, layer, seed)
    per_model = _CACHE.setdefault(model, {})
    if key not in per_model:
        if composite is not None:
            with rules_lib.applied(model, composite):  # unsupported layers fail here, untraced
                pass
        per_model[key] = _compile(model, composite, layer, seed)
    return _maybe_distributed(per_model, key)


def _maybe_distributed(per_model, key):
    """The cached function, or its wrapper for the active strategy (cached too: no retracing)."""
    strategy = _STRATEGY[0]
    if strategy is None or strategy.num_replicas_in_sync == 1:
        return per_model[key]
    wrapped_key = (key, "distributed", id(strategy))
    if wrapped_key not in per_model:
        per_model[wrapped_key] = _distributed(per_model[key], strategy)
    return per_model[wrapped_key]


def _compile(model, composite, layer, seed):
    forward = layer_model(model, layer) if layer else None

    def trace(x, targets):
        with (rules_lib.applied(model, composite) if composite else _nothing()):
            with tf.GradientTape() as tape:
                tape.watch(x)
                if forward is None:
                    watched, scores = x, model(x, training=False)
                else:
                    watched, scores = forward(x, training=False)
            grads = tape.gradient(scores, watched, output_gradients=seed(scores, targets))
        if grads is None:  # target not connected to the input: the gradient is zero
            grads = tf.zeros_like(watched)
        return grads if forward is None else (watched, grads)

    return _one_trace(tf.function(trace, input_signature=[_input_spec(model), tf.TensorSpec([None], tf.int32)],
                                  autograph=False))


def _one_trace(fn):
    """Marks `fn` (fixed input signature: traced once) as exempt from TF's "frequent retracing" warning.

    TF counts traces per Python code object, so one compiled function per model and method (this
    module's design) reads to it as a function re-created in a loop, and it prints a long warning
    once a run has explained a few models. The flag is the one TF sets on functions it restores
    from a SavedModel.
    """
    fn._omit_frequent_tracing_warning = True
    return fn


class _nothing:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def scores_function(model):
    """The compiled forward pass ``f(x) -> scores`` of `model` (cached)."""
    per_model = _CACHE.setdefault(model, {})
    if "scores" not in per_model:
        per_model["scores"] = _one_trace(tf.function(lambda x: model(x, training=False),
                                                     input_signature=[_input_spec(model)], autograph=False))
    return _maybe_distributed(per_model, "scores")


def map_rows(fn, n_rows, make_rows, batch_size):
    """Feeds ``n_rows`` rows through ``fn`` in chunks, building each chunk only when needed.

    Args:
      fn: compiled function; called as ``fn(*make_rows(start, stop))``.
      n_rows: total number of rows.
      make_rows: ``(start, stop) -> tuple of arrays`` with ``stop - start`` rows each.
      batch_size: rows per call.

    Yields:
      ``(start, stop, output)`` with the output as numpy (a tuple stays a tuple).
    """
    if batch_size < 1:
        raise SanityError(f"batch_size must be >= 1, got {batch_size}")
    for start in range(0, n_rows, batch_size):
        stop = min(start + batch_size, n_rows)
        out = fn(*make_rows(start, stop))
        out = tuple(np.asarray(o) for o in out) if isinstance(out, tuple) else np.asarray(out)
        yield start, stop, out


def map_batches(fn, batch_size, *arrays):
    """Applies ``fn`` to consecutive chunks of ``arrays`` and concatenates the results."""
    chunks = [out for _, _, out in map_rows(
        fn, len(arrays[0]), lambda a, b: tuple(x[a:b] for x in arrays), batch_size)]
    if isinstance(chunks[0], tuple):
        return tuple(np.concatenate(parts) for parts in zip(*chunks))
    return np.concatenate(chunks)
