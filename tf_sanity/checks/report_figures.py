"""The figures of a check report, as PNG bytes (issue 17, item 6).

* :func:`curve_figures`: each similarity over the stages of each order (one panel per order), the
  methods in colour and the two controls in grey (:func:`tf_sanity.visualize.similarity_curves`),
  for the model parameter randomization test and sMPRT (Adebayo et al. 2018, Fig. 4 and 5;
  Hedström et al. 2023, Sec. 4.1);
* :func:`grid_figures`: mask grids, method x stage, absolute and diverging, for the first inputs
  (:func:`tf_sanity.visualize.grid`; Adebayo et al. 2018, Fig. 2). Image inputs only.

Each figure is ``(file name, png bytes, caption)``.
"""

import io

import numpy as np

from tf_sanity.checks.controls import EDGE_DETECTOR, INPUT_CONTROL, RANDOM_ATTRIBUTION
from tf_sanity.checks.result import TESTS

CONTROLS = (EDGE_DETECTOR, INPUT_CONTROL, RANDOM_ATTRIBUTION)  # drawn in grey, in this order
CURVE_TESTS = ("model_randomization", "smprt")
GRID_INPUTS = 2
MAX_GRID_STAGES = 8
DPI = 100


def _png(fig):
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def _stages(result, rows, order):
    if result.stages.get(order):
        return list(result.stages[order])
    index = {r["stage"]: r["stage_index"] for r in rows if r["order"] == order}
    return sorted(index, key=index.get)


def label(method):
    """The papers' display label of a registered method or a control, else its name (a user's method)."""
    from tf_sanity.attribution.registry import LABELS
    from tf_sanity.checks import controls

    known = {**LABELS, **{m.name: m.label for m in (controls.edge_detector(), controls.input_control(),
                                                    controls.random_attribution())}}
    return known.get(method, method)


def _labels(methods):
    return {m: label(m) for m in methods}


def curve_figures(result):
    """One figure per (test, similarity): a panel per order, methods and controls over the stages."""
    import matplotlib.pyplot as plt

    from tf_sanity import visualize

    figures = []
    for test in CURVE_TESTS:
        rows = [r for r in result.rows if r.get("test", "model_randomization") == test and r.get("order")]
        for metric in sorted({r["metric"] for r in rows}, key=lambda m: (m != "spearman_abs", m)):
            mrows = [r for r in rows if r["metric"] == metric]
            orders = [o for o in ("top_down", "bottom_up", "independent") if any(r["order"] == o for r in mrows)]
            present = {r["method"] for r in mrows}
            controls = [c for c in CONTROLS if c in present]
            methods = sorted(present - set(controls))
            width = max(3.6, 0.3 * max(len(_stages(result, mrows, o)) for o in orders) + 1.2)
            fig, axes = plt.subplots(1, len(orders), figsize=(width * len(orders), 3.2), squeeze=False, sharey=True)
            for ax, order in zip(axes[0], orders):
                visualize.similarity_curves(ax, [r for r in mrows if r["order"] == order], methods,
                                            _stages(result, mrows, order), order.replace("_", " "),
                                            labels=_labels([*methods, *controls]), controls=controls)
            axes[0, 0].set_ylabel(metric, fontsize=8)
            axes[0, -1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5), frameon=False)
            name, paper = TESTS[test]
            figures.append((f"curves_{test}_{metric}.png", _png(fig),
                            f"{name} ({paper}): {metric} between the trained and the randomized model's masks"))
    return figures


def _original(masks, order, method):
    key = (order, "original", method)
    if key in masks:
        return masks[key]
    return next((v for (o, s, m), v in masks.items() if s == "original" and m == method), None)


def _grid_stages(result, order):
    """The stages of `order` that have masks, in the order's order, thinned to :data:`MAX_GRID_STAGES` (the last kept)."""
    have = [s for o, s, _ in result.masks if o == order and s != "original"]
    stages = [s for s in result.stages.get(order, ()) if s in have] or list(dict.fromkeys(have))
    if len(stages) > MAX_GRID_STAGES:
        stages = [stages[i] for i in np.linspace(0, len(stages) - 1, MAX_GRID_STAGES).round().astype(int)]
    return stages


def grid_figures(result, n_inputs=GRID_INPUTS):
    """Mask grids (method x stage) per order for the first `n_inputs` inputs: the stages in absolute values on
    the left, diverging on the right (Adebayo et al. 2018, Fig. 2)."""
    from tf_sanity import visualize

    preview = result.inputs_preview
    if preview is None or np.ndim(preview) != 4 or not result.masks:
        return []
    figures = []
    for order in [o for o in ("top_down", "bottom_up", "independent") if any(k[0] == o for k in result.masks)]:
        stages = _grid_stages(result, order)
        methods = sorted({m for o, s, m in result.masks if o == order and _original(result.masks, order, m) is not None})
        methods = [m for m in methods if m not in CONTROLS] + [c for c in CONTROLS if c in methods]
        labels = _labels(methods)
        columns = ["original", *stages]
        for k in range(min(n_inputs, len(preview))):
            row = lambda m: ([_original(result.masks, order, m)[k]]  # noqa: E731
                             + [result.masks.get((order, s, m), np.zeros_like(preview))[k] for s in stages])
            cells = [row(m) * 2 for m in methods]
            fig = visualize.grid(cells, [labels[m] for m in methods], columns * 2,
                                 mode=["abs"] * len(columns) + ["diverging"] * len(columns), image=preview[k],
                                 cell=0.8, title=f"input {k}, {order.replace('_', ' ')}: absolute (left), "
                                                 f"diverging (right)")
            figures.append((f"masks_{order}_input{k}.png", _png(fig),
                            f"Masks of input {k} over the {order.replace('_', ' ')} stages"))
    return figures
