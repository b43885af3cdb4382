"""The sanity checks: model and data randomization, similarity metrics, statistics, and cosine
similarity convergence (Adebayo et al. 2018; Sundararajan & Taly 2018; Sixt et al. 2020).

* :func:`model_randomization`, :func:`data_randomization` (:mod:`.randomization_test`): the tests
  as tidy rows;
* :mod:`.randomization`: reversible, seeded re-initialization of weight groups; :mod:`.groups`: the
  default groups (named blocks of keras.applications-style models, :func:`grouping`);
* :mod:`.metrics`: the papers' similarity measures; :mod:`.statistics`: bootstrap intervals;
* :mod:`.csc`: cosine similarity convergence and the checks of "When Explanations Lie";
* :mod:`.refinements`: smooth and efficient MPRT (Hedström et al. 2023);
* :mod:`.controls`: the edge-detector and random controls; :mod:`.verdict`: verdicts between them;
* :func:`run` (:mod:`.suite`): every test on a user's model, resumable, with verdicts and summaries
  (:mod:`.units`, :mod:`.summaries`, :mod:`.invariance`, :mod:`.model_views`).

Names are imported on first use (``tf_sanity.checks.statistics`` loads no TensorFlow).
"""

import importlib

_EXPORTS = {
    "model_randomization": "tf_sanity.checks.randomization_test",
    "data_randomization": "tf_sanity.checks.randomization_test",
    "explain_methods": "tf_sanity.checks.randomization_test",
    "stage_groups": "tf_sanity.checks.randomization_test",
    "ORDERS": "tf_sanity.checks.randomization_test",
    "grouping": "tf_sanity.checks.groups",
    "SIMILARITIES": "tf_sanity.checks.randomization_test",
    "smooth_mprt": "tf_sanity.checks.refinements",
    "efficient_mprt": "tf_sanity.checks.refinements",
    "verdicts": "tf_sanity.checks.verdict",
    "run": "tf_sanity.checks.suite",
    "CheckResult": "tf_sanity.checks.result",
}
_SUBMODULES = ("controls", "csc", "groups", "metrics", "randomization", "randomization_test", "refinements",
               "statistics", "verdict", "result", "suite", "report", "inputs", "command", "units", "summaries",
               "invariance", "model_views")

__all__ = sorted(_EXPORTS) + list(_SUBMODULES)


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f"tf_sanity.checks.{name}")
    if name not in _EXPORTS:
        raise AttributeError(f"module 'tf_sanity.checks' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value
