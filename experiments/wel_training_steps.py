"""When Explanations Lie: does CSC convergence depend on training? (issue 19)

Collects the committed ``when_explanations_lie`` runs of the small convnet trained for different numbers of
steps (``--set sixt_profile=cpu|3k|10k|30k``, :data:`tf_sanity.models.sixt_models.PROFILES`) under each CSC
convention (``--set convention=tf_sanity|authors_code``, :data:`experiments.when_explanations_lie.CONVENTIONS`)
and draws median |cos| at conv1 against training steps, one line per method, one panel per convention and
data set; writes the same numbers as markdown tables to ``<out>/studies/`` (``REPORT.md`` includes them) and
prints them. Run after the runs it reads::

    python -m experiments.wel_training_steps [--out figures]
"""

import argparse
import itertools
import json
import pathlib

import numpy as np

from experiments import common
from experiments import when_explanations_lie as wel
from experiments import wel_checks

LAYER = "conv1"
STEM = "when_explanations_lie-steps"


def collect(out="figures", preset="quick"):
    """``{(convention, model): {steps: {method: median |cos| at conv1}}}`` and the models' accuracies
    ``{(model, steps): test accuracy}`` from the runs in `out`."""
    table, accuracy = {}, {}
    for path in sorted((pathlib.Path(out) / "claims").glob(f"{wel.NAME}-{preset}*.json")):
        data = json.loads(path.read_text())
        results = pathlib.Path(out) / "results" / f"{path.stem}.csv"
        # only the runs that name their training profile (--set sixt_profile=...): one model per step count
        if data["experiment"] != wel.NAME or "sixt_profile" not in data.get("options", {}).get("set", {}) \
                or not results.is_file():
            continue
        convention = data["config"]["convention"]
        rows = common.read_csv(results)
        steps = {r["model"]: r["steps"] for r in rows if r["check"] == "model"}
        for r in rows:
            if r["check"] == "model" and r["model"].startswith("sixt-"):
                accuracy[r["model"], r["steps"]] = r["value"]
            if r["check"] == "csc" and r["layer"] == LAYER and r["model"].startswith("sixt-"):
                table.setdefault((convention, r["model"]), {}).setdefault(steps[r["model"]], {})[r["method"]] = r["value"]
    return table, accuracy


def plot(table, methods=wel.METHODS):
    import matplotlib.pyplot as plt
    import tf_sanity
    conventions, models = sorted({c for c, _ in table}), sorted({m for _, m in table})
    fig, axes = plt.subplots(len(conventions), len(models), figsize=(3.8 * len(models), 3.2 * len(conventions)),
                             squeeze=False, sharey=True)
    for (i, convention), (j, model) in itertools.product(enumerate(conventions), enumerate(models)):
        ax, key = axes[i, j], (convention, model)
        if key not in table:
            ax.set_axis_off()
            continue
        steps = sorted(table[key])
        for k, method in enumerate(methods):
            y = [max(1 - table[key][s].get(method, np.nan), 1e-6) for s in steps]
            ax.plot(steps, y, label=tf_sanity.LABELS[method], **wel_checks.style(k))
        ax.axhline(0.01, color="k", ls=":", lw=1)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks(steps, [f"{s:,}" for s in steps], fontsize=7)
        ax.minorticks_off()
        ax.set_xlabel("training steps (batch 32)")
        ax.set_title(f"{key[1]}, convention {key[0]}", fontsize=8)
    for row in axes:
        row[0].set_ylabel(f"1 - median |cos| at {LAYER}\n(dotted: 0.99)")
    axes[0, -1].legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    return fig


def markdown(table, accuracy, methods=wel.METHODS):
    """One table per convention and model: methods x steps, median |cos| at conv1 (bold: > 0.99)."""
    lines = []
    for key in sorted(table):
        steps = sorted(table[key])
        acc = ", ".join(f"{s:,}: {100 * accuracy.get((key[1], s), np.nan):.2f} %" for s in steps)
        lines += [f"{key[1]}, convention `{key[0]}` (test accuracy {acc})", "",
                  "| method | " + " | ".join(f"{s:,} steps" for s in steps) + " |",
                  "|---|" + "---:|" * len(steps)]
        for method in methods:
            cells = [table[key][s].get(method, np.nan) for s in steps]
            lines.append(f"| {method} | " + " | ".join(f"**{v:.4f}**" if v > 0.99 else f"{v:.4f}" for v in cells)
                         + " |")
        lines.append("")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="figures")
    args = parser.parse_args(argv)
    table, accuracy = collect(args.out)
    if not table:
        raise SystemExit(f"no {wel.NAME} runs of the small convnet in {args.out}")
    fig = plot(table)
    for ext in ("png", "pdf"):
        fig.savefig(pathlib.Path(args.out) / f"{STEM}.{ext}", dpi=150, bbox_inches="tight",
                    metadata={"CreationDate": None} if ext == "pdf" else None)
    text = markdown(table, accuracy)
    common.atomic_write(pathlib.Path(args.out) / "studies" / f"{STEM}.md",
                        "## When Explanations Lie: median |cos| at conv1 against training steps (small convnet)\n\n"
                        f"`python -m experiments.wel_training_steps`; figure `{STEM}.png`. Bold: > 0.99.\n\n" + text)
    print(text)


if __name__ == "__main__":
    main()
