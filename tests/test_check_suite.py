"""tf_sanity.checks.run on tiny models of each input kind: rows, verdicts, summaries, skipped methods,
the softmax logits view, input invariance on an analytic case, resumable units and seeded determinism."""

import keras
import numpy as np
import pytest

from tf_sanity import checks
from tf_sanity.attribution import engine, methods as attribution_methods
from tf_sanity.checks import invariance, model_views, plan
from tf_sanity.checks.result import TESTS
from tf_sanity.errors import SanityError

METHODS = ["gradient", "gradient_x_input", "integrated_gradients"]
SETTINGS = {"integrated_gradients": {"steps": 4}}


def _model(kind, seed=0, softmax=False):
    keras.utils.set_random_seed(seed)
    L = keras.layers
    if kind == "image":
        inp = keras.Input((8, 8, 1))
        h = L.Conv2D(4, 3, activation="relu", name="conv1")(inp)
        h = L.Conv2D(4, 3, padding="same", activation="relu", name="conv2")(h)
        h = L.Flatten()(h)
    elif kind == "sequence":
        inp = keras.Input((12, 2))
        h = L.Conv1D(4, 3, activation="relu", name="conv1")(inp)
        h = L.GlobalAveragePooling1D()(h)
    elif kind == "tabular":
        inp = keras.Input((6,))
        h = L.Dense(5, activation="relu", name="hidden")(inp)
    else:
        inp = keras.Input((6,), dtype="int32")
        h = L.Embedding(20, 4, name="embedding")(inp)
        h = L.Conv1D(4, 2, activation="relu", name="conv1")(h)
        h = L.GlobalAveragePooling1D()(h)
    out = L.Dense(3, activation="softmax" if softmax else None, name="out")(h)
    return keras.Model(inp, out, name=f"tiny_{kind}")


def _inputs(kind, n=6, seed=0):
    rng = np.random.default_rng(seed)
    shapes = {"image": (8, 8, 1), "sequence": (12, 2), "tabular": (6,)}
    if kind == "tokens":
        return rng.integers(1, 20, (n, 6))
    return rng.random((n, *shapes[kind])).astype(np.float32)


def _run(model, x, **kwargs):
    kwargs.setdefault("methods", METHODS)
    return checks.run(model, x, progress=False, smprt_n=2, method_settings=SETTINGS, **kwargs)


@pytest.mark.parametrize("kind", ["image", "sequence", "tabular", "tokens"])
def test_each_input_kind(kind):
    model, x = _model(kind), _inputs(kind)
    other = _model(kind, seed=1) if kind == "tabular" else None
    result = _run(model, x, random_label_model=other)
    assert result.settings["input_kind"] == kind and result.settings["n_inputs"] == 6
    tests = {r["test"] for r in result.rows}
    assert tests <= set(TESTS) and {"model_randomization", "emprt", "random_logit", "completeness"} <= tests
    assert ("smprt" in tests) == (kind != "tokens")  # token ids cannot be noised
    assert ("data_randomization" in tests) == (kind == "tabular")
    assert ("input_invariance" in tests) == (kind != "tokens")
    methods = {r["method"] for r in result.rows if r["test"] == "model_randomization"}
    assert ("edge_detector" in methods) == (kind == "image") != ("input_control" in methods)
    assert "random_attribution" in methods
    metrics = {r["metric"] for r in result.rows if r["test"] == "model_randomization"}
    assert not metrics & {"ssim", "hog"}  # 8 x 8 images and non-images
    assert {(v.method, v.order) for v in result.verdicts} == {(m, o) for m in METHODS for o in checks.ORDERS}
    for v in result.verdicts:
        assert v.verdict in ("sensitive to the parameters", "insensitive (fails the check)", "inconclusive")
    stages = result.stages["top_down"]
    assert result.stages["bottom_up"] == stages[::-1] and stages[0] == "out"
    n_stage_rows = [r for r in result.rows if r["test"] == "model_randomization" and r["metric"] == "spearman_abs"
                    and r["order"] == "top_down" and r["method"] == "gradient"]
    assert len(n_stage_rows) == 6 * len(stages)
    for s in result.summaries:
        assert set(s) == {"test", "method", "value", "low", "high", "passed", "note"} and s["passed"] in (True, False, None)
    logit = {s["method"] for s in result.summaries if s["test"] == "random_logit"}
    assert logit == set(METHODS)
    if kind == "image":
        assert result.inputs_preview.shape == (4, 8, 8, 1)
        assert result.masks["top_down", "original", "gradient"].shape == (4, 8, 8, 1)
        assert result.masks["bottom_up", "out", "gradient"].shape == (4, 8, 8, 1)
    else:
        assert result.inputs_preview is None and not result.masks
    assert result.timings["passes"] > 0 and result.timings["pass_time_s"] > 0
    # the estimate printed before a run counts exactly the passes the run makes
    estimate = plan.estimate(model, x, METHODS, checks.ORDERS, smprt_n=2, method_settings=SETTINGS,
                             random_label_model=other is not None, pass_time_s=(1.0, 0.0))
    assert estimate.passes == result.timings["passes"], estimate.by_test
    # Sundararajan & Taly's second reading, for the methods with a baseline only; failing() reads the first
    baselined = set() if kind == "tokens" else {"gradient_x_input", "integrated_gradients"}
    assert {v.method for v in result.baseline_verdicts} == baselined
    assert all(v.metric == "spearman_nz" for v in result.baseline_verdicts)
    assert all(v.metric == "spearman_abs" for v in result.verdicts)


def test_token_masks_are_summed_embedding_attributions():
    model, x = _model("tokens"), _inputs("tokens")
    split = model_views.split_tokens(model)
    assert model_views.split_tokens(model) is split  # built once
    method = model_views.token_method(attribution_methods.get("gradient_x_input"))
    masks = checks.explain_methods(model, x, np.zeros(len(x), np.int32), [method])["gradient_x_input"]
    embedded = split.embedded(x)
    np.testing.assert_allclose(embedded, model.get_layer("embedding").embeddings.numpy()[x], rtol=1e-6)
    reference = checks.explain_methods(split.rest, embedded, np.zeros(len(x), np.int32), ["gradient_x_input"])
    assert masks.shape == x.shape
    np.testing.assert_allclose(masks, reference["gradient_x_input"].sum(-1), rtol=1e-5, atol=1e-7)
    # randomizing the model's embedding reaches the split
    weights = model.get_layer("embedding").embeddings
    weights.assign(np.zeros(weights.shape, np.float32))
    assert not split.embedded(x).any()


def test_logits_view_shares_weights_and_gives_pre_softmax_scores():
    model, x = _model("tabular", softmax=True), _inputs("tabular")
    view, note = model_views.logits_model(model)
    assert "softmax" in note
    hidden = np.maximum(x @ model.get_layer("hidden").kernel.numpy() + model.get_layer("hidden").bias.numpy(), 0)
    logits = hidden @ model.get_layer("out").kernel.numpy() + model.get_layer("out").bias.numpy()
    np.testing.assert_allclose(np.asarray(view(x, training=False)), logits, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(model(x)), np.asarray(keras.ops.softmax(view(x))), rtol=1e-5, atol=1e-6)
    model.get_layer("out").bias.assign(np.ones(3, np.float32))  # shared variables: the view sees the change
    np.testing.assert_allclose(np.asarray(view(x, training=False)), hidden @ model.get_layer("out").kernel.numpy() + 1.0,
                               rtol=1e-5, atol=1e-6)
    inp = keras.Input((6,))
    layer_model = keras.Model(inp, keras.layers.Softmax()(keras.layers.Dense(3, name="d")(inp)))
    view, note = model_views.logits_model(layer_model)
    np.testing.assert_allclose(np.asarray(view(x, training=False)), x @ layer_model.get_layer("d").kernel.numpy()
                               + layer_model.get_layer("d").bias.numpy(), rtol=1e-5, atol=1e-6)
    plain = _model("tabular")
    assert model_views.logits_model(plain) == (plain, "")
    result = _run(model, x, orders=("top_down",))
    assert any("softmax" in n for n in result.settings["notes"])


def test_input_invariance_analytic():
    """f2(x + c) = f1(x) exactly; the gradient is invariant, gradient x input and IG (zero baseline) are not."""
    model, x = _model("tabular"), _inputs("tabular")
    shifted = invariance.shifted_model(model, -1.0)
    np.testing.assert_allclose(np.asarray(shifted(x - 1.0)), np.asarray(model(x)), rtol=1e-5, atol=1e-5)
    targets = np.zeros(len(x), np.int32)
    rows, shift, gap = invariance.input_invariance(model, x, targets, METHODS, settings=SETTINGS)
    assert shift == pytest.approx(-float(x.max() - x.min())) and gap < 1e-5
    worst = {m: max(r["value"] for r in rows if r["method"] == m) for m in METHODS}
    assert worst["gradient"] < 1e-6
    assert worst["gradient_x_input"] > 0.1 and worst["integrated_gradients"] > 0.1
    # gradient x input on the shifted model is the gradient times (x + c), analytically
    grad = checks.explain_methods(model, x, targets, ["gradient"])["gradient"]
    gxi = checks.explain_methods(shifted, (x + shift).astype(np.float32), targets, ["gradient_x_input"])
    np.testing.assert_allclose(gxi["gradient_x_input"], grad * (x + shift), rtol=1e-4, atol=1e-6)
    with pytest.raises(SanityError, match="pads with zeros"):
        inp = keras.Input((8, 8, 1))
        invariance.shifted_model(keras.Model(inp, keras.layers.Dense(2)(keras.layers.Flatten()(
            keras.layers.Conv2D(2, 3, padding="same")(inp)))), -1.0)
    image = _model("image")  # an unpadded first convolution absorbs the shift exactly
    xi = _inputs("image")
    np.testing.assert_allclose(np.asarray(invariance.shifted_model(image, 0.5)(xi + 0.5)), np.asarray(image(xi)),
                               rtol=1e-4, atol=1e-5)


def test_unsupported_method_is_skipped_and_the_others_run():
    model, x = _model("tabular"), _inputs("tabular")
    result = _run(model, x, methods=["gradient", "gradcam"], orders=("top_down",))
    assert set(result.skipped) == {"gradcam"} and "convolution" in result.skipped["gradcam"]
    assert {v.method for v in result.verdicts} == {"gradient"}
    assert not any(r["method"] == "gradcam" for r in result.rows)
    # the estimate leaves out what the run skips (GradCAM and Guided GradCAM, defaults, on a model without a conv)
    estimate = plan.estimate(model, x, ["gradient", "gradcam"], ("top_down",), smprt_n=2, method_settings=SETTINGS,
                             pass_time_s=(1.0, 0.0))
    assert estimate.passes == result.timings["passes"], estimate.by_test
    inp = keras.Input((6,))  # a hidden softmax: guided backprop's rules refuse it, the gradient runs
    odd = keras.Model(inp, keras.layers.Dense(3, name="out")(keras.layers.Dense(5, activation="softmax")(inp)))
    result = _run(odd, x, methods=["gradient", "guided_backprop"], orders=("top_down",))
    assert set(result.skipped) == {"guided_backprop"} and "ReLU networks" in result.skipped["guided_backprop"]
    assert {v.method for v in result.verdicts} == {"gradient"}


def test_policy_reaches_the_randomization_tests():
    """`policy` changes the re-initialized values (so the similarities), is recorded, and a bad one fails in one line."""
    model, x = _model("image"), _inputs("image")

    def values(policy):
        result = _run(model, x, methods=["gradient"], orders=("top_down",), policy=policy)
        assert result.settings["policy"] == policy
        return np.array([r["value"] for r in result.rows if r["test"] == "model_randomization"
                         and r["method"] == "gradient" and r["metric"] == "spearman_abs"])

    paper, code = values("paper"), values("original_code")
    assert paper.shape == code.shape and not np.allclose(paper, code)
    with pytest.raises(SanityError, match="randomization policy"):
        _run(model, x, methods=["gradient"], orders=("top_down",), policy="nope")


def test_rerun_reuses_units_and_is_deterministic(tmp_path):
    model, x = _model("sequence"), _inputs("sequence")
    calls = []

    def ones_where_positive(m, x, targets):
        calls.append(len(x))
        return (x > 0.5).astype(np.float32)

    first = _run(model, x, out=tmp_path, extra_methods=[ones_where_positive])
    assert calls and first.timings["passes"] > 0
    assert any(v.method == "ones_where_positive" for v in first.verdicts)
    n_calls, passes = len(calls), engine.PASSES[0]
    again = _run(model, x, out=tmp_path, extra_methods=[ones_where_positive])
    assert len(calls) == n_calls and engine.PASSES[0] == passes and again.timings["passes"] == 0
    assert not any("resumed" in n for n in first.settings["notes"])
    assert any(n.startswith("resumed: ") for n in again.settings["notes"])  # the report says the timings are partial
    assert _key(again.rows) == _key(first.rows)
    fresh = _run(model, x, extra_methods=[ones_where_positive])  # in memory, same seeds
    assert _key(fresh.rows) == _key(first.rows)
    other_seed = _run(model, x, seeds=(1,), orders=("top_down",))
    assert _key([r for r in other_seed.rows if r["test"] == "model_randomization"]) != _key(
        [r for r in first.rows if r["test"] == "model_randomization" and r["order"] == "top_down"])


def test_a_rerun_with_another_random_label_model_does_not_reuse_its_units(tmp_path):
    model, x = _model("tabular"), _inputs("tabular")
    data_rows = lambda result: _key([r for r in result.rows if r["test"] == "data_randomization"])  # noqa: E731
    kwargs = dict(methods=["gradient"], orders=("top_down",), out=tmp_path)
    first = _run(model, x, random_label_model=_model("tabular", seed=1), **kwargs)
    other = _model("tabular", seed=2)
    again = _run(model, x, random_label_model=other, **kwargs)
    assert data_rows(again) == data_rows(_run(model, x, random_label_model=other, methods=["gradient"],
                                              orders=("top_down",))) != data_rows(first)


def _key(rows):
    return sorted((str(r["test"]), str(r["order"]), str(r["stage"]), r["method"], r["metric"], r["image"],
                   round(float(r["value"]), 6) if np.isfinite(float(r["value"])) else None) for r in rows)


def _gradient(model, x, targets):
    return np.ones_like(x)


_gradient.__name__ = "gradient"  # a user's function named like a registered method


def test_bad_arguments_fail_with_one_line():
    model, x = _model("tabular"), _inputs("tabular")
    for kwargs, match in [(dict(preset="slow"), "preset"), (dict(orders=("sideways",)), "order"),
                          (dict(methods=["nope"]), "method"), (dict(input_kind="audio"), "input kind"),
                          (dict(methods=["gradient"], extra_methods=[_gradient]), "two checked methods")]:
        with pytest.raises(SanityError, match=match):
            checks.run(model, x, progress=False, **kwargs)


@pytest.mark.slow
def test_mnist_cnn_shows_the_papers_findings(shared_data):
    """The trained MNIST CNN (paper profile, cached or trained): Gradient is sensitive to the parameters in both
    cascading orders; Guided Backprop stays as similar as the edge detector while the top layers are
    randomized top down (Adebayo et al. 2018, Fig. 2 and 4); input invariance does not apply (padded conv1)."""
    import sys
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1] / "benchmarks"))
    from bench_check import METHODS as SIX
    from bench_verdicts_mnist import mnist_test
    from tf_sanity.models import zoo

    model, _ = zoo.load_or_train("mnist-cnn", data_dir=shared_data, progress=False)
    x, y = mnist_test(16, shared_data)
    result = checks.run(model, x, y, methods=SIX, progress=False)
    verdicts = {(v.method, v.order): v for v in result.verdicts}
    for order in ("top_down", "bottom_up"):
        assert verdicts["gradient", order].verdict == "sensitive to the parameters"
    gbp = verdicts["guided_backprop", "top_down"]
    assert gbp.edge_like_until in ("output", "fc1", "conv2")
    assert result.settings["input_kind"] == "image" and not result.skipped
    assert {s["passed"] for s in result.summaries if s["test"] == "input_invariance"} == {None}
    assert result.timings["passes"] > 0  # (no test is timed: benchmarks/bench_check.py prints the ratio)
