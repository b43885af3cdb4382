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


def dense_residual_net(seed=0):
    """6 -> Dense 5 relu (a) -> Dense 5 (c) -> Add(c, a) -> ReLU -> Dense 3, with biases.

    Returns:
      (model, [(W1, b1), (W2, b2), (W3, b3)] as float64) for ``numpy_backprop.residual_lrp``.
    """
    rng = _rng(seed)
    inp = keras.Input((6,))
    d1 = keras.layers.Dense(5, activation="relu", name="d1")
    d2 = keras.layers.Dense(5, name="d2")
    d3 = keras.layers.Dense(3, name="d3")
    a = d1(inp)
    h = keras.layers.ReLU(name="relu")(keras.layers.Add(name="add")([d2(a), a]))
    model = keras.Model(inp, d3(h))
    weights = []
    for layer, (n_in, n_out) in zip((d1, d2, d3), ((6, 5), (5, 5), (5, 3))):
        w = (rng.standard_normal((n_in, n_out)) / np.sqrt(n_in)).astype(np.float32)
        b = (0.3 * rng.standard_normal(n_out)).astype(np.float32)
        layer.set_weights([w, b])
        weights.append((w.astype(np.float64), b.astype(np.float64)))
    return model, weights


def _bn_weights(rng, n, bias):
    gamma = rng.uniform(0.5, 1.5, n)
    beta, mean = (0.2 * rng.standard_normal(n) * bias for _ in range(2))
    return [np.asarray(v, np.float32) for v in (gamma, beta, mean, rng.uniform(0.5, 1.5, n))]


def branching_net(seed=0, bias=True, data_format="channels_last"):
    """A residual and branching conv net with every layer kind the rules canonize (no max pooling).

    6x6x2 -> Rescaling(0.5, offset) -> Conv 3 relu (a) -> Conv 3 -> BN -> Add(., a) -> ReLU (r)
    -> DepthwiseConv 3x3 x2 -> BN (folded per output channel C*M) -> ReLU -> Concatenate(., r)
    -> SeparableConv 4 -> BN -> ReLU -> ZeroPadding -> AveragePooling 2 -> GlobalAveragePooling
    -> Dense 3. With ``bias=False`` every bias, BN shift and offset is zero.
    """
    rng = _rng(seed)
    L = keras.layers
    inp = keras.Input((6, 6, 2))
    h = L.Rescaling(0.5, offset=0.1 * bias, name="rescale")(inp)
    a = L.Conv2D(3, 3, padding="same", activation="relu", use_bias=bias, name="conv_a")(h)
    c = L.BatchNormalization(name="bn_c")(L.Conv2D(3, 3, padding="same", use_bias=bias, name="conv_c")(a))
    r = L.ReLU(name="relu_r")(L.Add(name="add")([c, a]))
    d = L.DepthwiseConv2D(3, padding="same", depth_multiplier=2, use_bias=bias, name="dw")(r)
    d = L.ReLU(name="relu_d")(L.BatchNormalization(name="bn_dw")(d))
    m = L.Concatenate(name="concat")([d, r])
    s = L.SeparableConv2D(4, 3, padding="same", use_bias=bias, name="sep")(m)
    s = L.ReLU(name="relu_s")(L.BatchNormalization(name="bn_sep")(s))
    s = L.AveragePooling2D(2, name="avg")(L.ZeroPadding2D(1, name="pad")(s))
    out = L.Dense(3, use_bias=bias, name="logits")(L.GlobalAveragePooling2D(name="gap")(s))
    model = keras.Model(inp, out)
    for layer in model.layers:
        if isinstance(layer, L.BatchNormalization):
            layer.set_weights(_bn_weights(rng, layer.gamma.shape[0], bias))
        elif layer.weights:
            layer.set_weights([(0.5 * rng.standard_normal(w.shape)).astype(np.float32) if "bias" not in w.path
                               else (0.2 * rng.standard_normal(w.shape)).astype(np.float32) for w in layer.weights])
    return model
