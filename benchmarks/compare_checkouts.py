"""Runs one experiment's quick preset with the code of a given checkout, to compare two versions' CSVs.

    python benchmarks/compare_checkouts.py CHECKOUT OUT EXPERIMENT     # e.g. a worktree of an older commit
    cmp OUT_A/results/<stem>.csv OUT_B/results/<stem>.csv

``sc_cascading_mnist`` runs on the MNIST CNN only (it is cached after one training). Used for the layout
reorganization of 0.2.0: the code before and after gave byte-identical CSVs for ``sc_fig7_conv_sumpool``,
``sc_linear_model`` and ``sc_cascading_mnist`` on one machine (CHANGELOG, docs/reproduction.md).
"""

import dataclasses
import importlib
import sys

if __name__ == "__main__":
    checkout, out, name = sys.argv[1:4]
    sys.path.insert(0, checkout)
    import tf_sanity
    from experiments import common
    print("tf_sanity from", tf_sanity.__file__)
    module = importlib.import_module(f"experiments.{name}")
    config = module.PRESETS["quick"]
    if name == "sc_cascading_mnist":
        config = dataclasses.replace(config, models=("mnist-cnn",))
    common.run(module, "quick", out, config=config, progress=False)
