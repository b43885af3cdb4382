"""``tf-sanity imagenet-eval``: top-1 / top-5 of a trained 1000-class ImageNet model on a test bed.

    tf-sanity imagenet-eval --model efficientnet_lite0 --images ../shared/data/imagenet

The test bed is :class:`slim_models.imagenet.TestBed` (a folder with ``labels.csv``; labels are
``class_index_1000``, the 0..999 order of the model's 1000 logits). Images are decoded with 3
channels, optionally center-cropped, resized bilinearly to the model's size, and then preprocessed
as the model expects (or, with ``--preprocessing``, another candidate, to find out which one the
weights were trained with). ``shared/data/imagenet`` holds 235 images, 200 of them from only 10
classes and resized to 224 x 224 beforehand: its accuracies are not comparable with published
accuracies on the 50,000 ILSVRC2012 validation images (75.1 % top-1 for EfficientNet-Lite0).
(``tf-sanity inception-eval`` is the same for the 1001-class TF-slim Inception v3.)
"""

import time

import numpy as np

# Candidate input normalizations of RGB pixels in 0..255 (float32 in, float32 out).
PREPROCESSINGS = {
    "tf_lite": ("(x - 127) / 128", lambda x: (x - 127.0) / 128.0),
    "symmetric": ("x / 127.5 - 1, in [-1, 1]", lambda x: x / 127.5 - 1.0),
    "unit": ("x / 255, in [0, 1]", lambda x: x / 255.0),
    "imagenet_mean_std": ("(x / 255 - mean) / std, ImageNet mean/std (torchvision)",
                          lambda x: (x / 255.0 - np.float32([0.485, 0.456, 0.406]))
                          / np.float32([0.229, 0.224, 0.225])),
}

# name -> (factory module, factory function, input size, its own preprocessing)
MODELS = {
    "efficientnet_lite0": ("tf_sanity.models.efficientnet_lite", "efficientnet_lite0", 224, "tf_lite"),
}

_CHANCE_MIN_IMAGES = 20  # with this many images, top-5 at 5 / 1000 means untrained weights


def add_test_bed_arguments(p):
    """The test-bed options shared with ``tf-sanity inception-eval``."""
    p.add_argument("--images", required=True,
                   help="test-bed folder holding labels.csv (e.g. ../shared/data/imagenet)")
    p.add_argument("--labels", default="labels.csv", help="labels CSV, relative to --images")
    p.add_argument("--subset", default=None,
                   help="only files under this prefix of the CSV, e.g. val_imagenette224/")
    p.add_argument("--limit", type=int, default=None, help="evaluate the first N images only")
    p.add_argument("--batch-size", type=int, default=16)


def add_parser(subparsers):
    p = subparsers.add_parser(
        "imagenet-eval", help="top-1/top-5 of a trained 1000-class ImageNet model on a test bed",
        description="Loads a trained model and reports its top-1 and top-5 accuracy on a folder of "
                    "images with a labels CSV (class_index_1000). Small test beds such as "
                    "shared/data/imagenet are not comparable with published accuracies.")
    p.add_argument("--model", default="efficientnet_lite0", choices=sorted(MODELS))
    p.add_argument("--weights", default="imagenet",
                   help="'imagenet' (the published weights) or a weights file for the model")
    add_test_bed_arguments(p)
    p.add_argument("--central-fraction", type=float, default=1.0,
                   help="central crop before resizing (1.0 = none; TF's EfficientNet eval crops "
                        "224/256 = 0.875 of the shorter side)")
    p.add_argument("--preprocessing", default=None, choices=sorted(PREPROCESSINGS),
                   help="input normalization; default: the model's own")
    p.add_argument("--show", type=int, default=0, help="print the top-5 of the first N images")
    p.set_defaults(func=run)


def top_k_correct(logits, labels, k):
    """Whether each label (0..999) is among the `k` highest of 1000 logits."""
    top = np.argsort(-np.asarray(logits), axis=1)[:, :k]
    return (top == np.asarray(labels)[:, None]).any(axis=1)


def cross_entropy(logits, labels):
    """Per image ``-log softmax(logits)[label]`` (nats): finer than accuracy on a small test bed."""
    logits = np.asarray(logits, dtype=np.float64)
    top = logits.max(axis=1)
    log_z = top + np.log(np.exp(logits - top[:, None]).sum(axis=1))
    return log_z - logits[np.arange(len(logits)), np.asarray(labels)]


def run(args):
    import importlib


    from slim_models import imagenet
    from tf_sanity.attribution import engine
    from tf_sanity.errors import SanityError

    if args.batch_size < 1 or (args.limit is not None and args.limit < 1):
        raise SanityError("--batch-size and --limit must be positive")
    if not 0.0 < args.central_fraction <= 1.0:
        raise SanityError(f"--central-fraction must lie in (0, 1], got {args.central_fraction}")
    module, factory, size, own = MODELS[args.model]
    label, normalize = PREPROCESSINGS[args.preprocessing or own]
    bed = imagenet.TestBed(args.images, args.labels, args.subset, args.limit)
    try:
        names = [name for _, name in imagenet.class_names(args.images)]
    except SanityError:
        names = None
    model = getattr(importlib.import_module(module), factory)(weights=args.weights)
    forward = engine.scores_function(model)  # compiled once, batch-polymorphic
    print(f"model:         {args.model} ({getattr(model, 'weights_path', 'random weights')})")
    print(f"test bed:      {len(bed)} images from {bed.folder}")
    print(f"preprocessing: central crop {args.central_fraction}, bilinear resize to {size}, "
          f"{label}" + ("" if (args.preprocessing or own) == own else f" (the model's own: "
                                                                       f"{PREPROCESSINGS[own][0]})"))
    top1, top5, nll, shown = [], [], [], 0
    start = time.perf_counter()
    for records, images, labels in bed.batches(args.batch_size, size=size,
                                               central_fraction=args.central_fraction):
        pixels = (images + 1.0) * 127.5  # the test bed gives [-1, 1]; back to 0..255
        logits = np.asarray(forward(normalize(pixels).astype(np.float32)))
        top1.append(top_k_correct(logits, labels, 1))
        top5.append(top_k_correct(logits, labels, 5))
        nll.append(cross_entropy(logits, labels))
        for record, row in zip(records, logits):
            if shown >= args.show:
                break
            shown += 1
            guesses = ", ".join(f"{names[i] if names else i} ({row[i]:.2f})" for i in np.argsort(-row)[:5])
            print(f"  {record.path.name}: true {names[record.label] if names else record.label}; "
                  f"top-5 {guesses}")
    seconds = time.perf_counter() - start
    top1, top5 = np.concatenate(top1), np.concatenate(top5)
    n = len(top1)
    print(f"top-1 {top1.mean():.1%} ({top1.sum()}/{n})   top-5 {top5.mean():.1%} ({top5.sum()}/{n})"
          f"   cross-entropy {np.concatenate(nll).mean():.3f}   [{seconds / n:.3f} s/image, decoding included]")
    print("note: a small test bed (shared/data/imagenet: mostly 10 classes, resized beforehand) is "
          "not comparable with published accuracies on the full ILSVRC2012 validation set")
    if n >= _CHANCE_MIN_IMAGES and top5.mean() <= 0.05:
        print("note: accuracy is at chance level, so these are not trained ImageNet weights")
    return 0
