"""ResNet50 at 224x224: the engine's methods against the pass floor (issue 15, item 7; goal <= 1.3x).

The model is ``keras.applications.ResNet50(weights=None, classifier_activation=None)`` (random weights do
not change the timings) and the batch is `--images` random images (default 8) with one target each.

The **floor** is one forward and one backward pass of the same network on the same batch: a plain
``tf.function`` computing the gradient of the target logits with respect to the input, compiled once,
written here rather than taken from the engine so that the engine's own overhead is measured too. A
method that is one (modified) backward pass -- gradient, guided backprop, LRP-epsilon -- is compared
with one floor; IG with ``steps`` floors (its rows are fed ``--images`` at a time, the floor's batch).

Timing: every function is called twice untimed (the first call traces and compiles), then
`--repeats` times (IG `--ig-repeats` times, without warm-up: it runs the gradient's compiled function,
which the gradient's row has already traced and warmed up). The table shows the median wall time and
the median process CPU time (all threads) of those calls, and the ratios of both to the floor's. On a
shared machine the CPU-time ratio is the steadier one.

    python benchmarks/bench_resnet50.py [--images 8] [--steps 50] [--repeats 5] [--profile] [--methods ...]

``--profile`` splits LRP-epsilon's cost into its parts (see :func:`profile`).
"""

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # this checkout's tf_sanity

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import tf_sanity  # noqa: E402
from tf_sanity.attribution import engine, lrp, registry  # noqa: E402
from tf_sanity.attribution.rules import AffineRule, strict_composite, vjp  # noqa: E402


def measure(fn, repeats, warmup=2):
    """``(median wall s, median CPU s)`` of `repeats` calls of `fn` after `warmup` untimed calls."""
    for _ in range(warmup):
        fn()
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls), statistics.median(cpus)


def floor_function(model):
    """The floor: a plain compiled gradient of the target logits w.r.t. the input (one forward + backward)."""
    @tf.function(reduce_retracing=True)
    def floor(x, targets):
        with tf.GradientTape() as tape:
            tape.watch(x)
            scores = model(x, training=False)
            target = tf.reduce_sum(tf.gather(scores, targets, axis=1, batch_dims=1))
        return tape.gradient(target, x)
    return floor


class AffineGradient(AffineRule):
    """The plain gradient of a layer's canonized affine map, recomputed inside the rule: an LRP rule without
    the LRP arithmetic. Its cost over the gradient's is the price of the rule machinery alone."""

    name = "affine vjp"

    def propagate(self, affine, x, upstream, z):
        return vjp(affine.forward, x, upstream)


class RecomputedZ(lrp.EpsilonRule):
    """LRP-epsilon with ``z`` recomputed in the backward pass by the layer's (folded) convolution, as the
    rules did before they took ``z`` from the forward pass: the profile's measure of what that saves."""

    def __init__(self, epsilon):
        super().__init__(epsilon)
        self.name += ", z recomputed"

    def propagate(self, affine, x, relevance, z):
        return super().propagate(affine, x, relevance, None)


class Unfused(lrp.EpsilonRule):
    """LRP-epsilon with ``z`` from the forward pass but its element-wise ratio as separate TF ops, not one
    XLA-fused loop (:func:`tf_sanity.attribution.rules.fused`): the profile's measure of what fusing saves."""

    def __init__(self, epsilon):
        super().__init__(epsilon)
        self.name += ", unfused"

    @property
    def fused_ratio(self):
        return self.ratio


def _row(label, passes, ours, floor):
    (wall, cpu), (floor_wall, floor_cpu) = ours, floor
    return (f"{label:<28}{passes:>7}{wall:>10.2f}{floor_wall * passes:>10.2f}{wall / (floor_wall * passes):>8.2f}"
            f"{cpu:>10.2f}{floor_cpu * passes:>10.2f}{cpu / (floor_cpu * passes):>8.2f}")


HEADER = (f"{'method':<28}{'passes':>7}{'wall s':>10}{'floor':>10}{'ratio':>8}"
          f"{'CPU s':>10}{'floor':>10}{'ratio':>8}")


def compiled(model, x, targets, composite=None, seed=engine.onehot_seed):
    """The engine's compiled function with `composite`, called on the whole batch."""
    fn = engine.gradient_function(model, composite, seed=seed)
    return lambda: fn(x, targets)


def profile(model, x, targets, floor, repeats):
    """Where LRP-epsilon's time goes: the engine's compiled functions, one rule ingredient added at a time.

    * forward only (no backward at all);
    * the engine's plain gradient (the engine's overhead over the floor);
    * guided backprop: a ``tf.custom_gradient`` at each ReLU only;
    * ``affine vjp``: a ``tf.custom_gradient`` at every Conv / Dense with BN folded into it, whose backward
      recomputes the folded affine map and takes its plain vjp (the same gradient, computed the LRP way);
    * LRP-z: the same plus the division by ``z`` (taken from the forward pass) and the product with the input;
    * LRP-epsilon: plus the stabilizer;
    * LRP-epsilon with its ratio's element-wise ops unfused (:class:`Unfused`), and also with ``z`` recomputed
      by a second convolution in the rule (:class:`RecomputedZ`), as before both changes.
    """
    forward = tf.function(lambda v: model(v, training=False))
    lrp_epsilon = registry.make_backprop("lrp_epsilon")
    lrp_z = registry.make_backprop("lrp_z")
    guided = registry.make_backprop("guided_backprop")
    vjp_composite = strict_composite("affine_vjp", relu=None, kernel=AffineGradient(), batchnorm=AffineGradient(),
                                     merge=None)
    recomputed = lrp.lrp_composite("lrp_epsilon_recomputed", RecomputedZ(1e-7))
    unfused = lrp.lrp_composite("lrp_epsilon_unfused", Unfused(1e-7))
    check = compiled(model, x, targets, vjp_composite)().numpy()
    plain = floor(tf.constant(x), tf.constant(targets)).numpy()
    print(f"affine vjp = gradient: max |difference| / max |gradient| = "
          f"{np.abs(check - plain).max() / np.abs(plain).max():.1e}")
    cases = [
        ("forward only", lambda: forward(x)),
        ("engine gradient", compiled(model, x, targets)),
        ("guided backprop (ReLU rule)", compiled(model, x, targets, guided.composite, guided.seed)),
        ("affine vjp (layer rule)", compiled(model, x, targets, vjp_composite)),
        ("LRP-z", compiled(model, x, targets, lrp_z.composite, lrp_z.seed)),
        ("LRP-epsilon", compiled(model, x, targets, lrp_epsilon.composite, lrp_epsilon.seed)),
        ("LRP-epsilon, unfused", compiled(model, x, targets, unfused, lrp_epsilon.seed)),
        ("LRP-epsilon, z recomputed", compiled(model, x, targets, recomputed, lrp_epsilon.seed)),
    ]
    print("\nprofile (compiled functions on the whole batch)\n" + HEADER)
    floor_times = measure(lambda: floor(x, targets), repeats)
    for label, fn in cases:
        print(_row(label, 1, measure(fn, repeats), floor_times), flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--ig-repeats", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="also split LRP-epsilon's time into parts")
    parser.add_argument("--profile-only", action="store_true", help="only the profile")
    parser.add_argument("--methods", default="gradient,guided_backprop,lrp_epsilon,integrated_gradients",
                        help="comma-separated rows of the main table (default: all four)")
    args = parser.parse_args()
    print("tf_sanity from", tf_sanity.__file__)
    print(f"device: {tf.config.list_physical_devices('GPU') or 'CPU'}; cores: {os.cpu_count()}; "
          f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}", flush=True)
    model = keras.applications.ResNet50(weights=None, input_shape=(args.size, args.size, 3),
                                        classifier_activation=None)
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (args.images, args.size, args.size, 3)).astype(np.float32)
    targets = rng.integers(0, 1000, args.images).astype(np.int32)
    floor = floor_function(model)
    if args.profile_only:
        return profile(model, x, targets, floor, args.repeats)
    floor_times = measure(lambda: floor(x, targets), args.repeats)
    print(f"floor (one forward + backward, {args.images} images): {floor_times[0]:.2f} s wall, "
          f"{floor_times[1]:.2f} s CPU\n" + HEADER, flush=True)
    b = args.images
    # IG runs the gradient's compiled function (same model, same batch shape), warmed up by the gradient's row.
    for label, method, passes, settings, repeats, warmup in [
            ("gradient", "gradient", 1, {}, args.repeats, 2),
            ("guided backprop", "guided_backprop", 1, {}, args.repeats, 2),
            ("LRP-epsilon", "lrp_epsilon", 1, {}, args.repeats, 2),
            (f"IG, {args.steps} steps", "integrated_gradients", args.steps, dict(steps=args.steps),
             args.ig_repeats, 0)]:
        if method not in args.methods.split(","):
            continue
        warmup = warmup if "gradient" in args.methods.split(",") else 2  # IG's function unwarmed otherwise
        ours = measure(lambda: tf_sanity.explain(model, x, method, targets, batch_size=b, **settings), repeats,
                       warmup)
        print(_row(label, passes, ours, floor_times), flush=True)
    if args.profile:
        profile(model, x, targets, floor, args.repeats)
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
