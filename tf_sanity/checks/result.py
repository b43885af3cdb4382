"""What :func:`tf_sanity.checks.run` returns: the tidy rows of every test, the verdicts, and the
record needed to write the report (issue 17, items 2 and 6).

:func:`tf_sanity.checks.suite.run` fills a :class:`CheckResult`; :mod:`tf_sanity.checks.report`
writes it as ``report.html`` (self-contained), ``report.md``, ``results.csv`` and ``verdicts.json``.

Row schema (one dict per input x method x stage x metric, as
:func:`tf_sanity.checks.model_randomization` yields, plus):

* ``test``: one of :data:`TESTS` (the keys below);
* ``seed``: the randomization seed (0 when the test has none);
* tests without stages (random logit, input invariance, completeness, data randomization) use
  ``order=""``, ``stage=""``, ``stage_index=0``.
"""

import dataclasses
from typing import Any, Optional

# Test key -> (name in the report, the paper it comes from).
TESTS = {
    "model_randomization": ("Model parameter randomization", "Adebayo et al. 2018, Sec. 3"),
    "smprt": ("Smooth MPRT (sMPRT)", "Hedström et al. 2023, Sec. 4.1"),
    "emprt": ("Efficient MPRT (eMPRT)", "Hedström et al. 2023, Sec. 4.2"),
    "random_logit": ("Random-logit test", "Sixt et al. 2020, Sec. 5.2"),
    "csc": ("Cosine similarity convergence", "Sixt et al. 2020, Sec. 5.1"),
    "input_invariance": ("Input invariance", "Kindermans et al. 2019"),
    "completeness": ("Completeness (IG)", "Sundararajan et al. 2017, Prop. 1"),
    "data_randomization": ("Data randomization", "Adebayo et al. 2018, Sec. 4"),
}

# The input kinds the check understands (issue 17, item 5).
INPUT_KINDS = ("image", "sequence", "tabular", "tokens")


@dataclasses.dataclass
class CheckResult:
    """The outcome of one sanity check run.

    Attributes:
      rows: tidy rows of every test (module docstring).
      verdicts: :class:`tf_sanity.checks.verdict.Verdict` per (method, order) of the model
        randomization test, placed between the controls, on the paper's ``settings["verdict_metric"]``
        (``spearman_abs``).
      baseline_verdicts: the same rule on ``settings["baseline_metric"]`` (``spearman_nz``: the pixels
        the method's baseline forces to zero left out, Sundararajan & Taly 2018) for the methods with a
        baseline (Gradient x Input, IG); a second reading that :meth:`failing` does not use.
      summaries: one dict per (test, method) for tests that are not read through verdicts (random
        logit, CSC, input invariance, completeness, eMPRT, data randomization): ``test, method,
        value, low, high, passed`` (True / False / None), ``note`` (one sentence in words).
      skipped: method -> the one-line reason it was not run (e.g. a layer its rules do not support).
      settings: everything that determines the numbers: ``preset, methods, orders, seeds,
        n_inputs, input_kind, similarities, groups, smprt_n, smprt_order, method_settings, targets,
        verdict_metric, baseline_metric``, and ``notes`` (e.g. "the model ends in softmax: explained
        on its logits").
      model_name: the model's name (or its file name).
      inputs_preview: the first few inputs ``[k, ...]`` (for mask grids; image inputs only).
      masks: ``{(order, stage, method): [k, ...] masks}`` of those inputs, ``(order, "original", method)``
        for the trained model under every order.
      stages: ``{order: [stage names in the order's order]}``.
      timings: ``passes`` (forward + backward passes run), ``pass_time_s`` / ``pass_cpu_s`` (wall / CPU
        seconds of one pass), ``floor_s`` / ``floor_cpu_s`` (passes x those), ``explain_s``, ``metrics_s``,
        ``bootstrap_s`` and their ``*_cpu_s``, ``figures_s`` / ``figures_cpu_s`` (filled by the report),
        ``total_s``.
      versions: ``tensorflow, keras, tf_sanity, python``.
    """

    rows: list
    verdicts: list
    baseline_verdicts: list = dataclasses.field(default_factory=list)
    summaries: list = dataclasses.field(default_factory=list)
    skipped: dict = dataclasses.field(default_factory=dict)
    settings: dict = dataclasses.field(default_factory=dict)
    model_name: str = "model"
    inputs_preview: Optional[Any] = None
    masks: dict = dataclasses.field(default_factory=dict)
    stages: dict = dataclasses.field(default_factory=dict)
    timings: dict = dataclasses.field(default_factory=dict)
    versions: dict = dataclasses.field(default_factory=dict)

    def failing(self):
        """Methods with an "insensitive (fails the check)" verdict in any order, on the primary metric
        (:attr:`verdicts`; :attr:`baseline_verdicts` are shown beside them, not counted)."""
        from tf_sanity.checks.verdict import INSENSITIVE
        return sorted({v.method for v in self.verdicts if v.verdict == INSENSITIVE})

    def to_html(self, path):
        """Writes the self-contained HTML report to `path`."""
        from tf_sanity.checks import report
        return report.write_html(self, path)

    def to_markdown(self, path):
        """Writes the Markdown report to `path` (its figures beside it)."""
        from tf_sanity.checks import report
        return report.write_markdown(self, path)

    def save(self, out):
        """Writes ``report.html``, ``report.md``, ``results.csv`` and ``verdicts.json`` into folder `out`."""
        from tf_sanity.checks import report
        return report.write_all(self, out)
