"""The ImageNet test bed: labelled images prepared as TF-slim's Inception v3 expects them.

Adebayo et al. (2018), Sec. 3 and Figs. 2-5, explain ILSVRC2012 validation images with the TF-slim
Inception v3.
A test bed is a folder of images with a labels CSV in the format of
``shared/data/imagenet/labels.csv``: one row per image with at least the columns ``file`` (path
relative to the CSV's folder) and ``class_index_1000``; ``synset``, ``class_name`` and
``slim_index_1001`` are used when present.

Preprocessing is slim's ``inception_preprocessing.preprocess_for_eval`` (the evaluation of the
checkpoint's published accuracy): decode with 3 channels (grayscale and CMYK become RGB), scale
to [0, 1], ``central_crop(0.875)``, bilinear resize to 299 x 299 with TF1's
``resize_bilinear(align_corners=False)`` (no half-pixel centers), then ``2 * x - 1``, which is
``img / 127.5 - 1`` in [-1, 1]. ``central_fraction=1.0`` skips the crop (plain resize).

Class indices: ``class_index_1000`` is the usual 0..999 order (sorted synsets, as Keras and
torchvision); slim's 1001 logits put background at 0, so class ``k`` is logit ``k + 1``
(:func:`to_slim_index`, :func:`to_imagenet_index`).
"""

import csv
import dataclasses
import json
import pathlib

import numpy as np

from tf_sanity.errors import SanityError

IMAGE_SIZE = 299
CENTRAL_FRACTION = 0.875  # slim's preprocess_for_eval
BACKGROUND = "background"


@dataclasses.dataclass(frozen=True)
class Record:
    """One labelled image of a test bed.

    Attributes:
      path: absolute image path.
      label: ImageNet class index, 0..999.
      synset: WordNet id such as ``'n01440764'`` ('' if the CSV has none).
      class_name: human-readable class ('' if the CSV has none).
    """

    path: pathlib.Path
    label: int
    synset: str = ""
    class_name: str = ""


def to_slim_index(labels):
    """ImageNet index 0..999 -> slim Inception v3 logit index 1..1000 (0 is background)."""
    labels = np.asarray(labels)
    if labels.size and (labels.min() < 0 or labels.max() > 999):
        raise SanityError(f"ImageNet class indices lie in 0..999, got {labels.min()}..{labels.max()}")
    return labels.astype(np.int64) + 1


def to_imagenet_index(slim_indices):
    """slim logit index 0..1000 -> ImageNet index 0..999; background (0) becomes -1."""
    slim_indices = np.asarray(slim_indices)
    if slim_indices.size and (slim_indices.min() < 0 or slim_indices.max() > 1000):
        raise SanityError(f"slim indices lie in 0..1000, got {slim_indices.min()}..{slim_indices.max()}")
    return slim_indices.astype(np.int64) - 1


def read_labels(csv_path, subset=None):
    """Reads a labels CSV into :class:`Record` s.

    Args:
      csv_path: the CSV; image paths in it are relative to its folder.
      subset: keep only rows whose ``file`` starts with this prefix (e.g. ``'val_imagenette224/'``).

    Raises:
      SanityError: missing file or columns, bad indices, or images that do not exist.
    """
    csv_path = pathlib.Path(csv_path)
    if not csv_path.is_file():
        raise SanityError(f"no labels file {csv_path}; pass a CSV with columns file,class_index_1000")
    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows or not {"file", "class_index_1000"} <= set(rows[0]):
        raise SanityError(f"{csv_path} needs the columns file and class_index_1000 "
                          f"(as shared/data/imagenet/labels.csv)")
    records = []
    for i, row in enumerate(rows, 2):
        if subset and not row["file"].startswith(subset):
            continue
        label = int(row["class_index_1000"])
        if not 0 <= label <= 999 or (row.get("slim_index_1001") and
                                     int(row["slim_index_1001"]) != label + 1):
            raise SanityError(f"{csv_path} line {i}: class_index_1000 must lie in 0..999 and "
                              f"slim_index_1001 equal it plus 1; fix the row")
        records.append(Record(csv_path.parent / row["file"], label, row.get("synset", ""),
                              row.get("class_name", "")))
    if not records:
        raise SanityError(f"no images in {csv_path}" + (f" under {subset!r}" if subset else "")
                          + "; check --subset")
    absent = [str(r.path) for r in records if not r.path.is_file()]
    if absent:
        raise SanityError(f"{len(absent)} images listed in {csv_path} are missing (first: "
                          f"{absent[0]}); restore them or remove their rows")
    return records


def class_names(folder):
    """The 1000 ImageNet classes of `folder` as ``[(synset, name), ...]`` in index order.

    Reads ``imagenet_class_index.json`` (Keras format) or else ``synset_words.txt``.
    """
    folder = pathlib.Path(folder)
    if (folder / "imagenet_class_index.json").is_file():
        table = json.loads((folder / "imagenet_class_index.json").read_text())
        names = [tuple(table[str(i)]) for i in range(len(table))]
    elif (folder / "synset_words.txt").is_file():
        lines = (folder / "synset_words.txt").read_text().splitlines()
        names = [tuple(line.split(" ", 1)) for line in lines if line.strip()]
    else:
        raise SanityError(f"no imagenet_class_index.json or synset_words.txt in {folder}; "
                          f"copy one from shared/data/imagenet")
    if len(names) != 1000:
        raise SanityError(f"expected 1000 classes in {folder}, found {len(names)}")
    return names


def slim_class_names(folder):
    """Names of slim's 1001 logits: ``'background'`` then the 1000 ImageNet names."""
    return [BACKGROUND] + [name for _, name in class_names(folder)]


def preprocess(image, size=IMAGE_SIZE, central_fraction=CENTRAL_FRACTION):
    """slim's ``preprocess_for_eval`` of one decoded uint8 image ``[H, W, 3]``.

    Returns:
      float32 ``[size, size, 3]`` in [-1, 1].
    """
    import tensorflow as tf  # here, so that the command line builds its parser without TensorFlow
    x = tf.image.convert_image_dtype(tf.convert_to_tensor(image), tf.float32)  # [0, 1]
    if central_fraction < 1.0:
        x = tf.image.central_crop(x, central_fraction)
    x = tf.raw_ops.ResizeBilinear(images=x[None], size=[size, size], align_corners=False,
                                  half_pixel_centers=False)[0]
    return ((x - 0.5) * 2.0).numpy()


def load_image(path, size=IMAGE_SIZE, central_fraction=CENTRAL_FRACTION):
    """Reads an image file (JPEG, PNG, GIF, BMP; gray or color) and applies :func:`preprocess`."""
    import tensorflow as tf
    try:
        image = tf.io.decode_image(tf.io.read_file(str(path)), channels=3, expand_animations=False)
    except tf.errors.OpError as e:
        raise SanityError(f"cannot decode image {path} ({type(e).__name__}); replace or remove it") from None
    return preprocess(image, size, central_fraction)


def load_images(records, size=IMAGE_SIZE, central_fraction=CENTRAL_FRACTION):
    """Images and labels of `records`: float32 ``[N, size, size, 3]`` in [-1, 1], int ``[N]`` (0..999)."""
    images = np.stack([load_image(r.path, size, central_fraction) for r in records])
    return images, np.array([r.label for r in records], dtype=np.int64)


class TestBed:
    """A labelled image folder: ``TestBed(folder)`` reads ``folder/labels.csv``.

    Attributes:
      folder: the folder; class names come from its ``imagenet_class_index.json`` or
        ``synset_words.txt`` when present.
      records: the :class:`Record` s, in CSV order.
    """

    __test__ = False  # not a pytest test class

    def __init__(self, folder, labels="labels.csv", subset=None, limit=None):
        self.folder = pathlib.Path(folder)
        labels = pathlib.Path(labels)
        self.records = read_labels(labels if labels.is_absolute() else self.folder / labels, subset)
        if limit is not None:
            self.records = self.records[:limit]

    def __len__(self):
        return len(self.records)

    def load(self, records=None, size=IMAGE_SIZE, central_fraction=CENTRAL_FRACTION):
        """Images in [-1, 1] and 0..999 labels of `records` (default: all); see :func:`load_images`."""
        return load_images(self.records if records is None else records, size, central_fraction)

    def batches(self, batch_size, **kwargs):
        """Yields ``(records, images, labels)`` in chunks of `batch_size`."""
        for start in range(0, len(self.records), batch_size):
            chunk = self.records[start:start + batch_size]
            yield (chunk, *self.load(chunk, **kwargs))


def top_k_correct(logits, labels, k):
    """Whether each image's ImageNet label (0..999) is among the `k` highest of slim's 1001 logits."""
    logits = np.asarray(logits)
    top = np.argsort(-logits, axis=1)[:, :k]
    return (top == to_slim_index(labels)[:, None]).any(axis=1)
