"""tf_sanity.checks.summaries: the words of a summary match its result, also where the numbers do not decide."""

import numpy as np

from tf_sanity.checks import summaries


def _csc_rows(value):
    return [dict(test="csc", method="guided_backprop", metric="median_abs_cos", value=v, layer=name, depth=depth,
                 baseline=0.1) for v, name, depth in ((0.95, "fc", 2), (value, "conv1", 1))]


def test_csc_says_converged_not_converged_or_no_cosine():
    for value, passed, says in ((0.98, False, "converges to rank one"), (0.2, True, "has not converged"),
                                (np.nan, None, "no cosine")):
        (s,) = summaries.csc(_csc_rows(value))
        assert s["passed"] is passed and says in s["note"] and "'conv1'" in s["note"], s


def test_completeness_without_a_score_gap_is_undecided_in_words():
    rows = [dict(test="completeness", method="integrated_gradients", metric="relative_completeness_error", image=i,
                 seed=0, value=v) for i, v in enumerate([0.01, 0.02, 0.03])]
    (s,) = summaries.completeness(rows)
    assert s["passed"] is True and "within 5 %" in s["note"]
    (s,) = summaries.completeness([dict(r, value=np.nan) for r in rows])  # F(x) == F(baseline) everywhere
    assert s["passed"] is None and "within" not in s["note"] and "over" not in s["note"]
