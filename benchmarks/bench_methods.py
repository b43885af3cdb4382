"""Batched engine vs PAIR's per-image `GetMask` vs the floor, on the paper's MNIST CNN.

Both backends of `tf_sanity.explain` run on the same work (all `--images` images, the same settings):
`backend="tf_sanity"` (the batched engine) and `backend="pair"` (PAIR's `saliency.core` classes, image
by image, over the engine's compiled gradient); the `pair/ours` column is their ratio.

The floor is (number of forward+backward passes) x (time per image of one pass at the best batch
size): what any implementation that computes the same gradients must spend. Goals (issue 2):
>= 10x faster than PAIR, within 1.3x of the floor.

PAIR is run as its examples do (an eager `GradientTape` call_model_function), once with its default
IG batch size of 1 and once with all steps in one call; PAIR is timed on `--pair-images` images and
scaled linearly to `--images` (each image is independent work in PAIR).

    python benchmarks/bench_methods.py [--images 64] [--steps 50] [--samples 50]
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import saliency.core as saliency  # noqa: E402
import tensorflow as tf  # noqa: E402

import tf_sanity  # noqa: E402
from tf_sanity.attribution import engine
from tf_sanity.models import mnist_models  # noqa: E402


CLOCK = time.perf_counter  # --cpu-time switches to process CPU time (all threads), robust to a busy machine


def timed(fn, repeat=1):
    best = float("inf")
    for _ in range(repeat):
        start = CLOCK()
        fn()
        best = min(best, CLOCK() - start)
    return best


def pass_time(model, batch_sizes):
    """Seconds per image of one forward+backward pass, at the best batch size."""
    fn = engine.gradient_function(model)
    rates = {}
    for bs in batch_sizes:
        x = np.random.default_rng(0).random((bs, 28, 28, 1), dtype=np.float32)
        t = np.zeros(bs, np.int32)
        fn(x, t)  # warm up
        reps = max(3, 2048 // bs)
        rates[bs] = timed(lambda: [fn(x, t) for _ in range(reps)], repeat=3) / (reps * bs)
    best = min(rates, key=rates.get)
    return rates[best], best, rates


def pair_call(model):
    def call(x_batch, call_model_args=None, expected_keys=None):
        x_batch = tf.convert_to_tensor(x_batch, tf.float32)
        with tf.GradientTape() as tape:
            tape.watch(x_batch)
            score = model(x_batch)[:, call_model_args["target"]]
        return {saliency.base.INPUT_OUTPUT_GRADIENTS: tape.gradient(score, x_batch).numpy()}
    return call


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--samples", type=int, default=50)
    parser.add_argument("--pair-images", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=256, help="rows per call of the engine")
    parser.add_argument("--cpu-time", action="store_true",
                        help="measure process CPU time instead of wall time (for a machine shared with other work)")
    args = parser.parse_args()
    if args.cpu_time:
        global CLOCK
        CLOCK = time.process_time

    model = mnist_models.cnn()
    rng = np.random.default_rng(0)
    x = rng.random((args.images, 28, 28, 1), dtype=np.float32)
    targets = rng.integers(0, 10, args.images)
    per_pass, best_bs, rates = pass_time(model, (32, 64, 128, 256, 512))
    print(f"device: {tf.config.list_physical_devices('GPU') or 'CPU'}; cores: {os.cpu_count()}; "
          f"clock: {'process CPU time' if args.cpu_time else 'wall time'}")
    print("forward+backward, ms per image by batch size: "
          + ", ".join(f"{bs}: {1e3 * r:.3f}" for bs, r in rates.items()) + f" (best {best_bs})")

    n, s, k = args.images, args.steps, args.samples
    cases = [
        ("IG", "integrated_gradients", dict(steps=s), n * s,
         lambda xi, c, a: saliency.IntegratedGradients().GetMask(xi, c, a, x_steps=s, batch_size=1),
         lambda xi, c, a: saliency.IntegratedGradients().GetMask(xi, c, a, x_steps=s, batch_size=s)),
        ("SmoothGrad", "gradient_sg", dict(n=k), n * k,
         lambda xi, c, a: saliency.GradientSaliency().GetSmoothedMask(xi, c, a, nsamples=k, magnitude=False),
         None),
        ("IG-SmoothGrad", "integrated_gradients_sg", dict(steps=s, n=k), n * s * k,
         lambda xi, c, a: saliency.IntegratedGradients().GetSmoothedMask(
             xi, c, a, nsamples=k, magnitude=False, x_steps=s, batch_size=1),
         lambda xi, c, a: saliency.IntegratedGradients().GetSmoothedMask(
             xi, c, a, nsamples=k, magnitude=False, x_steps=s, batch_size=s)),
    ]
    call = pair_call(model)
    header = f"{'method':<14}{'passes':>9}{'ours s':>9}{'floor s':>9}{'/floor':>8}{'backend=pair s':>16}" \
             f"{'pair/ours':>10}{'PAIR(b=1) s':>13}{'speed-up':>9}{'PAIR(b=steps) s':>17}{'speed-up':>9}"
    print(header)
    for label, method, settings, passes, pair_default, pair_batched in cases:
        tf_sanity.explain(model, x[:2], method, targets[:2], batch_size=args.batch_size, **settings)  # warm up
        ours = timed(lambda: tf_sanity.explain(model, x, method, targets, batch_size=args.batch_size, **settings))
        floor = passes * per_pass
        backend = dict(batch_size=args.batch_size, backend="pair", **settings)
        tf_sanity.explain(model, x[:1], method, targets[:1], **backend)  # warm up
        pair_backend = timed(lambda: tf_sanity.explain(model, x, method, targets, **backend))
        row = f"{label:<14}{passes:>9}{ours:>9.2f}{floor:>9.2f}{ours / floor:>8.2f}{pair_backend:>16.2f}" \
              f"{pair_backend / ours:>9.1f}x"
        for pair in (pair_default, pair_batched):
            if pair is None:
                row += f"{'-':>17}{'-':>9}" if pair is pair_batched else ""
                continue
            m = args.pair_images
            pair_s = timed(lambda: [pair(x[i], call, {"target": int(targets[i])}) for i in range(m)]) * n / m
            row += f"{pair_s:>13.1f}{pair_s / ours:>8.1f}x" if pair is pair_default else \
                f"{pair_s:>17.1f}{pair_s / ours:>8.1f}x"
        print(row, flush=True)


if __name__ == "__main__":
    main()
