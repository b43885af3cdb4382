"""A verdict per method and order, placed between the two controls (issue 17, item 4).

The rule, in words. Take one similarity (default ``spearman_abs``) at one stage of an order. For the
method and for each control (:mod:`tf_sanity.checks.controls`), take the median over inputs with its
percentile-bootstrap interval over inputs (:func:`tf_sanity.checks.statistics.bootstrap_interval`),
once per randomization seed, and keep the envelope over seeds (the lowest low, the highest high), so
that what is said below holds for every seed. The edge detector ignores the model (the "fails the
check" end, similarity about 1; for inputs other than images the input itself, the input control, plays
its part); the random attribution changes completely at every model state (the "changed completely"
end, about 0). The **halfway band** runs from halfway between the two controls'
low ends to halfway between their high ends. At that stage the method is

* **sensitive** when its whole interval lies below the halfway band: it is nearer to the random
  control than to the edge detector even at the least favourable ends of the controls' intervals;
* **edge-like** when its whole interval lies above the halfway band (including any interval that
  reaches the edge detector's): it is as similar across model states as a map that ignores the model;
* **undecided** otherwise (the interval reaches into the band).

The band, not an overlap with the edge detector's own interval, marks the insensitive end: for a rank
similarity that interval is exactly [1, 1] (the map does not change), which no method computed through
the model reaches, however little it depends on the parameters. The rule reads similarities (higher =
more alike); eMPRT's complexity rise is not one, and its controls do not bracket it (both stay at 0).

The verdict of a cascading order (``top_down``, ``bottom_up``) is the class at its last stage, the
fully randomized model: "sensitive to the parameters", "insensitive (fails the check)" for an
edge-like method, else "inconclusive". For ``independent`` (one group randomized at a time), the
method is "sensitive to the parameters" when it is sensitive to every group, "insensitive (fails
the check)" when it is edge-like for every group, else "inconclusive". Where the controls'
intervals overlap, the scale is not resolved and every verdict is "inconclusive". Alongside, each
verdict names the stages at which the method is edge-like and ``edge_like_until``: the last stage of
the order up to which it is edge-like at every stage (e.g. Guided Backprop on the MNIST CNN stays
edge-like while only the top layers are randomized top down), or None.
"""

import dataclasses
from typing import Optional

import numpy as np

from tf_sanity.checks.controls import EDGE_DETECTOR, IGNORING_WORDS, RANDOM_ATTRIBUTION
from tf_sanity.checks.statistics import bootstrap_interval
from tf_sanity.errors import SanityError

SENSITIVE = "sensitive to the parameters"
INSENSITIVE = "insensitive (fails the check)"
INCONCLUSIVE = "inconclusive"
CASCADING = ("top_down", "bottom_up")


@dataclasses.dataclass(frozen=True)
class Interval:
    """A median over inputs and its bootstrap interval, enveloped over seeds."""

    estimate: float
    low: float
    high: float


@dataclasses.dataclass(frozen=True)
class StageNumbers:
    """The numbers at one stage: the method, both controls, the halfway band, the class."""

    stage: str
    stage_index: int
    method: Interval
    edge: Interval
    random: Interval
    band: tuple
    position: float  # (method - random) / (edge - random) of the estimates: 0 = random, 1 = edge
    kind: str  # "sensitive", "edge-like" or "undecided"


@dataclasses.dataclass(frozen=True)
class Verdict:
    """The verdict of one method under one order, with the numbers behind it."""

    method: str
    order: str
    metric: str
    verdict: str
    reason: str
    stages: tuple  # StageNumbers, in the order's stage order
    edge_like_stages: tuple
    edge_like_until: Optional[str]
    seeds: tuple
    n_inputs: int
    level: float


def interval(values_by_seed, *, level=0.99, n_resamples=10_000, seed=0):
    """The median over all values with the envelope over seeds of each seed's bootstrap interval."""
    per_seed = [bootstrap_interval(v, "median", level=level, n_resamples=n_resamples, seed=seed)
                for v in values_by_seed.values()]
    pooled = np.concatenate([np.asarray(v, np.float64) for v in values_by_seed.values()])
    finite = pooled[np.isfinite(pooled)]
    return Interval(float(np.median(finite)) if finite.size else float("nan"),
                    float(np.nanmin([p[1] for p in per_seed])) if per_seed else float("nan"),
                    float(np.nanmax([p[2] for p in per_seed])) if per_seed else float("nan"))


def classify(m, edge, random):
    """``(kind, halfway band, position)`` of interval `m` between the two controls (module docstring)."""
    band = ((random.low + edge.low) / 2, (random.high + edge.high) / 2)
    span = edge.estimate - random.estimate
    position = (m.estimate - random.estimate) / span if span else float("nan")
    if not np.isfinite([m.low, m.high, *band]).all() or random.high >= edge.low:
        return "undecided", band, position
    if m.high < band[0]:
        return "sensitive", band, position
    if m.low > band[1]:
        return "edge-like", band, position
    return "undecided", band, position


def _values(rows, metric, controls):
    """``{(method, order, stage): {seed: [values]}}`` and ``{(order, stage): stage_index}``."""
    out, index = {}, {}
    for r in rows:
        if r["metric"] != metric:
            continue
        key = (r["method"], r["order"], r["stage"])
        out.setdefault(key, {}).setdefault(r.get("seed", 0), []).append(r["value"])
        index[r["order"], r["stage"]] = r["stage_index"]
    missing = [c for c in controls if not any(k[0] == c for k in out)]
    if missing:
        raise SanityError(f"no {metric} rows of the control(s) {', '.join(missing)}; run model_randomization "
                          "with tf_sanity.checks.controls.controls(images) in the method list")
    return out, index


def verdicts(rows, *, metric="spearman_abs", level=0.99, n_resamples=10_000, bootstrap_seed=0,
             edge=EDGE_DETECTOR, random=RANDOM_ATTRIBUTION):
    """One :class:`Verdict` per (method, order) of tidy `rows` (module docstring for the rule).

    Args:
      rows: rows of :func:`tf_sanity.checks.model_randomization` (or :func:`repeated`), with the
        controls among the methods; a ``seed`` column (default 0) tells randomization seeds apart.
      metric: the similarity the verdict reads.
      level, n_resamples, bootstrap_seed: of the bootstrap intervals over inputs.
      edge, random: the method names of the two controls.

    Returns:
      A list of verdicts for every method but the controls, sorted by method then order.
    """
    values, index = _values(rows, metric, (edge, random))
    summary = {k: interval(v, level=level, n_resamples=n_resamples, seed=bootstrap_seed) for k, v in values.items()}
    out = []
    for method, order in sorted({(k[0], k[1]) for k in values if k[0] not in (edge, random)}):
        stages = sorted({k[2] for k in values if k[:2] == (method, order)}, key=lambda s: index[order, s])
        numbers = []
        for stage in stages:
            if (edge, order, stage) not in summary or (random, order, stage) not in summary:
                raise SanityError(f"the controls have no {metric} rows at stage {stage!r} of {order!r}; "
                                  "run them with the same stages as the methods")
            m, e, r = summary[method, order, stage], summary[edge, order, stage], summary[random, order, stage]
            kind, band, position = classify(m, e, r)
            numbers.append(StageNumbers(stage, index[order, stage], m, e, r, band, position, kind))
        seeds = sorted({s for s in values[method, order, stages[0]]})
        out.append(_verdict(method, order, metric, numbers, tuple(seeds),
                            len(values[method, order, stages[0]][seeds[0]]), level, IGNORING_WORDS.get(edge, edge)))
    return out


def _verdict(method, order, metric, numbers, seeds, n_inputs, level, ignoring=IGNORING_WORDS[EDGE_DETECTOR]):
    edge_like = tuple(n.stage for n in numbers if n.kind == "edge-like")
    until = None
    for n in numbers:
        if n.kind != "edge-like":
            break
        until = n.stage
    decisive = numbers[-1:] if order in CASCADING else numbers
    where = f"at the fully randomized stage {numbers[-1].stage!r}" if order in CASCADING else "for every group"
    if any(n.random.high >= n.edge.low for n in decisive):
        verdict, reason = INCONCLUSIVE, "the controls' intervals overlap: the similarity does not resolve the scale"
    elif not all(np.isfinite(n.method.estimate) for n in decisive):
        constant = ", ".join(n.stage for n in decisive if not np.isfinite(n.method.estimate))
        verdict, reason = INCONCLUSIVE, (f"its maps are constant (e.g. all zero: the signal vanished) at {constant}, "
                                         "so no similarity can be computed there")
    elif all(n.kind == "sensitive" for n in decisive):
        verdict, reason = SENSITIVE, f"nearer the random control than {ignoring} {where}"
    elif all(n.kind == "edge-like" for n in decisive):
        verdict, reason = INSENSITIVE, f"as similar as {ignoring} {where}"
    elif order in CASCADING:
        verdict, reason = INCONCLUSIVE, f"its interval reaches the halfway band between the controls {where}"
    else:
        verdict, reason = INCONCLUSIVE, "not in the same class for every group: " + ", ".join(
            f"{n.stage} {n.kind}" for n in decisive)
    return Verdict(method, order, metric, verdict, reason, tuple(numbers), edge_like, until, seeds, n_inputs, level)


def repeated(run, seeds, **kwargs):
    """Rows of ``run(..., seed=s, **kwargs)`` for every randomization seed `s`, each row tagged ``seed=s``.

    E.g. ``repeated(model_randomization, (0, 1, 2), model=m, images=x, targets=y, methods=[...])``.
    """
    for s in seeds:
        for row in run(seed=s, **kwargs):
            yield dict(row, seed=s)
