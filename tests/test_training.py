"""Training on small MNIST subsets: learning, label permutation, stopping rule, resume, cache, CLI."""

import dataclasses
import json

import keras
import numpy as np
import pytest

from tf_sanity import cli
from tf_sanity.models import datasets, mnist_models, training, zoo
from tf_sanity.errors import SanityError


def _subset(ds, n_train, n_test=2000):
    return dataclasses.replace(ds, x_train=ds.x_train[:n_train], y_train=ds.y_train[:n_train],
                               x_test=ds.x_test[:n_test], y_test=ds.y_test[:n_test])


def _profile(**changes):
    return dataclasses.replace(training.PROFILES["paper"], name="test", **changes)


def _model(architecture, seed=0):
    keras.utils.set_random_seed(seed)
    return mnist_models.build(architecture)


def test_profiles_match_the_reference():
    paper, code = training.PROFILES["paper"], training.PROFILES["original_code"]
    assert (paper.learning_rate, paper.batch_size, paper.steps, paper.holdout, paper.weight_decay) == \
        (1e-4, 50, 20_000, 0, 0.001)
    assert (code.learning_rate, code.batch_size, code.epochs, code.holdout, code.weight_decay) == \
        (1e-4, 50, 50, 5_000, 0.001)
    cnn, mlp = mnist_models.cnn(), mnist_models.mlp()
    decayed = lambda model, profile: [k.path.split("/")[0] for k in training._kernels(model, profile.decay_layers)]  # noqa: E731
    assert decayed(cnn, paper) == ["conv1", "conv2", "fc1", "output"]
    assert decayed(mlp, paper) == ["hidden1", "hidden2", "hidden3", "output"]
    assert decayed(cnn, code) == ["conv1", "conv2", "fc1"]
    assert decayed(mlp, code) == []
    with pytest.raises(SanityError, match="original_code, original_code_quick, paper, paper_quick"):
        training.get_profile("fast")


def test_label_permutation_is_a_seeded_permutation(mnist_dataset):
    y = mnist_dataset.y_train
    a, b, c = (training.permute_labels(y, s) for s in (0, 0, 1))
    np.testing.assert_array_equal(np.bincount(a), np.bincount(y))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert 0.85 < np.mean(a != y) < 0.95  # about 90 % of labels change, as for any random pairing


@pytest.mark.parametrize("architecture, steps, minimum", [("mlp", 200, 0.8), ("cnn", 150, 0.6)])
def test_a_few_hundred_steps_learn_well_above_chance(mnist_dataset, architecture, steps, minimum):
    result = training.train(_model(architecture), _subset(mnist_dataset, 10_000), _profile(steps=steps),
                            progress=False)
    assert result.steps == steps and result.stopping == {"rule": f"{steps} steps", "reached": True, "epochs": 1}
    assert result.test_accuracy > minimum  # chance is 0.1


def test_random_labels_train_until_the_stopping_rule(mnist_dataset):
    data = _subset(mnist_dataset, 200)
    result = training.train(_model("mlp"), data, _profile(steps=1, random_labels_max_epochs=60),
                            random_labels=True, progress=False)
    assert result.stopping["reached"] and not result.stopping["cap_hit"]
    assert result.train_accuracy > 0.95
    assert result.epochs < 60 and result.history[-1]["train_accuracy"] == result.train_accuracy
    assert result.test_accuracy < 0.3  # true test labels: near chance

    capped = training.train(_model("mlp"), data, _profile(steps=1, random_labels_max_epochs=1),
                            random_labels=True, progress=False)
    assert capped.stopping == {"rule": "train accuracy > 0.95", "reached": False, "cap_epochs": 1,
                               "cap_hit": True, "epochs": 1}


def test_interrupted_training_resumes_from_its_checkpoint(mnist_dataset, tmp_path):
    data = _subset(mnist_dataset, 600, 500)
    # decay_layers is a tuple, as in the original_code profile: stored as JSON it comes back a list.
    profile = _profile(steps=None, epochs=3, holdout=100, decay_layers=("fc1",))  # 500 trained on: 10 steps an epoch
    straight = _model("mlp")
    expected = training.train(straight, data, profile, seed=5, progress=False)
    assert expected.steps == 30 and expected.validation_accuracy is not None

    checkpoint = tmp_path / "checkpoint.npz"

    def interrupt(epoch, logs):
        if epoch == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        training.train(_model("mlp"), data, profile, seed=5, checkpoint_path=checkpoint, progress=False,
                       on_epoch_end=interrupt)
    assert checkpoint.is_file() and not list(tmp_path.glob("*.tmp*"))

    resumed_model = _model("mlp", seed=99)  # other initial weights: they must come from the checkpoint
    resumed = training.train(resumed_model, data, profile, seed=5, checkpoint_path=checkpoint, progress=False)
    assert resumed.resumed_from_epoch == 1 and resumed.steps == 30 and len(resumed.history) == 3
    for got, want in zip(resumed_model.get_weights(), straight.get_weights()):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)
    assert resumed.test_accuracy == pytest.approx(expected.test_accuracy, abs=0.002)

    other_seed = training.train(_model("mlp"), data, profile, seed=6, checkpoint_path=checkpoint, progress=False)
    assert other_seed.resumed_from_epoch == 0  # a checkpoint of another run is not reused


@pytest.fixture
def tiny_zoo(mnist_dataset, monkeypatch, tmp_path):
    """zoo with the 'paper' profile cut to 40 steps and MNIST cut to 2,000 images; returns the cache dir."""
    monkeypatch.setitem(training.PROFILES, "paper", dataclasses.replace(training.PROFILES["paper"], steps=40))
    monkeypatch.setattr(datasets, "load", lambda name, data_dir=None, **kw: _subset(mnist_dataset, 2000, 500))
    return tmp_path / "cache"


def test_cache_returns_the_same_weights(tiny_zoo, monkeypatch):
    model, meta = zoo.load_or_train("mnist-mlp", seed=1, cache_dir=tiny_zoo, progress=False)
    assert not meta["from_cache"]
    folder = zoo.model_dir("mnist-mlp", seed=1, cache_dir=tiny_zoo)
    saved = json.loads((folder / "metadata.json").read_text())
    for key in ("profile", "seed", "data_checksum_sha256", "train_accuracy", "test_accuracy",
                "training_time_s", "random_labels", "stopping"):
        assert key in saved
    assert saved["profile"] == "paper" and saved["seed"] == 1 and saved["steps"] == 40
    assert not (folder / "checkpoint.npz").exists()

    monkeypatch.setattr(training, "train", lambda *a, **k: pytest.fail("a cached model was retrained"))
    again = zoo.trained_model("mnist-mlp", seed=1, cache_dir=tiny_zoo)
    for got, want in zip(again.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(got, want)
    assert again.randomization_groups[0] == ("output", ["output"])
    assert zoo.load_or_train("mnist-mlp", seed=1, cache_dir=tiny_zoo)[1]["from_cache"]

    monkeypatch.setitem(training.PROFILES, "paper", dataclasses.replace(training.PROFILES["paper"], steps=80))
    with pytest.raises(SanityError, match=r"other 'paper' settings \(steps 40 -> 80\).*--retrain"):
        zoo.trained_model("mnist-mlp", seed=1, cache_dir=tiny_zoo)  # never a silently stale model


def test_a_quick_model_is_never_returned_for_a_paper_request_nor_the_other_way_round(tiny_zoo, monkeypatch):
    monkeypatch.setitem(training.PROFILES, "paper_quick",
                        dataclasses.replace(training.PROFILES["paper_quick"], steps=20))
    quick, quick_meta = zoo.load_or_train("mnist-mlp", profile="paper_quick", cache_dir=tiny_zoo, progress=False)
    paper, paper_meta = zoo.load_or_train("mnist-mlp", profile="paper", cache_dir=tiny_zoo, progress=False)
    assert not paper_meta["from_cache"] and paper_meta["steps"] == 40  # the quick model was not returned
    assert (quick_meta["steps"], quick_meta["schedule"], paper_meta["schedule"]) == (20, "20 steps", "40 steps")
    assert zoo.model_dir("mnist-mlp", cache_dir=tiny_zoo).name == "mnist-mlp-paper-seed0"  # the key before issue 18

    monkeypatch.setattr(training, "train", lambda *a, **k: pytest.fail("a cached model was retrained"))
    for profile, want, steps in (("paper_quick", quick, 20), ("paper", paper, 40)):
        model, meta = zoo.load_or_train("mnist-mlp", profile=profile, cache_dir=tiny_zoo)
        assert meta["from_cache"] and meta["profile"] == profile and meta["steps"] == steps
        for got, expected in zip(model.get_weights(), want.get_weights()):
            np.testing.assert_array_equal(got, expected)
    # a paper-named profile on another schedule gets its own folder, never the paper model's
    other = dataclasses.replace(training.PROFILES["paper"], steps=20)
    assert zoo.model_dir("mnist-mlp", profile=other, cache_dir=tiny_zoo).name.startswith("mnist-mlp-paper-")
    assert not (zoo.model_dir("mnist-mlp", profile=other, cache_dir=tiny_zoo) / zoo.WEIGHTS_FILE).exists()


def test_random_labels_memorize_the_profiles_subset(mnist_dataset):
    profile = _profile(steps=10, random_labels_images=200, random_labels_max_epochs=2, batch_size=20)
    result = training.train(_model("mlp"), _subset(mnist_dataset, 2000, 500), profile, random_labels=True,
                            progress=False)
    assert result.steps == 2 * 200 // 20  # epochs over the 200 images only


def test_cli_train_prints_accuracies(tiny_zoo, capsys):
    argv = ["train", "mnist-mlp", "--seed", "2", "--cache-dir", str(tiny_zoo), "--quiet"]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "mnist-mlp (true labels, profile paper, seed 2)" in out
    assert "test accuracy:" in out and "train accuracy:" in out and "trained now" in out
    assert "mnist-mlp-paper-seed2" in out  # the cache folder
    assert cli.main(argv) == 0
    assert "loaded from cache" in capsys.readouterr().out


def test_unknown_model_name():
    assert zoo.MODEL_NAMES == ("mnist-cnn", "mnist-mlp", "fashion_mnist-cnn", "fashion_mnist-mlp")
    with pytest.raises(SanityError, match="fashion_mnist-cnn, fashion_mnist-mlp, mnist-cnn, mnist-mlp"):
        zoo.model_dir("mnist-resnet")
