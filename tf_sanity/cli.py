"""The ``tf-sanity`` command line: ``python -m tf_sanity <command> ...``.

Each command lives in the module that implements it; that module exposes
``add_parser(subparsers)`` which registers the sub-command and sets ``func`` (called with the
parsed args). Errors of type :class:`tf_sanity.errors.SanityError` print one line and exit 2.
"""

import argparse
import importlib
import os
import sys

# TensorFlow's C++ start-up chatter (CUDA probing, CPU features) is noise on a command line; a user's
# own setting wins.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from tf_sanity.errors import SanityError

# Modules that contribute sub-commands, in the order `--help` lists them.
COMMAND_MODULES = ("tf_sanity.zoo", "slim_models.cli", "tf_sanity.models.imagenet_eval", "experiments.cli")


def build_parser():
    parser = argparse.ArgumentParser(
        prog="tf-sanity", description="Sanity checks for saliency maps (Adebayo et al. 2018) and follow-ups.")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name != name:  # a real missing dependency inside the module
                raise
            continue
        module.add_parser(subparsers)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return args.func(args) or 0
    except SanityError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; rerun the same command to continue where it stopped", file=sys.stderr)
        return 130
