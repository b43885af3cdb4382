"""The ``tf-sanity`` command line: ``python -m tf_sanity <command> ...``.

Each command lives in the module that implements it; that module exposes
``add_parser(subparsers)`` which registers the sub-command and sets ``func`` (called with the
parsed args). Building the parser imports no TensorFlow: command modules import it inside ``func``,
after this module has set TensorFlow's log level, so ``--help`` is quiet and fast. Errors of type
:class:`tf_sanity.errors.SanityError` print one line and exit 2.
"""

import argparse
import importlib
import os
import pathlib
import sys

# TensorFlow's C++ start-up chatter (CUDA probing, CPU features) is noise on a command line; a user's
# own setting wins. Set before any command imports TensorFlow.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from tf_sanity.errors import SanityError  # noqa: E402

# Modules that contribute sub-commands, in the order `--help` lists them.
COMMAND_MODULES = ("tf_sanity.checks.command", "tf_sanity.models.zoo", "tf_sanity.models.inception_eval",
                   "tf_sanity.models.imagenet_eval", "experiments.cli")
# Commands of the repository checkout (not installed by `pip install .`): what to say without it.
CHECKOUT_COMMANDS = {"experiments.cli": ("reproduce", "regenerate a paper figure (needs the repository checkout)")}


def _checkout_only(subparsers, command, help_text):
    """Registers `command` as a stub that says it runs from a checkout of the repository."""
    p = subparsers.add_parser(command, help=help_text, add_help=False)
    p.set_defaults(any_arguments=True)

    def stub(args):
        raise SanityError(f"'{command}' runs from a checkout of the tf_sanity repository (its experiments/ "
                          f"package is not installed by pip): clone it, cd into it and run "
                          f"'python -m tf_sanity {command} ...' there")

    p.set_defaults(func=stub)


def _import_command_module(name):
    """Imports `name`; the checkout's `experiments` package is found from the repository root too."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as e:
        top = name.split(".")[0]
        if e.name != top or not (pathlib.Path.cwd() / top / "__init__.py").is_file():
            raise
    sys.path.insert(0, str(pathlib.Path.cwd()))  # `tf-sanity` run from the repository root
    return importlib.import_module(name)


def build_parser():
    parser = argparse.ArgumentParser(
        prog="tf-sanity", description="Sanity checks for saliency maps (Adebayo et al. 2018) and follow-ups.")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        try:
            module = _import_command_module(name)
        except ModuleNotFoundError as e:
            if not name.startswith(e.name or "\0"):  # a real missing dependency inside the module
                raise
            if name in CHECKOUT_COMMANDS:
                _checkout_only(subparsers, *CHECKOUT_COMMANDS[name])
            continue
        module.add_parser(subparsers)
    return parser


def _import_tensorflow_quietly():
    """Imports TensorFlow with its C++ start-up lines (absl logging before ``InitializeLog``, which
    ``TF_CPP_MIN_LOG_LEVEL`` does not silence in TF 2.21) kept off the terminal; shown if the import fails."""
    import tempfile
    with tempfile.TemporaryFile() as captured:
        saved = os.dup(2)
        sys.stderr.flush()
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow  # noqa: F401
        except BaseException:
            os.dup2(saved, 2)
            captured.seek(0)
            sys.stderr.write(captured.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def main(argv=None):
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(args, "any_arguments", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    import matplotlib
    matplotlib.use("Agg")  # commands write figure files; never open windows
    _import_tensorflow_quietly()
    try:
        return args.func(args) or 0
    except SanityError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; rerun the same command to continue where it stopped", file=sys.stderr)
        return 130
