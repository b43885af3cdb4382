"""The MNIST randomization experiment end to end on a tiny config (untrained model substituted)."""

import dataclasses

import keras
import pytest

from experiments import common, sc_cascading_mnist as exp
from tf_sanity.models import mnist_models, zoo


@pytest.fixture
def tiny(monkeypatch, shared_data):
    def fake_trained_model(name, **kwargs):
        keras.utils.set_random_seed(0)
        return mnist_models.build(name.rsplit("-", 1)[1])
    monkeypatch.setattr(zoo, "trained_model", fake_trained_model)
    return dataclasses.replace(exp.PRESETS["quick"], models=("mnist-cnn", "mnist-mlp"), images=3, ig_steps=3,
                               samples=2, methods=("gradient", "integrated_gradients", "guided_backprop",
                                                   "gradcam", "gradient_vg"), data_dir=str(shared_data))


def test_runs_writes_tidy_rows_figures_and_resumes(tiny, tmp_path):
    rows, claims = common.run(exp, "quick", tmp_path, config=tiny, progress=False)
    # cnn: 2 modes x 4 stages x 5 methods; mlp: 2 x 4 x 4 (no gradcam); x 5 metrics x 3 images
    assert len(rows) == (2 * 4 * 5 + 2 * 4 * 4) * 5 * 3
    assert {r["metric"] for r in rows} == set(exp.METRICS)
    assert (tmp_path / "results" / "sc_cascading_mnist-quick.csv").exists()
    assert (tmp_path / "sc_cascading_mnist-quick-mnist-cnn-cascading.png").exists()
    assert (tmp_path / "sc_cascading_mnist-quick-st-fig2.png").exists()
    assert len(claims) >= 5
    store = common.store_for(exp, "quick", tmp_path, tiny)
    store.unit_path("mnist-mlp/independent/hidden2").unlink()
    calls = []
    original = exp.compute
    exp.compute = lambda *a: calls.append(a[1]) or original(*a)
    try:
        again, _ = common.run(exp, "quick", tmp_path, config=tiny, progress=False)
    finally:
        exp.compute = original
    assert calls == ["mnist-mlp/independent/hidden2"]
    assert len(again) == len(rows)


def test_data_randomization_and_signed_ig_figures(tiny, tmp_path, monkeypatch):
    from experiments import sc_fig6_data_randomization as fig6, st_fig3_signed_ig as fig3
    config6 = dataclasses.replace(fig6.PRESETS["quick"], models=("mnist-cnn",), images=3, shown=1, ig_steps=3,
                                  samples=2, data_dir=tiny.data_dir)
    rows, claims = common.run(fig6, "quick", tmp_path, config=config6, progress=False)
    assert len(rows) == len(fig6.METHODS) * 5 * 3 and len(claims) == 4
    assert (tmp_path / "sc_fig6_data_randomization-quick-mnist-cnn.png").exists()
    config3 = dataclasses.replace(fig3.PRESETS["quick"], images=2, data_dir=tiny.data_dir)  # 100 steps
    rows, claims = common.run(fig3, "quick", tmp_path, config=config3, progress=False)
    assert {r["stage"] for r in rows} == {"original", "output", "fc1", "conv2", "conv1"}
    assert (tmp_path / "st_fig3_signed_ig-quick.png").exists()
    assert claims[0].passed, claims[0].ours  # completeness holds with 100 midpoint steps even on an untrained net
