"""The model-free Sanity Checks experiments end to end on small configs (Fig. 7, Fig. 19, linear model, calibration).

Each runs through :func:`experiments.common.run` into a temporary folder on the ImageNet test-bed images
of ``../shared/data`` and is checked on its claims (the mathematics must hold exactly; the findings
must hold on this small sample) and on the files it writes.
"""

import dataclasses

import numpy as np
import pytest

from experiments import common, imagenet_inputs, sc_imagenet_randomization
from experiments import sc_calibration, sc_fig7_conv_sumpool, sc_fig19_input_times_random, sc_linear_model
from tf_sanity.errors import SanityError


def _run(module, config, out):
    rows, claims = common.run(module, "quick", out, config=config, progress=False)
    stem = f"{module.NAME}-quick"
    assert (out / "results" / f"{stem}.csv").stat().st_size > 0
    assert (out / "claims" / f"{stem}.json").exists()
    return rows, claims


def _by_start(claims, text):
    found = [c for c in claims if text in c.claim]
    assert found, f"no claim containing {text!r}"
    return found


def test_fig7_gradient_is_the_closed_form_and_marks_edges(shared_data, tmp_path):
    config = dataclasses.replace(sc_fig7_conv_sumpool.PRESETS["quick"], images=1, size=96, widths=(1, 8), nets=(0, 1),
                                 methods=("gradient", "guided_backprop", "integrated_gradients"), ig_steps=3,
                                 data_dir=str(shared_data))
    rows, claims = _run(sc_fig7_conv_sumpool, config, tmp_path)
    # tidy rows: one per image x net x method x metric, with the settings
    assert {"image", "width", "net", "method", "metric", "value", "ig_steps"} <= set(rows[0])
    closed = [r["value"] for r in rows if r["metric"] == "closed_form_rel_error"]
    assert len(closed) == 2 * 2 and max(closed) < 1e-4
    assert claims[0].passed  # the closed form of Sec. 5
    gbp = [r["value"] for r in rows if r["method"] == "guided_backprop" and r["metric"] == "hog_to_sobel"]
    grad = [r["value"] for r in rows if r["method"] == "gradient" and r["metric"] == "hog_to_sobel"]
    np.testing.assert_allclose(gbp, grad)  # the sum-pool's upstream gradient is 1 > 0: GBP = gradient
    edge = _by_start(claims, "8 filter(s): the gradient")[0]
    assert edge.passed, edge.ours
    for suffix in ("masks", "similarity"):
        assert (tmp_path / f"sc_fig7_conv_sumpool-quick-{suffix}.png").exists()


def test_linear_model_gradient_is_w_and_ig_has_no_half(shared_data, tmp_path):
    config = dataclasses.replace(sc_linear_model.PRESETS["quick"], images=2, size=64, ig_steps=5, samples=3,
                                 data_dir=str(shared_data))
    rows, claims = _run(sc_linear_model, config, tmp_path)
    assert all(c.passed for c in claims), [c.ours for c in claims if not c.passed]
    slopes = [r["value"] for r in rows if r["metric"] == "slope_vs_closed_form"]
    np.testing.assert_allclose(slopes, 1.0, atol=1e-4)   # the paper's "/ 2" would give 0.5
    assert {r["baseline"] for r in rows if r["metric"] == "slope_vs_closed_form"} == {"zero", "random"}
    assert (tmp_path / "sc_linear_model-quick-masks.png").exists()


def test_fig19_input_dominates_the_product(shared_data, tmp_path):
    config = dataclasses.replace(sc_fig19_input_times_random.PRESETS["quick"], images=2, size=64, sigmas=(0.1, 10.0),
                                 data_dir=str(shared_data))
    rows, claims = _run(sc_fig19_input_times_random, config, tmp_path)
    # 2 distributions x 2 sigmas x 3 comparisons x 4 metrics x 2 images
    assert len(rows) == 2 * 2 * 3 * 4 * 2
    assert all(c.passed for c in claims), [c.ours for c in claims if not c.passed]
    assert (tmp_path / "sc_fig19_input_times_random-quick-imagenet.png").exists()


def test_calibration_without_a_model_has_only_random_rows_and_resumes(tmp_path, monkeypatch):
    monkeypatch.delenv(imagenet_inputs.CHECKPOINT_ENV, raising=False)
    with_model = sc_calibration.resolve(sc_calibration.PRESETS["quick"])
    assert with_model.model == "efficientnet_lite0"   # offline, no checkpoint: the trained stand-in
    assert sc_calibration.units(with_model)[-3:] == ["gradient", "integrated_gradients", "gradient_x_input"]
    assert common.store_for(sc_calibration, "quick", tmp_path, with_model).stem == "sc_calibration-quick-efficientnet_lite0"
    config = dataclasses.replace(sc_calibration.PRESETS["quick"], pairs=4, size=64, methods=())
    assert sc_calibration.units(config) == ["uniform/3ch", "uniform/1ch", "gaussian_rescaled/3ch",
                                            "gaussian_rescaled/1ch"]
    rows, claims = _run(sc_calibration, config, tmp_path)
    assert not [c for c in claims if c.passed is None]
    spearman = [r["value"] for r in rows if r["metric"].startswith("spearman")]
    assert max(abs(v) for v in spearman) < 0.1   # unrelated masks: no rank correlation
    raw = _by_start(claims, "raw zero-centred masks")[0]
    assert raw.passed, raw.ours

    store = common.store_for(sc_calibration, "quick", tmp_path, config)
    store.unit_path("uniform/1ch").unlink()
    calls = []
    original = sc_calibration.compute
    monkeypatch.setattr(sc_calibration, "compute", lambda c, u, ctx: calls.append(u) or original(c, u, ctx))
    again, _ = common.run(sc_calibration, "quick", tmp_path, config=config, progress=False)
    assert calls == ["uniform/1ch"]
    assert again == rows


def test_missing_inputs_fail_with_what_to_provide(tmp_path, monkeypatch):
    monkeypatch.delenv("TF_SANITY_DATA_DIR", raising=False)
    config = dataclasses.replace(sc_fig7_conv_sumpool.PRESETS["quick"], data_dir="")
    with pytest.raises(SanityError, match="TF_SANITY_DATA_DIR"):
        sc_fig7_conv_sumpool.requires(config)
    with pytest.raises(SanityError, match="imagenet/labels.csv"):
        sc_fig19_input_times_random.requires(dataclasses.replace(sc_fig19_input_times_random.PRESETS["quick"],
                                                                 data_dir=str(tmp_path)))
    with pytest.raises(SanityError, match="real TF-slim checkpoint"):
        sc_calibration.requires(dataclasses.replace(sc_calibration.PRESETS["quick"], checkpoint=str(tmp_path / "none")))


def test_changed_config_recomputes_instead_of_reusing_units(tmp_path):
    config = sc_calibration.PRESETS["quick"]
    other = dataclasses.replace(config, seed=config.seed + 1)
    a, b = common.Store(tmp_path, "x", "quick", config), common.Store(tmp_path, "x", "quick", other)
    assert a.units_dir != b.units_dir
    assert a.units_dir == common.Store(tmp_path, "x", "quick", config).units_dir
    assert a.units_dir != common.Store(tmp_path, "x", "quick", config, inputs="checkpoint b").units_dir


def test_results_of_one_checkpoint_are_not_reused_for_another(tmp_path, monkeypatch):
    monkeypatch.delenv(imagenet_inputs.CHECKPOINT_ENV, raising=False)
    for name in ("a", "b"):
        (tmp_path / f"{name}.ckpt.index").write_text("index")
        (tmp_path / f"{name}.ckpt.data-00000-of-00001").write_text(f"weights {name}")
    config = sc_imagenet_randomization.PRESETS["quick"]
    keys = {name: sc_imagenet_randomization.inputs(
        dataclasses.replace(config, checkpoint=str(tmp_path / name) if name else "")) for name in ("a", "b", "")}
    assert keys["a"] != keys["b"] and "a.ckpt.data-00000-of-00001" in keys["a"] and ".ckpt" not in keys[""]
    (tmp_path / "a.ckpt.data-00000-of-00001").write_text("weights a, retrained")
    assert sc_imagenet_randomization.inputs(dataclasses.replace(config, checkpoint=str(tmp_path / "a"))) != keys["a"]


def test_same_seed_same_numbers_from_an_empty_output_folder(shared_data, tmp_path):
    """Rerunning an experiment into an empty folder gives the same CSV bytes (issue 18 item 4).

    The second run recomputes every unit (nothing is reused), with fresh random nets drawn from the
    same seeds; oneDNN's thread scheduling has not made two runs differ on one machine (docs/reproduction.md).
    """
    config = dataclasses.replace(sc_fig7_conv_sumpool.PRESETS["quick"], images=1, size=64, widths=(8,), nets=(0,),
                                 methods=("gradient", "integrated_gradients"), ig_steps=3, data_dir=str(shared_data))
    csv = [(_run(sc_fig7_conv_sumpool, config, tmp_path / run) and
            (tmp_path / run / "results" / "sc_fig7_conv_sumpool-quick.csv").read_bytes()) for run in ("a", "b")]
    assert csv[0] == csv[1] and len(csv[0]) > 100
