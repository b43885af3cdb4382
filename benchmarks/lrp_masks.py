"""LRP masks of ResNet50 with the code of a given checkout, to compare two versions' values.

    python benchmarks/lrp_masks.py CHECKOUT OUT.npz [--batch-size N]   # e.g. a worktree of an older commit
    python benchmarks/lrp_masks.py --compare A.npz B.npz

The model is ``keras.applications.ResNet50(weights=None, classifier_activation=None)`` at 112x112, seeded,
on 2 seeded random images (targets 3 and 7); the masks are LRP-epsilon's, LRP-z's and LRP-alpha1beta0's.
``--compare`` prints, per method, the largest difference relative to the first file's largest value and the
correlation. Used for taking LRP's ``z`` from the forward pass (docs/speed.md).
"""

import argparse
import os
import sys

import numpy as np

METHODS = ("lrp_epsilon", "lrp_z", "lrp_alpha1beta0")


def masks(checkout, out, batch_size):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.path.insert(0, checkout)
    import keras
    import tf_sanity
    print("tf_sanity from", tf_sanity.__file__)
    keras.utils.set_random_seed(0)
    model = keras.applications.ResNet50(weights=None, input_shape=(112, 112, 3), classifier_activation=None)
    x = np.random.default_rng(0).uniform(0, 255, (2, 112, 112, 3)).astype(np.float32)
    np.savez(out, **{m: tf_sanity.explain(model, x, m, [3, 7], batch_size=batch_size) for m in METHODS})


def compare(a, b):
    first, second = np.load(a), np.load(b)
    for name in first.files:
        u, v = first[name].astype(np.float64), second[name].astype(np.float64)
        print(f"{name}: max |difference| / max |mask| = {np.abs(u - v).max() / np.abs(u).max():.1e}, "
              f"correlation {np.corrcoef(u.ravel(), v.ravel())[0, 1]:.7f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("paths", nargs=2)
    parser.add_argument("--compare", action="store_true")
    parser.add_argument("--batch-size", type=int, default=128)
    args = parser.parse_args()
    compare(*args.paths) if args.compare else masks(*args.paths, args.batch_size)
