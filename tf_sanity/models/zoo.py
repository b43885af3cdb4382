"""Trained MNIST / Fashion-MNIST models on demand, cached, and the ``tf-sanity train`` command.

``trained_model("mnist-cnn")`` returns the paper's CNN trained on MNIST; the first call trains it
(:mod:`tf_sanity.models.training`) and stores it, later calls load it. Models live in
``<cache>/models/<name>-<profile>-seed<seed>[-random-labels]/`` (``<cache>`` is
``$TF_SANITY_CACHE`` or ``~/.cache/tf_sanity``; ``<profile>`` is
:meth:`tf_sanity.models.training.Profile.cache_name`, the profile's name plus a hash of its settings unless it
is the registered profile of that name, so a model of one schedule is never returned for another) as
``model.weights.h5`` plus ``metadata.json``
(profile, seed, data checksum, train / test accuracy, training time, random labels, stopping
rule and whether its cap was hit). While training, ``checkpoint.npz`` in the same folder holds
the last finished epoch; rerunning the same request continues from it.

Names are ``<dataset>-<architecture>``: ``mnist-cnn``, ``mnist-mlp``, ``fashion_mnist-cnn``,
``fashion_mnist-mlp``. Inputs of every model: ``(batch, 28, 28, 1)`` float32 in ``[0, 1]``.
"""

import datetime
import json
import os
import pathlib
import platform
import time

from tf_sanity.models import datasets, ledger, training
from tf_sanity.errors import SanityError, unknown_name

DATASET_NAMES = ("mnist", "fashion_mnist")  # the paper's 28 x 28 x 1 datasets (datasets also knows cifar10)
ARCHITECTURES = ("cnn", "mlp")  # tf_sanity.models.mnist_models.ARCHITECTURES; not imported here to keep the CLI light
MODEL_NAMES = tuple(f"{d}-{a}" for d in DATASET_NAMES for a in ARCHITECTURES)
WEIGHTS_FILE = "model.weights.h5"
METADATA_FILE = "metadata.json"
CHECKPOINT_FILE = "checkpoint.npz"


def _parse(name):
    if name not in MODEL_NAMES:
        raise unknown_name("model", name, MODEL_NAMES)
    dataset, architecture = name.rsplit("-", 1)
    return dataset, architecture


def model_dir(name, *, profile="paper", random_labels=False, seed=0, cache_dir=None):
    """The cache folder of one trained model (whether or not it exists yet)."""
    _parse(name)
    profile = training.get_profile(profile)
    root = pathlib.Path(cache_dir) if cache_dir else datasets.cache_dir()
    key = f"{name}-{profile.cache_name()}-seed{seed}{'-random-labels' if random_labels else ''}"
    return root / "models" / key


def _write_json_atomic(path, payload):
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def build_model(name):
    """A fresh (untrained) model for `name`, e.g. ``build_model("mnist-cnn")``."""
    from tf_sanity.models import mnist_models

    _, architecture = _parse(name)
    return mnist_models.build(architecture, name=name.replace("-", "_"))


def load_or_train(name, *, profile="paper", random_labels=False, seed=0, data_dir=None, cache_dir=None,
                  retrain=False, progress=True):
    """Returns ``(model, metadata)``, training and caching the model on first use.

    Args:
      name: one of :data:`MODEL_NAMES`.
      profile: a name of :data:`tf_sanity.models.training.PROFILES` (``"paper"``, ``"original_code"`` and their
        ``_quick`` schedules), or a Profile.
      random_labels: train on seeded permuted labels (the data randomization test).
      seed: seeds the initial weights, the batch order and the label permutation.
      data_dir: folder with the original ``.gz`` files (see :mod:`tf_sanity.models.datasets`);
        only read when the model must be trained.
      cache_dir: overrides ``$TF_SANITY_CACHE`` / ``~/.cache/tf_sanity``.
      retrain: train again even if a cached model exists.
      progress: show a progress bar while training.

    Returns:
      The trained ``keras.Model`` (with ``randomization_groups``) and its metadata dict; the
      metadata has ``"from_cache": True`` when nothing was trained by this call.
    """
    import keras

    dataset_name, architecture = _parse(name)
    profile = training.get_profile(profile)
    folder = model_dir(name, profile=profile, random_labels=random_labels, seed=seed, cache_dir=cache_dir)
    weights, metadata_path = folder / WEIGHTS_FILE, folder / METADATA_FILE
    if not retrain and weights.is_file() and metadata_path.is_file():
        metadata = json.loads(metadata_path.read_text())
        _check_profile_settings(metadata, profile, folder)
        model = build_model(name)
        model.load_weights(weights)
        metadata = {**metadata, "from_cache": True}
        ledger.record(name, metadata, profile.schedule(random_labels))
        return model, metadata

    tfds_dir = (pathlib.Path(cache_dir) / "tensorflow_datasets") if cache_dir else None
    data = datasets.load(dataset_name, data_dir, tfds_dir=tfds_dir)
    keras.utils.set_random_seed(seed)
    model = build_model(name)
    folder.mkdir(parents=True, exist_ok=True)
    checkpoint = folder / CHECKPOINT_FILE
    if retrain:
        checkpoint.unlink(missing_ok=True)  # --retrain starts from scratch
    result = training.train(model, data, profile, seed=seed, random_labels=random_labels,
                            checkpoint_path=checkpoint, progress=progress)
    tmp_weights = folder / f"partial{os.getpid()}.weights.h5"
    model.save_weights(tmp_weights)
    os.replace(tmp_weights, weights)
    metadata = dict(
        name=name, dataset=dataset_name, architecture=architecture, profile=profile.name,
        profile_settings=profile.settings(), schedule=profile.schedule(random_labels), seed=seed,
        random_labels=bool(random_labels),
        data_checksum_sha256=data.checksum,
        train_accuracy=result.train_accuracy, test_accuracy=result.test_accuracy,
        validation_accuracy=result.validation_accuracy, training_time_s=round(result.training_time_s, 1),
        steps=result.steps, epochs=result.epochs, stopping=result.stopping,
        resumed_from_epoch=result.resumed_from_epoch, history=result.history,
        created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        versions=dict(tensorflow=_version("tensorflow"), keras=keras.__version__, python=platform.python_version()),
        machine=dict(cpu_count=os.cpu_count(), platform=platform.platform()),
    )
    _write_json_atomic(metadata_path, metadata)
    checkpoint.unlink(missing_ok=True)
    metadata = {**metadata, "from_cache": False}
    ledger.record(name, metadata, profile.schedule(random_labels))
    return model, metadata


def _check_profile_settings(metadata, profile, folder):
    """Refuses a cached model trained under other settings of the same profile name."""
    current = profile.settings()
    cached = metadata.get("profile_settings", current)
    changed = sorted(key for key in current.keys() | cached.keys() if current.get(key) != cached.get(key))
    if changed:
        details = ", ".join(f"{key} {cached.get(key)!r} -> {current.get(key)!r}" for key in changed)
        raise SanityError(f"the cached model in {folder} was trained with other '{profile.name}' settings "
                          f"({details}); train again with --retrain (retrain=True) or delete that folder")


def _version(module):
    import importlib

    return importlib.import_module(module).__version__


def trained_model(name, *, profile="paper", random_labels=False, seed=0, data_dir=None, cache_dir=None,
                  progress=True):
    """The trained model `name` as a ``keras.Model``, from the cache or trained now.

    Example: ``trained_model("mnist-cnn", random_labels=True, data_dir="../shared/data")``.
    See :func:`load_or_train` for the arguments; its metadata is dropped here.
    """
    return load_or_train(name, profile=profile, random_labels=random_labels, seed=seed, data_dir=data_dir,
                         cache_dir=cache_dir, progress=progress)[0]


def _percent(value):
    return "n/a" if value is None else f"{100 * value:.2f} %"


def _run_train(args):
    training.configure_threads(args.threads)
    start = time.perf_counter()
    model, meta = load_or_train(args.model, profile=args.profile, random_labels=args.random_labels,
                                seed=args.seed, data_dir=args.data_dir, cache_dir=args.cache_dir,
                                retrain=args.retrain, progress=not args.quiet)
    labels = "random labels" if meta["random_labels"] else "true labels"
    print(f"{meta['name']} ({labels}, profile {meta['profile']}, seed {meta['seed']})")
    print(f"  test accuracy:       {_percent(meta['test_accuracy'])}")
    print(f"  train accuracy:      {_percent(meta['train_accuracy'])}"
          + (" (on the permuted labels)" if meta["random_labels"] else ""))
    if meta.get("validation_accuracy") is not None:
        print(f"  held-out accuracy:   {_percent(meta['validation_accuracy'])}")
    stop = meta["stopping"]
    cap = ""
    if meta["random_labels"]:
        cap = (f"; CAP HIT at {stop['cap_epochs']} epochs, rule not reached" if stop["cap_hit"]
               else f" after {stop['epochs']} epochs (cap {stop['cap_epochs']})")
    print(f"  stopping:            {stop['rule']}{cap}; {meta['steps']} steps, {meta['epochs']} epochs")
    print(f"  training time:       {meta['training_time_s'] / 60:.1f} min "
          f"({meta['machine']['cpu_count']} CPUs)")
    source = "loaded from cache" if meta["from_cache"] else "trained now"
    folder = model_dir(args.model, profile=args.profile, random_labels=args.random_labels, seed=args.seed,
                       cache_dir=args.cache_dir)
    print(f"  model:               {source} ({time.perf_counter() - start:.0f} s this call), {folder}")
    return 0


def add_parser(subparsers):
    """Registers ``tf-sanity train``."""
    parser = subparsers.add_parser(
        "train", help="train (or load from the cache) an MNIST / Fashion-MNIST model and print its accuracy",
        description="Train the paper's CNN or MLP on MNIST or Fashion-MNIST (true or random labels), cache it, "
                    "and print train/test accuracy and training time. A rerun after an interruption continues "
                    "from the last epoch's checkpoint; a finished model is loaded from the cache.")
    parser.add_argument("model", choices=MODEL_NAMES)
    parser.add_argument("--random-labels", action="store_true",
                        help="permute the training labels (seeded) and train until > 95%% training accuracy")
    parser.add_argument("--profile", choices=tuple(training.PROFILES), default="paper",
                        help="paper: Adam 1e-4, batch 50, 20,000 steps, weight decay 0.001 on all kernels; "
                             "original_code: the authors' scripts, 50 epochs, first 5,000 images held out; "
                             "paper_quick / original_code_quick: the same stopped after 3,000 steps (random labels: "
                             "memorize 5,000 images), the quick preset's schedules")
    parser.add_argument("--data-dir", default=None,
                        help=f"folder with mnist/ and fashion-mnist/ holding the original .gz files "
                             f"(default: ${datasets.DATA_DIR_ENV}; without either, tfds downloads)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache-dir", default=None,
                        help=f"model and tfds cache (default: ${datasets.CACHE_ENV} or ~/.cache/tf_sanity)")
    parser.add_argument("--retrain", action="store_true", help="train again even if the model is cached")
    parser.add_argument("--threads", type=int, default=2, help="TensorFlow intra-op threads (default 2)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=_run_train)


__all__ = ["MODEL_NAMES", "add_parser", "build_model", "load_or_train", "model_dir", "trained_model"]
