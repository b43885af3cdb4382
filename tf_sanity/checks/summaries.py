"""One summary per (test, method) for the tests of a check that are not read through verdicts (issue 17, item 4).

Each summary is ``test, method, value, low, high, passed, note`` (:class:`tf_sanity.checks.result.CheckResult`).
``passed`` is True / False, or None where the numbers do not decide. The rules, in words:

* **sMPRT** (Hedström et al. 2023): the verdict rule of :mod:`tf_sanity.checks.verdict` on the smoothed
  masks' similarity at the fully randomized stage, between the smoothed controls.
* **random logit** (Sixt et al. 2020, Sec. 5.2) and **data randomization** (Adebayo et al. 2018, Sec. 4): the
  same halfway rule between the controls. A map that ignores the class or the labels (the edge detector for
  images, the input itself for other inputs) has similarity 1.
* The control that ignores the model is the edge detector for images and the input itself otherwise
  (:func:`tf_sanity.checks.controls.input_control`); the verdict rule reads it as the "fails" end either way.
* **eMPRT** (Hedström et al. 2023, Sec. 4.2): the complexity rise must be resolved above 0 (its interval's
  low end > 0: passed), below or at 0 fails, else undecided. Its controls do not bracket it.
* **CSC** (Sixt et al. 2020, Sec. 5.1): at the lowest layer read, the median ``|cos|`` must lie nearer the
  random-vector baseline than 1 (rank one: the explanation ignores the layers above).
* **input invariance** (Kindermans et al. 2019): invariant when every input's attribution agrees within
  ``invariance.INVARIANCE_TOLERANCE`` (float32 round-off); value = the median relative difference.
* **completeness** (Sundararajan et al. 2017, Sec. 6): the median relative error within 5 %.
"""

import numpy as np

from tf_sanity.checks import invariance, verdict
from tf_sanity.checks.controls import EDGE_DETECTOR, INPUT_CONTROL, RANDOM_ATTRIBUTION
from tf_sanity.checks.statistics import bootstrap_interval

CONTROLS = (EDGE_DETECTOR, INPUT_CONTROL, RANDOM_ATTRIBUTION)
PASSED = {"sensitive": True, "edge-like": False, "undecided": None}
VERDICT_PASSED = {verdict.SENSITIVE: True, verdict.INSENSITIVE: False, verdict.INCONCLUSIVE: None}


def _select(rows, test, metric=None):
    return [r for r in rows if r["test"] == test and (metric is None or r["metric"] == metric)]


def _by_method(rows):
    out = {}
    for r in rows:
        out.setdefault(r["method"], {}).setdefault(r.get("seed", 0), []).append(r["value"])
    return out


def _summary(test, method, value, low, high, passed, note):
    return dict(test=test, method=method, value=float(value), low=float(low), high=float(high), passed=passed,
                note=note)


def between_controls(rows, test, metric, what, edge_name=EDGE_DETECTOR):
    """Summaries of a test without stages, each method placed between the two controls (halfway rule)."""
    values = _by_method(_select(rows, test, metric))
    if RANDOM_ATTRIBUTION not in values or edge_name not in values:
        return []
    random, edge = verdict.interval(values[RANDOM_ATTRIBUTION]), verdict.interval(values[edge_name])
    out = []
    for method, by_seed in values.items():
        if method in CONTROLS:
            continue
        m = verdict.interval(by_seed)
        kind, band, _ = verdict.classify(m, edge, random)
        note = {"sensitive": f"{what} changes the explanation: nearer the random control than a map that ignores it",
                "edge-like": f"{what} hardly changes the explanation: as similar as a map that ignores it",
                "undecided": f"{what} changes the explanation partly: its interval reaches the halfway band "
                             f"[{band[0]:.2f}, {band[1]:.2f}]"}[kind]
        out.append(_summary(test, method, m.estimate, m.low, m.high, PASSED[kind], f"{metric} {m.estimate:.2f}: {note}"))
    return out


def smprt(rows, edge=EDGE_DETECTOR):
    """sMPRT: the verdict rule on the smoothed masks, one summary per method."""
    selected = _select(rows, "smprt", "spearman_abs_flat")
    if not selected:
        return []
    out = []
    for v in verdict.verdicts(selected, metric="spearman_abs_flat", edge=edge):
        last = v.stages[-1]
        out.append(_summary("smprt", v.method, last.method.estimate, last.method.low, last.method.high,
                            VERDICT_PASSED[v.verdict], f"{v.verdict} ({v.order}, N = {selected[0].get('n')}): "
                                                       f"{v.reason}"))
    return out


def emprt(rows):
    """eMPRT: the complexity rise from the trained to the fully randomized model, resolved above 0 or not."""
    out = []
    for method, by_seed in _by_method(_select(rows, "emprt", "emprt")).items():
        if method in CONTROLS:
            continue
        m = verdict.interval(by_seed)
        passed = True if m.low > 0 else False if m.high <= 0 else None
        words = {True: "rises", False: "does not rise", None: "may or may not rise"}[passed]
        out.append(_summary("emprt", method, m.estimate, m.low, m.high, passed,
                            f"the explanation's complexity {words} when the model is fully randomized "
                            f"(median relative rise {m.estimate:.3f})"))
    return out


def csc(rows):
    """CSC: the lowest layer's median |cos| against the random baseline and 1."""
    out = []
    for method in dict.fromkeys(r["method"] for r in _select(rows, "csc")):
        layer_rows = [r for r in _select(rows, "csc") if r["method"] == method]
        low = min(layer_rows, key=lambda r: r["depth"])
        middle = (low["baseline"] + 1) / 2
        passed = bool(low["value"] < middle) if np.isfinite(low["value"]) else None
        words = {True: "has not converged", False: "converges to rank one (ignores the layers above)",
                 None: "gives no cosine (all its vectors are zero)"}[passed]
        out.append(_summary("csc", method, low["value"], np.nan, np.nan, passed,
                            f"median |cos| {low['value']:.3f} at {low['layer']!r} (random vectors: "
                            f"{low['baseline']:.3f}): the backward pass {words}"))
    return out


def input_invariance(rows):
    """Input invariance: every input's attribution the same on the shifted input and model."""
    out = []
    for method, by_seed in _by_method(_select(rows, "input_invariance")).items():
        v = np.concatenate([np.asarray(x, float) for x in by_seed.values()])
        passed = bool(np.nanmax(v) <= invariance.INVARIANCE_TOLERANCE)
        words = "invariant" if passed else "not invariant"
        out.append(_summary("input_invariance", method, np.nanmedian(v), np.nanmin(v), np.nanmax(v), passed,
                            f"{words} to a constant shift absorbed by the first layer's bias (median relative "
                            f"difference {np.nanmedian(v):.2g})"))
    return out


def completeness(rows):
    """IG's completeness: the attributions add up to F(x) - F(baseline) within 5 %."""
    out = []
    for method, by_seed in _by_method(_select(rows, "completeness", "relative_completeness_error")).items():
        v = np.concatenate([np.asarray(x, float) for x in by_seed.values()])
        estimate, low, high = bootstrap_interval(v, "median", n_resamples=2000)
        passed = bool(estimate <= invariance.COMPLETENESS_TOLERANCE) if np.isfinite(estimate) else None
        note = (f"the attributions add up to F(x) - F(baseline) with a median relative error of {estimate:.1%} "
                f"({'within' if passed else 'over'} {100 * invariance.COMPLETENESS_TOLERANCE:g} %; more steps reduce it)"
                if passed is not None else
                "no relative error: F(x) equals F(baseline) for every input")
        out.append(_summary("completeness", method, estimate, low, high, passed, note))
    return out


def summaries(rows, edge=EDGE_DETECTOR):
    """Every summary of a check's tidy `rows`; `edge` names the control that ignores the model."""
    logit_metric = "ssim_flipped" if edge == EDGE_DETECTOR else "spearman_abs"
    return (smprt(rows, edge) + emprt(rows)
            + between_controls(rows, "random_logit", logit_metric, "the target class", edge)
            + csc(rows) + input_invariance(rows) + completeness(rows)
            + between_controls(rows, "data_randomization", "spearman_abs", "training on permuted labels", edge))
