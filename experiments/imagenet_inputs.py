"""Inputs shared by the ImageNet figures of Sanity Checks: test-bed images and the Inception v3 checkpoint.

Not an experiment. The test bed is ``<data dir>/imagenet/labels.csv`` (as ``../shared/data``), the data
dir being the config's ``data_dir`` or ``$TF_SANITY_DATA_DIR`` (:func:`experiments.common.data_dir`).
Images are read by :mod:`slim_models.imagenet`: decoded as RGB, scaled to [-1, 1] (``img / 127.5 - 1``)
and resized to 299 x 299; ``central_fraction=1.0`` (the default here) resizes the whole image as the
original notebooks did (PIL resize to 299), 0.875 is slim's evaluation crop.

The Inception figures need the real TF-slim ``inception_v3.ckpt`` (``inception_v3_2016_08_28``):
the config's ``checkpoint`` or ``$TF_SANITY_INCEPTION_CKPT`` (a path, or ``official`` for the official
archive, downloaded once into the cache). :func:`load_inception` refuses a
checkpoint whose top-5 accuracy on the explained images is far below the real one's (the tests'
random-weight checkpoint), so figures are never drawn from an untrained network.
"""

import glob
import hashlib
import os
import pathlib

import numpy as np

from experiments import common
from tf_sanity.errors import SanityError

CHECKPOINT_ENV = "TF_SANITY_INCEPTION_CKPT"
# The checkpoint value that names the official one, downloaded once into the cache.
OFFICIAL = "official"
# The real checkpoint has 93.9 % top-5 on ImageNet (appendix, Experimental Details); an untrained one
# is at chance (0.5 %).
MIN_TOP5 = 0.5
NEED_CHECKPOINT = ("Inception figures need the real TF-slim checkpoint inception_v3.ckpt "
                   "(inception_v3_2016_08_28.tar.gz from download.tensorflow.org/models): pass "
                   f"--checkpoint PATH (or set {CHECKPOINT_ENV} or the config's checkpoint), or "
                   f"--checkpoint {OFFICIAL} to download it once into the cache (the tests' random-weight "
                   "checkpoint is not accepted for figures)")


def folder(config):
    """The ImageNet test-bed folder ``<data dir>/imagenet``; raises SanityError saying what to provide."""
    root = common.data_dir(config)
    hint = ("set TF_SANITY_DATA_DIR (or the config's data_dir) to a folder holding imagenet/labels.csv "
            "and its images, as ../shared/data")
    if not root:
        raise SanityError(f"this experiment needs the ImageNet test-bed images; {hint}")
    path = pathlib.Path(root).expanduser() / "imagenet"
    if not (path / "labels.csv").is_file():
        raise SanityError(f"no ImageNet test bed at {path} (imagenet/labels.csv is missing); {hint}")
    return path


def records(config, subset, count):
    """`count` records of the test bed under `subset`, evenly spread over the CSV order (all classes)."""
    from slim_models import imagenet
    rows = imagenet.read_labels(folder(config) / "labels.csv", subset)
    if count < len(rows):
        rows = [rows[i] for i in np.linspace(0, len(rows) - 1, count).round().astype(int)]
    return rows


def load(config, subset, count, size=299, central_fraction=1.0):
    """``(records, images [N, size, size, 3] in [-1, 1], labels 0..999)`` of :func:`records`."""
    from slim_models import imagenet
    chosen = records(config, subset, count)
    images, labels = imagenet.load_images(chosen, size, central_fraction)
    return chosen, images, labels


def grayscale(images):
    """Mean over the colour channels: ``[N, H, W, 3] -> [N, H, W, 1]``."""
    return np.asarray(images).mean(axis=-1, keepdims=True)


def checkpoint(config):
    """The checkpoint path named by the config, else by ``$TF_SANITY_INCEPTION_CKPT`` ('' if none).

    The value ``"official"`` stands for the official checkpoint in the cache, downloaded once if missing
    (:func:`slim_models.checkpoint.official_checkpoint`; offline it fails within seconds, saying where
    to put the archive).
    """
    path = getattr(config, "checkpoint", "") or os.environ.get(CHECKPOINT_ENV, "")
    if path == OFFICIAL:
        from slim_models.checkpoint import official_checkpoint
        return str(official_checkpoint())
    return path


def fingerprint(config, with_checkpoint=True):
    """Identifies the test bed (a digest of its labels.csv) and the checkpoint (its files' names, sizes
    and times), for an experiment's ``inputs(config)``; what is missing is left out."""
    parts = []
    root = common.data_dir(config)
    labels = pathlib.Path(root).expanduser() / "imagenet" / "labels.csv" if root else None
    if labels is not None and labels.is_file():
        parts.append("test bed " + hashlib.sha256(labels.read_bytes()).hexdigest()[:16])
    path = checkpoint(config) if with_checkpoint else ""
    if path:
        p = pathlib.Path(path).expanduser().resolve()
        files = sorted(p.iterdir()) if p.is_dir() else sorted(p.parent.glob(glob.escape(p.name) + "*"))
        parts.append("checkpoint " + ", ".join(f"{f}:{f.stat().st_size}:{f.stat().st_mtime_ns}"
                                               for f in files if f.is_file()))
    return "; ".join(parts)


def require_checkpoint(config):
    """Raises SanityError (:data:`NEED_CHECKPOINT`) unless a checkpoint file, prefix or folder is named."""
    path = checkpoint(config)
    if not path:
        raise SanityError(NEED_CHECKPOINT)
    p = pathlib.Path(path).expanduser()
    if not (p.exists() or p.with_name(p.name + ".index").exists()):
        raise SanityError(f"no checkpoint at {path}; {NEED_CHECKPOINT}")


def load_inception(config, images, labels):
    """The TF-slim Inception v3 with the config's checkpoint, refused if it is not a trained one.

    Args:
      images, labels: test-bed images in [-1, 1] and their ImageNet labels (0..999).

    Returns:
      ``(model, logits [N, 1001])``.

    Raises:
      SanityError: no checkpoint, or top-5 accuracy on `images` below :data:`MIN_TOP5`.
    """
    import slim_models
    from slim_models import imagenet
    from tf_sanity.attribution import engine
    require_checkpoint(config)
    model = slim_models.load_inception_v3(checkpoint(config))
    scores = engine.scores_function(model)
    logits = np.concatenate([np.asarray(scores(images[i:i + 16])) for i in range(0, len(images), 16)])
    top5 = imagenet.top_k_correct(logits, labels, 5).mean()
    if top5 < MIN_TOP5:
        raise SanityError(f"checkpoint {checkpoint(config)} looks untrained: top-5 accuracy {top5:.0%} on "
                          f"{len(images)} test-bed images (the real one: about 94 %); {NEED_CHECKPOINT}")
    return model, logits


def require_images(config):
    """Fails fast, saying what to provide, unless every data set in ``config.datasets`` is there."""
    from tf_sanity.models import datasets
    for name in config.datasets:
        if name == "imagenet":
            folder(config)
        else:
            datasets.prepare(name, common.data_dir(config))


def images_fingerprint(config):
    """The test bed's fingerprint for experiments that need no checkpoint."""
    return fingerprint(config, with_checkpoint=False)
