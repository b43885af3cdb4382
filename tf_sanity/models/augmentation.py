"""Random shifts and horizontal flips of training batches, as the "When Explanations Lie" authors trained.

Sixt, Granz & Landgraf (ICML 2020, appendix D; ``train_cifar10.ipynb`` in their repository) train the small
convnet with Keras 2.2's ``ImageDataGenerator(width_shift_range=0.1, height_shift_range=0.1,
fill_mode="nearest", horizontal_flip=True)``: each image is translated by a uniform random fraction in
``[-0.1, 0.1]`` of its height and of its width (bilinear interpolation, ``interpolation_order=1``, pixels
outside the image take the nearest edge pixel), then flipped left-right with probability 1/2.

Here the random numbers are drawn in numpy from a seed (so an interrupted run resumes with the same
batches, see :func:`tf_sanity.models.training.train`) and the transform runs batched in TensorFlow.
"""

import numpy as np


def draw(rng, n, image_shape, shift, flip):
    """Per-image random offsets (pixels, rows then columns) and flip flags for `n` images.

    Args:
      rng: a ``numpy.random.Generator``.
      image_shape: ``(height, width, channels)``.
      shift: the largest shift as a fraction of the height / width (0: none).
      flip: whether to draw horizontal flips (probability 1/2).

    Returns:
      ``(offsets, flips)``: float32 ``(n, 2)`` and bool ``(n,)``.
    """
    size = np.asarray(image_shape[:2], np.float32)
    offsets = (rng.uniform(-shift, shift, (n, 2)) * size).astype(np.float32) if shift else np.zeros((n, 2), np.float32)
    flips = rng.random(n) < 0.5 if flip else np.zeros(n, bool)
    return offsets, flips


def apply(images, offsets, flips):
    """Translates each image by its offset (bilinear, nearest fill), then flips those marked (TensorFlow ops).

    Output pixel ``(i, j)`` takes the input at ``(i + offset_row, j + offset_col)``, which is what
    ``scipy.ndimage.shift(image, -offset, order=1, mode="nearest")`` computes.

    Args:
      images: float32 ``(n, height, width, channels)``.
      offsets: float32 ``(n, 2)`` from :func:`draw`.
      flips: bool ``(n,)`` from :func:`draw`.
    """
    import tensorflow as tf

    n = tf.shape(images)[0]
    ones, zeros = tf.ones([n]), tf.zeros([n])
    # ImageProjectiveTransformV3 maps output (x=col, y=row) to input (a0 x + a1 y + a2, b0 x + b1 y + b2).
    transforms = tf.stack([ones, zeros, offsets[:, 1], zeros, ones, offsets[:, 0], zeros, zeros], axis=1)
    shifted = tf.raw_ops.ImageProjectiveTransformV3(
        images=images, transforms=transforms, output_shape=tf.shape(images)[1:3], fill_value=0.0,
        interpolation="BILINEAR", fill_mode="NEAREST")
    return tf.where(flips[:, None, None, None], tf.reverse(shifted, axis=[2]), shifted)
