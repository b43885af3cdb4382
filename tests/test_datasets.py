"""MNIST through tfds from the original .gz files: offline build, file order, checksums, failures."""

import gzip
import hashlib
import shutil
import time

import numpy as np
import pytest

from tf_sanity.models import datasets
from tf_sanity.errors import SanityError

# MANIFEST.md of shared/data: MNIST train label counts.
MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]


def _idx_payload(path, header):
    return np.frombuffer(gzip.open(path).read()[header:], np.uint8)


def test_offline_build_matches_the_original_files(mnist_dataset, shared_data):
    ds = mnist_dataset
    assert ds.x_train.shape == (60000, 28, 28, 1) and ds.x_train.dtype == np.float32
    assert ds.x_test.shape == (10000, 28, 28, 1) and ds.y_test.shape == (10000,)
    assert ds.x_train.min() == 0.0 and ds.x_train.max() == 1.0
    assert np.bincount(ds.y_train).tolist() == MNIST_TRAIN_COUNTS
    assert ds.x_train.mean() == pytest.approx(0.1307, abs=1e-4)
    # Same images and labels, in the same order, as the .gz files (tfds shuffles; load undoes it).
    folder = shared_data / "mnist"
    digest = hashlib.sha256()
    for prefix, x, y in (("train", ds.x_train, ds.y_train), ("t10k", ds.x_test, ds.y_test)):
        images = _idx_payload(folder / f"{prefix}-images-idx3-ubyte.gz", 16)
        labels = _idx_payload(folder / f"{prefix}-labels-idx1-ubyte.gz", 8)
        np.testing.assert_array_equal(np.rint(x * 255).astype(np.uint8).ravel(), images)
        np.testing.assert_array_equal(y, labels)
        digest.update(images.tobytes())
        digest.update(labels.tobytes())
    assert ds.checksum == digest.hexdigest()
    assert ds.y_train[:5].tolist() == [5, 0, 4, 1, 9]


def _copy_mnist(shared_data, tmp_path):
    (tmp_path / "mnist").mkdir(parents=True)
    for name in datasets.FILES:
        shutil.copy(shared_data / "mnist" / name, tmp_path / "mnist" / name)
    return tmp_path


def test_corrupted_file_is_refused_naming_it(shared_data, tmp_path):
    data_dir = _copy_mnist(shared_data, tmp_path / "data")
    victim = data_dir / "mnist" / "t10k-labels-idx1-ubyte.gz"
    raw = bytearray(victim.read_bytes())
    raw[len(raw) // 2] ^= 0x01  # one byte, same size
    victim.write_bytes(bytes(raw))
    with pytest.raises(SanityError, match=r"checksum mismatch for .*t10k-labels-idx1-ubyte\.gz"):
        datasets.prepare("mnist", data_dir, tfds_dir=tmp_path / "tfds")


def test_missing_folder_or_file_fails_fast_with_instructions(tmp_path, monkeypatch):
    monkeypatch.delenv(datasets.DATA_DIR_ENV, raising=False)
    start = time.perf_counter()
    with pytest.raises(SanityError, match=r"no folder .*mnist; put the four original \.gz files .* --data-dir"):
        datasets.prepare("mnist", tmp_path / "nowhere", tfds_dir=tmp_path / "tfds")
    (tmp_path / "partial" / "fashion-mnist").mkdir(parents=True)
    (tmp_path / "partial" / "fashion-mnist" / "train-images-idx3-ubyte.gz").write_bytes(b"")
    with pytest.raises(SanityError, match=r"lacks train-labels-idx1-ubyte\.gz, t10k-images"):
        datasets.prepare("fashion_mnist", tmp_path / "partial", tfds_dir=tmp_path / "tfds")
    assert time.perf_counter() - start < 5


def test_no_network_and_no_folder_fails_within_seconds(tmp_path, monkeypatch):
    monkeypatch.delenv(datasets.DATA_DIR_ENV, raising=False)
    monkeypatch.setattr(datasets, "_reachable", lambda url: False)  # as on a machine with no network
    start = time.perf_counter()
    with pytest.raises(SanityError, match=f"cannot be reached; .*{datasets.DATA_DIR_ENV}=DIR"):
        datasets.prepare("mnist", None, tfds_dir=tmp_path / "tfds")
    assert time.perf_counter() - start < 5


def test_reachability_probe_is_bounded():
    start = time.perf_counter()
    assert not datasets._reachable("http://tf-sanity.invalid/mnist.gz", timeout=2)
    assert time.perf_counter() - start < 4


def test_data_dir_from_argument_or_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(datasets.DATA_DIR_ENV, str(tmp_path))
    assert datasets.resolve_data_dir() == tmp_path
    assert datasets.resolve_data_dir(tmp_path / "x") == tmp_path / "x"
    monkeypatch.delenv(datasets.DATA_DIR_ENV)
    assert datasets.resolve_data_dir() is None
    monkeypatch.setenv(datasets.CACHE_ENV, str(tmp_path / "cache"))
    assert datasets.cache_dir() == tmp_path / "cache"


def test_unknown_dataset():
    with pytest.raises(SanityError, match="cifar10, fashion_mnist, mnist"):
        datasets.prepare("svhn_cropped")


@pytest.mark.slow
def test_fashion_mnist_offline_build(shared_data, tmp_path):
    ds = datasets.load("fashion_mnist", shared_data, tfds_dir=tmp_path)
    assert np.bincount(ds.y_train).tolist() == [6000] * 10
    assert ds.class_names[0] == "T-shirt/top"
    labels = _idx_payload(shared_data / "fashion-mnist" / "train-labels-idx1-ubyte.gz", 8)
    np.testing.assert_array_equal(ds.y_train, labels)


def test_cifar10_for_the_small_convnet_fails_fast_offline_and_says_which_file(tmp_path, monkeypatch):
    monkeypatch.delenv(datasets.DATA_DIR_ENV, raising=False)
    monkeypatch.setattr(datasets, "_reachable", lambda url: False)
    start = time.perf_counter()
    with pytest.raises(SanityError, match=r"www\.cs\.toronto\.edu cannot be reached; put the original "
                                          r"cifar-10-binary\.tar\.gz in DIR/cifar10/"):
        datasets.prepare("cifar10", None, tfds_dir=tmp_path / "tfds")
    (tmp_path / "data" / "cifar10").mkdir(parents=True)
    with pytest.raises(SanityError, match=r"lacks cifar-10-binary\.tar\.gz"):
        datasets.prepare("cifar10", tmp_path / "data", tfds_dir=tmp_path / "tfds")
    assert time.perf_counter() - start < 5
