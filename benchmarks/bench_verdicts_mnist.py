"""Verdicts, controls and eMPRT on the trained MNIST CNN: the numbers behind docs/checks.md, with wall times.

Loads the cached ``mnist-cnn`` (``paper`` profile; trains it on first use, ~30 min on 2 cores) and the
first ``--images`` MNIST test images from ``$TF_SANITY_DATA_DIR/mnist``, runs
:func:`tf_sanity.checks.model_randomization` with the two controls for every order and seed, prints
each method's verdict with its per-stage intervals (``e`` edge-like, ``s`` sensitive, ``u`` undecided),
then the median eMPRT score per method.

    python benchmarks/bench_verdicts_mnist.py [--images 16] [--seeds 0 1 2] [--orders top_down bottom_up]
        [--metrics spearman_abs spearman_nz]
"""

import argparse
import gzip
import os
import pathlib
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from tf_sanity import checks  # noqa: E402
from tf_sanity.checks import controls, refinements, verdict  # noqa: E402
from tf_sanity.models import datasets, zoo  # noqa: E402

METHODS = ["gradient", "guided_backprop", "integrated_gradients", "gradient_x_input"]


def mnist_test(n, data_dir):
    root = datasets.resolve_data_dir(data_dir)
    if root is None:
        sys.exit("give --data-dir or set TF_SANITY_DATA_DIR to the folder holding mnist/")
    folder = root / "mnist"
    with gzip.open(folder / "t10k-images-idx3-ubyte.gz") as f:
        x = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28, 1)[:n].astype(np.float32) / 255
    with gzip.open(folder / "t10k-labels-idx1-ubyte.gz") as f:
        y = np.frombuffer(f.read(), np.uint8, offset=8)[:n].astype(np.int32)
    return x, y


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--orders", nargs="+", default=["top_down", "bottom_up"])
    parser.add_argument("--metrics", nargs="+", default=["spearman_abs", "spearman_nz"])
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args()
    model, _ = zoo.load_or_train("mnist-cnn", data_dir=args.data_dir, progress=False)
    x, y = mnist_test(args.images, args.data_dir)
    methods = METHODS + controls.controls(x)
    start = time.perf_counter()
    originals = checks.explain_methods(model, x, y, methods)
    for order in args.orders:
        rows = list(verdict.repeated(checks.model_randomization, args.seeds, model=model, images=x, targets=y,
                                     methods=methods, order=order, similarities=args.metrics, originals=originals))
        for metric in args.metrics:
            for v in verdict.verdicts(rows, metric=metric):
                stages = " ".join(f"{n.stage}:{n.method.estimate:.2f}[{n.method.low:.2f},{n.method.high:.2f}]"
                                  f"{n.kind[0]}" for n in v.stages)
                print(f"{order} {metric} {v.method}: {v.verdict}; edge-like until {v.edge_like_until} | {stages}")
            last = v.stages[-1]
            print(f"  controls at {last.stage}: edge {last.edge}, random {last.random}, halfway band {last.band}")
    print(f"randomization + verdicts: {time.perf_counter() - start:.1f} s")
    start = time.perf_counter()
    rows = list(refinements.efficient_mprt(model, x, y, methods))
    for m in [*METHODS, controls.EDGE_DETECTOR, controls.RANDOM_ATTRIBUTION]:
        print(f"eMPRT {m}: median {np.median([r['value'] for r in rows if r['method'] == m and r['metric'] == 'emprt']):.3f}")
    print(f"eMPRT: {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
