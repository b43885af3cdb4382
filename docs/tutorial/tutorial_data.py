"""What every tutorial chapter shares: real MNIST digits, a small CNN trained in seconds, a figure folder.

The chapters run on the genuine MNIST files (``$TF_SANITY_DATA_DIR/mnist``, the four original ``.gz``
files) read with gzip and numpy, and on :func:`small_cnn`, a CNN far smaller than the paper's (a
stand-in, named wherever its numbers appear) that :func:`trained_cnn` trains for 300 steps in a few
seconds and caches as ``tutorial/tutorial_cnn.keras`` in the project's cache folder (``$TF_SANITY_CACHE``,
default ``~/.cache/tf_sanity``; ``$TF_SANITY_TUTORIAL_CACHE`` names another folder). It never reads the
paper models cached there.

Run chapters, e.g. to redraw the committed figures (from the repository root)::

    python docs/tutorial/tutorial_data.py                 # every chapter, figures to docs/tutorial/figures
    python docs/tutorial/tutorial_data.py 03_guided_backprop.md

``tests/test_tutorial.py`` runs every chapter this way, with figures going to a temporary folder.
"""

import gzip
import os
import pathlib
import re
import sys
import time

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
CHAPTERS = sorted(HERE.glob("[0-9][0-9]_*.md"))
TRAIN_STEPS, BATCH = 300, 64


def mnist(split="test", n=None):
    """``(images [n, 28, 28, 1] float32 in [0, 1], labels [n] int32)`` of MNIST's train or test split."""
    from tf_sanity.errors import SanityError
    from tf_sanity.models import datasets

    root = datasets.resolve_data_dir()
    if root is None or not (root / "mnist").is_dir():
        raise SanityError("set TF_SANITY_DATA_DIR to the folder holding mnist/ (the four original .gz files)")
    prefix = root / "mnist" / ("t10k" if split == "test" else "train")
    with gzip.open(f"{prefix}-images-idx3-ubyte.gz") as f:
        x = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28, 1)[:n]
    with gzip.open(f"{prefix}-labels-idx1-ubyte.gz") as f:
        y = np.frombuffer(f.read(), np.uint8, offset=8)[:n]
    return x.astype(np.float32) / 255, y.astype(np.int32)


def small_cnn():
    """conv 3x3x8 (ReLU fused) -> max pool -> conv 3x3x16 (ReLU fused) -> max pool -> dense 32 (ReLU
    fused) -> dense 10 (logits): the layout of the paper's MNIST CNN (Sec. 4), much narrower."""
    import keras

    inputs = keras.Input((28, 28, 1))
    h = keras.layers.Conv2D(8, 3, activation="relu", name="conv1")(inputs)
    h = keras.layers.MaxPooling2D(name="pool1")(h)
    h = keras.layers.Conv2D(16, 3, activation="relu", name="conv2")(h)
    h = keras.layers.MaxPooling2D(name="pool2")(h)
    h = keras.layers.Flatten(name="flatten")(h)
    h = keras.layers.Dense(32, activation="relu", name="fc1")(h)
    return keras.Model(inputs, keras.layers.Dense(10, name="logits")(h), name="tutorial_cnn")


def trained_cnn():
    """:func:`small_cnn` trained on MNIST (Adam, 300 steps of 64, seed 0), cached; a fresh copy per call."""
    import keras

    from tf_sanity.models import datasets

    cache = pathlib.Path(os.environ.get("TF_SANITY_TUTORIAL_CACHE") or datasets.cache_dir() / "tutorial")
    path = cache / "tutorial_cnn.keras"
    if path.exists():
        return keras.models.load_model(path)
    keras.utils.set_random_seed(0)
    x, y = mnist("train", TRAIN_STEPS * BATCH)
    model = small_cnn()
    model.compile(keras.optimizers.Adam(2e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0)
    cache.mkdir(parents=True, exist_ok=True)
    tmp = cache / f"tutorial_cnn.{os.getpid()}.keras"
    model.save(tmp)
    tmp.replace(path)  # atomic: a parallel run never reads a half-written file
    return model


def gradient(model, images, targets):
    """The gradient of each image's target logit w.r.t. the image, as chapter 1 builds it with a tape."""
    import tensorflow as tf

    images = tf.convert_to_tensor(images)
    with tf.GradientTape() as tape:
        tape.watch(images)
        scores = tf.gather(model(images), targets, batch_dims=1)
    return tape.gradient(scores, images).numpy()


def accuracy(model, x, y):
    """Top-1 accuracy of `model` on `x`, `y`."""
    return float((np.asarray(model.predict(x, verbose=0)).argmax(-1) == y).mean())


def figure_path(name):
    """Where a chapter writes its figure: ``$TF_SANITY_TUTORIAL_OUT`` (default docs/tutorial/figures)."""
    out = pathlib.Path(os.environ.get("TF_SANITY_TUTORIAL_OUT", HERE / "figures"))
    out.mkdir(parents=True, exist_ok=True)
    return out / name


def save_grid(name, images, columns, mode="abs", title=None):
    """Saves a figure: one row per image, the image first, then one column per ``{title: masks}``.

    Masks are drawn by :func:`tf_sanity.visualize.show` (``mode`` ``"abs"`` or ``"diverging"``, or
    one per column). Returns the file's path.
    """
    import matplotlib.pyplot as plt
    from tf_sanity import visualize

    modes = [mode] * len(columns) if isinstance(mode, str) else list(mode)
    fig, axes = plt.subplots(len(images), len(columns) + 1, figsize=(1.15 * (len(columns) + 1), 1.2 * len(images)),
                             squeeze=False)
    for r, image in enumerate(images):
        visualize.show_image(axes[r, 0], image, "input" if r == 0 else None)
        for c, (label, masks) in enumerate(columns.items()):
            visualize.show(axes[r, c + 1], masks[r], modes[c], label if r == 0 else None)
    if title:
        fig.suptitle(title, fontsize=8)
    fig.tight_layout()
    path = figure_path(name)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def code_blocks(chapter):
    """The ```` ```python ```` blocks of a chapter, in order (other fences, e.g. ```` ```bash ````, are not run)."""
    return re.findall(r"^```python\n(.*?)^```", pathlib.Path(chapter).read_text(), flags=re.S | re.M)


def run_chapter(chapter):
    """Executes a chapter's Python blocks in order in one namespace; returns the namespace."""
    namespace = {"__name__": "__tutorial__"}
    for k, block in enumerate(code_blocks(chapter)):
        exec(compile(block, f"{pathlib.Path(chapter).name}[block {k + 1}]", "exec"), namespace)
    return namespace


if __name__ == "__main__":
    sys.path[:0] = [str(HERE), str(HERE.parents[1])]  # this folder, and the checkout's tf_sanity
    for chapter in [HERE / c for c in sys.argv[1:]] or CHAPTERS:
        start = time.perf_counter()
        run_chapter(chapter)
        print(f"{chapter.name}: {time.perf_counter() - start:.1f} s")
