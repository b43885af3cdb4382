"""Tiny Keras ReLU networks with fixed weights and their numpy twins (:mod:`tests.numpy_backprop`)."""

import keras
import numpy as np

from tests import numpy_backprop as nb


def _rng(seed):
    return np.random.default_rng(seed)


def dense_net(seed=0, bias=True):
    """6 -> Dense 5 relu -> Dense 4 relu -> Dense 3; returns (model, numpy net, affine step kinds)."""
    rng = _rng(seed)
    inp = keras.Input((6,))
    h, net, kinds = inp, [], []
    sizes = (6, 5, 4, 3)
    for k, (n_in, n_out) in enumerate(zip(sizes, sizes[1:])):
        last = k == len(sizes) - 2
        layer = keras.layers.Dense(n_out, activation=None if last else "relu", name=f"dense{k}")
        h = layer(h)
        w = rng.standard_normal((n_in, n_out)) / np.sqrt(n_in)
        b = 0.3 * rng.standard_normal(n_out) if bias else np.zeros(n_out)
        layer.set_weights([w.astype(np.float32), b.astype(np.float32)])
        net.append(("affine", w.astype(np.float32).astype(np.float64), b.astype(np.float32).astype(np.float64)))
        kinds.append("dense")
        if not last:
            net.append(("relu",))
    return keras.Model(inp, h), net, kinds


def conv_net(seed=0, bias=True):
    """6x6x2 -> conv 3x3x3 same relu -> maxpool 2 -> conv 3x3x4 stride 2 same -> BN -> ReLU -> flatten
    -> Dense 5 relu -> Dense 3. The BN is folded into the conv before it, in the numpy twin too.

    Returns:
      (model, numpy net, kinds of the affine steps: "conv" / "dense").
    """
    rng = _rng(seed)
    f32 = lambda a: np.asarray(a, np.float32)  # noqa: E731
    inp = keras.Input((6, 6, 2))
    conv1 = keras.layers.Conv2D(3, 3, padding="same", activation="relu", name="conv1")
    pool = keras.layers.MaxPooling2D(2, name="pool")
    conv2 = keras.layers.Conv2D(4, 3, strides=2, padding="same", use_bias=bias, name="conv2")
    bn = keras.layers.BatchNormalization(epsilon=1e-3, name="bn")
    relu = keras.layers.ReLU(name="relu2")
    dense1 = keras.layers.Dense(5, activation="relu", name="dense1")
    out = keras.layers.Dense(3, name="out")
    h = relu(bn(conv2(pool(conv1(inp)))))
    model = keras.Model(inp, out(dense1(keras.layers.Flatten(name="flatten")(h))))

    k1, b1 = f32(0.5 * rng.standard_normal((3, 3, 2, 3))), f32(0.2 * rng.standard_normal(3) * bias)
    k2, b2 = f32(0.4 * rng.standard_normal((3, 3, 3, 4))), f32(0.2 * rng.standard_normal(4) * bias)
    gamma, beta = f32(rng.uniform(0.5, 1.5, 4)), f32(0.2 * rng.standard_normal(4) * bias)
    mean, var = f32(0.2 * rng.standard_normal(4) * bias), f32(rng.uniform(0.5, 1.5, 4))
    w3, b3 = f32(rng.standard_normal((16, 5)) / 4), f32(0.2 * rng.standard_normal(5) * bias)
    w4, b4 = f32(rng.standard_normal((5, 3)) / 2), f32(0.2 * rng.standard_normal(3) * bias)
    conv1.set_weights([k1, b1])
    conv2.set_weights([k2, b2] if bias else [k2])
    bn.set_weights([gamma, beta, mean, var])
    dense1.set_weights([w3, b3])
    out.set_weights([w4, b4])

    d = lambda a: np.asarray(a, np.float64)  # noqa: E731
    m1, s1 = nb.conv_matrix(d(k1), (6, 6, 2), 1, "same")
    scale = d(gamma) / np.sqrt(d(var) + 1e-3)
    m2, s2 = nb.conv_matrix(d(k2) * scale, (3, 3, 3), 2, "same")
    folded_bias = (d(b2) - d(mean)) * scale + d(beta)
    net = [("affine", m1, nb.conv_bias(d(b1), s1)), ("relu",), ("maxpool", s1, 2),
           ("affine", m2, nb.conv_bias(folded_bias, s2)), ("relu",),
           ("affine", d(w3), d(b3)), ("relu",), ("affine", d(w4), d(b4))]
    return model, net, ["conv", "conv", "dense", "dense"]


def affine_steps(net):
    """Indices of the affine steps of a numpy net, bottom up."""
    return [k for k, step in enumerate(net) if step[0] == "affine"]


def images(n, shape, low=0.0, high=1.0, seed=1):
    return _rng(seed).uniform(low, high, (n, *shape)).astype(np.float32)
