"""Our rules against plain-numpy ports of the authors' (innvestigate 1.0.8) on the small convnet's
architecture, with the same random relevance set at the logits and read layer by layer, as Sixt et al.'s
CSC notebook does (issue 19); and CSC against a direct numpy computation on one layer.

References: :mod:`tests.innvestigate_port` (ported operation by operation), :mod:`tests.numpy_backprop`
(the network as explicit matrices). Net: :func:`tf_sanity.models.sixt_models.convnet` with narrow widths
on 8 x 8 images, in the authors' layout (ReLUs as layers of their own), random weights and biases.
"""

import keras
import numpy as np
import pytest

from tf_sanity.attribution import engine, methods
from tf_sanity.checks import csc
from tf_sanity.models import sixt_models
from tests import innvestigate_port as port
from tests import numpy_backprop as nb

SHAPE, WIDTHS, CLASSES = (8, 8, 1), (3, 4, 5, 5, 6), 4
# The layers CSC reads (their outputs) and the numpy step whose input holds the same relevance.
READS = {"conv1": 1, "conv2": 3, "pool2": 5, "conv3": 6, "conv4": 8, "pool4": 10, "fc5": 11}


def _net(seed=0):
    """The authors'-layout convnet with random weights and biases, and its numpy twin."""
    keras.utils.set_random_seed(seed)
    model = sixt_models.convnet(input_shape=SHAPE, classes=CLASSES, widths=WIDTHS, separate_relu=True)
    rng = np.random.default_rng(seed)
    weights = [(rng.standard_normal(w.shape) * (0.3 if w.ndim == 1 else 0.6)).astype(np.float32)
               for w in model.get_weights()]
    model.set_weights(weights)
    d = [w.astype(np.float64) for w in weights]
    net, shape = [], SHAPE
    for k, name in enumerate(("conv1", "conv2", None, "conv3", "conv4", None)):
        if name is None:
            net.append(("maxpool", shape, 2))
            shape = (shape[0] // 2, shape[1] // 2, shape[2])
            continue
        i = 2 * ("conv1", "conv2", "conv3", "conv4").index(name)
        matrix, shape = nb.conv_matrix(d[i], shape, 1, "same")
        net += [("affine", matrix, nb.conv_bias(d[i + 1], shape)), ("relu",)]
    net += [("affine", d[8], d[9]), ("relu",), ("affine", d[10], d[11])]
    return model, net


def _images(n, seed=1):
    return np.random.default_rng(seed).random((n,) + SHAPE).astype(np.float32)


AFFINE = {  # our method and settings -> the port's rule of an affine step ("conv" or "dense")
    "lrp_alpha1beta0": lambda kind, W, b, x, R: port.alpha_beta(W, b, x, R, 1, 0),
    "lrp_alpha2beta1": lambda kind, W, b, x, R: port.alpha_beta(W, b, x, R, 2, 1),
    "lrp_alpha5beta4": lambda kind, W, b, x, R: port.alpha_beta(W, b, x, R, 5, 4),
    # LRPSequentialPresetB: Alpha2Beta1Rule on conv layers, EpsilonRule on dense ones (epsilon 1e-10 in their code)
    "lrp_preset_b": lambda kind, W, b, x, R: (port.alpha_beta(W, b, x, R, 2, 1) if kind == "conv"
                                              else port.epsilon(W, b, x, R, 1e-10)),
    "deconvnet": lambda kind, W, b, x, R: W @ R,
}


def _port(method, net, x, relevance):
    kinds = {k: "conv" if k < 9 else "dense" for k, s in enumerate(net) if s[0] == "affine"}
    relu = port.deconvnet_relu if method == "deconvnet" else None
    return port.propagate(net, x, relevance, lambda k, W, b, xi, R: AFFINE[method](kinds[k], W, b, xi, R), relu)


def _ours(model, method, x, relevance, **settings):
    bp = methods.make_backprop(method, **settings)
    fn = engine.layer_function(model, bp.composite, "fc6", list(READS), at="output")
    signals, _ = fn(x, x[:0], relevance.astype(np.float32))
    return {name: np.asarray(s).reshape(len(x), -1) for name, s in zip(READS, signals)}


@pytest.mark.parametrize("method", sorted(AFFINE))
def test_our_rules_with_innvestigates_bias_match_the_port_layer_by_layer(method):
    model, net = _net()
    x = _images(3)
    relevance = np.random.default_rng(2).standard_normal((3, CLASSES))
    settings = {} if method == "deconvnet" else {"bias": "whole"}
    ours = _ours(model, method, x, relevance, **settings)
    for i in range(len(x)):
        reference = _port(method, net, x[i].reshape(-1).astype(np.float64), relevance[i])
        for name, step in READS.items():
            want = reference[step]
            np.testing.assert_allclose(ours[name][i], want, rtol=2e-3, atol=2e-4 * np.abs(want).max(),
                                       err_msg=f"{method} at {name}")


@pytest.mark.parametrize("method", ["lrp_alpha2beta1", "lrp_alpha5beta4"])
def test_our_default_bias_differs_from_innvestigates(method):
    """Bach et al.'s b^+ / b^- (our default) is not what the authors ran: the comparison above can fail."""
    model, net = _net()
    x = _images(2)
    relevance = np.random.default_rng(2).standard_normal((2, CLASSES))
    ours = _ours(model, method, x, relevance)
    reference = _port(method, net, x[0].reshape(-1).astype(np.float64), relevance[0])
    assert np.abs(ours["conv1"][0] - reference[READS["conv1"]]).max() > 0.1 * np.abs(reference[READS["conv1"]]).max()


def test_csc_equals_a_direct_numpy_computation_on_one_layer():
    """REFERENCE.md section 3: 5 N(0, 1) relevances per image at the logits, propagated down (here by the port),
    reshaped to positions x channels at conv2; |cos| across channels for the 10 pairs and every position;
    median over positions, pairs and images."""
    model, net = _net()
    x, n_vectors, seed = _images(3), 5, 7
    result = csc.cosine_similarity_convergence(model, x, "lrp_alpha2beta1", "fc6", layers=["conv2"], at="output",
                                               n_vectors=n_vectors, seed=seed, batch_size=8, bias="whole")
    injected = np.random.default_rng(seed).standard_normal((len(x) * n_vectors, CLASSES)).astype(np.float32)
    values = []
    for i in range(len(x)):
        at_conv2 = [_port("lrp_alpha2beta1", net, x[i].reshape(-1).astype(np.float64),
                          injected[i * n_vectors + v].astype(np.float64))[READS["conv2"]] for v in range(n_vectors)]
        values.append(port.abs_cos_values(np.stack(at_conv2).reshape(n_vectors, -1, WIDTHS[1])))
    values = np.concatenate(values)
    assert values.size == 3 * 10 * 64 and result.n_values == [int(np.isfinite(values).sum())]  # zero vectors: NaN
    assert result.median_abs_cos[0] == pytest.approx(np.median(values[np.isfinite(values)]), abs=1e-4)
