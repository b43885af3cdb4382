"""What a check run does, and what it costs before it starts (issue 17, items 1 and 9).

* :data:`PRESETS` (:class:`Preset`): ``quick`` (1 seed, sMPRT with N = 10, at most 16 inputs) and
  ``thorough`` (3 seeds, sMPRT with N = 50, at most 64 inputs); :data:`DEFAULT_METHODS`: the methods
  of Adebayo et al. (2018), Sec. 2, and SmoothGrad of the gradient. :func:`tf_sanity.checks.run` and
  ``tf-sanity check`` read both from here.
* :func:`estimate`: the pass floor of a run, i.e. the forward + backward passes it needs (one pass =
  one input row through the model and back, as :data:`tf_sanity.attribution.engine.PASSES` counts
  them) times the measured time of one pass (:func:`pass_time`). Passes per input of a method come
  from its metadata and settings (:func:`passes_per_input`); the stages from the model's
  randomization groups. The controls run no passes; metrics, bootstrap and figures are not counted
  (the run prints them separately).

Counted as :func:`tf_sanity.checks.run` runs them (``p``: a method's passes per input, ``n`` inputs;
a method that needs a spatial layer the model lacks, e.g. GradCAM on a table, is left out as the run
skips it): the trained model once; every stage of every order, per seed; sMPRT (methods without a
noise tunnel, ``N`` noisy copies, at the trained model once and at every bottom-up stage per seed; not for token
ids); the random-logit test (one explanation); input invariance (two, registered methods, where the
first layer absorbs a shift); the data randomization test (two, once). eMPRT reads the masks of the
last cascading stage (no pass); cosine similarity convergence runs one layer-wise backward pass per
input of each modified-backprop method outside the counter (not counted); IG's completeness reuses
the trained masks.
"""

import dataclasses
import time

import numpy as np


@dataclasses.dataclass(frozen=True)
class Preset:
    """How much a check does: randomization seeds, sMPRT's noisy samples, the most inputs used."""

    seeds: tuple
    smprt_n: int
    max_inputs: int


PRESETS = {"quick": Preset((0,), 10, 16), "thorough": Preset((0, 1, 2), 50, 64)}
# The methods of Adebayo et al. (2018), Sec. 2, and SmoothGrad of the gradient. Methods whose rules or layer
# needs the model does not meet (GradCAM without a [B, H, W, C] layer) are skipped with the reason.
DEFAULT_METHODS = ("gradient", "gradient_x_input", "integrated_gradients", "guided_backprop", "gradcam",
                   "guided_gradcam", "gradient_sg")
SMPRT_ORDER = "bottom_up"  # Quantus' default for sMPRT and eMPRT (its authors advise against top down)


def passes_per_input(method, settings=None):
    """Forward + backward passes one input costs `method` with `settings`: its ``passes`` (2 for Guided GradCAM),
    times IG's integration ``steps``, times the noise tunnel's ``n`` samples, times 2 for a paired pass on
    ``[x; reference]`` (``signal == "contribution"``, DeepLIFT); 1 for a method with none of these (e.g. a
    user's function)."""
    s = {**method.settings, **(settings or {})}
    passes = method.passes * (int(s.get("steps", 1)) if "steps" in method.settings else 1)
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


def pass_time(model, x, *, repeats=5):
    """``(wall, CPU, compile)`` seconds: one pass of one input (wall and process CPU time), from the fastest of
    `repeats` calls of one compiled gradient on a batch of the engine's size (the inputs tiled), after a
    first, compiling call (its wall seconds: compile). The fastest call is the least any run must spend."""
    from tf_sanity.attribution import engine

    rows = engine.DEFAULT_BATCH_SIZE
    batch = np.resize(np.asarray(x, np.float32), (rows, *np.shape(x)[1:]))
    targets = np.zeros(rows, np.int32)
    fn = engine.gradient_function(model)
    start = time.perf_counter()
    np.asarray(fn(batch, targets))
    compile_s = time.perf_counter() - start
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        np.asarray(fn(batch, targets))
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return min(walls) / rows, min(cpus) / rows, compile_s


def _has_layer(method, model, settings=None):
    """Whether `model` has the layer `method` explains at: GradCAM's default (the last 2-D convolution) must
    exist, else the run skips the method (:func:`tf_sanity.attribution.methods.last_conv_layer`)."""
    from tf_sanity.attribution.methods import last_conv_layer
    from tf_sanity.errors import SanityError

    if not method.needs_spatial_layer or (settings or {}).get("layer"):
        return True
    try:
        last_conv_layer(model)
    except SanityError:
        return False
    return True


def preset_settings(preset, seeds=None, smprt_n=None):
    """``(seeds, smprt_n, max_inputs)`` of `preset`, with explicit values winning."""
    from tf_sanity.errors import unknown_name

    if preset not in PRESETS:
        raise unknown_name("preset", preset, PRESETS)
    p = PRESETS[preset]
    return tuple(p.seeds if seeds is None else seeds), int(p.smprt_n if smprt_n is None else smprt_n), p.max_inputs


def count_passes(per_input, n, stages, seeds, smprt_n, *, smprt=None, invariance=None, data=False):
    """``{part: passes}`` of a run (module docstring).

    Args:
      per_input: method name -> passes per input (every method that runs, the user's included).
      n: inputs; stages: order -> number of stages; seeds: randomization seeds; smprt_n: sMPRT's N.
      smprt: names of the methods sMPRT smooths and its number of stages, ``(names, stages)``, or None
        (token ids); invariance: names of the methods input invariance explains, or None (not applicable).
      data: whether the data randomization test runs.
    """
    every = sum(per_input.values()) * n
    smooth = 0
    if smprt is not None:
        names, smprt_stages = smprt
        smooth = sum(per_input[m] for m in names) * n * smprt_n * (1 + len(seeds) * smprt_stages)
    return {"trained model": every,
            "model randomization": every * len(seeds) * sum(stages.values()),
            "sMPRT": smooth,
            "random logit": every,
            "input invariance": 2 * sum(per_input[m] for m in invariance) * n if invariance else 0,
            "data randomization": 2 * every if data else 0}


def estimate(model, inputs, methods, orders, preset="quick", *, seeds=None, smprt_n=None, groups=None,
             method_settings=None, extra_methods=(), random_label_model=False, input_kind=None, pass_time_s=None):
    """The pass floor of a check run (module docstring for what is counted).

    Args:
      model: the model to check (a softmax at its end is dropped, as the run does); inputs: the
        ``[n, ...]`` inputs it will explain (the first ``max_inputs`` of the preset).
      methods: method names (None: :data:`DEFAULT_METHODS`); extra_methods: the user's
        :class:`~tf_sanity.attribution.registry.Method` objects.
      orders: the randomization orders; preset, seeds, smprt_n, groups, method_settings: as
        :func:`tf_sanity.checks.run`.
      random_label_model: whether the data randomization test runs.
      input_kind: as :func:`tf_sanity.checks.run` (default: inferred).
      pass_time_s: ``(seconds per pass, compile seconds)`` if already measured (else :func:`pass_time`).

    Returns:
      :class:`Estimate`.
    """
    from tf_sanity.attribution import registry
    from tf_sanity.checks import invariance, model_views
    from tf_sanity.checks.randomization_test import stage_groups

    seeds, smprt_n, max_inputs = preset_settings(preset, seeds, smprt_n)
    x = np.asarray(inputs)[:max_inputs]
    model, _ = model_views.logits_model(model)
    kind = model_views.input_kind(model, x, input_kind)
    chosen = [registry.get(m) for m in (DEFAULT_METHODS if methods is None else methods)] + list(extra_methods)
    chosen = [m for m in chosen if _has_layer(m, model, (method_settings or {}).get(m.name))]
    per_input = {m.name: passes_per_input(m, (method_settings or {}).get(m.name)) for m in chosen}
    stages = {order: len(stage_groups(model, order, groups)) for order in orders}
    tokens = kind == "tokens"
    smprt = None if tokens else ([m.name for m in chosen if not m.noise_tunnel], stages.get(
        SMPRT_ORDER, len(stage_groups(model, SMPRT_ORDER, groups))))
    absorbed = not tokens and not invariance.why_not_absorbed(invariance.first_layer(model))
    registered = [m.name for m in chosen if m.name in registry.METHODS] if absorbed else None
    by_test = count_passes(per_input, len(x), stages, seeds, smprt_n, smprt=smprt, invariance=registered,
                           data=bool(random_label_model))
    if pass_time_s is None:
        explained, ex = (model, x) if not tokens else (model_views.split_tokens(model).rest,
                                                        model_views.split_tokens(model).embedded(x))
        wall, _, compile_s = pass_time(explained, ex)
        pass_time_s = (wall, compile_s)
    return Estimate(sum(by_test.values()), by_test, pass_time_s[0], pass_time_s[1], stages, seeds, smprt_n, len(x))
