"""The random-logit and cascading checks of "When Explanations Lie" (Sixt, Granz & Landgraf, ICML 2020;
their sanity checks, settings in ``docs/REFERENCE.md`` section 3), shared by the small-convnet experiment
(:mod:`experiments.when_explanations_lie`) and the ImageNet one (:mod:`experiments.wel_imagenet_csc`): their
tidy rows, figure panels and claims.

Not an experiment. Rows carry ``model``, ``check`` (``"random_logit"`` or ``"cascading"``), ``method``,
``image``, ``metric="ssim_flipped"`` and ``value`` (cascading rows also ``stage``, ``stage_index``);
summaries are medians with bootstrap intervals (a config's ``bootstrap`` resamples and ``seed``).
"""

import numpy as np

from experiments.common import Claim

CHECKS = ("random_logit", "cascading")
# The methods the paper found not to converge (their maps should change under both checks).
SENSITIVE = ("gradient", "deeplift")


def ssim_rows(check, model, x, targets, index, method, base, *, seed=0, batch_size=64, **settings):
    """Tidy rows of the random-logit or cascading check (:func:`tf_sanity.checks.csc.random_logit_ssim`,
    :func:`~tf_sanity.checks.csc.cascading_ssim`) of `method`, one per image (and stage), each with `base`."""
    from tf_sanity.checks import csc
    if check == "random_logit":
        values, others = csc.random_logit_ssim(model, x, targets, method, seed=seed, batch_size=batch_size,
                                               **settings)
        return [dict(base, image=int(i), target=int(t), other=int(o), metric="ssim_flipped", value=float(v))
                for i, t, o, v in zip(index, targets, others, values)]
    rows = []
    for k, (stage, values) in enumerate(csc.cascading_ssim(model, x, targets, method, seed=seed,
                                                           batch_size=batch_size, **settings)):
        rows += [dict(base, stage=stage, stage_index=k + 1, image=int(i), target=int(t), metric="ssim_flipped",
                      value=float(v)) for i, t, v in zip(index, targets, values)]
    return rows


def select(rows, **where):
    """The rows whose fields equal `where`."""
    return [r for r in rows if all(r.get(k) == v for k, v in where.items())]


def median_ci(rows, config, **where):
    """``(median, low, high)`` of the selected rows' values, 99 % bootstrap interval."""
    from tf_sanity.checks.statistics import bootstrap_median
    return bootstrap_median([r["value"] for r in select(rows, **where)], n_resamples=config.bootstrap,
                            seed=config.seed)


def style(k):
    """Line style of the `k`-th method."""
    return dict(color=f"C{k % 10}", ls="-" if k < 10 else "--", marker="os^v<>Dph*PX"[k % 12], ms=3, lw=1)


# ----------------------------------------------------------------------------- figure panels

def random_logit_panel(ax, rows, config, model_name):
    """Bars of the random-logit check's median SSIM per method of ``config.methods``, with intervals."""
    import tf_sanity
    stats = [(m, median_ci(rows, config, model=model_name, check="random_logit", method=m)) for m in config.methods]
    xs = np.arange(len(stats))
    med = np.array([s[1][0] for s in stats])
    ax.bar(xs, med, color=[style(k)["color"] for k in range(len(stats))], alpha=0.7)
    ax.errorbar(xs, med, yerr=[med - [s[1][1] for s in stats], [s[1][2] for s in stats] - med],
                fmt="none", ecolor="k", lw=1)
    ax.set_xticks(xs, [tf_sanity.LABELS[m] for m, _ in stats], rotation=90, fontsize=7)
    ax.set_ylim(0, 1.05)
    ax.set_title(f"{model_name}: true class vs random class", fontsize=8)
    ax.set_ylabel("SSIM (median, 99 % bootstrap CI)")


def cascading_panel(ax, rows, config, model_name):
    """Median SSIM to the trained model's map along the cascade, per method, with interval bands."""
    import tf_sanity
    stages = sorted({(r["stage_index"], r["stage"]) for r in select(rows, model=model_name, check="cascading")})
    xs = np.arange(len(stages) + 1)
    for k, method in enumerate(config.methods):
        stats = [median_ci(rows, config, model=model_name, check="cascading", method=method, stage=s)
                 for _, s in stages]
        if not stats:
            continue
        ax.plot(xs, [1.0] + [s[0] for s in stats], label=tf_sanity.LABELS[method], **style(k))
        ax.fill_between(xs[1:], [s[1] for s in stats], [s[2] for s in stats], color=style(k)["color"], alpha=0.12)
    ax.set_xticks(xs, ["original"] + [s for _, s in stages], rotation=45 if len(stages) < 10 else 90, fontsize=7)
    ax.set_ylim(0, 1.05)
    ax.set_title(f"{model_name}: cascading randomization", fontsize=8)
    ax.set_ylabel("SSIM to the trained model's map")


PANELS = {"random_logit": random_logit_panel, "cascading": cascading_panel}


def figure(rows, config, check, models, title=""):
    """One panel of `check` per model in a row (the cascading one with the methods' legend)."""
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(models), figsize=(4.2 * len(models) if len(models) > 1 else 7.5,
                                                      3.2 if check == "random_logit" else 3.6), squeeze=False)
    for ax, model_name in zip(axes[0], models):
        PANELS[check](ax, rows, config, model_name)
        if title:
            ax.set_title(title, fontsize=8)
    if check == "cascading":
        axes[0, -1].legend(fontsize=6, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------- claims

def ssim_claim(rows, config, model_name, check, where, converging, where_paper, text, paper="When Explanations Lie"):
    """Converging methods' median SSIM must exceed the gradient's and DeepLIFT's.

    Args:
      converging: the methods whose CSC converged on this model (the paper's argument runs from
        convergence to insensitivity), or the paper's list when CSC was not run.
      where: extra row fields to select (e.g. the cascading stage); where_paper, text: the claim.
    """
    meds = {m: median_ci(rows, config, model=model_name, check=check, method=m, **where) for m in config.methods}
    meds = {m: v for m, v in meds.items() if np.isfinite(v[0])}
    if not meds:
        return []
    conv = [v[0] for m, v in meds.items() if m in converging]
    other = [v[0] for m, v in meds.items() if m in SENSITIVE]
    passed = (min(conv) > max(other)) if (conv and other) else None
    listed = ", ".join(converging) if converging else "none (CSC reached 0.99 for no method)"
    ours = (f"{model_name}: converging here: {listed}; median SSIM [99 % CI] "
            + ", ".join(f"{m} {v[0]:.2f} [{v[1]:.2f}, {v[2]:.2f}]" for m, v in meds.items()))
    return [Claim(f"{paper}, {where_paper}", text, ours, passed, "qualitative",
                  "min over converging methods > max over gradient and DeepLIFT")]


def random_logit_claim(rows, config, model_name, converging, paper="When Explanations Lie"):
    """The random-logit check's claim (:func:`ssim_claim`)."""
    return ssim_claim(rows, config, model_name, "random_logit", {}, converging, "random-logit check",
                      "explanations of converging methods hardly change when another class is explained; "
                      "DeepLIFT's and the gradient's do", paper)


def cascading_claim(rows, config, model_name, converging, paper="When Explanations Lie"):
    """The cascading check's claim at its first stage, the logit layer (:func:`ssim_claim`)."""
    first = sorted({(r["stage_index"], r["stage"]) for r in select(rows, model=model_name, check="cascading")})
    if not first:
        return []
    return ssim_claim(rows, config, model_name, "cascading", {"stage": first[0][1]}, converging, "cascading check",
                      f"after randomizing the logit layer ({first[0][1]}) the explanations of converging methods "
                      "stay similar; DeepLIFT's and the gradient's do not", paper)
