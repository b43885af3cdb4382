"""Bootstrap intervals: the one place the checks and experiments get their uncertainty from.

Percentile bootstrap (Efron & Tibshirani 1993): resample the values with replacement
``n_resamples`` times, take the statistic of each resample, and report the percentiles of those.
Sixt et al. (2020) report medians with 10,000 resamples and the 0.5th / 99.5th percentiles
(a 99 % interval); Sundararajan & Taly (2018) a mean with its 99 % interval.
"""

import warnings

import numpy as np

STATISTICS = {"median": np.median, "mean": np.mean}


def bootstrap_interval(values, statistic="median", *, level=0.99, n_resamples=10_000, seed=0):
    """The `statistic` of `values` and its percentile-bootstrap interval at confidence `level`.

    Args:
      values: a 1-D array; NaNs and infs are dropped first.
      statistic: ``"median"`` or ``"mean"``.
      level: the interval's confidence, e.g. 0.99 for the 0.5th to 99.5th percentiles.
      n_resamples: number of bootstrap resamples.
      seed: seeds ``np.random.default_rng``.

    Returns:
      ``(estimate, low, high)`` as floats; three NaNs if no finite value is left.
    """
    if statistic not in STATISTICS:
        from tf_sanity.errors import unknown_name
        raise unknown_name("statistic", statistic, STATISTICS)
    fn = STATISTICS[statistic]
    v = np.asarray(values, np.float64).ravel()
    v = v[np.isfinite(v)]
    if not v.size:
        return float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    resampled = fn(v[rng.integers(0, v.size, (n_resamples, v.size))], axis=1)
    tail = 50 * (1 - level)
    low, high = np.percentile(resampled, [tail, 100 - tail])
    return float(fn(v)), float(low), float(high)


def bootstrap_median(values, *, n_resamples=10_000, level=0.99, seed=0):
    """Median and its bootstrap interval (Sixt et al.: 10,000 resamples, 0.5 / 99.5 percentiles)."""
    return bootstrap_interval(values, "median", level=level, n_resamples=n_resamples, seed=seed)


def mean_std(rows, value="value", by=()):
    """Groups tidy `rows` by the `by` columns; returns ``{key tuple: (mean, std, count)}`` of `value`.

    NaNs are ignored (an all-NaN group, e.g. of constant maps, gives NaN without a warning).
    """
    groups = {}
    for row in rows:
        groups.setdefault(tuple(row[k] for k in by), []).append(float(row[value]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return {k: (float(np.nanmean(v)), float(np.nanstd(v)), len(v)) for k, v in groups.items()}
