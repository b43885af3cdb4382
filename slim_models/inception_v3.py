"""Inception v3 as a Keras 3 functional model with TF-slim's exact structure and names.

A layer-for-layer port of ``tf_slim/nets/inception_v3.py`` (Szegedy et al. 2016, "Rethinking the
Inception Architecture"), the network of Adebayo et al. (2018), Sec. 3 and Figs. 2-5, so that the
official checkpoint ``inception_v3_2016_08_28`` loads by variable name (:mod:`slim_models.checkpoint`).

Conventions, stated once:

* Inputs are 299 x 299 x 3 images scaled to [-1, 1] (``img / 127.5 - 1``); the model's one output
  is the logits, shape ``[B, 1001]``, pre-softmax, index 0 = background (ImageNet class ``k`` of
  the usual 0..999 order is logit ``k + 1``; see :mod:`slim_models.imagenet`).
* Each slim ``conv2d`` with scope ``S`` (e.g. ``Mixed_5b/Branch_1/Conv2d_0b_5x5``) is three layers,
  named after slim's ops with ``/`` written as ``.`` (Keras forbids ``/`` in layer names;
  slim scopes never contain ``.``, so the mapping is reversible):

  ======================================  ===================================================
  Keras layer                             slim variables (``InceptionV3/`` + ...)
  ======================================  ===================================================
  ``S.Conv2D`` (Conv2D, no bias)          ``S/weights``
  ``S.BatchNorm`` (scale=False, eps 1e-3)  ``S/BatchNorm/beta``, ``moving_mean``, ``moving_variance``
  ``S`` (a standalone ``ReLU`` layer)     none; its output is what slim's ``conv2d`` returns
  ======================================  ===================================================

  The two convolutions without BatchNorm and ReLU (``Logits/Conv2d_1c_1x1`` and
  ``AuxLogits/Conv2d_2b_1x1``) are a single ``S.Conv2D`` layer with a bias (``S/biases``).
  Every ReLU is a standalone ``keras.layers.ReLU`` layer, so the core's backward rules
  (:mod:`tf_sanity.attribution.rules`: guided backprop, LRP, DeepLIFT) reach all 94 of them.
* Every slim end point is the output of the layer of the same name: ``Conv2d_1a_3x3`` (a ReLU),
  ``MaxPool_3a_3x3``, ``Mixed_5b`` ... ``Mixed_7c`` (concatenations), ``AuxLogits``,
  ``PreLogits``, ``Logits``, ``Predictions``. :func:`end_point_model` builds a model returning any
  of them. The auxiliary head (``AuxLogits``) and the softmax (``Predictions``) are not on the
  path to the logits; their layers are tracked by the model (``model.weights`` and
  ``model.count_params()`` include them, as slim's checkpoint does) but ``model.layers`` and
  ``model.get_layer`` do not list them: reach them with :func:`end_point_layer`.
* Initializers are slim's: conv weights from slim's ``variance_scaling_initializer()`` (truncated
  normal, std ``sqrt(1.3 * 2 / fan_in)``), BatchNorm beta and moving mean zeros, moving variance
  ones, biases zeros, ``AuxLogits`` ``Conv2d_2a_5x5`` / ``Conv2d_2b_1x1`` truncated normal with
  std 0.01 / 0.001. The ``original_code`` randomization policy of Adebayo et al.'s code re-draws
  variables from exactly these.
* ``model.randomization_groups`` lists the 17 blocks of the cascading randomization, top down
  (``Logits``, ``Mixed_7c``, ..., ``Conv2d_1a_3x3``; ``AuxLogits`` is never randomized), each
  with the names of the layers that own its variables.

Not ported: slim's weight decay (a training-time loss) and the ``depth_multiplier`` /
``min_depth`` / ``num_classes`` variants; dropout (``Logits/Dropout_1b``, keep 0.8) is present
and inactive at inference, as in slim with ``is_training=False``.
"""

import keras

NUM_CLASSES = 1001  # index 0 = background
IMAGE_SIZE = 299
BN_EPSILON = 0.001  # inception_v3_arg_scope(batch_norm_epsilon=0.001)
BN_DECAY = 0.9997  # inception_v3_arg_scope(batch_norm_decay=0.9997)
SCOPE = "InceptionV3"

# End points in slim's order (``inception_v3`` with its defaults), excluding ``Predictions``.
END_POINTS = (
    "Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "MaxPool_3a_3x3", "Conv2d_3b_1x1",
    "Conv2d_4a_3x3", "MaxPool_5a_3x3", "Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a",
    "Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e", "Mixed_7a", "Mixed_7b", "Mixed_7c",
    "AuxLogits", "PreLogits", "Logits")

# The 17 phases of the cascading randomization (Adebayo et al. 2018, Sec. 3, Fig. 2;
# appendix "Data sets & Models": per-block re-initialization "in 17 phases"), top down.
RANDOMIZATION_ORDER = (
    "Logits", "Mixed_7c", "Mixed_7b", "Mixed_7a", "Mixed_6e", "Mixed_6d", "Mixed_6c",
    "Mixed_6b", "Mixed_6a", "Mixed_5d", "Mixed_5c", "Mixed_5b", "Conv2d_4a_3x3",
    "Conv2d_3b_1x1", "Conv2d_2b_3x3", "Conv2d_2a_3x3", "Conv2d_1a_3x3")

_SIDE_HEADS_ATTR = "slim_side_layers"  # tracked layers off the logits path (AuxLogits, Predictions)

# slim's truncated normal has std sqrt(1.3 * factor / n); Keras' "truncated_normal" divides
# sqrt(scale / n) by 0.87962566103423978 (the std of a unit normal truncated at 2 sigma).
_KERAS_TRUNCATION_STD = 0.87962566103423978


def slim_variance_scaling(factor=2.0):
    """slim's ``variance_scaling_initializer(factor, mode='FAN_IN', uniform=False)`` in Keras.

    Both draw a normal truncated at two standard deviations with std ``sqrt(1.3 * factor / fan_in)``,
    fan_in = kernel height * width * input channels.
    """
    return keras.initializers.VarianceScaling(
        scale=1.3 * factor * _KERAS_TRUNCATION_STD ** 2, mode="fan_in",
        distribution="truncated_normal")


def keras_name(slim_scope):
    """``'Mixed_5b/Branch_1/Conv2d_0b_5x5'`` -> ``'Mixed_5b.Branch_1.Conv2d_0b_5x5'``."""
    return slim_scope.replace("/", ".")


def slim_scope(keras_layer_name):
    """Inverse of :func:`keras_name`."""
    return keras_layer_name.replace(".", "/")


def slim_variable_names(layer):
    """The slim checkpoint names of `layer`'s variables, in ``layer.weights`` order.

    Returns:
      A list of (slim name, keras variable); empty for layers without variables.
    """
    if isinstance(layer, keras.layers.Conv2D):
        scope = f"{SCOPE}/{slim_scope(layer.name.removesuffix('.Conv2D'))}"
        names = {"kernel": "weights", "bias": "biases"}
    elif isinstance(layer, keras.layers.BatchNormalization):
        scope = f"{SCOPE}/{slim_scope(layer.name)}"
        names = {"beta": "beta", "moving_mean": "moving_mean", "moving_variance": "moving_variance"}
    else:
        return []
    return [(f"{scope}/{names[v.name]}", v) for v in layer.weights]


class _Builder:
    """Creates layers with slim names; mirrors slim's ``variable_scope`` and ``arg_scope``."""

    def __init__(self):
        self.scope = []

    def name(self, *parts):
        return ".".join(self.scope + list(parts))

    def conv(self, net, depth, kernel, scope, stride=1, padding="same",
             kernel_initializer=None):
        """slim ``conv2d`` in the inception arg scope: conv (no bias) -> BatchNorm -> ReLU."""
        kernel = (kernel, kernel) if isinstance(kernel, int) else tuple(kernel)
        net = keras.layers.Conv2D(
            depth, kernel, strides=stride, padding=padding, use_bias=False,
            kernel_initializer=kernel_initializer or slim_variance_scaling(),
            name=self.name(scope, "Conv2D"))(net)
        net = keras.layers.BatchNormalization(
            axis=-1, momentum=BN_DECAY, epsilon=BN_EPSILON, center=True, scale=False,
            name=self.name(scope, "BatchNorm"))(net)
        return keras.layers.ReLU(name=self.name(scope))(net)

    def max_pool(self, net, scope, stride=2, padding="valid"):
        return keras.layers.MaxPooling2D(3, strides=stride, padding=padding,
                                         name=self.name(scope))(net)

    def avg_pool(self, net, scope, size=3, stride=1, padding="same"):
        # Keras' TF backend calls tf.nn.avg_pool: with 'same' padding the padded cells are not
        # counted, as in slim.
        return keras.layers.AveragePooling2D(size, strides=stride, padding=padding,
                                             name=self.name(scope))(net)

    def concat(self, tensors, scope):
        return keras.layers.Concatenate(axis=-1, name=self.name(scope))(tensors)

    def block(self, name):
        builder = _Builder()
        builder.scope = self.scope + [name]
        return builder


def _mixed_35(b, net, name, pool_depth, branch_1_names=("Conv2d_0a_1x1", "Conv2d_0b_5x5")):
    """Mixed_5b / 5c / 5d: 35 x 35 blocks."""
    m = b.block(name)
    branch_0 = m.block("Branch_0").conv(net, 64, 1, "Conv2d_0a_1x1")
    b1 = m.block("Branch_1")
    branch_1 = b1.conv(net, 48, 1, branch_1_names[0])
    branch_1 = b1.conv(branch_1, 64, 5, branch_1_names[1])
    b2 = m.block("Branch_2")
    branch_2 = b2.conv(net, 64, 1, "Conv2d_0a_1x1")
    branch_2 = b2.conv(branch_2, 96, 3, "Conv2d_0b_3x3")
    branch_2 = b2.conv(branch_2, 96, 3, "Conv2d_0c_3x3")
    b3 = m.block("Branch_3")
    branch_3 = b3.avg_pool(net, "AvgPool_0a_3x3")
    branch_3 = b3.conv(branch_3, pool_depth, 1, "Conv2d_0b_1x1")
    return b.concat([branch_0, branch_1, branch_2, branch_3], name)


def _mixed_17(b, net, name, depth_7x7):
    """Mixed_6b / 6c / 6d / 6e: 17 x 17 blocks with factorized 7x7 convolutions."""
    m = b.block(name)
    branch_0 = m.block("Branch_0").conv(net, 192, 1, "Conv2d_0a_1x1")
    b1 = m.block("Branch_1")
    branch_1 = b1.conv(net, depth_7x7, 1, "Conv2d_0a_1x1")
    branch_1 = b1.conv(branch_1, depth_7x7, (1, 7), "Conv2d_0b_1x7")
    branch_1 = b1.conv(branch_1, 192, (7, 1), "Conv2d_0c_7x1")
    b2 = m.block("Branch_2")
    branch_2 = b2.conv(net, depth_7x7, 1, "Conv2d_0a_1x1")
    branch_2 = b2.conv(branch_2, depth_7x7, (7, 1), "Conv2d_0b_7x1")
    branch_2 = b2.conv(branch_2, depth_7x7, (1, 7), "Conv2d_0c_1x7")
    branch_2 = b2.conv(branch_2, depth_7x7, (7, 1), "Conv2d_0d_7x1")
    branch_2 = b2.conv(branch_2, 192, (1, 7), "Conv2d_0e_1x7")
    b3 = m.block("Branch_3")
    branch_3 = b3.avg_pool(net, "AvgPool_0a_3x3")
    branch_3 = b3.conv(branch_3, 192, 1, "Conv2d_0b_1x1")
    return b.concat([branch_0, branch_1, branch_2, branch_3], name)


def _mixed_8(b, net, name, branch_1_3x1):
    """Mixed_7b / 7c: 8 x 8 blocks with expanded filter banks."""
    m = b.block(name)
    branch_0 = m.block("Branch_0").conv(net, 320, 1, "Conv2d_0a_1x1")
    b1 = m.block("Branch_1")
    branch_1 = b1.conv(net, 384, 1, "Conv2d_0a_1x1")
    branch_1 = b1.concat([b1.conv(branch_1, 384, (1, 3), "Conv2d_0b_1x3"),
                          b1.conv(branch_1, 384, (3, 1), branch_1_3x1)], "concat")
    b2 = m.block("Branch_2")
    branch_2 = b2.conv(net, 448, 1, "Conv2d_0a_1x1")
    branch_2 = b2.conv(branch_2, 384, 3, "Conv2d_0b_3x3")
    branch_2 = b2.concat([b2.conv(branch_2, 384, (1, 3), "Conv2d_0c_1x3"),
                          b2.conv(branch_2, 384, (3, 1), "Conv2d_0d_3x1")], "concat")
    b3 = m.block("Branch_3")
    branch_3 = b3.avg_pool(net, "AvgPool_0a_3x3")
    branch_3 = b3.conv(branch_3, 192, 1, "Conv2d_0b_1x1")
    return b.concat([branch_0, branch_1, branch_2, branch_3], name)


def inception_v3(name=SCOPE):
    """Builds TF-slim's Inception v3 (``inception_v3(num_classes=1001, is_training=False)``).

    Weights are freshly initialized with slim's initializers; use
    :func:`slim_models.load_inception_v3` for the trained checkpoint.

    Args:
      name: the Keras model's name.

    Returns:
      A ``keras.Model`` from images ``[B, 299, 299, 3]`` in [-1, 1] to logits ``[B, 1001]``, with
      ``randomization_groups`` (see the module docstring).
    """
    b = _Builder()
    inputs = keras.Input((IMAGE_SIZE, IMAGE_SIZE, 3), name="images")
    # 299 x 299 x 3
    net = b.conv(inputs, 32, 3, "Conv2d_1a_3x3", stride=2, padding="valid")  # 149 x 149 x 32
    net = b.conv(net, 32, 3, "Conv2d_2a_3x3", padding="valid")  # 147 x 147 x 32
    net = b.conv(net, 64, 3, "Conv2d_2b_3x3")  # 147 x 147 x 64
    net = b.max_pool(net, "MaxPool_3a_3x3")  # 73 x 73 x 64
    net = b.conv(net, 80, 1, "Conv2d_3b_1x1", padding="valid")  # 73 x 73 x 80
    net = b.conv(net, 192, 3, "Conv2d_4a_3x3", padding="valid")  # 71 x 71 x 192
    net = b.max_pool(net, "MaxPool_5a_3x3")  # 35 x 35 x 192

    net = _mixed_35(b, net, "Mixed_5b", pool_depth=32)  # 35 x 35 x 256
    net = _mixed_35(b, net, "Mixed_5c", pool_depth=64,  # 35 x 35 x 288
                    branch_1_names=("Conv2d_0b_1x1", "Conv_1_0c_5x5"))
    net = _mixed_35(b, net, "Mixed_5d", pool_depth=64)  # 35 x 35 x 288

    m = b.block("Mixed_6a")  # 17 x 17 x 768
    branch_0 = m.block("Branch_0").conv(net, 384, 3, "Conv2d_1a_1x1", stride=2, padding="valid")
    b1 = m.block("Branch_1")
    branch_1 = b1.conv(net, 64, 1, "Conv2d_0a_1x1")
    branch_1 = b1.conv(branch_1, 96, 3, "Conv2d_0b_3x3")
    branch_1 = b1.conv(branch_1, 96, 3, "Conv2d_1a_1x1", stride=2, padding="valid")
    branch_2 = m.block("Branch_2").max_pool(net, "MaxPool_1a_3x3")
    net = b.concat([branch_0, branch_1, branch_2], "Mixed_6a")

    net = _mixed_17(b, net, "Mixed_6b", depth_7x7=128)  # 17 x 17 x 768
    net = _mixed_17(b, net, "Mixed_6c", depth_7x7=160)
    net = _mixed_17(b, net, "Mixed_6d", depth_7x7=160)
    net = _mixed_17(b, net, "Mixed_6e", depth_7x7=192)
    mixed_6e = net

    m = b.block("Mixed_7a")  # 8 x 8 x 1280
    b0 = m.block("Branch_0")
    branch_0 = b0.conv(net, 192, 1, "Conv2d_0a_1x1")
    branch_0 = b0.conv(branch_0, 320, 3, "Conv2d_1a_3x3", stride=2, padding="valid")
    b1 = m.block("Branch_1")
    branch_1 = b1.conv(net, 192, 1, "Conv2d_0a_1x1")
    branch_1 = b1.conv(branch_1, 192, (1, 7), "Conv2d_0b_1x7")
    branch_1 = b1.conv(branch_1, 192, (7, 1), "Conv2d_0c_7x1")
    branch_1 = b1.conv(branch_1, 192, 3, "Conv2d_1a_3x3", stride=2, padding="valid")
    branch_2 = m.block("Branch_2").max_pool(net, "MaxPool_1a_3x3")
    net = b.concat([branch_0, branch_1, branch_2], "Mixed_7a")

    net = _mixed_8(b, net, "Mixed_7b", branch_1_3x1="Conv2d_0b_3x1")  # 8 x 8 x 2048
    net = _mixed_8(b, net, "Mixed_7c", branch_1_3x1="Conv2d_0c_3x1")  # 8 x 8 x 2048

    # Final pooling and prediction.
    lg = b.block("Logits")
    net = lg.avg_pool(net, "AvgPool_1a_8x8", size=8, padding="valid")  # 1 x 1 x 2048
    # slim's Logits/Dropout_1b (keep_prob 0.8), whose output is the end point PreLogits.
    net = keras.layers.Dropout(0.2, name="PreLogits")(net)
    net = keras.layers.Conv2D(NUM_CLASSES, 1, use_bias=True,
                              kernel_initializer=slim_variance_scaling(),
                              bias_initializer="zeros",
                              name=lg.name("Conv2d_1c_1x1", "Conv2D"))(net)  # 1 x 1 x 1001
    logits = keras.layers.Reshape((NUM_CLASSES,), name="Logits")(net)  # slim's SpatialSqueeze
    model = keras.Model(inputs, logits, name=name)

    # Auxiliary head on Mixed_6e (used in training only, but in the checkpoint).
    aux = b.block("AuxLogits")
    net = aux.avg_pool(mixed_6e, "AvgPool_1a_5x5", size=5, stride=3, padding="valid")  # 5x5x768
    net = aux.conv(net, 128, 1, "Conv2d_1b_1x1")  # 5 x 5 x 128
    net = aux.conv(net, 768, 5, "Conv2d_2a_5x5", padding="valid",
                   kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.01))
    net = keras.layers.Conv2D(NUM_CLASSES, 1, use_bias=True,
                              kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.001),
                              bias_initializer="zeros",
                              name=aux.name("Conv2d_2b_1x1", "Conv2D"))(net)
    aux_logits = keras.layers.Reshape((NUM_CLASSES,), name="AuxLogits")(net)
    predictions = keras.layers.Softmax(name="Predictions")(logits)
    side = keras.Model(inputs, [aux_logits, predictions])
    side_layers = [layer for layer in side.layers
                   if layer.name.startswith("AuxLogits") or layer.name == "Predictions"]
    setattr(model, _SIDE_HEADS_ATTR, side_layers)  # tracked: their weights count as the model's
    model.randomization_groups = randomization_groups(model)
    return model


def _all_layers(model):
    return list(model.layers) + list(getattr(model, _SIDE_HEADS_ATTR, []))


def end_point_layer(model, name):
    """The layer whose output is slim end point (or any layer) `name`, side heads included.

    Raises:
      SanityError: no such layer; the message lists the end points.
    """
    from tf_sanity.errors import SanityError
    for layer in _all_layers(model):
        if layer.name == name:
            return layer
    raise SanityError(f"no end point or layer {name!r} in {model.name}; end points: "
                      f"{', '.join(END_POINTS + ('Predictions',))}")


def end_point_model(model, names):
    """A model sharing `model`'s layers that returns the given end points.

    Args:
      model: a model from :func:`inception_v3` / :func:`slim_models.load_inception_v3`.
      names: an end point name or a list of them (any layer name works, e.g.
        ``'Mixed_5b.Branch_1.Conv2d_0b_5x5'`` for that conv block's ReLU output).

    Returns:
      ``keras.Model`` from the images to the end points: one tensor for one name, a dict
      ``{name: tensor}`` for a list of names.
    """
    if isinstance(names, str):
        return keras.Model(model.input, end_point_layer(model, names).output)
    return keras.Model(model.input, {n: end_point_layer(model, n).output for n in names})


def randomization_groups(model):
    """The 17 cascading-randomization blocks of Adebayo et al. (2018), Sec. 3, top down.

    Returns:
      A list of ``(block name, [layer names])``; the layers are those with variables whose slim
      scope lies under ``InceptionV3/<block>/`` (for ``Logits``: its 1x1 convolution).
    """
    groups = []
    for block in RANDOMIZATION_ORDER:
        names = [layer.name for layer in model.layers if layer.weights
                 and (layer.name == block or layer.name.startswith(block + "."))]
        groups.append((block, names))
    return groups


def slim_variable_map(model):
    """``{slim checkpoint name: keras variable}`` for all of `model`'s variables."""
    out = {}
    for layer in _all_layers(model):
        for slim_name, variable in slim_variable_names(layer):
            out[slim_name] = variable
    return out
