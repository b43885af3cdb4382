"""Compiled, batched gradients of a model's class scores: the one place methods touch TensorFlow.

Every method reduces to calls of a compiled function that returns, for a batch, the gradient (or,
under backward rules, the propagated signal) of each image's target score:

* :func:`gradient_function` ``f(x, targets)``: at the input, or at a named layer for GradCAM;
* :func:`paired_function` ``f(x, reference, targets)``: DeepLIFT's pass on ``[x; reference]``;
* :func:`layer_function` ``f(x, reference, injected)``: a signal injected at a layer and read at
  lower layers (cosine similarity convergence);
* :func:`scores_function` ``f(x)``: the forward pass.

Functions are compiled once per (model, composite, ...) with a batch-polymorphic input signature
and cached per model (weakly: a model the user drops is freed); since they capture the model's
variables by reference, randomizing weights in place needs no retrace. Backward rules
(:mod:`tf_sanity.attribution.composites`) are applied only while tracing. Inside :func:`distribute`,
every one of them splits its rows over a ``tf.distribute`` strategy's replicas.

:func:`map_batches` feeds any number of rows through such a function in chunks of ``batch_size``:
methods expand images into rows (integration steps, noise samples) and reduce afterwards.
"""

import contextlib
import weakref

import keras
import numpy as np
import tensorflow as tf
from tensorflow.python.framework import ops as tf_ops

from tf_sanity.attribution import composites, graph
from tf_sanity.errors import SanityError

DEFAULT_BATCH_SIZE = 128
# Rows fed through compiled functions by :func:`map_rows`: forward + backward passes, one per row (the
# check's cost counter, :mod:`tf_sanity.checks.suite`).
PASSES = [0]

# model -> {key: compiled function}. The traces hold the model only by a weak reference (:func:`_model_of`), so
# an entry does not keep its key alive: a model the user drops is freed, with its functions.
_CACHE = weakref.WeakKeyDictionary()
_STRATEGY = [None]


def _model_of(ref):
    """The model behind weak reference `ref`, for a trace (it is alive whenever its function is called)."""
    model = ref()
    if model is None:
        raise SanityError("the model of this compiled function has been deleted")
    return model


@contextlib.contextmanager
def _released_gradients():
    """Drops the gradient functions that ``tf.custom_gradient`` registers while tracing in the context.

    Inside a ``tf.function`` TensorFlow registers every custom gradient (each backward rule) in its global
    gradient registry under a fresh name and never removes it (tensorflow/tensorflow#27492, #97697). The
    registered closures refer to the rules' layers and the traced graph, which would stay alive for ever. A
    traced function here already holds its backward pass, so they are not needed once its tracing is done.
    Without the (private) registry this does nothing.
    """
    registry = getattr(getattr(tf_ops, "_gradient_registry", None), "_registry", None)
    before = set(registry) if isinstance(registry, dict) else None
    try:
        yield
    finally:
        if before is not None:
            for name in set(registry) - before:
                if name.startswith("CustomGradient-"):
                    registry.pop(name, None)


@contextlib.contextmanager
def distribute(strategy):
    """Spreads every chunk of rows over the replicas of a ``tf.distribute`` strategy.

    Inside the context, every function this module returns splits each chunk into one contiguous slice per replica, run them with
    ``strategy.run`` and concatenate the results in order. Build (or load) the model under
    ``strategy.scope()`` so its variables are mirrored on every device::

        strategy = tf.distribute.MirroredStrategy()      # all visible GPUs
        with strategy.scope():
            model = ...
        with tf_sanity.attribution.engine.distribute(strategy):
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
        with _released_gradients():  # the first call traces `step` (and may retrace `fn` in replica context)
            out = step(*inputs)
        return tf.nest.map_structure(lambda o: tf.concat(strategy.experimental_local_results(o), axis=0), out)

    return call


def onehot_seed(scores, targets):
    """Gradient seed: d score[target] / d scores."""
    return tf.one_hot(targets, tf.shape(scores)[-1], dtype=scores.dtype)


def score_seed(scores, targets):
    """LRP seed: the relevance at the output is the target score itself, zero elsewhere."""
    return onehot_seed(scores, targets) * scores


def layer_model(model, layer_name):
    """A keras.Model sharing `model`'s layers with outputs (layer activation, model output)."""
    return keras.Model(model.inputs, [graph.get_layer(model, layer_name).output, model.outputs[0]])


def _spec(shape):
    return tf.TensorSpec([None, *shape], tf.float32)


_TARGETS = tf.TensorSpec([None], tf.int32)


def _rules(model, composite):
    """The context in which `composite`'s rules apply to `model` (nothing for the plain gradient)."""
    return composites.applied(model, composite) if composite is not None else contextlib.nullcontext()


def cached_function(model, key, make):
    """A compiled function of `model` built once per `key` by ``make() -> (trace, input_signature)``.

    For other per-model computations (e.g. PatternNet's statistics), with the same caching, single
    trace and :func:`distribute` splitting as the functions above.
    """
    return _compiled(model, ("custom", key), None, make)


def _compiled(model, key, composite, make):
    """The cached compiled function for (`model`, `key`), or its distributed wrapper.

    Args:
      make: ``() -> (trace, input_signature)``, called once per key.

    A composite is applied once untraced first, so that unsupported layers fail with their
    ``SanityError`` before any tracing. The function is traced here, once (:func:`_released_gradients`).
    """
    per_model = _CACHE.setdefault(model, {})
    if key not in per_model:
        with _rules(model, composite):
            pass
        trace, signature = make()
        fn = _one_trace(tf.function(trace, input_signature=signature, autograph=False))
        with _released_gradients():
            fn.get_concrete_function()
        per_model[key] = fn
    return _maybe_distributed(per_model, key)


def gradient_function(model, composite=None, layer=None, seed=onehot_seed):
    """Returns the compiled ``f(x, targets)`` for `model`.

    Args:
      model: a built single-input Keras model whose (first) output is ``[batch, classes]`` scores.
      composite: backward rules (:class:`tf_sanity.attribution.composites.Composite`) or None.
      layer: if given, ``f`` returns ``(activations, gradients)`` at that layer instead of the
        gradient at the input.
      seed: ``seed(scores, targets) -> output gradient`` started from at the output.

    Returns:
      A ``tf.function`` taking ``x: float32 [B, ...]`` and ``targets: int32 [B]``.
    """
    def make():
        forward = layer_model(model, layer) if layer else None
        ref = weakref.ref(model)

        def trace(x, targets):
            model = _model_of(ref)
            with _rules(model, composite):
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

        return trace, [_spec(model.input_shape[1:]), _TARGETS]

    return _compiled(model, ("gradient", composite, layer, seed), composite, make)


def paired_function(model, composite, seed=onehot_seed):
    """Compiled ``f(x, reference, targets) -> signal at x``, the forward pass on ``[x; reference]``.

    DeepLIFT's rescale rule (:mod:`tf_sanity.attribution.deeplift`) needs the reference's
    activations: the model runs on one batch of ``2n`` rows and the output is seeded with
    ``[seed(scores of x, targets); 0]``; what reaches the reference rows is dropped.
    """
    ref = weakref.ref(model)

    def trace(x, reference, targets):
        model = _model_of(ref)
        n = tf.shape(x)[0]
        both = tf.concat([x, reference], 0)
        with _rules(model, composite):
            with tf.GradientTape() as tape:
                tape.watch(both)
                scores = model(both, training=False)
            top = seed(scores[:n], targets)
            grads = tape.gradient(scores, both, output_gradients=tf.concat([top, tf.zeros_like(top)], 0))
        return grads[:n]

    shape = model.input_shape[1:]
    return _compiled(model, ("paired", composite, seed), composite,
                     lambda: (trace, [_spec(shape), _spec(shape), _TARGETS]))


def layer_function(model, composite, start, reads, paired=False, at="input"):
    """Compiled propagation from the input (or output) of layer `start` down to the outputs of layers `reads`.

    The signal injected at ``start``'s input tensor (the output of the layer below it), or at its output
    tensor (``at="output"``: where Sixt et al.'s CSC notebook sets it, the reversed tensor of
    ``layer.output``), is given; it flows down with `composite`'s rules (through `start` itself when
    injected at its output).

    Args:
      model: a functional or Sequential Keras model.
      composite: backward rules or None.
      start: name of a single-input layer.
      reads: names of layers whose output signal is returned; ``"input"`` is the model input.
      paired: run the forward pass on ``[x; reference]`` and seed ``[injected; 0]``.
      at: ``"input"`` or ``"output"`` of `start`.

    Returns:
      ``f(x, reference, injected) -> (signals, deltas)``: lists with one ``[B, ...]`` tensor per
      read; the deltas are ``activation(x) - activation(reference)`` when paired, else the
      activations of `x`.
    """
    def make():
        start_tensor = graph.input_tensor(model, start) if at == "input" else graph.get_layer(model, start).output
        layer_reads = [name for name in reads if name != "input"]
        sub = keras.Model(model.inputs, [start_tensor] + [graph.get_layer(model, name).output for name in layer_reads])
        shape, ref = model.input_shape[1:], weakref.ref(model)
        return (lambda x, reference, injected: _propagate_from_layer(
                    _model_of(ref), composite, sub, reads, layer_reads, paired, x, reference, injected),
                [_spec(shape), _spec(shape), _spec(start_tensor.shape[1:])])

    return _compiled(model, ("layer", composite, start, tuple(reads), paired, at), composite, make)


def _propagate_from_layer(model, composite, sub, reads, layer_reads, paired, x, reference, injected):
    """The traced body of :func:`layer_function`."""
    n = tf.shape(x)[0]
    inputs = tf.concat([x, reference], 0) if paired else x
    with _rules(model, composite):
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            outs = sub(inputs, training=False)
        outs = outs if isinstance(outs, (list, tuple)) else [outs]
        # The tensors the forward pass used, so that the gradient reaches them.
        by_name = dict(zip(layer_reads, outs[1:]), input=inputs)
        top, acts = outs[0], [by_name[name] for name in reads]
        seed = tf.concat([injected, tf.zeros_like(injected)], 0) if paired else injected
        grads = tape.gradient(top, acts, output_gradients=seed,
                              unconnected_gradients=tf.UnconnectedGradients.ZERO)
    signals = [g[:n] for g in grads]
    deltas = [a[:n] - a[n:] if paired else a for a in acts]
    return signals, deltas


def _maybe_distributed(per_model, key):
    """The cached function, or its wrapper for the active strategy (cached too: no retracing)."""
    strategy = _STRATEGY[0]
    if strategy is None or strategy.num_replicas_in_sync == 1:
        return per_model[key]
    wrapped_key = (key, "distributed", id(strategy))
    if wrapped_key not in per_model:
        per_model[wrapped_key] = _distributed(per_model[key], strategy)
    return per_model[wrapped_key]


def _one_trace(fn):
    """Marks `fn` (fixed input signature: traced once) as exempt from TF's "frequent retracing" warning.

    TF counts traces per Python code object, so one compiled function per model and method (this
    module's design) reads to it as a function re-created in a loop, and it prints a long warning
    once a run has explained a few models. The flag is the one TF sets on functions it restores
    from a SavedModel.
    """
    fn._omit_frequent_tracing_warning = True
    return fn


def scores_function(model):
    """The compiled forward pass ``f(x) -> scores`` of `model` (cached)."""
    per_model = _CACHE.setdefault(model, {})
    if "scores" not in per_model:
        ref = weakref.ref(model)
        per_model["scores"] = _one_trace(tf.function(lambda x: _model_of(ref)(x, training=False),
                                                     input_signature=[_spec(model.input_shape[1:])],
                                                     autograph=False))
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
        PASSES[0] += stop - start
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
