"""What a ``tf-sanity check`` run does, and what it costs before it starts (issue 17, items 1 and 9).

* :data:`PRESETS`: ``quick`` (1 seed, sMPRT with N = 10, at most 16 inputs) and ``thorough``
  (3 seeds, sMPRT with N = 50, at most 64 inputs); :data:`DEFAULT_METHODS`: the six methods of
  Adebayo et al. (2018), Sec. 2.
* :func:`estimate`: the pass floor of a run, i.e. the forward + backward passes it needs (one pass =
  one input row through the model and back) times the measured time of one pass. Passes per input of
  a method come from its metadata and settings (:func:`passes_per_input`); the stages from the
  model's randomization groups. The controls run no passes; metrics, bootstrap and figures are not
  counted (the run prints them separately).

Counted per seed, for every method (settings ``s``, ``p = passes_per_input(s)`` passes per input):
the trained model once, every stage of every order, the random-logit and input-invariance checks
(one explanation each), sMPRT (``N`` explanations at the trained model and at every bottom-up stage,
Quantus' order), eMPRT (the fully randomized model), and the random-label model if given.
"""

import dataclasses
import time

import numpy as np

PRESETS = {
    "quick": {"seeds": (0,), "smprt_n": 10, "max_inputs": 16},
    "thorough": {"seeds": (0, 1, 2), "smprt_n": 50, "max_inputs": 64},
}
DEFAULT_METHODS = ("gradient", "gradient_x_input", "guided_backprop", "integrated_gradients", "gradcam",
                   "guided_gradcam")
SMPRT_ORDER = "bottom_up"


def passes_per_input(method, settings=None):
    """Forward + backward passes one input costs `method` with `settings`: IG's integration ``steps``,
    times the noise tunnel's ``n`` samples, times 2 for a paired pass on ``[x; reference]``
    (``signal == "contribution"``, DeepLIFT); 1 for a method with none of these (e.g. a user's function)."""
    s = {**method.settings, **(settings or {})}
    passes = int(s.get("steps", 1)) if "steps" in method.settings else 1
    if method.noise_tunnel:
        passes *= int(s.get("n", 1))
    if method.signal == "contribution":
        passes *= 2
    return passes


@dataclasses.dataclass(frozen=True)
class Estimate:
    """The pass floor of a run.

    Attributes:
      passes: total forward + backward passes; by_test: the same per part of the run.
      pass_time_s: measured seconds of one pass (batched as the engine batches); compile_s: the
        one-off trace and compile before it.
      stages: order -> number of stages; seeds, smprt_n, n_inputs: as the run will use them.
    """

    passes: int
    by_test: dict
    pass_time_s: float
    compile_s: float
    stages: dict
    seeds: tuple
    smprt_n: int
    n_inputs: int

    @property
    def seconds(self):
        return self.passes * self.pass_time_s

    def describe(self):
        """One line: passes x pass time = seconds, and the parts."""
        parts = ", ".join(f"{k} {v:,}" for k, v in self.by_test.items() if v)
        return (f"estimate: {self.passes:,} passes x {self.pass_time_s * 1e3:.3g} ms = {_duration(self.seconds)} "
                f"(+ metrics, bootstrap, figures; {self.n_inputs} inputs, seeds {list(self.seeds)}, "
                f"stages {self.stages}; {parts})")


def _duration(seconds):
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def time_pass(model, x, *, repeats=3):
    """``(seconds per pass, compile seconds)``: one compiled gradient of a batch of the engine's size
    (the inputs tiled), the median of `repeats` calls after a first, compiling call."""
    from tf_sanity.attribution import engine

    rows = engine.DEFAULT_BATCH_SIZE
    batch = np.resize(np.asarray(x, np.float32), (rows, *np.shape(x)[1:]))
    targets = np.zeros(rows, np.int32)
    fn = engine.gradient_function(model)
    start = time.perf_counter()
    np.asarray(fn(batch, targets))
    compile_s = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        np.asarray(fn(batch, targets))
        times.append(time.perf_counter() - start)
    return float(np.median(times)) / rows, compile_s


def preset_settings(preset, seeds=None, smprt_n=None):
    """``(seeds, smprt_n, max_inputs)`` of `preset`, with explicit values winning."""
    from tf_sanity.errors import unknown_name

    if preset not in PRESETS:
        raise unknown_name("preset", preset, PRESETS)
    p = PRESETS[preset]
    return tuple(seeds if seeds is not None else p["seeds"]), int(smprt_n or p["smprt_n"]), p["max_inputs"]


def estimate(model, inputs, methods, orders, preset="quick", *, seeds=None, smprt_n=None, groups=None,
             method_settings=None, extra_methods=(), random_label_model=False, pass_time=None):
    """The pass floor of a check run (module docstring for what is counted).

    Args:
      model: the model to check; inputs: the ``[n, ...]`` inputs it will explain.
      methods: method names (None: :data:`DEFAULT_METHODS`); extra_methods: the user's
        :class:`~tf_sanity.attribution.registry.Method` objects.
      orders: the randomization orders; preset, seeds, smprt_n: as ``tf_sanity.checks.run``.
      groups: the randomization groups (default: the model's, :mod:`tf_sanity.checks.groups`).
      method_settings: method -> settings.
      random_label_model: whether the data randomization test runs (one more explanation).
      pass_time: ``(seconds per pass, compile seconds)`` if already measured (else :func:`time_pass`).

    Returns:
      :class:`Estimate`.
    """
    from tf_sanity.attribution import registry
    from tf_sanity.checks import randomization

    seeds, smprt_n, _ = preset_settings(preset, seeds, smprt_n)
    chosen = [registry.get(m) for m in (DEFAULT_METHODS if methods is None else methods)] + list(extra_methods)
    n = len(inputs)
    n_groups = len(randomization.resolve_groups(model, groups))
    stages = {order: n_groups for order in orders}
    per_input = sum(passes_per_input(m, (method_settings or {}).get(m.name)) for m in chosen)
    explanations = {
        "model randomization": 1 + sum(stages.values()),
        "sMPRT": smprt_n * (1 + n_groups),
        "eMPRT": 1,
        "random logit + input invariance": 2,
        "data randomization": int(bool(random_label_model)),
    }
    by_test = {k: v * per_input * n * len(seeds) for k, v in explanations.items()}
    by_test["data randomization"] //= len(seeds)  # the random-label model is not randomized per seed
    seconds, compile_s = pass_time if pass_time is not None else time_pass(model, inputs)
    return Estimate(sum(by_test.values()), by_test, seconds, compile_s, stages, seeds, smprt_n, n)
