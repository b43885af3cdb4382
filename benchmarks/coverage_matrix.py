"""The coverage matrix: every registered method on the keras.applications families (issue 15, item 6).

Each family is built as a new user would try it: ``weights=None``, ``classifier_activation=None``
(logits), at a small input (32x32, or the smallest the family accepts: InceptionV3 75, Xception 71; 64x64
for the families with squeeze-and-excitation gates, see :data:`FAMILIES`).
For each method of :data:`tf_sanity.METHODS` a cell is ``"ok"`` when

1. ``tf_sanity.explain`` returns a finite mask of the input's shape (2 images, targets 1 and 2);
2. after the call every variable of the model is bit-identical and every layer has the same instance
   attributes (``vars(layer)`` keys, and the same objects for the callable ones: no ``call`` or
   ``activation`` left swapped by a rule);
3. inside ``tf_sanity.checks.randomization.cascading`` over the model's default groups, at the fully
   randomized stage, the same call again gives a finite mask of the input's shape;

else the cell is the reason: the one-line ``SanityError`` (or another exception, marked as such) or the
failed check. The cascade must also restore every variable bit-identical when it ends (the ``cascade``
column, with the number of groups). Methods with settings run with small ones for speed
(:data:`SETTINGS`): IG ``steps=4``, SmoothGrad / VarGrad ``n=2``, DeepTaylor-bounded ``low=-1, high=1``
(the input range), PatternNet / PatternAttribution with patterns from
``tf_sanity.patterns.fit_patterns(model, images)`` on 8 random images (a refusal is that cell's reason).

Write the Markdown table of ``docs/coverage.md`` (slow: about 20 minutes on 2 CPU cores):

    python benchmarks/coverage_matrix.py --markdown docs/coverage.md [FAMILY ...]

The test suite runs a subset (``tests/test_coverage.py``) and, marked ``slow``, the whole matrix.
"""

import argparse
import datetime
import os
import re
import sys
import time
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # this checkout's tf_sanity

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import tf_sanity  # noqa: E402
from tf_sanity import SanityError  # noqa: E402
from tf_sanity.attribution.activations import ActivationPolicyWarning  # noqa: E402
from tf_sanity.attribution.graph import leaf_layers  # noqa: E402
from tf_sanity.attribution.patterns import fit_patterns  # noqa: E402
from tf_sanity.checks.randomization import cascading  # noqa: E402

# Family -> input side: 32, or the smallest input keras.applications accepts for it (InceptionV3, Xception),
# or 64 for the families with squeeze-and-excitation gates: at 32 their last blocks see 1x1 maps, where the
# gate [1, 1, C] and the signal it scales have one shape and the LRP gate rule refuses to guess which is which.
FAMILIES = {
    "VGG16": 32, "ResNet50": 32, "ResNet50V2": 32, "MobileNet": 32, "MobileNetV2": 32,
    "MobileNetV3Small": 64, "DenseNet121": 32, "EfficientNetB0": 64, "EfficientNetV2B0": 64,
    "InceptionV3": 75, "Xception": 71, "ConvNeXtTiny": 32,
}
SETTINGS = {"steps": 4, "n": 2, "low": -1.0, "high": 1.0}  # each method takes the ones it has
IMAGES, PATTERN_IMAGES, TARGETS = 2, 8, (1, 2)
OK = "ok"


def build(family, size=None):
    """``keras.applications.<family>`` with random weights and logits at a ``size`` x ``size`` input."""
    size = size or FAMILIES[family]
    return getattr(keras.applications, family)(weights=None, input_shape=(size, size, 3),
                                               classifier_activation=None)


def settings_for(method, patterns):
    """The small :data:`SETTINGS` that `method` has, and ``patterns`` for the pattern methods."""
    chosen = {k: v for k, v in SETTINGS.items() if k in method.settings}
    if "patterns" in method.settings:
        chosen["patterns"] = patterns
    return chosen


class Snapshot:
    """Every variable's value and every leaf layer's instance attributes, to compare after a call."""

    def __init__(self, model):
        self.model = model
        self.values = [np.array(v.numpy(), copy=True) for v in model.weights]
        self.attributes = [self._attributes(layer) for layer in leaf_layers(model)]

    @staticmethod
    def _attributes(layer):
        return {k: id(v) if callable(v) else None for k, v in vars(layer).items()}

    def weights_changed(self):
        """Paths of the variables that differ bit-wise from the snapshot."""
        return [v.path for v, old in zip(self.model.weights, self.values)
                if not np.array_equal(old, v.numpy(), equal_nan=True)]

    def difference(self):
        """'' when nothing changed, else what did (the first changed variable or layer)."""
        changed = self.weights_changed()
        if changed:
            return f"weights changed ({changed[0]}, {len(changed)} in all)"
        for layer, before in zip(leaf_layers(self.model), self.attributes):
            after = self._attributes(layer)
            if after != before:
                keys = sorted(set(after) ^ set(before)) or sorted(k for k in after if after[k] != before[k])
                return f"layer {layer.name!r} changed: {', '.join(keys)}"
        return ""


def _mask_problem(mask, x):
    mask = np.asarray(mask)
    if mask.shape != x.shape:
        return f"mask shape {mask.shape}, input {x.shape}"
    if not np.isfinite(mask).all():
        return "mask not finite"
    return ""


def _reason(error):
    if isinstance(error, SanityError):
        return str(error)
    return f"{type(error).__name__} (not a SanityError): {str(error).splitlines()[0] if str(error) else ''}"


def explain_cell(model, x, targets, name, settings):
    """'' if `name` explains `x` with a finite mask shaped like it, else the reason."""
    try:
        return _mask_problem(tf_sanity.explain(model, x, name, targets, **settings), x)
    except Exception as error:  # noqa: BLE001 -- any failure is a cell's reason
        return _reason(error)


def patterns_of(model, x):
    """Fitted patterns, or the refusal's reason."""
    try:
        return fit_patterns(model, x), ""
    except Exception as error:  # noqa: BLE001
        return None, _reason(error)


def coverage(family, methods=None, size=None, seed=0):
    """One row of the matrix: ``{method: "ok" or reason, "cascade": ...}`` for `family`.

    Args:
      family: a ``keras.applications`` model name (a key of :data:`FAMILIES`).
      methods: method names (default: all of :data:`tf_sanity.METHODS`).
      size: input side (default: the family's in :data:`FAMILIES`).
    """
    methods = list(methods or tf_sanity.METHODS)
    model = build(family, size)
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (IMAGES,) + tuple(model.input_shape[1:])).astype(np.float32)
    targets = np.array(TARGETS[:IMAGES], np.int32)
    snapshot = Snapshot(model)
    patterns, pattern_reason = (None, "")
    if any("patterns" in tf_sanity.METHODS[name].settings for name in methods):
        patterns, pattern_reason = patterns_of(
            model, rng.uniform(-1, 1, (PATTERN_IMAGES,) + x.shape[1:]).astype(np.float32))
    row, settings = {}, {}
    for name in methods:
        method = tf_sanity.METHODS[name]
        settings[name] = settings_for(method, patterns)
        if "patterns" in method.settings and pattern_reason:
            row[name] = f"fit_patterns: {pattern_reason}"
            continue
        row[name] = explain_cell(model, x, targets, name, settings[name]) or snapshot.difference() or OK
    row["cascade"] = _cascade(model, x, targets, row, settings, snapshot)
    return row


def _cascade(model, x, targets, row, settings, snapshot):
    """Explains with every ok method at the fully randomized stage; returns the cascade's own verdict."""
    stages = cascading(model)
    n = len(stages.names)
    randomized = []
    for k, _ in enumerate(stages, 1):
        if k < n:
            continue
        randomized = snapshot.weights_changed()
        for name, cell in row.items():
            if cell == OK:
                problem = explain_cell(model, x, targets, name, settings[name])
                row[name] = f"randomized model: {problem}" if problem else OK
    if not randomized:
        return "the cascade changed no weights"
    problem = snapshot.difference()
    return f"not restored: {problem}" if problem else f"{OK} ({n} groups)"


# ---------------------------------------------------------------------------------------------- report

INTRO = """Each `keras.applications` family is built with `weights=None` and `classifier_activation=None` (logits)
at a small input: 32x32, or the smallest the family accepts (InceptionV3 75x75, Xception 71x71), or 64x64
for the families with squeeze-and-excitation gates (MobileNetV3Small, EfficientNetB0, EfficientNetV2B0: at
32x32 their last blocks see 1x1 maps, where the gate and the signal it scales have the same shape and the
LRP family's gate rule refuses to guess which operand is the gate). For each method of `tf_sanity.METHODS`
(2 random images in [-1, 1], targets 1 and 2) a cell is **ok** when

1. `tf_sanity.explain` returns a finite mask of the input's shape;
2. afterwards every variable of the model is bit-identical, and every layer has the same instance
   attributes (`vars(layer)` keys, and the same objects for the callable ones: no `call` or `activation`
   left swapped by a rule);
3. inside `tf_sanity.checks.randomization.cascading` over the model's default groups, at the fully
   randomized stage, the same call again gives a finite mask of the input's shape.

Otherwise the cell holds the reason: the distinctive part of the one-line `SanityError` (the layer type or
activation refused, a float32 overflow; "(randomized)" when only the randomized model raised it) with a
number that points to the full message below the table. An exception other than `SanityError`, or a
failed check, would be shown the same way. The `cascade` column says that the cascade restored every variable
bit-identical when it ended, and over how many groups it ran. Settings, small for speed: IG `steps=4`,
SmoothGrad / VarGrad `n=2`, DeepTaylor-bounded `low=-1, high=1` (the input range), PatternNet /
PatternAttribution with patterns from `tf_sanity.patterns.fit_patterns(model, images)` on 8 random images.
Every other setting is the method's default (e.g. the activation policies: guided `gradient`, LRP `pass`,
DeepLIFT `rescale`; see `docs/methods.md`).

Columns: the 21 methods that are not noise-tunnel variants, one each. SmoothGrad and VarGrad only add
noise to the input and combine their base method's masks, so they use exactly its rules: the `SG / VG`
column runs all 12 variants and says `as base (12)` when each variant is ok exactly where its base method
is (else the first variant that differs)."""


def columns():
    """The matrix's columns: every base method, then one for all SmoothGrad / VarGrad variants."""
    return [n for n, m in tf_sanity.METHODS.items() if m.noise_tunnel is None] + ["SG / VG", "cascade"]


def noise_tunnel_cell(row):
    """The SG / VG column: ok when every variant's cell equals its base method's, else the first that differs."""
    variants = [(n, m.base) for n, m in tf_sanity.METHODS.items() if m.noise_tunnel and n in row]
    if not variants:
        return "-"
    for name, base in variants:
        if (row[name] == OK) != (row.get(base) == OK):
            return f"{name}: {row[name]}"
    return f"as base ({len(variants)})"


# A refusal's distinctive part, for a table cell: (pattern, template); first match wins.
SHORT = (
    (r"^randomized model: (.*)$", None),  # the reason at the randomized stage, marked as such
    (r"^fit_patterns: .*inside a nested model", "fit_patterns: nested model"),
    (r"does not support layer '[^']*' \((\w+)\)", r"refuses \1"),
    (r"uses activation '(\w+)'", r"refuses activation \1"),
    (r"not finite \(float32 overflow\)", "float32 overflow"),
)


def short(reason, width=40):
    """A reason's distinctive part for a table cell (the notes below the table hold it whole)."""
    for pattern, template in SHORT:
        match = re.search(pattern, reason)
        if match and template is None:
            return short(match[1], width) + " (randomized)"
        if match:
            return match.expand(template)
    return reason if len(reason) <= width else reason[:width - 1].rstrip() + "…"


def _cell(row, column):
    if column == "SG / VG":
        return noise_tunnel_cell(row)
    return row.get(column, "-")


def markdown(rows, seconds, command):
    """``docs/coverage.md``: the table with ok counts, then each short reason with its cells and a full message."""
    cols = columns()
    lines = [
        "# Coverage: every method on the keras.applications families", "",
        f"Generated by `{command}` on {datetime.date.today().isoformat()} "
        f"({seconds / 60:.0f} min on {os.cpu_count()} CPU cores, TensorFlow {tf.__version__}, Keras "
        f"{keras.__version__}). Do not edit by hand: rerun the command.", "",
        INTRO, "",
        "| family | ok | " + " | ".join(tf_sanity.LABELS.get(c, c) for c in cols) + " |",
        "|---|---|" + "---|" * len(cols),
    ]
    notes = {}  # short reason -> (number, full message of its first cell, [family: method])
    for family, row in rows.items():
        shown = []
        for column in cols:
            cell = _cell(row, column)
            if cell == OK or cell.startswith(("ok (", "as base", "-")):
                shown.append(cell)
                continue
            tag = short(cell)
            number, _, where = notes.setdefault(tag, (len(notes) + 1, cell, []))
            where.append(f"{family}: {tf_sanity.LABELS.get(column, column)}")
            shown.append(f"{tag} [{number}]".replace("|", "\\|"))
        methods = [n for n in tf_sanity.METHODS if n in row]
        ok = sum(row[n] == OK for n in methods)
        lines.append(f"| {family} | {ok}/{len(methods)} | " + " | ".join(shown) + " |")
    lines += ["", "## Reasons", ""]
    for tag, (number, message, where) in notes.items():
        lines.append(f"{number}. **{tag}** ({', '.join(where)}). E.g.: {message}".replace("|", "\\|"))
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("families", nargs="*", default=list(FAMILIES))
    parser.add_argument("--methods", nargs="*", help="method names (default: all registered)")
    parser.add_argument("--markdown", help="write the Markdown table to this file")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", category=ActivationPolicyWarning)  # the matrix says what ran
    print("tf_sanity from", tf_sanity.__file__, flush=True)
    start, rows = time.perf_counter(), {}
    for family in args.families:
        t0 = time.perf_counter()
        rows[family] = coverage(family, args.methods)
        ok = sum(v == OK for k, v in rows[family].items() if k != "cascade")
        print(f"{family}: {ok}/{len(rows[family]) - 1} ok, cascade {rows[family]['cascade']} "
              f"({time.perf_counter() - t0:.0f} s)", flush=True)
        for name, cell in rows[family].items():
            if cell != OK and name != "cascade":
                print(f"  {name}: {cell}", flush=True)
    if args.markdown:
        command = "python benchmarks/coverage_matrix.py --markdown " + args.markdown
        with open(args.markdown, "w") as f:
            f.write(markdown(rows, time.perf_counter() - start, command))
    return rows


if __name__ == "__main__":
    main()
