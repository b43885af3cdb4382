"""Seconds per image of every saliency method on TF-slim Inception v3 (299 x 299), CPU and GPU.

Runs each method of ``tf_sanity.METHODS`` (GradCAM on ``Mixed_7c``; DeepTaylor-bounded with the
input range ``low=-1, high=1``; PatternNet/-Attribution with patterns fitted, untimed, on the benchmark
images) on test-bed images, with the original code's settings by default (IG ``steps=50``, SmoothGrad / VarGrad ``n=50``), on the CPU
and, when ``tf.config.list_physical_devices('GPU')`` finds one, on the GPU (a separate model per
device, so each compiled function is placed on its device).

Every method costs a known number of forward+backward passes per image (gradient 1, IG `steps`,
Guided GradCAM 2, SmoothGrad/VarGrad `n` times their base method). The benchmark first measures one
pass (seconds per image at ``--batch-size``); methods needing more than ``--max-passes`` passes per
image are then *estimated* as passes x pass time and marked ``est.`` instead of being run (on 2 CPU
cores, IG-SG at the paper's settings is 2,500 passes, ~10 minutes per image). Weights do not change
the timings, so without ``--checkpoint`` a randomly initialized model is used.

    python benchmarks/bench_inception.py [--images 2] [--steps 50] [--samples 50] [--max-passes 100]
"""

import argparse
import os
import pathlib
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import slim_models  # noqa: E402
import tf_sanity  # noqa: E402
from slim_models import imagenet  # noqa: E402
from tf_sanity.attribution import engine  # noqa: E402

DEFAULT_IMAGES = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data" / "imagenet"
BASE_PASSES = {"gradient": 1, "gradient_x_input": 1, "guided_backprop": 1, "gradcam": 1,
               "guided_gradcam": 2}


def passes_per_image(name, steps, samples):
    """Forward+backward passes per image of method `name`."""
    base, _, wrapper = name.rpartition("_")
    if wrapper in ("sg", "vg") and base in tf_sanity.METHODS:
        return samples * passes_per_image(base, steps, samples)
    if name == "integrated_gradients":
        return steps
    return BASE_PASSES.get(name, 1)  # modified-backprop methods (LRP, DeepLIFT, ...): one pass


def settings_for(method, steps, samples, batch_size, patterns=None):
    wanted = {"steps": steps, "n": samples, "batch_size": batch_size, "layer": "Mixed_7c",
              "low": -1.0, "high": 1.0, "patterns": patterns}
    return {k: v for k, v in wanted.items() if k in method.settings}


def bench_device(device, args, images, targets):
    with tf.device(device):
        model = (slim_models.load_inception_v3(args.checkpoint) if args.checkpoint
                 else slim_models.inception_v3())
        fn = engine.gradient_function(model)
        rows = np.repeat(images[:1], args.batch_size, axis=0)
        rows_t = np.repeat(targets[:1], args.batch_size).astype(np.int32)
        fn(rows, rows_t)  # trace and warm up
        start = time.perf_counter()
        for _ in range(args.repeat):
            np.asarray(fn(rows, rows_t))
        per_pass = (time.perf_counter() - start) / (args.repeat * args.batch_size)
        print(f"\n[{device}] one forward+backward pass: {per_pass:.4f} s/image "
              f"(batch {args.batch_size})")
        patterns = None
        if any("patterns" in tf_sanity.METHODS[name].settings for name in args.methods):
            # PatternNet/-Attribution: fitted (untimed) on the benchmark images, enough to time them.
            patterns = tf_sanity.attribution.patterns.fit_patterns(model, images, batch_size=args.batch_size)
        print(f"{'method':28s} {'passes/img':>10s} {'s/image':>10s} {'vs passes x pass':>17s}")
        for name in args.methods:
            method = tf_sanity.METHODS[name]
            passes = passes_per_image(name, args.steps, args.samples)
            if passes > args.max_passes:
                print(f"{name:28s} {passes:10d} {passes * per_pass:10.3f} {'est.':>17s}")
                continue
            warm = settings_for(method, 1, 1, args.batch_size, patterns)  # compile outside the timing
            tf_sanity.explain(model, images[:1], name, targets[:1], **warm)
            settings = settings_for(method, args.steps, args.samples, args.batch_size, patterns)
            start = time.perf_counter()
            tf_sanity.explain(model, images, name, targets, **settings)
            seconds = (time.perf_counter() - start) / len(images)
            print(f"{name:28s} {passes:10d} {seconds:10.3f} {seconds / (passes * per_pass):16.2f}x")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=2, help="test-bed images per method")
    parser.add_argument("--test-bed", default=str(DEFAULT_IMAGES), help="folder with labels.csv")
    parser.add_argument("--checkpoint", default=None, help="slim inception_v3.ckpt (default: random)")
    parser.add_argument("--steps", type=int, default=50, help="IG steps (original code: 50)")
    parser.add_argument("--samples", type=int, default=50, help="SmoothGrad/VarGrad n (original: 50)")
    parser.add_argument("--batch-size", type=int, default=16, help="rows per compiled call")
    parser.add_argument("--max-passes", type=int, default=100,
                        help="estimate instead of running methods with more passes per image")
    parser.add_argument("--repeat", type=int, default=3, help="batches timed for the pass time")
    parser.add_argument("--methods", nargs="*", default=list(tf_sanity.METHODS))
    parser.add_argument("--cpu-only", action="store_true")
    args = parser.parse_args()
    unknown = set(args.methods) - set(tf_sanity.METHODS)
    if unknown:
        parser.error(f"unknown methods {sorted(unknown)}; valid: {', '.join(tf_sanity.METHODS)}")

    bed = imagenet.TestBed(args.test_bed, limit=args.images)
    images, labels = bed.load()
    targets = imagenet.to_slim_index(labels)
    gpus = [] if args.cpu_only else tf.config.list_physical_devices("GPU")
    print(f"Inception v3, {len(images)} images {images.shape[1:]}, IG steps {args.steps}, "
          f"SG/VG n {args.samples}; CPU threads: {os.cpu_count()}; GPUs: "
          f"{[g.name for g in gpus] or 'none'}")
    for device in ["/CPU:0"] + [f"/GPU:{i}" for i in range(len(gpus))]:
        bench_device(device, args, images, targets)


if __name__ == "__main__":
    main()
