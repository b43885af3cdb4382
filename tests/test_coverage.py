"""The coverage matrix (issue 15, item 6): every method on keras.applications families.

The fast tests run two small families with one method per rule family (plain gradient, path integral,
spatial layer, activation rule, DeepLIFT, LRP, DeepTaylor, patterns, noise tunnel) and check the
matrix's own checks can fail; the whole matrix (``benchmarks/coverage_matrix.py``, which writes
``docs/coverage.md``) is a slow test.
"""

import keras
import numpy as np
import pytest

import tf_sanity
from benchmarks import coverage_matrix as cm

REPRESENTATIVES = ("gradient", "integrated_gradients", "gradcam", "guided_backprop", "deeplift", "lrp_epsilon",
                   "deep_taylor", "pattern_attribution", "gradient_sg")

# family -> {method: substring of its refusal}; every other representative must be "ok".
REFUSED = {
    "MobileNetV2": {"pattern_attribution": "'Conv1_relu' uses activation 'relu6'"},
    "MobileNetV3Small": {"pattern_attribution": "uses activation 'hard_silu'"},
}

# What a cell may say besides "ok": a one-line SanityError (also one raised only on the randomized model, e.g.
# DeepTaylor's float32 overflow on Xception). These mark a broken contract instead.
BROKEN = ("not a SanityError", "weights changed", "changed:", "mask shape", "mask not finite")


def assert_sound(row):
    """Every cell is ok or a one-line refusal, and the cascade restored the weights."""
    assert row["cascade"].startswith("ok ("), row["cascade"]
    for name, cell in row.items():
        assert not any(mark in cell for mark in BROKEN), f"{name}: {cell}"
        assert "\n" not in cell, f"{name}: a refusal must be one line"


@pytest.mark.parametrize("family", list(REFUSED))
def test_representative_methods_on_small_families(family):
    row = cm.coverage(family, REPRESENTATIVES)
    assert_sound(row)
    for name in REPRESENTATIVES:
        if name in REFUSED[family]:
            assert REFUSED[family][name] in row[name], row[name]
        else:
            assert row[name] == cm.OK, f"{name}: {row[name]}"


def _dense():
    inp = keras.Input((4,))
    return keras.Model(inp, keras.layers.Dense(3, name="d")(keras.layers.Dense(5, activation="relu")(inp)))


def test_snapshot_sees_a_changed_weight_and_a_layer_left_patched():
    model = _dense()
    snapshot = cm.Snapshot(model)
    assert snapshot.difference() == ""
    layer = model.get_layer("d")
    old = layer.kernel.numpy()
    layer.kernel.assign(old + np.float32(1e-7) * (old == 0) + old * np.float32(1e-7))  # a last-bit change
    assert snapshot.difference().startswith("weights changed (d/kernel")
    layer.kernel.assign(old)
    assert snapshot.difference() == ""
    layer.call = lambda x: x  # a rule that forgot to restore the layer
    assert "layer 'd' changed: call" in snapshot.difference()
    del layer.call
    model.layers[1].activation = keras.activations.linear  # an activation left swapped
    assert "changed: activation" in snapshot.difference()


def test_a_cell_reports_a_bad_mask_and_a_foreign_exception(monkeypatch):
    model, x = _dense(), np.zeros((2, 4), np.float32)
    monkeypatch.setattr(tf_sanity, "explain", lambda *a, **k: np.full((2, 4), np.nan))
    assert cm.explain_cell(model, x, [0, 1], "gradient", {}) == "mask not finite"
    monkeypatch.setattr(tf_sanity, "explain", lambda *a, **k: np.zeros((2, 3)))
    assert cm.explain_cell(model, x, [0, 1], "gradient", {}).startswith("mask shape (2, 3)")
    monkeypatch.setattr(tf_sanity, "explain", lambda *a, **k: 1 / 0)
    assert "ZeroDivisionError (not a SanityError)" in cm.explain_cell(model, x, [0, 1], "gradient", {})


def test_markdown_counts_ok_and_lists_each_reason_once():
    ok = {name: cm.OK for name in tf_sanity.METHODS}
    reason = "rule 'LRP gate' of lrp_z does not support layer 'a|b' (Multiply); choose another method or rule"
    refused = {**ok, "lrp_z": reason, "lrp_epsilon": reason, "gradient_sg": "y"}
    text = cm.markdown({"A": {**ok, "cascade": "ok (3 groups)"}, "B": {**refused, "cascade": "ok (3 groups)"}},
                       60, "cmd")
    rows = [line for line in text.splitlines() if line.startswith("| A ") or line.startswith("| B ")]
    n = len(tf_sanity.METHODS)
    assert rows[0].startswith(f"| A | {n}/{n} |") and "as base (12)" in rows[0]
    assert rows[1].startswith(f"| B | {n - 3}/{n} |") and "gradient_sg: y" in rows[1]
    assert text.count("does not support layer 'a\\|b'") == 1  # the note, once; cells point to it
    assert rows[1].count("[1]") == 2
    assert len(rows[0].split(" | ")) == len(cm.columns()) + 2


@pytest.mark.slow
@pytest.mark.parametrize("family", list(cm.FAMILIES))
def test_every_method_on_every_family(family):
    row = cm.coverage(family)
    print(family, {name: cell for name, cell in row.items() if cell != cm.OK})
    assert_sound(row)
    assert sum(cell == cm.OK for cell in row.values()) >= 12  # the gradient methods and their SG / VG
