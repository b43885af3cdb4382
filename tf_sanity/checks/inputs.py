"""What ``tf-sanity check`` reads: the model, the inputs, the targets, and the user's functions (issue 17,
items 1, 5 and 7).

Every problem is one :class:`~tf_sanity.errors.SanityError` line that says what to do, raised before
any work starts:

* :func:`load_model`: a ``.keras`` / ``.h5`` file, loaded with Keras' ``safe_mode`` on, so a file
  holding Python code (a serialized ``lambda``) is refused unless the user says they trust it; a
  SavedModel folder is refused with the way to convert it; several inputs or outputs, or no trainable
  weights, are refused too.
* :func:`load_inputs`: a folder of images (resized to the model's input; :data:`PREPROCESS`), an
  ``.npy`` / ``.npz`` array, or ``tfds:NAME[:split]`` (offline, as :mod:`tf_sanity.models.datasets`);
  checked against the model's input shape, finite, and (token ids) within the embedding's vocabulary.
* :func:`load_targets`: ``"predicted"`` or an ``.npy`` of labels in ``[0, classes)``.
* :func:`load_function`, :func:`user_method`: ``module:function`` specs (``--method``, ``--train``,
  ``--preprocess``).
"""

import dataclasses
import importlib
import pathlib
import sys
import zipfile

import numpy as np

from tf_sanity.errors import SanityError, unknown_name

PREDICTED = "predicted"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
TRUST_FLAG = "--trust-model"
TFDS_PREFIX = "tfds:"

# ImageNet statistics of keras.applications.imagenet_utils.preprocess_input ("caffe": BGR means on
# 0..255; "torch": RGB means and standard deviations on 0..1).
_CAFFE_BGR_MEAN = np.array([103.939, 116.779, 123.68], np.float32)
_TORCH_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
_TORCH_STD = np.array([0.229, 0.224, 0.225], np.float32)


def _caffe(x):
    if x.shape[-1] != 3:
        raise SanityError(f"--preprocess caffe needs RGB images (3 channels), got {x.shape[-1]}")
    return x[..., ::-1] - _CAFFE_BGR_MEAN


def _torch(x):
    if x.shape[-1] != 3:
        raise SanityError(f"--preprocess torch needs RGB images (3 channels), got {x.shape[-1]}")
    return (x / 255.0 - _TORCH_MEAN) / _TORCH_STD


# Preprocessings of raw 0..255 pixel values, as keras.applications' preprocess_input modes name them.
PREPROCESS = {
    "scale01": lambda x: x / 255.0,
    "minus1to1": lambda x: x / 127.5 - 1.0,
    "caffe": _caffe,
    "torch": _torch,
}


@dataclasses.dataclass(frozen=True)
class Inputs:
    """Inputs as the model takes them.

    Attributes:
      x: float32 ``[n, ...]`` (token ids as float32 integers).
      kind: one of :data:`tf_sanity.checks.result.INPUT_KINDS`.
      total: how many inputs the source holds (``n`` is at most ``limit``).
      source: what was read, in words (for the report).
      labels: the source's labels where it has them (tfds), else None.
    """

    x: np.ndarray
    kind: str
    total: int
    source: str
    labels: np.ndarray = None


def _one_line(error):
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


def load_model(path, *, trust=False):
    """Loads a ``.keras`` or ``.h5`` model with Keras' ``safe_mode`` (unless `trust`) and checks it.

    Raises:
      SanityError: missing or unreadable file, a SavedModel folder, a file holding Python code (a
        ``Lambda`` layer's function) without `trust`, several inputs or outputs, no trainable weights.
    """
    import keras

    path = pathlib.Path(path).expanduser()
    if path.is_dir():
        if (path / "saved_model.pb").is_file():
            raise SanityError(
                f"{path} is a TensorFlow SavedModel, which Keras 3 can only wrap as an opaque layer without the "
                f"layers that the rules and the randomization need; re-save it from the code that built it with "
                f"model.save('model.keras') and pass that file")
        raise SanityError(f"{path} is a folder; pass a .keras or .h5 model file")
    if not path.is_file():
        raise SanityError(f"no model file {path}")
    if path.suffix not in (".keras", ".h5", ".hdf5"):
        raise SanityError(f"{path} is not a .keras or .h5 file; save your model with model.save('model.keras')")
    if path.suffix == ".keras" and not zipfile.is_zipfile(path):
        raise SanityError(f"cannot read {path}: not a .keras file (a zip archive); re-save it with model.save()")
    try:
        model = keras.models.load_model(path, compile=False, safe_mode=not trust)
    except ValueError as e:
        if "safe_mode" in str(e):  # Keras refuses to deserialize code (lambda_layer.py, serialization_lib.py)
            raise SanityError(f"{path} contains Python code (e.g. a Lambda layer) that Keras' safe mode does not run; "
                              f"if you trust the file, pass {TRUST_FLAG}") from None
        raise SanityError(f"cannot load {path}: {_one_line(e)}") from None
    except (OSError, TypeError, KeyError) as e:  # h5py's unreadable file, an unknown custom class
        raise SanityError(f"cannot load {path}: {_one_line(e)}") from None
    return check_model(model, path.name)


def check_model(model, name="the model"):
    """Checks what the check needs of `model`: one input, one output, trainable weights."""
    if len(model.inputs) != 1:
        raise SanityError(f"{name} has {len(model.inputs)} inputs; the check explains single-input models: "
                          "wrap yours in a keras.Model with one input")
    if len(model.outputs) != 1:
        raise SanityError(f"{name} has {len(model.outputs)} outputs; the check explains one [batch, classes] "
                          "output: save a keras.Model(model.input, model.outputs[k]) of the one to check")
    if not model.trainable_weights:
        raise SanityError(f"{name} has no trainable weights, so there is nothing to randomize; "
                          "set layer.trainable = True on the layers to check and save it again")
    return model


def _read_images(folder, model, limit):
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise SanityError(f"no images in {folder} (looked for {', '.join(IMAGE_SUFFIXES)})")
    from PIL import Image, UnidentifiedImageError

    shape = model.input_shape
    if len(shape) != 4:
        raise SanityError(f"{folder} holds images but the model takes inputs of shape {shape}; "
                          "pass an .npy array instead")
    _, height, width, channels = shape
    mode = {1: "L", 3: "RGB"}.get(channels)
    if mode is None:
        raise SanityError(f"the model takes {channels}-channel images; a folder of images gives 1 or 3 channels: "
                          "pass an .npy array instead")
    images = []
    for p in files[:limit]:
        try:
            with Image.open(p) as im:
                im = im.convert(mode)
                if height and width:
                    im = im.resize((width, height), Image.BILINEAR)
                images.append(np.asarray(im, np.float32).reshape(im.size[1], im.size[0], channels))
        except (UnidentifiedImageError, OSError) as e:
            raise SanityError(f"cannot read image {p}: {_one_line(e)}") from None
    if len({a.shape for a in images}) > 1:
        raise SanityError(f"the images in {folder} differ in size and the model takes any size; "
                          "resize them to one size first")
    return np.stack(images), len(files)


def _read_array(path):
    try:  # an empty or truncated file: EOFError, ValueError or BadZipFile (also when the .npz member is read)
        data = np.load(path, allow_pickle=False)
        if isinstance(data, np.lib.npyio.NpzFile):
            with data:
                if len(data.files) != 1 and "x" not in data.files:
                    raise SanityError(f"{path} holds arrays {', '.join(data.files)}; name the inputs 'x' or "
                                      "store one array")
                data = data["x" if "x" in data.files else data.files[0]]
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise SanityError(f"cannot read {path}: {_one_line(e)} (an .npy / .npz of numbers is needed)") from None
    if not np.issubdtype(data.dtype, np.number) and data.dtype != bool:
        raise SanityError(f"{path} holds {data.dtype} values; the inputs must be numbers")
    if data.ndim == 0:
        raise SanityError(f"{path} holds a single value, not an array [n, ...]")
    return data


def _read_tfds(spec):
    from tf_sanity.models import datasets

    name, _, split = spec[len(TFDS_PREFIX):].partition(":")
    if name not in datasets.SUBFOLDERS:
        raise unknown_name("tfds data set (offline)", name, datasets.SUBFOLDERS)
    split = split or "test"
    if split not in ("train", "test"):
        raise unknown_name("split", split, ("train", "test"))
    data = datasets.load(name)
    x, y = (data.x_test, data.y_test) if split == "test" else (data.x_train, data.y_train)
    # datasets.load scales to [0, 1]; give the raw pixel values, as image files do (--preprocess applies).
    return np.round(x * 255.0).astype(np.float32), y, f"tfds {name} {split} ({len(x):,})"


def _preprocess(x, preprocess):
    if preprocess is None:
        return x
    fn = PREPROCESS.get(preprocess)
    if fn is None:
        if ":" not in preprocess:
            raise unknown_name("preprocessing", preprocess, [*PREPROCESS, "module:function"])
        fn = load_function(preprocess, "preprocessing")
    out = np.asarray(fn(x.astype(np.float32)), np.float32)
    if out.shape != x.shape:
        raise SanityError(f"the preprocessing {preprocess} changed the inputs' shape {x.shape} to {out.shape}")
    return out


def load_inputs(spec, *, preprocess=None, model=None, limit=None):
    """Reads inputs as `model` takes them.

    Args:
      spec: a folder of images, an ``.npy`` / ``.npz`` file (``.npz``: the array ``x`` or its only
        array), or ``tfds:NAME[:split]`` (MNIST, Fashion-MNIST, CIFAR-10 from the offline folder of
        :mod:`tf_sanity.models.datasets`; default split ``test``).
      preprocess: None (default: the values as read; images as raw 0..255 floats, i.e. the model
        holds its own preprocessing), a name in :data:`PREPROCESS`, or ``module:function``
        (``f(x) -> x`` on the float32 batch).
      model: the model the inputs are for (shape, kind and vocabulary are checked against it).
      limit: keep the first `limit` inputs.

    Returns:
      :class:`Inputs`.
    """
    if model is None:
        raise SanityError("load_inputs needs the model, to check the inputs against it")
    if limit is not None and limit < 1:
        raise SanityError(f"--limit must be at least 1, got {limit}")
    labels = None
    if str(spec).startswith(TFDS_PREFIX):
        x, labels, source = _read_tfds(str(spec))
        total = len(x)
    else:
        path = pathlib.Path(spec).expanduser()
        if path.is_dir():
            x, total = _read_images(path, model, limit)
            source = f"{total} image files in {path}"
        elif not path.exists():
            raise SanityError(f"no inputs at {path}; pass a folder of images, an .npy / .npz file or tfds:NAME[:split]")
        elif path.suffix in (".npy", ".npz"):
            x = _read_array(path)
            total = len(x)
            source = f"{path.name} {tuple(x.shape)}"
        else:
            raise SanityError(f"{path} is neither a folder of images nor an .npy / .npz file")
    x = np.asarray(x[:limit])
    labels = None if labels is None else labels[:len(x)]
    from tf_sanity.checks import model_views

    kind = model_views.input_kind(model)
    _check_against_model(x, model, kind, spec)
    if preprocess is not None and kind == "tokens":
        raise SanityError("--preprocess does not apply to token ids; leave it out")
    x = _preprocess(x.astype(np.float32), preprocess)
    if not np.isfinite(x).all():
        raise SanityError(f"the inputs {spec} contain NaN or inf values; replace them first")
    return Inputs(x, kind, total, source, labels)


def _check_against_model(x, model, kind, spec):
    expected = tuple(model.input_shape[1:])
    if x.ndim == 0 or len(x) == 0:
        raise SanityError(f"the inputs {spec} are empty")
    if x.ndim != len(expected) + 1 or any(e is not None and e != s for e, s in zip(expected, x.shape[1:])):
        raise SanityError(f"the inputs {spec} have shape {tuple(x.shape)} but the model takes "
                          f"(batch, {', '.join(str(e) for e in expected)}); reshape or resize them")
    if kind == "tokens":
        if not np.isfinite(x).all() or (x != np.round(x)).any():
            raise SanityError(f"the model reads token ids (an Embedding), but {spec} holds non-integer values")
        from tf_sanity.checks.model_views import embedding_layer

        vocabulary = embedding_layer(model).input_dim
        if x.min() < 0 or x.max() >= vocabulary:
            raise SanityError(f"token ids must lie in [0, {vocabulary}) for this model's Embedding; "
                              f"got {int(x.min())}..{int(x.max())}")


def load_targets(spec, n, n_classes, *, total=None):
    """``"predicted"``, or the labels of an ``.npy`` file (its first `n`, of `total` entries) as int32.

    Args:
      spec: ``"predicted"`` (each model state's own top class) or the path of an ``.npy`` of one
        integer class per input, in the inputs' order.
      n: inputs checked; n_classes: the model's classes; total: inputs in the source (default `n`).
    """
    if spec in (None, PREDICTED):
        return PREDICTED
    path = pathlib.Path(spec).expanduser()
    if not path.is_file() or path.suffix != ".npy":
        raise SanityError(f"--targets must be '{PREDICTED}' or an .npy file of labels; got {spec}")
    labels = _read_array(path)
    total = n if total is None else total
    if labels.shape != (total,) or not np.issubdtype(labels.dtype, np.integer):
        raise SanityError(f"{path} must hold one integer class per input ({total},), got shape {labels.shape} "
                          f"and dtype {labels.dtype}")
    labels = labels[:n]
    if n_classes is not None and ((labels < 0) | (labels >= n_classes)).any():
        raise SanityError(f"labels in {path} must lie in [0, {n_classes}) for this model; "
                          f"got {labels.min()}..{labels.max()}")
    return labels.astype(np.int32)


def _raised_at(error):
    """`` at file:line`` of the innermost frame of `error` (of the file that failed to parse for a SyntaxError)."""
    if isinstance(error, SyntaxError) and error.filename:
        return f" at {error.filename}:{error.lineno}"
    tb = error.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return f" at {tb.tb_frame.f_code.co_filename}:{tb.tb_lineno}" if tb is not None else ""


def load_function(spec, what):
    """The function named by ``module:function`` (the module found from the current folder too)."""
    module_name, _, name = spec.partition(":")
    if not module_name or not name:
        raise SanityError(f"the {what} must be given as module:function, got {spec!r}")
    if str(pathlib.Path.cwd()) not in sys.path:
        sys.path.insert(0, str(pathlib.Path.cwd()))
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        raise SanityError(f"cannot import {module_name!r} for the {what} {spec}: {_one_line(e)}") from None
    except Exception as e:  # the user's module fails as it is imported: say where, not a trace of ours
        where = _raised_at(e)
        raise SanityError(f"importing {module_name!r} for the {what} {spec} raised {type(e).__name__}"
                          f"{where}: {_one_line(e)}; run `python -c 'import {module_name}'` for the trace") from None
    fn = getattr(module, name, None)
    if not callable(fn):
        raise SanityError(f"{module_name} has no function {name!r} (the {what} {spec})")
    return fn


def user_method(spec):
    """A :class:`~tf_sanity.attribution.registry.Method` from ``module:function``, where
    ``function(model, x, targets) -> mask`` (numpy ``[B, ...]`` shaped like ``x``); named after the function."""
    from tf_sanity.attribution.registry import Method

    fn = load_function(spec, "method")
    name = spec.partition(":")[2]

    def compute(model, x, targets, **settings):
        mask = np.asarray(fn(model, x, targets), np.float32)
        if mask.shape != x.shape:
            raise SanityError(f"the method {spec} returned shape {mask.shape} for inputs {x.shape}; "
                              "it must return one mask shaped like the inputs")
        return mask

    return Method(name, f"{name} (yours)", compute, {}, short_label=name)
