"""The module paths of tf_sanity 0.1, kept working after the move into subpackages (``CHANGELOG.md``).

``import tf_sanity.zoo`` (or ``from tf_sanity import zoo``) gives the module at its new path,
``tf_sanity.models.zoo``: the very same module object, so state such as the method registry is shared.
Importing an old path emits a ``DeprecationWarning`` naming the new one.
"""

import importlib
import importlib.abc
import importlib.util
import sys
import warnings

# old module name under tf_sanity -> new module path
MOVED = {
    "engine": "tf_sanity.attribution.engine",
    "methods": "tf_sanity.attribution.methods",
    "rules": "tf_sanity.attribution.rules",
    "lrp": "tf_sanity.attribution.lrp",
    "deeplift": "tf_sanity.attribution.deeplift",
    "modified_bp": "tf_sanity.attribution.modified_bp",
    "patterns": "tf_sanity.attribution.patterns",
    "randomization": "tf_sanity.checks.randomization",
    "metrics": "tf_sanity.checks.metrics",
    "csc": "tf_sanity.checks.csc",
    "zoo": "tf_sanity.models.zoo",
    "datasets": "tf_sanity.models.datasets",
    "training": "tf_sanity.models.training",
    "mnist_models": "tf_sanity.models.mnist_models",
    "sixt_models": "tf_sanity.models.sixt_models",
}


class _Alias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds ``tf_sanity.<old>`` and loads it as the module at its new path."""

    def find_spec(self, fullname, path=None, target=None):
        package, _, name = fullname.rpartition(".")
        if package != "tf_sanity" or name not in MOVED:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec):
        new = MOVED[spec.name.rpartition(".")[2]]
        warnings.warn(f"{spec.name} moved to {new}; the old path will be removed in a later version",
                      DeprecationWarning, stacklevel=3)
        module = importlib.import_module(new)  # a tf_sanity.attribution module registers every method first
        self._spec = module.__spec__  # the import system sets __spec__ to the alias's; put it back
        return module

    def exec_module(self, module):
        module.__spec__ = self._spec  # already executed under its new name


def install():
    if not any(isinstance(finder, _Alias) for finder in sys.meta_path):
        sys.meta_path.append(_Alias())
