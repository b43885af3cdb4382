"""MNIST and Fashion-MNIST (and CIFAR-10) through tensorflow-datasets, online or from the original files.

The paper's MNIST and Fashion-MNIST experiments (Adebayo et al. 2018, section 4 and appendix) use
the standard 60,000 / 10,000 splits. Here the data always goes through
``tfds.builder("mnist" | "fashion_mnist")`` so that tfds's registered checksums guard it:

* **Offline** (the usual case on this project's machines): a folder ``DIR`` holding
  ``DIR/mnist/`` and ``DIR/fashion-mnist/``, each with the four original files
  ``train-images-idx3-ubyte.gz``, ``train-labels-idx1-ubyte.gz``, ``t10k-images-idx3-ubyte.gz``,
  ``t10k-labels-idx1-ubyte.gz``. The folder is given by ``data_dir=`` (CLI ``--data-dir``) or the
  ``TF_SANITY_DATA_DIR`` environment variable. tfds reads the files through
  ``DownloadConfig(manual_dir=...)`` and still checks each file's size and sha256.
* **Online**: with no folder, tfds downloads the files, but only after a quick reachability check,
  because tfds itself retries for minutes before giving up without a network.

The prepared tfds dataset is written once under ``<cache>/tensorflow_datasets`` (see
:func:`cache_dir`) and reused afterwards; any build that succeeded passed the checksums.

CIFAR-10 (for the small convnet of "When Explanations Lie", appendix D) goes the same way, from
``DIR/cifar10/cifar-10-binary.tar.gz`` or downloaded by tfds; its images are ``(n, 32, 32, 3)``.

Arrays come back as in the paper's code: images float32 in ``[0, 1]`` shaped ``(n, 28, 28, 1)``,
labels int32 in ``0..9``, each split in the order of the original files (tfds shuffles on
write; :func:`load` undoes it).
"""

import dataclasses
import hashlib
import os
import pathlib
import re
import tempfile
import threading
import urllib.request

import numpy as np

from tf_sanity.errors import SanityError, unknown_name

DATA_DIR_ENV = "TF_SANITY_DATA_DIR"
CACHE_ENV = "TF_SANITY_CACHE"
FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
         "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
# tfds name -> sub-folder of the data folder holding the original files, and those files.
SUBFOLDERS = {"mnist": "mnist", "fashion_mnist": "fashion-mnist", "cifar10": "cifar10"}
ORIGINAL_FILES = {"mnist": FILES, "fashion_mnist": FILES, "cifar10": ("cifar-10-binary.tar.gz",)}
# One file per dataset whose URL is probed before tfds is allowed to download.
_PROBE_URLS = {
    "mnist": "https://storage.googleapis.com/cvdf-datasets/mnist/t10k-labels-idx1-ubyte.gz",
    "fashion_mnist": "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/t10k-labels-idx1-ubyte.gz",
    "cifar10": "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",
}
_PROBE_TIMEOUT_S = 5.0


@dataclasses.dataclass(frozen=True)
class Dataset:
    """One of MNIST / Fashion-MNIST / CIFAR-10 in memory.

    Attributes:
      name: the tfds name, ``"mnist"``, ``"fashion_mnist"`` or ``"cifar10"``.
      x_train: float32 ``(60000, 28, 28, 1)`` in ``[0, 1]`` (CIFAR-10: ``(50000, 32, 32, 3)``).
      y_train: int32 ``(60000,)``.
      x_test: float32 ``(10000, 28, 28, 1)`` in ``[0, 1]`` (CIFAR-10: ``(10000, 32, 32, 3)``).
      y_test: int32 ``(10000,)``.
      class_names: the 10 label names.
      checksum: sha256 (hex) of the raw uint8 train images, train labels, test images and test
        labels (file order), i.e. of the decompressed idx payloads; identifies the data a model saw.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple
    checksum: str


def cache_dir():
    """The user cache folder: ``$TF_SANITY_CACHE``, else ``~/.cache/tf_sanity``."""
    return pathlib.Path(os.environ.get(CACHE_ENV) or pathlib.Path.home() / ".cache" / "tf_sanity").expanduser()


def resolve_data_dir(data_dir=None):
    """Returns the offline data folder: ``data_dir`` if given, else ``$TF_SANITY_DATA_DIR``, else None."""
    data_dir = data_dir or os.environ.get(DATA_DIR_ENV) or None
    return pathlib.Path(data_dir).expanduser() if data_dir else None


def _how_to_provide(name):
    files = ORIGINAL_FILES[name]
    what = f"the four original .gz files ({', '.join(files)})" if len(files) == 4 else f"the original {files[0]}"
    return (f"put {what} in DIR/{SUBFOLDERS[name]}/ and pass "
            f"--data-dir DIR (Python: data_dir=DIR) or set {DATA_DIR_ENV}=DIR")


def _reachable(url, timeout=_PROBE_TIMEOUT_S):
    """True if a HEAD request to `url` answers within `timeout` seconds (DNS included)."""
    result = []

    def probe():
        try:
            with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=timeout):
                result.append(True)
        except Exception:  # noqa: BLE001 - any failure means "not reachable"
            result.append(False)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout + 1.0)
    return bool(result and result[0])


def _check_name(name):
    if name not in SUBFOLDERS:
        raise unknown_name("dataset", name, SUBFOLDERS)


def _download_config(name, data_dir):
    """Returns a tfds DownloadConfig reading the files from `data_dir`, or None to download."""
    import tensorflow_datasets as tfds

    if data_dir is None:
        if not _reachable(_PROBE_URLS[name]):
            raise SanityError(f"{name} is not prepared yet and {_PROBE_URLS[name].split('/')[2]} cannot be "
                              f"reached; {_how_to_provide(name)}")
        return None
    folder = data_dir / SUBFOLDERS[name]
    if not folder.is_dir():
        raise SanityError(f"no folder {folder}; {_how_to_provide(name)}")
    missing = [f for f in ORIGINAL_FILES[name] if not (folder / f).is_file()]
    if missing:
        raise SanityError(f"{folder} lacks {', '.join(missing)}; {_how_to_provide(name)}")
    return tfds.download.DownloadConfig(manual_dir=str(folder))


def prepare(name, data_dir=None, *, tfds_dir=None):
    """Builds the tfds dataset `name` once, from `data_dir` if given (checksums checked).

    Args:
      name: ``"mnist"``, ``"fashion_mnist"`` or ``"cifar10"``.
      data_dir: the folder with ``mnist/`` and ``fashion-mnist/`` sub-folders of original ``.gz``
        files; defaults to ``$TF_SANITY_DATA_DIR``; with neither, tfds downloads the files.
      tfds_dir: where tfds keeps prepared datasets; defaults to ``<cache>/tensorflow_datasets``.

    Returns:
      The prepared ``tfds`` builder.

    Raises:
      SanityError: files missing, no network and no folder (within about 6 s), or a file whose
        checksum differs from tfds's registered one (the message names the file).
    """
    import tensorflow_datasets as tfds
    from tensorflow_datasets.core.download.download_manager import NonMatchingChecksumError

    _check_name(name)
    tfds_dir = pathlib.Path(tfds_dir) if tfds_dir else cache_dir() / "tensorflow_datasets"
    builder = tfds.builder(name, data_dir=str(tfds_dir))
    if builder.is_prepared():
        return builder
    config = _download_config(name, resolve_data_dir(data_dir))
    # Extracted copies of the .gz files are only needed while building.
    with tempfile.TemporaryDirectory(prefix="tf_sanity_tfds_") as downloads:
        try:
            builder.download_and_prepare(download_dir=downloads, download_config=config)
        except NonMatchingChecksumError as e:
            found = re.search(r"downloaded to (.+?), has wrong checksum", str(e))
            where = found.group(1) if found else next((f for f in ORIGINAL_FILES[name] if f in str(e)), "a file")
            raise SanityError(f"checksum mismatch for {where}: it is not the original {name} file; "
                              f"replace it with the original (tfds checks size and sha256)") from None
    return builder


def _sha256(*arrays):
    digest = hashlib.sha256()
    for a in arrays:
        digest.update(np.ascontiguousarray(a).tobytes())
    return digest.hexdigest()


def _file_order(split, n):
    """Index that puts a tfds split back into the original files' order.

    tfds writes example ``k`` (the k-th image of the original file) at the rank of
    ``md5(split name + str(k))`` among all keys. Inverting that recovers the file order, which the
    ``original_code`` profile needs ("the first 5,000 training images"). tests/test_datasets.py
    checks the result against the .gz files byte for byte.
    """
    from tensorflow_datasets.core import hashing

    hasher = hashing.Hasher(split)
    written = np.array(sorted(range(n), key=hasher.hash_key))  # written[j] = file index of record j
    return np.argsort(written)


def load(name, data_dir=None, *, tfds_dir=None):
    """Loads MNIST, Fashion-MNIST or CIFAR-10 as arrays in the original files' order.

    Args:
      name: ``"mnist"``, ``"fashion_mnist"`` or ``"cifar10"``.
      data_dir: offline folder of original files (see :func:`prepare`).
      tfds_dir: tfds data folder (see :func:`prepare`).

    Returns:
      A :class:`Dataset` with images float32 in ``[0, 1]`` shaped ``(n, 28, 28, 1)`` (CIFAR-10:
      ``(n, 32, 32, 3)``) and int32 labels, both splits in the order of the original files (tfds
      stores them shuffled; its CIFAR-10 builder keys examples by file index as its MNIST builder
      does, but only MNIST's order is checked against the files, in tests/test_datasets.py).
    """
    import tensorflow_datasets as tfds

    builder = prepare(name, data_dir, tfds_dir=tfds_dir)
    arrays = {}
    for split in ("train", "test"):
        data = tfds.as_numpy(builder.as_dataset(split=split, batch_size=-1, shuffle_files=False))
        order = _file_order(split, len(data["label"]))
        arrays[split] = data["image"][order], data["label"][order].astype(np.uint8)
    (train_images, train_labels), (test_images, test_labels) = arrays["train"], arrays["test"]
    scale = lambda images: images.astype(np.float32) / np.float32(255.0)  # noqa: E731
    return Dataset(
        name=name,
        x_train=scale(train_images), y_train=train_labels.astype(np.int32),
        x_test=scale(test_images), y_test=test_labels.astype(np.int32),
        class_names=tuple(builder.info.features["label"].names),
        checksum=_sha256(train_images, train_labels, test_images, test_labels),
    )
