"""The units of work of :func:`tf_sanity.checks.run`: each test of the check split into pieces that are
computed, written and reused one by one (:class:`tf_sanity.store.Store`), with their costs counted.

A :class:`Check` holds what every unit needs: the model (its logits), the inputs and targets, the methods
(wrapped for token inputs, :func:`tf_sanity.checks.model_views.token_method`) and the trained model's
masks, computed once and shared by every order, seed and test that compares with them. Unit names:

* ``trained``: the trained model's masks (their first inputs kept for mask grids) and the methods whose
  rules the model's layers do not support (``skipped``);
* ``model_randomization/<order>/seed<s>/<stage>``: one stage of one order (Adebayo et al. 2018, Sec. 3);
  the last stage of the eMPRT order also yields eMPRT's rows (Hedström et al. 2023, Sec. 4.2) from the
  same masks, at no extra pass;
* ``smprt/<order>/seed<s>/<stage>``: one stage of sMPRT (Sec. 4.1), on smoothed masks;
* ``random_logit``, ``csc`` (Sixt et al. 2020), ``input_invariance`` (Kindermans et al. 2019),
  ``completeness`` (Sundararajan et al. 2017), ``data_randomization`` (Adebayo et al. 2018, Sec. 4).

Every unit's rows carry ``test`` and ``seed``; tests without stages have ``order=""``, ``stage=""``,
``stage_index=0`` (:mod:`tf_sanity.checks.result`).
"""

import contextlib
import time

import numpy as np

from tf_sanity.attribution import engine, methods as methods_lib
from tf_sanity.checks import controls, csc, invariance, model_views, randomization, refinements
from tf_sanity.checks.randomization_test import (SIMILARITIES, data_randomization, explain_methods,
                                                 model_randomization)
from tf_sanity.errors import SanityError

PREVIEW = 4  # inputs whose masks are kept for the report's mask grids
NO_STAGE = dict(order="", stage="", stage_index=0)


class Clock:
    """Wall and process CPU seconds spent under named keys: ``with clock("metrics"): ...``.

    CPU time (all threads of the process) is what a shared machine's load changes least.
    """

    def __init__(self):
        self.wall, self.cpu = {}, {}

    @contextlib.contextmanager
    def __call__(self, key):
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            self.wall[key] = self.wall.get(key, 0.0) + time.perf_counter() - wall
            self.cpu[key] = self.cpu.get(key, 0.0) + time.process_time() - cpu


def timed(fn, clock, key="metrics"):
    """`fn` with its run time counted under `key` of `clock` (metrics are timed apart from the passes)."""
    def call(*args):
        with clock(key):
            return fn(*args)
    return call


def modified_backprop(method):
    """Whether `method` is one backward pass with rules other than the plain gradient's (Sixt et al.'s CSC)."""
    if method.make_backprop is None or method.noise_tunnel:
        return False
    try:
        return method.make_backprop().composite is not None
    except TypeError:  # settings without defaults
        return False


def is_path_integral(method):
    """Whether `method` is IG-like (a path integral from a baseline: completeness applies), from its metadata."""
    return method.multiplies_by_input and "steps" in method.settings and method.noise_tunnel is None


class Check:
    """The shared state of one check run (module docstring)."""

    def __init__(self, model, x, targets, names, kind, *, settings, sims, groups, smprt_n, clock,
                 extra_methods=(), train_fn=None, random_label_model=None, policy="paper"):
        self.model, self.x, self.targets, self.kind, self.policy = model, x, targets, kind, policy
        self.settings, self.sims, self.groups, self.smprt_n = settings, sims, groups, smprt_n
        self.clock = clock
        self.split = model_views.split_tokens(model) if kind == "tokens" else None
        wrap = model_views.token_method if self.split is not None else (lambda m: m)
        self.methods = {m.name: m for m in (wrap(methods_lib.get(n)) for n in names)}
        self.methods.update({m.name: m for m in extra_methods})
        self.train_fn, self.random_label_model = train_fn, random_label_model
        self.skipped = {}
        self._originals = self._smooth_originals = self._trained_targets = None

    # ----------------------------------------------------------------- shared pieces

    def trained_targets(self):
        if self._trained_targets is None:
            if isinstance(self.targets, str):
                self._trained_targets = np.asarray(engine.scores_function(self.model)(self.x)).argmax(-1)
            else:
                self._trained_targets = np.asarray(self.targets)
        return self._trained_targets.astype(np.int32)

    def controls(self, unit):
        """The controls of one unit: their random draws seeded by the unit's name (resumable, deterministic)."""
        random = controls.random_attribution(randomization.group_seed(0, unit))
        return [controls.ignoring_control(self.kind), random]

    def active(self):
        """The methods that run: those whose trained masks could be computed."""
        self.originals()
        return {n: m for n, m in self.methods.items() if n not in self.skipped}

    def explain(self, model, method_items, targets):
        """``{name: masks}`` of `model` for methods given as ``{name: Method}``, with the run's settings."""
        return explain_methods(model, self.x, targets, list(method_items.values()), self.settings)

    def originals(self):
        """The trained model's masks of every method that runs (computed once); a method whose rules or layer
        needs the model does not meet (:class:`SanityError`) goes to ``skipped`` with the reason."""
        if self._originals is None:
            out = {}
            for name, method in self.methods.items():
                try:
                    out.update(self.explain(self.model, {name: method}, self.trained_targets()))
                except SanityError as exc:
                    self.skipped[name] = str(exc)
            self._originals = out
        return self._originals

    def with_controls(self, unit, originals):
        """The active methods + the unit's controls, and the originals including the controls' own."""
        ctrl = self.controls(unit)
        full = dict(originals)
        full.update(self.explain(self.model, {c.name: c for c in ctrl}, self.trained_targets()))
        return [*self.active().values(), *ctrl], full

    # ----------------------------------------------------------------- units

    def unit_trained(self):
        originals = self.originals()
        rows = [dict(method=name, reason=reason) for name, reason in self.skipped.items()]
        keep = {f"original|{name}": masks[:PREVIEW] for name, masks in originals.items()}
        return rows, (keep if self.kind == "image" else {})

    def unit_stage(self, unit, order, seed, stage, last_emprt):
        """One stage of the model parameter randomization test (+ eMPRT at the fully randomized stage)."""
        method_list, originals = self.with_controls(unit, self.originals())
        kept = {}

        def on_masks(stage_name, method, masks):
            if stage_name != "original":
                kept[method] = masks

        rows = [dict(r, test="model_randomization", seed=seed) for r in model_randomization(
            self.model, self.x, self.targets, method_list, order=order, similarities=self.sims, groups=self.groups,
            policy=self.policy, seed=seed, settings=self.settings, stages=[stage], originals=originals,
            on_masks=on_masks)]
        if last_emprt:
            for method, masks in kept.items():
                with self.clock("metrics"):
                    scores = {"emprt": refinements.complexity_rise(originals[method], masks),
                              "entropy_original": refinements.discrete_entropy(originals[method]),
                              "entropy_randomized": refinements.discrete_entropy(masks)}
                index = rows[0]["stage_index"] if rows else 0
                rows += [dict(order=order, stage=stage, stage_index=index, method=method, metric=metric, image=i,
                              value=float(v), test="emprt", seed=seed, n_bins=100)
                         for metric, values in scores.items() for i, v in enumerate(values)]
        arrays = {f"{stage}|{m}": v[:PREVIEW] for m, v in kept.items()} if self.kind == "image" else {}
        return rows, arrays

    def unit_smprt(self, unit, order, seed, stage):
        """One stage of sMPRT: every method (and control) smoothed over ``smprt_n`` noisy copies.

        SmoothGrad / VarGrad variants are left out: they already average over noisy copies.
        """
        method_list = [m for m in self.active().values() if not m.noise_tunnel] + self.controls(unit)
        smooth = [refinements.smoothed(m, self.smprt_n, seed=0) for m in method_list]
        if self._smooth_originals is None:
            self._smooth_originals = {}
        missing = {m.name: m for m in smooth if m.name not in self._smooth_originals or
                   m.name == controls.RANDOM_ATTRIBUTION}
        self._smooth_originals.update(self.explain(self.model, missing, self.trained_targets()))
        rows = refinements.smooth_mprt(self.model, self.x, self.targets, method_list, n=self.smprt_n, order=order,
                                       groups=self.groups, policy=self.policy, seed=seed, settings=self.settings,
                                       stages=[stage],
                                       originals=dict(self._smooth_originals), similarities=self.sims_named(
                                           {"spearman_abs_flat": refinements.spearman_abs_flat}))
        return [dict(r, seed=seed) for r in rows]

    def sims_named(self, sims):
        return {k: timed(v, self.clock) for k, v in sims.items()}

    def unit_random_logit(self, unit):
        """Sixt et al. (2020), Sec. 5.2: the explanation of the target vs of a random other class."""
        method_list, originals = self.with_controls(unit, self.originals())
        targets = self.trained_targets()
        others = csc.random_other_class(targets, self.model.output_shape[-1], seed=0)
        other = self.explain(self.model, {m.name: m for m in method_list}, others)
        rows = []
        for m in method_list:
            with self.clock("metrics"):
                if self.kind == "image":
                    metric, values = "ssim_flipped", csc.ssim_batch(originals[m.name], other[m.name], m)
                else:
                    metric, values = "spearman_abs", SIMILARITIES["spearman_abs"](originals[m.name], other[m.name],
                                                                                  None)
            rows += [dict(NO_STAGE, test="random_logit", seed=0, method=m.name, metric=metric, image=i, value=float(v))
                     for i, v in enumerate(np.atleast_1d(values))]
        return rows

    def explained(self):
        """The model and inputs the backward passes really run on (the rest model on embeddings for tokens)."""
        if self.split is not None:
            return self.split.rest, self.split.embedded(self.x)
        return self.model, self.x

    def unit_csc(self):
        """Sixt et al. (2020), Sec. 5.1: CSC of each modified-backprop method from the output layer down."""
        model, x = self.explained()
        start = model_views._output_layer(model).name
        rows = []
        for name in self.active():
            base = methods_lib.METHODS.get(name)
            if base is None or not modified_backprop(base):
                continue
            with self.clock("metrics"):  # the random-vector baselines (cached) are metrics, not passes
                for layer in csc.lower_layers(model, start):
                    csc.random_baseline(csc._channels(model, layer))
            result = csc.cosine_similarity_convergence(model, x, name, start)
            for r, values in zip(result.rows(), result.values):
                rows.append(dict(NO_STAGE, test="csc", seed=0, method=name, metric="median_abs_cos", image=-1,
                                 value=r["median_abs_cos"], layer=r["layer"], depth=r["depth"],
                                 baseline=r["baseline"], n_values=r["n_values"]))
        return rows

    def invariance_reason(self):
        """Why input invariance does not apply to this model, or ``""``."""
        if self.split is not None:
            return "token ids cannot be shifted by a constant"
        return invariance.why_not_absorbed(invariance.first_layer(self.model))

    def unit_input_invariance(self):
        """Kindermans et al. (2019): attributions of ``x`` on the model and of ``x + c`` on the shifted model."""
        if self.invariance_reason():
            return []
        model, x = self.explained()
        registered = [m for n, m in self.active().items() if n in methods_lib.METHODS]
        rows, shift, gap = invariance.input_invariance(model, x, self.trained_targets(), registered,
                                                       settings=self.settings)
        return [dict(NO_STAGE, **r, test="input_invariance", seed=0, shift=shift, output_gap=gap) for r in rows]

    def unit_completeness(self):
        """Sundararajan et al. (2017): IG's attributions add up to ``F(x) - F(baseline)``."""
        model, x = self.explained()
        rows = []
        for name, method in self.active().items():
            if is_path_integral(method):
                baseline = method.baseline(self.settings.get(name, {}))
                for r in invariance.completeness_rows(model, x, self.trained_targets(), self.originals()[name],
                                                      baseline):
                    rows.append(dict(NO_STAGE, **r, test="completeness", seed=0, method=name))
        return rows

    def random_labels_model(self):
        if self.random_label_model is not None:
            return self.random_label_model
        labels = np.random.default_rng(0).permutation(self.trained_targets())
        return self.train_fn(self.x, labels)

    def unit_data_randomization(self, unit):
        """Adebayo et al. (2018), Sec. 4: explanations of the model vs a model trained on permuted labels."""
        other, _ = model_views.logits_model(self.random_labels_model())
        rows = data_randomization(self.model, other, self.x, self.targets, [*self.active().values(),
                                  *self.controls(unit)], similarities=self.sims, settings=self.settings)
        return [dict(NO_STAGE, **r, test="data_randomization", seed=0) for r in rows]
