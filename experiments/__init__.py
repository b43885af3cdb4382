"""One module per paper figure; ``tf-sanity reproduce <name>`` runs one (see :mod:`experiments.common`).

:data:`EXPERIMENTS` maps each experiment's name to its module path, in the order ``--list`` shows.
Modules are imported only when used.
"""

import importlib

EXPERIMENTS = {
    "sc_models": "experiments.sc_models",
    "st_fig1_shared_zeros": "experiments.st_fig1_shared_zeros",
    "sc_cascading_mnist": "experiments.sc_cascading_mnist",
    "st_nz_plateau": "experiments.st_nz_plateau",
    "sc_fig6_data_randomization": "experiments.sc_fig6_data_randomization",
    "st_fig3_signed_ig": "experiments.st_fig3_signed_ig",
    "sc_fig7_conv_sumpool": "experiments.sc_fig7_conv_sumpool",
    "sc_fig19_input_times_random": "experiments.sc_fig19_input_times_random",
    "sc_linear_model": "experiments.sc_linear_model",
    "sc_calibration": "experiments.sc_calibration",
    "sc_fig1_edge_detectors": "experiments.sc_fig1_edge_detectors",
    "sc_imagenet_randomization": "experiments.sc_imagenet_randomization",
    "when_explanations_lie": "experiments.when_explanations_lie",
    "wel_imagenet_csc": "experiments.wel_imagenet_csc",
}


def get(name):
    """The experiment module called `name`."""
    from tf_sanity.errors import unknown_name
    if name not in EXPERIMENTS:
        raise unknown_name("experiment", name, EXPERIMENTS)
    return importlib.import_module(EXPERIMENTS[name])
