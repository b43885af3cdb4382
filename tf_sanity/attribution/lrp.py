"""Layer-wise relevance propagation and Deep Taylor decomposition as backward rules.

The LRP family of "When Explanations Lie" (Sixt, Granz & Landgraf, ICML 2020, with the settings
of their code, ``docs/REFERENCE.md`` section 3): LRP-z, LRP-epsilon, LRP-alpha-beta
(alpha1beta0, alpha2beta1, alpha5beta4), the composite presets A and B, DeepTaylor with the z+ rule
and the bounded zB rule for the first layer.

For a layer with input ``x``, (canonized, see :mod:`tf_sanity.attribution.canonizers`) affine map
``z_j = sum_i x_i w_ij + b_j`` and relevance ``R_j`` at its output, write ``z_ij = x_i w_ij``. The
rules send to input ``i``:

==================  ================================================================================
LRP-z               ``R_i = sum_j z_ij / z_j R_j`` (Bach et al. 2015)
LRP-epsilon         ``R_i = sum_j z_ij / (z_j + eps sign(z_j)) R_j``, ``sign(0) = +1`` (Bach et al. 2015)
LRP-alpha-beta      ``R_i = sum_j (alpha z_ij^+ / z_j^+ - beta z_ij^- / z_j^-) R_j``, ``alpha - beta = 1``,
                    ``z_j^+ = sum_i z_ij^+ (+ b_j^+)``, ``z_j^- = sum_i z_ij^- (+ b_j^-)`` (Bach et al. 2015)
z+ (DeepTaylor)     ``R_i = sum_j x_i w_ij^+ / sum_i' x_i' w_i'j^+ R_j``, bias ignored; for ``x >= 0``
                    (Montavon et al. 2017)
zB (DeepTaylor)     ``R_i = sum_j (x_i w_ij - l_i w_ij^+ - h_i w_ij^-) / sum_i' (...) R_j`` for inputs in
                    ``[l, h]``, bias ignored (Montavon et al. 2017); first layer only
==================  ================================================================================

A zero denominator gives zero relevance (innvestigate's ``SafeDivide``). Relevance passes ReLUs
unchanged, max pooling sends it to the maximum, average pooling and BatchNorm layers that are not
folded use LRP-z (for non-negative inputs every rule here but alpha-beta's ``alpha`` scaling reduces
to it), and the output is seeded with the target's score (logit). Layers without a rule raise a
``SanityError``.

Differences from innvestigate (the paper's implementation): with ``bias=True`` (the default, as
innvestigate's ``LRPAlpha1Beta0`` etc.) the alpha-beta rule adds ``b^+`` to ``z^+`` and ``b^-`` to
``z^-`` (Bach et al. 2015); innvestigate 1.0.8's ``AlphaBetaRule`` (which Sixt et al. ran) adds the whole
bias ``b = b^+ + b^-`` to both (its positive and negative layer copies each keep their part of the bias,
and each of ``z^+``, ``z^-`` sums both copies); ``bias="whole"`` does that. The z+ rule is
innvestigate's ``ZPlusFastRule`` (``x w^+``), which its DeepTaylor uses.

Identities tested in ``tests/test_lrp.py``: LRP-z equals gradient x input on ReLU networks (with or
without biases); LRP-z, alpha-beta on bias-free layers and z+ conserve relevance layer to layer.
"""

import functools

import keras
import tensorflow as tf

from tf_sanity.attribution import canonizers, engine, rules
from tf_sanity.attribution.backprop import Backprop
from tf_sanity.attribution.merge_rules import CONSTANT_GATE, SumRule
from tf_sanity.attribution.graph import is_first_layer
from tf_sanity.attribution.registry import backprop_method
from tf_sanity.attribution.rules import AffineRule, safe_divide, strict_composite, vjp
from tf_sanity.errors import SanityError


def _positive(t):
    return tf.nn.relu(t)


def _negative(t):
    return tf.minimum(t, 0.0)


def _redistribute(affine, x, kernel, s):
    """``x * (W^T s)``: distributes the per-output ratios `s` over the inputs along `kernel`."""
    return x * vjp(lambda v: affine.linear(v, kernel), x, s)


class ZRule(AffineRule):
    """LRP-z: ``R_i = sum_j z_ij / z_j R_j`` (Bach et al. 2015).

    Also defined on ``LayerNormalization`` with its normalizer held constant (Ali et al. 2022, LN-rule).
    """

    name = "LRP-z"
    KINDS = AffineRule.KINDS + ("layernorm",)

    def denominator(self, z):
        return z

    def ratio(self, relevance, z, scale=None, shift=None):
        """``R / den(z)``, with ``z`` first mapped to ``scale * z + shift`` (a folded BN) when given."""
        if scale is not None:
            z = z * scale + shift
        return safe_divide(relevance, self.denominator(z))

    @functools.cached_property
    def fused_ratio(self):
        return rules.fused(self.ratio)

    def propagate(self, affine, x, relevance, z):
        kernel, bias = affine.weights(x.dtype)
        if z is None:  # not known from the forward pass (AffineRule): recompute it
            ratio = self.ratio(relevance, affine.add_bias(affine.linear(x, kernel), bias))
        else:
            ratio = self.fused_ratio(relevance, z, *(affine.batchnorm_map(z) or ()))
        return _redistribute(affine, x, kernel, ratio)


class EpsilonRule(ZRule):
    """LRP-epsilon: ``z_j`` stabilized to ``z_j + eps * sign(z_j)``, ``sign(0) = +1`` (Bach et al. 2015)."""

    def __init__(self, epsilon):
        self.epsilon = epsilon
        self.name = f"LRP-epsilon ({epsilon:g})"

    def denominator(self, z):
        epsilon = tf.constant(self.epsilon, z.dtype)
        return z + tf.where(z >= 0, epsilon, -epsilon)  # the same values as z + eps * sign(z), in fewer ops


class AlphaBetaRule(AffineRule):
    """LRP-alpha-beta: positive and negative contributions normalized separately (Bach et al. 2015).

    Args:
      alpha, beta: weights of the positive and negative parts, ``alpha - beta = 1``.
      bias: add ``b^+`` to ``z^+`` and ``b^-`` to ``z^-`` (True: the bias as a constant input neuron), no
        bias (False), or the whole bias ``b`` to both (``"whole"``: innvestigate 1.0.8, module docstring).
    """

    def __init__(self, alpha, beta, bias=True):
        self.alpha, self.beta, self.bias = alpha, beta, bias
        self.name = f"LRP-alpha{alpha:g}beta{beta:g}"

    def _part(self, affine, xs, kernels, bias, relevance):
        """Relevance of the contributions ``x_a w_a + x_b w_b`` (one sign), normalized together."""
        z = sum(affine.linear(x, w) for x, w in zip(xs, kernels))
        if self.bias and bias is not None:
            z = affine.add_bias(z, bias)
        s = safe_divide(relevance, z)
        return sum(_redistribute(affine, x, w, s) for x, w in zip(xs, kernels))

    def propagate(self, affine, x, relevance, z):
        kernel, bias = affine.weights(x.dtype)
        w_pos, w_neg = _positive(kernel), _negative(kernel)
        x_pos, x_neg = _positive(x), _negative(x)
        b_pos = None if bias is None else bias if self.bias == "whole" else _positive(bias)
        b_neg = None if bias is None else bias if self.bias == "whole" else _negative(bias)
        # z_ij^+ = x^+ w^+ + x^- w^-;  z_ij^- = x^+ w^- + x^- w^+
        out = self.alpha * self._part(affine, (x_pos, x_neg), (w_pos, w_neg), b_pos, relevance)
        if self.beta:
            out -= self.beta * self._part(affine, (x_pos, x_neg), (w_neg, w_pos), b_neg, relevance)
        return out


class ZPlusRule(AffineRule):
    """z+ rule of Deep Taylor decomposition: ``R_i = sum_j x_i w_ij^+ / sum_i' x_i' w_i'j^+ R_j``.

    Bias ignored; meant for non-negative inputs (after a ReLU), where it equals alpha1beta0 without
    bias (Montavon et al. 2017).
    """

    name = "z+"

    def propagate(self, affine, x, relevance, z):
        kernel, _ = affine.weights(x.dtype)
        w_pos = _positive(kernel)
        return _redistribute(affine, x, w_pos, safe_divide(relevance, affine.linear(x, w_pos)))


class ZBRule(AffineRule):
    """zB rule for inputs bounded by ``low <= x <= high`` (Montavon et al. 2017).

    ``R_i = sum_j (x_i w_ij - l_i w_ij^+ - h_i w_ij^-) / sum_i' (x_i' w_i'j - l_i' w_i'j^+ - h_i' w_i'j^-) R_j``.
    """

    def __init__(self, low, high):
        self.low, self.high = low, high
        self.name = f"zB [{low:g}, {high:g}]"

    def supports(self, layer):
        """One map only: a separable conv's pointwise map does not see the bounded input."""
        return super().supports(layer) and len(canonizers.affine_parts(layer)) == 1

    def propagate(self, affine, x, relevance, z):
        kernel, _ = affine.weights(x.dtype)
        w_pos, w_neg = _positive(kernel), _negative(kernel)
        low = tf.fill(tf.shape(x), tf.cast(self.low, x.dtype))
        high = tf.fill(tf.shape(x), tf.cast(self.high, x.dtype))
        z = affine.linear(x, kernel) - affine.linear(low, w_pos) - affine.linear(high, w_neg)
        s = safe_divide(relevance, z)
        return (_redistribute(affine, x, kernel, s) - _redistribute(affine, low, w_pos, s)
                - _redistribute(affine, high, w_neg, s))


Z_RULE = ZRule()
Z_PLUS_RULE = ZPlusRule()


def lrp_composite(name, kernel, rule_name=None):
    """An LRP composite: `kernel` on Dense/Conv layers, LRP-z on pooling, unfolded BN and element-wise
    affine layers (``Rescaling``, ...), ReLU passes; sums split relevance in proportion to the operands
    (with `kernel`'s stabilizer if it is LRP-z / epsilon), gates are held constant
    (:mod:`tf_sanity.attribution.merge_rules`), and LayerNorm follows Ali et al. (2022) under LRP-z /
    epsilon (other rules refuse it).

    Args:
      name: method name for messages.
      kernel: a rule or ``layer -> rule`` for Dense/Conv layers (with any folded BatchNorm).
      rule_name: what errors call the rules (default: the kernel rule's name).
    """
    z_like = isinstance(kernel, ZRule)
    merge = SumRule(f"{kernel.name} sum" if z_like else "LRP-z sum", (kernel if z_like else Z_RULE).denominator)
    return strict_composite(name, relu=rules.pass_relu, kernel=kernel, batchnorm=Z_RULE, average=Z_RULE,
                            elementwise=Z_RULE, merge=merge, gate=CONSTANT_GATE,
                            layernorm=kernel if z_like else rules.UNSUPPORTED, rule_name=rule_name or kernel.name)


@functools.lru_cache(maxsize=None)
def z_composite():
    return lrp_composite("lrp_z", Z_RULE)


@functools.lru_cache(maxsize=None)
def epsilon_composite(epsilon):
    return lrp_composite("lrp_epsilon", EpsilonRule(epsilon))


@functools.lru_cache(maxsize=None)
def alpha_beta_composite(alpha, beta, bias=True):
    return lrp_composite(f"lrp_alpha{alpha:g}beta{beta:g}", AlphaBetaRule(alpha, beta, bias))


def _is_dense(layer):
    return isinstance(layer, keras.layers.Dense)


@functools.lru_cache(maxsize=None)
def preset_composite(alpha, beta, epsilon, bias=True):
    """innvestigate's ``lrp.sequential_preset_a/b``: alpha-beta on conv layers, epsilon on dense ones."""
    conv, dense = AlphaBetaRule(alpha, beta, bias), EpsilonRule(epsilon)
    return lrp_composite(f"lrp_preset_alpha{alpha:g}beta{beta:g}",
                         lambda layer: dense if _is_dense(layer) else conv, f"{conv.name} / {dense.name}")


@functools.lru_cache(maxsize=None)
def deep_taylor_composite(low=None, high=None):
    """z+ on every layer; with bounds, zB on the layers that see the input (``deep_taylor.bounded``)."""
    if low is None:
        return lrp_composite("deep_taylor", Z_PLUS_RULE)
    first = ZBRule(low, high)
    return lrp_composite("deep_taylor_bounded", lambda layer: first if is_first_layer(layer) else Z_PLUS_RULE,
                         f"{first.name} / z+")


def _check_bias(bias):
    if bias == "whole" or isinstance(bias, bool):
        return bias
    raise SanityError(f"bias must be True, False or 'whole' (innvestigate 1.0.8), got {bias!r}")


def _check_alpha_beta(alpha, beta):
    if beta < 0 or abs(alpha - beta - 1) > 1e-9:
        raise SanityError(f"alpha-beta needs alpha - beta = 1 and beta >= 0; got alpha={alpha}, beta={beta}")
    return float(alpha), float(beta)


def _check_epsilon(epsilon):
    if not epsilon > 0:
        raise SanityError(f"epsilon must be > 0, got {epsilon}")
    return float(epsilon)


def _relevance(composite):
    return Backprop(composite, seed=engine.score_seed)


def method(name, label):
    """Registers an LRP-family method: it propagates relevance, a product with the input."""
    return backprop_method(name, label, signal="relevance", multiplies_by_input=True, activations="relevance")


@method("lrp_z", "LRP-z")
def lrp_z():
    """LRP-z (Bach et al. 2015): relevance of each layer split in proportion to ``z_ij = x_i w_ij``.

    Equals gradient x input on ReLU networks; the paper's one non-converging LRP variant.
    """
    return _relevance(z_composite())


@method("lrp_epsilon", "LRP-epsilon")
def lrp_epsilon(*, epsilon=1e-7):
    """LRP-epsilon: LRP-z with ``epsilon * sign(z)`` added to every denominator.

    Args:
      epsilon: the stabilizer (innvestigate's default 1e-7).
    """
    return _relevance(epsilon_composite(_check_epsilon(epsilon)))


@method("lrp_alpha_beta", "LRP alpha-beta")
def lrp_alpha_beta(*, alpha=1.0, beta=0.0, bias=True):
    """LRP-alpha-beta on every Dense/Conv layer (Sixt et al. 2020; Bach et al. 2015).

    Args:
      alpha, beta: ``alpha - beta = 1``, ``beta >= 0``.
      bias: include the bias's positive / negative part in ``z^+`` / ``z^-`` (True), none (False), or the
        whole bias in both (``"whole"``, innvestigate 1.0.8).
    """
    return _relevance(alpha_beta_composite(*_check_alpha_beta(alpha, beta), _check_bias(bias)))


def _fixed_alpha_beta(name, alpha, beta):
    def make(*, bias=True):
        return _relevance(alpha_beta_composite(float(alpha), float(beta), _check_bias(bias)))

    make.__doc__ = (f"LRP-alpha{alpha}beta{beta} on every Dense/Conv layer (Sixt et al. 2020).\n\n"
                    f"    Args:\n      bias: the bias's positive / negative part in z^+ / z^- (True), none (False), or the whole bias in "
                    "both ('whole', innvestigate 1.0.8).\n")
    return method(name, f"LRP α{alpha}β{beta}")(make)


lrp_alpha1beta0 = _fixed_alpha_beta("lrp_alpha1beta0", 1, 0)
lrp_alpha2beta1 = _fixed_alpha_beta("lrp_alpha2beta1", 2, 1)
lrp_alpha5beta4 = _fixed_alpha_beta("lrp_alpha5beta4", 5, 4)


@method("lrp_preset_a", "LRP CMP α1β0")
def lrp_preset_a(*, epsilon=1e-10, bias=True):
    """LRP composite preset A: alpha1beta0 on conv layers, epsilon on dense layers.

    innvestigate's ``lrp.sequential_preset_a`` with ``epsilon=1e-10`` as in Sixt et al.'s code.
    """
    return _relevance(preset_composite(1.0, 0.0, _check_epsilon(epsilon), _check_bias(bias)))


@method("lrp_preset_b", "LRP CMP α2β1")
def lrp_preset_b(*, epsilon=1e-10, bias=True):
    """LRP composite preset B: alpha2beta1 on conv layers, epsilon on dense layers (``epsilon=1e-10``)."""
    return _relevance(preset_composite(2.0, 1.0, _check_epsilon(epsilon), _check_bias(bias)))


@method("deep_taylor", "DeepTaylor")
def deep_taylor():
    """Deep Taylor decomposition with the z+ rule on every layer (innvestigate's ``deep_taylor``)."""
    return _relevance(deep_taylor_composite())


@method("deep_taylor_bounded", "DTD")
def deep_taylor_bounded(*, low=None, high=None):
    """Deep Taylor decomposition, zB on the first layer(s), z+ above (``deep_taylor.bounded``).

    The paper's "DTD" (Sixt et al. 2020), with the bounds of the input domain.

    Args:
      low, high: scalar bounds of every input value (e.g. 0 and 1 for MNIST in [0, 1], -1 and 1
        for Inception v3); required.
    """
    if low is None or high is None:
        raise SanityError("deep_taylor_bounded needs the input bounds: pass low=... and high=... "
                          "(e.g. low=0, high=1 for images in [0, 1])")
    if not float(low) < float(high):
        raise SanityError(f"deep_taylor_bounded needs low < high, got low={low}, high={high}")
    return _relevance(deep_taylor_composite(float(low), float(high)))
