"""The compiled training step of :func:`tf_sanity.models.training.train`, built to run near its floor.

Measured with ``benchmarks/bench_training.py`` (``docs/speed.md``): the batches are gathered inside the compiled
function from the training images held as tensors (no host copy per step), :data:`STEPS_PER_CALL` optimizer steps
run per call, and XLA compiles the step of models without convolutions only (:func:`_xla_is_faster`).
"""

import numpy as np

from tf_sanity.models import augmentation

# Optimizer steps per call of the compiled step (docs/speed.md, benchmarks/bench_training.py).
STEPS_PER_CALL = 10


def _xla_is_faster(model):
    """Whether XLA speeds up `model`'s training step on CPU: yes for dense-only models (MLP: 1.2x), no with
    convolutions (XLA's CPU convolutions made the CNN's step ~20x slower; ``benchmarks/bench_training.py``)."""
    import keras

    return not any(isinstance(layer, keras.layers.Conv2D) for layer in model.layers)


def step_function(model, optimizer, kernels, decay, x_train, y_train, *, augment=False, jit_compile=None):
    """The compiled training step: ``f(indices, offsets, flips) -> (summed loss, correct count)`` over
    ``indices.shape[0]`` steps.

    `indices` is ``(steps, batch)`` int32 rows into `x_train` / `y_train`, which are held in memory as tensors
    and gathered inside the compiled function (no per-step host copy); step ``j`` trains on batch
    ``indices[j]``, shifted and flipped by ``offsets[j]`` ``(batch, 2)`` and ``flips[j]`` ``(batch,)``
    (:func:`tf_sanity.models.augmentation.apply`) when `augment` is set (else those are ignored). Each step is one Adam update of the cross-entropy plus ``decay * sum(l2_loss(kernels))``,
    so several steps per call give the same updates as one call per step. This is the one ``tf.function``
    outside :mod:`tf_sanity.attribution.engine` (training is not attribution). `jit_compile` None: XLA where it
    is faster (:func:`_xla_is_faster`) and the step does not augment.
    """
    import tensorflow as tf

    if jit_compile is None:  # XLA has no kernel for the augmentation's ImageProjectiveTransformV3
        jit_compile = _xla_is_faster(model) and not augment
    x_all = tf.constant(np.asarray(x_train, np.float32))
    y_all = tf.constant(np.asarray(y_train, np.int32))
    variables = model.trainable_variables

    def one_step(index, offsets, flips):
        x, y = tf.gather(x_all, index), tf.gather(y_all, index)
        if augment:
            x = augmentation.apply(x, offsets, flips)
        with tf.GradientTape() as tape:
            logits = model(x, training=True)
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits))
            if kernels and decay:
                loss += decay * tf.add_n([tf.nn.l2_loss(k) for k in kernels])
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss, tf.reduce_sum(tf.cast(tf.equal(tf.argmax(logits, -1, output_type=tf.int32), y), tf.int32))

    @tf.function(jit_compile=jit_compile, reduce_retracing=True, autograph=False)
    def run_steps(indices, offsets, flips):
        def body(j, loss_sum, correct_sum):
            loss, correct = one_step(indices[j], offsets[j], flips[j])
            return j + 1, loss_sum + loss, correct_sum + correct

        _, loss_sum, correct_sum = tf.while_loop(lambda j, *_: j < tf.shape(indices)[0], body,
                                                 (tf.constant(0), tf.constant(0.0), tf.constant(0)))
        return loss_sum, correct_sum

    return run_steps
