"""The paper's MNIST / Fashion-MNIST networks: a small CNN and a 4-layer MLP.

Reproduces the models of Adebayo et al. (2018), appendix "CNN on MNIST and Fashion MNIST" and
"MLP trained on MNIST", as written in the authors' code (`src/train_cnn_models.py`,
`src/train_mlp_models.py` of adebayoj/sanity_checks_saliency).

Contract shared by both models:
  * Input: a batch of images shaped ``(batch, 28, 28, 1)``, float32, pixel values scaled to
    ``[0, 1]`` (raw uint8 divided by 255), no mean subtraction. The MLP flattens inside.
  * Output: ``(batch, 10)`` logits (no softmax).
  * Every ReLU is fused into its Conv2D / Dense layer (``activation="relu"``), so backward-rule
    overrides must handle fused activations (see :mod:`tf_sanity.attribution.composites`).
  * Layers that own variables are named after the paper's randomization groups, and
    ``model.randomization_groups`` lists ``(group, [layer names])`` in the paper's top-down
    cascading order (output first).
  * Each layer carries the initializer of the authors' code, because the ``original_code``
    randomization policy re-draws a variable from its layer's own initializer:
    CNN weights ``TruncatedNormal(stddev=0.1)`` and biases ``Constant(0.1)``;
    MLP weights ``TruncatedNormal(stddev=2 / sqrt(n_in))`` and zero biases.
    The initializers are unseeded: call ``keras.utils.set_random_seed`` before building for
    reproducible initial weights.
"""

import math

import keras

from tf_sanity.errors import unknown_name

INPUT_SHAPE = (28, 28, 1)
NUM_CLASSES = 10

# Paper order: top down (the output layer is randomized first in the cascade).
CNN_GROUPS = ("output", "fc1", "conv2", "conv1")
MLP_GROUPS = ("output", "hidden3", "hidden2", "hidden1")


def _groups(names):
    return [(name, [name]) for name in names]


def cnn(name="mnist_cnn"):
    """Builds the paper's CNN (parameters: 3,274,634).

    conv 5x5x32 (same) -> max-pool 2x2 -> conv 5x5x64 (same) -> max-pool 2x2 -> fc 1024 -> fc 10,
    ReLU after every layer but the last.

    Args:
      name: the Keras model name.

    Returns:
      An unbuilt-weights-initialized ``keras.Model`` mapping ``(batch, 28, 28, 1)`` images in
      ``[0, 1]`` to ``(batch, 10)`` logits, with ``model.randomization_groups`` set to
      ``[("output", ["output"]), ("fc1", ["fc1"]), ("conv2", ["conv2"]), ("conv1", ["conv1"])]``.
    """
    weights = lambda: keras.initializers.TruncatedNormal(stddev=0.1)  # noqa: E731
    biases = lambda: keras.initializers.Constant(0.1)  # noqa: E731
    conv = dict(kernel_size=5, padding="same", activation="relu")
    inputs = keras.Input(INPUT_SHAPE, name="image")                                   # 28 x 28 x 1
    x = keras.layers.Conv2D(32, name="conv1", kernel_initializer=weights(),
                            bias_initializer=biases(), **conv)(inputs)                # 28 x 28 x 32
    x = keras.layers.MaxPooling2D(2, padding="same", name="pool1")(x)                  # 14 x 14 x 32
    x = keras.layers.Conv2D(64, name="conv2", kernel_initializer=weights(),
                            bias_initializer=biases(), **conv)(x)                     # 14 x 14 x 64
    x = keras.layers.MaxPooling2D(2, padding="same", name="pool2")(x)                  # 7 x 7 x 64
    x = keras.layers.Flatten(name="flatten")(x)                                        # 3136
    x = keras.layers.Dense(1024, activation="relu", name="fc1", kernel_initializer=weights(),
                           bias_initializer=biases())(x)                              # 1024
    logits = keras.layers.Dense(NUM_CLASSES, name="output", kernel_initializer=weights(),
                                bias_initializer=biases())(x)                         # 10
    model = keras.Model(inputs, logits, name=name)
    model.randomization_groups = _groups(CNN_GROUPS)
    return model


def mlp(name="mnist_mlp"):
    """Builds the paper's MLP 784 -> 2500 -> 1500 -> 500 -> 10 (parameters: 6,469,510).

    Args:
      name: the Keras model name.

    Returns:
      A ``keras.Model`` mapping ``(batch, 28, 28, 1)`` images in ``[0, 1]`` to ``(batch, 10)``
      logits (the image is flattened by a ``Flatten`` layer), with ``model.randomization_groups``
      set to ``[("output", ["output"]), ("hidden3", ["hidden3"]), ("hidden2", ["hidden2"]),
      ("hidden1", ["hidden1"])]``.
    """
    inputs = keras.Input(INPUT_SHAPE, name="image")                                   # 28 x 28 x 1
    x = keras.layers.Flatten(name="flatten")(inputs)                                   # 784
    n_in = math.prod(INPUT_SHAPE)
    for layer_name, units in (("hidden1", 2500), ("hidden2", 1500), ("hidden3", 500),
                              ("output", NUM_CLASSES)):
        x = keras.layers.Dense(
            units, activation=None if layer_name == "output" else "relu", name=layer_name,
            kernel_initializer=keras.initializers.TruncatedNormal(stddev=2.0 / math.sqrt(n_in)),
            bias_initializer="zeros")(x)
        n_in = units
    model = keras.Model(inputs, x, name=name)
    model.randomization_groups = _groups(MLP_GROUPS)
    return model


ARCHITECTURES = {"cnn": cnn, "mlp": mlp}


def build(architecture, name=None):
    """Builds a fresh model by architecture name (``"cnn"`` or ``"mlp"``).

    Raises:
      SanityError: for an unknown architecture.
    """
    if architecture not in ARCHITECTURES:
        raise unknown_name("architecture", architecture, ARCHITECTURES)
    return ARCHITECTURES[architecture](**({"name": name} if name else {}))
