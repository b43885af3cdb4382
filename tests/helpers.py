"""Small Keras models with known structure, shared by the tests."""

import keras
import numpy as np


def small_cnn(seed=0, classes=10, fused=True):
    """conv-relu, pool, conv-relu, flatten, dense-relu, dense on 28x28x1 (a small MNIST-like CNN)."""
    keras.utils.set_random_seed(seed)
    inp = keras.Input((28, 28, 1))
    act = "relu" if fused else None
    h = keras.layers.Conv2D(8, 5, padding="same", activation=act, name="conv1")(inp)
    if not fused:
        h = keras.layers.ReLU(name="relu1")(h)
    h = keras.layers.MaxPooling2D(name="pool1")(h)
    h = keras.layers.Conv2D(8, 5, padding="same", activation=act, name="conv2")(h)
    if not fused:
        h = keras.layers.Activation("relu", name="relu2")(h)
    h = keras.layers.Flatten(name="flatten")(h)
    h = keras.layers.Dense(32, activation=act, name="fc1")(h)
    if not fused:
        h = keras.layers.ReLU(name="relu3")(h)
    out = keras.layers.Dense(classes, name="output")(h)
    return keras.Model(inp, out)


def small_mlp(seed=0, classes=10):
    keras.utils.set_random_seed(seed)
    inp = keras.Input((28, 28, 1))
    h = keras.layers.Flatten()(inp)
    h = keras.layers.Dense(32, activation="relu", name="hidden1")(h)
    out = keras.layers.Dense(classes, name="output")(h)
    return keras.Model(inp, out)


def images(n=4, seed=0, shape=(28, 28, 1)):
    return np.random.default_rng(seed).random((n, *shape)).astype(np.float32)


def weights_of(model):
    return [np.array(v.numpy(), copy=True) for v in model.weights]
