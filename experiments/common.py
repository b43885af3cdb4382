"""What every experiment shares: presets, resumable unit-by-unit results, figures, claims.

An experiment is a module with:

* ``NAME``, ``TITLE`` (the paper figure it reproduces) and ``PRESETS = {"quick": Config(...),
  "paper": Config(...)}`` where ``Config`` is a frozen dataclass;
* ``requires(config)``: raises :class:`tf_sanity.SanityError` with what to provide when an input
  (data, checkpoint) is missing;
* ``units(config) -> [str]``: independent pieces of work, and ``compute(config, unit, context) ->
  [row dict]``; ``context`` is a dict the experiment may use to cache loaded models between units;
* ``plot(rows, config) -> {suffix: matplotlib Figure}`` and ``claims(rows, config) -> [Claim]``.

An experiment that reads inputs its config does not pin down (the ImageNet test bed, a checkpoint) defines
``inputs(config) -> str`` identifying them; it is part of the result store's key, so results are never
reused for other inputs. (MNIST and Fashion-MNIST need none: tfds verifies their checksums.)

Optional: ``resolve(config) -> config`` makes a run-time choice explicit (the ImageNet figures' ``model="auto"``),
and ``variant(config) -> str`` names the files ``<name>-<preset>-<variant>`` (:func:`store_for`).
``estimate(config, todo) -> str`` says what the units still to do will cost; :func:`run` prints it first.

An experiment that draws masks sets ``ARRAYS = True``: its ``compute`` returns ``(rows, {name: array})``,
the arrays are stored beside the unit's rows, and ``plot(rows, config, arrays)`` receives
``{unit: {name: array}}``.

:func:`run` writes each unit's rows atomically as soon as it finishes (``.units/`` under the output
folder), so a run stopped by Ctrl-C or a kill continues where it stopped, and a finished run
rerun only re-reads its results. Rows are tidy: one row per image x method x stage x metric,
with the settings in columns.
"""

import contextlib
import dataclasses
import json
import os
import pathlib
import time

import matplotlib

matplotlib.use("Agg")  # experiments write files; never open windows
import matplotlib.pyplot as plt  # noqa: E402
from tqdm import tqdm

from experiments import settings as settings_mod  # noqa: E402
from tf_sanity.checks import statistics
from tf_sanity.store import Store, atomic_write, read_csv, rows_to_csv  # noqa: F401 (experiments import them from here)
from tf_sanity.errors import SanityError
from tf_sanity.models import ledger


@dataclasses.dataclass
class Claim:
    """A number or qualitative statement of a paper, checked against our results.

    Attributes:
      paper: which paper and where (e.g. "Sanity Checks, Fig. 4").
      claim: the statement, in the paper's words where possible.
      ours: our value(s) behind the check, as text.
      passed: whether our results support the claim (None: not checkable with these results).
      paper_value: the paper's number, if it states one; tolerance: the agreement band used.
    """

    paper: str
    claim: str
    ours: str
    passed: object
    paper_value: str = ""
    tolerance: str = ""

    def __post_init__(self):
        if self.passed is not None:
            self.passed = bool(self.passed)  # numpy booleans would print as "True" and fail `is True`


def store_for(module, preset, out, config, models=None, settings=None):
    """The :class:`Store` of `module` run with `config` (keyed by the config and the module's ``inputs``).

    Its files are named ``<name>-<preset>[-<module variant>][-<models>][-<backend>][-<key>_<value>...]``: the
    module's ``variant(config)`` (e.g. the ImageNet network) if it has one, then :func:`variant` of the
    ``--models``, ``--backend`` and ``--set`` options.
    """
    config = module.resolve(config) if hasattr(module, "resolve") else config
    own = module.variant(config) if hasattr(module, "variant") else ""
    return Store(out, module.NAME, preset, config, module.inputs(config) if hasattr(module, "inputs") else "",
                 (f"-{own}" if own else "") + variant(options(config, models, settings)))


DEFAULT_BACKEND = "tf_sanity"


def options(config, models=None, settings=None):
    """The ``reproduce`` options of a run: ``{"models": [...], "backend": name, "set": {key: value}}``, each
    only where given."""
    out = {"models": list(config.models)} if models else {}
    if getattr(config, "backend", DEFAULT_BACKEND) != DEFAULT_BACKEND:
        out["backend"] = config.backend
    if settings:
        out["set"] = {k: str(v) for k, v in sorted(settings.items())}
    return out


def variant(opts):
    """The file-name suffix of a run with :func:`options` `opts` (e.g. ``-mnist-cnn-pair``), so that a run
    of some models or with another backend never overwrites the preset's files."""
    parts = (["+".join(opts["models"])] if "models" in opts else []) + ([opts["backend"]] if "backend" in opts else [])
    parts += [f"{k}_{v}" for k, v in opts.get("set", {}).items()]
    return "".join(f"-{part}" for part in parts)


def configure(module, preset, backend=None, models=None, config=None, settings=None):
    """The preset's config (or `config`) with only the `models` given, another saliency `backend` and the
    ``--set`` `settings` (:func:`experiments.settings.apply`; e.g. ``sixt_profile=3k``).

    A backend computes the same methods through other code (``"pair"``: PAIR's ``saliency.core``, as the
    original setup). The config's ``backend`` field reaches every mask through :func:`method_settings`, and
    since results are keyed by the config, each backend's results are kept apart. Methods of the config that
    the backend has no counterpart of are left out of the run, and it says which (a backend never falls
    back to another).

    Raises:
      SanityError: unknown preset, backend or model, or the experiment does not take the option.
    """
    if config is None:
        if preset not in module.PRESETS:
            raise SanityError(f"unknown preset {preset!r}; valid: {', '.join(module.PRESETS)}")
        config = module.PRESETS[preset]
    changes = {}
    if models:
        if not hasattr(config, "models"):
            raise SanityError(f"{module.NAME} has no models to choose from; run it without --models")
        unknown = sorted(set(models) - set(config.models))
        if unknown:
            raise SanityError(f"{module.NAME} [{preset}] has no model {', '.join(unknown)}; valid: "
                              f"{', '.join(config.models)}")
        changes["models"] = tuple(m for m in config.models if m in models)
    if backend not in (None, DEFAULT_BACKEND):
        from tf_sanity.attribution import backends
        supported = backends.get_backend(backend).supported()
        if not hasattr(config, "backend"):
            raise SanityError(f"{module.NAME} does not take --backend: some of its masks do not come from "
                              "tf_sanity.explain with the config's settings; run it without --backend")
        changes["backend"] = backend
        left_out = [m for m in getattr(config, "methods", ()) if m not in supported]
        if left_out:
            print(f"{module.NAME}: backend {backend!r} has no counterpart of {', '.join(left_out)}; "
                  "left out of this run", flush=True)
            changes["methods"] = tuple(m for m in config.methods if m in supported)
    config = dataclasses.replace(config, **changes)
    return settings_mod.apply(module, config, settings) if settings else config


def run(module, preset="quick", out="figures", config=None, progress=True, models=None, backend=None, settings=None):
    """Runs (or resumes) one experiment and writes its CSV, figures and claims.

    Args:
      module: the experiment module.
      preset: ``"quick"`` or ``"paper"`` (ignored when `config` is given).
      out: output folder: ``results/<stem>.csv``, ``<stem>[-suffix].png/.pdf``, ``claims/<stem>.json``,
        the stem being ``<name>-<preset>[-<variant>]``.
      config: a config to use instead of the preset's.
      models, backend, settings: ``--models``, ``--backend`` and ``--set`` (:func:`configure`); the files of a
        run with any get :func:`variant`'s suffix (``<name>-<preset>-mnist-cnn-pair.csv``).

    Returns:
      ``(rows, claims)``.
    """
    config = configure(module, preset, backend, models, config, settings)
    if hasattr(module, "resolve"):  # settings chosen at run time (e.g. which ImageNet network) made explicit
        config = module.resolve(config)
    store = store_for(module, preset, out, config, models, settings)
    units = list(module.units(config))
    todo = [u for u in units if not store.done(u)]
    start = time.perf_counter()
    mark = len(ledger.USED)
    if todo:
        module.requires(config)
        if hasattr(module, "estimate"):
            print(module.estimate(config, todo), flush=True)
        context = {}
        strategy = _strategy(preset)
        bar = tqdm(todo, desc=module.NAME, unit="unit", disable=not progress, dynamic_ncols=True)
        for unit in bar:
            bar.set_postfix_str(unit[-40:])
            with _distributed(strategy):
                store.write(unit, module.compute(config, unit, context))
    rows = store.rows(units)
    atomic_write(store.results_csv, rows_to_csv(rows) if rows else "")
    figures = (module.plot(rows, config, store.arrays(units)) if getattr(module, "ARRAYS", False)
               else module.plot(rows, config))
    for suffix, fig in figures.items():
        for ext in ("png", "pdf"):
            path = pathlib.Path(out) / f"{store.stem}{'-' + suffix if suffix else ''}.{ext}"
            path.parent.mkdir(parents=True, exist_ok=True)
            # no creation date in PDFs: an unchanged figure gives the same bytes when a run is repeated
            fig.savefig(path, dpi=150, bbox_inches="tight", metadata={"CreationDate": None} if ext == "pdf" else None)
        plt.close(fig)
    claims = module.claims(rows, config)
    atomic_write(pathlib.Path(out) / "claims" / f"{store.stem}.json",
                 json.dumps({"experiment": module.NAME, "title": module.TITLE, "preset": preset,
                             "options": options(config, models, settings), "config": dataclasses.asdict(config),
                             "models": store.models(ledger.since(mark)),
                             "claims": [dataclasses.asdict(c) for c in claims]}, indent=1, default=str))
    elapsed = time.perf_counter() - start
    print(f"{module.NAME} [{preset}{variant(options(config, models, settings))}]: {len(units)} units "
          f"({len(units) - len(todo)} reused), "
          f"{len(rows)} rows, {sum(c.passed is True for c in claims)}/{len(claims)} claims supported, "
          f"{elapsed:.1f} s", flush=True)
    return rows, claims


def data_dir(config):
    """The config's ``data_dir``, else ``$TF_SANITY_DATA_DIR``, else None (tfds downloads the data)."""
    return getattr(config, "data_dir", "") or os.environ.get("TF_SANITY_DATA_DIR") or None


def require_datasets(config, model_names):
    """Fails fast, with what to provide, unless the datasets of `model_names` ("mnist-cnn", ...) are there."""
    from tf_sanity.models import datasets
    for name in sorted({m.rsplit("-", 1)[0] for m in model_names}):
        datasets.prepare(name, data_dir(config))


def method_settings(method, config):
    """Settings for `method` from a config's ``ig_steps``, ``samples``, ``seed``, ``batch_size``,
    ``gradcam_layer`` and ``backend``, as the method's metadata says it takes them."""
    from tf_sanity.attribution import methods
    meta = methods.get(method)
    settings = {"batch_size": getattr(config, "batch_size", 256)}
    if "steps" in meta.settings:
        settings["steps"] = config.ig_steps
    if meta.noise_tunnel:
        settings.update(n=config.samples, seed=config.seed)
    if meta.needs_spatial_layer and getattr(config, "gradcam_layer", None):
        settings["layer"] = config.gradcam_layer
    if getattr(config, "backend", DEFAULT_BACKEND) != DEFAULT_BACKEND:
        settings["backend"] = config.backend
    return settings


def methods_for_model(methods, model_name):
    """`methods` without those that need a spatial layer (GradCAM) when the model is an MLP."""
    from tf_sanity.attribution import methods as registry
    return [m for m in methods if not (model_name.endswith("mlp") and registry.get(m).needs_spatial_layer)]


def replica_devices():
    """The devices the ``paper`` preset mirrors over: every visible GPU (tests swap in logical CPUs)."""
    import tensorflow as tf
    return tf.config.list_logical_devices("GPU")


def _strategy(preset):
    """The ``paper`` preset spreads work over the :func:`replica_devices` (MirroredStrategy) when there are several."""
    if preset != "paper":
        return None
    import tensorflow as tf
    devices = replica_devices()
    return tf.distribute.MirroredStrategy([d.name for d in devices]) if len(devices) > 1 else None


@contextlib.contextmanager
def _distributed(strategy):
    """Models loaded and masks computed inside get mirrored variables and split batches."""
    if strategy is None:
        yield
        return
    from tf_sanity.attribution import engine
    with strategy.scope(), engine.distribute(strategy):
        yield


# Sundararajan & Taly (2018), Remark 1: the spearman_nz plateau of IG under full randomization, and its 99 % CI.
ST_PLATEAU_MEAN, ST_PLATEAU_CI = 0.424, (0.413, 0.437)


def overlaps_st_plateau(lo, hi):
    """Whether the interval ``[lo, hi]`` overlaps the note's 99 % CI of the plateau."""
    return lo <= ST_PLATEAU_CI[1] and hi >= ST_PLATEAU_CI[0]


mean_std = statistics.mean_std  # tidy rows -> {group: (mean, std, count)}
