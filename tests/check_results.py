"""Tiny models of each input kind, and real :class:`~tf_sanity.checks.result.CheckResult` objects built from
the library's pieces (``model_randomization`` with the controls, ``verdicts``, eMPRT), for the tests of the
check report (which reads them without running the whole check) and command.
"""

import importlib.metadata
import platform

import keras
import numpy as np


from tf_sanity.checks import controls, model_randomization, refinements, verdict
from tf_sanity.checks.result import CheckResult

IMAGE_SIMILARITIES = ("spearman_abs", "spearman_signed", "ssim")
VECTOR_SIMILARITIES = ("spearman_abs", "spearman_signed")


def _seeded(model, seed):
    rng = np.random.default_rng(seed)
    model.set_weights([(rng.standard_normal(w.shape) / np.sqrt(max(w.shape[0], 1))).astype(np.float32)
                       for w in model.get_weights()])
    return model


def image_model(seed=0, softmax=False):
    """12x12x1 -> Conv2D 4 relu -> Conv2D 4 relu -> flatten -> Dense 3."""
    inp = keras.Input((12, 12, 1))
    h = keras.layers.Conv2D(4, 3, activation="relu", name="conv1")(inp)
    h = keras.layers.Conv2D(4, 3, activation="relu", name="conv2")(h)
    out = keras.layers.Dense(3, activation="softmax" if softmax else None, name="logits")(keras.layers.Flatten()(h))
    return _seeded(keras.Model(inp, out, name="tiny_cnn"), seed)


def sequence_model(seed=0):
    """[16, 2] time series -> Conv1D 4 relu -> global average pool -> Dense 3."""
    inp = keras.Input((16, 2))
    h = keras.layers.Conv1D(4, 3, activation="relu", name="conv")(inp)
    out = keras.layers.Dense(3, name="logits")(keras.layers.GlobalAveragePooling1D()(h))
    return _seeded(keras.Model(inp, out, name="tiny_conv1d"), seed)


def tabular_model(seed=0):
    """8 features -> Dense 6 relu -> Dense 3."""
    inp = keras.Input((8,))
    out = keras.layers.Dense(3, name="logits")(keras.layers.Dense(6, activation="relu", name="hidden")(inp))
    return _seeded(keras.Model(inp, out, name="tiny_mlp"), seed)


def token_model(seed=0, vocabulary=20):
    """10 token ids -> Embedding 4 -> global average pool -> Dense 3."""
    inp = keras.Input((10,), dtype="int32")
    h = keras.layers.Embedding(vocabulary, 4, name="embedding")(inp)
    out = keras.layers.Dense(3, name="logits")(keras.layers.GlobalAveragePooling1D()(h))
    return _seeded(keras.Model(inp, out, name="tiny_tokens"), seed)


def inputs_for(model, n=6, seed=1):
    """``n`` inputs of the right kind for one of the models above."""
    rng = np.random.default_rng(seed)
    shape = (n, *model.input_shape[1:])
    if model.name == "tiny_tokens":
        return rng.integers(0, 20, shape).astype(np.int32)
    return rng.uniform(0, 255 if len(shape) == 4 else 1, shape).astype(np.float32)


def real_result(model, x, methods=("gradient", "guided_backprop"), orders=("top_down", "bottom_up", "independent"),
                seeds=(0,), n_resamples=500, input_kind="image", extra_methods=()):
    """A CheckResult computed for real: model randomization with the controls (images: both; else the random
    one), verdicts (images), eMPRT summaries, masks of the first inputs, settings, timings, versions."""
    x = np.asarray(x, np.float32)
    image = x.ndim == 4
    sims = IMAGE_SIMILARITIES if image else VECTOR_SIMILARITIES
    chosen = [*methods, *extra_methods]
    masks, rows, stages = {}, [], {}
    for order in orders:
        def keep(stage, method, m, order=order):
            masks[order, stage, method] = np.asarray(m[:2])
        for s in seeds:
            got = list(model_randomization(model, x, "predicted", [*chosen, *controls.controls(x, seed=s)],
                                           order=order, similarities=sims, seed=s, on_masks=keep))
            rows += [dict(r, test="model_randomization", seed=s) for r in got]
        index = {r["stage"]: r["stage_index"] for r in rows if r["order"] == order}
        stages[order] = sorted(index, key=index.get)
    found = verdict.verdicts(rows, n_resamples=n_resamples) if image else []
    emprt = [r for r in refinements.efficient_mprt(model, x, "predicted", list(chosen)) if r["metric"] == "emprt"]
    rows += emprt
    summaries = []
    for method in chosen:
        v = np.array([r["value"] for r in emprt if r["method"] == getattr(method, "name", method)])
        v = v[np.isfinite(v)] if np.isfinite(v).any() else np.array([np.nan])  # a zero mask has no entropy
        summaries.append(dict(test="emprt", method=getattr(method, "name", method), value=float(np.median(v)),
                              low=float(v.min()), high=float(v.max()), passed=None,
                              note="relative rise in the entropy of the attribution histogram"))
    return CheckResult(
        rows=rows, verdicts=found, summaries=summaries, skipped={"gradcam": "no spatial layer in this model"},
        settings=dict(preset="quick", methods=[getattr(m, "name", m) for m in chosen], orders=list(orders),
                      seeds=list(seeds), n_inputs=len(x), input_kind=input_kind, similarities=list(sims),
                      groups="one per layer with weights", smprt_n=10, method_settings={}, targets="predicted",
                      notes=["the model ends in softmax: explained on its logits"]),
        model_name=model.name, inputs_preview=x[:2] if image else None, masks=masks if image else {},
        stages=stages, timings=dict(passes=0, pass_time_s=0.0, total_s=0.0),
        versions=dict(tensorflow=__import__("tensorflow").__version__, keras=keras.__version__,
                      tf_sanity=importlib.metadata.version("tf_sanity"), python=platform.python_version()))
