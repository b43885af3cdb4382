"""Sundararajan & Taly (2018), Fig. 3 (Sec. 3.2): signed IG visualizations along the cascade.

IG of the MNIST CNN for a few test images, as the network is randomized from the output layer
down (paper policy). Positive and negative attributions are drawn in separate colours, each
min-max scaled; under each map, the sum of the raw IG, which approximates F(x) - F(baseline)
(completeness), with its completeness error. The true label is explained throughout.
"""

import dataclasses

import matplotlib.pyplot as plt
import numpy as np

import tf_sanity
from experiments import common
from experiments.common import Claim
from tf_sanity import visualize
from tf_sanity.attribution import methods
from tf_sanity.checks import randomization

NAME = "st_fig3_signed_ig"
TITLE = "Sundararajan & Taly Fig. 3: signed two-colour IG maps along the cascade, with IG sums"
ARRAYS = True


@dataclasses.dataclass(frozen=True)
class Config:
    model: str = "mnist-cnn"
    images: int = 4
    ig_steps: int = 100
    policy: str = "paper"
    profile: str = "paper"
    seed: int = 0
    data_dir: str = ""


PRESETS = {"quick": Config(profile="paper_quick"), "paper": Config(images=6, ig_steps=300)}



def requires(config):
    common.require_datasets(config, (config.model,))


def units(config):
    return ["cascade"]


def compute(config, unit, context):
    from tf_sanity.models import datasets, zoo
    data = datasets.load(config.model.rsplit("-", 1)[0], common.data_dir(config))
    x, targets = data.x_test[:config.images], data.y_test[:config.images]
    model = zoo.trained_model(config.model, profile=config.profile, seed=config.seed, data_dir=common.data_dir(config))
    rows, arrays = [], {"x": x}

    def explain(stage, m):
        ig = tf_sanity.explain(m, x, "integrated_gradients", targets, steps=config.ig_steps, integration="midpoint")
        error = methods.completeness_error(m, x, ig, targets)
        arrays[stage] = ig
        for i in range(len(x)):
            total = float(ig[i].sum())
            rows.append(dict(stage=stage, image=i, label=int(targets[i]), ig_sum=total,
                             f_gap=total - float(error[i]), completeness_error=float(error[i])))

    explain("original", model)
    for stage, randomized in randomization.cascading(model, policy=config.policy, seed=config.seed):
        explain(stage, randomized)
    return rows, arrays


def plot(rows, config, arrays):
    a = arrays.get("cascade")
    if a is None:
        return {}
    stages = [s for s in ("original", "output", "fc1", "conv2", "conv1") if s in a]
    sums = {(r["stage"], r["image"]): r["ig_sum"] for r in rows}
    n = len(a["x"])
    fig, axes = plt.subplots(n, len(stages) + 1, figsize=(1.25 * (len(stages) + 1), 1.45 * n + 0.3), squeeze=False)
    for i in range(n):
        axes[i, 0].imshow(a["x"][i, ..., 0], cmap="gray")
        axes[i, 0].axis("off")
        for c, stage in enumerate(stages):
            ax = axes[i, c + 1]
            visualize.show(ax, a[stage][i], "diverging", stage if i == 0 else None)
            ax.set_xlabel(f"sum {sums[(stage, i)]:.2f}", fontsize=6)
    fig.suptitle("IG, red = positive, blue = negative; sum of IG under each map", fontsize=8)
    fig.tight_layout()
    return {"": fig}


def claims(rows, config):
    if not rows:
        return []
    errors = np.array([abs(r["completeness_error"]) / max(abs(r["f_gap"]), 1e-6) for r in rows])
    # 5 % of the gap, with an absolute floor for the near-zero gaps of random networks (float32 Riemann sums)
    within = all(abs(r["completeness_error"]) <= 0.05 * abs(r["f_gap"]) + 1e-3 for r in rows)
    orig = [r["ig_sum"] for r in rows if r["stage"] == "original"]
    rand = [r["ig_sum"] for r in rows if r["stage"] == "conv1"]
    return [
        Claim("Sundararajan & Taly, Sec. 3.2", "the sum of IG approximates F(x) - F(baseline) (completeness) for the "
              "trained and every randomized network", f"median relative error {np.median(errors):.4f}, max "
              f"{errors.max():.4f} (at a gap of {abs(rows[int(errors.argmax())]['f_gap']):.4f})", within, "",
              "every image: |error| <= 5 % of |gap| + 0.001"),
        Claim("Sundararajan & Taly, Fig. 3", "the IG sums change as the network is randomized (the trained network's "
              "logit gaps are large, the random network's near zero)", f"mean |sum| trained {np.mean(np.abs(orig)):.3f}, "
              f"fully random {np.mean(np.abs(rand)):.4f}", np.mean(np.abs(rand)) < 0.1 * np.mean(np.abs(orig)), "",
              "random < 10 % of trained"),
    ]
