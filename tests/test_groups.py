"""Default randomization groups: the named blocks of keras.applications models (tf_sanity.checks.groups)."""

import keras
import numpy as np
import pytest

from tf_sanity.attribution.graph import leaf_layers, parents
from tf_sanity.checks import groups, randomization
from tf_sanity.checks.randomization_test import stage_groups
from tests.helpers import small_cnn

A = keras.applications
L = keras.layers


@pytest.fixture(scope="module")
def resnet50():
    return A.ResNet50(weights=None, input_shape=(32, 32, 3))


@pytest.fixture(scope="module")
def mobilenet_v2():
    return A.MobileNetV2(weights=None, input_shape=(32, 32, 3))


def names(grouping):
    return [name for name, _ in grouping.groups]


def assert_partition(model, grouping):
    """Every layer with weights (input preprocessing aside) is in exactly one group."""
    grouped = [layer for _, layers in grouping.groups for layer in layers]
    weighted = [layer.name for layer in leaf_layers(model) if layer.weights
                and not isinstance(layer, L.Normalization)]
    assert sorted(grouped) == sorted(weighted)
    assert len(set(grouped)) == len(grouped)


def assert_batchnorm_with_its_kernel(model, grouping, present=True):
    """A BatchNorm right after a kernel layer is in the kernel's group (`present`: there is one)."""
    group_of = {layer: name for name, layers in grouping.groups for layer in layers}
    pairs = [(layer, parents(layer)[0]) for layer in leaf_layers(model)
             if isinstance(layer, L.BatchNormalization)]
    pairs = [(bn, above) for bn, above in pairs if isinstance(above, (L.Conv2D, L.Dense))]
    for bn, above in pairs:
        assert group_of[bn.name] == group_of[above.name], bn.name
    assert bool(pairs) == present


def test_resnet50_blocks_top_down(resnet50):
    grouping = groups.grouping(resnet50)
    assert grouping.source == "blocks" and grouping.reason == ""
    got = names(grouping)
    assert len(got) == 18  # predictions, 3 + 4 + 6 + 3 bottleneck blocks, stem
    assert got[:5] == ["predictions", "conv5_block3", "conv5_block2", "conv5_block1", "conv4_block6"]
    assert got[-4:] == ["conv2_block3", "conv2_block2", "conv2_block1", "stem"]
    layers = dict(grouping.groups)
    assert layers["stem"] == ["conv1_conv", "conv1_bn"]
    assert sorted(layers["conv4_block1"]) == sorted(
        f"conv4_block1_{i}_{kind}" for i in range(4) for kind in ("conv", "bn"))  # with its shortcut
    assert_partition(resnet50, grouping)
    assert_batchnorm_with_its_kernel(resnet50, grouping)


def test_mobilenet_v2_blocks_and_conv_head(mobilenet_v2):
    grouping = groups.grouping(mobilenet_v2)
    got = names(grouping)
    assert len(got) == 20  # predictions, Conv_1, block_16 ... block_1, expanded_conv, stem
    assert got[:4] == ["predictions", "Conv_1", "block_16", "block_15"]
    assert got[-4:] == ["block_2", "block_1", "expanded_conv", "stem"]
    layers = dict(grouping.groups)
    assert layers["Conv_1"] == ["Conv_1", "Conv_1_bn"]
    assert layers["stem"] == ["Conv1", "bn_Conv1"]
    assert layers["block_6"] == [f"block_6_{part}{bn}" for part in ("expand", "depthwise", "project")
                                 for bn in ("", "_BN")]
    assert_partition(mobilenet_v2, grouping)
    assert_batchnorm_with_its_kernel(mobilenet_v2, grouping)


def test_randomization_uses_the_blocks_when_the_model_names_no_groups(mobilenet_v2):
    expected = names(groups.grouping(mobilenet_v2))
    assert [name for name, _ in randomization.default_groups(mobilenet_v2)] == expected
    assert [name for name, _ in stage_groups(mobilenet_v2, "top_down")] == expected
    assert [name for name, _ in stage_groups(mobilenet_v2, "bottom_up")] == expected[::-1]


def test_cascade_changes_exactly_the_top_k_blocks_and_restores_bit_identical(mobilenet_v2):
    model = mobilenet_v2
    blocks = dict(groups.grouping(model).groups)
    order = list(blocks)
    trained = {layer.name: [np.copy(w) for w in layer.get_weights()] for layer in leaf_layers(model)}

    def changed_layers():
        return {layer for layers in blocks.values() for layer in layers if any(
            not np.array_equal(a, b) for a, b in zip(model.get_layer(layer).get_weights(), trained[layer]))}

    steps = 0
    for k, (name, _) in enumerate(randomization.cascading(model, seed=5), start=1):
        assert name == order[k - 1]
        # exactly the top k blocks changed, each in every one of its layers
        assert changed_layers() == {layer for block in order[:k] for layer in blocks[block]}
        steps += 1
    assert steps == len(order)
    for layer in leaf_layers(model):
        for a, b in zip(layer.get_weights(), trained[layer.name]):
            np.testing.assert_array_equal(a, b)


def _mobilenet_base(trainable=True):
    base = A.MobileNetV2(weights=None, input_shape=(32, 32, 3), include_top=False, alpha=0.35)
    base.trainable = trainable
    return base


@pytest.mark.parametrize("kind", ["sequential", "functional", "frozen"])
def test_nested_backbone_gets_its_blocks_plus_the_outer_head(kind):
    base = _mobilenet_base(trainable=kind != "frozen")
    if kind == "functional":
        inputs = keras.Input((32, 32, 3))
        x = L.GlobalAveragePooling2D()(base(inputs))
        x = L.Dense(8, activation="relu", name="fc")(L.Dropout(0.2)(x))
        model = keras.Model(inputs, L.Dense(3, name="classifier")(x))
        head = ["classifier", "fc"]
    else:
        model = keras.Sequential([keras.Input((32, 32, 3)), base, L.GlobalAveragePooling2D(),
                                  L.Dense(3, name="classifier")])
        head = ["classifier"]
    grouping = groups.grouping(model)
    assert grouping.source == "blocks"
    assert names(grouping) == head + names(groups.grouping(base))
    assert names(grouping)[len(head):len(head) + 2] == ["Conv_1", "block_16"]
    assert names(grouping)[-1] == "stem" and len(grouping.groups) == len(head) + 19
    assert_partition(model, grouping)


def test_model_without_block_names_falls_back_to_layers_and_says_why():
    grouping = groups.grouping(small_cnn())
    assert grouping.source == "layers"
    assert "matches a known block pattern" in grouping.reason
    assert grouping.groups == [(g, [g]) for g in ("output", "fc1", "conv2", "conv1")]


def _chain(*names):
    inputs = x = keras.Input((8, 8, 3))
    for name in names:
        x = L.Conv2D(2, 3, padding="same", name=name)(x)
    return keras.Model(inputs, L.Dense(2, name="predictions")(L.Flatten()(x)))


def test_unnamed_layer_between_blocks_falls_back_instead_of_guessing():
    model = _chain("block1_conv1", "block1_conv2", "mystery", "block2_conv1")
    grouping = groups.grouping(model)
    assert grouping.source == "layers" and "'mystery'" in grouping.reason
    assert names(grouping) == ["predictions", "block2_conv1", "mystery", "block1_conv2", "block1_conv1"]
    named = _chain("block1_conv1", "block1_conv2", "block2_conv1")
    assert names(groups.grouping(named)) == ["predictions", "block2", "block1"]


def test_interleaved_blocks_fall_back():
    grouping = groups.grouping(_chain("block1_a", "block2_a", "block1_b"))
    assert grouping.source == "layers" and "interleave" in grouping.reason


def test_unnamed_residual_joins_the_block_it_is_added_to():
    """Xception's shortcut convolutions have Keras's default names; they belong to the block they bypass."""
    inputs = keras.Input((8, 8, 3))
    x = L.Conv2D(2, 3, padding="same", name="block1_conv")(inputs)
    unnamed = [L.Conv2D(2, 1), L.BatchNormalization()]
    shortcut = unnamed[1](unnamed[0](x))
    y = L.Conv2D(2, 3, padding="same", name="block2_conv")(x)
    y = L.Conv2D(2, 3, padding="same", name="block2_conv2")(y)
    x = L.Add()([y, shortcut])
    model = keras.Model(inputs, L.Conv2D(2, 1, name="block3_conv")(x))
    blocks = dict(groups.grouping(model).groups)
    assert list(blocks) == ["block3", "block2", "block1"]
    assert sorted(blocks["block2"]) == sorted(["block2_conv", "block2_conv2"] + [u.name for u in unnamed])


def test_own_groups_take_precedence_and_preprocessing_is_in_no_group():
    inputs = keras.Input((8, 8, 3))
    x = L.Normalization(axis=-1, name="normalization")(inputs)
    x = L.Conv2D(2, 3, name="stem_conv")(x)
    x = L.BatchNormalization(name="stem_bn")(x)
    x = L.Conv2D(2, 3, name="block1a_conv")(x)
    model = keras.Model(inputs, L.Dense(2, name="predictions")(L.Flatten()(x)))
    assert model.get_layer("normalization").weights
    assert groups.grouping(model).groups == [("predictions", ["predictions"]), ("block1a", ["block1a_conv"]),
                                             ("stem", ["stem_conv", "stem_bn"])]
    model.randomization_groups = [("all", ["predictions", "block1a_conv", "stem_conv", "stem_bn"])]
    assert groups.grouping(model) == groups.Grouping(model.randomization_groups, "model")


# family -> (input size, number of groups, first groups, last groups)
FAMILIES = {
    "VGG16": (32, 8, ["predictions", "fc2", "fc1", "block5"], ["block1"]),
    "ResNet50": (32, 18, ["predictions", "conv5_block3"], ["conv2_block1", "stem"]),
    "ResNet50V2": (32, 19, ["predictions", "post_bn", "conv5_block3"], ["conv2_block1", "stem"]),
    "MobileNet": (32, 15, ["conv_preds", "conv_dw_pw_13"], ["conv_dw_pw_1", "stem"]),
    "MobileNetV2": (32, 20, ["predictions", "Conv_1", "block_16"], ["expanded_conv", "stem"]),
    "MobileNetV3Small": (32, 15, ["logits", "conv_2", "conv_1", "expanded_conv_10"],
                         ["expanded_conv", "stem"]),
    "DenseNet121": (32, 64, ["predictions", "bn", "conv5_block16"],
                    ["pool2"] + [f"conv2_block{i}" for i in range(6, 0, -1)] + ["stem"]),
    "EfficientNetB0": (32, 19, ["predictions", "top_conv", "block7a", "block6d"], ["block1a", "stem"]),
    "EfficientNetV2B0": (32, 24, ["predictions", "top_conv", "block6h"], ["block1a", "stem"]),
    "InceptionV3": (75, 17, ["predictions", "mixed10", "mixed9"], ["mixed0", "stem_5", "stem_4", "stem_3",
                                                                     "stem_2", "stem_1"]),
    "Xception": (71, 15, ["predictions", "block14", "block13"], ["block2", "block1"]),
    "ConvNeXtTiny": (32, 24, ["convnext_tiny_head_dense", "convnext_tiny_head_layernorm", "stage_3_block_2"],
                     ["downsampling_0", "stage_0_block_2", "stage_0_block_1", "stage_0_block_0", "stem"]),
}


@pytest.mark.slow
@pytest.mark.parametrize("family", list(FAMILIES))
def test_keras_applications_families(family):
    size, count, first, last = FAMILIES[family]
    model = getattr(A, family)(weights=None, input_shape=(size, size, 3))
    grouping = groups.grouping(model)
    print(family, len(grouping.groups), names(grouping))
    assert grouping.source == "blocks", grouping.reason
    assert len(grouping.groups) == count
    assert names(grouping)[:len(first)] == first and names(grouping)[-len(last):] == last
    assert_partition(model, grouping)
    assert_batchnorm_with_its_kernel(model, grouping, present=family not in ("VGG16", "ConvNeXtTiny"))
