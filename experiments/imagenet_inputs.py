"""Inputs shared by the ImageNet figures of Sanity Checks: test-bed images and the trained network.

Not an experiment. The network (:data:`NETWORKS`, chosen by the config's ``model`` or
``--model`` / ``$TF_SANITY_IMAGENET_MODEL``) is the paper's TF-slim Inception v3 when its checkpoint
is given, else EfficientNet-Lite0 from its published ImageNet weights, which install offline: a
trained stand-in for Inception v3 (a different, shallower ReLU6 network with residual blocks and
depthwise convolutions), named as such wherever its numbers appear. The test bed is
``<data dir>/imagenet/labels.csv`` (as ``../shared/data``), the data dir being the config's ``data_dir``
or ``$TF_SANITY_DATA_DIR`` (:func:`experiments.common.data_dir`).
Images are read by :mod:`slim_models.imagenet`: decoded as RGB, scaled to [-1, 1] (``img / 127.5 - 1``)
and resized to the network's size (299 x 299; EfficientNet-Lite0: 224 x 224, then its own preprocessing);
``central_fraction=1.0`` (the default here) resizes the whole image as the original notebooks did (PIL
resize to 299), 0.875 is slim's evaluation crop.

The Inception figures need the real TF-slim ``inception_v3.ckpt`` (``inception_v3_2016_08_28``):
the config's ``checkpoint`` or ``$TF_SANITY_INCEPTION_CKPT`` (a path, or ``official`` for the official
archive, downloaded once into the cache). :func:`load_inception` refuses a
checkpoint whose top-5 accuracy on the explained images is far below the real one's (the tests'
random-weight checkpoint), so figures are never drawn from an untrained network.
"""

import dataclasses
import glob
import hashlib
import os
import pathlib

import numpy as np

from experiments import common
from tf_sanity.errors import SanityError, unknown_name

CHECKPOINT_ENV = "TF_SANITY_INCEPTION_CKPT"
MODEL_ENV = "TF_SANITY_IMAGENET_MODEL"
AUTO = "auto"
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


def _load_efficientnet(config, images, labels):
    """EfficientNet-Lite0 with its published ImageNet weights: ``(model, logits [N, 1000])``."""
    from tf_sanity.attribution import engine
    from tf_sanity.models import efficientnet_lite
    model = efficientnet_lite.efficientnet_lite0("imagenet")
    scores = engine.scores_function(model)
    logits = np.concatenate([np.asarray(scores(images[i:i + 16])) for i in range(0, len(images), 16)])
    return model, logits


def _efficientnet_fingerprint(config):
    from tf_sanity.models import efficientnet_lite
    path = efficientnet_lite.imagenet_weights_path()
    return f"weights {path.name}:{path.stat().st_size}"


def _to_efficientnet_input(images):
    """Test-bed images in [-1, 1] as EfficientNet-Lite0 takes them: RGB 0..255, then ``(x - 127) / 128``."""
    from tf_sanity.models import efficientnet_lite
    return efficientnet_lite.preprocess((np.asarray(images, np.float32) + 1.0) * 127.5)


def _slim():
    import slim_models
    return slim_models


def _efficientnet():
    from tf_sanity.models import efficientnet_lite
    return efficientnet_lite


def _slim_index(labels):
    from slim_models import imagenet
    return imagenet.to_slim_index(labels)


@dataclasses.dataclass(frozen=True)
class Network:
    """A trained ImageNet network the figures can be drawn on.

    Attributes:
      name: the config value; title: how figures and the report name it.
      size: input side; gradcam_layer: the layer GradCAM explains (the last block's output).
      load: ``load(config, images, labels) -> (model, logits)`` for test-bed images in [-1, 1] at `size`,
        already passed through `prepare`.
      prepare: test-bed images in [-1, 1] -> the model's input.
      classes: ImageNet labels 0..999 -> the model's output indices.
      requires, fingerprint: ``(config) -> None`` raising what is missing; ``(config) -> str`` identifying
        the weights, for the result store's key.
      stages: ``() -> [group names]``: the blocks the paper's test randomizes, top down (the model's
        ``randomization_groups``).
      pass_seconds: CPU time of one forward+backward pass per image, measured on 2 CPU cores (cost estimates).
    """

    name: str
    title: str
    size: int
    gradcam_layer: str
    load: object
    prepare: object
    classes: object
    requires: object
    fingerprint: object
    stages: object
    pass_seconds: float


NETWORKS = {
    "inception_v3": Network("inception_v3", "Inception v3", 299, "Mixed_7c", lambda c, x, y: load_inception(c, x, y),
                            lambda x: x, _slim_index, lambda c: require_checkpoint(c),
                            lambda c: fingerprint(c), lambda: list(_slim().RANDOMIZATION_ORDER),
                            0.76),  # wall time on a busy machine: docs/speed.md, benchmarks/bench_inception.py
    "efficientnet_lite0": Network("efficientnet_lite0", "EfficientNet-Lite0 (a trained stand-in for Inception v3)",
                                  224, "head_relu", _load_efficientnet, _to_efficientnet_input,
                                  lambda labels: np.asarray(labels), lambda c: _efficientnet_fingerprint(c),
                                  _efficientnet_fingerprint, lambda: _efficientnet().group_names(),
                                  0.030),  # paper-preset units of sc_imagenet_randomization (docs/reproduction.md)
}


def network(config):
    """The :class:`Network` of the config's ``model`` (``"auto"``: ``$TF_SANITY_IMAGENET_MODEL``, else
    Inception v3 when a checkpoint is named, else EfficientNet-Lite0)."""
    name = getattr(config, "model", AUTO) or AUTO
    if name == AUTO:
        name = os.environ.get(MODEL_ENV, "") or AUTO
    if name == AUTO:
        name = "inception_v3" if checkpoint(config) else "efficientnet_lite0"
    if name not in NETWORKS:
        raise unknown_name("ImageNet model", name, NETWORKS)
    return NETWORKS[name]


def resolve(config):
    """`config` with its ``model``, ``size`` and ``gradcam_layer`` filled in from its :class:`Network`."""
    net = network(config)
    changes = {"model": net.name}
    if hasattr(config, "size") and not config.size:
        changes["size"] = net.size
    if hasattr(config, "gradcam_layer") and not config.gradcam_layer:
        changes["gradcam_layer"] = net.gradcam_layer
    return dataclasses.replace(config, **changes)


def load_network(config, subset, count, size=None):
    """``(records, model inputs [N, size, size, 3], labels 0..999, model, logits)`` for a resolved config
    (`size`: default the config's)."""
    net = network(config)
    chosen, x, labels = load(config, subset, count, size or config.size, getattr(config, "central_fraction", 1.0))
    x = net.prepare(x)
    model, logits = net.load(config, x, labels)
    return chosen, x, labels, model, logits


def network_fingerprint(config):
    """The test bed's and the resolved network's weights' fingerprint, for an experiment's ``inputs``."""
    net = network(config)
    return "; ".join(p for p in (f"network {net.name}", fingerprint(config, with_checkpoint=False),
                                 net.fingerprint(config)) if p)


def variant(config):
    """Result files are named after the network (``<name>-<preset>-<model>``)."""
    return config.model
