"""The small convnet of "When Explanations Lie" (Sixt, Granz & Landgraf, ICML 2020, appendix D),
trained on MNIST / Fashion-MNIST through :mod:`tf_sanity.models.training` and cached.

The paper's network for CIFAR-10 (their ``load_cifar10``): conv 3x3x32, conv 3x3x64, max-pool 2,
conv 3x3x128, conv 3x3x128, max-pool 2, flatten, dropout 0.5, dense 1024, dropout 0.5, dense 10,
ReLU after every conv and the first dense layer, 'same' padding; Adam, batch 32, 100 epochs, with
random shifts (10 %) and horizontal flips. Here the same architecture takes 28 x 28 x 1 MNIST /
Fashion-MNIST images in [0, 1], or CIFAR-10's 32 x 32 x 3 (``trained("cifar10")``; tfds downloads it
when online, or reads ``cifar-10-binary.tar.gz`` from the data folder), the ReLUs are fused into the layers
(``activation="relu"``) and the layers keep the authors' names (``conv1``, ``conv2``, ``pool2``,
``conv3``, ``conv4``, ``pool4``, ``fc5``, ``fc6``).

Differences from the paper's training, stated where results are reported: no augmentation
(:func:`tf_sanity.models.training.train` has no augmentation hook, and horizontal flips do not suit
digits; on CIFAR-10 this costs accuracy), and far fewer epochs on CPU (:data:`PROFILES`).
"""

import dataclasses
import datetime
import json
import os
import pathlib

import keras

from tf_sanity.models import datasets, ledger, training
from tf_sanity.errors import unknown_name

INPUT_SHAPE = (28, 28, 1)
INPUT_SHAPES = {"cifar10": (32, 32, 3)}  # other datasets: INPUT_SHAPE
NUM_CLASSES = 10
GROUPS = ("fc6", "fc5", "conv4", "conv3", "conv2", "conv1")  # cascading order, top down

# Adam with Keras' default learning rate 1e-3 (the authors' Keras code), batch 32, no weight decay.
PROFILES = {
    "paper": training.Profile("sixt_paper", learning_rate=1e-3, batch_size=32, epochs=100, weight_decay=0.0),
    "cpu": training.Profile("sixt_cpu", learning_rate=1e-3, batch_size=32, steps=800, weight_decay=0.0),
    "quick": training.Profile("sixt_quick", learning_rate=1e-3, batch_size=32, steps=300, weight_decay=0.0),
}


WIDTHS = (32, 64, 128, 128, 1024)  # conv1..conv4 filters, fc5 units


def convnet(name="sixt_convnet", input_shape=INPUT_SHAPE, classes=NUM_CLASSES, widths=WIDTHS):
    """Builds the small convnet (appendix D) for `input_shape` images; outputs logits.

    Args:
      widths: filters of conv1..conv4 and units of fc5 (the paper's by default; narrower for tests).

    Returns:
      A ``keras.Model`` with ``randomization_groups`` top down (``fc6`` first).
    """
    conv = dict(kernel_size=3, padding="same", activation="relu")
    inputs = keras.Input(input_shape, name="image")                         # 28 x 28 x 1 (MNIST)
    x = keras.layers.Conv2D(widths[0], name="conv1", **conv)(inputs)        # 28 x 28 x 32
    x = keras.layers.Conv2D(widths[1], name="conv2", **conv)(x)             # 28 x 28 x 64
    x = keras.layers.MaxPooling2D(2, name="pool2")(x)                        # 14 x 14 x 64
    x = keras.layers.Conv2D(widths[2], name="conv3", **conv)(x)             # 14 x 14 x 128
    x = keras.layers.Conv2D(widths[3], name="conv4", **conv)(x)             # 14 x 14 x 128
    x = keras.layers.MaxPooling2D(2, name="pool4")(x)                        # 7 x 7 x 128
    x = keras.layers.Flatten(name="flatten")(x)                              # 6272
    x = keras.layers.Dropout(0.5, name="dropout5")(x)
    x = keras.layers.Dense(widths[4], activation="relu", name="fc5")(x)      # 1024
    x = keras.layers.Dropout(0.5, name="dropout6")(x)
    logits = keras.layers.Dense(classes, name="fc6")(x)                      # 10
    model = keras.Model(inputs, logits, name=name)
    model.randomization_groups = [(g, [g]) for g in GROUPS]
    return model


def model_dir(dataset, profile, seed=0, cache_dir=None):
    """``<cache>/models/sixt_convnet-<dataset>-<profile>-seed<seed>``."""
    root = pathlib.Path(cache_dir) if cache_dir else datasets.cache_dir()
    return root / "models" / f"sixt_convnet-{dataset}-{profile.name}-seed{seed}"


def trained(dataset, profile="cpu", *, seed=0, data_dir=None, cache_dir=None, progress=False):
    """The convnet trained on `dataset` (``"mnist"``, ``"fashion_mnist"`` or ``"cifar10"``), cached or trained now.

    Training resumes from the last epoch's checkpoint if interrupted.

    Returns:
      ``(model, metadata)``; metadata has the test accuracy, steps and training time.
    """
    if isinstance(profile, str):
        if profile not in PROFILES:
            raise unknown_name("profile", profile, PROFILES)
        profile = PROFILES[profile]
    folder = model_dir(dataset, profile, seed, cache_dir)
    weights, meta_path = folder / "model.weights.h5", folder / "metadata.json"
    keras.utils.set_random_seed(seed)
    model = convnet(name=f"sixt_convnet_{dataset}", input_shape=INPUT_SHAPES.get(dataset, INPUT_SHAPE))
    if weights.is_file() and meta_path.is_file():
        model.load_weights(weights)
        metadata = {**json.loads(meta_path.read_text()), "from_cache": True}
        ledger.record(f"sixt-{dataset}", metadata, profile.schedule())
        return model, metadata
    data = datasets.load(dataset, data_dir)
    folder.mkdir(parents=True, exist_ok=True)
    result = training.train(model, data, profile, seed=seed, checkpoint_path=folder / "checkpoint.npz",
                            progress=progress)
    tmp = folder / f"partial{os.getpid()}.weights.h5"
    model.save_weights(tmp)
    os.replace(tmp, weights)
    metadata = dict(dataset=dataset, profile=dataclasses.asdict(profile), seed=seed,
                    test_accuracy=result.test_accuracy, train_accuracy=result.train_accuracy,
                    steps=result.steps, epochs=result.epochs, training_time_s=round(result.training_time_s, 1),
                    data_checksum_sha256=data.checksum,
                    created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))
    meta_path.write_text(json.dumps(metadata, indent=1))
    (folder / "checkpoint.npz").unlink(missing_ok=True)
    metadata = {**metadata, "from_cache": False}
    ledger.record(f"sixt-{dataset}", metadata, profile.schedule())
    return model, metadata
