"""Structure of the paper's MNIST CNN and MLP: layer names, shapes, parameter counts, initializers."""

import keras
import numpy as np
import pytest

from tf_sanity.models import mnist_models
from tf_sanity.errors import SanityError

CNN_LAYERS = {  # name: (output shape, kernel shape, parameters)
    "conv1": ((28, 28, 32), (5, 5, 1, 32), 5 * 5 * 32 + 32),
    "pool1": ((14, 14, 32), None, 0),
    "conv2": ((14, 14, 64), (5, 5, 32, 64), 5 * 5 * 32 * 64 + 64),
    "pool2": ((7, 7, 64), None, 0),
    "flatten": ((3136,), None, 0),
    "fc1": ((1024,), (3136, 1024), 3136 * 1024 + 1024),
    "output": ((10,), (1024, 10), 1024 * 10 + 10),
}
MLP_LAYERS = {
    "flatten": ((784,), None, 0),
    "hidden1": ((2500,), (784, 2500), 784 * 2500 + 2500),
    "hidden2": ((1500,), (2500, 1500), 2500 * 1500 + 1500),
    "hidden3": ((500,), (1500, 500), 1500 * 500 + 500),
    "output": ((10,), (500, 10), 500 * 10 + 10),
}


@pytest.mark.parametrize("architecture, layers, total", [
    ("cnn", CNN_LAYERS, 3_274_634), ("mlp", MLP_LAYERS, 6_469_510)])
def test_layers_shapes_and_parameter_counts(architecture, layers, total):
    model = mnist_models.build(architecture)
    assert model.input_shape == (None, 28, 28, 1)
    assert model.output_shape == (None, 10)
    assert [layer.name for layer in model.layers[1:]] == list(layers)
    for name, (shape, kernel, params) in layers.items():
        layer = model.get_layer(name)
        assert layer.output.shape[1:] == shape, name
        assert layer.count_params() == params, name
        if kernel:
            assert tuple(layer.kernel.shape) == kernel, name
    assert model.count_params() == total


def test_relus_are_fused_and_logits_have_no_activation():
    for architecture in ("cnn", "mlp"):
        model = mnist_models.build(architecture)
        dense_or_conv = [layer for layer in model.layers if hasattr(layer, "kernel")]
        assert [layer.activation.__name__ for layer in dense_or_conv] == ["relu"] * 3 + ["linear"]


def test_randomization_groups_top_down():
    cnn, mlp = mnist_models.cnn(), mnist_models.mlp()
    assert list(cnn.randomization_groups) == [("output", ["output"]), ("fc1", ["fc1"]),
                                              ("conv2", ["conv2"]), ("conv1", ["conv1"])]
    assert list(mlp.randomization_groups) == [("output", ["output"]), ("hidden3", ["hidden3"]),
                                              ("hidden2", ["hidden2"]), ("hidden1", ["hidden1"])]
    for model in (cnn, mlp):  # every variable belongs to exactly one group
        grouped = [v.path for _, names in model.randomization_groups for n in names
                   for v in model.get_layer(n).weights]
        assert sorted(grouped) == sorted(v.path for v in model.weights)


def test_original_code_initializers():
    cnn = mnist_models.cnn()
    for name in ("conv1", "conv2", "fc1", "output"):
        layer = cnn.get_layer(name)
        assert isinstance(layer.kernel_initializer, keras.initializers.TruncatedNormal)
        assert layer.kernel_initializer.get_config()["stddev"] == 0.1
        np.testing.assert_array_equal(layer.bias.numpy(), np.float32(0.1))
    mlp = mnist_models.mlp()
    for name, n_in in (("hidden1", 784), ("hidden2", 2500), ("hidden3", 1500), ("output", 500)):
        layer = mlp.get_layer(name)
        assert layer.kernel_initializer.get_config()["stddev"] == pytest.approx(2 / np.sqrt(n_in))
        np.testing.assert_array_equal(layer.bias.numpy(), 0.0)
        # Truncated at 2 std; sample std of a normal truncated there is 0.88 of its parameter.
        kernel = layer.kernel.numpy()
        assert np.abs(kernel).max() <= 2 * 2 / np.sqrt(n_in) + 1e-6
        assert kernel.std() == pytest.approx(0.88 * 2 / np.sqrt(n_in), rel=0.05)


def test_seeded_build_is_reproducible():
    keras.utils.set_random_seed(3)
    a = mnist_models.cnn().get_weights()
    keras.utils.set_random_seed(3)
    b = mnist_models.cnn().get_weights()
    assert all(np.array_equal(x, y) for x, y in zip(a, b))


def test_forward_pass_and_unknown_architecture():
    x = np.random.default_rng(0).uniform(size=(3, 28, 28, 1)).astype(np.float32)
    for architecture in ("cnn", "mlp"):
        logits = mnist_models.build(architecture)(x)
        assert logits.shape == (3, 10) and np.all(np.isfinite(logits))
    with pytest.raises(SanityError, match="cnn, mlp"):
        mnist_models.build("resnet")
