"""What ``tf-sanity check`` reads (tf_sanity.checks.inputs) and what it counts before running (tf_sanity.checks.plan):
every bad input is one SanityError line, a model file holding code is not run, preprocessings match Keras'."""

import numpy as np
import pytest
from PIL import Image

import keras
from tests import check_results as cr
from tf_sanity.checks import inputs, plan
from tf_sanity.errors import SanityError


def _save(model, path):
    model.save(path)
    return path


def _one_line(excinfo):
    message = str(excinfo.value)
    assert "\n" not in message
    return message


@pytest.fixture(scope="module")
def cnn_file(tmp_path_factory):
    return _save(cr.image_model(), tmp_path_factory.mktemp("m") / "cnn.keras")


def test_a_keras_and_an_h5_file_load_with_their_weights(tmp_path):
    model = cr.image_model()
    x = cr.inputs_for(model, 2)
    for name in ("m.keras", "m.h5"):
        loaded = inputs.load_model(_save(model, tmp_path / name))
        np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-5)


def test_a_model_file_with_a_lambda_is_refused_and_its_code_not_run(tmp_path):
    marker = tmp_path / "ran.txt"
    inp = keras.Input((4,))
    hidden = keras.layers.Lambda(eval(f"lambda t: (open({str(marker)!r}, 'w').close(), t)[1]"))(inp)
    path = _save(keras.Model(inp, keras.layers.Dense(3)(hidden)), tmp_path / "evil.keras")
    marker.unlink()  # building the model ran the lambda once
    with pytest.raises(SanityError, match="--trust-model") as e:
        inputs.load_model(path)
    _one_line(e)
    assert not marker.exists()
    inputs.load_model(path, trust=True)  # the flag the message names: the code runs (as Keras rebuilds the graph)
    assert marker.exists()


def test_missing_unreadable_and_savedmodel_files_say_what_to_do(tmp_path):
    (tmp_path / "bad.keras").write_text("not a zip")
    (tmp_path / "bad.h5").write_text("not hdf5")
    (tmp_path / "m.pt").write_text("")
    saved = tmp_path / "saved"
    import tensorflow as tf
    tf.saved_model.save(cr.tabular_model(), str(saved))
    for path, says in ((tmp_path / "none.keras", "no model file"), (tmp_path / "bad.keras", "not a .keras file"),
                       (tmp_path / "bad.h5", "cannot load"), (tmp_path / "m.pt", "not a .keras or .h5"),
                       (saved, "model.save")):
        with pytest.raises(SanityError, match=says) as e:
            inputs.load_model(path)
        _one_line(e)


def test_several_outputs_and_no_trainable_weights_are_refused(tmp_path):
    inp = keras.Input((4,))
    two = keras.Model(inp, [keras.layers.Dense(2)(inp), keras.layers.Dense(3)(inp)])
    with pytest.raises(SanityError, match="2 outputs"):
        inputs.load_model(_save(two, tmp_path / "two.keras"))
    frozen = cr.tabular_model()
    frozen.trainable = False
    with pytest.raises(SanityError, match="no trainable weights"):
        inputs.load_model(_save(frozen, tmp_path / "frozen.keras"))


def test_an_image_folder_is_resized_and_read_as_raw_values(tmp_path, cnn_file):
    model = inputs.load_model(cnn_file)
    rng = np.random.default_rng(0)
    for k in range(3):
        Image.fromarray(rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)).save(tmp_path / f"{k}.png")
    (tmp_path / "notes.txt").write_text("ignored")
    got = inputs.load_inputs(tmp_path, model=model, limit=2)
    assert got.x.shape == (2, 12, 12, 1) and got.total == 3 and got.kind == "image"
    assert got.x.max() > 1 and got.x.max() <= 255
    scaled = inputs.load_inputs(tmp_path, model=model, limit=2, preprocess="scale01")
    np.testing.assert_allclose(scaled.x, got.x / 255, rtol=1e-6)
    mine = inputs.load_inputs(tmp_path, model=model, limit=2, preprocess="tests.check_user_functions:halve")
    np.testing.assert_allclose(mine.x, got.x / 2, rtol=1e-6)


@pytest.mark.parametrize("mode", ["caffe", "torch"])
def test_imagenet_preprocessings_match_keras(mode):
    x = np.random.default_rng(1).uniform(0, 255, (2, 5, 5, 3)).astype(np.float32)
    expected = keras.applications.imagenet_utils.preprocess_input(x.copy(), mode=mode)
    np.testing.assert_allclose(inputs.PREPROCESS[mode](x), expected, rtol=1e-5, atol=1e-4)


def test_each_input_kind_is_recognized(tmp_path):
    for make, kind in ((cr.image_model, "image"), (cr.sequence_model, "sequence"), (cr.tabular_model, "tabular"),
                       (cr.token_model, "tokens")):
        model = make()
        np.save(tmp_path / "x.npy", cr.inputs_for(model, 5))
        got = inputs.load_inputs(tmp_path / "x.npy", model=model, limit=3)
        assert got.kind == kind and got.x.shape == (3, *model.input_shape[1:]) and got.total == 5


def test_bad_inputs_give_one_line_each(tmp_path, cnn_file):
    model = inputs.load_model(cnn_file)
    x = cr.inputs_for(model, 4)
    bad = {"shape.npy": x[:, :10], "nan.npy": np.where(np.arange(x.size).reshape(x.shape) == 7, np.nan, x)}
    for name, array in bad.items():
        np.save(tmp_path / name, array)
    np.savez(tmp_path / "two.npz", a=x, b=x)
    np.save(tmp_path / "scalar.npy", np.float32(1))
    (tmp_path / "empty.npy").write_bytes(b"")  # np.load: EOFError
    np.savez(tmp_path / "whole.npz", x=x)
    (tmp_path / "cut.npz").write_bytes((tmp_path / "whole.npz").read_bytes()[:200])  # np.load: BadZipFile
    (tmp_path / "empty").mkdir()
    cases = {tmp_path / "shape.npy": "but the model takes", tmp_path / "nan.npy": "NaN or inf",
             tmp_path / "scalar.npy": "single value", tmp_path / "empty.npy": "cannot read",
             tmp_path / "cut.npz": "cannot read",
             tmp_path / "two.npz": "name the inputs 'x'", tmp_path / "empty": "no images",
             tmp_path / "missing.npy": "no inputs at", "tfds:imagenet": "unknown tfds data set"}
    for spec, says in cases.items():
        with pytest.raises(SanityError, match=says) as e:
            inputs.load_inputs(spec, model=model)
        _one_line(e)
    np.save(tmp_path / "x.npy", x)
    for preprocess, says in (("sclae01", "unknown preprocessing"), ("tests.check_user_functions:reshape", "shape"),
                             ("tests.check_user_functions:nothing", "no function")):
        with pytest.raises(SanityError, match=says):
            inputs.load_inputs(tmp_path / "x.npy", model=model, preprocess=preprocess)


def test_a_user_module_that_fails_on_import_gives_one_line_naming_where(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "broken_syntax.py").write_text("def f(:\n    pass\n")
    (tmp_path / "broken_import.py").write_text("x = 1\nraise ValueError('no config file')\n")
    for spec, says in (("broken_syntax:f", r"SyntaxError at .*broken_syntax.py:1"),
                       ("broken_import:f", r"ValueError at .*broken_import.py:2: no config file")):
        with pytest.raises(SanityError, match=says) as e:
            inputs.load_function(spec, "method")
        _one_line(e)


def test_token_ids_outside_the_vocabulary_are_refused(tmp_path):
    model = cr.token_model(vocabulary=20)
    np.save(tmp_path / "ids.npy", np.full((3, 10), 20))
    with pytest.raises(SanityError, match=r"\[0, 20\)"):
        inputs.load_inputs(tmp_path / "ids.npy", model=model)


def test_targets_are_predicted_or_labels_in_range(tmp_path):
    assert inputs.load_targets("predicted", 4, 3) == "predicted"
    np.save(tmp_path / "y.npy", np.array([0, 2, 1, 1, 0]))
    np.testing.assert_array_equal(inputs.load_targets(tmp_path / "y.npy", 3, 3, total=5), [0, 2, 1])
    np.save(tmp_path / "big.npy", np.array([0, 3, 1]))
    np.save(tmp_path / "float.npy", np.array([0.0, 1.0, 1.0]))
    for spec, says in (("big.npy", r"\[0, 3\)"), ("float.npy", "integer class"), ("none.npy", "--targets")):
        with pytest.raises(SanityError, match=says):
            inputs.load_targets(tmp_path / spec, 3, 3)


def test_tfds_inputs_are_raw_pixel_values(shared_data, monkeypatch):
    monkeypatch.setenv("TF_SANITY_DATA_DIR", str(shared_data))
    model = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(10)])
    got = inputs.load_inputs("tfds:mnist:test", model=model, limit=4, preprocess="scale01")
    assert got.x.shape == (4, 28, 28, 1) and got.total == 10_000 and 0 <= got.x.min() and got.x.max() == 1
    assert got.labels.shape == (4,)


def test_passes_per_input_read_the_settings():
    import tf_sanity
    assert plan.passes_per_input(tf_sanity.METHODS["gradient"]) == 1
    assert plan.passes_per_input(tf_sanity.METHODS["integrated_gradients"], {"steps": 20}) == 20
    assert plan.passes_per_input(tf_sanity.METHODS["integrated_gradients_sg"], {"n": 5}) == 5 * 50
    assert plan.passes_per_input(tf_sanity.METHODS["deeplift"]) == 2
    assert plan.passes_per_input(tf_sanity.METHODS["guided_gradcam"]) == 2  # guided backprop and GradCAM


def test_the_estimate_counts_passes_over_stages_and_seeds():
    model = cr.image_model()  # 3 layers with weights: 3 groups; conv1 with a bias takes a shift
    x = cr.inputs_for(model, 4)
    e = plan.estimate(model, x, ["gradient", "integrated_gradients"], ("top_down", "independent"), "quick",
                      seeds=(0, 1), method_settings={"integrated_gradients": {"steps": 10}}, pass_time_s=(1e-3, 0.0))
    every = (1 + 10) * 4  # passes of one explanation of the 4 inputs by both methods
    assert e.stages == {"top_down": 3, "independent": 3}
    assert e.by_test == {"trained model": every, "model randomization": every * 2 * (3 + 3),
                         "sMPRT": every * 10 * (1 + 2 * 3), "random logit": every, "input invariance": 2 * every,
                         "data randomization": 0}
    assert e.passes == sum(e.by_test.values()) and e.seconds == pytest.approx(e.passes * 1e-3)
    measured = plan.estimate(model, x, ["gradient"], ("top_down",), "quick")
    assert 0 < measured.pass_time_s < 1 and "passes x" in measured.describe()
