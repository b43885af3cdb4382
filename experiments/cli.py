"""``tf-sanity reproduce``: run paper figures by name, resume them, and write the report."""

import importlib
import os
import time

import experiments
from experiments import imagenet_inputs
from experiments.imagenet_inputs import CHECKPOINT_ENV, OFFICIAL
from tf_sanity.errors import SanityError
from tf_sanity.models import ledger


def add_parser(subparsers):
    p = subparsers.add_parser("reproduce", help="regenerate a paper figure (see --list)",
                              description="Regenerate paper figures; results, figures and REPORT.md go to --out.")
    p.add_argument("names", nargs="*", help="experiment names, or 'all' for every one whose inputs are available")
    p.add_argument("--list", action="store_true", help="list the experiments and exit")
    p.add_argument("--preset", default="quick", choices=("quick", "paper"))
    p.add_argument("--backend", default="tf_sanity", choices=("tf_sanity", "pair"),
                   help="compute the masks with tf_sanity's batched engine (default) or, image by image, with PAIR's "
                   "saliency.core classes as the original setup did; results and files are kept apart (-pair)")
    p.add_argument("--models", nargs="+", metavar="MODEL",
                   help="run only these models of an experiment that has several (e.g. mnist-cnn)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="settings",
                   help="change one setting of the preset's config (repeatable), e.g. sixt_profile=3k for "
                        "when_explanations_lie; the files get a -KEY_VALUE suffix")
    p.add_argument("--out", default="figures", help="output folder (default: figures/)")
    p.add_argument("--data-dir", help="folder with mnist/, fashion-mnist/ (the original .gz files) and imagenet/ "
                   "(labels.csv and images) for offline use; sets $TF_SANITY_DATA_DIR")
    p.add_argument("--checkpoint", help="TF-slim inception_v3.ckpt for the Inception figures, or "
                   f"'{OFFICIAL}' to download the official one once into the cache; sets "
                   f"${CHECKPOINT_ENV}")
    p.add_argument("--model", choices=(imagenet_inputs.AUTO, *imagenet_inputs.NETWORKS),
                   help="the trained ImageNet network of the ImageNet figures (default auto: inception_v3 when a "
                        "checkpoint is given, else efficientnet_lite0, a trained stand-in that installs offline); "
                        f"sets ${imagenet_inputs.MODEL_ENV}")
    p.set_defaults(func=reproduce)


def reproduce(args):
    from experiments import common, report
    if args.list or not args.names:
        for name, path in experiments.EXPERIMENTS.items():
            module = importlib.import_module(path)
            print(f"{name:<32} {module.TITLE}")
        return 0
    if args.data_dir:
        os.environ["TF_SANITY_DATA_DIR"] = args.data_dir
    if args.checkpoint:
        os.environ[CHECKPOINT_ENV] = args.checkpoint
    if args.model:
        os.environ[imagenet_inputs.MODEL_ENV] = args.model
    settings = {}
    for item in args.settings:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SanityError(f"--set takes KEY=VALUE, got {item!r}")
        settings[key] = value
    run_all = args.names == ["all"]
    names = list(experiments.EXPERIMENTS) if run_all else args.names
    modules = [experiments.get(name) for name in names]  # unknown names fail before any work
    times, mark = {}, len(ledger.USED)
    for module in modules:
        start = time.perf_counter()
        try:
            common.run(module, args.preset, args.out, models=args.models, backend=args.backend,
                       settings=settings)
            times[module.NAME] = time.perf_counter() - start
        except SanityError as e:
            if not run_all:
                raise
            print(f"{module.NAME} [{args.preset}]: skipped: {e}")
            times[module.NAME] = None
    path = report.write(args.out)
    print(f"report: {path}")
    print(summary(times, [e for e in ledger.since(mark) if e["trained_now"]]), flush=True)
    return 0


def summary(times, trained):
    """The run's last line: seconds per experiment (``skipped`` where its inputs were missing), the total,
    and the models trained by this run with their accuracies."""
    per = ", ".join(f"{name} {'skipped' if t is None else f'{t:.0f} s'}" for name, t in times.items())
    total = sum(t for t in times.values() if t is not None)
    models = "; ".join(ledger.describe(e) + f", {e['training_time_s'] or 0:.0f} s" for e in trained) or "none"
    return f"summary: {per}; total {total:.0f} s; models trained: {models}"
