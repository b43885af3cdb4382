"""A user's own functions as ``tf-sanity check`` takes them (``--method``, ``--preprocess``): for the tests."""

import numpy as np

from tf_sanity.checks import controls


def edges(model, x, targets):
    """A "method" that ignores the model: the Sobel map of the input (the edge-detector control's)."""
    return np.repeat(controls.sobel_map(x)[..., None], x.shape[-1], axis=-1)


def halve(x):
    """A preprocessing: x / 2."""
    return x / 2.0


def reshape(x):
    """A broken preprocessing that changes the shape."""
    return x[:, :1]
