"""Slow plain-numpy reference implementations of the modified-backprop rules, from their formulas.

Everything here works on flat vectors: a Keras Dense / Conv2D layer becomes an explicit matrix ``W``
(``z = x @ W + b``) built tap by tap from the definition of cross-correlation with TF's padding,
so the references share no code with :mod:`tf_sanity`. A network is a list of steps::

    ("affine", W, b)          ("relu",)          ("maxpool", in_shape, size)
    ("unit", f, df, family)   any element-wise activation f with local derivative df;
                              family "relu" (the ReLU family) or "smooth" (:func:`unit`)

with NHWC row-major flattening, which is what ``keras.layers.Flatten`` does.
"""

import math

import numpy as np


# ----------------------------------------------------------------------------- networks as matrices

def conv_matrix(kernel, in_shape, strides=1, padding="valid"):
    """The matrix of a 2-D cross-correlation (TF conventions) and its output shape.

    Args:
      kernel: ``[kh, kw, cin, cout]``; in_shape: ``(h, w, cin)``.
    """
    kh, kw, cin, cout = kernel.shape
    h, w, _ = in_shape
    if padding == "same":
        oh, ow = -(-h // strides), -(-w // strides)
        pad_h = max((oh - 1) * strides + kh - h, 0) // 2
        pad_w = max((ow - 1) * strides + kw - w, 0) // 2
    else:
        oh, ow = (h - kh) // strides + 1, (w - kw) // strides + 1
        pad_h = pad_w = 0
    m = np.zeros((h * w * cin, oh * ow * cout))
    for oy in range(oh):
        for ox in range(ow):
            for ky in range(kh):
                for kx in range(kw):
                    iy, ix = oy * strides + ky - pad_h, ox * strides + kx - pad_w
                    if not (0 <= iy < h and 0 <= ix < w):
                        continue
                    for ci in range(cin):
                        for co in range(cout):
                            m[(iy * w + ix) * cin + ci, (oy * ow + ox) * cout + co] += kernel[ky, kx, ci, co]
    return m, (oh, ow, cout)


def conv_bias(bias, out_shape):
    return np.tile(bias, out_shape[0] * out_shape[1])


def maxpool_argmax(x, in_shape, size):
    """For each output of a (size x size, stride size, valid) max pool: the flat index of its input."""
    h, w, c = in_shape
    a = x.reshape(h, w, c)
    index = []
    for oy in range(h // size):
        for ox in range(w // size):
            for ch in range(c):
                window = [(oy * size + dy, ox * size + dx) for dy in range(size) for dx in range(size)]
                iy, ix = max(window, key=lambda p: a[p[0], p[1], ch])
                index.append((iy * w + ix) * c + ch)
    return np.array(index)


def forward(net, x):
    """Runs `net` on a flat input; returns the inputs of every step and the output."""
    inputs = []
    for step in net:
        inputs.append(x)
        if step[0] == "affine":
            x = x @ step[1] + step[2]
        elif step[0] == "relu":
            x = np.maximum(x, 0)
        elif step[0] == "unit":
            x = step[1](x)
        elif step[0] == "maxpool":
            x = x[maxpool_argmax(x, step[1], step[2])]
    return inputs, x


# ----------------------------------------------------------------------------- element-wise activations

def _sigmoid(z):
    return 1 / (1 + np.exp(-z))


def _phi(z):  # the standard normal's cdf and density, for gelu
    erf = np.vectorize(math.erf)
    return 0.5 * (1 + erf(z / np.sqrt(2))), np.exp(-z ** 2 / 2) / np.sqrt(2 * np.pi)


def relu_family(negative_slope=0.0, max_value=None, threshold=0.0):
    """Keras's ``relu(x, negative_slope, max_value, threshold)`` and its derivative, from the formula:
    ``x`` on ``(threshold, max_value)``, ``negative_slope * (x - threshold)`` at or below ``threshold``,
    ``max_value`` at or above it; ``f' = 1`` inside, ``negative_slope`` below, 0 above (kinks outside).
    ``negative_slope`` may be a vector (PReLU's per-unit slopes)."""
    cap = np.inf if max_value is None else max_value

    def f(z):
        return np.where(z > threshold, np.minimum(z, cap), negative_slope * (z - threshold))

    def df(z):
        return np.where(z > threshold, (z < cap).astype(float), negative_slope * np.ones_like(z))

    return ("unit", f, df, "relu")


SMOOTH = {
    "tanh": (np.tanh, lambda z: 1 - np.tanh(z) ** 2),
    "silu": (lambda z: z * _sigmoid(z), lambda z: _sigmoid(z) * (1 + z * (1 - _sigmoid(z)))),
    "gelu": (lambda z: z * _phi(z)[0], lambda z: _phi(z)[0] + z * _phi(z)[1]),
    "elu": (lambda z: np.where(z > 0, z, np.expm1(np.minimum(z, 0))), lambda z: np.where(z > 0, 1.0, np.exp(z))),
    "sigmoid": (_sigmoid, lambda z: _sigmoid(z) * (1 - _sigmoid(z))),
}


def unit(name):
    """A smooth element-wise step of :data:`SMOOTH` (Keras's exact, not approximate, gelu)."""
    f, df = SMOOTH[name]
    return ("unit", f, df, "smooth")


def _unit_functions(step):
    """``(f, df)`` of a "relu" or "unit" step."""
    if step[0] == "relu":
        return (lambda z: np.maximum(z, 0)), (lambda z: (z > 0).astype(float))
    return step[1], step[2]


# ----------------------------------------------------------------------------- LRP rules, textbook form

def _ratio(num, den):
    return num / den if den != 0 else np.zeros_like(num)


def lrp_affine(rule, W, b, x, R, **kw):
    """Relevance of the inputs of ``z_j = sum_i x_i w_ij + b_j``, one output j at a time.

    ``z_ij = x_i w_ij``; rules (Bach et al. 2015; Montavon et al. 2017):
    z: ``sum_j z_ij / z_j R_j``; epsilon: ``z_j + eps sign(z_j)``; alpha_beta:
    ``sum_j (alpha z_ij^+ / z_j^+ - beta z_ij^- / z_j^-) R_j`` with ``b^+``/``b^-`` in the sums;
    zplus: ``z_ij = x_i w_ij^+``, no bias; zB: ``z_ij = x_i w_ij - l w_ij^+ - h w_ij^-``, no bias.
    """
    out = np.zeros(W.shape[0])
    for j in range(W.shape[1]):
        w = W[:, j]
        zij = x * w
        if rule == "z":
            out += _ratio(zij, zij.sum() + b[j]) * R[j]
        elif rule == "epsilon":
            zj = zij.sum() + b[j]
            out += zij / (zj + kw["epsilon"] * (1.0 if zj >= 0 else -1.0)) * R[j]
        elif rule == "alpha_beta":
            pos, neg = np.maximum(zij, 0), np.minimum(zij, 0)
            bp, bn = (max(b[j], 0), min(b[j], 0)) if kw.get("bias", True) else (0.0, 0.0)
            out += (kw["alpha"] * _ratio(pos, pos.sum() + bp) - kw["beta"] * _ratio(neg, neg.sum() + bn)) * R[j]
        elif rule == "zplus":
            zij = x * np.maximum(w, 0)
            out += _ratio(zij, zij.sum()) * R[j]
        elif rule == "zB":
            zij = x * w - kw["low"] * np.maximum(w, 0) - kw["high"] * np.minimum(w, 0)
            out += _ratio(zij, zij.sum()) * R[j]
        else:
            raise ValueError(rule)
    return out


def lrp(net, x, target, rule_of):
    """LRP of the target score through `net`; ``rule_of(step_index) -> (rule, kwargs)`` for affine steps.

    Relevance passes ReLUs and other element-wise units unchanged and goes to the maximum of each
    pooling window.
    """
    inputs, out = forward(net, x)
    R = np.zeros_like(out)
    R[target] = out[target]
    for k in reversed(range(len(net))):
        step = net[k]
        if step[0] == "affine":
            rule, kw = rule_of(k)
            R = lrp_affine(rule, step[1], step[2], inputs[k], R, **kw)
        elif step[0] == "maxpool":
            back = np.zeros_like(inputs[k])
            back[maxpool_argmax(inputs[k], step[1], step[2])] = R
            R = back
    return R


# ----------------------------------------------------------------------------- gradient-like passes

def modified_gradient(net, x, target, relu_rule, seed="onehot", kernels=None, smooth_rule=None):
    """A gradient pass with ReLUs replaced by ``relu_rule(z, a, g)`` and kernels by ``kernels[k]``.

    Args:
      relu_rule: ``(pre-activation z, activation a, upstream g) -> downstream`` at "relu" steps, and
        ``(z, a, g, f'(z)) -> downstream`` at "unit" steps of the ReLU family.
      seed: ``"onehot"`` or ``"score"`` (the target's logit).
      kernels: optional dict step index -> matrix used instead of ``W`` on the way back.
      smooth_rule: ``(z, a, g, f'(z)) -> downstream`` at "smooth" unit steps (default: the gradient).
    """
    inputs, out = forward(net, x)
    g = np.zeros_like(out)
    g[target] = 1.0 if seed == "onehot" else out[target]
    for k in reversed(range(len(net))):
        step = net[k]
        if step[0] == "affine":
            W = (kernels or {}).get(k, step[1])
            g = W @ g
        elif step[0] == "relu":
            z = inputs[k]
            g = relu_rule(z, np.maximum(z, 0), g)
        elif step[0] == "unit":
            z = inputs[k]
            rule = relu_rule if step[3] == "relu" else (smooth_rule or gradient_unit)
            g = rule(z, step[1](z), g, step[2](z))
        elif step[0] == "maxpool":
            back = np.zeros_like(inputs[k])
            back[maxpool_argmax(inputs[k], step[1], step[2])] = g
            g = back
    return g


def gradient_relu(z, a, g):
    return g * (z > 0)


def deconvnet_relu(z, a, g):
    return np.maximum(g, 0)


def rectgrad_relu(q):
    """Kim et al. (2019): keep g where a * g > the q-th percentile of a * g over the layer."""
    def rule(z, a, g, d=None):
        importance = a * g
        return np.where(importance > np.percentile(importance, q), g, 0.0)
    return rule


# Rules at "unit" steps: (z, a = f(z), g, d = f'(z)) -> downstream.

def gradient_unit(z, a, g, d):
    return g * d


def guided_unit(z, a, g, d):
    """Guided backprop at any unit: the positive part of the signal times the local derivative."""
    return np.maximum(g, 0) * d


def deconvnet_unit(z, a, g, d):
    return np.maximum(g, 0)


def pass_unit(z, a, g, d):
    return g


def deeplift(net, x, ref, target):
    """DeepLIFT rescale multipliers ``* (x - ref)`` (Shrikumar et al. 2017, Sec. 3.5.1), at every
    element-wise step: ``(f(x) - f(ref)) / (x - ref)``, ``f'(x)`` where ``|x - ref| <= 1e-7``."""
    inputs_x, _ = forward(net, x)
    inputs_r, _ = forward(net, ref)
    m = np.zeros(net[-1][1].shape[1] if net[-1][0] == "affine" else len(inputs_x[-1]))
    m[target] = 1.0
    for k in reversed(range(len(net))):
        step = net[k]
        if step[0] == "affine":
            m = step[1] @ m
        elif step[0] in ("relu", "unit"):
            f, df = _unit_functions(step)
            zx, zr = inputs_x[k], inputs_r[k]
            dz = zx - zr
            ratio = np.where(np.abs(dz) > 1e-7, (f(zx) - f(zr)) / np.where(dz == 0, 1, dz), df(zx))
            m = m * ratio
        elif step[0] == "maxpool":  # the gradient at x (deeplift's MaxPoolDeepLiftMode.gradient)
            back = np.zeros_like(inputs_x[k])
            back[maxpool_argmax(inputs_x[k], step[1], step[2])] = m
            m = back
    return m * (x - ref)


# ----------------------------------------------------------------------------- patterns

def patterns_dense(X, W, b, relu):
    """Kindermans et al. (2018): a_j = cov+(x, y_j) / (w_j^T cov+(x, y_j)), one output at a time.

    Args:
      X: ``[N, I]`` inputs of the layer; W ``[I, J]``; b ``[J]``; relu: use only points with y_j > 0.
    """
    A = np.zeros_like(W)
    for j in range(W.shape[1]):
        y = X @ W[:, j] + b[j]
        keep = y > 0 if relu else np.ones_like(y, bool)
        if keep.sum() == 0:
            continue
        xs, ys = X[keep], y[keep]
        cov = (xs * ys[:, None]).mean(0) - xs.mean(0) * ys.mean()
        A[:, j] = cov / (W[:, j] @ cov)
    return A


def patches(x, kernel_shape, strides=1, padding="valid"):
    """All input patches ``[positions, kh * kw * cin]`` of one image ``(h, w, cin)``, kernel order."""
    kh, kw, cin, _ = kernel_shape
    h, w, _ = x.shape
    if padding == "same":
        oh, ow = -(-h // strides), -(-w // strides)
        ph, pw = max((oh - 1) * strides + kh - h, 0), max((ow - 1) * strides + kw - w, 0)
        x = np.pad(x, ((ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2), (0, 0)))
    else:
        oh, ow = (h - kh) // strides + 1, (w - kw) // strides + 1
    return np.array([x[oy * strides:oy * strides + kh, ox * strides:ox * strides + kw].ravel()
                     for oy in range(oh) for ox in range(ow)])


# ----------------------------------------------------------------------------- merges

def lrp_sum(operands, R, epsilon=0.0):
    """LRP through ``z = sum_k x_k`` (a residual Add): ``R_k = x_k / (z + eps sign(z)) R``, element-wise,
    ``sign(0) = +1`` (zennit's Norm rule on a Sum; Montavon et al. 2019)."""
    z = sum(operands)
    den = z + epsilon * np.where(z >= 0, 1.0, -1.0)
    ratio = np.divide(R, den, out=np.zeros_like(R), where=den != 0)
    return [x * ratio for x in operands]


def residual_lrp(weights, x, target, epsilon):
    """LRP-epsilon through the dense residual net of ``tiny_nets.dense_residual_net``.

    ``a = relu(W1 x + b1)``, ``c = W2 a + b2``, ``r = relu(c + a)``, ``out = W3 r + b3``.
    """
    (w1, b1), (w2, b2), (w3, b3) = weights
    a = np.maximum(x @ w1 + b1, 0)
    c = a @ w2 + b2
    r = np.maximum(c + a, 0)
    out = r @ w3 + b3
    R = np.zeros_like(out)
    R[target] = out[target]
    kw = {"epsilon": epsilon}
    R_r = lrp_affine("epsilon", w3, b3, r, R, **kw)
    R_c, R_skip = lrp_sum([c, a], R_r, epsilon)
    R_a = lrp_affine("epsilon", w2, b2, a, R_c, **kw) + R_skip
    return lrp_affine("epsilon", w1, b1, x, R_a, **kw)
