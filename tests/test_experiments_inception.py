"""The ImageNet experiments (Sanity Checks Figs. 1-5) end to end on a tiny substitute network.

The real checkpoint is not available to the tests, so the model loader is monkeypatched to a small
random Keras model with slim-like block names, ``randomization_groups`` and a ``Mixed_7c`` conv layer.
Everything runs into ``tmp_path``: figures of a random network never reach ``figures/``.
"""

import dataclasses
import pathlib

import keras
import numpy as np
import pytest

import slim_models
from experiments import common, imagenet_inputs, sc_fig1_edge_detectors, sc_imagenet_randomization as exp
from tf_sanity.errors import SanityError

STAGES = ("Logits", "Mixed_7c", "Mixed_5b", "Conv2d_1a_3x3")
FIGURES = pathlib.Path(__file__).resolve().parents[1] / "figures"


def tiny_inception(size=32):
    """conv, conv, conv, pool, dense(1001) named like slim's blocks, with their randomization groups."""
    keras.utils.set_random_seed(0)
    inp = keras.Input((size, size, 3))
    h = keras.layers.Conv2D(4, 3, strides=2, padding="same", activation="relu", name="Conv2d_1a_3x3")(inp)
    h = keras.layers.Conv2D(6, 3, padding="same", activation="relu", name="Mixed_5b")(h)
    h = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="Mixed_7c")(h)
    h = keras.layers.GlobalAveragePooling2D()(h)
    model = keras.Model(inp, keras.layers.Dense(1001, name="Logits")(h))
    model.randomization_groups = [(name, [name]) for name in STAGES]
    return model


@pytest.fixture
def substitute(monkeypatch, tmp_path):
    model = tiny_inception()
    monkeypatch.setattr(imagenet_inputs, "load_inception",
                        lambda config, x, labels: (model, np.asarray(model.predict(x, verbose=0))))
    fake = tmp_path / "inception_v3.ckpt"
    fake.write_bytes(b"")   # requires() only checks that a checkpoint is named and exists
    return model, str(fake)


def _figures_snapshot():
    return sorted(p.name for p in FIGURES.glob("sc_imagenet_randomization*")) if FIGURES.is_dir() else []


def test_cascading_and_independent_grids_and_curves(substitute, shared_data, tmp_path):
    model, ckpt = substitute
    before_weights = [w.numpy().copy() for w in model.weights]
    before_figures = _figures_snapshot()
    methods = ("gradient", "guided_backprop", "integrated_gradients_sg", "gradcam", "guided_gradcam")
    config = dataclasses.replace(exp.PRESETS["quick"], images=2, size=32, stages=STAGES, methods=methods,
                                 ig_steps=2, samples=2, checkpoint=ckpt, data_dir=str(shared_data))
    out = tmp_path / "out"
    rows, claims = common.run(exp, "quick", out, config=config, progress=False)
    curves = [r for r in rows if r["part"] == "curves"]
    grid = [r for r in rows if r["part"] == "grid"]
    assert len(curves) == 2 * len(STAGES) * len(methods) * 4 * 2   # modes x stages x methods x metrics x images
    assert len(grid) == 2 * len(STAGES) * len(methods) * 4
    assert {r["target"] for r in rows} == {"prediction"} and {r["policy"] for r in rows} == {"original_code"}
    for suffix in ("fig2-cascading-abs", "fig2-cascading-diverging", "fig3-independent-abs", "fig4-cascading",
                   "fig5-independent"):
        assert (out / f"sc_imagenet_randomization-quick-inception_v3-{suffix}.png").exists(), suffix
    assert len(claims) >= 5 and all(c.passed in (True, False) for c in claims)
    # the trained weights are back, bit-identical, and nothing was written to figures/
    assert all(np.array_equal(a, w.numpy()) for a, w in zip(before_weights, model.weights))
    assert _figures_snapshot() == before_figures

    # cascading: the first stage equals the independent randomization of the same (top) block
    first = {(r["method"], r["metric"], r["image"]): r["value"] for r in curves if r["stage"] == "Logits"
             and r["mode"] == "cascading"}
    same = {(r["method"], r["metric"], r["image"]): r["value"] for r in curves if r["stage"] == "Logits"
            and r["mode"] == "independent"}
    assert first.keys() == same.keys()
    np.testing.assert_allclose([first[k] for k in first], [same[k] for k in first], atol=1e-6)


def test_fig1_saliency_next_to_edge_detectors(substitute, shared_data, tmp_path):
    _, ckpt = substitute
    config = dataclasses.replace(sc_fig1_edge_detectors.PRESETS["quick"], images=1, size=32, ig_steps=2, samples=2,
                                 methods=("gradient", "guided_backprop", "guided_gradcam"), checkpoint=ckpt,
                                 data_dir=str(shared_data))
    rows, claims = common.run(sc_fig1_edge_detectors, "quick", tmp_path, config=config, progress=False)
    assert {r["method"] for r in rows} == {"gradient", "guided_backprop", "guided_gradcam", "prewitt", "roberts",
                                           "canny", "random"}
    assert (tmp_path / "sc_fig1_edge_detectors-quick-inception_v3-masks.png").exists()
    assert all("Inception v3" in c.paper for c in claims)   # the claims name the network
    assert claims[1].passed in (True, False)   # computed, not skipped


def test_edge_detectors_alone_need_no_checkpoint(shared_data, tmp_path, monkeypatch):
    monkeypatch.delenv(imagenet_inputs.CHECKPOINT_ENV, raising=False)
    full = dataclasses.replace(sc_fig1_edge_detectors.PRESETS["quick"], data_dir=str(shared_data),
                               model="inception_v3")
    with pytest.raises(SanityError, match="Inception figures need the real TF-slim checkpoint"):
        sc_fig1_edge_detectors.requires(full)
    config = dataclasses.replace(full, images=1, size=64, methods=())
    rows, claims = common.run(sc_fig1_edge_detectors, "quick", tmp_path, config=config, progress=False)
    assert {r["method"] for r in rows} == {"prewitt", "roberts", "canny", "random"}
    assert claims[-1].passed is None and "no saliency masks" in claims[-1].ours


def test_inception_figures_refuse_missing_or_untrained_checkpoints(shared_data, tmp_path, monkeypatch):
    monkeypatch.delenv(imagenet_inputs.CHECKPOINT_ENV, raising=False)
    config = dataclasses.replace(exp.PRESETS["quick"], data_dir=str(shared_data), model="inception_v3")
    with pytest.raises(SanityError, match="Inception figures need the real TF-slim checkpoint"):
        exp.requires(config)
    with pytest.raises(SanityError, match="no checkpoint at"):
        exp.requires(dataclasses.replace(config, checkpoint=str(tmp_path / "missing.ckpt")))
    # a random-weight network (as the tests' slim checkpoint) is refused, by its chance-level accuracy
    monkeypatch.setattr(slim_models, "load_inception_v3", lambda path: tiny_inception())
    fake = tmp_path / "random.ckpt"
    fake.write_bytes(b"")
    _, x, labels = imagenet_inputs.load(config, "val_imagenette224/", 4, 32)
    with pytest.raises(SanityError, match="looks untrained"):
        imagenet_inputs.load_inception(dataclasses.replace(config, checkpoint=str(fake)), x, labels)


def test_official_checkpoint_keyword_uses_the_cache_or_fails_fast_offline(shared_data, tmp_path, monkeypatch):
    from slim_models import checkpoint
    monkeypatch.setenv("TF_SANITY_CACHE", str(tmp_path))
    config = dataclasses.replace(exp.PRESETS["quick"], data_dir=str(shared_data), checkpoint="official")
    # offline, nothing cached: one message saying where to put the archive, no 200 s of retries
    monkeypatch.setattr(checkpoint, "OFFICIAL_URL", "http://127.0.0.1:9/inception_v3_2016_08_28.tar.gz")
    for name in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(SanityError, match=str(tmp_path)):
        exp.requires(config)
    # cached: the keyword resolves to the extracted checkpoint there
    (tmp_path / checkpoint.CHECKPOINT_NAME).write_bytes(b"")
    assert imagenet_inputs.checkpoint(config) == str(tmp_path / checkpoint.CHECKPOINT_NAME)
    exp.requires(config)


def test_paper_preset_runs_the_curves_at_the_paper_settings_without_ig_sg_vg():
    """Issue 16 item 4: IG 50 steps, SG / VG 50 samples, every method but IG-SG / IG-VG, >= 32 images."""
    paper = exp.PRESETS["paper"]
    assert (paper.ig_steps, paper.samples) == (50, 50) and paper.images >= 32
    assert set(paper.methods) == set(exp.METHODS) - {"integrated_gradients_sg", "integrated_gradients_vg"}
    # passes per image and stage: the docs/speed.md table; all methods: 6 + 4 n + steps (1 + 2 n)
    assert sum(exp.passes_per_image(m, paper) for m in paper.methods) == 1 + 4 * 50 + 1 + 50 + 1 + 1 + 2
    assert sum(exp.passes_per_image(m, paper) for m in exp.METHODS) == 6 + 4 * 50 + 50 * (1 + 2 * 50)
    config = dataclasses.replace(paper, model="efficientnet_lite0")
    units = exp.units(config)
    assert len(units) == 2 + 2 * 19 and units[2:4] == ["curves/cascading/fc", "curves/cascading/conv_head"]
    text = exp.estimate(config, units[2:])
    assert "38 units to do (38 curve stages of 32 images, 0 grids); 256 passes per image and stage" in text
    assert f"{256 * 39 * 32:,} forward+backward passes" in text


def test_paper_preset_resumes_stage_by_stage(substitute, shared_data, tmp_path, monkeypatch, capsys):
    """A run stopped after two units continues with the others; each start prints what is left."""
    model, ckpt = substitute
    config = dataclasses.replace(exp.PRESETS["paper"], images=2, size=32, stages=STAGES, modes=("cascading",),
                                 ig_steps=2, samples=2, methods=("gradient", "gradient_sg"), checkpoint=ckpt,
                                 data_dir=str(shared_data))
    compute, done = exp.compute, []

    def stop_after_two(config, unit, context):
        if len(done) == 2:
            raise KeyboardInterrupt
        done.append(unit)
        return compute(config, unit, context)

    monkeypatch.setattr(exp, "compute", stop_after_two)
    with pytest.raises(KeyboardInterrupt):
        common.run(exp, "paper", tmp_path, config=config, progress=False)
    assert done == ["grid/cascading", "curves/cascading/Logits"]
    assert "5 units to do (4 curve stages of 2 images, 1 grids)" in capsys.readouterr().out
    monkeypatch.setattr(exp, "compute", compute)
    rows, _ = common.run(exp, "paper", tmp_path, config=config, progress=False)
    out = capsys.readouterr().out
    assert "3 units to do (3 curve stages of 2 images, 0 grids)" in out and "(2 reused)" in out
    assert {r["stage"] for r in rows if r["part"] == "curves"} == set(STAGES)
