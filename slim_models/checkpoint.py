"""Loading TF-slim's ``inception_v3.ckpt`` into the Keras port, by variable name.

The paper's ImageNet model (Adebayo et al. 2018, appendix "Data sets & Models") is the TF-slim
checkpoint ``inception_v3_2016_08_28``. :func:`load_inception_v3` reads any slim-format checkpoint (the
official V1 file or a V2 prefix written by ``tf.compat.v1.train.Saver``) with
``tf.train.load_checkpoint`` and insists on a one-to-one match: every model variable is set and
every checkpoint variable is used, except training bookkeeping (``global_step``, optimizer slots,
moving-average shadows). Without a path it downloads the official archive once into the cache
folder ``$TF_SANITY_CACHE`` (default ``~/.cache/tf_sanity``).
"""

import os
import pathlib
import re
import socket
import tarfile
import urllib.parse
import urllib.request

import numpy as np
import tensorflow as tf

from slim_models.inception_v3 import inception_v3, slim_variable_map
from tf_sanity.errors import SanityError

OFFICIAL_URL = "http://download.tensorflow.org/models/inception_v3_2016_08_28.tar.gz"
ARCHIVE_NAME = "inception_v3_2016_08_28.tar.gz"
CHECKPOINT_NAME = "inception_v3.ckpt"
CONNECT_TIMEOUT_S = 5

# Checkpoint entries that are training state, not part of the network.
_BOOKKEEPING = re.compile(
    r"(^|/)(global_step|beta1_power|beta2_power)$"
    r"|/(RMSProp|RMSProp_1|Momentum|Adam|Adam_1|ExponentialMovingAverage)$")

_MAX_LISTED = 8


def cache_dir():
    """The folder holding downloaded checkpoints: ``$TF_SANITY_CACHE`` or ``~/.cache/tf_sanity``."""
    return pathlib.Path(os.environ.get("TF_SANITY_CACHE") or
                        pathlib.Path.home() / ".cache" / "tf_sanity").expanduser()


def _listing(names):
    names = sorted(names)
    shown = ", ".join(names[:_MAX_LISTED])
    return shown + (f" ... ({len(names) - _MAX_LISTED} more)" if len(names) > _MAX_LISTED else "")


def _check_online(url):
    """Fails within CONNECT_TIMEOUT_S if neither the server nor the configured proxy answers."""
    proxy = urllib.request.getproxies().get(urllib.parse.urlsplit(url).scheme)
    host = urllib.parse.urlsplit(proxy if proxy and "//" in proxy else url)
    try:
        socket.create_connection((host.hostname, host.port or 80), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as e:
        raise SanityError(
            f"cannot reach {host.hostname} to download the Inception v3 checkpoint ({e}); download "
            f"{url} elsewhere and put it (or the extracted {CHECKPOINT_NAME}) into {cache_dir()}, "
            f"or pass the checkpoint path") from None


def official_checkpoint(download=True):
    """Path of the official ``inception_v3.ckpt`` in the cache, downloading it once if needed.

    Looks for ``<cache>/inception_v3.ckpt``; else extracts ``<cache>/inception_v3_2016_08_28.tar.gz``;
    else (if `download`) fetches the archive from ``download.tensorflow.org`` after a 5 s
    connectivity check, so an offline machine fails at once.

    Raises:
      SanityError: offline, or the download or archive is broken; says where to put the file.
    """
    folder = cache_dir()
    ckpt = folder / CHECKPOINT_NAME
    archive = folder / ARCHIVE_NAME
    if ckpt.is_file():
        return ckpt
    if not archive.is_file():
        if not download:
            raise SanityError(f"no {CHECKPOINT_NAME} in {folder}; put {ARCHIVE_NAME} "
                              f"({OFFICIAL_URL}) or the extracted checkpoint there")
        _check_online(OFFICIAL_URL)
        folder.mkdir(parents=True, exist_ok=True)
        partial = archive.with_name(archive.name + ".part")
        print(f"downloading {OFFICIAL_URL} to {folder} (about 100 MB, once)")
        try:
            with urllib.request.urlopen(OFFICIAL_URL, timeout=60) as response, \
                    open(partial, "wb") as out:
                while chunk := response.read(1 << 20):
                    out.write(chunk)
        except OSError as e:
            partial.unlink(missing_ok=True)
            raise SanityError(f"download of {OFFICIAL_URL} failed ({e}); retry, or put the "
                              f"archive into {folder} by hand") from None
        partial.replace(archive)
    try:
        with tarfile.open(archive) as tar:
            member = tar.getmember(CHECKPOINT_NAME)
            tar.extract(member, folder, filter="data")
    except (tarfile.TarError, KeyError, OSError) as e:
        raise SanityError(f"{archive} is not a valid {ARCHIVE_NAME} ({e}); delete it and "
                          f"download {OFFICIAL_URL} again") from None
    return ckpt


def _reader(path):
    path = pathlib.Path(path).expanduser()
    if path.is_dir():
        prefix = tf.train.latest_checkpoint(str(path))
        if prefix is None and (path / CHECKPOINT_NAME).exists():
            prefix = str(path / CHECKPOINT_NAME)
        if prefix is None:
            raise SanityError(f"no checkpoint in folder {path}; pass the checkpoint file or "
                              f"prefix (e.g. {path / CHECKPOINT_NAME})")
        path = pathlib.Path(prefix)
    try:
        return tf.train.load_checkpoint(str(path)), path
    except (tf.errors.OpError, ValueError) as e:
        first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise SanityError(f"cannot read checkpoint {path} ({first_line}); pass a TF-slim "
                          f"inception_v3 checkpoint file or prefix") from None


def load_slim_checkpoint(model, checkpoint):
    """Assigns the slim checkpoint `checkpoint` to `model`'s variables, matched by name.

    Args:
      model: a model from :func:`slim_models.inception_v3`.
      checkpoint: a checkpoint file, a V2 prefix, or a folder holding one.

    Returns:
      The checkpoint path that was read.

    Raises:
      SanityError: unreadable checkpoint, model variables missing from it, checkpoint
        variables the model does not have, or shape mismatches (each list truncated). The model
        is left unchanged then.
    """
    reader, path = _reader(checkpoint)
    _assign(model, reader, path)
    return path


def _assign(model, reader, path):
    shapes = reader.get_variable_to_shape_map()
    stored = {name for name in shapes if not _BOOKKEEPING.search(name)}
    variables = slim_variable_map(model)
    missing = set(variables) - stored
    unexpected = stored - set(variables)
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing from the checkpoint: {len(missing)} ({_listing(missing)})")
        if unexpected:
            parts.append(f"not in the model: {len(unexpected)} ({_listing(unexpected)})")
        raise SanityError(f"checkpoint {path} does not match TF-slim Inception v3 (1001 classes); "
                          f"{'; '.join(parts)}; pass an inception_v3.ckpt from TF-slim")
    wrong = [f"{name} {list(shapes[name])} vs {list(v.shape)}" for name, v in variables.items()
             if tuple(shapes[name]) != tuple(v.shape)]
    if wrong:
        raise SanityError(f"checkpoint {path} has {len(wrong)} variables of the wrong shape "
                          f"({_listing(wrong)}); pass an inception_v3.ckpt from TF-slim")
    for name, variable in variables.items():
        variable.assign(np.asarray(reader.get_tensor(name), dtype=variable.dtype))


def save_slim_checkpoint(model, prefix):
    """Writes `model`'s variables as a TF-slim checkpoint (V2 format) under their slim names.

    The result loads with :func:`load_slim_checkpoint` and with slim's own
    ``tf.compat.v1.train.Saver`` into ``tf_slim.nets.inception_v3``, e.g. to keep a randomized model.

    Args:
      model: a model from :func:`slim_models.inception_v3`.
      prefix: checkpoint prefix; ``<prefix>.index`` and ``<prefix>.data-*`` are written.

    Returns:
      The prefix, as a string.
    """
    prefix = str(pathlib.Path(prefix).expanduser())
    pathlib.Path(prefix).parent.mkdir(parents=True, exist_ok=True)
    variables = sorted(slim_variable_map(model).items())
    tf.raw_ops.SaveV2(prefix=prefix, tensor_names=[name for name, _ in variables],
                      shape_and_slices=[""] * len(variables),
                      tensors=[tf.convert_to_tensor(v) for _, v in variables])
    return prefix


def load_inception_v3(checkpoint=None):
    """TF-slim Inception v3 as a Keras model with the checkpoint's weights.

    Args:
      checkpoint: path of a slim ``inception_v3.ckpt`` (file, V2 prefix or folder); None takes
        the official ``inception_v3_2016_08_28`` from the cache, downloading it once.

    Returns:
      The model of :func:`slim_models.inception_v3` (logits ``[B, 1001]`` for images in [-1, 1])
      with the loaded weights; ``model.checkpoint_path`` records the file read.

    Raises:
      SanityError: see :func:`load_slim_checkpoint` and :func:`official_checkpoint`.
    """
    if checkpoint is None:
        checkpoint = official_checkpoint()
    reader, path = _reader(checkpoint)  # fail before the slow model build
    model = inception_v3()
    _assign(model, reader, path)
    model.checkpoint_path = str(path)
    return model
