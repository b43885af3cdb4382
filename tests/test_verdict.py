"""The verdict of a randomization test, placed between the two controls (issue 17, item 4)."""

import numpy as np
import pytest

from tf_sanity import SanityError, checks
from tf_sanity.checks import controls, verdict
from tests.helpers import images, small_cnn

EDGE, RANDOM = controls.EDGE_DETECTOR, controls.RANDOM_ATTRIBUTION


@pytest.fixture(scope="module")
def cnn():
    return small_cnn(), images(8), np.arange(8) % 10


def _rows(method, order, stage_values, seeds=(0,), n=12, noise=0.02, seed=0):
    """Synthetic rows: at stage k the method's values are stage_values[k] + small noise."""
    rng = np.random.default_rng(seed)
    out = []
    for s in seeds:
        for k, centre in enumerate(stage_values):
            for i in range(n):
                out.append(dict(order=order, stage=f"s{k + 1}", stage_index=k + 1, method=method, seed=s,
                                metric="spearman_abs", image=i, value=float(centre + noise * rng.normal())))
    return out


def _controls(order="top_down", stages=3, seeds=(0,)):
    return _rows(EDGE, order, [1.0] * stages, seeds, noise=0.0) + \
        _rows(RANDOM, order, [0.0] * stages, seeds, noise=0.03, seed=9)


def test_verdicts_on_synthetic_rows():
    rows = _controls() + _rows("sens", "top_down", [0.3, 0.2, 0.05]) + _rows("flat", "top_down", [0.95, 0.9, 0.85]) \
        + _rows("mid", "top_down", [0.6, 0.5, 0.5], noise=0.3) + _rows("top", "top_down", [0.9, 0.8, 0.1])
    got = {v.method: v for v in verdict.verdicts(rows)}
    assert set(got) == {"sens", "flat", "mid", "top"}
    assert got["sens"].verdict == verdict.SENSITIVE and got["sens"].edge_like_until is None
    assert got["flat"].verdict == verdict.INSENSITIVE and got["flat"].edge_like_until == "s3"
    assert got["mid"].verdict == verdict.INCONCLUSIVE
    assert got["top"].verdict == verdict.SENSITIVE
    assert got["top"].edge_like_stages == ("s1", "s2") and got["top"].edge_like_until == "s2"
    last = got["sens"].stages[-1]
    assert last.method.high < last.band[0] and last.edge.low == pytest.approx(1.0)
    assert got["sens"].n_inputs == 12 and got["sens"].seeds == (0,)
    assert 0 < last.position < 0.2


def test_constant_maps_at_the_last_stage_are_inconclusive_and_said_so():
    import warnings
    rows = _controls() + _rows("vanished", "top_down", [0.9, 0.5, float("nan")])  # all-zero maps: NaN Spearman
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        (v,) = verdict.verdicts(rows)
    assert v.verdict == verdict.INCONCLUSIVE and "constant" in v.reason and "s3" in v.reason


def test_the_whole_interval_decides_not_the_estimate():
    rows = _controls() + _rows("low", "top_down", [0.35] * 3, noise=0.3) + _rows("high", "top_down", [0.65] * 3,
                                                                                 noise=0.3)
    got = {v.method: v for v in verdict.verdicts(rows)}
    for name, side in (("low", -1), ("high", 1)):
        last = got[name].stages[-1]
        assert side * (last.method.estimate - np.mean(last.band)) > 0  # the estimate alone would decide
        assert got[name].verdict == verdict.INCONCLUSIVE and last.kind == "undecided"


def test_a_method_sensitive_for_one_seed_only_is_not_called_sensitive():
    seeds = (0, 1)
    rows = _controls(seeds=seeds) + _rows("m", "top_down", [0.1, 0.1, 0.1], seeds=(0,)) \
        + _rows("m", "top_down", [0.9, 0.9, 0.9], seeds=(1,))
    (v,) = verdict.verdicts(rows)
    assert v.verdict == verdict.INCONCLUSIVE and v.seeds == seeds
    assert v.stages[-1].method.low < 0.2 and v.stages[-1].method.high > 0.8  # envelope over seeds


def test_independent_order_and_unresolved_controls():
    rows = _controls("independent") + _rows("all", "independent", [0.1, 0.05, 0.1]) \
        + _rows("some", "independent", [0.95, 0.1, 0.1])
    got = {v.method: v for v in verdict.verdicts(rows)}
    assert got["all"].verdict == verdict.SENSITIVE
    assert got["some"].verdict == verdict.INCONCLUSIVE and "s1 edge-like" in got["some"].reason
    overlapping = _rows(EDGE, "top_down", [0.5] * 3, noise=0.2) + _rows(RANDOM, "top_down", [0.4] * 3, noise=0.2) \
        + _rows("m", "top_down", [0.0] * 3)
    (v,) = verdict.verdicts(overlapping)
    assert v.verdict == verdict.INCONCLUSIVE and "overlap" in v.reason
    with pytest.raises(SanityError, match="controls"):
        verdict.verdicts(_rows("m", "top_down", [0.1]))


def test_gradient_on_the_small_cnn_is_sensitive_top_down(cnn):
    model, x, t = cnn
    methods = ["gradient", *controls.controls(x)]
    originals = checks.explain_methods(model, x, t, methods)
    rows = list(verdict.repeated(checks.model_randomization, (0, 1), model=model, images=x, targets=t,
                                 methods=methods, order="top_down", similarities=("spearman_abs",),
                                 originals=originals))
    (v,) = verdict.verdicts(rows)
    assert (v.method, v.order, v.verdict) == ("gradient", "top_down", verdict.SENSITIVE)
    assert [n.stage for n in v.stages] == ["output", "fc1", "conv2", "conv1"] and v.seeds == (0, 1)
    assert v.edge_like_stages == ()
