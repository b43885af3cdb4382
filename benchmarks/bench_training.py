"""Training steps/s of the paper's MNIST CNN and MLP (``paper`` profile) against the floor.

The floor is (FLOPs of one training step) / (the machine's matmul rate): the FLOPs come from the layer
shapes (a forward multiply-add is 2 FLOPs; the backward pass costs twice the forward one, except the first
layer, which needs no gradient for its input), and the matmul rate is that of a large ``tf.matmul`` timed
in the same process with the same threads. Adam's update, pooling and ReLUs are left out of the floor
(memory-bound and small), so no implementation reaches it.

Variants (issue 18 item 5), each on real MNIST, batch 50, Adam with the ``paper`` profile's weight decay:

* ``before``: the step as it was (a plain ``tf.function`` called once per step with a host-indexed batch);
* ``gather``: the training images held as tensors, each batch gathered inside the compiled step;
* ``gather+jit``: the same, compiled with XLA (``jit_compile=True``);
* ``gather+jit+k10`` / ``gather+k10``: 10 steps per call of the compiled function.

Rounds interleave the variants (the machine is shared), and the medians over rounds are printed::

    python benchmarks/bench_training.py [--rounds 3] [--steps 100] [--models cnn mlp] [--cpu-time]
"""

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tf_sanity.models import datasets, mnist_models, train_step, training  # noqa: E402

CLOCK = time.perf_counter
VARIANTS = {"before": None, "gather": (False, 1), "gather+jit": (True, 1), "gather+k10": (False, 10),
            "gather+jit+k10": (True, 10)}


def training_flops(model, batch):
    """FLOPs of one training step: forward 2 x multiply-adds of each Conv2D / Dense layer, backward twice that
    (once for the kernel's gradient, once for the input's; the first layer has no input gradient)."""
    total, first = 0, True
    for layer in model.layers:
        kernel = getattr(layer, "kernel", None)
        if kernel is None:
            continue
        fan_in = int(np.prod(kernel.shape[:-1]))
        outputs = int(np.prod(layer.output.shape[1:]))
        forward = 2 * fan_in * outputs * batch
        total += forward * (2 if first else 3)
        first = False
    return total


def matmul_rate(n=2048, reps=10):
    """FLOP/s of an ``n x n`` float32 matmul (best of 3 runs of `reps`)."""
    a = tf.random.normal((n, n), seed=1)
    b = tf.random.normal((n, n), seed=2)
    product = tf.function(lambda a, b: tf.matmul(a, b))
    product(a, b).numpy()
    best = float("inf")
    for _ in range(3):
        start = CLOCK()
        for _ in range(reps):
            out = product(a, b)
        out.numpy()
        best = min(best, CLOCK() - start)
    return 2 * n ** 3 * reps / best


def _before(model, optimizer, kernels, decay, x_train, y_train):
    """The training step before issue 18: one plain tf.function call per step, batch indexed on the host."""

    @tf.function
    def step(x, y):
        with tf.GradientTape() as tape:
            logits = model(x, training=True)
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits))
            loss += decay * tf.add_n([tf.nn.l2_loss(k) for k in kernels])
        optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))
        return loss

    def run(indices):
        for index in indices:
            step(tf.constant(x_train[index]), tf.constant(y_train[index]))
    return run


def make_runner(variant, architecture, data, batch):
    keras.utils.set_random_seed(0)
    model = mnist_models.build(architecture)
    profile = training.PROFILES["paper"]
    optimizer = keras.optimizers.Adam(profile.learning_rate, epsilon=1e-8)
    optimizer.build(model.trainable_variables)
    kernels = training._kernels(model, profile.decay_layers)
    if VARIANTS[variant] is None:
        return model, _before(model, optimizer, kernels, profile.weight_decay, data.x_train, data.y_train), 1
    jit, k = VARIANTS[variant]
    run_steps = train_step.step_function(model, optimizer, kernels, profile.weight_decay, data.x_train,
                                       data.y_train, jit_compile=jit)

    def run(indices):
        for i in range(0, len(indices), k):
            steps = indices[i:i + k]
            loss, _ = run_steps(tf.constant(steps, tf.int32), tf.zeros(steps.shape + (2,)),
                                tf.zeros(steps.shape, tf.bool))
        float(loss)
    return model, run, k


def main():
    global CLOCK
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=100, help="timed steps per variant and round")
    parser.add_argument("--models", nargs="+", default=["cnn", "mlp"], choices=("cnn", "mlp"))
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=tuple(VARIANTS))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cpu-time", action="store_true", help="process CPU time instead of wall time")
    args = parser.parse_args()
    if args.cpu_time:
        CLOCK = time.process_time
    training.configure_threads(args.threads)
    data = datasets.load("mnist", os.environ.get(datasets.DATA_DIR_ENV))
    batch = training.PROFILES["paper"].batch_size
    rng = np.random.default_rng(0)
    indices = rng.permutation(len(data.x_train))[:args.steps * batch].reshape(args.steps, batch)
    runners, times, rates = {}, {}, []
    for architecture in args.models:
        for variant in args.variants:
            model, run, _ = make_runner(variant, architecture, data, batch)
            run(indices[:20])  # trace and compile
            runners[architecture, variant] = run
            times[architecture, variant] = []
    for r in range(args.rounds):
        rates.append(matmul_rate())
        for key, run in runners.items():
            start = CLOCK()
            run(indices)
            times[key].append(CLOCK() - start)
        print(f"round {r + 1}/{args.rounds}: matmul {rates[-1] / 1e9:.1f} GFLOP/s", flush=True)
    rate = statistics.median(rates)
    clock = "CPU" if args.cpu_time else "wall"
    print(f"\nmatmul rate (2048 x 2048 float32, median of {args.rounds}): {rate / 1e9:.1f} GFLOP/s; "
          f"{clock} time, medians over {args.rounds} interleaved rounds of {args.steps} steps")
    print("| model | variant | GFLOP/step | steps/s | floor steps/s | time / floor |")
    print("|---|---|---|---|---|---|")
    for architecture in args.models:
        flops = training_flops(mnist_models.build(architecture), batch)
        floor = rate / flops
        for variant in args.variants:
            steps_s = args.steps / statistics.median(times[architecture, variant])
            print(f"| {architecture} | {variant} | {flops / 1e9:.2f} | {steps_s:.1f} | {floor:.1f} | "
                  f"{floor / steps_s:.2f} |")


if __name__ == "__main__":
    main()
