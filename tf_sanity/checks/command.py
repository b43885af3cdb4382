"""``tf-sanity check MODEL --inputs INPUTS``: the sanity checks on a saved Keras model, with a report and a
verdict per method (issue 17, item 1).

Everything the user gives is read and checked first (:mod:`tf_sanity.checks.inputs`; one line per
problem, nothing run), then the cost estimate is printed (:func:`tf_sanity.checks.plan.estimate`;
``--dry-run`` stops there), then :func:`tf_sanity.checks.suite.run` runs the tests, writing finished
units under ``--out`` so that a rerun of the same command continues, and :mod:`tf_sanity.checks.report`
writes ``report.html``, ``report.md``, ``results.csv`` and ``verdicts.json`` there. The last line is a
summary with the wall time. Exit status: 0, 1 with ``--fail-on insensitive`` when a method fails the
check, 2 for bad input (:mod:`tf_sanity.cli`).

Importing this module imports no TensorFlow (``tf-sanity --help`` stays fast).
"""

import pathlib
import time

from tf_sanity.checks.plan import DEFAULT_METHODS, PRESETS
from tf_sanity.errors import SanityError

ORDERS = ("top_down", "bottom_up", "independent")  # == tf_sanity.checks.randomization_test.ORDERS (tested)
FAIL_ON = ("insensitive",)


def _names(text):
    return [s.strip() for s in text.split(",") if s.strip()] if text else None


def _seeds(text):
    try:
        return tuple(int(s) for s in _names(text))
    except ValueError:
        raise SanityError(f"--seeds takes integers separated by commas, e.g. 0,1,2; got {text!r}") from None


def _method_settings(specs, methods):
    """``{method: {setting: value}}`` from ``--set METHOD.SETTING=VALUE`` (e.g. integrated_gradients.steps=16)."""
    import ast

    from tf_sanity.attribution.registry import METHODS
    from tf_sanity.errors import unknown_name

    out = {}
    for spec in specs or ():
        key, eq, text = spec.partition("=")
        method, dot, setting = key.strip().partition(".")
        if not (eq and dot and method and setting):
            raise SanityError(f"--set takes METHOD.SETTING=VALUE, e.g. integrated_gradients.steps=16; got {spec!r}")
        if method not in METHODS:
            raise unknown_name("method", method, METHODS)
        if methods is not None and method not in methods:
            raise SanityError(f"--set {spec}: {method} is not among the checked methods ({', '.join(methods)})")
        if setting not in METHODS[method].settings:
            raise unknown_name(f"setting of {method}", setting, METHODS[method].settings)
        try:
            value = ast.literal_eval(text.strip())
        except (ValueError, SyntaxError):
            value = text.strip()  # a word, e.g. a layer name
        _check_value(spec, value, METHODS[method].settings[setting])
        out.setdefault(method, {})[setting] = value
    return out


def _check_value(spec, value, default):
    """A --set value of the default's kind: a bool for a bool, an integer for an integer (a count, default >= 1:
    at least 1), a number for a float; settings without a typed default (None, words) take anything."""
    if isinstance(default, bool):
        ok, kind = isinstance(value, bool), "True or False"
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool) and (default < 1 or value >= 1)
        kind = "an integer" + (" of at least 1" if default >= 1 else "")
    elif isinstance(default, float):
        ok, kind = isinstance(value, (int, float)) and not isinstance(value, bool), "a number"
    else:
        return
    if not ok:
        raise SanityError(f"--set {spec}: the setting takes {kind} (default {default!r}), got {value!r}")


def _check_names(methods, orders):
    from tf_sanity.attribution.registry import METHODS
    from tf_sanity.errors import unknown_name

    for m in methods or ():
        if m not in METHODS:
            raise unknown_name("method", m, METHODS)
    for o in orders:
        if o not in ORDERS:
            raise unknown_name("order", o, ORDERS)


def _prepare(args):
    """Reads and checks everything the run needs; returns the keyword arguments of ``suite.run``."""
    from tf_sanity.checks import inputs as inputs_lib, plan

    methods, orders = _names(args.methods), _names(args.orders) or list(ORDERS)
    _check_names(methods, orders)
    seeds = _seeds(args.seeds) if args.seeds else None
    if args.smprt_n is not None and args.smprt_n < 1:
        raise SanityError(f"--smprt-n must be at least 1, got {args.smprt_n}")
    settings = _method_settings(args.set, methods)
    _, _, max_inputs = plan.preset_settings(args.preset, seeds)
    if args.limit is not None and args.limit > max_inputs:  # run() uses at most the preset's inputs
        raise SanityError(f"--limit {args.limit} is more than the {args.preset} preset's {max_inputs} inputs; "
                          f"pass --limit {max_inputs} or less, or a larger --preset")
    extra = [inputs_lib.user_method(spec) for spec in args.method or ()]
    train_fn = inputs_lib.load_function(args.train, "training function") if args.train else None
    model = inputs_lib.load_model(args.model, trust=args.trust_model)
    random_label_model = (inputs_lib.load_model(args.random_label_model, trust=args.trust_model)
                          if args.random_label_model else None)
    data = inputs_lib.load_inputs(args.inputs, preprocess=args.preprocess, model=model,
                                  limit=max_inputs if args.limit is None else args.limit)
    targets = inputs_lib.load_targets(args.targets, len(data.x), model.output_shape[-1], total=data.total)
    return data, dict(model=model, inputs=data.x, targets=targets, methods=methods, orders=tuple(orders),
                      preset=args.preset, seeds=seeds, smprt_n=args.smprt_n, method_settings=settings,
                      extra_methods=tuple(extra),
                      train_fn=train_fn, random_label_model=random_label_model, input_kind=data.kind,
                      policy=args.policy)


def _summary(result, wall_s, out):
    checked = len({v.method for v in result.verdicts})
    failing = result.failing()
    said = f"{len(failing)} of {checked} methods fail the check ({', '.join(failing)})" if failing else (
        f"no method fails the check ({checked} checked)")
    skipped = f", {len(result.skipped)} skipped" if result.skipped else ""
    return f"done in {wall_s:.1f} s: {said}{skipped}; report: {pathlib.Path(out) / 'report.html'}"


def run_check(args):
    """``tf-sanity check``; returns the exit status."""
    from tf_sanity.checks import plan, report

    start = time.perf_counter()
    data, kwargs = _prepare(args)
    out = pathlib.Path(args.out or pathlib.Path("tf_sanity_check") / pathlib.Path(args.model).stem)
    print(f"checking {args.model} on {len(data.x)} {data.kind} inputs of {data.source}", flush=True)
    cost = plan.estimate(kwargs["model"], data.x, kwargs["methods"], kwargs["orders"], args.preset,
                         seeds=kwargs["seeds"], smprt_n=kwargs["smprt_n"], method_settings=kwargs["method_settings"],
                         extra_methods=kwargs["extra_methods"],
                         random_label_model=kwargs["random_label_model"] is not None or kwargs["train_fn"] is not None,
                         input_kind=data.kind)
    print(cost.describe(), flush=True)
    if args.dry_run:
        return 0
    from tf_sanity.checks import suite  # the core (issue 17, items 2-4)

    result = suite.run(**kwargs, out=out, progress=not args.quiet)
    result.timings.setdefault("estimate_s", cost.seconds)
    report.write_all(result, out)
    print(_summary(result, time.perf_counter() - start, out), flush=True)
    return 1 if args.fail_on == "insensitive" and result.failing() else 0


def add_parser(subparsers):
    """Registers ``tf-sanity check``."""
    p = subparsers.add_parser(
        "check", help="run the sanity checks on your own Keras model and write a report with a verdict per method",
        description="Run the model parameter randomization test (Adebayo et al. 2018; top down, bottom up, "
                    "independent) with its controls and verdicts, sMPRT / eMPRT (Hedstrom et al. 2023), the random-"
                    "logit test and cosine similarity convergence (Sixt et al. 2020), input invariance and IG's "
                    "completeness on a saved Keras model, and write report.html, report.md, results.csv and "
                    "verdicts.json. A rerun of an interrupted command continues where it stopped.")
    p.add_argument("model", help="a .keras or .h5 model file (a model ending in softmax is explained on its logits)")
    p.add_argument("--inputs", required=True,
                   help="a folder of images, an .npy / .npz array, or tfds:NAME[:split] (mnist, fashion_mnist, "
                        "cifar10 from $TF_SANITY_DATA_DIR)")
    p.add_argument("--targets", default="predicted",
                   help="'predicted' (each model state's top class; default) or an .npy of one label per input")
    p.add_argument("--methods", help=f"methods to check, comma-separated (default: {', '.join(DEFAULT_METHODS)})")
    p.add_argument("--method", action="append", metavar="MODULE:FUNCTION",
                   help="also check your own method f(model, x, targets) -> mask shaped like x (repeatable)")
    p.add_argument("--orders", help=f"randomization orders, comma-separated (default: {','.join(ORDERS)})")
    p.add_argument("--preset", choices=tuple(PRESETS), default="quick", help="; ".join(
        f"{k}: {len(v.seeds)} seed(s), sMPRT N = {v.smprt_n}, at most {v.max_inputs} inputs" for k, v in PRESETS.items()))
    p.add_argument("--seeds", help="randomization seeds, comma-separated (default: the preset's)")
    p.add_argument("--smprt-n", type=int, metavar="N",
                   help="noisy copies per explanation in sMPRT (default: the preset's); sMPRT costs N passes per "
                        "input and method at the trained model and at every bottom-up stage, so a small N keeps a big "
                        "model's check short (the report records it)")
    p.add_argument("--set", action="append", metavar="METHOD.SETTING=VALUE",
                   help="a method's setting, e.g. integrated_gradients.steps=16 (repeatable; default: the method's "
                        "own defaults, e.g. 50 IG steps); the report's settings record it")
    p.add_argument("--policy", choices=("paper", "original_code"), default="paper",
                   help="re-initialization of the randomization tests: paper (truncated normal, std 0.01, BatchNorm "
                        "statistics included; Adebayo et al. 2018, Sec. 3) or original_code (each layer's own "
                        "initializer, trainable variables only); a deep network can lose its whole signal under paper")
    p.add_argument("--limit", type=int, help="inputs to use, at most the preset's maximum (default: that maximum)")
    p.add_argument("--preprocess",
                   help="for image inputs read as raw 0..255 values: scale01, minus1to1, caffe, torch, or "
                        "module:function (default: none, the model holds its own preprocessing)")
    p.add_argument("--train", metavar="MODULE:FUNCTION",
                   help="f(images, labels) -> model trained like yours, for the data randomization test")
    p.add_argument("--random-label-model", help="a .keras / .h5 model trained on permuted labels (data randomization)")
    p.add_argument("--out", help="output folder (default: tf_sanity_check/<model name>); a rerun continues there")
    p.add_argument("--dry-run", action="store_true", help="print the cost estimate and stop")
    p.add_argument("--fail-on", choices=FAIL_ON, help="exit 1 when a method fails the check (for CI)")
    p.add_argument("--trust-model", action="store_true",
                   help="load model files that contain Python code (Keras safe_mode off); only for files you trust")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run_check)


__all__ = ["add_parser", "run_check"]
