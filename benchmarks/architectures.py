"""Which rule-based methods run on keras.applications backbones (issue 15, item 4's final check).

For each model (random weights, 64x64 input, logits) and method: "ok" if the mask is finite, shaped
like the input and the weights are unchanged, else the one-line refusal. Run from the checkout:

    PYTHONPATH=. python benchmarks/architectures.py [ResNet50 MobileNetV2 DenseNet121 ...]
"""

import sys

import keras
import numpy as np

import tf_sanity
from tf_sanity import SanityError

METHODS = ("lrp_epsilon", "lrp_z", "deeplift", "deep_taylor")
MODELS = ("ResNet50", "MobileNetV2", "DenseNet121")


def check(name, methods=METHODS):
    model = getattr(keras.applications, name)(weights=None, input_shape=(64, 64, 3), classifier_activation=None)
    x = np.random.default_rng(0).uniform(-1, 1, (2, 64, 64, 3)).astype(np.float32)
    before = [w.numpy().copy() for w in model.weights]
    for method in methods:
        try:
            mask = tf_sanity.explain(model, x, method, [1, 2])
            ok = mask.shape == x.shape and np.isfinite(mask).all()
            result = "ok" if ok else f"BAD shape {mask.shape} / not finite"
        except SanityError as error:
            result = f"refused: {error}"
        same = all(np.array_equal(a, w.numpy()) for a, w in zip(before, model.weights))
        print(f"{name:12s} {method:12s} {result}{'' if same else ' WEIGHTS CHANGED'}", flush=True)


if __name__ == "__main__":
    print("tf_sanity from", tf_sanity.__file__)
    for name in sys.argv[1:] or MODELS:
        check(name)
