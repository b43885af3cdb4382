"""``tf-sanity inception-eval``: top-1 / top-5 of a TF-slim Inception v3 checkpoint on a test bed.

    python -m tf_sanity inception-eval --images ../shared/data/imagenet [--checkpoint inception_v3.ckpt]

Without ``--checkpoint`` the official ``inception_v3_2016_08_28`` is taken from the cache
(downloaded once; see :func:`slim_models.checkpoint.official_checkpoint`).
"""

import time

import numpy as np

from tf_sanity.models.imagenet_eval import add_test_bed_arguments

# With at least this many images, top-5 at chance level (5 / 1000) means an untrained checkpoint.
_CHANCE_MIN_IMAGES = 20


def add_parser(subparsers):
    p = subparsers.add_parser(
        "inception-eval", help="top-1/top-5 of TF-slim Inception v3 on an ImageNet test bed",
        description="Loads a TF-slim inception_v3 checkpoint into the Keras port and reports its "
                    "top-1 and top-5 accuracy on a folder of images with a labels CSV.")
    p.add_argument("--checkpoint", default=None,
                   help="slim inception_v3.ckpt (file, prefix or folder); default: the official "
                        "inception_v3_2016_08_28, downloaded once into $TF_SANITY_CACHE")
    add_test_bed_arguments(p)
    p.add_argument("--central-fraction", type=float, default=0.875,  # slim_models.imagenet.CENTRAL_FRACTION
                   help="central crop before resizing to 299 (slim eval: 0.875; 1.0 = no crop)")
    p.add_argument("--show", type=int, default=0, help="print the top-5 of the first N images")
    p.set_defaults(func=run)


def run(args):
    from slim_models import imagenet  # imported here: the parser is built without TensorFlow
    from slim_models.checkpoint import load_inception_v3
    from tf_sanity.attribution import engine
    from tf_sanity.errors import SanityError

    if args.batch_size < 1 or (args.limit is not None and args.limit < 1):
        raise SanityError("--batch-size and --limit must be positive")
    if not 0.0 < args.central_fraction <= 1.0:
        raise SanityError(f"--central-fraction must lie in (0, 1], got {args.central_fraction}")
    bed = imagenet.TestBed(args.images, args.labels, args.subset, args.limit)
    try:
        names = imagenet.slim_class_names(args.images)
    except SanityError:
        names = None
    model = load_inception_v3(args.checkpoint)
    forward = engine.scores_function(model)  # compiled once, batch-polymorphic
    print(f"checkpoint: {model.checkpoint_path}")
    print(f"test bed:   {len(bed)} images from {bed.folder} "
          f"(central crop {args.central_fraction}, bilinear resize to 299, [-1, 1])")
    top1, top5, shown = [], [], 0
    start = time.perf_counter()
    for records, images, labels in bed.batches(args.batch_size, central_fraction=args.central_fraction):
        logits = np.asarray(forward(images))
        top1.append(imagenet.top_k_correct(logits, labels, 1))
        top5.append(imagenet.top_k_correct(logits, labels, 5))
        for record, row in zip(records, logits):
            if shown >= args.show:
                break
            shown += 1
            best = np.argsort(-row)[:5]
            label = names[record.label + 1] if names else record.label
            guesses = ", ".join(f"{names[i] if names else i} ({row[i]:.2f})" for i in best)
            print(f"  {record.path.name}: true {label}; top-5 {guesses}")
    seconds = time.perf_counter() - start
    top1, top5 = np.concatenate(top1), np.concatenate(top5)
    n = len(top1)
    print(f"top-1 {top1.mean():.1%} ({top1.sum()}/{n})   top-5 {top5.mean():.1%} ({top5.sum()}/{n})"
          f"   [{seconds / n:.3f} s/image]")
    if n >= _CHANCE_MIN_IMAGES and top5.mean() <= 0.05:
        print("note: accuracy is at chance level, so this is not a trained ImageNet checkpoint "
              "(e.g. the random-weight one the tests write)")
    return 0
