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

An experiment that draws masks sets ``ARRAYS = True``: its ``compute`` returns ``(rows, {name: array})``,
the arrays are stored beside the unit's rows, and ``plot(rows, config, arrays)`` receives
``{unit: {name: array}}``.

:func:`run` writes each unit's rows atomically as soon as it finishes (``.units/`` under the output
folder), so a run stopped by Ctrl-C or a kill continues where it stopped, and a finished run
rerun only re-reads its results. Rows are tidy: one row per image x method x stage x metric,
with the settings in columns.
"""

import contextlib
import csv
import dataclasses
import hashlib
import io
import json
import os
import pathlib
import re
import time

import matplotlib

matplotlib.use("Agg")  # experiments write files; never open windows
import matplotlib.pyplot as plt  # noqa: E402
from tqdm import tqdm

from tf_sanity.checks import statistics
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


def atomic_write(path, text):
    """Writes `text` to `path` through a temporary file and a rename (never a half-written file)."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def rows_to_csv(rows):
    fields = []
    for row in rows:
        fields.extend(k for k in row if k not in fields)
    out = io.StringIO()
    writer = csv.DictWriter(out, fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def _parse(value):
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value


def read_csv(path):
    with open(path, newline="") as f:
        return [{k: _parse(v) for k, v in row.items()} for row in csv.DictReader(f)]


def _slug(unit):
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", unit)


class Store:
    """Per-unit result files of one experiment run (`experiment`, `preset`, `config`) under `out`.

    Units live in a folder keyed by a hash of the config and of `inputs` (the experiment's
    ``inputs(config)``, e.g. which checkpoint), so a changed config (more images, another seed) or
    other inputs never reuse units computed under the old ones.
    """

    def __init__(self, out, name, preset, config=None, inputs="", variant=""):
        self.out = pathlib.Path(out)
        self.stem = f"{name}-{preset}{variant}"
        key = repr(config) + (f"\n{inputs}" if inputs else "")
        digest = hashlib.sha256(key.encode()).hexdigest()[:12]
        self.units_dir = self.out / ".units" / f"{self.stem}-{digest}"

    def unit_path(self, unit):
        return self.units_dir / f"{_slug(unit)}.csv"

    def done(self, unit):
        return self.unit_path(unit).exists()

    def array_path(self, unit):
        return self.units_dir / f"{_slug(unit)}.npz"

    def write(self, unit, result):
        rows, arrays = result if isinstance(result, tuple) else (result, None)
        if arrays is not None:  # arrays first: a unit counts as done once its rows exist
            import numpy as np
            tmp = self.array_path(unit).with_name(f".{_slug(unit)}.{os.getpid()}.tmp.npz")
            tmp.parent.mkdir(parents=True, exist_ok=True)
            np.savez_compressed(tmp, **arrays)
            os.replace(tmp, self.array_path(unit))
        atomic_write(self.unit_path(unit), rows_to_csv(rows) if rows else "")

    def arrays(self, units):
        import numpy as np
        return {u: dict(np.load(self.array_path(u))) for u in units if self.array_path(u).exists()}

    def rows(self, units):
        out = []
        for unit in units:
            if self.unit_path(unit).stat().st_size:
                out.extend(read_csv(self.unit_path(unit)))
        return out

    def models(self, used):
        """The trained models behind this run's units: `used` now (:func:`tf_sanity.models.ledger.since`) merged
        into those stored by earlier runs of the same units (``models.json``), without per-call fields."""
        path = self.units_dir / "models.json"
        stored = json.loads(path.read_text()) if path.exists() else []
        fresh = [{k: v for k, v in e.items() if k != "trained_now"} for e in used]
        key = lambda e: (e["model"], e["labels"], e["profile"])  # noqa: E731
        merged = {key(e): e for e in stored + fresh}
        if fresh:
            atomic_write(path, json.dumps(list(merged.values()), indent=1))
        return list(merged.values())

    @property
    def results_csv(self):
        return self.out / "results" / f"{self.stem}.csv"


def store_for(module, preset, out, config, models=None):
    """The :class:`Store` of `module` run with `config` (keyed by the config and the module's ``inputs``).

    Its files are named ``<name>-<preset>[-<module variant>][-<models>][-<backend>]``: the module's
    ``variant(config)`` (e.g. the ImageNet network) if it has one, then :func:`variant` of the ``--models``
    and ``--backend`` options.
    """
    config = module.resolve(config) if hasattr(module, "resolve") else config
    own = module.variant(config) if hasattr(module, "variant") else ""
    return Store(out, module.NAME, preset, config, module.inputs(config) if hasattr(module, "inputs") else "",
                 (f"-{own}" if own else "") + variant(options(config, models)))


DEFAULT_BACKEND = "tf_sanity"


def options(config, models=None):
    """The ``reproduce`` options of a run: ``{"models": [...], "backend": name}``, each only where given."""
    out = {"models": list(config.models)} if models else {}
    if getattr(config, "backend", DEFAULT_BACKEND) != DEFAULT_BACKEND:
        out["backend"] = config.backend
    return out


def variant(opts):
    """The file-name suffix of a run with :func:`options` `opts` (e.g. ``-mnist-cnn-pair``), so that a run
    of some models or with another backend never overwrites the preset's files."""
    parts = (["+".join(opts["models"])] if "models" in opts else []) + ([opts["backend"]] if "backend" in opts else [])
    return "".join(f"-{part}" for part in parts)


def configure(module, preset, backend=None, models=None, config=None):
    """The preset's config (or `config`) with only the `models` given and another saliency `backend`.

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
    return dataclasses.replace(config, **changes)


def run(module, preset="quick", out="figures", config=None, progress=True, models=None, backend=None):
    """Runs (or resumes) one experiment and writes its CSV, figures and claims.

    Args:
      module: the experiment module.
      preset: ``"quick"`` or ``"paper"`` (ignored when `config` is given).
      out: output folder: ``results/<stem>.csv``, ``<stem>[-suffix].png/.pdf``, ``claims/<stem>.json``,
        the stem being ``<name>-<preset>[-<variant>]``.
      config: a config to use instead of the preset's.
      models, backend: ``--models`` and ``--backend`` (:func:`configure`); the files of a run with either
        get :func:`variant`'s suffix (``<name>-<preset>-mnist-cnn-pair.csv``).

    Returns:
      ``(rows, claims)``.
    """
    config = configure(module, preset, backend, models, config)
    if hasattr(module, "resolve"):  # settings chosen at run time (e.g. which ImageNet network) made explicit
        config = module.resolve(config)
    store = store_for(module, preset, out, config, models)
    units = list(module.units(config))
    todo = [u for u in units if not store.done(u)]
    start = time.perf_counter()
    mark = len(ledger.USED)
    if todo:
        module.requires(config)
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
                             "options": options(config, models), "config": dataclasses.asdict(config),
                             "models": store.models(ledger.since(mark)),
                             "claims": [dataclasses.asdict(c) for c in claims]}, indent=1, default=str))
    elapsed = time.perf_counter() - start
    print(f"{module.NAME} [{preset}{variant(options(config, models))}]: {len(units)} units "
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
