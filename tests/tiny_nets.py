"""Tiny Keras networks with fixed weights and their numpy twins (:mod:`tests.numpy_backprop`): ReLU nets,
and nets with other element-wise activations (:func:`unit_dense_net`, :func:`unit_conv_net`)."""

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


# Activations of the unit nets: kind -> (fused activation or None, standalone layer, numpy step). PReLU's
# slopes are set per unit by the builders (some negative), so they are built there.
UNITS = {
    "relu": ("relu", lambda: keras.layers.ReLU(), nb.relu_family()),
    "relu6": ("relu6", lambda: keras.layers.ReLU(6.0), nb.relu_family(max_value=6.0)),
    "leaky_relu": ("leaky_relu", lambda: keras.layers.Activation("leaky_relu"), nb.relu_family(0.2)),
    "leaky_relu_layer": (None, lambda: keras.layers.LeakyReLU(0.3), nb.relu_family(0.3)),
    "threshold": (None, lambda: keras.layers.ReLU(threshold=0.5), nb.relu_family(threshold=0.5)),
    "capped_leaky": (None, lambda: keras.layers.ReLU(max_value=2.5, negative_slope=0.1),
                     nb.relu_family(0.1, max_value=2.5)),
    **{name: (name, lambda name=name: keras.layers.Activation(name), nb.unit(name)) for name in nb.SMOOTH},
}


def _prelu(alpha_shape, rng):
    """A PReLU layer and its slopes: uniform in [-0.4, 0.8] (negative ones included)."""
    return keras.layers.PReLU(shared_axes=[1, 2] if len(alpha_shape) == 3 else None), \
        rng.uniform(-0.4, 0.8, alpha_shape[-1]).astype(np.float32)


def unit_dense_net(kinds, standalone, seed=0):
    """6 -> Dense 8 <kinds[0]> -> Dense 6 <kinds[1]> -> Dense 3, the activations fused into the Dense
    layers or as standalone layers (kinds in :data:`UNITS`, or "prelu": standalone only). Weights are
    large enough for inputs in [-3, 3] to cross every kink (0, 6, thresholds, caps).

    Returns:
      (model, numpy net).
    """
    rng = _rng(seed)
    inp = keras.Input((6,))
    h, net, sizes = inp, [], (6, 8, 6, 3)
    for k, (n_in, n_out) in enumerate(zip(sizes, sizes[1:])):
        kind = kinds[k] if k < len(kinds) else None
        fused = kind is not None and not standalone and kind != "prelu" and UNITS[kind][0] is not None
        layer = keras.layers.Dense(n_out, activation=UNITS[kind][0] if fused else None, name=f"dense{k}")
        h = layer(h)
        w = (2.0 * rng.standard_normal((n_in, n_out)) / np.sqrt(n_in)).astype(np.float32)
        b = (0.5 * rng.standard_normal(n_out)).astype(np.float32)
        layer.set_weights([w, b])
        net.append(("affine", w.astype(np.float64), b.astype(np.float64)))
        if kind == "prelu":
            act, alpha = _prelu((n_out,), rng)
            h = act(h)
            act.set_weights([alpha])
            net.append(nb.relu_family(alpha.astype(np.float64)))
        elif kind is not None:
            if not fused:
                h = UNITS[kind][1]()(h)
            net.append(UNITS[kind][2])
    return keras.Model(inp, h), net


def unit_conv_net(seed=0):
    """5x5x2 -> conv 3x3x3 same -> PReLU (per channel, shared over space) -> conv 3x3x4 stride 2 same relu6
    (fused) -> flatten -> Dense 5 -> LeakyReLU(0.3) -> Dense 3; returns (model, numpy net)."""
    rng = _rng(seed)
    f32 = lambda a: np.asarray(a, np.float32)  # noqa: E731
    inp = keras.Input((5, 5, 2))
    conv1 = keras.layers.Conv2D(3, 3, padding="same", name="conv1")
    prelu, alpha = _prelu((1, 1, 3), rng)
    conv2 = keras.layers.Conv2D(4, 3, strides=2, padding="same", activation="relu6", name="conv2")
    dense = keras.layers.Dense(5, name="dense")
    out = keras.layers.Dense(3, name="out")
    h = keras.layers.Flatten()(conv2(prelu(conv1(inp))))
    model = keras.Model(inp, out(keras.layers.LeakyReLU(0.3)(dense(h))))
    k1, b1 = f32(rng.standard_normal((3, 3, 2, 3))), f32(0.3 * rng.standard_normal(3))
    k2, b2 = f32(0.8 * rng.standard_normal((3, 3, 3, 4))), f32(0.3 * rng.standard_normal(4))
    w3, b3 = f32(rng.standard_normal((36, 5)) / 3), f32(0.3 * rng.standard_normal(5))
    w4, b4 = f32(rng.standard_normal((5, 3))), f32(0.3 * rng.standard_normal(3))
    for layer, weights in ((conv1, [k1, b1]), (prelu, [alpha.reshape(1, 1, 3)]), (conv2, [k2, b2]),
                           (dense, [w3, b3]), (out, [w4, b4])):
        layer.set_weights(weights)
    d = lambda a: np.asarray(a, np.float64)  # noqa: E731
    m1, s1 = nb.conv_matrix(d(k1), (5, 5, 2), 1, "same")
    m2, s2 = nb.conv_matrix(d(k2), s1, 2, "same")
    net = [("affine", m1, nb.conv_bias(d(b1), s1)), nb.relu_family(np.tile(d(alpha), 25)),
           ("affine", m2, nb.conv_bias(d(b2), s2)), nb.relu_family(max_value=6.0),
           ("affine", d(w3), d(b3)), nb.relu_family(0.3), ("affine", d(w4), d(b4))]
    return model, net


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
