"""The ``quick`` check on the trained MNIST CNN against its pass floor (issue 17, item 9; goal <= 1.5x), and the
verdicts behind docs/checks.md.

Runs :func:`tf_sanity.checks.run` (preset ``quick``: three orders, 1 seed, sMPRT N = 10, eMPRT, the random-logit,
CSC, input-invariance and completeness tests) with the six methods of Adebayo et al. (2018), Sec. 2, on the first
``--images`` MNIST test images and their labels. The *floor* is the forward + backward passes the check ran
(counted by the engine) times one pass's measured time (one input, in a batch of 128 rows); the ratio is the
explanation time (everything but the similarity metrics, bootstrap and figures, which are printed apart) over
the floor. Then each verdict with its per-stage medians (``e`` edge-like, ``s`` sensitive, ``u`` undecided) and
the other tests' summaries. Wall and process CPU time (all threads) are printed both: on a shared machine the
CPU-time ratio is the one to read.

    python benchmarks/bench_check.py [--images 16] [--preset quick] [--out DIR]
"""

import argparse
import os
import pathlib
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from bench_verdicts_mnist import mnist_test  # noqa: E402

from tf_sanity import checks  # noqa: E402
from tf_sanity.models import zoo  # noqa: E402

METHODS = ["gradient", "gradient_x_input", "integrated_gradients", "guided_backprop", "gradcam", "guided_gradcam"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--preset", default="quick")
    parser.add_argument("--out", default=None, help="unit folder (a rerun then reuses the units)")
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args()
    model, _ = zoo.load_or_train("mnist-cnn", data_dir=args.data_dir, progress=False)
    x, y = mnist_test(args.images, args.data_dir)
    result = checks.run(model, x, y, methods=METHODS, preset=args.preset, out=args.out, progress=False)
    t = result.timings
    print(f"check [{args.preset}] on mnist-cnn, {len(x)} images, {len(METHODS)} methods: {len(result.rows)} rows")
    for what, key in (("wall", "_s"), ("CPU", "_cpu_s")):
        one = t["pass_time_s" if key == "_s" else "pass_cpu_s"]
        print(f"{what}: passes {t['passes']:,} x {one * 1e3:.3f} ms = floor {t['floor' + key]:.1f} s; explanation "
              f"{t['explain' + key]:.1f} s; ratio {t['explain' + key] / max(t['floor' + key], 1e-9):.2f}; metrics "
              f"{t['metrics' + key]:.1f} s, bootstrap {t['bootstrap' + key]:.1f} s")
    print(f"figures {t['figures_s']:.1f} s (the report's), total {t['total_s']:.1f} s wall")
    for v in result.verdicts:
        stages = " ".join(f"{n.stage}:{n.method.estimate:.2f}{n.kind[0]}" for n in v.stages)
        print(f"{v.order:<12}{v.method:<22}{v.verdict:<32}edge-like until {v.edge_like_until} | {stages}")
    for s in result.summaries:
        print(f"{s['test']:<18}{s['method']:<22}{s['value']:.3f} [{s['low']:.3f}, {s['high']:.3f}] "
              f"{s['passed']}: {s['note']}")
    for method, reason in result.skipped.items():
        print(f"skipped {method}: {reason}")


if __name__ == "__main__":
    main()
