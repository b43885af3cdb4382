"""Training the MNIST / Fashion-MNIST models, with true or randomly permuted labels.

The profiles (``paper``, ``original_code`` and their quick schedules) are in :mod:`tf_sanity.models.profiles`.

Weight decay is an added loss term ``coefficient * sum(tf.nn.l2_loss(W)) = coefficient * sum(W**2) / 2``,
as in the authors' code. Adam uses TF1's defaults (beta 0.9 / 0.999, epsilon 1e-8).

**Random labels** (the paper's data randomization test, section 5): the training labels are
permuted once with the seed (:func:`permute_labels`), then training runs epoch by epoch until
the training accuracy (a full pass over the permuted training set, inference mode) exceeds
``profile.stop_train_accuracy`` (95 %), or until ``profile.random_labels_max_epochs`` epochs;
whether that cap was hit is reported, never hidden.

Training is seeded (batch order of epoch ``e`` is drawn from ``(seed, e)``), shows a tqdm bar,
writes a checkpoint (weights, Adam state, counters, history) atomically after every epoch and,
when run again with the same checkpoint path, continues from it.
"""

import dataclasses
import json
import logging
import os
import pathlib
import time

import numpy as np

from tf_sanity.errors import SanityError
from tf_sanity.models import augmentation, train_step
from tf_sanity.models.profiles import (  # noqa: F401 (the profiles' names, importable from here as before)
    FULL_SCHEDULE, PROFILES, QUICK_RANDOM_LABEL_IMAGES, QUICK_STEPS, Profile, get_profile)

log = logging.getLogger(__name__)

def configure_threads(threads=2):
    """Limits TensorFlow to `threads` intra-op threads and one inter-op thread.

    Must run before TensorFlow executes its first op; later calls are ignored with a log message.
    """
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        log.info("TensorFlow already initialized; thread counts left unchanged")


def permute_labels(labels, seed):
    """The data randomization test's labels: a seeded permutation of `labels`.

    Every label count is preserved (it is a permutation); the pairing of images and labels is lost.
    """
    return np.random.default_rng([seed, 0x1abe1]).permutation(np.asarray(labels))


@dataclasses.dataclass
class Result:
    """What one training run did.

    Attributes:
      train_accuracy: accuracy on the (possibly permuted) training labels it was trained on.
      test_accuracy: accuracy on the true test labels.
      validation_accuracy: accuracy on the held-out images (None if the profile holds none out).
      training_time_s: wall time of the completed epochs (summed over sessions if resumed), seconds.
      steps: optimizer steps done.
      epochs: epochs begun (the last one may be partial under a step budget).
      stopping: how training ended: ``rule``, ``reached`` and, for random labels, ``cap_epochs``
        and ``cap_hit``.
      resumed_from_epoch: the checkpoint epoch this run continued from (0: a fresh start).
      history: per-epoch dicts (epoch, steps, loss, running accuracy, train accuracy if measured).
    """

    train_accuracy: float
    test_accuracy: float
    validation_accuracy: float | None
    training_time_s: float
    steps: int
    epochs: int
    stopping: dict
    resumed_from_epoch: int
    history: list

    def to_dict(self):
        return dataclasses.asdict(self)


def _kernels(model, decay_layers):
    """The kernels to decay: every layer's, or those of the layers named in `decay_layers`."""
    return [layer.kernel for layer in model.layers
            if getattr(layer, "kernel", None) is not None
            and (decay_layers is None or layer.name in decay_layers)]


def accuracy(model, images, labels, batch_size=1000):
    """Top-1 accuracy of `model`'s logits on `images` (inference mode), batched."""
    from tf_sanity.attribution import engine

    scores = engine.scores_function(model)
    correct = 0
    for start in range(0, len(images), batch_size):
        predicted = np.asarray(scores(np.asarray(images[start:start + batch_size], np.float32))).argmax(-1)
        correct += int(np.sum(predicted == labels[start:start + batch_size]))
    return correct / max(len(images), 1)


def _save_checkpoint(path, model, optimizer, state):
    """Writes weights, optimizer variables and `state` to `path` atomically (tmp file + rename)."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {f"w{i}": w for i, w in enumerate(model.get_weights())}
    arrays.update({f"o{i}": v.numpy() for i, v in enumerate(optimizer.variables)})
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    with open(tmp, "wb") as f:
        np.savez(f, state=np.array(json.dumps(state)), **arrays)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _recipe(fingerprint):
    """`fingerprint` without the profile's name and length: runs that differ only in those share their first steps."""
    profile = {k: v for k, v in fingerprint["profile"].items() if k not in ("name", "steps", "epochs")}
    return {**fingerprint, "profile": profile}


def _load_checkpoint(path, model, optimizer, fingerprint, prefix=False):
    """Restores a checkpoint made for `fingerprint` (`prefix`: for a shorter run of the same recipe);
    returns its state, or None to start afresh."""
    path = pathlib.Path(path)
    if not path.is_file():
        return None
    try:
        with np.load(path) as data:
            state = json.loads(str(data["state"]))
            made_for = state.get("fingerprint")
            if prefix and made_for is not None and _recipe(made_for) == _recipe(fingerprint):
                state["fingerprint"] = fingerprint
            elif made_for != fingerprint:
                log.warning("ignoring checkpoint %s: it was made for another run", path)
                return None
            n_weights = len(model.get_weights())
            model.set_weights([data[f"w{i}"] for i in range(n_weights)])
            for i, variable in enumerate(optimizer.variables):
                variable.assign(data[f"o{i}"])
    except (OSError, ValueError, KeyError) as e:
        log.warning("ignoring unreadable checkpoint %s (%s)", path, e)
        return None
    return state


def train(model, data, profile="paper", *, seed=0, random_labels=False, checkpoint_path=None,
          progress=True, on_epoch_end=None, continue_from=None, jit_compile=None,
          steps_per_call=train_step.STEPS_PER_CALL):
    """Trains `model` in place on `data` with `profile`; resumes from `checkpoint_path` if present.

    Args:
      model: a model from :mod:`tf_sanity.models.mnist_models` (images ``(n, 28, 28, 1)`` in [0, 1]
        -> logits). Seed its construction yourself (``keras.utils.set_random_seed``).
      data: a :class:`tf_sanity.models.datasets.Dataset` (or anything with x_train, y_train, x_test,
        y_test and checksum attributes).
      profile: a profile name from :data:`PROFILES` or a :class:`Profile`.
      seed: seeds the batch order and the label permutation.
      random_labels: train on :func:`permute_labels` of the training labels, with the
        stopping rule described in the module docstring.
      checkpoint_path: file written after every epoch; an existing one made for the same run
        (model, profile, seed, labels, data) is continued from. None: no checkpoints.
      progress: show a tqdm progress bar.
      on_epoch_end: optional ``f(epoch, logs)`` called after each epoch's checkpoint is written.
      continue_from: the last checkpoint of a shorter run that differs only in the profile's name and
        length; used when `checkpoint_path` has none, so a longer run repeats none of its steps (same
        batches and augmentation; Keras' dropout masks are drawn afresh).
      jit_compile, steps_per_call: how the step runs (:func:`tf_sanity.models.train_step.step_function`);
        the updates are the same.

    Returns:
      A :class:`Result`.
    """
    import keras
    import tensorflow as tf
    from tqdm.auto import tqdm

    profile = get_profile(profile)
    x_train, y_train = data.x_train[profile.holdout:], data.y_train[profile.holdout:]
    x_val, y_val = data.x_train[:profile.holdout], data.y_train[:profile.holdout]
    if random_labels:
        if profile.random_labels_images:
            x_train, y_train = x_train[:profile.random_labels_images], y_train[:profile.random_labels_images]
        y_train = permute_labels(y_train, seed)
    y_train = np.asarray(y_train, np.int32)
    batch = profile.batch_size
    steps_per_epoch = len(x_train) // batch
    if steps_per_epoch == 0:
        raise SanityError(f"{len(x_train)} training images is less than one batch of {batch}")
    if random_labels:
        total_steps = profile.random_labels_max_epochs * steps_per_epoch
    else:
        total_steps = profile.steps if profile.steps is not None else profile.epochs * steps_per_epoch

    optimizer = keras.optimizers.Adam(profile.learning_rate, beta_1=0.9, beta_2=0.999, epsilon=1e-8)
    optimizer.build(model.trainable_variables)
    run_steps = train_step.step_function(model, optimizer, _kernels(model, profile.decay_layers),
                                         profile.weight_decay, x_train, y_train,
                                         augment=bool(profile.shift or profile.flip), jit_compile=jit_compile)

    fingerprint = dict(model=model.name, params=int(model.count_params()), profile=profile.settings(),
                       seed=seed, random_labels=bool(random_labels), data=getattr(data, "checksum", None),
                       n_train=len(x_train))
    fingerprint = json.loads(json.dumps(fingerprint))  # as stored: tuples become lists, so it compares equal
    state = None
    if checkpoint_path is not None:
        state = _load_checkpoint(checkpoint_path, model, optimizer, fingerprint)
    if state is None and continue_from is not None:
        state = _load_checkpoint(continue_from, model, optimizer, fingerprint, prefix=True)
        if state is not None and state["step"] > total_steps:
            raise SanityError(f"{continue_from} ran {state['step']} steps, more than the {total_steps} asked for")
    state = state or dict(fingerprint=fingerprint, epoch=0, step=0, elapsed_s=0.0, history=[], done=False,
                          train_accuracy=None)
    resumed_from = state["epoch"]

    bar = tqdm(total=total_steps, initial=state["step"], disable=not progress, unit="step",
               desc=f"{model.name}{' random labels' if random_labels else ''}", mininterval=1.0)
    stop_reached = state["done"]
    try:
        while not stop_reached and state["step"] < total_steps:
            session_start = time.perf_counter()
            # Epochs are full until the last; a run stopped within an epoch continues from where it stopped.
            epoch, start = divmod(state["step"], steps_per_epoch)
            order = np.random.default_rng([seed, epoch]).permutation(len(x_train))
            n_steps = min(steps_per_epoch - start, total_steps - state["step"])
            offsets, flips = augmentation.draw(np.random.default_rng([seed, epoch, 0xa06]), steps_per_epoch * batch,
                                               x_train.shape[1:], profile.shift, profile.flip)
            loss_sum, correct_sum = 0.0, 0
            for i in range(start, start + n_steps, steps_per_call):
                k = min(steps_per_call, start + n_steps - i)
                rows = slice(i * batch, (i + k) * batch)
                loss, correct = run_steps(tf.constant(order[rows].reshape(k, batch), tf.int32),
                                          tf.constant(offsets[rows].reshape(k, batch, 2)),
                                          tf.constant(flips[rows].reshape(k, batch)))
                loss_sum += float(loss)
                correct_sum += int(correct)
                bar.update(k)
                done = i + k - start
                if done % 50 < k:
                    bar.set_postfix(epoch=epoch + 1, loss=f"{loss_sum / done:.3f}",
                                    acc=f"{correct_sum / (done * batch):.3f}", refresh=False)
            logs = dict(epoch=epoch + 1, steps=state["step"] + n_steps, loss=loss_sum / n_steps,
                        running_accuracy=correct_sum / (n_steps * batch))
            if random_labels and logs["running_accuracy"] > profile.stop_train_accuracy - 0.05:
                # The running accuracy lags the model; measure the real one only when it is close.
                logs["train_accuracy"] = accuracy(model, x_train, y_train)
                stop_reached = logs["train_accuracy"] > profile.stop_train_accuracy
                if stop_reached:
                    state["train_accuracy"] = logs["train_accuracy"]
            state.update(epoch=epoch + 1, step=state["step"] + n_steps, done=stop_reached,
                         elapsed_s=state["elapsed_s"] + time.perf_counter() - session_start)
            state["history"].append(logs)
            if checkpoint_path is not None:
                _save_checkpoint(checkpoint_path, model, optimizer, state)
            if progress:
                measured = f", train accuracy {logs['train_accuracy']:.4f}" if "train_accuracy" in logs else ""
                bar.write(f"epoch {logs['epoch']}: loss {logs['loss']:.4f}, "
                          f"running accuracy {logs['running_accuracy']:.4f}{measured}")
            if on_epoch_end is not None:
                on_epoch_end(epoch + 1, logs)
    finally:
        bar.close()

    train_acc = state["train_accuracy"] if stop_reached else None
    if train_acc is None:
        train_acc = accuracy(model, x_train, y_train)
    if random_labels:
        stopping = dict(rule=f"train accuracy > {profile.stop_train_accuracy}", reached=bool(stop_reached),
                        cap_epochs=profile.random_labels_max_epochs, cap_hit=not stop_reached,
                        epochs=state["epoch"])
    else:
        rule = f"{profile.steps} steps" if profile.steps is not None else f"{profile.epochs} epochs"
        stopping = dict(rule=rule, reached=state["step"] >= total_steps, epochs=state["epoch"])
    return Result(
        train_accuracy=train_acc,
        test_accuracy=accuracy(model, data.x_test, data.y_test),
        validation_accuracy=accuracy(model, x_val, y_val) if len(x_val) else None,
        training_time_s=state["elapsed_s"],
        steps=state["step"], epochs=state["epoch"], stopping=stopping,
        resumed_from_epoch=resumed_from, history=state["history"])
