"""The training recipes ("profiles") of the MNIST / Fashion-MNIST models: named, frozen, part of the cache key.

Two named profiles (Adebayo et al. 2018, appendix "Data sets & Models"; ``docs/REFERENCE.md``
section 1 for the authors' code):

* ``paper``: what the paper states, which is the classic TF "Deep MNIST" recipe: Adam (learning
  rate 1e-4, batch 50) for 20,000 iterations on all 60,000 training images, weight decay 0.001
  on the weights (every kernel, not the biases) of the CNN and the MLP.
* ``original_code``: what ``src/train_cnn_models.py`` / ``train_mlp_models.py`` do: Adam 1e-4,
  batch 50, 50 epochs on training images 5,000..59,999 (the first 5,000 are held out for
  validation), L2 0.001 on the conv1, conv2 and fc1 kernels of the CNN, none for the MLP.

The quick preset's profiles (``paper_quick``, ``original_code_quick``) are the same recipes stopped after
:data:`QUICK_STEPS` steps; with random labels, ``original_code_quick`` memorizes the first
:data:`QUICK_RANDOM_LABEL_IMAGES` training images (after the holdout) instead of all of them. Their models
are cached apart from the full ones (:meth:`Profile.cache_name`).

Weight decay is an added loss term ``coefficient * sum(tf.nn.l2_loss(W)) = coefficient * sum(W**2) / 2``,
as in the authors' code. :func:`tf_sanity.models.training.train` runs a profile.
"""

import dataclasses
import hashlib
import json

from tf_sanity.errors import SanityError, unknown_name

# The quick profiles: optimizer steps with true labels, and the training images memorized with random labels.
QUICK_STEPS = 3_000
QUICK_RANDOM_LABEL_IMAGES = 5_000


@dataclasses.dataclass(frozen=True)
class Profile:
    """A named training recipe.

    Attributes:
      name: the profile's name (part of the cache key).
      learning_rate: Adam learning rate.
      batch_size: examples per step.
      steps: total optimizer steps with true labels; mutually exclusive with `epochs`.
      epochs: total epochs with true labels.
      holdout: the first `holdout` training images are held out (validation), not trained on.
      weight_decay: coefficient of ``sum(tf.nn.l2_loss(kernel))`` added to the loss.
      decay_layers: names of the layers whose kernels are decayed; None means every kernel.
      random_labels_max_epochs: epoch cap of the random-label stopping rule.
      stop_train_accuracy: the random-label stopping rule stops once training accuracy exceeds this.
      shift: random translation as a fraction of the height / width (Keras' ``ImageDataGenerator(
        width_shift_range=shift, height_shift_range=shift)``: uniform, bilinear, nearest fill); 0: none.
      flip: random horizontal flips (probability 1/2), as ``ImageDataGenerator(horizontal_flip=True)``.
      random_labels_images: with random labels, memorize only the first this many training images (after the
        holdout); None: all of them.
    """

    name: str
    learning_rate: float = 1e-4
    batch_size: int = 50
    steps: int | None = None
    epochs: int | None = None
    holdout: int = 0
    weight_decay: float = 0.001
    decay_layers: tuple | None = None
    random_labels_max_epochs: int = 100
    stop_train_accuracy: float = 0.95
    shift: float = 0.0
    flip: bool = False
    random_labels_images: int | None = None

    def __post_init__(self):
        if (self.steps is None) == (self.epochs is None):
            raise SanityError(f"profile {self.name!r}: give exactly one of steps or epochs")

    def settings(self):
        """The profile as a JSON-ready dict (fields added later are left out at their default, so models
        cached before they existed keep matching)."""
        out = json.loads(json.dumps(dataclasses.asdict(self)))
        for field, default in (("random_labels_images", None), ("shift", 0.0), ("flip", False)):
            if getattr(self, field) == default:
                del out[field]
        return out

    def schedule(self, random_labels=False):
        """The training length in words, e.g. ``"20,000 steps"`` or, for random labels, ``"until train
        accuracy > 95 % on 5,000 images (cap 100 epochs)"``."""
        if random_labels:
            images = f" on {self.random_labels_images:,} images" if self.random_labels_images else ""
            return (f"until train accuracy > {100 * self.stop_train_accuracy:.0f} %{images} "
                    f"(cap {self.random_labels_max_epochs} epochs)")
        return f"{self.steps:,} steps" if self.steps is not None else f"{self.epochs} epochs"

    def cache_name(self):
        """The profile's part of a model's cache key: its name when it is the registered profile of that name
        (so models cached under ``paper`` keep their folder), else the name and a hash of its settings, so a
        model trained on another schedule is never returned for this one."""
        if PROFILES.get(self.name) == self:
            return self.name
        digest = hashlib.sha256(json.dumps(self.settings(), sort_keys=True).encode()).hexdigest()[:8]
        return f"{self.name}-{digest}"


# The MLP has none of these layers: no weight decay, as in the authors' MLP script.
_CODE_DECAY = ("conv1", "conv2", "fc1")
PROFILES = {
    "paper": Profile("paper", steps=20_000),
    "original_code": Profile("original_code", epochs=50, holdout=5_000, decay_layers=_CODE_DECAY),
    # The quick preset's schedules (issue 18): the same recipes, stopped early; random labels memorize a subset.
    "paper_quick": Profile("paper_quick", steps=QUICK_STEPS),
    "original_code_quick": Profile("original_code_quick", steps=QUICK_STEPS, holdout=5_000, decay_layers=_CODE_DECAY,
                                   random_labels_images=QUICK_RANDOM_LABEL_IMAGES),
}
# The full schedule each quick one shortens: the paper's numbers belong to these.
FULL_SCHEDULE = {"paper_quick": "paper", "original_code_quick": "original_code"}


def get_profile(profile):
    """Returns a :class:`Profile` from a name in :data:`PROFILES` or a Profile."""
    if isinstance(profile, Profile):
        return profile
    if profile not in PROFILES:
        raise unknown_name("profile", profile, PROFILES)
    return PROFILES[profile]
