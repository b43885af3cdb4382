"""The Keras Inception v3 against TF-slim's own graph, through a slim checkpoint (issue 4).

A session fixture builds ``tf_slim.nets.inception_v3`` in a ``tf.compat.v1`` graph (with the
TF 2.21 workarounds of DEVELOPERS.md), gives it random weights and random BatchNorm statistics
(so that BatchNorm is really tested), saves a checkpoint and records slim's end points on random
inputs. The Keras port loads that checkpoint and must reproduce every end point.
"""

import contextlib
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

import slim_models
from slim_models import imagenet
from slim_models.inception_v3 import RANDOMIZATION_ORDER, slim_variable_map
from tf_sanity.errors import SanityError

# Keras vs slim, float32 on CPU: |keras - slim| <= ATOL_REL * max|slim| + RTOL * |slim| per end point.
RTOL = 1e-5
ATOL_REL = 1e-5
DROPPED = "InceptionV3/Mixed_6b/Branch_1/Conv2d_0b_1x7/BatchNorm/moving_variance"


@contextlib.contextmanager
def _tf_slim_on_tf221():
    """tf_slim imports ``ops.Tensor``, which TF 2.21 moved to ``tensor.Tensor`` (DEVELOPERS.md)."""
    from tensorflow.python.framework import ops, tensor
    had = hasattr(ops, "Tensor")
    old = getattr(ops, "Tensor", None)
    ops.Tensor = tensor.Tensor
    try:
        yield
    finally:
        if had:
            ops.Tensor = old
        else:
            del ops.Tensor


@pytest.fixture(scope="session")
def slim_reference(tmp_path_factory):
    """Slim checkpoints (full and with one variable dropped), inputs and slim's end points."""
    directory = tmp_path_factory.mktemp("slim_inception")
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (2, 299, 299, 3)).astype(np.float32)
    with _tf_slim_on_tf221(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*layer.apply.*")
        import tf_slim
        from tf_slim.nets import inception_v3 as slim_v3
        graph = tf.Graph()
        with graph.as_default():
            tf.compat.v1.set_random_seed(0)
            images = tf.compat.v1.placeholder(tf.float32, [None, 299, 299, 3])
            with tf_slim.arg_scope(slim_v3.inception_v3_arg_scope(updates_collections=None)):
                _, end_points = slim_v3.inception_v3(images, num_classes=1001, is_training=False)
            tf.compat.v1.train.get_or_create_global_step()  # bookkeeping the loader must skip
            variables = tf.compat.v1.global_variables()
            with tf.compat.v1.Session(graph=graph) as sess:
                sess.run(tf.compat.v1.global_variables_initializer())
                for v in variables:  # non-trivial BatchNorm statistics and biases
                    shape = v.shape.as_list()
                    if v.name.endswith("moving_mean:0"):
                        v.load(rng.normal(0, 0.2, shape), sess)
                    elif v.name.endswith("moving_variance:0"):
                        v.load(rng.uniform(0.5, 2.0, shape), sess)
                    elif v.name.endswith(("beta:0", "biases:0")):
                        v.load(rng.normal(0, 0.1, shape), sess)
                outputs = sess.run(end_points, {images: x})
                full = tf.compat.v1.train.Saver().save(sess, str(directory / "full" / "model.ckpt"))
                kept = [v for v in variables if v.op.name != DROPPED]
                assert len(kept) == len(variables) - 1
                dropped = tf.compat.v1.train.Saver(kept).save(
                    sess, str(directory / "dropped" / "model.ckpt"))
    model_variables = [v for v in variables if "global_step" not in v.name]
    return {"checkpoint": full, "dropped": dropped, "x": x, "end_points": outputs,
            "num_params": sum(v.shape.num_elements() for v in model_variables),
            "num_variables": len(model_variables)}


@pytest.fixture(scope="session")
def loaded(slim_reference):
    return slim_models.load_inception_v3(slim_reference["checkpoint"])


def test_end_points_match_tf_slim(slim_reference, loaded):
    names = list(slim_reference["end_points"])
    assert set(names) == set(slim_models.END_POINTS) | {"Predictions"}
    ours = slim_models.end_point_model(loaded, names)(slim_reference["x"], training=False)
    worst = 0.0
    for name in names:
        ref = slim_reference["end_points"][name].reshape(ours[name].shape)
        got = np.asarray(ours[name])
        scale = float(np.abs(ref).max())
        err = float(np.abs(got - ref).max())
        worst = max(worst, err / scale)
        print(f"{name:15s} max|slim| {scale:10.4g}  max|keras - slim| {err:.3g}  rel {err / scale:.2g}")
        np.testing.assert_allclose(got, ref, rtol=RTOL, atol=ATOL_REL * scale, err_msg=name)
    print(f"worst max error relative to the end point's scale: {worst:.2g} "
          f"(asserted: rtol={RTOL}, atol={ATOL_REL} * max|slim|)")
    logits = np.asarray(loaded(slim_reference["x"], training=False))
    assert logits.shape == (2, 1001)
    np.testing.assert_array_equal(logits.argmax(1), slim_reference["end_points"]["Logits"].argmax(1))


def test_parameter_counts_match(slim_reference, loaded):
    assert loaded.count_params() == slim_reference["num_params"] == 27_182_194
    assert len(slim_variable_map(loaded)) == slim_reference["num_variables"] == 388


def test_missing_variable_is_a_clear_error(slim_reference):
    with pytest.raises(SanityError, match=r"missing from the checkpoint: 1 \(" + DROPPED) as info:
        slim_models.load_inception_v3(slim_reference["dropped"])
    assert "not in the model" not in str(info.value) and "\n" not in str(info.value)


def test_unexpected_variables_are_named_and_lists_truncated(tmp_path, loaded):
    prefix = str(tmp_path / "tiny.ckpt")
    names = ["InceptionV3/Conv2d_1a_3x3/weights", "InceptionV3/Mixed_8a/Conv2d/weights", "global_step"]
    tf.raw_ops.SaveV2(prefix=prefix, tensor_names=names, shape_and_slices=[""] * 3,
                      tensors=[tf.zeros([3, 3, 3, 32]), tf.zeros([1]), tf.constant(0, tf.int64)])
    with pytest.raises(SanityError) as info:
        slim_models.load_slim_checkpoint(loaded, prefix)  # fails before assigning anything
    message = str(info.value)
    assert "missing from the checkpoint: 387" in message and "more)" in message
    assert "not in the model: 1 (InceptionV3/Mixed_8a/Conv2d/weights)" in message
    assert "global_step" not in message and len(message) < 1500


def test_unreadable_checkpoint_is_a_clear_error(tmp_path, loaded):
    with pytest.raises(SanityError, match="cannot read checkpoint"):
        slim_models.load_slim_checkpoint(loaded, tmp_path / "nothing.ckpt")
    with pytest.raises(SanityError, match="no checkpoint in folder"):
        slim_models.load_inception_v3(tmp_path)


def test_structure_layer_names_and_initializers():
    model = slim_models.inception_v3()
    relus = [layer for layer in model.layers if isinstance(layer, keras.layers.ReLU)]
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert len(relus) == len(convs) - 1 == 94  # every conv but the logits one has its own ReLU
    assert all(layer.activation is keras.activations.linear for layer in convs)
    bns = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert all(not bn.scale and bn.center and bn.epsilon == 0.001 for bn in bns)
    for name in slim_models.END_POINTS:
        assert slim_models.end_point_layer(model, name).name == name
    variables = slim_variable_map(model)
    assert variables["InceptionV3/Mixed_5b/Branch_1/Conv2d_0b_5x5/weights"].path == \
        "Mixed_5b.Branch_1.Conv2d_0b_5x5.Conv2D/kernel"
    assert variables["InceptionV3/Logits/Conv2d_1c_1x1/biases"].shape == (1001,)
    # slim's variance_scaling_initializer: truncated normal, std sqrt(1.3 * 2 / fan_in).
    kernel = np.asarray(model.get_layer("Mixed_6b.Branch_0.Conv2d_0a_1x1.Conv2D").kernel)
    expected_std = np.sqrt(1.3 * 2 / 768)  # the std before truncation at 2 std
    assert np.abs(kernel).max() <= 2 * expected_std * 1.0001
    assert kernel.std() == pytest.approx(0.8796 * expected_std, rel=0.02)
    with pytest.raises(SanityError, match="end points"):
        slim_models.end_point_layer(model, "Mixed_9z")


def test_backward_rules_reach_every_relu(loaded):
    from tf_sanity.attribution import composites
    from tf_sanity.attribution.methods import GUIDED_BACKPROP
    relus = [layer for layer in loaded.layers if isinstance(layer, keras.layers.ReLU)]
    with composites.applied(loaded, GUIDED_BACKPROP):
        assert all("call" in vars(layer) for layer in relus)  # each ReLU's call is swapped
    assert not any("call" in vars(layer) for layer in relus)


def _snapshot(model):
    return {name: np.array(v.numpy()) for name, v in slim_variable_map(model).items()}


def _group_of(slim_name):
    block = slim_name.split("/")[1]
    return block if block in RANDOMIZATION_ORDER else None


@pytest.mark.parametrize("policy", ["paper", "original_code"])
def test_cascading_randomization_17_blocks(loaded, slim_reference, policy):
    from tf_sanity.checks import randomization
    model = loaded
    assert [name for name, _ in model.randomization_groups] == list(RANDOMIZATION_ORDER)
    trained = _snapshot(model)
    x = slim_reference["x"][:1]
    logits = np.asarray(model(x, training=False))
    variables = slim_variable_map(model)
    seen = []
    for k, (name, randomized) in enumerate(randomization.cascading(model, policy=policy, seed=0), 1):
        assert randomized is model
        seen.append(name)
        changed = {n for n, v in variables.items() if not np.array_equal(v.numpy(), trained[n])}
        groups = {_group_of(n) for n in changed}
        assert groups == set(RANDOMIZATION_ORDER[:k]), name
        moving = {n for n in changed if n.endswith(("moving_mean", "moving_variance"))}
        if policy == "paper":  # every variable of the block, BatchNorm statistics included
            block = {n for n in variables if _group_of(n) in RANDOMIZATION_ORDER[:k]}
            assert changed == block
        else:  # trainable only: conv weights, beta and biases; moving statistics keep their values
            assert not moving
        if k == 1:
            assert not np.allclose(np.asarray(model(x, training=False)), logits)
    assert seen == list(RANDOMIZATION_ORDER)
    for n, v in variables.items():  # restored bit-identically; AuxLogits never touched
        np.testing.assert_array_equal(v.numpy(), trained[n], err_msg=n)


def test_original_code_policy_redraws_from_slim_initializers(loaded):
    from tf_sanity.checks import randomization
    model = loaded
    variables = slim_variable_map(model)
    with randomization.independent(model, ["Mixed_6b"], policy="original_code", seed=3) as stages:
        for _ in stages:
            kernel = variables["InceptionV3/Mixed_6b/Branch_0/Conv2d_0a_1x1/weights"].numpy()
            beta = variables["InceptionV3/Mixed_6b/Branch_0/Conv2d_0a_1x1/BatchNorm/beta"].numpy()
            std = np.sqrt(1.3 * 2 / 768)
            assert np.abs(kernel).max() <= 2 * std * 1.0001
            assert kernel.std() == pytest.approx(0.8796 * std, rel=0.02)
            np.testing.assert_array_equal(beta, 0.0)


# The methods of Adebayo et al. (2018), Sec. 2, with SmoothGrad and VarGrad of each.
PAPER_METHODS = tuple(f"{m}{suffix}" for m in ("gradient", "gradient_x_input", "integrated_gradients",
                                              "guided_backprop", "gradcam", "guided_gradcam")
                      for suffix in ("", "_sg", "_vg"))
# Few steps and samples keep this fast; the benchmark uses the original code's settings.
QUICK = {"steps": 2, "n": 2, "batch_size": 8, "layer": "Mixed_7c", "low": -1.0, "high": 1.0}


def _explain_all(model, names, images, targets, **extra):
    import tf_sanity
    masks = {}
    for name in names:
        method = tf_sanity.METHODS[name]
        settings = {k: v for k, v in {**QUICK, **extra}.items() if k in method.settings}
        masks[name] = tf_sanity.explain(model, images, name, targets, **settings)
        assert masks[name].shape == images.shape, name
        assert np.isfinite(masks[name]).all(), name
        assert np.abs(masks[name]).max() > 0, name
    return masks


@pytest.fixture(scope="module")
def test_bed_batch(shared_data):
    bed = imagenet.TestBed(shared_data / "imagenet")
    images, labels = bed.load(bed.records[:2])
    return images, imagenet.to_slim_index(labels)


def test_paper_methods_run_on_the_test_bed(loaded, test_bed_batch):
    """The paper's methods on two real ImageNet images, random-weight checkpoint, GradCAM on Mixed_7c."""
    images, targets = test_bed_batch
    masks = _explain_all(loaded, PAPER_METHODS, images, targets)
    np.testing.assert_allclose(masks["gradient_x_input"], masks["gradient"] * images, rtol=1e-6)
    cam = masks["gradcam"]
    assert cam.min() >= 0 and cam.max() <= 1


@pytest.mark.slow
def test_every_other_registered_method_runs_on_the_test_bed(loaded, test_bed_batch, shared_data):
    """LRP, DeepLIFT, DeepTaylor, ... (Sixt et al. 2020) on Inception v3: each traces for 10-50 s
    on 2 CPU cores. PatternNet/-Attribution get patterns fitted on 10 test-bed images (enough to
    run, far too few for meaningful patterns)."""
    import tf_sanity
    images, targets = test_bed_batch
    others = [name for name in tf_sanity.METHODS if name not in PAPER_METHODS]
    bed = imagenet.TestBed(shared_data / "imagenet", limit=10)
    patterns = tf_sanity.attribution.patterns.fit_patterns(loaded, bed.load()[0], batch_size=5)
    _explain_all(loaded, others, images, targets, patterns=patterns)
