"""TF-slim Inception v3 in Keras 3, its checkpoint loader and the ImageNet test bed.

The network of Adebayo et al. (2018), Secs. 5-6: :func:`inception_v3` builds it,
:func:`load_inception_v3` loads slim's ``inception_v3.ckpt`` into it by variable name, and
:mod:`slim_models.imagenet` prepares images and labels.
"""

from slim_models.checkpoint import (load_inception_v3, load_slim_checkpoint, official_checkpoint,
                                    save_slim_checkpoint)
from slim_models.inception_v3 import (END_POINTS, IMAGE_SIZE, NUM_CLASSES, RANDOMIZATION_ORDER,
                                      end_point_layer, end_point_model, inception_v3,
                                      randomization_groups, slim_variable_map)

__all__ = [
    "END_POINTS", "IMAGE_SIZE", "NUM_CLASSES", "RANDOMIZATION_ORDER", "end_point_layer",
    "end_point_model", "inception_v3", "load_inception_v3", "load_slim_checkpoint",
    "official_checkpoint", "randomization_groups", "save_slim_checkpoint", "slim_variable_map",
]
