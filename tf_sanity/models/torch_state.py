"""A safe reader of PyTorch's legacy (pre-1.6, non-zip) state-dict files, with numpy only.

Layout of such a file, as written by ``torch.save`` before PyTorch 1.6 (``_legacy_save``):

1. three small pickles: the magic number ``0x1950a86a20f9469cfc6c``, the protocol version 1001 and a
   sys-info dict (``little_endian``, ``type_sizes``);
2. the pickled object, here an ``OrderedDict`` name -> tensor, each tensor a REDUCE of
   ``torch._utils._rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks)`` whose
   storage is a persistent id ``('storage', torch.FloatStorage, key, location, numel, view)``;
3. a pickled list of storage keys; then, per key, an 8-byte element count followed by the raw data.

A pickle can run arbitrary code, so the state dict is read by a :class:`pickle.Unpickler` whose
``find_class`` maps exactly the globals above to harmless numpy-building stand-ins and refuses
everything else. Any malformed, truncated or foreign file raises a one-line
:class:`~tf_sanity.errors.SanityError`. PyTorch itself is never imported.
"""

import collections
import io
import pickle
import struct

import numpy as np

from tf_sanity.errors import SanityError

MAGIC_NUMBER = 0x1950a86a20f9469cfc6c
PROTOCOL_VERSION = 1001

# torch.<Name>Storage -> numpy dtype (without byte order; the file's sys info gives it).
STORAGE_DTYPES = {
    "FloatStorage": "f4", "DoubleStorage": "f8", "HalfStorage": "f2", "LongStorage": "i8",
    "IntStorage": "i4", "ShortStorage": "i2", "CharStorage": "i1", "ByteStorage": "u1",
    "BoolStorage": "?",
}

StorageType = collections.namedtuple("StorageType", "name dtype")
_StorageRef = collections.namedtuple("_StorageRef", "key type numel offset size")
_TensorRef = collections.namedtuple("_TensorRef", "storage offset size stride")


def _is_int(x):
    return isinstance(x, int) and not isinstance(x, bool)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False,
                       backward_hooks=None, metadata=None):
    """Stand-in for ``torch._utils._rebuild_tensor_v2``: records where the tensor's data lies."""
    del requires_grad, backward_hooks, metadata  # irrelevant for the values
    if not (isinstance(storage, _StorageRef) and _is_int(storage_offset) and storage_offset >= 0
            and isinstance(size, tuple) and isinstance(stride, tuple) and len(size) == len(stride)
            and all(_is_int(v) and v >= 0 for v in size + stride)):
        raise SanityError("malformed tensor record in the pickle")
    return _TensorRef(storage, storage_offset, size, stride)


class _RestrictedUnpickler(pickle.Unpickler):
    """Accepts only the globals a plain tensor state dict needs; refuses all others."""

    def __init__(self, file, storages):
        super().__init__(file)
        self._storages = storages  # key -> _StorageRef of the root storage, filled by persistent_load

    def find_class(self, module, name):
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor_v2
        if module == "torch" and name in STORAGE_DTYPES:
            return StorageType(name, STORAGE_DTYPES[name])
        raise SanityError(f"refusing to load the global {module}.{name} from the pickle: only "
                          f"OrderedDict, tensors and {'/'.join(STORAGE_DTYPES)} are allowed")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) in (5, 6) and pid[0] == "storage"):
            raise SanityError(f"unknown persistent id in the pickle ({type(pid).__name__})")
        storage_type, key, _, numel = pid[1:5]
        view = pid[5] if len(pid) == 6 else None
        if not (isinstance(storage_type, StorageType) and isinstance(key, str) and _is_int(numel)
                and numel >= 0):
            raise SanityError("malformed storage record in the pickle")
        root = self._storages.setdefault(key, _StorageRef(key, storage_type, numel, 0, numel))
        if root.type != storage_type or root.numel != numel:
            raise SanityError(f"storage {key} is declared twice with different types or sizes")
        if view is None:
            return root
        if not (isinstance(view, tuple) and len(view) == 3 and _is_int(view[1]) and _is_int(view[2])
                and 0 <= view[1] and view[1] + view[2] <= numel):
            raise SanityError(f"malformed view of storage {key} in the pickle")
        return root._replace(offset=view[1], size=view[2])


def _header(unpickler):
    magic = unpickler.load()
    if magic != MAGIC_NUMBER:
        raise SanityError("no PyTorch legacy magic number")
    protocol = unpickler.load()
    if protocol != PROTOCOL_VERSION:
        raise SanityError(f"unsupported PyTorch serialization protocol {protocol!r}")
    sys_info = unpickler.load()
    if not isinstance(sys_info, dict):
        raise SanityError("malformed sys info")
    return "<" if sys_info.get("little_endian", True) else ">"


def _read_storages(f, file_size, keys, storages, order):
    """Reads the raw storages that follow the pickles; returns key -> 1-D numpy array."""
    data = {}
    for key in keys:
        if key not in storages or key in data:
            raise SanityError(f"storage key {key!r} is unknown or listed twice")
        ref = storages[key]
        head = f.read(8)
        if len(head) != 8:
            raise SanityError("truncated before the data of a storage")
        count = struct.unpack(order + "q", head)[0]
        if count != ref.numel:
            raise SanityError(f"storage {key} holds {count} elements, the pickle says {ref.numel}")
        dtype = np.dtype(order + ref.type.dtype)
        nbytes = count * dtype.itemsize
        if nbytes > file_size - f.tell():
            raise SanityError(f"truncated inside the data of storage {key}")
        data[key] = np.frombuffer(f.read(nbytes), dtype=dtype)
    missing = set(storages) - set(data)
    if missing:
        raise SanityError(f"{len(missing)} storages have no data (e.g. {sorted(missing)[0]})")
    return data


def _materialize(name, ref, data):
    """The numpy array of tensor `ref` (a copy in native byte order)."""
    flat = data[ref.storage.key]
    native = flat.dtype.newbyteorder("=")
    if 0 in ref.size:
        return np.zeros(ref.size, dtype=native)
    start = ref.storage.offset + ref.offset
    last = start + sum((n - 1) * s for n, s in zip(ref.size, ref.stride))
    if last >= ref.storage.offset + ref.storage.size:
        raise SanityError(f"tensor {name!r} reaches past the end of its storage")
    view = np.lib.stride_tricks.as_strided(flat[start:], shape=ref.size,
                                           strides=tuple(s * flat.itemsize for s in ref.stride))
    return np.array(view, dtype=native)


def load_state_dict(path):
    """Reads a PyTorch legacy-format state dict without PyTorch and without running pickled code.

    Args:
      path: the ``.pth`` / ``.pt`` file (written by ``torch.save`` before PyTorch 1.6, or with
        ``_use_new_zipfile_serialization=False``).

    Returns:
      ``OrderedDict`` name -> numpy array, in the file's order.

    Raises:
      SanityError: the file is missing, truncated, in another format (e.g. zip-based torch files),
        holds something else than a flat dict of tensors, or names a disallowed global.
    """
    try:
        with open(path, "rb") as file:
            raw = file.read()
        if raw[:4] == b"PK\x03\x04":
            raise SanityError("a zip-based PyTorch file (torch >= 1.6); re-save it with "
                              "torch.save(..., _use_new_zipfile_serialization=False)")
        # In memory, a length field in a crafted pickle cannot make a read allocate beyond the file.
        with io.BytesIO(raw) as f:
            file_size = len(raw)
            storages = {}
            unpickler = _RestrictedUnpickler(f, storages)
            order = _header(unpickler)
            obj = unpickler.load()
            if not isinstance(obj, dict) or not all(
                    isinstance(k, str) and isinstance(v, _TensorRef) for k, v in obj.items()):
                raise SanityError("not a flat state dict of name -> tensor")
            keys = _RestrictedUnpickler(f, {}).load()
            if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
                raise SanityError("malformed list of storage keys")
            data = _read_storages(f, file_size, keys, storages, order)
            return collections.OrderedDict((k, _materialize(k, v, data)) for k, v in obj.items())
    except SanityError as e:
        raise SanityError(f"{path}: {e}") from None
    except FileNotFoundError:
        raise SanityError(f"no file {path}") from None
    except (pickle.UnpicklingError, EOFError) as e:
        raise SanityError(f"{path}: not a readable PyTorch legacy state dict "
                          f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else 'truncated'})"
                          ) from None
    except Exception as e:  # noqa: BLE001 - anything a malformed pickle can raise
        raise SanityError(f"{path}: not a PyTorch legacy state dict ({type(e).__name__})") from None


__all__ = ["load_state_dict", "MAGIC_NUMBER", "PROTOCOL_VERSION", "STORAGE_DTYPES", "StorageType"]
