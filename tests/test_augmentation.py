"""The paper's shift / flip augmentation (tf_sanity.models.augmentation) against scipy, and training that
continues a shorter run of the same recipe (the sixt 3k / 10k / 30k profiles)."""

import dataclasses

import keras
import numpy as np
import pytest
import scipy.ndimage as ndi

from tf_sanity.models import augmentation, mnist_models, sixt_models, training


def test_shift_and_flip_match_scipy():
    rng = np.random.default_rng(0)
    x = rng.random((6, 28, 28, 2)).astype(np.float32)
    offsets, flips = augmentation.draw(rng, 6, x.shape[1:], 0.1, True)
    assert np.abs(offsets).max() <= 2.8 and offsets.std() > 0.5 and flips.any() and not flips.all()
    got = augmentation.apply(x, offsets, flips).numpy()
    for k in range(6):
        want = np.stack([ndi.shift(x[k, :, :, c], -offsets[k], order=1, mode="nearest") for c in range(2)], -1)
        np.testing.assert_allclose(got[k], want[:, ::-1] if flips[k] else want, atol=1e-5)


def test_nothing_drawn_is_the_identity():
    x = np.random.default_rng(1).random((3, 5, 5, 1)).astype(np.float32)
    offsets, flips = augmentation.draw(np.random.default_rng(0), 3, x.shape[1:], 0.0, False)
    np.testing.assert_array_equal(augmentation.apply(x, offsets, flips).numpy(), x)


def test_flips_only_where_they_keep_the_label():
    assert sixt_models.PROFILES["3k"].flip and sixt_models.PROFILES["3k"].shift == 0.1
    assert not sixt_models.FLIP_SUITS["mnist"] and sixt_models.FLIP_SUITS["fashion_mnist"]
    assert sixt_models.PROFILES["paper"].epochs == 100 and sixt_models.PROFILES["paper"].batch_size == 32


def _subset(ds, n):
    return dataclasses.replace(ds, x_train=ds.x_train[:n], y_train=ds.y_train[:n], x_test=ds.x_test[:200],
                               y_test=ds.y_test[:200])


def _mlp():
    keras.utils.set_random_seed(0)
    return mnist_models.build("mlp")  # no dropout: a continued run is exactly the straight one


@pytest.mark.parametrize("steps", [7, 10])  # stop within an epoch (10 steps each) and at its end
def test_a_longer_run_continues_a_shorter_ones_checkpoint(mnist_dataset, tmp_path, steps):
    data = _subset(mnist_dataset, 500)
    profile = training.Profile("short", learning_rate=1e-3, batch_size=50, steps=steps, weight_decay=0.0,
                               shift=0.1)
    longer = dataclasses.replace(profile, name="long", steps=25)
    straight = _mlp()
    training.train(straight, data, longer, progress=False)
    checkpoint = tmp_path / "short.npz"
    training.train(_mlp(), data, profile, checkpoint_path=checkpoint, progress=False)
    continued = _mlp()
    result = training.train(continued, data, longer, checkpoint_path=tmp_path / "long.npz", continue_from=checkpoint,
                            progress=False)
    assert result.steps == 25 and result.epochs == 3
    for got, want in zip(continued.get_weights(), straight.get_weights()):
        np.testing.assert_allclose(got, want, atol=1e-5)
    other = dataclasses.replace(longer, learning_rate=1e-4)  # another recipe: starts afresh
    assert training.train(_mlp(), data, other, continue_from=checkpoint, progress=False).history[0]["steps"] == 10
