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

Differences from the paper's training, stated where results are reported: far fewer steps on CPU
(:data:`PROFILES`: ``cpu`` 800 steps without augmentation; ``3k`` / ``10k`` / ``30k`` with the paper's
shift augmentation, and its horizontal flips only where they keep the label, :data:`FLIP_SUITS`).
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

# Adam with Keras' default learning rate 1e-3 (the authors' Keras code), batch 32, no weight decay. The paper
# augments with random shifts of 10 % and horizontal flips (:mod:`tf_sanity.models.augmentation`); ``cpu`` and
# ``quick`` (the first CPU profiles) do not. ``paper`` is 100 epochs = 187,500 steps on MNIST: a GPU's job.
_ADAM = dict(learning_rate=1e-3, batch_size=32, weight_decay=0.0)
_AUGMENT = dict(shift=0.1, flip=True)
PROFILES = {
    "paper": training.Profile("sixt_paper", epochs=100, **_ADAM, **_AUGMENT),
    "cpu": training.Profile("sixt_cpu", steps=800, **_ADAM),
    "quick": training.Profile("sixt_quick", steps=300, **_ADAM),
    # The paper's recipe stopped early, to measure how CSC depends on training (issue 19).
    "3k": training.Profile("sixt_3k", steps=3_000, **_ADAM, **_AUGMENT),
    "10k": training.Profile("sixt_10k", steps=10_000, **_ADAM, **_AUGMENT),
    "30k": training.Profile("sixt_30k", steps=30_000, **_ADAM, **_AUGMENT),
}
# Horizontal flips preserve the label of clothes and of CIFAR-10's objects, not of digits (a mirrored 2, 3,
# 4, 7 or 9 is no digit, and 2 / 5 swap), so they are not applied to MNIST.
FLIP_SUITS = {"mnist": False, "fashion_mnist": True, "cifar10": True}


WIDTHS = (32, 64, 128, 128, 1024)  # conv1..conv4 filters, fc5 units


def convnet(name="sixt_convnet", input_shape=INPUT_SHAPE, classes=NUM_CLASSES, widths=WIDTHS, separate_relu=False):
    """Builds the small convnet (appendix D) for `input_shape` images; outputs logits.

    Args:
      widths: filters of conv1..conv4 and units of fc5 (the paper's by default; narrower for tests).
      separate_relu: the authors' layout (``load_cifar10`` in their ``when_explanations_lie.py``): each ReLU
        an ``Activation`` layer of its own (``relu1`` .. ``relu5``), so that ``conv1`` .. ``fc5`` output the
        pre-activation and CSC reads the relevance there, after the ReLU's backward rule, as they did. The
        weights are the same, in the same order (:func:`authors_layout`).

    Returns:
      A ``keras.Model`` with ``randomization_groups`` top down (``fc6`` first).
    """
    fused = None if separate_relu else "relu"
    relu_count = iter(range(1, 6))

    def relu(x):
        return keras.layers.Activation("relu", name=f"relu{next(relu_count)}")(x) if separate_relu else x

    conv = dict(kernel_size=3, padding="same", activation=fused)
    inputs = keras.Input(input_shape, name="image")                               # 28 x 28 x 1 (MNIST)
    x = relu(keras.layers.Conv2D(widths[0], name="conv1", **conv)(inputs))        # 28 x 28 x 32
    x = relu(keras.layers.Conv2D(widths[1], name="conv2", **conv)(x))             # 28 x 28 x 64
    x = keras.layers.MaxPooling2D(2, name="pool2")(x)                              # 14 x 14 x 64
    x = relu(keras.layers.Conv2D(widths[2], name="conv3", **conv)(x))             # 14 x 14 x 128
    x = relu(keras.layers.Conv2D(widths[3], name="conv4", **conv)(x))             # 14 x 14 x 128
    x = keras.layers.MaxPooling2D(2, name="pool4")(x)                              # 7 x 7 x 128
    x = keras.layers.Flatten(name="flatten")(x)                                    # 6272
    x = keras.layers.Dropout(0.5, name="dropout5")(x)
    x = relu(keras.layers.Dense(widths[4], activation=fused, name="fc5")(x))      # 1024
    x = keras.layers.Dropout(0.5, name="dropout6")(x)
    logits = keras.layers.Dense(classes, name="fc6")(x)                            # 10
    model = keras.Model(inputs, logits, name=name)
    model.randomization_groups = [(g, [g]) for g in GROUPS]
    return model


def authors_layout(model):
    """A copy of trained `model` (fused ReLUs) in the authors' layout (separate ReLU layers), same weights."""
    widths = tuple(model.get_layer(n).kernel.shape[-1] for n in ("conv1", "conv2", "conv3", "conv4", "fc5"))
    copy = convnet(name=f"{model.name}_authors_layout", input_shape=tuple(model.input_shape[1:]),
                   classes=model.output_shape[-1], widths=widths, separate_relu=True)
    copy.set_weights(model.get_weights())
    return copy


def model_dir(dataset, profile, seed=0, cache_dir=None):
    """``<cache>/models/sixt_convnet-<dataset>-<profile>-seed<seed>``."""
    root = pathlib.Path(cache_dir) if cache_dir else datasets.cache_dir()
    return root / "models" / f"sixt_convnet-{dataset}-{profile.name}-seed{seed}"


def trained(dataset, profile="cpu", *, seed=0, data_dir=None, cache_dir=None, progress=False):
    """The convnet trained on `dataset` (``"mnist"``, ``"fashion_mnist"`` or ``"cifar10"``), cached or trained now.

    Training resumes from the last epoch's checkpoint if interrupted; the last checkpoint is kept (weights
    and Adam state) so that a longer profile of the same recipe continues it (:func:`_shorter_run`).

    Returns:
      ``(model, metadata)``; metadata has the test accuracy, steps and training time.
    """
    if isinstance(profile, str):
        if profile not in PROFILES:
            raise unknown_name("profile", profile, PROFILES)
        profile = PROFILES[profile]
    if profile.flip and not FLIP_SUITS.get(dataset, False):
        profile = dataclasses.replace(profile, flip=False)
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
    shorter = _shorter_run(dataset, profile, seed, cache_dir)
    result = training.train(model, data, profile, seed=seed, checkpoint_path=folder / "checkpoint.npz",
                            progress=progress, continue_from=shorter)
    tmp = folder / f"partial{os.getpid()}.weights.h5"
    model.save_weights(tmp)
    os.replace(tmp, weights)
    metadata = dict(dataset=dataset, profile=dataclasses.asdict(profile), seed=seed,
                    test_accuracy=result.test_accuracy, train_accuracy=result.train_accuracy,
                    steps=result.steps, epochs=result.epochs, training_time_s=round(result.training_time_s, 1),
                    continued_from=str(shorter.parent.name) if shorter else None,
                    data_checksum_sha256=data.checksum,
                    created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))
    meta_path.write_text(json.dumps(metadata, indent=1))
    metadata = {**metadata, "from_cache": False}
    ledger.record(f"sixt-{dataset}", metadata, profile.schedule())
    return model, metadata


def _shorter_run(dataset, profile, seed, cache_dir):
    """The kept last checkpoint of the longest cached run of `profile`'s recipe with fewer steps, or None.

    The 3k / 10k / 30k profiles differ only in length (constant learning rate), so a 10k run continues
    the 3k run's checkpoint instead of repeating its 3,000 steps; its training time includes theirs.
    """
    if profile.steps is None:
        return None
    same = [p for p in PROFILES.values() if p.steps is not None and p.steps < profile.steps
            and dataclasses.replace(p, name=profile.name, steps=profile.steps, flip=profile.flip) == profile]
    for shorter in sorted(same, key=lambda p: -p.steps):
        path = model_dir(dataset, shorter, seed, cache_dir) / "checkpoint.npz"
        if path.is_file():
            return path
    return None
