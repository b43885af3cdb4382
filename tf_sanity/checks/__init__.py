"""The sanity checks: model and data randomization, similarity metrics, statistics, and cosine
similarity convergence (Adebayo et al. 2018; Sundararajan & Taly 2018; Sixt et al. 2020).
"""

from tf_sanity.checks import csc, metrics, randomization, statistics
from tf_sanity.checks.randomization_test import (ORDERS, SIMILARITIES, data_randomization, model_randomization,
                                                 stage_groups)

__all__ = ["model_randomization", "data_randomization", "ORDERS", "SIMILARITIES", "stage_groups", "csc", "metrics",
           "randomization", "statistics"]
