"""Plain-numpy ports of the innvestigate 1.0.8 backward rules that Sixt et al. ran, and of their CSC propagation.

Ported from innvestigate 1.0.8 (``analyzer/relevance_based/relevance_rule.py``: ``AlphaBetaRule.apply``,
``EpsilonRule.apply``; ``layers.SafeDivide``; ``analyzer/gradient_based.py``: ``DeconvnetReverseReLULayer``)
and from ``cosine_similarity_convergence.ipynb`` of berleon/when-explanations-lie (the relevance set at a
layer's *output*, ``relevance_value`` shaped like ``layer.output_shape``, then read at the outputs of the
layers below). Their TF 1.13 / Keras 2.2 stack does not install on Python 3.11, so the rules are written
out here operation by operation, on the flat-matrix nets of :mod:`tests.numpy_backprop` (``("affine", W, b)``
with ``z = x @ W + b``, ``("relu",)``, ``("maxpool", in_shape, size)``), sharing no code with tf_sanity.
"""

import numpy as np

from tests import numpy_backprop as nb

KERAS_EPSILON = 1e-7  # K.epsilon(), SafeDivide's factor


def safe_divide(a, b):
    """``ilayers.SafeDivide``: ``a / (b + (b == 0) * K.epsilon())``."""
    return a / (b + (b == 0) * KERAS_EPSILON)


def alpha_beta(W, b, x, R, alpha, beta, bias=True):
    """``AlphaBetaRule.apply``: layer copies with ``W * (W > 0)`` / ``W * (W < 0)``, each keeping the same part
    of the bias (``bias=True``), applied to ``x * (x > 0)`` and ``x * (x < 0)``."""
    wp, wn = W * (W > 0), W * (W < 0)
    bp, bn = (b * (b > 0), b * (b < 0)) if bias else (0.0, 0.0)
    xp, xn = x * (x > 0), x * (x < 0)

    def f(w1, b1, w2, b2):
        z = (xp @ w1 + b1) + (xn @ w2 + b2)       # Z1 + Z2: both copies add their bias part
        s = safe_divide(R, z)
        return xp * (w1 @ s) + xn * (w2 @ s)      # X * gradient of Z w.r.t. X, seeded with s

    activator = f(wp, bp, wn, bn)
    if not beta:
        return activator
    return alpha * activator - beta * f(wn, bn, wp, bp)


def epsilon(W, b, x, R, eps):
    """``EpsilonRule.apply``: ``x * W (R / (z + eps * sign(z)))``, ``sign(0) = +1``."""
    z = x @ W + b
    return x * (W @ (R / (z + np.where(z >= 0, 1.0, -1.0) * eps)))


def deconvnet_relu(R):
    """``DeconvnetReverseReLULayer`` on a ReLU: the relu of the relevance (then the identity's gradient)."""
    return np.maximum(R, 0.0)


def propagate(net, x, relevance, affine_rule, relu_rule=None):
    """The relevance set at `net`'s output, propagated down; returns it at every step's input, bottom up.

    Args:
      affine_rule: ``(step index, W, b, x, R) -> R`` of the affine steps.
      relu_rule: ``R -> R`` at ReLUs (None: relevance passes unchanged, as innvestigate's LRP does for
        ReLU layers whose forward output is the next layer's input).

    Returns:
      ``[R at the input of step 0, ..., R at the input of the last step]``.
    """
    inputs, _ = nb.forward(net, x)
    R, out = relevance, [None] * len(net)
    for k in reversed(range(len(net))):
        step = net[k]
        if step[0] == "affine":
            R = affine_rule(k, step[1], step[2], inputs[k], R)
        elif step[0] == "relu":
            R = relu_rule(R) if relu_rule else R
        elif step[0] == "maxpool":  # the gradient: all relevance to each window's maximum
            back = np.zeros_like(inputs[k])
            back[nb.maxpool_argmax(inputs[k], step[1], step[2])] = R
            R = back
        out[k] = R
    return out


def abs_cos_values(vectors):
    """|cos| as ``cosine_similarities_from_relevances`` (``pairwise_cosine_similarity`` of ``conv_as_matrix``):
    ``vectors [n, positions, channels]`` -> |cos| across channels for every pair and position (NaN where a
    vector is zero)."""
    values = []
    for i in range(len(vectors)):
        for j in range(i + 1, len(vectors)):
            u, v = vectors[i], vectors[j]
            with np.errstate(invalid="ignore", divide="ignore"):
                values.append(np.abs((u / np.linalg.norm(u, axis=1, keepdims=True)
                                      * (v / np.linalg.norm(v, axis=1, keepdims=True))).sum(1)))
    return np.concatenate(values)
