"""The two controls that bracket a randomization test's similarity scale (issue 17, item 4).

Adebayo et al. (2018), Sec. 1 and Fig. 1, warn that a saliency map that looks like an edge detector
may explain nothing: an edge detector is a function of the input alone. A sanity check therefore
reads best between two reference "methods" computed exactly like any other:

* :func:`edge_detector`: the Sobel gradient magnitude of the grey input (skimage's ``sobel``). It
  ignores the model, so its similarity between any two model states is 1 (up to ties): the
  "fails the check" end of the scale;
* :func:`random_attribution`: a uniform random mask drawn afresh at every call, i.e. for every model
  state, so its similarity is about 0: the "changed completely" end;
* :func:`input_control`: where no edge detector applies (sequences, tables, token ids), the input itself
  as the attribution, a function of the input alone like the edge detector: the "fails" end there.

Both are :class:`~tf_sanity.attribution.methods.Method` objects that are *not* registered in
:data:`tf_sanity.METHODS` (the experiments and the method contract never see them); pass them in the
method list of :func:`tf_sanity.checks.model_randomization`::

    rows = model_randomization(model, x, y, ["gradient", *controls.controls(x)])
"""

import numpy as np
import skimage.filters

from tf_sanity.attribution.registry import Method
from tf_sanity.errors import SanityError

EDGE_DETECTOR = "edge_detector"
RANDOM_ATTRIBUTION = "random_attribution"
INPUT_CONTROL = "input_control"
# The control that ignores the model, in words (the report and the verdicts' reasons).
IGNORING_WORDS = {EDGE_DETECTOR: "the edge detector", INPUT_CONTROL: "the input control (the input itself)"}


def _check_images(x, name):
    if np.ndim(x) != 4:
        raise SanityError(f"the {name} control needs image inputs [B, H, W, C], got shape {tuple(np.shape(x))}; "
                          "leave it out for sequences, tabular or token inputs")


def sobel_map(images):
    """The Sobel magnitude of each grey image: ``[B, H, W, C]`` -> ``[B, H, W]``.

    The grey image is the channel mean; skimage's ``sobel`` is the root mean square of the
    horizontal and vertical Sobel responses, with reflected borders.
    """
    _check_images(images, EDGE_DETECTOR)
    gray = np.asarray(images, np.float64).mean(axis=-1)
    return np.stack([skimage.filters.sobel(g) for g in gray])


def _edge_compute(model, x, targets):
    edges = sobel_map(x) / x.shape[-1]
    return np.repeat(edges[..., None], x.shape[-1], axis=-1).astype(np.float32)


def edge_detector():
    """The edge-detector control: the Sobel map of the grey input in every channel (divided by the
    number of channels, so the channel sum is the Sobel map). Image inputs only."""
    return Method(EDGE_DETECTOR, "Sobel (control)", _edge_compute, {}, short_label="Sobel",
                  signal="map", heatmap_reduction="sum")


def random_attribution(seed=0):
    """The random control: i.i.d. ``U(-1, 1)`` masks shaped like the input, a fresh draw at every call.

    The draws come from one ``np.random.default_rng(seed)`` held by the returned method, so a run
    that explains the model states in the same order gets the same masks. Any input shape.
    """
    rng = np.random.default_rng(seed)

    def compute(model, x, targets):
        return rng.uniform(-1.0, 1.0, x.shape).astype(np.float32)

    return Method(RANDOM_ATTRIBUTION, "Random (control)", compute, {}, short_label="Random", signal="map")


def input_control():
    """The model-ignoring end of the scale for non-image inputs, where no edge detector applies: the input
    itself as the attribution. Like the edge detector it is a function of the input alone, so its similarity
    between any two model states is 1 (Adebayo et al. 2018, Sec. 1: a map that ignores the model)."""
    return Method(INPUT_CONTROL, "Input (control)", lambda model, x, targets: np.array(x, np.float32), {},
                  short_label="Input", signal="map")


def ignoring_control(kind):
    """The control that ignores the model for inputs of `kind`: the edge detector for images, else the input."""
    return edge_detector() if kind == "image" else input_control()


def controls(images, seed=0):
    """The controls that apply to `images`: both for ``[B, H, W, C]``, only the random one otherwise."""
    random = random_attribution(seed)
    return [edge_detector(), random] if np.ndim(images) == 4 else [random]
