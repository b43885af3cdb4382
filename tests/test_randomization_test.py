"""The randomization tests as library functions: tidy rows, orders, stage subsets, restoring the model."""

import numpy as np
import pytest

import tf_sanity
from tf_sanity import SanityError, checks
from tf_sanity.checks import metrics, randomization
from tests.helpers import images, small_cnn, weights_of

GROUPS = ["output", "fc1", "conv2", "conv1"]
METHODS = ["gradient", "guided_backprop"]


@pytest.fixture(scope="module")
def setup():
    model = small_cnn()
    x = images(3)
    return model, x, np.array([0, 1, 2])


def _rows(model, x, targets, **kwargs):
    return list(checks.model_randomization(model, x, targets, METHODS, **kwargs))


def test_rows_are_tidy_and_follow_each_order(setup):
    model, x, targets = setup
    for order, expected in (("top_down", GROUPS), ("bottom_up", GROUPS[::-1]), ("independent", GROUPS)):
        rows = _rows(model, x, targets, order=order, similarities=["spearman_abs"])
        assert len(rows) == len(GROUPS) * len(METHODS) * len(x)
        assert list(dict.fromkeys(r["stage"] for r in rows)) == expected
        assert {r["stage_index"] for r in rows if r["stage"] == expected[0]} == {1}
        assert set(rows[0]) == {"order", "stage", "stage_index", "method", "metric", "image", "value"}
        assert all(r["order"] == order for r in rows)


def test_values_equal_a_hand_written_loop(setup):
    model, x, targets = setup
    rows = _rows(model, x, targets, similarities=["spearman_signed"], seed=5)
    trained = {m: tf_sanity.explain(model, x, m, targets) for m in METHODS}
    with randomization.cascading(model, seed=5) as stages:
        for name, randomized in stages:
            for method in METHODS:
                expected = metrics.spearman(trained[method], tf_sanity.explain(randomized, x, method, targets),
                                            absolute=False)
                got = [r["value"] for r in rows if r["stage"] == name and r["method"] == method]
                np.testing.assert_allclose(got, expected)


def test_bottom_up_randomizes_from_the_input_layer(setup):
    model, x, targets = setup
    trained = {name: [w.copy() for w in model.get_layer(name).get_weights()] for name in GROUPS}
    seen = []

    def changed(stage, method, masks):
        if stage != "original" and method == METHODS[0]:
            seen.append([g for g in GROUPS if any(not np.array_equal(a, b) for a, b in
                                                  zip(model.get_layer(g).get_weights(), trained[g]))])

    _rows(model, x, targets, order="bottom_up", on_masks=changed)
    assert seen == [["conv1"], ["conv2", "conv1"], ["fc1", "conv2", "conv1"], GROUPS]


def test_a_stage_subset_gives_the_same_rows_and_the_model_is_restored(setup):
    model, x, targets = setup
    before = weights_of(model)
    full = _rows(model, x, targets, similarities=["spearman_abs", "ssim"], seed=2)
    for order in ("top_down", "independent"):
        full = _rows(model, x, targets, order=order, similarities=["spearman_abs", "ssim"], seed=2)
        part = _rows(model, x, targets, order=order, similarities=["spearman_abs", "ssim"], seed=2, stages=["conv2"])
        assert part == [r for r in full if r["stage"] == "conv2"]
    for a, b in zip(weights_of(model), before):
        np.testing.assert_array_equal(a, b)
    rows = checks.model_randomization(model, x, targets, METHODS)
    next(rows)  # abandoned mid-way: the cascade's generator restores the weights when closed
    rows.close()
    for a, b in zip(weights_of(model), before):
        np.testing.assert_array_equal(a, b)


def test_predicted_targets_and_custom_similarities(setup):
    model, x, _ = setup
    rows = _rows(model, x, "predicted", stages=["output"],
                 similarities={"identity": lambda a, b, c: np.full(len(c.images), float(c.method.name == "gradient"))})
    assert {r["target_changed"] for r in rows} <= {0, 1} and len(rows) == len(METHODS) * len(x)
    assert [r["value"] for r in rows if r["method"] == "gradient"] == [1.0] * len(x)


def test_spearman_nz_uses_each_methods_baseline(setup):
    model, x, targets = setup
    shifted = x + 0.5  # IG's baseline 0.5 equals no pixel of the shifted images but some ...
    shifted[:, :2] = 0.5  # ... of these rows: they are left out
    rows = list(checks.model_randomization(model, shifted, targets, ["integrated_gradients"], stages=["output"],
                                           similarities=["spearman_nz"],
                                           settings={"integrated_gradients": {"baseline": 0.5, "steps": 4}}))
    trained = tf_sanity.explain(model, shifted, "integrated_gradients", targets, baseline=0.5, steps=4)
    with randomization.cascading(model, ["output"]) as stages:
        for _, randomized in stages:
            masks = tf_sanity.explain(randomized, shifted, "integrated_gradients", targets, baseline=0.5, steps=4)
            expected = metrics.spearman_nz(trained, masks, shifted, 0.5, absolute=True)
    np.testing.assert_allclose([r["value"] for r in rows], expected)


def test_data_randomization_of_a_model_with_itself_is_one(setup):
    model, x, targets = setup
    kept = {}
    rows = checks.data_randomization(model, model, x, targets, METHODS, similarities=["spearman_abs"],
                                     on_masks=lambda key, method, masks: kept.setdefault((key, method), masks))
    assert len(rows) == len(METHODS) * len(x)
    np.testing.assert_allclose([r["value"] for r in rows], 1.0)
    assert set(kept) == {(k, m) for k in ("true_labels", "random_labels") for m in METHODS}


def test_bad_arguments_are_one_line_errors(setup):
    model, x, targets = setup
    for kwargs, match in ((dict(order="sideways"), "order"), (dict(similarities=["sim"]), "similarity"),
                          (dict(stages=["nope"]), "stage")):
        with pytest.raises(SanityError, match=match) as e:
            _rows(model, x, targets, **kwargs)
        assert "\n" not in str(e.value)
    with pytest.raises(SanityError, match="method"):
        list(checks.model_randomization(model, x, targets, ["no_such_method"]))
